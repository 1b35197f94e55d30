"""Make the ADE20K-full (847 classes) validation folders from the ADE20K_2021_17_01 download.

    python tools/dataset_converters/ade20k_full.py data/ADE20K_2021_17_01 [--split validation]

Reads ``images/ADE/<split>/**/ADE_*.jpg`` and the object masks beside them (``*_seg.png``: the
object class of a pixel is R / 10 * 256 + G) and writes, under the same root,
``images_detectron2/<split>/<name>.jpg`` (the image, copied) and
``annotations_detectron2/<split>/<name>.tif`` (16-bit: the label of the object class among the
847 of ``ADE20K_847_OBJECT_IDS``, 65535 for every other class and for unlabelled pixels): the
layout of the official X-Decoder evaluation, read by ``ADE20KFullDataset``.
"""
import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from projects.XDecoder.xdecoder.benchmark_classes import ADE20K_847_OBJECT_IDS  # noqa: E402

UNLABELLED = 65535


def object_classes(seg_png: Path) -> np.ndarray:
    """The ADE20K object class of every pixel of a ``*_seg.png`` (0 = none)."""
    rgb = np.asarray(Image.open(seg_png).convert('RGB')).astype(np.int32)
    return rgb[..., 0] // 10 * 256 + rgb[..., 1]


def labels_847(classes: np.ndarray) -> np.ndarray:
    lookup = np.full(max(max(ADE20K_847_OBJECT_IDS), int(classes.max())) + 1, UNLABELLED,
                     np.uint16)
    lookup[list(ADE20K_847_OBJECT_IDS)] = np.arange(len(ADE20K_847_OBJECT_IDS))
    return lookup[classes]


def convert(root: str, split: str = 'validation') -> int:
    """Convert every image of ``split``; returns how many."""
    root = Path(root)
    source = root / 'images' / 'ADE' / split
    images = sorted(source.rglob('ADE_*.jpg'))
    if not images:
        raise FileNotFoundError(
            f'No ADE_*.jpg under {source}. Download ADE20K_2021_17_01.zip from '
            'https://groups.csail.mit.edu/vision/datasets/ADE20K/ (registration needed) and '
            f'unzip it so that {source} exists.')
    image_dir = root / 'images_detectron2' / split
    label_dir = root / 'annotations_detectron2' / split
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    for image in images:
        seg = image.with_name(image.stem + '_seg.png')
        if not seg.is_file():
            raise FileNotFoundError(f'{seg} (the object mask of {image}) is missing.')
        shutil.copyfile(image, image_dir / image.name)
        Image.fromarray(labels_847(object_classes(seg))).save(label_dir / f'{image.stem}.tif')
    return len(images)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('root', help='the unzipped ADE20K_2021_17_01 folder')
    parser.add_argument('--split', default='validation', help='validation (default) or training')
    args = parser.parse_args(argv)
    print(f'Converted {convert(args.root, args.split)} images under {args.root}')


if __name__ == '__main__':
    main()
