"""Make the PASCAL Context 459-class label maps from the dataset's full annotations.

    python tools/dataset_converters/pascal_context_459.py data/VOCdevkit/VOC2010 trainval/

``trainval/`` is the unpacked ``trainval.tar.gz`` of
https://cs.stanford.edu/~roozbeh/pascal-context/ (one ``<image id>.mat`` per image,
``LabelMap``: 1..459 = the classes of its ``labels.txt``, 0 = unlabelled).
For every image of ``ImageSets/SegmentationContext/val.txt`` (made by mmsegmentation's
``tools/dataset_converters/pascal_context.py``, see README) this writes
``SegmentationClassContext459/<image id>.tif`` into the VOC2010 folder: 16-bit, label k - 1 for
class k, 65535 for unlabelled; read by ``PascalContext459Dataset``.
"""
import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import loadmat

UNLABELLED = 65535


def convert(voc2010: str, mat_dir: str, split: str = 'val') -> int:
    """Convert the images of ``split``; returns how many."""
    voc2010, mat_dir = Path(voc2010), Path(mat_dir)
    split_file = voc2010 / 'ImageSets' / 'SegmentationContext' / f'{split}.txt'
    if not split_file.is_file():
        raise FileNotFoundError(
            f'{split_file} does not exist: prepare PASCAL Context 59 with mmsegmentation first '
            '(README "Datasets": PASCAL Context), which writes the split files.')
    out_dir = voc2010 / 'SegmentationClassContext459'
    out_dir.mkdir(exist_ok=True)
    names = [n.strip() for n in split_file.read_text().splitlines() if n.strip()]
    for name in names:
        mat = mat_dir / f'{name}.mat'
        if not mat.is_file():
            raise FileNotFoundError(f'{mat} is missing: point the second argument at the '
                                    'unpacked trainval/ folder of trainval.tar.gz.')
        classes = loadmat(str(mat))['LabelMap'].astype(np.int64)
        labels = np.where(classes > 0, classes - 1, UNLABELLED).astype(np.uint16)
        Image.fromarray(labels).save(out_dir / f'{name}.tif')
    return len(names)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('voc2010', help='VOCdevkit/VOC2010 in mmsegmentation\'s layout')
    parser.add_argument('mat_dir', help='the trainval/ folder of trainval.tar.gz')
    parser.add_argument('--split', default='val', help='val (default) or train')
    args = parser.parse_args(argv)
    print(f'Converted {convert(args.voc2010, args.mat_dir, args.split)} label maps')


if __name__ == '__main__':
    main()
