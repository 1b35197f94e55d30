"""The zero-shot semantic benchmarks mmsegmentation has no dataset class for, and the two pieces
that let the detector evaluate on mmsegmentation's datasets.

* ``ADE20KFullDataset`` (847 classes), ``PascalContext459Dataset``, ``SUNRGBDDataset`` (37) and
  ``ScanNetSegDataset`` (20 or 40): mmseg ``BaseSegDataset`` subclasses, so mmseg's
  ``LoadAnnotations`` / ``PackSegInputs`` / ``IoUMetric`` serve them as they serve mmseg's own
  datasets. Their folders are made by ``tools/dataset_converters/`` (see README "Datasets").
* ``LoadSegAnnotations16``: mmseg's ``LoadAnnotations`` casts label maps to uint8; the 847 and
  459 class label maps are 16-bit, 65535 = unlabelled.
* ``DatasetVocabularyHook``: mmseg's datasets do not put class names into the samples (mmdet's
  ``return_classes`` does); the hook hands the evaluated dataset's names to the model as its
  vocabulary (``model.test_cfg['classes']``), after any ``metainfo.classes`` subset.
"""
import os.path as osp

import mmcv
import numpy as np
from mmdet.registry import DATASETS, HOOKS, TRANSFORMS
from mmengine import fileio
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.datasets import BaseSegDataset
from mmseg.datasets.transforms import LoadAnnotations

from .benchmark_classes import ADE20K_847, PASCAL_CONTEXT_459, SCANNET_20, SCANNET_40, SUN_RGBD_37

UNLABELLED_16BIT = 65535


class _Seg16Dataset(BaseSegDataset):
    """``*.jpg`` images and 16-bit ``*.tif`` label maps: label = class index, 65535 =
    unlabelled (read with ``LoadSegAnnotations16``)."""

    def __init__(self, img_suffix='.jpg', seg_map_suffix='.tif', reduce_zero_label=False,
                 ignore_index=UNLABELLED_16BIT, **kwargs):
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=reduce_zero_label, ignore_index=ignore_index, **kwargs)


@DATASETS.register_module()
class ADE20KFullDataset(_Seg16Dataset):
    """ADE20K-full validation, 847 classes (the official X-Decoder names), as
    ``tools/dataset_converters/ade20k_full.py`` writes it."""
    METAINFO = dict(classes=ADE20K_847)


@DATASETS.register_module()
class PascalContext459Dataset(_Seg16Dataset):
    """PASCAL Context with all 459 classes (``labels.txt`` order) on the VOC2010 images, as
    ``tools/dataset_converters/pascal_context_459.py`` writes it."""
    METAINFO = dict(classes=PASCAL_CONTEXT_459)


@DATASETS.register_module()
class SUNRGBDDataset(BaseSegDataset):
    """SUN RGB-D test split, 37 classes: ``*.jpg`` images and ``*.png`` label maps with values
    0..37 (0 = unlabelled, k = class k - 1), the layout of the official X-Decoder evaluation."""
    METAINFO = dict(classes=SUN_RGBD_37)

    def __init__(self, img_suffix='.jpg', seg_map_suffix='.png', reduce_zero_label=True,
                 **kwargs):
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=reduce_zero_label, **kwargs)


@DATASETS.register_module()
class ScanNetSegDataset(BaseSegDataset):
    """ScanNet 25k-frame validation frames, the 20 classes of the ScanNet benchmark.

    ``ann_file`` lists one frame per line as ``<scene>/color/<frame>.jpg`` relative to
    ``data_prefix['img_path']``; its label map is the PNG of the same name in the scene's
    ``LABEL_FOLDER`` (0 = unlabelled, k = class k - 1): the layout of the official X-Decoder
    evaluation, written by ``tools/dataset_converters/scannet.py``.
    """
    METAINFO = dict(classes=SCANNET_20)
    LABEL_FOLDER = 'label21'

    def __init__(self, reduce_zero_label=True, **kwargs):
        super().__init__(img_suffix='.jpg', seg_map_suffix='.png',
                         reduce_zero_label=reduce_zero_label, **kwargs)

    def load_data_list(self):
        image_dir = self.data_prefix.get('img_path', '')
        data_list = []
        for line in fileio.list_from_file(self.ann_file, backend_args=self.backend_args):
            if not line.strip():
                continue
            frame = line.split()[0]
            scene, _, name = frame.split('/')
            data_list.append(dict(
                img_path=osp.join(image_dir, frame),
                seg_map_path=osp.join(image_dir, scene, self.LABEL_FOLDER,
                                      osp.splitext(name)[0] + self.seg_map_suffix),
                label_map=self.label_map, reduce_zero_label=self.reduce_zero_label,
                seg_fields=[]))
        return data_list


@DATASETS.register_module()
class ScanNet40SegDataset(ScanNetSegDataset):
    """The same ScanNet frames with the 40 NYU40 classes (label maps in ``label41``)."""
    METAINFO = dict(classes=SCANNET_40)
    LABEL_FOLDER = 'label41'


@TRANSFORMS.register_module()
class LoadSegAnnotations16(LoadAnnotations):
    """mmseg's ``LoadAnnotations`` for 16-bit label maps (more than 255 classes).

    The label map is read unchanged (no cast to uint8). A class subset's ``label_map`` marks
    dropped classes 255, which is a class here, so they become ``ignore_index`` instead.
    """

    def __init__(self, ignore_index=UNLABELLED_16BIT, **kwargs):
        super().__init__(**kwargs)
        self.ignore_index = ignore_index

    def _load_seg_map(self, results: dict) -> None:
        if results.get('reduce_zero_label'):
            raise ValueError('LoadSegAnnotations16 reads label maps whose 0 is a class; set '
                             'reduce_zero_label=False on the dataset.')
        data = fileio.get(results['seg_map_path'], backend_args=self.backend_args)
        labels = mmcv.imfrombytes(data, flag='unchanged', backend='cv2')
        if labels.ndim == 3 and labels.shape[2] == 1:
            labels = labels[..., 0]
        if labels.ndim != 2 or labels.dtype not in (np.uint8, np.uint16):
            raise ValueError(f'{results["seg_map_path"]}: expected a single-channel 8/16-bit '
                             f'label map, got {labels.dtype} of shape {labels.shape}.')
        labels = labels.astype(np.int64)
        if results.get('label_map'):
            original = labels.copy()
            for old_id, new_id in results['label_map'].items():
                labels[original == old_id] = self.ignore_index if new_id == 255 else new_id
        results['gt_seg_map'] = labels
        results['seg_fields'].append('gt_seg_map')


@HOOKS.register_module()
class DatasetVocabularyHook(Hook):
    """Before validation/testing, set the model's vocabulary to the dataset's class names."""

    def before_val(self, runner) -> None:
        self._set_vocabulary(runner, runner.val_dataloader)

    def before_test(self, runner) -> None:
        self._set_vocabulary(runner, runner.test_dataloader)

    @staticmethod
    def _set_vocabulary(runner, dataloader) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        model.test_cfg['classes'] = list(dataloader.dataset.metainfo['classes'])
