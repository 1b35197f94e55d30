"""The zero-shot semantic benchmarks (ADE20K-full, PASCAL Context 59/459, VOC 20/21, Cityscapes,
BDD100K, COCO-Stuff, SUN RGB-D, ScanNet 20/40) end to end through tools/test.py, on tiny folders
in each dataset's on-disk format, with the parity sample's weights; and their converters.

Every config runs with three of its dataset's classes (``metainfo.classes``, which mmseg turns
into a label map that drops the others) and short side 32. The ground truth each run dumps must
be the labels this file derives from the raw values it wrote, and the mIoU / aAcc that mmseg's
IoUMetric reports must equal a numpy recomputation from the dumped predictions.
"""
import glob
import json
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat
from xdecoder_test_utils import CONFIGS, ROOT, smooth_image

sys.path.insert(0, str(ROOT / 'tools'))
sys.path.insert(0, str(ROOT / 'tools' / 'dataset_converters'))
import test as test_tool  # noqa: E402

import ade20k_full  # noqa: E402
import pascal_context_459  # noqa: E402
import scannet  # noqa: E402
import sun_rgbd  # noqa: E402

from projects.XDecoder.xdecoder import benchmark_classes as official  # noqa: E402
from projects.XDecoder.xdecoder.text_encoder import BACKGROUND, TextEncoder  # noqa: E402

SIZES = ((40, 56), (48, 36))
FAST = ['test_dataloader.dataset.pipeline.1.scale=32', 'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False']
IGNORE = -1
ORIGINAL_CLASS_EMBEDDINGS = TextEncoder.class_embeddings


@pytest.fixture(scope='module', autouse=True)
def class_embeddings_per_name():
    """Text embeddings computed once per class name for all runs here.

    A vocabulary's embeddings are one row per name plus the background row, each a function of
    that name and the text-encoder weights only (every run here loads the same weights), so
    assembling them from rows computed one name at a time changes nothing but float rounding.
    The subsets below share names, which leaves a handful of names to embed (~4 s each on CPU).
    """
    original, rows, checksums = ORIGINAL_CLASS_EMBEDDINGS, {}, {}

    def class_embeddings(self, names):
        fingerprint = self._weights_fingerprint()  # changes when the weights do
        if fingerprint not in checksums:
            checksums[fingerprint] = sum(float(p.double().sum()) for p in self.parameters())
        weights = checksums[fingerprint]
        for name in names:
            if (name, weights) not in rows:
                rows[name, weights], rows[BACKGROUND, weights] = original(self, [name])
        return torch.stack([rows[n, weights] for n in (*names, BACKGROUND)])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TextEncoder, 'class_embeddings', class_embeddings)
        yield


def config_path(name):
    return str(CONFIGS / f'xdecoder-tiny_zeroshot_open-vocab-semseg_{name}.py')


