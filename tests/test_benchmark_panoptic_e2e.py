"""Cityscapes panoptic segmentation end to end: a tiny Cityscapes folder with the official
panoptic ground truth (cityscapesscripts' format), the converter, tools/test.py and mmdet's
CocoPanopticMetric, with the parity sample's weights.

As in test_instance_panoptic_e2e.py (whose helpers this reuses), the ground truth is the model's
own predicted segments with one relabelled, so that PQ has a value known by construction.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from test_instance_panoptic_e2e import (FAST, INSTANCE_OFFSET,  # noqa: F401  (fixtures)
                                        panoptic_ground_truth, predict, predictor, run_test_tool,
                                        shared_class_embeddings, write_images, write_panoptic)
from xdecoder_test_utils import CONFIGS, ROOT

sys.path.insert(0, str(ROOT / 'tools' / 'dataset_converters'))
import cityscapes_panoptic  # noqa: E402

CONFIG = str(CONFIGS / 'xdecoder-tiny_zeroshot_open-vocab-panoptic_cityscapes.py')
# Cityscapes label ids, the category ids of the official panoptic json.
LABEL_IDS = {'person': 24, 'car': 26, 'road': 7, 'sky': 23}
THINGS, STUFF = ['person', 'car'], ['road', 'sky']
STEMS = ['frankfurt_000000_000294', 'frankfurt_000000_000576']


def write_official_panoptic(root: Path, images, segments_per_image):
    """gtFine/cityscapes_panoptic_val.json + gtFine/cityscapes_panoptic_val/*_gtFine_panoptic.png
    as csCreatePanopticImgs writes them (``segments_per_image``: per image [(label id, mask)]),
    then the converter."""
    gt = root / 'gtFine'
    gt.mkdir(parents=True, exist_ok=True)
    categories = [dict(id=i, name=n, supercategory='x', isthing=int(n in THINGS))
                  for n, i in LABEL_IDS.items()]
    json_path = gt / 'cityscapes_panoptic_val.json'
    write_panoptic(json_path, gt / 'cityscapes_panoptic_val',
                   [dict(image, file_name=f'{image["id"]}_gtFine_panoptic.png')
                    for image in images], categories, segments_per_image)
    data = json.loads(json_path.read_text())  # 'images' name the image files
    for image in data['images']:
        image['file_name'] = f'{image["id"]}_leftImg8bit.png'
    json_path.write_text(json.dumps(data))
    cityscapes_panoptic.convert(str(root))


def test_converter_keeps_segments_and_names_files_for_mmdet(tmp_path):
    images = [dict(id=STEMS[0], height=4, width=6)]
    mask = np.zeros((4, 6), bool)
    mask[1:3, 2:5] = True
    write_official_panoptic(tmp_path, images, [[(26, mask), (7, ~mask)]])
    data = json.loads((tmp_path / 'gtFine/cityscapes_panoptic_val_mmdet.json').read_text())
    official = json.loads((tmp_path / 'gtFine/cityscapes_panoptic_val.json').read_text())
    assert data['images'][0]['file_name'] == f'frankfurt/{STEMS[0]}_leftImg8bit.png'
    assert data['annotations'][0]['file_name'] == f'{STEMS[0]}_leftImg8bit.png'
    assert data['annotations'][0]['segments_info'] == official['annotations'][0]['segments_info']
    assert data['categories'] == official['categories']
    png_name = f'{STEMS[0]}_leftImg8bit.png'
    assert ((tmp_path / 'gtFine/cityscapes_panoptic_val_mmdet' / png_name).read_bytes() ==
            (tmp_path / f'gtFine/cityscapes_panoptic_val/{STEMS[0]}_gtFine_panoptic.png')
            .read_bytes())
    with pytest.raises(FileNotFoundError, match='csCreatePanopticImgs'):
        cityscapes_panoptic.convert(str(tmp_path / 'elsewhere'))


def test_cityscapes_panoptic(predictor, synthetic_checkpoint, tmp_path):  # noqa: F811
    root = tmp_path / 'cityscapes'
    images = write_images(root / 'leftImg8bit/val/frankfurt',
                          [(s, f'{s}_leftImg8bit.png') for s in STEMS])
    write_official_panoptic(root, images, [[] for _ in images])  # replaced below
    gt = root / 'gtFine'
    meta = 'test_dataloader.dataset.metainfo'
    options = [f'test_dataloader.dataset.data_root={root}',
               f'test_evaluator.ann_file={gt}/cityscapes_panoptic_val_mmdet.json',
               f'test_evaluator.seg_prefix={gt}/cityscapes_panoptic_val_mmdet',
               f'{meta}.classes=[{",".join(THINGS + STUFF)}]',
               f'{meta}.thing_classes=[{",".join(THINGS)}]',
               f'{meta}.stuff_classes=[{",".join(STUFF)}]', *FAST]
    predicted = predict(predictor, CONFIG, options)
    assert predictor.test_cfg['object_mask_thr'] == 0.4  # the official Cityscapes setting
    pan_maps = [p.pred_panoptic_seg.sem_seg[0].numpy() for p in predicted]
    ground_truth, expected = panoptic_ground_truth(
        pan_maps, len(THINGS + STUFF), len(THINGS), [LABEL_IDS[n] for n in THINGS + STUFF])
    write_official_panoptic(root, images, ground_truth)

    metrics, dumped = run_test_tool(CONFIG, synthetic_checkpoint, tmp_path / 'work', options)
    for d, pan in zip(dumped, pan_maps, strict=True):
        void = pan % INSTANCE_OFFSET == len(THINGS + STUFF)
        assert np.array_equal(d['pred_panoptic_seg']['sem_seg'][0].numpy(),
                              np.where(void, 0, pan))
    got = [metrics[f'coco_panoptic/{k}'] for k in ('PQ', 'PQ_th', 'PQ_st')]
    assert got == pytest.approx(expected, abs=1e-3)
    assert 0 < got[0] < 100
