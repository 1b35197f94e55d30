"""Referring segmentation, captioning, referring captioning and image-text retrieval end to end
through tools/test.py, on tiny datasets written here in the real on-disk formats (RefCOCOg's
refs(umd).p + instances.json, COCO Karpathy json + COCO-format caption GT), with the parity
sample's weights; plus the retrieval and caption metrics on hand-made inputs."""
import importlib.util
import json
import math
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from xdecoder_test_utils import CONFIGS, ROOT, smooth_image

# tools/test.py by path: a plain `import test` may find the standard library's test package.
_spec = importlib.util.spec_from_file_location('xdecoder_tools_test', ROOT / 'tools' / 'test.py')
test_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(test_tool)

RUNNER = ['test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False']


def train_name(image_id):
    return f'COCO_train2014_{image_id:012d}.jpg'


def rect_polygon(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


@pytest.fixture(scope='module')
def refcocog_root(tmp_path_factory):
    """data/coco with train2014/ and refcocog/{instances.json, refs(umd).p}: image 1 has two
    referred objects (a polygon and an RLE mask), image 2 one; one more ref is in 'train'."""
    root = tmp_path_factory.mktemp('refcoco') / 'coco'
    (root / 'train2014').mkdir(parents=True)
    (root / 'refcocog').mkdir()
    rng = np.random.default_rng(3)
    sizes = {1: (48, 64), 2: (64, 40), 3: (40, 40)}
    for image_id, (h, w) in sizes.items():
        Image.fromarray(smooth_image(rng, h, w)).save(root / 'train2014' / train_name(image_id),
                                                      quality=95)
    blob = np.zeros(sizes[1], np.uint8)
    blob[20:44, 30:60] = 1
    blob[5:15, 2:10] = 1
    rle = mask_utils.encode(np.asfortranarray(blob))
    rle['counts'] = rle['counts'].decode()
    segmentations = {10: rect_polygon(4, 6, 40, 30), 11: rle, 20: rect_polygon(8, 10, 30, 50),
                     30: rect_polygon(0, 0, 20, 20)}
    image_of = {10: 1, 11: 1, 20: 2, 30: 3}
    instances = dict(
        images=[dict(id=i, file_name=train_name(i), height=h, width=w)
                for i, (h, w) in sizes.items()],
        annotations=[dict(id=a, image_id=image_of[a], segmentation=s, category_id=1, iscrowd=0,
                          bbox=[0, 0, 1, 1], area=1) for a, s in segmentations.items()],
        categories=[dict(id=1, name='thing')])
    (root / 'refcocog' / 'instances.json').write_text(json.dumps(instances))
    sentences = {10: ['The Dog on the left.', 'a brown dog'], 11: ['two red boxes'],
                 20: ['a tall window', 'the window', 'glass'], 30: ['train only']}
    refs = [dict(ref_id=100 + a, ann_id=a, image_id=image_of[a], category_id=1,
                 split='train' if a == 30 else 'val', file_name=train_name(image_of[a]),
                 sentences=[dict(raw=s, sent=s.lower(), tokens=s.lower().split(), sent_id=k)
                            for k, s in enumerate(sents)])
            for a, sents in sentences.items()]
    with open(root / 'refcocog' / 'refs(umd).p', 'wb') as f:
        pickle.dump(refs, f)
    return root


@pytest.fixture(scope='module')
def karpathy_root(tmp_path_factory):
    """data/coco with val2014/ and annotations/coco_karpathy_test{,_gt}.json, 4 images with 2-3
    captions each."""
    root = tmp_path_factory.mktemp('karpathy') / 'coco'
    (root / 'val2014').mkdir(parents=True)
    (root / 'annotations').mkdir()
    rng = np.random.default_rng(5)
    captions = {42: ['a dog runs on the grass.', 'a brown dog playing outside'],
                73: ['two people ride bikes down a street', 'cyclists on a city road',
                     'people riding bicycles.'],
                139: ['a plate of food on a table', 'pizza on a plate'],
                285: ['a large bear sitting in the woods', 'a brown bear in a forest']}
    entries, gt_images, gt_annotations = [], [], []
    for image_id, caps in captions.items():
        name = f'val2014/COCO_val2014_{image_id:012d}.jpg'
        Image.fromarray(smooth_image(rng, 40 + image_id % 24, 56)).save(root / name, quality=95)
        entries.append(dict(image=name, caption=caps))
        gt_images.append(dict(id=image_id))
        gt_annotations += [dict(image_id=image_id, id=len(gt_annotations) + 1, caption=c)
                           for c in caps]
    (root / 'annotations' / 'coco_karpathy_test.json').write_text(json.dumps(entries))
    (root / 'annotations' / 'coco_karpathy_test_gt.json').write_text(
        json.dumps(dict(images=gt_images, annotations=gt_annotations)))
    return root, captions


def run_test_tool(config, checkpoint, tmp_path, *options):
    out = tmp_path / 'results.pkl'
    metrics = test_tool.main([str(CONFIGS / config), str(checkpoint), '--work-dir',
                              str(tmp_path / 'work'), '--out', str(out), '--cfg-options',
                              *RUNNER, *options])
    return metrics, pickle.loads(out.read_bytes())


def reference_refseg(coco_root, predictions):
    """cIoU / mIoU (%) from the dumped RLE masks and the GT annotations, decoded here."""
    instances = json.loads((coco_root / 'refcocog' / 'instances.json').read_text())
    refs = pickle.loads((coco_root / 'refcocog' / 'refs(umd).p').read_bytes())
    anns = {a['id']: a for a in instances['annotations']}
    inter = union = 0
    ious = []
    for pred in predictions:
        image_id = int(pred['img_id'])
        h, w = pred['ori_shape']
        val_refs = [r for r in refs if r['image_id'] == image_id and r['split'] == 'val']
        # One query per referred object, its first sentence lower-cased (select_first).
        assert pred['text'] == [r['sentences'][0]['raw'].lower() for r in val_refs]
        masks = mask_utils.decode(pred['pred_instances']['masks']).astype(bool)
        assert masks.shape == (h, w, len(val_refs))
        for k, ref in enumerate(val_refs):
            seg = anns[ref['ann_id']]['segmentation']
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w)) if isinstance(seg, list) \
                else seg
            gt = mask_utils.decode(rle).astype(bool)
            i, u = (masks[..., k] & gt).sum(), (masks[..., k] | gt).sum()
            inter, union = inter + i, union + u
            ious.append(i / u if u else 0.0)
    return 100 * inter / union, 100 * float(np.mean(ious)), inter


