r"""Lay out the ScanNet 25k-frame validation frames as the official X-Decoder evaluation reads them.

    python tools/dataset_converters/scannet.py scannet_frames_25k/ scannetv2_val.txt \
        data/scannet_frames_25k [--tsv scannetv2-labels.combined.tsv]

Inputs, from the ScanNet download (github.com/ScanNet/ScanNet): ``scannet_frames_25k/`` with
``<scene>/color/<frame>.jpg`` and ``<scene>/label/<frame>.png``, and the scene list of the split
(``scannetv2_val.txt``). The download's label images are already in the NYUv2 40-label set, as
8-bit PNGs (ScanNet's BenchmarkScripts README: its 2d_helpers convert the 16-bit ScanNet label
ids to 8-bit NYU40 PNGs, and the 25k-frame subset comes pre-processed); they are read as they
are. 16-bit label images (frames exported from the ``*_2d-label.zip`` files yourself) hold ScanNet
label ids and are mapped to NYU40 through the label table ``scannetv2-labels.combined.tsv``
(columns ``id`` and ``nyu40id``), given with ``--tsv``. Writes under ``<out>``:

* ``images/<scene>/color/<frame>.jpg`` (copied);
* ``images/<scene>/label41/<frame>.png``: NYU40 id (1..40, 0 = unlabelled), for ScanNet-40;
* ``images/<scene>/label21/<frame>.png``: the ScanNet benchmark's 20 classes (1..20 in the
  order of ``SCANNET_20_NYU40_IDS``, 0 = other or unlabelled), for ScanNet-20;
* ``meta/val.txt``: ``<scene>/color/<frame>.jpg`` per line.

read by ``ScanNetSegDataset`` / ``ScanNet40SegDataset``.
"""
import argparse
import csv
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from projects.XDecoder.xdecoder.benchmark_classes import SCANNET_20_NYU40_IDS  # noqa: E402


def nyu40_lookup(tsv: str) -> np.ndarray:
    """ScanNet label id -> NYU40 id (0 for ids the table does not list)."""
    with open(tsv, newline='') as f:
        rows = [(int(r['id']), int(r['nyu40id'] or 0)) for r in csv.DictReader(f, delimiter='\t')]
    lookup = np.zeros(max(i for i, _ in rows) + 1, np.uint8)
    for scannet_id, nyu40_id in rows:
        lookup[scannet_id] = nyu40_id
    return lookup


def benchmark_20_lookup() -> np.ndarray:
    """NYU40 id -> ScanNet-20 label (1..20, 0 = not one of the 20)."""
    lookup = np.zeros(41, np.uint8)
    lookup[list(SCANNET_20_NYU40_IDS)] = np.arange(1, 21)
    return lookup


def read_nyu40(path: Path, to_nyu40) -> np.ndarray:
    """A label image as NYU40 ids: 8-bit images already are; 16-bit ones hold ScanNet ids,
    mapped through ``to_nyu40`` (from the label table; None if none was given)."""
    image = Image.open(path)
    labels = np.asarray(image)
    if labels.dtype == np.uint8 and image.mode in ('L', 'P'):
        if labels.max() > 40:
            raise ValueError(f'{path}: 8-bit label image with value {labels.max()}; NYU40 ids '
                             'are 0..40. Is this a label image of scannet_frames_25k?')
        return labels
    if to_nyu40 is None:
        raise ValueError(f'{path} is a {image.mode} label image, i.e. ScanNet label ids (the '
                         '25k-frame download has 8-bit NYU40 images): pass --tsv '
                         'scannetv2-labels.combined.tsv to map them to NYU40.')
    raw = labels.astype(np.int64)
    nyu40 = np.zeros(raw.shape, np.uint8)
    known = raw < len(to_nyu40)
    nyu40[known] = to_nyu40[raw[known]]
    return nyu40


def convert(frames: str, scene_list: str, out: str, tsv: str = None, split: str = 'val') -> int:
    """Convert every frame of the listed scenes; returns how many."""
    frames, out = Path(frames), Path(out)
    to_nyu40 = nyu40_lookup(tsv) if tsv else None
    to_20 = benchmark_20_lookup()
    scenes = [s.strip() for s in Path(scene_list).read_text().splitlines() if s.strip()]
    listed = []
    for scene in scenes:
        colors = sorted((frames / scene / 'color').glob('*.jpg'))
        if not colors:
            raise FileNotFoundError(f'No {frames / scene}/color/*.jpg: is {frames} the unpacked '
                                    'scannet_frames_25k.zip?')
        target = out / 'images' / scene
        for sub in ('color', 'label41', 'label21'):
            (target / sub).mkdir(parents=True, exist_ok=True)
        for color in colors:
            nyu40 = read_nyu40(frames / scene / 'label' / f'{color.stem}.png', to_nyu40)
            shutil.copyfile(color, target / 'color' / color.name)
            Image.fromarray(nyu40).save(target / 'label41' / f'{color.stem}.png')
            Image.fromarray(to_20[nyu40]).save(target / 'label21' / f'{color.stem}.png')
            listed.append(f'{scene}/color/{color.name}')
    (out / 'meta').mkdir(parents=True, exist_ok=True)
    (out / 'meta' / f'{split}.txt').write_text('\n'.join(listed) + '\n')
    return len(listed)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('frames', help='unpacked scannet_frames_25k/')
    parser.add_argument('scene_list', help='scannetv2_val.txt')
    parser.add_argument('out', help='output folder, e.g. data/scannet_frames_25k')
    parser.add_argument('--tsv', help='scannetv2-labels.combined.tsv: only for 16-bit label '
                        'images with ScanNet label ids (the download\'s are 8-bit NYU40)')
    args = parser.parse_args(argv)
    print(f'Converted {convert(args.frames, args.scene_list, args.out, args.tsv)} frames')


if __name__ == '__main__':
    main()
