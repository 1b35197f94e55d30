"""Training datasets of the joint pre-training: COCO panoptic with captions and referring
expressions (the segmentation stream) and image-caption pairs (the image-text stream).

A problem with what a user gave stops the run while the dataset is built, before the first
step, with a :class:`~.errors.DatasetError` naming the file, the entry and the fix; only a missing
image file is found later, by the sample that reads it (:class:`~.errors.InputNotFoundError`).
"""
import json
import os.path as osp
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence

from mmdet.datasets import CocoPanopticDataset
from mmdet.registry import DATASETS
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from .errors import DatasetError, InputNotFoundError

# Suffixes of COCO panoptic class names that are annotation bookkeeping, not words; the official
# 'class' grounding phrases drop them ('wall-other-merged' -> 'wall').
CLASS_NAME_SUFFIXES = ('-other', '-merged', '-stuff')


def check_class_names(names: Optional[Sequence[str]], key: str, source: str) -> None:
    """Raise a :class:`DatasetError` when ``names`` (the metainfo entry ``key``) is missing,
    empty or names a class twice: the text classifier needs one embedding per distinct name."""
    if not names:
        raise DatasetError(
            f'{source}: metainfo "{key}" is missing or empty. Give the class names in the '
            f'dataset config, e.g. metainfo=dict({key}=(...)), in the order of the label ids.')
    duplicated = sorted(name for name, n in Counter(names).items() if n > 1)
    if duplicated:
        raise DatasetError(
            f'{source}: metainfo "{key}" names {duplicated} more than once. Each class needs a '
            f'distinct name (the model tells classes apart by their names); rename or merge them.')


def check_file(path: str, what: str) -> None:
    """Raise a user error for a missing or empty annotation file."""
    if not osp.isfile(path):
        raise InputNotFoundError(f'{what} {path} does not exist (README.md, "Training data").')
    if osp.getsize(path) == 0:
        raise DatasetError(f'{what} {path} is empty; regenerate or re-download it.')


def read_json(path: str, what: str):
    """Load a json file, turning a missing, empty or malformed file into a user error."""
    check_file(path, what)
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise DatasetError(f'{what} {path} is not valid json ({e}); regenerate or '
                               f're-download it.') from None


def clean_class_name(name: str) -> str:
    """The class name as a phrase: 'wall-other-merged' -> 'wall'."""
    for suffix in CLASS_NAME_SUFFIXES:
        name = name.replace(suffix, '')
    return name