def test_referring_segmentation_refcocog(refcocog_root, synthetic_checkpoint, tmp_path):
    metrics, predictions = run_test_tool(
        'xdecoder-tiny_zeroshot_open-vocab-ref-seg_refcocog.py', synthetic_checkpoint, tmp_path,
        f'test_dataloader.dataset.data_root={refcocog_root}',
        'test_dataloader.dataset.pipeline.1.scale=64')
    assert sorted(int(p['img_id']) for p in predictions) == [1, 2]  # the train ref is left out
    ciou, miou, inter = reference_refseg(refcocog_root, predictions)
    assert inter > 0  # the check is not vacuous
    # RefSegMetric divides in float32 (ulp 7.6e-6 at 100); the reference in float64.
    assert float(metrics['cIoU']) == pytest.approx(ciou, abs=1e-4)
    assert float(metrics['mIoU']) == pytest.approx(miou, abs=1e-4)


def token_text(ids, cut_at_period):
    """Caption text from token ids, decoded here: text before the first end-of-text (and, for
    the official evaluation, the first period), special tokens removed."""
    from projects.XDecoder.xdecoder.tokenizer import CLIPTokenizer
    text = CLIPTokenizer().decode([int(i) for i in ids])
    text = text.split('<|endoftext|>')[0].replace('<|startoftext|>', '').strip()
    return text.split('.')[0] if cut_at_period else text


def test_caption_karpathy(karpathy_root, synthetic_checkpoint, tmp_path):
    root, captions = karpathy_root
    metrics, predictions = run_test_tool(
        'xdecoder-tiny_zeroshot_caption_coco2014.py', synthetic_checkpoint, tmp_path,
        f'test_dataloader.dataset.data_root={root}',
        f'test_evaluator.ann_file={root}/annotations/coco_karpathy_test_gt.json',
        'test_dataloader.dataset.pipeline.1.scale=(64,64)', 'test_dataloader.dataset.indices=2',
        # METEOR's Java start-up (loading its paraphrase table) alone would take ~10 s.
        'test_evaluator.scorers=[Bleu,ROUGE_L,CIDEr]', 'model.test_cfg.caption_steps=3')
    assert sorted(metrics) == ['Bleu_1', 'Bleu_2', 'Bleu_3', 'Bleu_4', 'CIDEr', 'ROUGE_L']
    assert all(0 <= v <= 10 for v in metrics.values())
    assert [int(p['img_id']) for p in predictions] == list(captions)[:2]
    for pred in predictions:
        assert pred['img_shape'] == (64, 64)  # fixed size, aspect not kept
        ids = pred['caption_token_ids'].tolist()
        assert ids[0] == 49406 and ids[4:] == [49406] * 73  # 3 greedy steps after the start
        assert pred['pred_caption'] == token_text(ids, cut_at_period=True)


