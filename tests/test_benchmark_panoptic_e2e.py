"""Cityscapes, BDD100K and ScanNet panoptic segmentation end to end: tiny folders with the
official panoptic ground truth (for Cityscapes cityscapesscripts' format, for BDD100K the COCO
panoptic layout of the official evaluation, for ScanNet the download's instance PNGs; each
through its converter), tools/test.py and mmdet's CocoPanopticMetric, with the parity sample's
weights.

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
import bdd100k_panoptic  # noqa: E402
import cityscapes_panoptic  # noqa: E402
import scannet_panoptic  # noqa: E402
from PIL import Image  # noqa: E402

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
    # In label id order, as csCreatePanopticImgs lists them: stuff and things mixed.
    categories = [dict(id=i, name=n, supercategory='x', isthing=int(n in THINGS))
                  for n, i in sorted(LABEL_IDS.items(), key=lambda item: item[1])]
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
    # Things first (mmdet's label order), each kind in the official order.
    assert data['categories'] == ([c for c in official['categories'] if c['isthing']] +
                                  [c for c in official['categories'] if not c['isthing']])
    assert [c['id'] for c in official['categories']] == [7, 23, 24, 26]  # by label id
    assert [c['id'] for c in data['categories']] == [24, 26, 7, 23]
    png_name = f'{STEMS[0]}_leftImg8bit.png'
    assert ((tmp_path / 'gtFine/cityscapes_panoptic_val_mmdet' / png_name).read_bytes() ==
            (tmp_path / f'gtFine/cityscapes_panoptic_val/{STEMS[0]}_gtFine_panoptic.png')
            .read_bytes())
    with pytest.raises(FileNotFoundError, match='csCreatePanopticImgs'):
        cityscapes_panoptic.convert(str(tmp_path / 'elsewhere'))


def check_panoptic(config, root, ann_file, seg_dir, write_ground_truth, category_ids,
                   model, synthetic_checkpoint, work_dir, things=THINGS, stuff=STUFF):
    """Predict in-process, write ground truth of known PQ from the predictions with
    ``write_ground_truth(segments_per_image)``, then tools/test.py must report that PQ."""
    meta = 'test_dataloader.dataset.metainfo'
    options = [f'test_dataloader.dataset.data_root={root}', f'test_evaluator.ann_file={ann_file}',
               f'test_evaluator.seg_prefix={seg_dir}',
               f'{meta}.classes=[{",".join(things + stuff)}]',
               f'{meta}.thing_classes=[{",".join(things)}]',
               f'{meta}.stuff_classes=[{",".join(stuff)}]', *FAST]
    predicted = predict(model, config, options)
    assert model.test_cfg['object_mask_thr'] == 0.4  # the official setting of these sets
    pan_maps = [p.pred_panoptic_seg.sem_seg[0].numpy() for p in predicted]
    ground_truth, expected = panoptic_ground_truth(
        pan_maps, len(things + stuff), len(things), [category_ids[n] for n in things + stuff])
    write_ground_truth(ground_truth)

    metrics, dumped = run_test_tool(config, synthetic_checkpoint, work_dir, options)
    for d, pan in zip(dumped, pan_maps, strict=True):
        void = pan % INSTANCE_OFFSET == len(things + stuff)
        assert np.array_equal(d['pred_panoptic_seg']['sem_seg'][0].numpy(),
                              np.where(void, 0, pan))
    got = [metrics[f'coco_panoptic/{k}'] for k in ('PQ', 'PQ_th', 'PQ_st')]
    # Both from integer TP/FP/FN counts with IoU exactly 1 (the segments are the predictions):
    # equal up to float division; 1e-3 is the metric's printed precision.
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


BDD_IDS = {'person': 31, 'car': 35, 'road': 7, 'sky': 30}


def write_official_bdd100k(root: Path, images, segments_per_image):
    """labels/pan_seg/meta/coco_val.json (categories in id order, as the official json lists
    them: stuff 1..30, then things 31..40) + coco_pano/val/*.png, then the converter."""
    categories = [dict(id=i, name=n, isthing=int(n in THINGS))
                  for n, i in sorted(BDD_IDS.items(), key=lambda item: item[1])]
    official = root / 'labels/pan_seg/meta/coco_val.json'
    official.parent.mkdir(parents=True, exist_ok=True)
    write_panoptic(official, root / 'labels/pan_seg/coco_pano/val', images, categories,
                   segments_per_image)
    return bdd100k_panoptic.convert(str(root))


def test_bdd100k_converter_lists_things_first(tmp_path):
    images = [dict(id='7d2f7975-e0c1c5a7', file_name='7d2f7975-e0c1c5a7.jpg', height=4, width=6)]
    mask = np.zeros((4, 6), bool)
    mask[1:3, 2:5] = True
    data = json.loads(write_official_bdd100k(tmp_path, images, [[(35, mask), (7, ~mask)]])
                      .read_text())
    official = json.loads((tmp_path / 'labels/pan_seg/meta/coco_val.json').read_text())
    assert [c['id'] for c in official['categories']] == [7, 30, 31, 35]
    assert [c['id'] for c in data['categories']] == [31, 35, 7, 30]
    assert {k: v for k, v in data.items() if k != 'categories'} == {
        k: v for k, v in official.items() if k != 'categories'}
    with pytest.raises(FileNotFoundError, match='BDD100K'):
        bdd100k_panoptic.convert(str(tmp_path / 'elsewhere'))


def test_bdd100k_panoptic(predictor, synthetic_checkpoint, tmp_path):  # noqa: F811
    """BDD100K in the official evaluation's COCO panoptic layout (category ids 1..40)."""
    root = tmp_path / 'bdd100k'
    images = write_images(root / 'images/10k/val',
                          [(s, f'{s}.jpg') for s in ('7d2f7975-e0c1c5a7', '7d4a9094-0455564b')])
    write_official_bdd100k(root, images, [[] for _ in images])  # replaced by check_panoptic
    check_panoptic(str(CONFIGS / 'xdecoder-tiny_zeroshot_open-vocab-panoptic_bdd100k.py'), root,
                   root / 'labels/pan_seg/meta/coco_val_mmdet.json',
                   root / 'labels/pan_seg/coco_pano/val',
                   lambda segments: write_official_bdd100k(root, images, segments), BDD_IDS,
                   predictor, synthetic_checkpoint, tmp_path / 'work')


# ScanNet: two scenes whose frames have the same name, as every scene's do.
SCANNET_IDS = {'chair': 5, 'table': 7, 'wall': 1, 'floor': 2}  # NYU40 ids
SCANNET_THINGS, SCANNET_STUFF = ['chair', 'table'], ['wall', 'floor']
SCENES = ['scene0011_00', 'scene0015_00']


def write_scannet_download(frames: Path, segments_per_image, shape, seed=0):
    """scannet_frames_25k/<scene>/color/000000.jpg and instance/000000.png (16-bit: NYU40 id *
    1000 + instance number, or a NYU40 id alone), one frame per scene; ``segments_per_image``:
    per scene [(instance PNG value, mask)], 0 elsewhere."""
    images = []
    for i, (scene, segments) in enumerate(zip(SCENES, segments_per_image)):
        images += write_images(frames / scene / 'color', [(scene, '000000.jpg')], seed=seed + i)
        instance = np.zeros(shape, np.uint16)
        for value, mask in segments:
            instance[mask] = value
        (frames / scene / 'instance').mkdir(exist_ok=True)
        Image.fromarray(instance).save(frames / scene / 'instance' / '000000.png')
    scene_list = frames / 'scannetv2_val.txt'
    scene_list.write_text('\n'.join(SCENES) + '\n')
    return images, scene_list


def test_scannet_converter_writes_the_official_segments(tmp_path):
    frames, out = tmp_path / 'scannet_frames_25k_download', tmp_path / 'scannet_frames_25k'
    h, w = 6, 8
    regions = np.arange(h * w).reshape(h, w) // 8  # six rows
    values = [1, 5001, 5002, 40001, 0, 7001]  # wall, 2 chairs, otherprop, unlabelled, table
    segments = [[(v, regions == r) for r, v in enumerate(values)], [(2000, regions < 6)]]
    write_scannet_download(frames, segments, (h, w))
    data = json.loads(scannet_panoptic.convert(str(frames), str(frames / 'scannetv2_val.txt'),
                                               str(out)).read_text())
    stems = [f'{s}__000000' for s in SCENES]
    assert [i['file_name'] for i in data['images']] == [f'{s}.jpg' for s in stems]
    assert [a['file_name'] for a in data['annotations']] == [f'{s}.png' for s in stems]
    # Segment id = the instance value; class = the value (< 1000) or value // 1000; classes
    # outside the 20 (otherprop, 40) and unlabelled pixels are void.
    first = data['annotations'][0]['segments_info']
    assert [(s['id'], s['category_id'], s['area']) for s in first] == [
        (1, 1, 8), (5001, 5, 8), (5002, 5, 8), (7001, 7, 8)]
    assert first[2]['bbox'] == [0, 2, 8, 1]
    assert data['annotations'][1]['segments_info'][0]['category_id'] == 2
    ids = np.asarray(Image.open(out / 'scannet_panoptic_val' / f'{stems[0]}.png')).astype(int)
    ids = ids[..., 0] + 256 * ids[..., 1] + 256**2 * ids[..., 2]
    expected = np.choose(regions, [1, 5001, 5002, 0, 0, 7001])
    assert np.array_equal(ids, expected)
    # Things first, then wall and floor: the order of mmdet's labels, which it maps to the
    # json's categories in the json's order.
    assert [(c['id'], c['name'], c['isthing']) for c in data['categories']][:2] == [
        (3, 'cabinet', 1), (4, 'bed', 1)]
    assert [(c['id'], c['name'], c['isthing']) for c in data['categories']][-2:] == [
        (1, 'wall', 0), (2, 'floor', 0)]
    assert len(data['categories']) == 20
    # Same frame name in both scenes, two image files.
    for scene, stem in zip(SCENES, stems):
        assert ((out / 'scannet_panoptic_val_images' / f'{stem}.jpg').read_bytes() ==
                (frames / scene / 'color/000000.jpg').read_bytes())
    with pytest.raises(FileNotFoundError, match='scannet_frames_25k'):
        scannet_panoptic.convert(str(tmp_path / 'elsewhere'), str(frames / 'scannetv2_val.txt'),
                                 str(out))


def test_scannet_panoptic(predictor, synthetic_checkpoint, tmp_path):  # noqa: F811
    """ScanNet from the download's instance PNGs through the converter (NYU40 category ids)."""
    frames, root = tmp_path / 'download', tmp_path / 'scannet_frames_25k'
    shape = (48, 64)

    def write_ground_truth(segments):
        values = [[(nyu40 * 1000 + k + 1, mask) for k, (nyu40, mask) in enumerate(image)]
                  for image in segments]
        write_scannet_download(frames, values, shape, seed=2)
        scannet_panoptic.convert(str(frames), str(frames / 'scannetv2_val.txt'), str(root))

    write_ground_truth([[], []])  # replaced by check_panoptic
    check_panoptic(str(CONFIGS / 'xdecoder-tiny_zeroshot_open-vocab-panoptic_scannet.py'), root,
                   root / 'scannet_panoptic_val.json', root / 'scannet_panoptic_val',
                   write_ground_truth, SCANNET_IDS, predictor, synthetic_checkpoint,
                   tmp_path / 'work', things=SCANNET_THINGS, stuff=SCANNET_STUFF)


@pytest.mark.parametrize('dataset', ['cityscapes', 'bdd100k', 'scannet'])
def test_missing_dataset_names_the_layout(dataset, synthetic_checkpoint, tmp_path):
    config = str(CONFIGS / f'xdecoder-tiny_zeroshot_open-vocab-panoptic_{dataset}.py')
    with pytest.raises(FileNotFoundError,
                       match=r'nowhere/.*\.json.*does not exist.*CocoPanopticDataset.*README'):
        run_test_tool(config, synthetic_checkpoint, tmp_path, [
            f'test_dataloader.dataset.data_root={tmp_path}/nowhere'])