@DATASETS.register_module()
class CocoPanopticVLDataset(CocoPanopticDataset):
    """COCO panoptic plus, per image, its captions and referring expressions.

    Everything :class:`mmdet.datasets.CocoPanopticDataset` gives stays (``segments_info``,
    ``instances``, ``seg_map_path``; ``text`` = thing names and ``stuff_text`` = stuff names with
    ``return_classes=True``). Each data_info gains:

    - ``gt_caption`` (list[str]): the image's captions from ``caption_file``.
    - ``grounding_task`` (str): ``'text'`` when the image has referring expressions in
      ``grounding_file``, else ``'class'`` (the official fall-back, trained with a lower weight).
    - ``grounding_text`` (list[str], P phrases): 'text': every sentence of every referred object
      (lower-cased); 'class': the cleaned class name of every non-crowd panoptic segment.
    - ``grounding_groups`` (list[int], P): phrases of one referred object ('text': the object's
      index in the image) or of one class ('class': the label) share a group id.
    - ``grounding_sources`` (list[int], P): where each phrase's mask comes from, read by
      :class:`~.vl_transforms.LoadGroundingAnnotations`: an index into ``grounding_refs``
      ('text') or into ``segments_info`` ('class').
    - ``grounding_refs`` (list[dict]): 'text' only, per referred object ``ref_id`` and its
      ``segmentation`` (COCO polygons or RLE at the image's size).

    Images are left out, and counted in one log line, when they have no panoptic segment or
    (with ``caption_file``) no caption; ``missing_caption='error'`` stops instead.

    Args:
        caption_file (str, optional): COCO captions json (``captions_train2017.json`` format),
            relative to ``data_root``. None: ``gt_caption`` is ``[]``.
        grounding_file (str, optional): the json ``tools/dataset_converters/coco_grounding.py``
            writes (``{"annotations": [{image_id, ref_id, segmentation, sentences: [{raw}]}]}``).
            None: every image uses 'class' grounding.
        missing_caption (str): ``'skip'`` (default) or ``'error'`` for images without captions.
    """

    def __init__(self, *args, caption_file: Optional[str] = None,
                 grounding_file: Optional[str] = None, missing_caption: str = 'skip',
                 **kwargs) -> None:
        if missing_caption not in ('skip', 'error'):
            raise DatasetError(f'missing_caption must be "skip" or "error", not '
                               f'{missing_caption!r}.')
        self.caption_file = caption_file
        self.grounding_file = grounding_file
        self.missing_caption = missing_caption
        super().__init__(*args, **kwargs)

    def _full_path(self, path: str) -> str:
        return path if osp.isabs(path) or not self.data_root else osp.join(self.data_root, path)

    def parse_data_info(self, raw_data_info: dict) -> dict:
        """mmdet's parsing, after checking (once, while the json is loaded) that metainfo
        ``classes`` and the json's categories name the same classes: mmdet silently drops a
        name the json lacks, which shifts every label after it, and fails on a segment of a
        category the names lack."""
        if not self._classes_checked:
            names = {cat['name'] for cat in self.coco.cats.values()}
            missing = sorted(set(self._metainfo['classes']) - names)
            extra = sorted(names - set(self._metainfo['classes']))
            if missing or extra:
                raise DatasetError(
                    f'{type(self).__name__} ({self.ann_file}): metainfo classes {missing} are '
                    f'not categories of the annotation file, and its categories {extra} are not '
                    f'in metainfo classes. Make metainfo "classes" the json\'s category names.')
            self._classes_checked = True
        return super().parse_data_info(raw_data_info)

    def load_data_list(self) -> List[dict]:
        """Load the panoptic json, then attach captions and groundings (see the class doc)."""
        ann_file = self.ann_file
        for key in ('classes', 'thing_classes', 'stuff_classes'):
            check_class_names(self._metainfo.get(key), key, f'{type(self).__name__} ({ann_file})')
        check_file(ann_file, 'Panoptic annotation file')
        self._classes_checked = False
        data_list = super().load_data_list()
        if not data_list:
            raise DatasetError(f'{ann_file} lists no images; check that it is the panoptic '
                               f'annotation file of the split you train on.')
        captions = self._load_captions() if self.caption_file else None
        groundings = self._load_groundings() if self.grounding_file else {}

        kept, no_segments, no_caption = [], 0, []
        for info in data_list:
            if not info['segments_info']:
                no_segments += 1
                continue
            img_captions = captions.get(info['img_id'], []) if captions is not None else []
            if captions is not None and not img_captions:
                no_caption.append(info['img_id'])
                continue
            info['gt_caption'] = img_captions
            info.update(self._grounding(info, groundings.get(info['img_id'], [])))
            kept.append(info)
        if no_caption and self.missing_caption == 'error':
            raise DatasetError(
                f'{len(no_caption)} images of {ann_file} have no caption in {self.caption_file} '
                f'(first image ids: {no_caption[:5]}). Use the caption file of the same split '
                f'(filtered the same way), or missing_caption="skip".')
        print_log(f'{type(self).__name__}: {len(kept)} images; skipped {no_segments} images '
                  f'without panoptic segments and {len(no_caption)} images without captions',
                  logger='current')
        if not kept:
            raise DatasetError(f'No image of {ann_file} has both panoptic segments and captions; '
                               f'check that {self.caption_file} is the same split.')
        return kept

    def _load_captions(self) -> Dict[int, List[str]]:
        self.caption_file = self._full_path(self.caption_file)
        content = read_json(self.caption_file, 'Caption file')
        captions = defaultdict(list)
        for i, ann in enumerate(content.get('annotations', [])):
            if 'image_id' not in ann or not str(ann.get('caption', '')).strip():
                raise DatasetError(f'{self.caption_file}: annotation #{i} ({ann}) lacks an '
                                   f'image_id or a non-empty caption; fix or remove it.')
            captions[int(ann['image_id'])].append(ann['caption'].strip())
        if not captions:
            raise DatasetError(f'{self.caption_file} has no caption annotations; use a COCO '
                               f'captions file (annotations/captions_train2017.json).')
        return captions

    def _load_groundings(self) -> Dict[int, List[dict]]:
        self.grounding_file = self._full_path(self.grounding_file)
        content = read_json(self.grounding_file, 'Grounding file')
        refs = defaultdict(list)
        for ann in content.get('annotations', []):
            ref_id = ann.get('ref_id')
            if not ann.get('segmentation'):
                raise DatasetError(
                    f'{self.grounding_file}: referring expression ref_id={ref_id} has no '
                    f'segmentation (mask). Regenerate the file with '
                    f'tools/dataset_converters/coco_grounding.py or remove this entry.')
            sentences = [(s.get('raw') or s.get('sent') or '').strip().lower()
                         for s in ann.get('sentences', [])]
            if not sentences or not all(sentences):
                raise DatasetError(f'{self.grounding_file}: ref_id={ref_id} has an empty or no '
                                   f'sentence; fix or remove this entry.')
            refs[int(ann['image_id'])].append(
                dict(ref_id=ref_id, segmentation=ann['segmentation'], sentences=sentences))
        return refs

    def _grounding(self, info: dict, refs: List[dict]) -> dict:
        """The grounding fields of one image (see the class doc)."""
        text, groups, sources = [], [], []
        if refs:
            for ref_index, ref in enumerate(refs):
                text += ref['sentences']
                groups += [ref_index] * len(ref['sentences'])
                sources += [ref_index] * len(ref['sentences'])
            return dict(grounding_task='text', grounding_text=text, grounding_groups=groups,
                        grounding_sources=sources,
                        grounding_refs=[dict(ref_id=r['ref_id'], segmentation=r['segmentation'])
                                        for r in refs])
        classes = self._metainfo['classes']
        num_things = len(self._metainfo['thing_classes'])
        for index, segment in enumerate(info['segments_info']):
            # mmdet marks a crowd thing as not a thing; crowds have no single referent.
            if segment['category'] < num_things and not segment['is_thing']:
                continue
            text.append(clean_class_name(classes[segment['category']]))
            groups.append(segment['category'])
            sources.append(index)
        return dict(grounding_task='class', grounding_text=text, grounding_groups=groups,
                    grounding_sources=sources, grounding_refs=[])