def test_caption_metric_scores_exact_captions_perfectly(karpathy_root):
    """An independent reference for the scorer wiring: each prediction is one of the image's GT
    captions, so BLEU-4 and ROUGE-L are 1 and CIDEr is far above a wrong caption's."""
    from projects.XDecoder.xdecoder.caption_metric import COCOCaptionEvalMetric
    root, captions = karpathy_root
    metric = COCOCaptionEvalMetric(str(root / 'annotations' / 'coco_karpathy_test_gt.json'),
                                   scorers=('Bleu', 'ROUGE_L', 'CIDEr'))
    metric.process({}, [dict(img_id=f'{i:012d}', pred_caption=caps[-1])
                        for i, caps in captions.items()])
    scores = metric.evaluate(len(captions))
    # Identical captions score 1 up to the scorers' float smoothing terms (1e-9 in BLEU).
    assert scores['Bleu_4'] == pytest.approx(1.0, abs=1e-6)
    assert scores['ROUGE_L'] == pytest.approx(1.0, abs=1e-6)
    assert 'METEOR' not in scores and 'SPICE' not in scores
    with pytest.raises(FileNotFoundError, match='coco_karpathy_test_gt.json'):
        COCOCaptionEvalMetric(str(root / 'missing' / 'coco_karpathy_test_gt.json'))
    with pytest.raises(ValueError, match='Unknown caption scorers'):
        COCOCaptionEvalMetric(str(root / 'annotations' / 'coco_karpathy_test_gt.json'),
                              scorers=('BLEU',))


def test_ref_caption_refcocog(refcocog_root, synthetic_checkpoint, tmp_path):
    metrics, predictions = run_test_tool(
        'xdecoder-tiny_zeroshot_ref-caption.py', synthetic_checkpoint, tmp_path,
        f'test_dataloader.dataset.data_root={refcocog_root}',
        'test_dataloader.dataset.pipeline.1.scale=48', 'model.test_cfg.caption_steps=3')
    assert {'cIoU', 'mIoU'} <= set(metrics)
    for pred in predictions:
        assert len(pred['pred_instances']['masks']) == len(pred['text'])
        ids = pred['caption_token_ids'].tolist()
        assert ids[4:] == [49406] * 73  # 3 greedy steps after the start token
        assert pred['pred_caption'] == token_text(ids, cut_at_period=False) != ''


# ------------------------------------------------------------------------------- retrieval
def reference_recalls(images, texts, owner, backbone=None, ks=(1, 5, 10)):
    """Recall@k (%) by sorting every score row/column, as retrieval evaluations usually do."""
    def cos(a, b):
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        return a @ b.T
    scores = cos(images, texts)
    if backbone is not None:
        scores = 0.5 * scores + 0.5 * cos(backbone, texts)
    owner = np.asarray(owner)
    i2t = [min(np.where(np.argsort(-row, kind='stable') == j)[0][0]
               for j in np.where(owner == i)[0]) for i, row in enumerate(scores)]
    t2i = [np.where(np.argsort(-scores[:, j], kind='stable') == owner[j])[0][0]
           for j in range(len(owner))]
    out = {f'img2txt_R@{k}': 100 * np.mean(np.asarray(i2t) < k) for k in ks}
    out.update({f'txt2img_R@{k}': 100 * np.mean(np.asarray(t2i) < k) for k in ks})
    return out


def test_retrieval_karpathy(karpathy_root, synthetic_checkpoint, tmp_path):
    root, captions = karpathy_root
    metrics, predictions = run_test_tool(
        'xdecoder-tiny_zeroshot_text-image-retrieval.py', synthetic_checkpoint, tmp_path,
        f'test_dataloader.dataset.data_root={root}',
        'test_dataloader.dataset.pipeline.1.scale=(64,64)', 'test_evaluator.topk=[1,2,3]')
    images = np.stack([p['image_embedding'].numpy() for p in predictions])
    backbone = np.stack([p['backbone_image_embedding'].numpy() for p in predictions])
    texts = np.concatenate([p['caption_embeddings'].numpy() for p in predictions])
    owner = [i for i, p in enumerate(predictions) for _ in p['caption_embeddings']]
    for p in predictions:  # one embedding per GT caption, in the json's order
        assert p['gt_caption'] == captions[int(p['img_id'])]
        assert len(p['caption_embeddings']) == len(p['gt_caption'])
    expected = reference_recalls(images, texts, owner, backbone, ks=(1, 2, 3))
    for key, value in expected.items():  # percentages of counts: equal up to float division
        assert metrics[f'retrieval/{key}'] == pytest.approx(value, abs=1e-6), key


