"""Cityscapes instance segmentation end to end: a tiny folder in mmdet's Cityscapes layout (the
gtFine instance PNGs, the json from mmdet's own converter), tools/test.py with mmdet's
CityScapesMetric (cityscapesscripts) and CocoMetric, with the parity sample's weights.

As in test_instance_panoptic_e2e.py (whose helpers this reuses), the ground truth is written
from the model's own predictions so that the AP has a value known by construction.
"""
import importlib.util
import json
from pathlib import Path

import mmdet
import numpy as np
import pytest
import torch
from PIL import Image
from test_instance_panoptic_e2e import (FAST, assert_same_instances,  # noqa: F401  (fixtures)
                                        predict, predictor, run_test_tool, shared_class_embeddings)
from xdecoder_test_utils import CONFIGS, smooth_image

CONFIG = str(CONFIGS / 'xdecoder-tiny_zeroshot_open-vocab-instance_cityscapes.py')
# Cityscapes label ids of the 8 classes (cityscapesscripts' labels), in the dataset's order.
LABEL_IDS = [24, 25, 26, 27, 28, 31, 32, 33]
STEMS = ['frankfurt_000000_000294', 'frankfurt_000000_000576']
SIZES = ((96, 192), (128, 256))  # cityscapesscripts ignores instances under 100 pixels
MIN_REGION = 100
ROAD = 7


