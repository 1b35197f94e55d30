"""Training data of the joint pre-training and of referring fine-tuning, on tiny files written in
the official downloads' formats: datasets, transforms, converters and the errors bad input gives."""
import json
import pickle
import random
import sys

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from PIL import Image
from xdecoder_test_utils import ROOT

sys.path.insert(0, str(ROOT / 'tools' / 'dataset_converters'))
import coco_grounding  # noqa: E402
import filter_coco_vlp  # noqa: E402

import projects.XDecoder.xdecoder  # noqa: E402, F401  (registers datasets and transforms)
from projects.XDecoder.xdecoder.errors import DatasetError, InputNotFoundError  # noqa: E402
from projects.XDecoder.xdecoder.vl_transforms import PackXDecoderInputs  # noqa: E402

DATASET_CONFIGS = ROOT / 'projects' / 'XDecoder' / 'configs' / '_base_' / 'datasets'
H, W = 60, 80
# Tiny panoptic categories: two things, one stuff (a COCO-style suffixed name).
CATEGORIES = [dict(id=1, name='person', isthing=1), dict(id=2, name='car', isthing=1),
              dict(id=3, name='wall-other-merged', isthing=0)]
METAINFO = dict(classes=('person', 'car', 'wall-other-merged'), thing_classes=('person', 'car'),
                stuff_classes=('wall-other-merged', ))


