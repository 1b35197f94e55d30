r"""Lay out the SUN RGB-D 37-class test split as the official X-Decoder evaluation reads it.

    python tools/dataset_converters/sun_rgbd.py SUNRGBD-test_images/ \
        sunrgbd_train_test_labels/ data/sun_rgbd

The inputs are the widely used 37-class release of SUN RGB-D
(github.com/ankurhanda/sunrgbd-meta-data: ``SUNRGBD-test_images.tgz`` with ``img-000001.jpg``
... and ``sunrgbd_train_test_labels.tar.gz`` with ``img-000001.png`` ..., values 0..37, 0 =
unlabelled). Every test image and its label map
(same name) are copied to ``<out>/image/test/`` and ``<out>/label37/test/``; read by
``SUNRGBDDataset``.
"""
import argparse
import shutil
from pathlib import Path

import numpy as np
from PIL import Image


def convert(image_dir: str, label_dir: str, out: str, split: str = 'test') -> int:
    """Copy the images of ``image_dir`` and their label maps; returns how many."""
    images = sorted(Path(image_dir).glob('*.jpg'))
    if not images:
        raise FileNotFoundError(f'No *.jpg in {image_dir}: point it at the unpacked '
                                'SUNRGBD-test_images.tgz.')
    out_images, out_labels = Path(out) / 'image' / split, Path(out) / 'label37' / split
    out_images.mkdir(parents=True, exist_ok=True)
    out_labels.mkdir(parents=True, exist_ok=True)
    for image in images:
        label = Path(label_dir) / f'{image.stem}.png'
        if not label.is_file():
            raise FileNotFoundError(f'{label} (the label map of {image}) is missing: point '
                                    'the second argument at sunrgbd_train_test_labels/.')
        values = np.asarray(Image.open(label))
        if values.ndim != 2 or values.max() > 37:
            raise ValueError(f'{label} is not a 37-class label map (values 0..37).')
        shutil.copyfile(image, out_images / image.name)
        shutil.copyfile(label, out_labels / label.name)
    return len(images)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('image_dir', help='unpacked SUNRGBD-test_images.tgz')
    parser.add_argument('label_dir', help='unpacked sunrgbd_train_test_labels.tar.gz')
    parser.add_argument('out', help='output folder, e.g. data/sun_rgbd')
    args = parser.parse_args(argv)
    print(f'Copied {convert(args.image_dir, args.label_dir, args.out)} images and labels')


if __name__ == '__main__':
    main()
