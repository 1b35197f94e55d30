"""Instance, panoptic and COCO semantic segmentation end to end through tools/test.py, on tiny
COCO and ADE20K folders in the real formats (COCO jsons with RLE masks, panoptic PNGs with
RGB-encoded segment ids, the ADE20K jsons as mmdet's ade20k2coco.py writes them), with the parity
sample's weights.

Random weights predict arbitrary masks, so instance and panoptic ground truth is written from
the model's own predictions (computed first in-process, through the config's own pipeline) and
then altered so that the metric has a value known by construction, neither 0 nor 100. The
tools/test.py run must predict exactly the same, and its metric must equal that value.
"""
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.runner import Runner
from PIL import Image
from xdecoder_test_utils import CONFIGS, ROOT, build_model, memoize_network, smooth_image

sys.path.insert(0, str(ROOT / 'tools'))
import test as test_tool  # noqa: E402

from runtime import config_from_args  # noqa: E402

from projects.XDecoder.xdecoder.text_encoder import TextEncoder, clean_class_name  # noqa: E402

INSTANCE_OFFSET = 1000  # mmdet's panoptic encoding: label + instance_id * INSTANCE_OFFSET
# Short side 32 and few images/classes keep each run to seconds; the rest is the real config.
FAST = ['test_dataloader.dataset.pipeline.1.scale=32', 'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False']
SIZES = ((48, 64), (64, 44))

# Class subsets, things first and each in its json's category order. All datasets share two
# vocabularies (COCO's 'sky-other-merged' / 'grass-merged' clean to ADE's 'sky' / 'grass'), so
# text embeddings are computed twice in all (see `shared_class_embeddings`).
THINGS = ['person', 'car', 'bus']
COCO_STUFF, ADE_STUFF = ['sky-other-merged', 'grass-merged'], ['sky', 'grass']
COCO_IDS = {'person': 1, 'car': 3, 'bus': 6, 'sky-other-merged': 187, 'grass-merged': 193}


# ADE20K: mmdet's converter numbers the panoptic categories things-first (0..99, then stuff
# 100..149) under mmdet's full names, and the instance categories by their ADE-150 index.
def ade_panoptic_categories():
    from mmdet.datasets.ade20k import ADE20KPanopticDataset
    things = ADE20KPanopticDataset.METAINFO['thing_classes']
    return [dict(id=i, name=name, isthing=int(name in things))
            for i, name in enumerate(ADE20KPanopticDataset.METAINFO['classes'])]


def ade_instance_categories():
    from mmdet.datasets.ade20k import ADE20KInstanceDataset, ADE20KSegDataset
    ade150 = [n.strip() for n in ADE20KSegDataset.METAINFO['classes']]
    return [dict(id=ade150.index(name), name=name)
            for name in ADE20KInstanceDataset.METAINFO['classes']]


# ----------------------------------------------------------------------------- writing data
def write_images(image_dir: Path, names, seed=0):
    image_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = []
    for (image_id, name), (h, w) in zip(names, SIZES):
        Image.fromarray(smooth_image(rng, h, w)).save(image_dir / name, quality=95)
        images.append(dict(id=image_id, file_name=name, height=h, width=w))
    return images


def rle(mask):
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    encoded['counts'] = encoded['counts'].decode()
    return encoded


def bbox(mask):
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
            int(ys.max() - ys.min() + 1)]


def write_instances(json_path: Path, images, categories, annotations_per_image):
    """A COCO instances json; ``annotations_per_image``: per image, [(category_id, mask)]."""
    annotations = []
    for image, anns in zip(images, annotations_per_image):
        for category_id, mask in anns:
            annotations.append(dict(id=len(annotations) + 1, image_id=image['id'],
                                    category_id=category_id, segmentation=rle(mask),
                                    area=int(mask.sum()), bbox=bbox(mask), iscrowd=0))
    json_path.write_text(json.dumps(dict(images=images, annotations=annotations,
                                         categories=categories)))


