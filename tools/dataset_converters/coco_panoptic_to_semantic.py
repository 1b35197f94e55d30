"""Make COCO semantic label PNGs (133 panoptic categories) from the panoptic annotations.

    python tools/dataset_converters/coco_panoptic_to_semantic.py data/coco [--splits val2017 ...]

Reads ``annotations/panoptic_<split>.json`` and ``annotations/panoptic_<split>/*.png`` and writes
``annotations/panoptic_semseg_<split>/*.png``: every pixel holds the index of its segment's
category in the json's category list (for COCO the 80 things, then the 53 stuff classes: the
order of ``configs/_base_/datasets/coco_semantic.py``), 255 where no segment is.

The per-image conversion is mmdetection's own
(``tools/dataset_converters/prepare_coco_semantic_annos_from_panoptic_annos.py``, shipped with the
mmdet package); its command line always converts train2017 too and stops where that is missing,
so this script calls its function for the splits asked for.
"""
import argparse
import importlib.util
import json
import sys
from pathlib import Path

MMDET_CONVERTER = 'tools/dataset_converters/prepare_coco_semantic_annos_from_panoptic_annos.py'


def load_mmdet_converter():
    """mmdet's converter module, from its package data (pip) or its source checkout."""
    spec = importlib.util.find_spec('mmdet')
    if spec is None:
        raise ImportError('mmdet is not installed; run bash tools/setup_env.sh first.')
    package_dir = Path(spec.origin).parent
    candidates = [package_dir / '.mim' / MMDET_CONVERTER, package_dir.parent / MMDET_CONVERTER]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(f'mmdet\'s {MMDET_CONVERTER} is not in {candidates[0]} or '
                                f'{candidates[1]}; reinstall mmdet 3.x from PyPI.')
    name = 'mmdet_prepare_coco_semantic_annos_from_panoptic_annos'
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    # Registered by name so that its worker pool can pickle the per-image function.
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


def convert(coco_root: str, split: str = 'val2017') -> Path:
    """Write ``<coco_root>/annotations/panoptic_semseg_<split>/`` and return its path."""
    annotations = Path(coco_root) / 'annotations'
    panoptic_json = annotations / f'panoptic_{split}.json'
    panoptic_dir = annotations / f'panoptic_{split}'
    for path in (panoptic_json, panoptic_dir):
        if not path.exists():
            raise FileNotFoundError(
                f'{path} does not exist. Download panoptic_annotations_trainval2017.zip from '
                f'https://cocodataset.org/#download, unzip it into {Path(coco_root)}, then unzip '
                f'{annotations}/panoptic_{split}.zip inside {annotations}.')
    with open(panoptic_json) as f:
        categories = json.load(f)['categories']
    out_dir = annotations / f'panoptic_semseg_{split}'
    load_mmdet_converter().separate_coco_semantic_from_panoptic(
        str(panoptic_json), str(panoptic_dir), str(out_dir), categories)
    return out_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('coco_root', help='COCO folder holding annotations/ (e.g. data/coco)')
    parser.add_argument('--splits', nargs='+', default=['val2017'],
                        help='splits to convert (default: val2017)')
    args = parser.parse_args(argv)
    for split in args.splits:
        print(f'Wrote {convert(args.coco_root, split)}')


if __name__ == '__main__':
    main()