def raw_maps(rng, pool):
    """One label map per image size, 8x8 blocks of values drawn from ``pool``."""
    maps = []
    for h, w in SIZES:
        blocks = rng.choice(np.asarray(pool), (h // 8 + 1, w // 8 + 1))
        maps.append(np.kron(blocks, np.ones((8, 8), blocks.dtype))[:h, :w])
    return maps


def write_image(path: Path, rng, h, w):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(smooth_image(rng, h, w)).save(path, quality=95)


def write_png(path: Path, labels, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(labels.astype(np.uint16 if labels.max() > 255 else np.uint8))
    if mode == 'P':  # VOC's palette PNGs
        image.putpalette(np.random.default_rng(0).integers(0, 256, 768).astype(np.uint8).tolist())
    image.save(path)


# ----------------------------------------------------------------------------- on-disk formats
# Each writer takes (root, rng, raw label maps) and returns the data_root of the config.
def write_ade20k_full(root, rng, raws):
    """The ADE20K_2021_17_01 download (object masks in *_seg.png), then the converter."""
    ade = root / 'ADE20K_2021_17_01'
    for i, ((h, w), classes) in enumerate(zip(SIZES, raws), start=1):
        folder = ade / 'images/ADE/validation/urban/street'
        write_image(folder / f'ADE_val_{i:08d}.jpg', rng, h, w)
        seg = np.zeros((h, w, 3), np.uint8)
        seg[..., 0], seg[..., 1] = classes // 256 * 10, classes % 256
        seg[..., 2] = rng.integers(0, 256, (h, w))  # instance ids, ignored
        Image.fromarray(seg).save(folder / f'ADE_val_{i:08d}_seg.png')
    ade20k_full.convert(str(ade))
    return ade


def write_voc2010(root, rng, names):
    voc = root / 'VOCdevkit' / 'VOC2010'
    for name, (h, w) in zip(names, SIZES):
        write_image(voc / 'JPEGImages' / f'{name}.jpg', rng, h, w)
    split = voc / 'ImageSets' / 'SegmentationContext' / 'val.txt'
    split.parent.mkdir(parents=True, exist_ok=True)
    split.write_text('\n'.join(names) + '\n')
    return voc


def write_pascal_context_459(root, rng, raws):
    """VOC2010 images and split, the full annotations (trainval/*.mat), then the converter."""
    names = ['2008_000002', '2008_000008']
    voc = write_voc2010(root, rng, names)
    (root / 'trainval').mkdir()
    for name, classes in zip(names, raws):
        savemat(str(root / 'trainval' / f'{name}.mat'), {'LabelMap': classes.astype(np.uint16)})
    pascal_context_459.convert(str(voc), str(root / 'trainval'))
    return voc


def write_pascal_context_59(root, rng, raws):
    names = ['2008_000002', '2008_000008']
    voc = write_voc2010(root, rng, names)
    for name, labels in zip(names, raws):
        write_png(voc / 'SegmentationClassContext' / f'{name}.png', labels)
    return voc


def write_voc2012(root, rng, raws):
    voc = root / 'VOCdevkit' / 'VOC2012'
    names = ['2007_000033', '2007_000042']
    for name, (h, w), labels in zip(names, SIZES, raws):
        write_image(voc / 'JPEGImages' / f'{name}.jpg', rng, h, w)
        write_png(voc / 'SegmentationClass' / f'{name}.png', labels, mode='P')
    split = voc / 'ImageSets' / 'Segmentation' / 'val.txt'
    split.parent.mkdir(parents=True, exist_ok=True)
    split.write_text('\n'.join(names) + '\n')
    return voc


def pairs_writer(folder, stems, image_path, label_path):
    """A writer of images and label PNGs at ``folder / image_path.format(stem)`` and
    ``folder / label_path.format(stem)``, one stem per image."""
    def write(root, rng, raws):
        for stem, (h, w), labels in zip(stems, SIZES, raws):
            write_image(root / folder / image_path.format(stem), rng, h, w)
            write_png(root / folder / label_path.format(stem), labels)
        return root / folder
    return write


write_cityscapes = pairs_writer(
    'cityscapes', ['frankfurt_000000_000294', 'frankfurt_000000_000576'],
    'leftImg8bit/val/frankfurt/{}_leftImg8bit.png',
    'gtFine/val/frankfurt/{}_gtFine_labelTrainIds.png')
write_bdd100k = pairs_writer('bdd100k', ['7d2f7975-e0c1c5a7', '7d4a9094-0455564b'],
                             'images/10k/val/{}.jpg', 'labels/sem_seg/masks/val/{}.png')
write_coco_stuff = pairs_writer('coco_stuff164k', ['000000000139', '000000000285'],
                                'images/val2017/{}.jpg', 'annotations/val2017/{}_labelTrainIds.png')


def write_sun_rgbd(root, rng, raws):
    """The 37-class release (test images, all label maps), then the converter."""
    for i, ((h, w), labels) in enumerate(zip(SIZES, raws), start=1):
        write_image(root / 'SUNRGBD-test_images' / f'img-{i:06d}.jpg', rng, h, w)
        write_png(root / 'sunrgbd_train_test_labels' / f'img-{i:06d}.png', labels)
    # A training image's label map is in the labels folder too, and is not copied.
    write_png(root / 'sunrgbd_train_test_labels' / 'img-005051.png', raws[0])
    sun_rgbd.convert(str(root / 'SUNRGBD-test_images'), str(root / 'sunrgbd_train_test_labels'),
                     str(root / 'sun_rgbd'))
    return root / 'sun_rgbd'


def write_scannet(root, rng, raws):
    """scannet_frames_25k as downloaded (8-bit NYU40 label images), the scene list, the
    converter."""
    frames = root / 'scannet_frames_25k_download'
    for i, ((h, w), labels) in enumerate(zip(SIZES, raws)):
        scene = f'scene0011_0{i}'
        write_image(frames / scene / 'color' / '000000.jpg', rng, h, w)
        write_png(frames / scene / 'label' / '000000.png', labels)
    (root / 'scannetv2_val.txt').write_text('scene0011_00\nscene0011_01\n')
    out = root / 'scannet_frames_25k'
    scannet.convert(str(frames), str(root / 'scannetv2_val.txt'), str(out))
    return out


# ----------------------------------------------------------------------------- the benchmarks
@dataclass
class Benchmark:
    """A config, the class subset it runs with, and the raw label encoding of its format:
    ``raw_names`` maps the raw value of a class to its name; ``ignored`` are raw values that
    must be ignored (unlabelled, boundary, or a class outside the benchmark's vocabulary)."""
    config: str
    subset: List[str]
    raw_names: Dict[int, str]
    ignored: List[int]
    write: Callable
    ignore_index: int = 255

    def pool(self):
        """Raw values to write: the subset's classes, the ignored values and one class outside
        the subset (mmseg's label map drops it)."""
        other = next(r for r, n in self.raw_names.items() if n not in self.subset)
        return [r for r, n in self.raw_names.items() if n in self.subset] + self.ignored + [other]

    def truth(self, raw):
        """The label (index in the subset) a raw value must load as; IGNORE if none."""
        name = self.raw_names.get(int(raw))
        return self.subset.index(name) if name in self.subset else IGNORE


def mmseg_classes(name):
    import mmseg.datasets as datasets
    return list(getattr(datasets, name).METAINFO['classes'])


def benchmarks():
    city = mmseg_classes('CityscapesDataset')
    voc = dict(enumerate(mmseg_classes('PascalVOCDataset')))
    pc59 = {k + 1: n for k, n in enumerate(mmseg_classes('PascalContextDataset59'))}
    stuff = dict(enumerate(mmseg_classes('COCOStuffDataset')))
    ade = dict(zip(official.ADE20K_847_OBJECT_IDS, official.ADE20K_847))
    pc459 = {k + 1: n for k, n in enumerate(official.PASCAL_CONTEXT_459)}
    sun = {k + 1: n for k, n in enumerate(official.SUN_RGBD_37)}
    scan20 = dict(zip(official.SCANNET_20_NYU40_IDS, official.SCANNET_20))
    scan40 = {k + 1: n for k, n in enumerate(official.SCANNET_40)}
    wall_sky_person, sky_person_car = ['wall', 'sky', 'person'], ['sky', 'person', 'car']
    return [
        # 0 = no object; 1 is an ADE20K object class that is none of the 847.
        Benchmark('ade20k-full', wall_sky_person, ade, [0, 1], write_ade20k_full, 65535),
        Benchmark('pascal-context-459', sky_person_car, pc459, [0], write_pascal_context_459,
                  65535),
        Benchmark('pascal-context-59', ['wall', 'person', 'car'], pc59, [0],
                  write_pascal_context_59),
        Benchmark('voc-21', ['background', 'car', 'person'], voc, [255], write_voc2012),
        # No 'background' in VOC-20: its pixels (0) are ignored like the boundary (255).
        Benchmark('voc-20', ['bicycle', 'car', 'person'], voc, [0, 255], write_voc2012),
        Benchmark('cityscapes', sky_person_car, dict(enumerate(city)), [255], write_cityscapes),
        Benchmark('bdd100k', sky_person_car, dict(enumerate(city)), [255], write_bdd100k),
        Benchmark('coco-stuff', ['person', 'bicycle', 'car'], stuff, [255], write_coco_stuff),
        Benchmark('sun-rgbd', ['wall', 'floor', 'person'], sun, [0], write_sun_rgbd),
        # NYU40 classes outside the benchmark's 20 (13 'blinds') are ignored, as is 0.
        Benchmark('scannet-20', ['wall', 'floor', 'cabinet'], scan20, [0, 13], write_scannet),
        Benchmark('scannet-40', ['wall', 'floor', 'person'], scan40, [0], write_scannet),
    ]


BENCHMARKS = {b.config: b for b in benchmarks()}


def options(benchmark, data_root):
    return [f'test_dataloader.dataset.data_root={data_root}',
            f'test_dataloader.dataset.metainfo.classes=[{",".join(benchmark.subset)}]', *FAST]


def prepared(benchmark, tmp_path, seed=0):
    """Write the benchmark's tiny dataset; returns (data_root, the labels it must load as)."""
    rng = np.random.default_rng(seed)
    raws = raw_maps(rng, benchmark.pool())
    data_root = benchmark.write(tmp_path, rng, raws)
    return data_root, [np.vectorize(benchmark.truth)(raw) for raw in raws]


def reference_metrics(predictions, truths, num_classes):
    """mIoU and aAcc (in %) with numpy, IoUMetric's definition: pixels with an ignored ground
    truth do not count; classes neither predicted nor present are left out of the mean."""
    inter, union = np.zeros(num_classes), np.zeros(num_classes)
    correct = total = 0
    for pred, gt in zip(predictions, truths, strict=True):
        valid = gt != IGNORE
        for c in range(num_classes):
            inter[c] += ((pred == c) & (gt == c) & valid).sum()
            union[c] += (((pred == c) | (gt == c)) & valid).sum()
        correct += ((pred == gt) & valid).sum()
        total += valid.sum()
    present = union > 0
    return (round(float(np.mean(inter[present] / union[present])) * 100, 2),
            round(float(correct / total) * 100, 2))


def check_run(benchmark, metrics, dumped, truths):
    assert len(dumped) == len(truths) == 2
    # The dumped order follows the file names; so does the writing order.
    predictions = [d['pred_sem_seg']['data'].numpy()[0] for d in dumped]
    for d, pred, truth in zip(dumped, predictions, truths):
        gt = d['gt_sem_seg']['data'].numpy()[0]
        assert pred.shape == truth.shape  # predictions at the original resolution
        assert np.array_equal(gt, np.where(truth == IGNORE, benchmark.ignore_index, truth))
        assert set(np.unique(pred)) <= set(range(len(benchmark.subset)))
    miou, aacc = reference_metrics(predictions, truths, len(benchmark.subset))
    assert (metrics['mIoU'], metrics['aAcc']) == (miou, aacc)


def run_test_tool(benchmark, checkpoint, data_root, work_dir):
    out = work_dir / 'predictions.pkl'
    metrics = test_tool.main([config_path(benchmark.config), str(checkpoint), '--work-dir',
                              str(work_dir), '--out', str(out), '--cfg-options',
                              *options(benchmark, data_root)])
    return metrics, pickle.loads(out.read_bytes())


@pytest.mark.parametrize('name', list(BENCHMARKS))
def test_benchmark_config(name, synthetic_checkpoint, tmp_path):
    benchmark = BENCHMARKS[name]
    data_root, truths = prepared(benchmark, tmp_path)
    metrics, dumped = run_test_tool(benchmark, synthetic_checkpoint, data_root, tmp_path / 'work')
    check_run(benchmark, metrics, dumped, truths)


def test_dist_test_agrees(synthetic_checkpoint, tmp_path, monkeypatch):
    """ADE20K-full through tools/dist_test.sh with 2 processes (gloo): the same metrics."""
    # Computed as the worker processes compute (dist_launch.sh: OMP_NUM_THREADS=1; embeddings
    # of the whole vocabulary at once): with random weights, rounding can flip an argmax.
    monkeypatch.setattr(TextEncoder, 'class_embeddings', ORIGINAL_CLASS_EMBEDDINGS)
    benchmark = BENCHMARKS['ade20k-full']
    data_root, truths = prepared(benchmark, tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        metrics, dumped = run_test_tool(benchmark, synthetic_checkpoint, data_root,
                                        tmp_path / 'one')
    finally:
        torch.set_num_threads(threads)
    check_run(benchmark, metrics, dumped, truths)
    env = dict(os.environ, PYTHON=sys.executable, PORT='29531')
    subprocess.run([str(ROOT / 'tools' / 'dist_test.sh'), config_path(benchmark.config),
                    str(synthetic_checkpoint), '2', '--work-dir', str(tmp_path / 'dist'),
                    '--cfg-options', *options(benchmark, data_root)],
                   check=True, env=env, cwd=tmp_path, timeout=600)
    logs = glob.glob(str(tmp_path / 'dist' / '*' / '*.json'))
    dist_metrics = json.loads(open(logs[0]).read().strip().splitlines()[-1])
    assert (dist_metrics['mIoU'], dist_metrics['aAcc']) == (metrics['mIoU'], metrics['aAcc'])


@pytest.mark.parametrize('name', list(BENCHMARKS))
def test_missing_dataset_names_the_layout(name, synthetic_checkpoint, tmp_path):
    """The run stops before building anything, naming the missing folder, the dataset class and
    the dataset's entry in README's "Datasets" section."""
    with pytest.raises(FileNotFoundError,
                       match=r'nowhere/.*does not exist.*type .*Dataset.*README.md, '
                             r'"Datasets" > "[^"]+"'):
        test_tool.main([config_path(name), str(synthetic_checkpoint), '--work-dir',
                        str(tmp_path), '--cfg-options',
                        f'test_dataloader.dataset.data_root={tmp_path}/nowhere'])
