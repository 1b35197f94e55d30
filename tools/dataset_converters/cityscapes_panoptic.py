"""Make mmdetection-readable Cityscapes panoptic annotations from the official ones.

    python tools/dataset_converters/cityscapes_panoptic.py data/cityscapes [--split val]

Reads what cityscapesscripts' ``csCreatePanopticImgs`` writes (the official COCO-style panoptic
format: ``gtFine/cityscapes_panoptic_<split>.json`` and
``gtFine/cityscapes_panoptic_<split>/<image>_gtFine_panoptic.png``, category ids = Cityscapes
label ids). mmdet's ``CocoPanopticDataset`` joins an image's ``file_name`` to the image folder,
and ``CocoPanopticMetric`` expects each ground-truth PNG to carry its image's name, so this
writes ``gtFine/cityscapes_panoptic_<split>_mmdet.json`` (image ``file_name`` =
``<city>/<image>_leftImg8bit.png``, relative to ``leftImg8bit/<split>/``) and the same PNGs as
``gtFine/cityscapes_panoptic_<split>_mmdet/<image>_leftImg8bit.png``. Segments and ids are
unchanged; the categories are listed things first, then stuff (each in label id order): mmdet
maps label k to the k-th json category named in the config's classes, in the json's order, and
its labels are the things, then the stuff (the official json lists them by label id, stuff
first).
"""
import argparse
import json
import shutil
from pathlib import Path


def convert(root: str, split: str = 'val') -> Path:
    """Write the json and PNG folder; returns the json's path."""
    gt = Path(root) / 'gtFine'
    source_json, source_dir = (gt / f'cityscapes_panoptic_{split}.json',
                               gt / f'cityscapes_panoptic_{split}')
    for path in (source_json, source_dir):
        if not path.exists():
            raise FileNotFoundError(
                f'{path} does not exist: create the panoptic ground truth with cityscapesscripts '
                f'(CITYSCAPES_DATASET={root} csCreatePanopticImgs --set-names {split}).')
    data = json.loads(source_json.read_text())
    out_dir = gt / f'cityscapes_panoptic_{split}_mmdet'
    out_dir.mkdir(exist_ok=True)
    names = {}
    for image in data['images']:
        name = Path(image['file_name']).name  # <city>_<seq>_<frame>_leftImg8bit.png
        image['file_name'] = f'{name.split("_")[0]}/{name}'
        names[image['id']] = name
    for annotation in data['annotations']:
        name = names[annotation['image_id']]
        shutil.copyfile(source_dir / annotation['file_name'], out_dir / name)
        annotation['file_name'] = name
    data['categories'] = sorted(data['categories'], key=lambda c: not c['isthing'])
    out_json = gt / f'cityscapes_panoptic_{split}_mmdet.json'
    out_json.write_text(json.dumps(data))
    return out_json


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('root', help='the Cityscapes folder (holding gtFine/, leftImg8bit/)')
    parser.add_argument('--split', default='val', help='val (default) or train')
    args = parser.parse_args(argv)
    print(f'Wrote {convert(args.root, args.split)}')


if __name__ == '__main__':
    main()
