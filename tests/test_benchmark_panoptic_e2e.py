"""Cityscapes and BDD100K panoptic segmentation end to end: tiny folders with the official
panoptic ground truth (for Cityscapes cityscapesscripts' format and the converter; for BDD100K
the COCO panoptic layout of the official evaluation), tools/test.py and mmdet's
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


def check_panoptic(config, root, ann_file, seg_dir, write_ground_truth, category_ids,
                   model, synthetic_checkpoint, work_dir):
    """Predict in-process, write ground truth of known PQ from the predictions with
    ``write_ground_truth(segments_per_image)``, then tools/test.py must report that PQ."""
    meta = 'test_dataloader.dataset.metainfo'
    options = [f'test_dataloader.dataset.data_root={root}', f'test_evaluator.ann_file={ann_file}',
               f'test_evaluator.seg_prefix={seg_dir}',
               f'{meta}.classes=[{",".join(THINGS + STUFF)}]',
               f'{meta}.thing_classes=[{",".join(THINGS)}]',
               f'{meta}.stuff_classes=[{",".join(STUFF)}]', *FAST]
    predicted = predict(model, config, options)
    assert model.test_cfg['object_mask_thr'] == 0.4  # the official setting of these sets
    pan_maps = [p.pred_panoptic_seg.sem_seg[0].numpy() for p in predicted]
    ground_truth, expected = panoptic_ground_truth(
        pan_maps, len(THINGS + STUFF), len(THINGS), [category_ids[n] for n in THINGS + STUFF])
    write_ground_truth(ground_truth)

    metrics, dumped = run_test_tool(config, synthetic_checkpoint, work_dir, options)
    for d, pan in zip(dumped, pan_maps, strict=True):
        void = pan % INSTANCE_OFFSET == len(THINGS + STUFF)
        assert np.array_equal(d['pred_panoptic_seg']['sem_seg'][0].numpy(),
                              np.where(void, 0, pan))
    got = [metrics[f'coco_panoptic/{k}'] for k in ('PQ', 'PQ_th', 'PQ_st')]
    assert got == pytest.approx(expected, abs=1e-3)
    assert 0 < got[0] < 100


def test_cityscapes_panoptic(predictor, synthetic_checkpoint, tmp_path):  # noqa: F811
    root = tmp_path / 'cityscapes'
    images = write_images(root / 'leftImg8bit/val/frankfurt',
                          [(s, f'{s}_leftImg8bit.png') for s in STEMS])
    write_official_panoptic(root, images, [[] for _ in images])  # replaced by check_panoptic
    check_panoptic(
        CONFIG, root, root / 'gtFine/cityscapes_panoptic_val_mmdet.json',
        root / 'gtFine/cityscapes_panoptic_val_mmdet',
        lambda segments: write_official_panoptic(root, images, segments), LABEL_IDS,
        predictor, synthetic_checkpoint, tmp_path / 'work')


def test_bdd100k_panoptic(predictor, synthetic_checkpoint, tmp_path):  # noqa: F811
    """BDD100K in the official evaluation's COCO panoptic layout (category ids 1..40)."""
    root = tmp_path / 'bdd100k'
    images = write_images(root / 'images/10k/val',
                          [(s, f'{s}.jpg') for s in ('7d2f7975-e0c1c5a7', '7d4a9094-0455564b')])
    ann_file, seg_dir = (root / 'labels/pan_seg/meta/coco_val.json',
                         root / 'labels/pan_seg/coco_pano/val')
    ann_file.parent.mkdir(parents=True)
    category_ids = {'person': 31, 'car': 35, 'road': 7, 'sky': 30}

    def write_ground_truth(segments):
        write_panoptic(ann_file, seg_dir, images,
                       [dict(id=i, name=n, isthing=int(n in THINGS))
                        for n, i in category_ids.items()], segments)

    write_ground_truth([[] for _ in images])  # replaced by check_panoptic
    check_panoptic(str(CONFIGS / 'xdecoder-tiny_zeroshot_open-vocab-panoptic_bdd100k.py'), root,
                   ann_file, seg_dir, write_ground_truth, category_ids, predictor,
                   synthetic_checkpoint, tmp_path / 'work')


@pytest.mark.parametrize('dataset', ['cityscapes', 'bdd100k'])
def test_missing_dataset_names_the_layout(dataset, synthetic_checkpoint, tmp_path):
    config = str(CONFIGS / f'xdecoder-tiny_zeroshot_open-vocab-panoptic_{dataset}.py')
    with pytest.raises(FileNotFoundError,
                       match=r'nowhere/.*\.json.*does not exist.*CocoPanopticDataset.*README'):
        run_test_tool(config, synthetic_checkpoint, tmp_path, [
            f'test_dataloader.dataset.data_root={tmp_path}/nowhere'])
