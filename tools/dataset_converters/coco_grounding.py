"""Write the referring expressions of RefCOCOg (UMD split) per COCO image, for pre-training.

    python tools/dataset_converters/coco_grounding.py data/coco/refcocog \\
        data/coco/annotations/grounding_train2017.json [--split train] [--overwrite]

Reads ``refs(umd).p`` (the refer toolkit's list of refs: ref_id, ann_id, image_id, split,
category_id, sentences) and ``instances.json`` (COCO instances with the referred objects'
segmentations) from the RefCOCOg folder, and writes
``{"annotations": [{image_id, ref_id, ann_id, category_id, split, sentences: [{sent_id, raw,
sent}], segmentation, bbox}]}``: one entry per ref of the split, the layout the official
pre-training's grounding file has (read by ``CocoPanopticVLDataset``). RefCOCOg's images are
COCO train2014 images, which keep their ids in train2017.
"""
import argparse
import json
import os.path as osp
import pickle
import sys

from mmengine.utils import track_iter_progress


class ConversionError(ValueError):
    """Input that cannot be converted; the message names the entry and the fix."""


def load_refs(refcocog_dir: str, split_file: str = 'refs(umd).p') -> list:
    """The refer toolkit's pickled list of refs."""
    path = osp.join(refcocog_dir, split_file)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} does not exist; download refcocog.zip (refer toolkit) '
                                f'and unzip it into {osp.dirname(refcocog_dir) or "."}.')
    with open(path, 'rb') as f:
        refs = pickle.load(f)
    if not refs:
        raise ConversionError(f'{path} holds no refs; re-download refcocog.zip.')
    return refs


def convert(refcocog_dir: str, split: str = 'train') -> dict:
    """The grounding json (as a dict) of the refs of ``split``."""
    refs = [ref for ref in load_refs(refcocog_dir) if ref['split'] == split]
    if not refs:
        raise ConversionError(f'{refcocog_dir}: no ref has split "{split}".')
    instances_path = osp.join(refcocog_dir, 'instances.json')
    if not osp.isfile(instances_path):
        raise FileNotFoundError(f'{instances_path} does not exist; it comes with refcocog.zip.')
    with open(instances_path) as f:
        anns = {ann['id']: ann for ann in json.load(f)['annotations']}
    annotations = []
    for ref in track_iter_progress(refs, file=sys.stdout):
        ann = anns.get(ref['ann_id'])
        if ann is None or not ann.get('segmentation'):
            raise ConversionError(
                f'ref_id={ref["ref_id"]}: its object (ann_id={ref["ann_id"]}) has no '
                f'segmentation in {instances_path}; use the instances.json of the same '
                f'refcocog.zip.')
        sentences = [dict(sent_id=s.get('sent_id'), raw=s.get('raw', s['sent']), sent=s['sent'])
                     for s in ref['sentences']]
        annotations.append(
            dict(image_id=int(ref['image_id']), ref_id=ref['ref_id'], ann_id=ref['ann_id'],
                 category_id=ref['category_id'], split=ref['split'], sentences=sentences,
                 segmentation=ann['segmentation'], bbox=ann['bbox']))
    return dict(info=dict(description=f'RefCOCOg (umd) {split} referring expressions'),
                annotations=annotations)


def write_json(content, path: str, overwrite: bool) -> None:
    """Write ``content``; an existing file is kept unless ``overwrite``."""
    if osp.exists(path) and not overwrite:
        raise FileExistsError(f'{path} exists; pass --overwrite to replace it.')
    with open(path, 'w') as f:
        json.dump(content, f)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('refcocog_dir', help='folder with refs(umd).p and instances.json')
    parser.add_argument('out_file', help='e.g. data/coco/annotations/grounding_train2017.json')
    parser.add_argument('--split', default='train', help='refs split to keep (default: train)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing out_file')
    args = parser.parse_args(argv)
    if osp.exists(args.out_file) and not args.overwrite:
        parser.error(f'{args.out_file} exists; pass --overwrite to replace it.')
    content = convert(args.refcocog_dir, args.split)
    write_json(content, args.out_file, args.overwrite)
    images = len({ann['image_id'] for ann in content['annotations']})
    sentences = sum(len(ann['sentences']) for ann in content['annotations'])
    print(f'Wrote {args.out_file}: {len(content["annotations"])} refs, {sentences} sentences, '
          f'{images} images')


if __name__ == '__main__':
    main()