def ids_to_rgb(ids):
    """COCO panoptic PNG encoding: id = R + 256 * G + 256**2 * B."""
    return np.stack([ids % 256, ids // 256 % 256, ids // 256 ** 2], -1).astype(np.uint8)


def write_panoptic(json_path: Path, png_dir: Path, images, categories, segments_per_image):
    """A COCO panoptic json + PNGs; ``segments_per_image``: per image, [(category_id, mask)]
    (disjoint masks; uncovered pixels are void)."""
    png_dir.mkdir(parents=True, exist_ok=True)
    annotations = []
    for image, segments in zip(images, segments_per_image):
        ids = np.zeros((image['height'], image['width']), np.int64)
        infos = []
        for k, (category_id, mask) in enumerate(segments):
            # Ids that use all three channels, so a wrong decoding cannot go unnoticed.
            segment_id = 0x0A0B0C + k * 0x030201
            ids[mask] = segment_id
            infos.append(dict(id=segment_id, category_id=category_id, iscrowd=0,
                              area=int(mask.sum()), bbox=bbox(mask)))
        png_name = Path(image['file_name']).with_suffix('.png').name
        Image.fromarray(ids_to_rgb(ids)).save(png_dir / png_name)
        annotations.append(dict(image_id=image['id'], file_name=png_name, segments_info=infos))
    json_path.write_text(json.dumps(dict(images=images, annotations=annotations,
                                         categories=categories)))


def designed_layout(h, w, thing_ids, stuff_ids):
    """Two stuff halves with two things on them and a void strip, as [(category_id, mask)]."""
    rows, cols = np.mgrid[:h, :w]
    first, second = np.zeros((h, w), bool), np.zeros((h, w), bool)
    first[rows < h // 2], second[rows >= h // 2] = True, True
    thing_a = (rows >= h // 4) & (rows < 3 * h // 4) & (cols >= w // 8) & (cols < 3 * w // 8)
    thing_b = (rows >= h // 2) & (rows < 7 * h // 8) & (cols >= 5 * w // 8) & (cols < 7 * w // 8)
    void = (rows < 4) & (cols < w // 4)
    first &= ~thing_a & ~thing_b & ~void
    second &= ~thing_a & ~thing_b & ~void
    return [(stuff_ids[0], first), (stuff_ids[1], second), (thing_ids[0], thing_a),
            (thing_ids[1], thing_b)]


def write_coco(root: Path) -> Path:
    """data/coco in the official layout (instances, panoptic json + PNGs)."""
    coco = root / 'coco'
    images = write_images(coco / 'val2017', [(i, f'{i:012d}.jpg') for i in (139, 285)])
    (coco / 'annotations').mkdir()
    layouts = [designed_layout(img['height'], img['width'], [COCO_IDS[n] for n in THINGS],
                               [COCO_IDS[n] for n in COCO_STUFF]) for img in images]
    write_instances(coco / 'annotations/instances_val2017.json', images,
                    [dict(id=COCO_IDS[n], name=n, supercategory='thing') for n in THINGS],
                    [layout[2:] for layout in layouts])  # the two things
    write_panoptic(coco / 'annotations/panoptic_val2017.json',
                   coco / 'annotations/panoptic_val2017', images,
                   [dict(id=COCO_IDS[n], name=n, isthing=int(n in THINGS))
                    for n in THINGS + COCO_STUFF], layouts)
    return coco


def write_ade(root: Path) -> Path:
    """data/ade/ADEChallengeData2016 with mmdet's instance and panoptic jsons."""
    ade = root / 'ade' / 'ADEChallengeData2016'
    names = [f'ADE_val_{i:08d}' for i in (1, 2)]
    # mmdet's converter uses the file stem as image id.
    images = write_images(ade / 'images/validation', [(n, f'{n}.jpg') for n in names], seed=1)
    pan_ids = {c['name']: c['id'] for c in ade_panoptic_categories()}
    ins_ids = {c['name']: c['id'] for c in ade_instance_categories()}
    layouts = [designed_layout(img['height'], img['width'],
                               [pan_ids[n] for n in THINGS],
                               [pan_ids[n] for n in ADE_STUFF]) for img in images]
    write_panoptic(ade / 'ade20k_panoptic_val.json', ade / 'ade20k_panoptic_val', images,
                   ade_panoptic_categories(), layouts)
    write_instances(ade / 'ade20k_instance_val.json', images, ade_instance_categories(),
                    [[(ins_ids['person'], layout[2][1])] for layout in layouts])
    return ade


# ----------------------------------------------------------------------------- running
@pytest.fixture(scope='module', autouse=True)
def shared_class_embeddings():
    """Compute each vocabulary's text embeddings once for all models built here.

    Every model in this module (the predictor and each tools/test.py run) holds the parity
    weights, and class embeddings depend only on the names and the text-encoder weights, so
    sharing them changes no value; it saves the ~5 s each vocabulary costs on CPU.
    """
    computed, checksums = {}, {}
    original = TextEncoder.class_embeddings

    def class_embeddings(self, names):
        fingerprint = self._weights_fingerprint()  # changes when the weights do
        if fingerprint not in checksums:
            checksums[fingerprint] = sum(float(p.double().sum()) for p in self.parameters())
        key = (tuple(clean_class_name(n) for n in names), checksums[fingerprint])
        if key not in computed:
            computed[key] = original(self, names)
        return computed[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TextEncoder, 'class_embeddings', class_embeddings)
        yield


@pytest.fixture(scope='module')
def predictor(synthetic_state_dict):
    """The model with the parity weights, to predict before the ground truth is written.

    Its network pass is kept per input image: the instance and panoptic tests of a dataset read
    the same images through the same pipeline, and only post-process differently.
    """
    model = build_model()
    model.load_state_dict(synthetic_state_dict)
    return memoize_network(model)


def predict(model, config, options, vocabulary=None):
    """What tools/test.py will predict: the config's test dataloader and task, in-process.

    With ``vocabulary=(thing_names, stuff_names)`` the model gets that vocabulary in the
    documented form (the things in label order as 'text', then the stuff as 'stuff_text')
    instead of what the dataset passes, to check that the dataset passes exactly that.
    """
    cfg = config_from_args(test_tool.parse_args([config, 'unused.pt', '--cfg-options', *options]))
    model.task = cfg.model.task
    model.test_cfg = {**model.DEFAULT_TEST_CFG, **cfg.model.get('test_cfg', {})}
    predictions = []
    with torch.no_grad():
        for batch in Runner.build_dataloader(cfg.test_dataloader):
            if vocabulary is not None:
                things, stuff = vocabulary
                batch['data_samples'] = [
                    DetDataSample(metainfo={
                        **{k: v for k, v in s.metainfo.items() if k not in ('text', 'stuff_text')},
                        'text': things, **({'stuff_text': stuff} if stuff else {})})
                    for s in batch['data_samples']]
            predictions += model.test_step(batch)
    return predictions


def run_test_tool(config, checkpoint, work_dir: Path, options):
    out = work_dir / 'predictions.pkl'
    metrics = test_tool.main([config, str(checkpoint), '--work-dir', str(work_dir), '--out',
                              str(out), '--cfg-options', *options])
    return metrics, pickle.loads(out.read_bytes())


# ----------------------------------------------------------------------------- instance
def instance_ground_truth(predictions, category_ids):
    """Ground truth with a known mask AP, and that AP.

    For the first two labels the highest-scoring prediction over all images becomes a ground
    truth instance (AP = 1: it is matched, IoU 1, before any false positive of its class). The
    third label gets one instance no prediction of that label overlaps with IoU >= 0.5 (AP = 0).
    mAP over the classes with ground truth = 2/3 at every IoU threshold.
    """
    per_image = [[] for _ in predictions]
    flat = [(float(s), i, j, int(label)) for i, p in enumerate(predictions)
            for j, (s, label) in enumerate(zip(p.pred_instances.scores, p.pred_instances.labels))]
    for label in (0, 1):
        _, i, j, _ = max(f for f in flat if f[3] == label)
        mask = predictions[i].pred_instances.masks[j].numpy()
        assert mask.any(), 'the top prediction of a class has an empty mask; change the data'
        per_image[i].append((category_ids[label], mask))
    masks = predictions[0].pred_instances.masks.numpy()
    others = masks[predictions[0].pred_instances.labels.numpy() == 2]
    h, w = masks.shape[1:]
    for y, x in np.ndindex(h // 4, w // 4):  # a 4x4 square nothing of label 2 covers
        square = np.zeros((h, w), bool)
        square[4 * y:4 * y + 4, 4 * x:4 * x + 4] = True
        inter = (others & square).sum((1, 2))
        union = (others | square).sum((1, 2))
        if (inter / union < 0.5).all():
            per_image[0].append((category_ids[2], square))
            return per_image, round(2 / 3, 3)
    raise AssertionError('no free square for the unmatched instance; change the data')


def assert_same_instances(dumped, predicted):
    for d, p in zip(dumped, predicted, strict=True):
        p = p.pred_instances
        assert torch.equal(d['pred_instances']['labels'], p.labels)
        # The tool runs the same fp32 computation in this process (same inputs, shapes and
        # threads): identical in practice; allclose's defaults (rel 1e-5) absorb nothing else.
        assert torch.allclose(d['pred_instances']['scores'], p.scores)
        # mmdet dumps masks as RLE, at the original image size.
        masks = mask_utils.decode(d['pred_instances']['masks']).transpose(2, 0, 1)
        assert np.array_equal(masks.astype(bool), p.masks.numpy())


@pytest.mark.parametrize('dataset', ['coco', 'ade20k'])
def test_instance(dataset, predictor, synthetic_checkpoint, tmp_path):
    config = str(CONFIGS / f'xdecoder-tiny_zeroshot_open-vocab-instance_{dataset}.py')
    if dataset == 'coco':
        root = write_coco(tmp_path)
        ann_file = root / 'annotations/instances_val2017.json'
    else:
        root = write_ade(tmp_path)
        ann_file = root / 'ade20k_instance_val.json'
    classes = THINGS
    options = [f'test_dataloader.dataset.data_root={root}', f'test_evaluator.ann_file={ann_file}',
               f'test_dataloader.dataset.metainfo.classes=[{",".join(classes)}]', *FAST]
    predicted = predict(predictor, config, options)
    # The vocabulary the dataset passes is the class subset, in label order.
    for p, e in zip(predicted, predict(predictor, config, options, vocabulary=(classes, []))):
        assert torch.equal(p.pred_instances.labels, e.pred_instances.labels)
        assert torch.equal(p.pred_instances.masks, e.pred_instances.masks)

    # Labels index the subset, which the metric maps to the json's category ids by name.
    categories = json.loads(ann_file.read_text())['categories']
    category_ids = [next(c['id'] for c in categories if c['name'] == n) for n in classes]
    ground_truth, expected_map = instance_ground_truth(predicted, category_ids)
    images = json.loads(ann_file.read_text())['images']
    write_instances(ann_file, images, categories, ground_truth)

    metrics, dumped = run_test_tool(config, synthetic_checkpoint, tmp_path / 'work', options)
    assert_same_instances(dumped, predicted)
    assert dumped[0]['pred_instances']['masks'][0]['size'] == list(SIZES[0])
    assert metrics['coco/segm_mAP'] == expected_map
    assert metrics['coco/segm_mAP_50'] == expected_map


# ----------------------------------------------------------------------------- panoptic
def panoptic_ground_truth(pan_maps, num_classes, num_things, category_ids):
    """Ground truth = the predicted segments, with one segment given another class of its kind.

    Returns per image [(category_id, mask)] and the expected PQ, PQ_th, PQ_st (in %): every
    unchanged segment is a true positive with IoU 1; the relabelled one is a false positive of
    its predicted class and a false negative of its new class.
    """
    segments = []
    for pan in pan_maps:
        values = [v for v in np.unique(pan) if v % INSTANCE_OFFSET != num_classes]
        segments.append([(int(v % INSTANCE_OFFSET), pan == v) for v in values])
    counts = np.bincount([label for image in segments for label, _ in image],
                         minlength=num_classes)
    # Relabel one segment whose class has another segment, so that the class keeps a TP.
    candidates = [(i, k) for i, image in enumerate(segments)
                  for k, (label, _) in enumerate(image) if counts[label] > 1]
    assert candidates, 'no class with two predicted segments; change the data'
    image, k = candidates[0]
    old = segments[image][k][0]
    kind = range(num_things) if old < num_things else range(num_things, num_classes)
    new = next(c for c in kind if c != old)
    segments[image][k] = (new, segments[image][k][1])
    tp, fp, fn = counts.astype(float), np.zeros(num_classes), np.zeros(num_classes)
    tp[old] -= 1
    fp[old] += 1
    fn[new] += 1
    present = tp + fp + fn > 0
    pq = np.where(present, tp / np.maximum(tp + 0.5 * fp + 0.5 * fn, 1e-9), 0)
    is_thing = np.arange(num_classes) < num_things

    def mean(selected):
        return 100 * pq[selected & present].mean()

    ground_truth = [[(category_ids[label], mask) for label, mask in image] for image in segments]
    return ground_truth, (mean(present), mean(is_thing), mean(~is_thing))


@pytest.mark.parametrize('dataset', ['coco', 'ade20k'])
def test_panoptic(dataset, predictor, synthetic_checkpoint, tmp_path):
    config = str(CONFIGS / f'xdecoder-tiny_zeroshot_open-vocab-panoptic_{dataset}.py')
    if dataset == 'coco':
        root = write_coco(tmp_path)
        ann_file, seg_dir = (root / 'annotations/panoptic_val2017.json',
                             root / 'annotations/panoptic_val2017')
        stuff = COCO_STUFF
    else:
        root = write_ade(tmp_path)
        ann_file, seg_dir = root / 'ade20k_panoptic_val.json', root / 'ade20k_panoptic_val'
        stuff = ADE_STUFF
    things = THINGS
    meta = 'test_dataloader.dataset.metainfo'
    options = [f'test_dataloader.dataset.data_root={root}', f'test_evaluator.ann_file={ann_file}',
               f'test_evaluator.seg_prefix={seg_dir}',
               f'{meta}.classes=[{",".join(things + stuff)}]',
               f'{meta}.thing_classes=[{",".join(things)}]',
               f'{meta}.stuff_classes=[{",".join(stuff)}]', *FAST]
    predicted = predict(predictor, config, options)
    # The vocabulary the dataset passes is things + stuff in label order, things known as such.
    explicit = predict(predictor, config, options, vocabulary=(things, stuff))
    for p, e in zip(predicted, explicit):
        assert torch.equal(p.pred_panoptic_seg.sem_seg, e.pred_panoptic_seg.sem_seg)
    pan_maps = [p.pred_panoptic_seg.sem_seg[0].numpy() for p in predicted]
    assert pan_maps[0].shape == SIZES[0]
    labels = np.unique(np.concatenate([m.ravel() for m in pan_maps]) % INSTANCE_OFFSET)
    assert set(labels) - {len(things + stuff)}, 'no segment predicted; change the data'

    categories = json.loads(ann_file.read_text())['categories']
    category_ids = [next(c['id'] for c in categories if c['name'] == n) for n in things + stuff]
    ground_truth, expected = panoptic_ground_truth(pan_maps, len(things + stuff), len(things),
                                                   category_ids)
    images = json.loads(ann_file.read_text())['images']
    write_panoptic(ann_file, seg_dir, images, categories, ground_truth)

    metrics, dumped = run_test_tool(config, synthetic_checkpoint, tmp_path / 'work', options)
    for d, pan in zip(dumped, pan_maps, strict=True):
        # CocoPanopticMetric rewrites void (label K) to 0 in place before the dump sees the map.
        void = pan % INSTANCE_OFFSET == len(things + stuff)
        dumped_map = d['pred_panoptic_seg']['sem_seg'][0].numpy()
        assert np.array_equal(dumped_map, np.where(void, 0, pan))
    got = [metrics[f'coco_panoptic/{k}'] for k in ('PQ', 'PQ_th', 'PQ_st')]
    # Both from integer TP/FP/FN counts with IoU exactly 1 (the segments are the predictions):
    # equal up to float division; 1e-3 is the metric's printed precision.
    assert got == pytest.approx(expected, abs=1e-3)
    assert 0 < got[0] < 100


# ----------------------------------------------------------------------------- semantic
def test_semseg_coco_from_converted_panoptic(synthetic_checkpoint, tmp_path):
    coco = write_coco(tmp_path)
    converter = ROOT / 'tools/dataset_converters/coco_panoptic_to_semantic.py'
    subprocess.run([sys.executable, str(converter), str(coco)], check=True, capture_output=True,
                   timeout=120)
    semseg_dir = coco / 'annotations/panoptic_semseg_val2017'
    # The converter's labels: index of the category in the json (things, then stuff); void 255.
    names = THINGS + COCO_STUFF
    ids = [COCO_IDS[n] for n in names]
    for image in json.loads((coco / 'annotations/instances_val2017.json').read_text())['images']:
        expected = np.full((image['height'], image['width']), 255)
        for category_id, mask in designed_layout(image['height'], image['width'], ids[:3],
                                                 ids[3:]):
            expected[mask] = ids.index(category_id)
        png = semseg_dir / image['file_name'].replace('.jpg', '.png')
        assert np.array_equal(np.asarray(Image.open(png)), expected)

    config = str(CONFIGS / 'xdecoder-tiny_zeroshot_open-vocab-semseg_coco.py')
    metrics, dumped = run_test_tool(
        config, synthetic_checkpoint, tmp_path / 'work',
        [f'test_dataloader.dataset.data_root={coco}',
         f'test_dataloader.dataset.metainfo.classes=[{",".join(names)}]', *FAST])
    inter, union = np.zeros(len(names)), np.zeros(len(names))
    for pred in dumped:
        name = Path(pred['img_path']).with_suffix('.png').name
        gt = np.asarray(Image.open(semseg_dir / name)).astype(int)
        label = pred['pred_sem_seg']['sem_seg'][0].numpy()
        valid = gt != 255
        for c in range(len(names)):
            inter[c] += ((label == c) & (gt == c) & valid).sum()
            union[c] += (((label == c) | (gt == c)) & valid).sum()
    present = union > 0
    assert metrics['mIoU'] == round(100 * float(np.mean(inter[present] / union[present])), 2)


def test_missing_dataset_names_the_layout(synthetic_checkpoint, tmp_path):
    config = str(CONFIGS / 'xdecoder-tiny_zeroshot_open-vocab-panoptic_coco.py')
    with pytest.raises(FileNotFoundError,
                       match=r'nowhere/annotations/panoptic_val2017.json.*does not exist.*README'):
        test_tool.main([config, str(synthetic_checkpoint), '--work-dir', str(tmp_path),
                        '--cfg-options', f'test_dataloader.dataset.data_root={tmp_path}/nowhere'])


def test_missing_metric_annotations_name_the_option(synthetic_checkpoint, tmp_path):
    coco = write_coco(tmp_path)
    config = str(CONFIGS / 'xdecoder-tiny_zeroshot_open-vocab-instance_coco.py')
    with pytest.raises(FileNotFoundError, match=r'test_evaluator.ann_file=.*nowhere.json'):
        test_tool.main([config, str(synthetic_checkpoint), '--work-dir', str(tmp_path),
                        '--cfg-options', f'test_dataloader.dataset.data_root={coco}',
                        f'test_evaluator.ann_file={tmp_path}/nowhere.json'])


def test_class_lists_follow_mmdet():
    """COCO semantic: mmdet's 133 panoptic classes, the order the converter labels in. ADE20K
    panoptic: the official wording, the first synonym of each of mmdet's names, in mmdet's order
    (labels index mmdet's classes)."""
    from mmdet.datasets import ADE20KPanopticDataset, CocoPanopticDataset
    from mmengine.config import Config
    datasets = CONFIGS / '_base_' / 'datasets'
    coco = Config.fromfile(datasets / 'coco_semantic.py').test_dataloader.dataset
    assert list(coco.metainfo['classes']) == list(CocoPanopticDataset.METAINFO['classes'])
    ade = Config.fromfile(datasets / 'ade20k_panoptic.py').test_dataloader.dataset
    for key in ('thing_classes', 'stuff_classes'):
        mmdet_names = ADE20KPanopticDataset.METAINFO[key]
        assert list(ade.metainfo[key]) == [n.split(',')[0] for n in mmdet_names]
