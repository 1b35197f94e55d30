"""Remove the evaluation images from COCO train annotations (official ``*_filtrefgumdval_filtvlp``).

    python tools/dataset_converters/filter_coco_vlp.py data/coco/annotations \\
        --refcocog-refs data/coco/refcocog/refs(umd).p \\
        --karpathy-test data/coco/annotations/coco_karpathy_test.json [--overwrite]

Pre-training must not see the images the model is later evaluated on: those of RefCOCOg-umd
val and test, and those of the Karpathy test split. Each of ``--files`` (default: the panoptic,
caption and grounding train files, those that exist) is written next to itself as
``<name>_filtrefgumdval_filtvlp.json`` without those images: ``images`` by id, ``annotations``
by image_id. Counts are printed per file.
"""
import argparse
import json
import os.path as osp
import re
import sys

from mmengine.utils import track_iter_progress

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from coco_grounding import load_refs, write_json  # noqa: E402

SUFFIX = '_filtrefgumdval_filtvlp'
DEFAULT_FILES = ('panoptic_train2017.json', 'captions_train2017.json',
                 'grounding_train2017.json')


def karpathy_image_ids(path: str) -> set:
    """COCO ids of the images of a Karpathy json (``[{"image": "val2014/..._<id>.jpg"}]``)."""
    with open(path) as f:
        entries = json.load(f)
    ids = set()
    for entry in entries:
        match = re.search(r'(\d+)\.\w+$', entry['image'])
        if match is None:
            raise ValueError(f'{path}: cannot read a COCO image id from {entry["image"]!r}.')
        ids.add(int(match.group(1)))
    return ids


def excluded_image_ids(refs_path: str, karpathy_paths) -> set:
    """Ids of RefCOCOg val/test images and of the Karpathy test images."""
    refs = load_refs(osp.dirname(refs_path), osp.basename(refs_path))
    ids = {int(ref['image_id']) for ref in refs if ref['split'] in ('val', 'test')}
    for path in karpathy_paths:
        ids |= karpathy_image_ids(path)
    return ids


def filter_annotations(content: dict, excluded: set) -> dict:
    """``content`` without the excluded images and their annotations."""
    out = dict(content)
    if 'images' in content:
        out['images'] = [img for img in content['images'] if img['id'] not in excluded]
    annotations = track_iter_progress(content['annotations'], file=sys.stdout)
    out['annotations'] = [ann for ann in annotations if int(ann['image_id']) not in excluded]
    return out


def out_path(path: str) -> str:
    root, ext = osp.splitext(path)
    return f'{root}{SUFFIX}{ext}'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('ann_dir', help='COCO annotations folder (e.g. data/coco/annotations)')
    parser.add_argument('--refcocog-refs', required=True, help='RefCOCOg refs(umd).p')
    parser.add_argument('--karpathy-test', nargs='+', required=True,
                        help='Karpathy test json(s), e.g. coco_karpathy_test.json')
    parser.add_argument('--files', nargs='+', default=None,
                        help=f'annotation files in ann_dir to filter (default: those of '
                             f'{", ".join(DEFAULT_FILES)} that exist)')
    parser.add_argument('--overwrite', action='store_true', help='replace existing outputs')
    args = parser.parse_args(argv)

    names = args.files or [n for n in DEFAULT_FILES if osp.isfile(osp.join(args.ann_dir, n))]
    if not names:
        parser.error(f'none of {", ".join(DEFAULT_FILES)} is in {args.ann_dir}.')
    paths = [osp.join(args.ann_dir, name) for name in names]
    for path in paths:
        if not osp.isfile(path):
            parser.error(f'{path} does not exist.')
        if osp.exists(out_path(path)) and not args.overwrite:
            parser.error(f'{out_path(path)} exists; pass --overwrite to replace it.')
    excluded = excluded_image_ids(args.refcocog_refs, args.karpathy_test)
    print(f'{len(excluded)} images to remove (RefCOCOg-umd val/test, Karpathy test)')
    for path in paths:
        with open(path) as f:
            content = json.load(f)
        filtered = filter_annotations(content, excluded)
        write_json(filtered, out_path(path), args.overwrite)
        images = (f'images {len(content["images"])} -> {len(filtered["images"])}, '
                  if 'images' in content else '')
        print(f'Wrote {out_path(path)}: {images}annotations {len(content["annotations"])} -> '
              f'{len(filtered["annotations"])}')


if __name__ == '__main__':
    main()