def angle(deg):
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def evaluate_retrieval(images, caption_groups, backbone=None, **kwargs):
    from projects.XDecoder.xdecoder.retrieval_metric import RetrievalRecallMetric
    metric = RetrievalRecallMetric(**kwargs)
    samples = []
    for i, group in enumerate(caption_groups):
        sample = dict(image_embedding=torch.tensor(images[i]),
                      caption_embeddings=torch.tensor(group))
        if backbone is not None:
            sample['backbone_image_embedding'] = torch.tensor(backbone[i])
        samples.append(sample)
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def test_retrieval_metric_hand_made():
    """Images at 0, 90, 180 degrees; captions (owner) at 10 (0), 100 (0), 75 (1), 170 (2),
    95 (2), with magnitudes that normalisation must remove. Image->text ranks of the best own
    caption: 0, 2 (95 and 100 beat 75 for the 90-degree image), 0. Text->image ranks: 0, 2, 0, 0,
    1. With a backbone embedding of image 1 at 75 degrees (the others unchanged) the ensemble
    ranks caption 75 first for image 1; the text->image ranks stay the same."""
    images = [angle(0), [0.0, 3.0], [-0.5, 0.0]]
    groups = [[angle(10), [2 * x for x in angle(100)]], [angle(75)], [angle(170), angle(95)]]
    plain = evaluate_retrieval(images, groups, topk=(1, 2, 3))  # approx: float division only
    assert plain == pytest.approx({
        'retrieval/img2txt_R@1': 200 / 3, 'retrieval/img2txt_R@2': 200 / 3,
        'retrieval/img2txt_R@3': 100.0, 'retrieval/txt2img_R@1': 60.0,
        'retrieval/txt2img_R@2': 80.0, 'retrieval/txt2img_R@3': 100.0,
        'retrieval/mean_R': (200 / 3 * 2 + 100 + 60 + 80 + 100) / 6})
    backbone = [angle(0), angle(75), angle(180)]
    ensemble = evaluate_retrieval(images, groups, backbone, topk=(1, 2, 3))
    assert ensemble['retrieval/img2txt_R@1'] == pytest.approx(100.0)
    assert [ensemble[f'retrieval/txt2img_R@{k}'] for k in (1, 2, 3)] == \
        pytest.approx([60.0, 80.0, 100.0])


def test_retrieval_metric_matches_sorting_reference_in_chunks():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(7, 6)).astype(np.float32)
    backbone = rng.normal(size=(7, 6)).astype(np.float32)
    counts = [1, 3, 2, 5, 1, 2, 4]
    # Captions near their image, so recalls are neither 0 nor 100.
    groups = [(images[i] + 1.5 * rng.normal(size=(n, 6))).astype(np.float32)
              for i, n in enumerate(counts)]
    owner = [i for i, n in enumerate(counts) for _ in range(n)]
    for bb in (None, backbone):
        expected = reference_recalls(images, np.concatenate(groups), owner, bb, ks=(1, 2, 5))
        got = evaluate_retrieval(images, groups, bb, topk=(1, 2, 5), chunk_size=3)
        for key, value in expected.items():
            # Percentages of counts: equal up to float division.
            assert got[f'retrieval/{key}'] == pytest.approx(value), (key, bb is None)
        assert 0 < got['retrieval/img2txt_R@1'] < 100


def test_retrieval_metric_names_missing_fields():
    from projects.XDecoder.xdecoder.retrieval_metric import RetrievalRecallMetric
    with pytest.raises(KeyError, match='gt_caption'):
        RetrievalRecallMetric().process({}, [dict(image_embedding=torch.zeros(4))])


@pytest.mark.parametrize('config,folder,split_file', [
    ('xdecoder-tiny_zeroshot_open-vocab-ref-seg_refcoco.py', 'refcoco', 'refs(unc).p'),
    ('xdecoder-tiny_zeroshot_open-vocab-ref-seg_refcoco+.py', 'refcoco+', 'refs(unc).p'),
    ('xdecoder-tiny_zeroshot_open-vocab-ref-seg_refcocog-google.py', 'refcocog',
     'refs(google).p'),
])
def test_other_referring_configs(refcocog_root, synthetic_checkpoint, tmp_path, config, folder,
                                 split_file):
    """The RefCOCO / RefCOCO+ / RefCOCOg-google configs read their own files (the same tiny
    annotations placed under each config's names) and give the recomputed cIoU."""
    root = tmp_path / 'coco'
    shutil.copytree(refcocog_root, root)
    (root / folder).mkdir(exist_ok=True)
    shutil.copy(refcocog_root / 'refcocog' / 'instances.json', root / folder / 'instances.json')
    shutil.copy(refcocog_root / 'refcocog' / 'refs(umd).p', root / folder / split_file)
    metrics, predictions = run_test_tool(config, synthetic_checkpoint, tmp_path,
                                         f'test_dataloader.dataset.data_root={root}',
                                         'test_dataloader.dataset.pipeline.1.scale=64')
    ciou, _, inter = reference_refseg(refcocog_root, predictions)
    assert inter > 0
    # RefSegMetric divides in float32 (ulp 7.6e-6 at 100); the reference in float64.
    assert float(metrics['cIoU']) == pytest.approx(ciou, abs=1e-4)