@DATASETS.register_module()
class ImageTextDataset(BaseDataset):
    """Image-caption pairs: a jsonl of ``{"image": path, "caption": str}`` lines, or a json
    list of ``{"image": path, "caption": str | [str]}`` (the Karpathy files mmdet's
    ``CocoCaptionDataset`` reads, e.g. ``coco_karpathy_train.json``).

    Entries sharing an image become one sample. data_info: ``img_path`` (``data_prefix.img_path``
    + image), ``img_id`` (the image as written in the file), ``gt_caption`` (list[str]).
    A file is read as jsonl when its name ends with ``.jsonl``, as a json list otherwise.

    An image file that does not exist stops at the sample that reads it, naming the path; with
    ``check_images=True`` every path is checked while the dataset is built.
    """

    def __init__(self, *args, check_images: bool = False, **kwargs) -> None:
        self.check_images = check_images
        super().__init__(*args, **kwargs)

    def _entries(self) -> List[tuple]:
        """``(where, entry)`` pairs; ``where`` names the line or list index for errors."""
        path = self.ann_file
        if not path.endswith('.jsonl'):
            content = read_json(path, 'Image-text annotation file')
            if not isinstance(content, list):
                raise DatasetError(f'{path} is not a json list of {{"image", "caption"}} entries.')
            return [(f'{path}, entry #{i}', entry) for i, entry in enumerate(content)]
        if not osp.isfile(path):
            raise InputNotFoundError(f'Image-text annotation file {path} does not exist '
                                     f'(README.md, "Training data").')
        entries = []
        with open(path) as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    entries.append((f'{path}, line {line_no}', json.loads(line)))
                except json.JSONDecodeError as e:
                    raise DatasetError(f'{path}, line {line_no} is not valid json ({e}); each '
                                       f'line must be {{"image": ..., "caption": ...}}.') from None
        return entries

    def load_data_list(self) -> List[dict]:
        """One data_info per distinct image, in the order of first appearance."""
        entries = self._entries()
        if not entries:
            raise DatasetError(f'{self.ann_file} has no entries; it needs one '
                               f'{{"image": ..., "caption": ...}} per image-caption pair.')
        captions = {}
        for where, entry in entries:
            image = entry.get('image') if isinstance(entry, dict) else None
            if not image:
                raise DatasetError(f'{where} has no "image" ({entry!r}); give the image path '
                                   f'relative to data_prefix.img_path.')
            caption = entry.get('caption')
            texts = caption if isinstance(caption, list) else [caption]
            if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
                raise DatasetError(f'{where}: image {image} has a missing or empty caption; '
                                   f'give a non-empty "caption" or remove the entry.')
            captions.setdefault(image, []).extend(t.strip() for t in texts)
        prefix = self.data_prefix.get('img_path', '')
        data_list = [dict(img_path=osp.join(prefix, image), img_id=image, gt_caption=texts)
                     for image, texts in captions.items()]
        if self.check_images:
            missing = [d['img_path'] for d in data_list if not osp.isfile(d['img_path'])]
            if missing:
                raise InputNotFoundError(
                    f'{len(missing)} images of {self.ann_file} do not exist, e.g. {missing[:3]}; '
                    f'check data_root and data_prefix.img_path.')
        return data_list

    def prepare_data(self, idx: int):
        """Run the pipeline on one sample; a missing local image is named with its fix."""
        data_info = self.get_data_info(idx)
        path = data_info['img_path']
        if '://' not in path and not osp.isfile(path):
            raise InputNotFoundError(f'Image {path} (listed in {self.ann_file}) does not exist; '
                                     f'check data_root and data_prefix.img_path.')
        return self.pipeline(data_info)
