"""Make the official BDD100K panoptic json readable by mmdet: categories listed things first.

    python tools/dataset_converters/bdd100k_panoptic.py data/bdd100k [--split val]

Reads ``labels/pan_seg/meta/coco_<split>.json`` (the COCO panoptic json of the official
X-Decoder evaluation, categories 1..40 in id order: the 30 stuff categories, then the 10 things)
and writes ``labels/pan_seg/meta/coco_<split>_mmdet.json``, the same with the categories listed
things first, then stuff (each in id order). mmdet maps label k to the k-th json category named
in the config's classes, in the json's order, and its labels are the things, then the stuff.
Images, segments, ids and the PNGs (``labels/pan_seg/coco_pano/<split>/``) are unchanged.
"""
import argparse
import json
from pathlib import Path


def convert(root: str, split: str = 'val') -> Path:
    """Write the json; returns its path."""
    meta = Path(root) / 'labels' / 'pan_seg' / 'meta'
    source = meta / f'coco_{split}.json'
    if not source.exists():
        raise FileNotFoundError(
            f'{source} does not exist: the BDD100K panoptic labels in COCO panoptic format '
            '(README "Datasets": BDD100K).')
    data = json.loads(source.read_text())
    data['categories'] = sorted(data['categories'], key=lambda c: not c['isthing'])
    out = meta / f'coco_{split}_mmdet.json'
    out.write_text(json.dumps(data))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('root', help='the BDD100K folder (holding images/, labels/)')
    parser.add_argument('--split', default='val', help='val (default) or train')
    args = parser.parse_args(argv)
    print(f'Wrote {convert(args.root, args.split)}')


if __name__ == '__main__':
    main()