def mmdet_cityscapes_converter():
    """mmdet's tools/dataset_converters/cityscapes.py, as installed with mmdet."""
    path = Path(mmdet.__file__).parent / '.mim/tools/dataset_converters/cityscapes.py'
    spec = importlib.util.spec_from_file_location('mmdet_cityscapes_converter', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_cityscapes(root: Path, instances_per_image):
    """leftImg8bit/val/frankfurt/*_leftImg8bit.png, gtFine/val/frankfurt/*_gtFine_instanceIds.png
    (``instances_per_image``: per image [(label id, mask)], disjoint; road, a class without
    instances, elsewhere)
    and annotations/instancesonly_filtered_gtFine_val.json by mmdet's converter."""
    images, gt = root / 'leftImg8bit/val/frankfurt', root / 'gtFine/val/frankfurt'
    images.mkdir(parents=True, exist_ok=True)
    gt.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    for stem, (h, w), instances in zip(STEMS, SIZES, instances_per_image):
        Image.fromarray(smooth_image(rng, h, w)).save(images / f'{stem}_leftImg8bit.png')
        # Not void (unlabelled, 0): cityscapesscripts ignores predictions mostly on void.
        ids = np.full((h, w), ROAD, np.uint16)
        for k, (label_id, mask) in enumerate(instances):
            assert (ids[mask] == ROAD).all(), 'instance PNG segments overlap'
            ids[mask] = label_id * 1000 + k  # label id * 1000 + instance number: not crowd
        Image.fromarray(ids).save(gt / f'{stem}_gtFine_instanceIds.png')
    converter = mmdet_cityscapes_converter()
    files = converter.collect_files(str(root / 'leftImg8bit/val'), str(root / 'gtFine/val'))
    (root / 'annotations').mkdir(exist_ok=True)
    converter.cvt_annotations(converter.collect_annotations(files),
                              str(root / 'annotations/instancesonly_filtered_gtFine_val.json'))


def cityscapes_ground_truth(predictions):
    """Instances of a known AP, and the label ids of the matched instances.

    For up to two labels the highest-scoring prediction of the label over all images becomes a
    ground-truth instance (AP = 1 at every overlap: matched first, IoU 1), where it is large
    enough to count (>= 100 pixels) and overlaps no instance already chosen (the instance PNG
    holds one id per pixel). One more label gets an instance that no prediction of that label
    overlaps with IoU >= 0.5 (AP = 0). Labels without ground truth are left out of the mean,
    which is len(matched) / (len(matched) + 1).
    """
    per_image = [[] for _ in predictions]
    taken = [np.zeros(p.pred_instances.masks.shape[1:], bool) for p in predictions]
    flat = [(float(s), i, j, int(label)) for i, p in enumerate(predictions)
            for j, (s, label) in enumerate(zip(p.pred_instances.scores, p.pred_instances.labels))]
    matched = []
    for label in sorted({f[3] for f in flat}):
        _, i, j, _ = max(f for f in flat if f[3] == label)
        mask = predictions[i].pred_instances.masks[j].numpy()
        if mask.sum() >= MIN_REGION and not (mask & taken[i]).any():
            per_image[i].append((LABEL_IDS[label], mask))
            taken[i] |= mask
            matched.append(label)
        if len(matched) == 2:
            break
    assert matched, 'no top prediction large enough; change the data'
    missed = next(label for label in range(len(LABEL_IDS)) if label not in matched)
    p = predictions[0].pred_instances
    others = p.masks.numpy()[p.labels.numpy() == missed]
    h, w = taken[0].shape
    for y, x in np.ndindex(h // 12, w // 12):  # a free 12x12 square no prediction matches
        square = np.zeros((h, w), bool)
        square[12 * y:12 * y + 12, 12 * x:12 * x + 12] = True
        iou = (others & square).sum((1, 2)) / (others | square).sum((1, 2))
        if not (square & taken[0]).any() and (iou < 0.5).all():
            per_image[0].append((LABEL_IDS[missed], square))
            return per_image, [LABEL_IDS[label] for label in matched]
    raise AssertionError('no free square for the unmatched instance; change the data')


def test_cityscapes_instance(predictor, synthetic_checkpoint, tmp_path):  # noqa: F811
    root = tmp_path / 'cityscapes'
    write_cityscapes(root, [[], []])  # replaced below
    ann_file = root / 'annotations/instancesonly_filtered_gtFine_val.json'
    options = [f'test_dataloader.dataset.data_root={root}',
               f'test_evaluator.0.ann_file={ann_file}',
               f'test_evaluator.1.seg_prefix={root}/gtFine/val',
               f'test_evaluator.1.outfile_prefix={tmp_path}/cityscapes_metric', *FAST]
    predicted = predict(predictor, config=CONFIG, options=options)
    # The vocabulary is the 8 Cityscapes thing names, in label order.
    from mmdet.datasets import CityscapesDataset
    classes = list(CityscapesDataset.METAINFO['classes'])
    for p, e in zip(predicted, predict(predictor, CONFIG, options, vocabulary=(classes, []))):
        assert torch.equal(p.pred_instances.labels, e.pred_instances.labels)
    ground_truth, matched = cityscapes_ground_truth(predicted)
    expected = len(matched) / (len(matched) + 1)
    # The json lists the images in the converter's (file system) order.
    order = [STEMS.index(Path(p.img_path).name.replace('_leftImg8bit.png', '')) for p in predicted]
    ground_truth = [ground_truth[order.index(i)] for i in range(len(STEMS))]
    write_cityscapes(root, ground_truth)
    data = json.loads(ann_file.read_text())
    assert len(data['annotations']) == sum(len(g) for g in ground_truth)
    assert [c['name'] for c in data['categories']] == classes
    # mmdet's converter numbers annotations from 0, and pycocotools records a match as the
    # annotation's id, 0 meaning none: annotation 0 is never matched (one instance of the
    # thousands of Cityscapes val; here, one of the AP = 1 classes' if it is theirs).
    first = next(a for a in data['annotations'] if a['id'] == 0)
    expected_coco = (len(matched) - (first['category_id'] in matched)) / (len(matched) + 1)

    metrics, dumped = run_test_tool(CONFIG, synthetic_checkpoint, tmp_path / 'work', options)
    assert_same_instances(dumped, predicted)
    # cityscapesscripts' AP (mean over the labels with ground truth and the overlaps 0.5:0.95)
    # from the same integer matches: equal up to float rounding. COCO's is rounded to 3 places.
    assert metrics['cityscapes/mAP'] == pytest.approx(expected, abs=1e-9)
    assert metrics['cityscapes/AP@50'] == pytest.approx(expected, abs=1e-9)
    assert metrics['coco/segm_mAP'] == round(expected_coco, 3)
    assert 0 < expected < 1


def test_missing_dataset_names_the_layout(synthetic_checkpoint, tmp_path):
    with pytest.raises(FileNotFoundError, match=r'nowhere/annotations/instancesonly_filtered'
                       r'_gtFine_val.json.*does not exist.*CityscapesDataset.*"Cityscapes"'):
        run_test_tool(CONFIG, synthetic_checkpoint, tmp_path, [
            f'test_dataloader.dataset.data_root={tmp_path}/nowhere'])
