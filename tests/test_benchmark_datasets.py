"""The zero-shot benchmarks' converters (tiny inputs in each official download's format), class
names (pinned against the official evaluation's and mmseg's), 16-bit label loading and the
model's handling of benchmark vocabularies."""
import collections
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image
from scipy.io import savemat
from xdecoder_test_utils import CONFIGS, ROOT, build_model

sys.path.insert(0, str(ROOT / 'tools' / 'dataset_converters'))
import ade20k_full  # noqa: E402
import pascal_context_459  # noqa: E402
import scannet  # noqa: E402
import sun_rgbd  # noqa: E402

from projects.XDecoder.xdecoder import benchmark_classes as official  # noqa: E402
from projects.XDecoder.xdecoder.benchmark_datasets import LoadSegAnnotations16  # noqa: E402

DATASETS = CONFIGS / '_base_' / 'datasets'

# microsoft/X-Decoder utils/constants.py: CITYSCAPES and BDD_SEM, the vocabularies
# modeling/utils/misc.py::get_class_names gives the Cityscapes and BDD100K semantic evaluations.
OFFICIAL_CITYSCAPES = [
    'road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'traffic sign',
    'vegetation', 'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train',
    'motorcycle', 'bicycle']
OFFICIAL_BDD_SEM = OFFICIAL_CITYSCAPES


def read(path):
    return np.asarray(Image.open(path))