def rect(y0, y1, x0, x1):
    mask = np.zeros((H, W), np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def rle(mask):
    encoded = mask_utils.encode(np.asfortranarray(mask))
    encoded['counts'] = encoded['counts'].decode()
    return encoded


def write_panoptic(root, refs_for_image1=True):
    """Images 1-4: 1 has a referring expression, 2 none, 3 no caption, 4 no segment."""
    (root / 'img').mkdir()
    (root / 'pan').mkdir()
    rng = np.random.default_rng(0)
    segments = {  # image id -> [(segment id, category id, mask)]
        1: [(11, 1, rect(5, 30, 10, 40)), (12, 2, rect(35, 55, 50, 75))],
        2: [(21, 1, rect(10, 50, 5, 30))],
        3: [(31, 2, rect(0, 20, 0, 20))],
        4: [],
    }
    images, annotations = [], []
    for img_id, segs in segments.items():
        name = f'{img_id:012d}'
        Image.fromarray(rng.integers(0, 255, (H, W, 3), np.uint8)).save(root / f'img/{name}.jpg')
        ids = np.zeros((H, W), np.int64)
        infos = []
        if segs:  # the stuff segment covers what no thing covers
            stuff = np.ones((H, W), np.uint8)
            for _, _, m in segs:
                stuff &= 1 - m
            segs = segs + [(img_id * 10 + 9, 3, stuff)]
        for seg_id, cat_id, m in segs:
            ids[m > 0] = seg_id
            ys, xs = np.nonzero(m)
            infos.append(dict(id=seg_id, category_id=cat_id, iscrowd=0, area=int(m.sum()),
                              bbox=[int(xs.min()), int(ys.min()), int(np.ptp(xs) + 1),
                                    int(np.ptp(ys) + 1)]))
        rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
        Image.fromarray(rgb).save(root / f'pan/{name}.png')
        images.append(dict(id=img_id, file_name=f'{name}.jpg', height=H, width=W))
        annotations.append(dict(image_id=img_id, file_name=f'{name}.png', segments_info=infos))
    (root / 'panoptic.json').write_text(json.dumps(
        dict(images=images, annotations=annotations, categories=CATEGORIES)))
    captions = [dict(id=i, image_id=img_id, caption=f'caption {i}')
                for i, img_id in enumerate([1, 1, 2, 4])]
    (root / 'captions.json').write_text(json.dumps(dict(images=images, annotations=captions)))
    # Image 1: the person (segment 11) referred to by two sentences, as RLE; the car by one,
    # as a polygon.
    grounding = [dict(image_id=1, ref_id=7, segmentation=rle(segments[1][0][2]),
                      sentences=[dict(raw='The man on the left'), dict(raw='a person')]),
                 dict(image_id=1, ref_id=8, segmentation=[[50, 35, 75, 35, 75, 55, 50, 55]],
                      sentences=[dict(raw='red car')])]
    (root / 'grounding.json').write_text(
        json.dumps(dict(annotations=grounding if refs_for_image1 else [])))
    return segments


def panoptic_dataset(root, pipeline=(), **kwargs):
    from mmdet.registry import DATASETS
    init_default_scope('mmdet')
    cfg = dict(type='CocoPanopticVLDataset', data_root=str(root), ann_file='panoptic.json',
               data_prefix=dict(img='img/', seg='pan/'), caption_file='captions.json',
               grounding_file='grounding.json', return_classes=True, metainfo=METAINFO,
               pipeline=list(pipeline))
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def lsj_pipeline(size=64):
    """The training config's pipeline, with the jitter's target scaled to the tiny images."""
    pipeline = Config.fromfile(
        str(DATASET_CONFIGS / 'coco_panoptic_vl_train.py')).segmentation_train_pipeline
    for step in pipeline:
        if step['type'] == 'RandomResize':
            step['scale'] = (size, size)
        if step['type'] == 'RandomCrop':
            step['crop_size'] = (size, size)
    return pipeline


def test_panoptic_vl_fields_captions_and_skips(tmp_path, capsys):
    write_panoptic(tmp_path)
    # A crowd of cars in image 2: a panoptic segment, but no 'class' phrase (no single referent).
    content = json.loads((tmp_path / 'panoptic.json').read_text())
    content['annotations'][1]['segments_info'].append(
        dict(id=22, category_id=2, iscrowd=1, area=4, bbox=[0, 0, 2, 2]))
    (tmp_path / 'panoptic.json').write_text(json.dumps(content))
    # A logger of this test's own: it becomes mmengine's current one and writes to the captured
    # stdout (an earlier test's runner may have made one that writes elsewhere).
    MMLogger.get_instance(f'test_panoptic_vl_{tmp_path.name}')
    dataset = panoptic_dataset(tmp_path)
    assert [d['img_id'] for d in dataset] == [1, 2]  # 3: no caption, 4: no segment
    assert 'skipped 1 images without panoptic segments and 1 images without captions' in \
        capsys.readouterr().out
    first, second = dataset[0], dataset[1]
    assert first['gt_caption'] == ['caption 0', 'caption 1']
    assert first['grounding_task'] == 'text'
    assert first['grounding_text'] == ['the man on the left', 'a person', 'red car']
    assert first['grounding_groups'] == [0, 0, 1]
    assert first['text'] == ('person', 'car') and first['stuff_text'] == ('wall-other-merged', )
    # Fall-back: the class names of the panoptic segments (suffixes dropped), grouped by class.
    assert second['grounding_task'] == 'class'
    assert second['grounding_text'] == ['person', 'wall'] and second['grounding_groups'] == [0, 2]
    with pytest.raises(DatasetError, match='1 images of .* have no caption'):
        panoptic_dataset(tmp_path, missing_caption='error')


@pytest.mark.parametrize('seed', range(4))
def test_grounding_masks_follow_lsj(tmp_path, seed):
    """A phrase's mask equal to a thing's panoptic segment stays equal to that instance's mask
    through mmdet's resize, crop and flip; stuff phrases stay equal to the semantic map."""
    write_panoptic(tmp_path)
    dataset = panoptic_dataset(tmp_path, lsj_pipeline())
    random.seed(seed)
    np.random.seed(seed)
    compared = 0
    for _ in range(3):
        sample = dataset[0]['data_samples']
        grounding, things = sample.gt_grounding, sample.gt_instances
        assert sample.metainfo['grounding_text'][0] == 'the man on the left'
        assert sample.metainfo['grounding_task'] == 'text'
        assert sample.metainfo['gt_caption'] == ['caption 0', 'caption 1']
        assert (things.labels >= 0).all()
        masks = grounding.masks.to_ndarray()
        assert masks.shape[1:] == tuple(sample.metainfo['img_shape'])
        person = things.masks.to_ndarray()[things.labels.numpy() == 0]
        phrase_ids = grounding.phrase_ids.tolist()
        # Both sentences of the person, or neither (a crop drops both rows with the instance).
        assert (0 in phrase_ids) == (1 in phrase_ids) == (len(person) == 1)
        for phrase in (0, 1):
            if phrase in phrase_ids:
                np.testing.assert_array_equal(masks[phrase_ids.index(phrase)], person[0])
                compared += 1
        sample = dataset[1]['data_samples']  # 'class' grounding
        phrase_ids = sample.gt_grounding.phrase_ids.tolist()
        masks = sample.gt_grounding.masks.to_ndarray()
        if 1 in phrase_ids:
            stuff = (sample.gt_sem_seg.sem_seg[0] == 2).numpy()
            np.testing.assert_array_equal(masks[phrase_ids.index(1)], stuff)
            compared += 1
        if 0 in phrase_ids:
            np.testing.assert_array_equal(masks[phrase_ids.index(0)],
                                          sample.gt_instances.masks.to_ndarray()[0])
            compared += 1
    assert compared > 0  # the crops left something to compare


def test_pack_without_grounding_rows():
    packed = PackXDecoderInputs()(dict(img=np.zeros((4, 5, 3), np.uint8), img_shape=(4, 5),
                                       gt_caption=['a cat']))
    sample = packed['data_samples']
    assert len(sample.gt_grounding) == 0 and sample.gt_grounding.masks.masks.shape == (0, 4, 5)
    assert sample.metainfo['gt_caption'] == ['a cat']


@pytest.mark.parametrize('metainfo, match', [
    (dict(METAINFO, classes=('person', 'person', 'wall-other-merged')), 'more than once'),
    (dict(METAINFO, thing_classes=()), '"thing_classes" is missing or empty'),
    (dict(METAINFO, classes=('person', 'bus', 'wall-other-merged')), r"\['bus'\] are not"),
])
def test_bad_class_names(tmp_path, metainfo, match):
    write_panoptic(tmp_path)
    with pytest.raises(DatasetError, match=match):
        panoptic_dataset(tmp_path, metainfo=metainfo)


def test_bad_panoptic_inputs(tmp_path):
    write_panoptic(tmp_path)
    content = json.loads((tmp_path / 'grounding.json').read_text())
    content['annotations'][1]['segmentation'] = []
    (tmp_path / 'grounding.json').write_text(json.dumps(content))
    with pytest.raises(DatasetError, match='ref_id=8 has no segmentation'):
        panoptic_dataset(tmp_path)
    (tmp_path / 'empty.json').write_text('')
    for key in ('ann_file', 'caption_file'):
        with pytest.raises(DatasetError, match='empty.json is empty'):
            panoptic_dataset(tmp_path, **{key: 'empty.json', 'grounding_file': None})
    (tmp_path / 'no_images.json').write_text(json.dumps(
        dict(images=[], annotations=[], categories=CATEGORIES)))
    with pytest.raises(DatasetError, match='lists no images'):
        panoptic_dataset(tmp_path, ann_file='no_images.json')


def write_pairs(root):
    (root / 'images').mkdir()
    for name in ('a.jpg', 'b.jpg'):
        Image.fromarray(np.full((30, 40, 3), 128, np.uint8)).save(root / 'images' / name)
    lines = [dict(image='a.jpg', caption='a grey square'), dict(image='b.jpg', caption='grey'),
             dict(image='a.jpg', caption='  flat colour ')]
    (root / 'pairs.jsonl').write_text('\n'.join(json.dumps(x) for x in lines) + '\n')


def image_text_dataset(root, ann_file, pipeline=(), **kwargs):
    from mmdet.registry import DATASETS
    init_default_scope('mmdet')
    return DATASETS.build(dict(type='ImageTextDataset', data_root=str(root), ann_file=ann_file,
                               data_prefix=dict(img_path='images/'), pipeline=list(pipeline),
                               **kwargs))


def test_image_text_jsonl_and_karpathy(tmp_path):
    write_pairs(tmp_path)
    pipeline = Config.fromfile(
        str(DATASET_CONFIGS / 'image_text_train.py')).image_text_train_pipeline
    dataset = image_text_dataset(tmp_path, 'pairs.jsonl', pipeline)
    assert len(dataset) == 2
    info = dataset.get_data_info(0)
    assert info['gt_caption'] == ['a grey square', 'flat colour'] and info['img_id'] == 'a.jpg'
    packed = dataset[0]
    assert packed['inputs'].shape == (3, 224, 224)
    assert packed['data_samples'].metainfo['gt_caption'] == ['a grey square', 'flat colour']
    (tmp_path / 'karpathy.json').write_text(json.dumps(
        [dict(image='b.jpg', caption=['one', 'two']), dict(image='a.jpg', caption='three')]))
    dataset = image_text_dataset(tmp_path, 'karpathy.json')
    assert [d['gt_caption'] for d in dataset] == [['one', 'two'], ['three']]


@pytest.mark.parametrize('content, match', [
    ('', 'has no entries'),
    ('{"image": "a.jpg", "caption": "x"}\n{"image": "b.jpg"\n', 'line 2 is not valid json'),
    ('{"image": "a.jpg", "caption": "x"}\n{"image": "b.jpg", "caption": " "}\n',
     'line 2: image b.jpg has a missing or empty caption'),
    ('{"image": "a.jpg"}\n', 'line 1: image a.jpg has a missing'),
    ('{"caption": "x"}\n', 'line 1 has no "image"'),
])
def test_bad_image_text_inputs(tmp_path, content, match):
    (tmp_path / 'bad.jsonl').write_text(content)
    with pytest.raises(DatasetError, match=match):
        image_text_dataset(tmp_path, 'bad.jsonl')


def test_missing_image_named(tmp_path):
    (tmp_path / 'pairs.jsonl').write_text('{"image": "gone.jpg", "caption": "x"}\n')
    dataset = image_text_dataset(tmp_path, 'pairs.jsonl')
    with pytest.raises(InputNotFoundError, match='images/gone.jpg'):
        dataset[0]
    with pytest.raises(InputNotFoundError, match='gone.jpg'):
        image_text_dataset(tmp_path, 'pairs.jsonl', check_images=True)


def write_refcocog(root):
    """RefCOCOg in the refer toolkit's download format: refs(umd).p and instances.json."""
    (root / 'refcocog').mkdir(parents=True)
    polygon_a = [[10.0, 10.0, 40.0, 10.0, 40.0, 40.0, 10.0, 40.0]]
    polygon_b = [[50.0, 5.0, 75.0, 5.0, 75.0, 30.0, 50.0, 30.0]]
    anns = [dict(id=101, image_id=1, category_id=1, segmentation=polygon_a, area=900,
                 bbox=[10, 10, 30, 30], iscrowd=0),
            dict(id=102, image_id=1, category_id=2, segmentation=polygon_b, area=625,
                 bbox=[50, 5, 25, 25], iscrowd=0),
            dict(id=103, image_id=2, category_id=1, segmentation=polygon_a, area=900,
                 bbox=[10, 10, 30, 30], iscrowd=0)]
    images = [dict(id=i, file_name=f'COCO_train2014_{i:012d}.jpg', height=H, width=W)
              for i in (1, 2)]
    (root / 'refcocog' / 'instances.json').write_text(json.dumps(
        dict(images=images, annotations=anns, categories=CATEGORIES[:2])))

    def sentences(*texts):
        return [dict(sent_id=i, raw=t, sent=t.lower(), tokens=t.lower().split())
                for i, t in enumerate(texts)]
    refs = [dict(ref_id=1, ann_id=101, image_id=1, split='train', category_id=1,
                 sentences=sentences('A man', 'The person standing')),
            dict(ref_id=2, ann_id=102, image_id=1, split='train', category_id=2,
                 sentences=sentences('a car')),
            dict(ref_id=3, ann_id=103, image_id=2, split='val', category_id=1,
                 sentences=sentences('a val man'))]
    with open(root / 'refcocog' / 'refs(umd).p', 'wb') as f:
        pickle.dump(refs, f)
    (root / 'train2014').mkdir()
    for image in images:
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(root / 'train2014' /
                                                            image['file_name'])
    return refs, anns


def test_coco_grounding_converter(tmp_path):
    refs, anns = write_refcocog(tmp_path)
    out = tmp_path / 'grounding_train2017.json'
    coco_grounding.main([str(tmp_path / 'refcocog'), str(out)])
    written = json.loads(out.read_text())['annotations']
    assert [a['ref_id'] for a in written] == [1, 2]  # train only
    assert written[0]['image_id'] == 1 and written[0]['segmentation'] == anns[0]['segmentation']
    assert written[0]['bbox'] == anns[0]['bbox']
    assert [s['raw'] for s in written[0]['sentences']] == ['A man', 'The person standing']
    with pytest.raises(SystemExit):  # no overwrite without --overwrite
        coco_grounding.main([str(tmp_path / 'refcocog'), str(out)])
    coco_grounding.main([str(tmp_path / 'refcocog'), str(out), '--overwrite'])
    # A ref whose object has no segmentation is named.
    instances = json.loads((tmp_path / 'refcocog' / 'instances.json').read_text())
    instances['annotations'][1]['segmentation'] = []
    (tmp_path / 'refcocog' / 'instances.json').write_text(json.dumps(instances))
    with pytest.raises(coco_grounding.ConversionError, match='ref_id=2'):
        coco_grounding.convert(str(tmp_path / 'refcocog'))


def test_filter_coco_vlp(tmp_path, capsys):
    write_refcocog(tmp_path)  # image 2 is RefCOCOg val
    ann_dir = tmp_path / 'annotations'
    ann_dir.mkdir()
    images = [dict(id=i, file_name=f'{i:012d}.jpg') for i in (1, 2, 3, 4)]
    (ann_dir / 'panoptic_train2017.json').write_text(json.dumps(dict(
        images=images, categories=[],
        annotations=[dict(image_id=i, segments_info=[]) for i in (1, 2, 3, 4)])))
    (ann_dir / 'captions_train2017.json').write_text(json.dumps(dict(
        images=images, annotations=[dict(id=i, image_id=i % 4 + 1, caption='c')
                                    for i in range(8)])))
    karpathy = tmp_path / 'coco_karpathy_test.json'  # image 3 is Karpathy test
    karpathy.write_text(json.dumps([dict(image='val2014/COCO_val2014_000000000003.jpg',
                                         caption=['x'])]))
    args = [str(ann_dir), '--refcocog-refs', str(tmp_path / 'refcocog' / 'refs(umd).p'),
            '--karpathy-test', str(karpathy)]
    filter_coco_vlp.main(args)
    out = capsys.readouterr().out
    assert '2 images to remove' in out and 'annotations 8 -> 4' in out
    for name in ('panoptic', 'captions'):
        content = json.loads(
            (ann_dir / f'{name}_train2017_filtrefgumdval_filtvlp.json').read_text())
        assert [img['id'] for img in content['images']] == [1, 4]
        assert {a['image_id'] for a in content['annotations']} == {1, 4}
    with pytest.raises(SystemExit):
        filter_coco_vlp.main(args)


def test_refcocog_train_pipeline(tmp_path):
    """Each sentence of each referred object is one phrase in `text`, with its object's mask at
    the same index of gt_instances.masks."""
    from mmdet.registry import DATASETS
    write_refcocog(tmp_path)
    cfg = Config.fromfile(str(DATASET_CONFIGS / 'refcocog_train.py'))
    init_default_scope('mmdet')
    dataset = DATASETS.build(dict(cfg.train_dataloader.dataset, data_root=str(tmp_path)))
    assert len(dataset) == 1  # image 2 holds only a val ref
    sample = dataset[0]['data_samples']
    texts = sample.metainfo['text']
    assert texts == ['a man', 'the person standing', 'a car']
    masks = sample.gt_instances.masks.to_ndarray()
    assert masks.shape == (3, 512, 683)  # short side 512
    boxes = [mask_utils.toBbox(mask_utils.encode(np.asfortranarray(m))) for m in masks]
    scale = 512 / H
    np.testing.assert_allclose(boxes[0], np.array([10, 10, 30, 30]) * scale, atol=scale + 1)
    np.testing.assert_array_equal(masks[0], masks[1])
    np.testing.assert_allclose(boxes[2], np.array([50, 5, 25, 25]) * scale, atol=scale + 1)


def test_training_dataset_configs(tmp_path):
    """The seg stream config builds on a tiny dataset and its full pipeline runs; every training
    config names its training data's README entry, and the streams use InfiniteSampler."""
    readme = (ROOT / 'README.md').read_text()
    for name, key in (('coco_panoptic_vl_train.py', 'segmentation_dataloader'),
                      ('image_text_train.py', 'image_text_dataloader')):
        cfg = Config.fromfile(str(DATASET_CONFIGS / name))
        assert cfg[key].sampler.type == 'InfiniteSampler'
    for config in sorted((DATASET_CONFIGS.parents[1]).glob('xdecoder-tiny_*train*.py')) + sorted(
            (DATASET_CONFIGS.parents[1]).glob('xdecoder-tiny_finetune*.py')):
        cfg = Config.fromfile(str(config))
        section = cfg.get('train_readme_section') or cfg.get('readme_section')
        assert section and f'**{section}**' in readme, config.name
    write_panoptic(tmp_path)
    loader = Config.fromfile(str(DATASET_CONFIGS / 'coco_panoptic_vl_train.py'))
    loader = loader.segmentation_dataloader
    assert loader.batch_size == 1
    dataset = panoptic_dataset(tmp_path, loader.dataset.pipeline)
    np.random.seed(0)
    sample = dataset[0]['data_samples']
    assert max(sample.metainfo['img_shape']) <= 1024
    assert sample.gt_sem_seg.sem_seg.shape[1:] == sample.metainfo['img_shape']
