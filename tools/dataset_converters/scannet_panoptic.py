r"""Make the ScanNet panoptic ground truth of the official X-Decoder evaluation, mmdet-readable.

    python tools/dataset_converters/scannet_panoptic.py scannet_frames_25k/ \
        scannetv2_val.txt data/scannet_frames_25k [--link copy]

Input, from the ScanNet download (github.com/ScanNet/ScanNet): the unpacked
``scannet_frames_25k/`` with ``<scene>/color/<frame>.jpg`` and ``<scene>/instance/<frame>.png``
(16-bit, NYU40 id * 1000 + instance number; ids below 1000 are a NYU40 id alone), and the scene
list of the split (``scannetv2_val.txt``).

The official evaluation (X-Decoder's ``scannet_21_panoptic_val``) reads
``scannet_frames_25k/scannet_panoptic.json`` and ``scannet_panoptic/<scene>__<frame>.png``, which
ScanNet's ``BenchmarkScripts/convert2panoptic.py`` writes in COCO panoptic format: one segment
per distinct instance-PNG value whose class (the value itself below 1000, else value // 1000) is
one of the 20 benchmark NYU40 ids, segment id = that value, category id = the NYU40 id, not
crowd; every other pixel is void (0). The 20 categories keep their NYU40 ids and ScanNet's
names; wall (1) and floor (2) are stuff, the others things (listed first here, as mmdet needs).
This writes the same segments, for the frames of the listed scenes, under ``<out>``:

* ``scannet_panoptic_<split>.json``: images ``<scene>__<frame>.jpg``, annotations and
  categories as above;
* ``scannet_panoptic_<split>/<scene>__<frame>.png``: the panoptic PNGs (id = R + 256 G + 256^2 B);
* ``scannet_panoptic_<split>_images/<scene>__<frame>.jpg``: the frames, hard-linked (or
  copied), under names unique across scenes: mmdet's ``CocoPanopticMetric`` finds an image's
  ground-truth PNG by the image's file name, and frame names repeat in every scene.

read by mmdet's ``CocoPanopticDataset`` and ``CocoPanopticMetric``.
"""
import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from projects.XDecoder.xdecoder import benchmark_classes as classes  # noqa: E402

STUFF_NYU40_IDS = (1, 2)  # wall, floor


def categories() -> list:
    """The 20 categories, things first (then stuff), each in NYU40 id order.

    mmdet maps label k to the json's k-th category named in the config's classes (json order,
    not the order of the names), and its labels are the things, then the stuff: the json must
    list them in that order.
    """
    cats = [dict(id=i, name=name, supercategory='stuff' if i in STUFF_NYU40_IDS else 'thing',
                 isthing=int(i not in STUFF_NYU40_IDS))
            for i, name in zip(classes.SCANNET_20_NYU40_IDS, classes.SCANNET_20)]
    return sorted(cats, key=lambda c: -c['isthing'])


def panoptic_frame(instance: np.ndarray):
    """(panoptic RGB image, segments_info) of one instance PNG."""
    instance = instance.astype(np.int64)
    pan = np.zeros(instance.shape + (3, ), np.uint8)
    segments = []
    for value in np.unique(instance):
        nyu40 = value if value < 1000 else value // 1000
        if nyu40 not in classes.SCANNET_20_NYU40_IDS:
            continue
        mask = instance == value
        pan[mask] = (value % 256, value // 256 % 256, value // 256**2 % 256)
        ys, xs = np.nonzero(mask)
        segments.append(dict(id=int(value), category_id=int(nyu40), iscrowd=0,
                             area=int(mask.sum()),
                             bbox=[int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                                   int(ys.max() - ys.min() + 1)]))
    return pan, segments


def place(source: Path, target: Path, link: str) -> None:
    if target.exists():
        target.unlink()
    if link == 'hard':
        try:
            os.link(source, target)
            return
        except OSError:  # another file system, or no hard links there
            pass
    shutil.copyfile(source, target)


def convert(frames: str, scene_list: str, out: str, split: str = 'val',
            link: str = 'hard') -> Path:
    """Convert every frame of the listed scenes; returns the json's path."""
    frames, out = Path(frames), Path(out)
    scenes = [s.strip() for s in Path(scene_list).read_text().splitlines() if s.strip()]
    png_dir = out / f'scannet_panoptic_{split}'
    image_dir = out / f'scannet_panoptic_{split}_images'
    png_dir.mkdir(parents=True, exist_ok=True)
    image_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for scene in scenes:
        instances = sorted((frames / scene / 'instance').glob('*.png'))
        if not instances:
            raise FileNotFoundError(
                f'No {frames / scene}/instance/*.png: is {frames} the unpacked '
                'scannet_frames_25k.zip (README "Datasets": ScanNet)?')
        for path in instances:
            stem = f'{scene}__{path.stem}'
            instance = np.asarray(Image.open(path))
            pan, segments = panoptic_frame(instance)
            Image.fromarray(pan).save(png_dir / f'{stem}.png')
            place(frames / scene / 'color' / f'{path.stem}.jpg', image_dir / f'{stem}.jpg', link)
            images.append(dict(id=stem, file_name=f'{stem}.jpg', height=int(instance.shape[0]),
                               width=int(instance.shape[1])))
            annotations.append(dict(image_id=stem, file_name=f'{stem}.png',
                                    segments_info=segments))
    out_json = out / f'scannet_panoptic_{split}.json'
    out_json.write_text(json.dumps(dict(images=images, annotations=annotations,
                                        categories=categories())))
    return out_json


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('frames', help='unpacked scannet_frames_25k/')
    parser.add_argument('scene_list', help='scannetv2_val.txt')
    parser.add_argument('out', help='output folder, e.g. data/scannet_frames_25k')
    parser.add_argument('--split', default='val', help='name of the outputs (default val)')
    parser.add_argument('--link', choices=('hard', 'copy'), default='hard',
                        help='hard-link the frames (default; copies where it cannot) or copy')
    args = parser.parse_args(argv)
    print(f'Wrote {convert(args.frames, args.scene_list, args.out, args.split, args.link)}')


if __name__ == '__main__':
    main()