# ----------------------------------------------------------------------------- converters
def test_ade20k_full_converter(tmp_path):
    """*_seg.png object classes (R / 10 * 256 + G) -> 16-bit labels of the 847 classes."""
    folder = tmp_path / 'images/ADE/validation/home_or_hotel/bedroom'
    folder.mkdir(parents=True)
    Image.fromarray(np.full((4, 6, 3), 90, np.uint8)).save(folder / 'ADE_val_00000007.jpg')
    # wall (2978) -> 0, building (312) -> 1, adding machine (3148) -> 846; object class 1 (not
    # one of the 847), 0 (no object) and 3300 (above every listed id) -> 65535.
    classes = np.array([[2978, 312, 3148, 1, 0, 3300]] * 4)
    seg = np.stack([classes // 256 * 10, classes % 256, np.full_like(classes, 7)], -1)
    Image.fromarray(seg.astype(np.uint8)).save(folder / 'ADE_val_00000007_seg.png')

    assert ade20k_full.convert(str(tmp_path)) == 1
    labels = read(tmp_path / 'annotations_detectron2/validation/ADE_val_00000007.tif')
    assert labels.dtype == np.uint16
    assert labels.tolist() == [[0, 1, 846, 65535, 65535, 65535]] * 4
    assert ((tmp_path / 'images_detectron2/validation/ADE_val_00000007.jpg').read_bytes() ==
            (folder / 'ADE_val_00000007.jpg').read_bytes())
    with pytest.raises(FileNotFoundError, match='ADE20K_2021_17_01.zip'):
        ade20k_full.convert(str(tmp_path / 'elsewhere'))


def test_pascal_context_459_converter(tmp_path):
    """trainval/<id>.mat LabelMap (1..459, 0 = unlabelled) -> 16-bit labels k - 1 / 65535."""
    voc = tmp_path / 'VOC2010'
    with pytest.raises(FileNotFoundError, match='SegmentationContext/val.txt.*PASCAL Context'):
        pascal_context_459.convert(str(voc), str(tmp_path / 'trainval'))
    (voc / 'ImageSets/SegmentationContext').mkdir(parents=True)
    (voc / 'ImageSets/SegmentationContext/val.txt').write_text('2008_000002\n')
    (tmp_path / 'trainval').mkdir()
    savemat(str(tmp_path / 'trainval/2008_000002.mat'),
            {'LabelMap': np.array([[0, 1, 459], [17, 18, 2]], np.uint16)})
    savemat(str(tmp_path / 'trainval/2008_000003.mat'),  # a training image: not converted
            {'LabelMap': np.ones((2, 3), np.uint16)})

    assert pascal_context_459.convert(str(voc), str(tmp_path / 'trainval')) == 1
    labels = read(voc / 'SegmentationClassContext459/2008_000002.tif')
    assert labels.dtype == np.uint16
    assert labels.tolist() == [[65535, 0, 458], [16, 17, 1]]
    assert official.PASCAL_CONTEXT_459[16] == 'bathtub'  # labels.txt: 17 bathtub
    assert not (voc / 'SegmentationClassContext459/2008_000003.tif').exists()


def test_sun_rgbd_converter(tmp_path):
    """Test images and their 37-class label maps -> image/test, label37/test."""
    (tmp_path / 'images').mkdir()
    (tmp_path / 'labels').mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / 'images/img-000001.jpg')
    label = np.array([[0, 1, 37, 5]] * 4, np.uint8)
    Image.fromarray(label).save(tmp_path / 'labels/img-000001.png')
    Image.fromarray(label).save(tmp_path / 'labels/img-005051.png')  # training: not copied

    assert sun_rgbd.convert(str(tmp_path / 'images'), str(tmp_path / 'labels'),
                            str(tmp_path / 'out')) == 1
    assert read(tmp_path / 'out/label37/test/img-000001.png').tolist() == label.tolist()
    assert (tmp_path / 'out/image/test/img-000001.jpg').is_file()
    assert sorted(p.name for p in (tmp_path / 'out/label37/test').iterdir()) == [
        'img-000001.png']
    Image.fromarray(np.full((4, 4), 40, np.uint8)).save(tmp_path / 'labels/img-000001.png')
    with pytest.raises(ValueError, match='not a 37-class label map'):
        sun_rgbd.convert(str(tmp_path / 'images'), str(tmp_path / 'labels'), str(tmp_path / 'x'))


def test_scannet_converter(tmp_path):
    """The download's 8-bit label images are NYU40 ids, kept; 16-bit ones are ScanNet label ids,
    mapped through the label table. Both give NYU40 (label41) and the benchmark's 20 classes
    (label21)."""
    frames = tmp_path / 'frames'
    for scene in ('scene0011_00', 'scene0050_00'):
        (frames / scene / 'color').mkdir(parents=True)
        (frames / scene / 'label').mkdir()
    for frame in ('000100', '000200'):
        Image.fromarray(np.zeros((2, 5, 3), np.uint8)).save(
            frames / f'scene0011_00/color/{frame}.jpg')
    # As downloaded: NYU40 ids 1 wall, 5 chair, 13 blinds (not in the 20), 39 otherfurniture,
    # 0 unannotated.
    nyu40 = np.array([[1, 5, 13, 39, 0], [0, 0, 1, 5, 13]], np.uint8)
    Image.fromarray(nyu40).save(frames / 'scene0011_00/label/000100.png')
    # Exported from *_2d-label.zip: ScanNet ids 1 wall (nyu40 1), 2 chair (5), 40 blinds (13),
    # 1191 (39), 7 (in the table without an nyu40 id), 0 unannotated; 9999 unknown.
    raw = np.array([[1, 2, 40, 1191, 9999], [7, 0, 1, 2, 40]], np.uint16)
    Image.fromarray(raw).save(frames / 'scene0011_00/label/000200.png')
    tsv = tmp_path / 'labels.tsv'
    tsv.write_text(
        'id\traw_category\tcategory\tcount\tnyu40id\n1\twall\twall\t1\t1\n2\tchair\tchair\t1\t5\n'
        '40\tblinds\tblinds\t1\t13\n1191\tstand\tstand\t1\t39\n7\tthing\tthing\t1\t\n')
    (tmp_path / 'val.txt').write_text('scene0011_00\n')
    out, val = tmp_path / 'out', str(tmp_path / 'val.txt')

    # A 16-bit frame without the table is refused with what to pass.
    with pytest.raises(ValueError, match='000200.png is a I;16 label image, i.e. ScanNet label '
                                         'ids .* pass --tsv scannetv2-labels.combined.tsv'):
        scannet.convert(str(frames), val, str(out))
    assert scannet.convert(str(frames), val, str(out), str(tsv)) == 2
    scene = out / 'images/scene0011_00'
    for frame, expected in (('000100', [[1, 5, 13, 39, 0], [0, 0, 1, 5, 13]]),
                            ('000200', [[1, 5, 13, 39, 0], [0, 0, 1, 5, 13]])):
        assert read(scene / f'label41/{frame}.png').tolist() == expected
        # 20-class labels: wall 1, chair 5, otherfurniture 20; blinds is not one of the 20.
        assert read(scene / f'label21/{frame}.png').tolist() == [[1, 5, 0, 20, 0],
                                                                 [0, 0, 1, 5, 0]]
    assert (out / 'meta/val.txt').read_text() == ('scene0011_00/color/000100.jpg\n'
                                                  'scene0011_00/color/000200.jpg\n')
    # An 8-bit image with values above 40 is not a NYU40 label image.
    Image.fromarray(nyu40 + 100).save(frames / 'scene0011_00/label/000100.png')
    with pytest.raises(ValueError, match='000100.png: 8-bit label image with value 139'):
        scannet.convert(str(frames), val, str(out), str(tsv))
    (tmp_path / 'val.txt').write_text('scene0999_00\n')
    with pytest.raises(FileNotFoundError, match='scene0999_00/color'):
        scannet.convert(str(frames), val, str(out), str(tsv))


# ----------------------------------------------------------------------------- class names
def dataset_cfg(base):
    return Config.fromfile(DATASETS / base).test_dataloader.dataset


def test_mmseg_names_are_the_official_ones():
    """Cityscapes and BDD100K run on mmseg's datasets with mmseg's names: they are exactly the
    official X-Decoder vocabularies (no override in the configs)."""
    from mmseg.datasets import BDD100KDataset, CityscapesDataset
    assert list(CityscapesDataset.METAINFO['classes']) == OFFICIAL_CITYSCAPES
    assert list(BDD100KDataset.METAINFO['classes']) == OFFICIAL_BDD_SEM
    for base in ('cityscapes_semantic.py', 'bdd100k_semantic.py'):
        assert 'metainfo' not in dataset_cfg(base)


def test_benchmarks_without_an_official_vocabulary_use_mmseg_names():
    """X-Decoder's evaluation has no PASCAL Context 59, VOC or COCO-Stuff vocabulary: these use
    mmseg's class names; VOC-20 is mmseg's VOC list without 'background'."""
    from mmseg.datasets import PascalVOCDataset
    for base in ('pascal_context_59_semantic.py', 'voc_21_semantic.py', 'coco_stuff_semantic.py'):
        assert 'metainfo' not in dataset_cfg(base)
    voc20 = dataset_cfg('voc_20_semantic.py').metainfo.classes
    assert ['background', *voc20] == list(PascalVOCDataset.METAINFO['classes'])


def test_official_vocabularies_where_mmseg_has_none():
    """ADE20K-full repeats nine names (kept: the official evaluation prompts them as written);
    ScanNet-20 is ScanNet-40 at the benchmark's NYU40 ids except that the official lists spell
    one name differently ('refrigerator' / 'refridgerator'), kept as written."""
    counts = collections.Counter(official.ADE20K_847)
    assert sorted(n for n, c in counts.items() if c > 1) == sorted(
        ['bag', 'pot', 'basket', 'screen', 'pier', 'control panel', 'pipe', 'grill', 'patio'])
    assert counts['bag'] == 3
    from_40 = [official.SCANNET_40[i - 1] for i in official.SCANNET_20_NYU40_IDS]
    differences = [(a, b) for a, b in zip(official.SCANNET_20, from_40) if a != b]
    assert differences == [('refrigerator', 'refridgerator')]
    assert official.SCANNET_40[:37] == official.SUN_RGBD_37


def test_instance_and_panoptic_vocabularies_are_the_official_ones():
    """Cityscapes instance: mmdet's CityscapesDataset names, which are the official
    CITYSCAPES_THING (the last 8 of the 19). ScanNet panoptic: the official SCAN_20 names,
    things first (all but wall and floor, ScanNet's isthing), as the converter's json lists
    them."""
    from mmdet.datasets import CityscapesDataset
    assert list(CityscapesDataset.METAINFO['classes']) == OFFICIAL_CITYSCAPES[11:]
    assert 'metainfo' not in dataset_cfg('cityscapes_instance.py')
    scannet = dataset_cfg('scannet_panoptic.py').metainfo
    assert list(scannet.thing_classes) == list(official.SCANNET_20[2:])
    assert list(scannet.stuff_classes) == ['wall', 'floor'] == list(official.SCANNET_20[:2])
    assert list(scannet.classes) == list(scannet.thing_classes + scannet.stuff_classes)


# ----------------------------------------------------------------------------- loading, model
def test_16bit_label_maps_keep_their_values(tmp_path):
    path = tmp_path / 'labels.tif'
    Image.fromarray(np.array([[0, 5, 300, 65535]], np.uint16)).save(path)
    loader = LoadSegAnnotations16()
    results = loader(dict(seg_map_path=str(path), reduce_zero_label=False, seg_fields=[]))
    assert results['gt_seg_map'].tolist() == [[0, 5, 300, 65535]]
    # A class subset: mmseg's label map marks dropped classes 255, a class here -> unlabelled.
    results = loader(dict(seg_map_path=str(path), reduce_zero_label=False, seg_fields=[],
                          label_map={0: 255, 5: 255, 300: 0}))
    assert results['gt_seg_map'].tolist() == [[65535, 65535, 0, 65535]]
    with pytest.raises(ValueError, match='reduce_zero_label=False'):
        loader(dict(seg_map_path=str(path), reduce_zero_label=True, seg_fields=[]))


def test_repeated_names_and_a_background_class():
    """With repeated_names, a repeated name scores like its first occurrence and a class named
    'background' like the model's own background; without it such vocabularies are refused."""
    model = build_model('xdecoder-tiny_zeroshot_open-vocab-semseg_voc-21.py')
    queries = torch.randn(2, 5, 512, generator=torch.Generator().manual_seed(0))
    plain = model.class_logits(queries, ['sky', 'tree'])  # [.., sky, tree, background]
    logits = model.class_logits(queries, ['sky', 'tree', 'sky', 'background'])
    assert logits.shape[-1] == 5
    for column, expected in enumerate([0, 1, 0, 2, 2]):
        # Same embeddings; the matrix product of another shape may round differently.
        assert torch.allclose(logits[..., column], plain[..., expected], rtol=0, atol=1e-6)
    model.test_cfg['repeated_names'] = False
    with pytest.raises(ValueError, match='duplicate'):
        model.class_logits(queries, ['sky', 'tree', 'sky'])
    cfg = Config.fromfile(CONFIGS / 'xdecoder-tiny_zeroshot_open-vocab-semseg_ade20k-full.py')
    assert cfg.model.test_cfg.repeated_names
