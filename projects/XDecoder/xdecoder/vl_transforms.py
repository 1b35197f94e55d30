"""Transforms that carry referring-expression (grounding) masks through mmdet's pipeline.

The grounding masks ride along as extra rows of ``gt_masks`` so that every geometric transform
of mmdet (resize, crop, flip, annotation filtering) treats them exactly like the panoptic
instances; a negative label marks them: ``gt_bboxes_labels = -(phrase_index + 1)``.
:class:`PackXDecoderInputs` takes them out again into ``data_sample.gt_grounding``.
"""
import numpy as np
import pycocotools.mask as mask_utils
import torch
from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import PackDetInputs
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData

from .errors import DatasetError


def decode_segmentation(segmentation, height: int, width: int) -> np.ndarray:
    """A COCO segmentation (polygons, uncompressed or compressed RLE) as a uint8 (H, W) mask;
    several polygons of one object are merged."""
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get('counts'), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return mask_utils.decode(rle).astype(np.uint8)


@TRANSFORMS.register_module()
class LoadGroundingAnnotations(BaseTransform):
    """Append one mask row per grounding phrase to the loaded panoptic annotations.

    Place right after ``LoadPanopticAnnotations`` (with its defaults: boxes, labels, masks and
    the semantic map), before any geometric transform. Reads the fields of
    :class:`~.vl_datasets.CocoPanopticVLDataset`.

    Required keys: ``grounding_task``, ``grounding_text``, ``grounding_sources``,
    ``grounding_refs``, ``segments_info``, ``gt_masks`` (BitmapMasks, N x H x W),
    ``gt_bboxes`` (N x 4), ``gt_bboxes_labels`` (N,), ``gt_ignore_flags`` (N,) and, for
    'class' grounding, ``gt_seg_map`` (H x W).

    Modified keys: the four ``gt_*`` instance keys gain P rows (P phrases): masks decoded from
    the referred object's segmentation ('text') or copied from the panoptic segment ('class'),
    boxes from the masks, labels ``-(p + 1)``, ignore flags False.
    """

    def transform(self, results: dict) -> dict:
        num_phrases = len(results.get('grounding_text', []))
        if num_phrases == 0:
            return results
        if not isinstance(results.get('gt_masks'), BitmapMasks):
            raise DatasetError('LoadGroundingAnnotations needs the bitmap masks of '
                               'LoadPanopticAnnotations (with_mask=True) before it.')
        gt_masks = results['gt_masks']
        height, width = gt_masks.height, gt_masks.width
        if results['grounding_task'] == 'text':
            refs = results['grounding_refs']
            decoded = {}
            for source in set(results['grounding_sources']):
                decoded[source] = decode_segmentation(refs[source]['segmentation'], height, width)
            masks = [decoded[source] for source in results['grounding_sources']]
        else:
            masks = self._segment_masks(results)
        masks = BitmapMasks(np.stack(masks), height, width)
        labels = -(np.arange(num_phrases, dtype=np.int64) + 1)
        results['gt_masks'] = BitmapMasks(
            np.concatenate([gt_masks.masks.reshape(-1, height, width), masks.masks]), height,
            width)
        boxes = masks.get_bboxes(HorizontalBoxes)
        results['gt_bboxes'] = (boxes if len(results['gt_bboxes']) == 0 else
                                HorizontalBoxes.cat([results['gt_bboxes'], boxes]))
        results['gt_bboxes_labels'] = np.concatenate([results['gt_bboxes_labels'], labels])
        results['gt_ignore_flags'] = np.concatenate(
            [results['gt_ignore_flags'], np.zeros(num_phrases, dtype=bool)])
        return results

    @staticmethod
    def _segment_masks(results: dict) -> list:
        """The masks of the 'class' phrases' panoptic segments, (H, W) uint8 each."""
        if results.get('gt_seg_map') is None:
            raise DatasetError('Class grounding needs the semantic map of '
                               'LoadPanopticAnnotations (with_seg=True) before '
                               'LoadGroundingAnnotations.')
        # gt_masks holds the thing segments in segments_info order; stuff segments are the
        # pixels of their category in the semantic map (one stuff segment per category).
        thing_rows, row = {}, 0
        for index, segment in enumerate(results['segments_info']):
            if segment['is_thing']:
                thing_rows[index] = row
                row += 1
        masks = []
        for source in results['grounding_sources']:
            if source in thing_rows:
                masks.append(results['gt_masks'].masks[thing_rows[source]])
            else:
                category = results['segments_info'][source]['category']
                masks.append((results['gt_seg_map'] == category).astype(np.uint8))
        return masks


@TRANSFORMS.register_module()
class PackXDecoderInputs(PackDetInputs):
    """:class:`mmdet.datasets.transforms.PackDetInputs` that splits off the grounding rows.

    Rows with ``gt_bboxes_labels >= 0`` become ``gt_instances`` as usual; rows with a negative
    label (appended by :class:`LoadGroundingAnnotations`) become
    ``data_sample.gt_grounding = InstanceData(masks=BitmapMasks (G, H, W),
    phrase_ids=LongTensor (G,))``, ``phrase_ids`` indexing the ``grounding_text`` metainfo.
    Rows that a crop removed are gone from both; a sample without grounding rows gets an empty
    ``gt_grounding``. The default meta keys add the texts the losses read.
    """

    def __init__(self,
                 meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                            'flip', 'flip_direction', 'text', 'stuff_text', 'gt_caption',
                            'grounding_text', 'grounding_groups', 'grounding_task')):
        super().__init__(meta_keys=meta_keys)

    def transform(self, results: dict) -> dict:
        labels = results.get('gt_bboxes_labels')
        labels = np.zeros(0, dtype=np.int64) if labels is None else labels
        grounding_rows = np.nonzero(labels < 0)[0]
        if 'gt_masks' in results:
            height, width = results['gt_masks'].height, results['gt_masks'].width
        else:
            height, width = results['img_shape'][:2]
        if len(grounding_rows):
            grounding_masks = results['gt_masks'][grounding_rows]
            # A shallow copy: the caller's dict keeps its rows.
            results = dict(results)
            kept_rows = np.nonzero(labels >= 0)[0]
            for key in ('gt_bboxes', 'gt_bboxes_labels', 'gt_masks', 'gt_ignore_flags'):
                if key in results:
                    results[key] = results[key][kept_rows]
        else:
            grounding_masks = BitmapMasks(np.zeros((0, height, width), np.uint8), height, width)
        packed = super().transform(results)
        packed['data_samples'].gt_grounding = InstanceData(
            masks=grounding_masks,
            phrase_ids=torch.as_tensor(-(labels[grounding_rows] + 1), dtype=torch.long))
        return packed
