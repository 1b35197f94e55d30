"""Training and test hooks of the project."""
from typing import Dict, Optional

from mmdet.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import Hook, LoggerHook

from .errors import DatasetError
from .joint_training import ZippedDataLoader
from .vl_datasets import check_class_names


@HOOKS.register_module()
class RankZeroLoggerHook(LoggerHook):
    """mmengine's ``LoggerHook``, with the test summary (``<log_dir>/<timestamp>.json``) written
    by the main process only.

    mmengine's ``after_test_epoch`` dumps it on every process of a distributed run, to the same
    path: two ranks truncating and writing at once left ``{..."time": 0.62}4}`` (the tail of the
    longer write after the shorter one) in a ``dist_test.sh`` run of the suite.
    """

    def after_test_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        if is_main_process():
            super().after_test_epoch(runner, metrics)


@HOOKS.register_module()
class TrainingClassNamesHook(Hook):
    """Before the first step, checks the class names of every training dataset (each stream's
    in joint training): present, distinct, and, for COCO-json datasets, all found among the
    json's categories (mmdet drops a name it does not find, and every label after it shifts).
    The error names the dataset and the fix."""

    def before_train(self, runner) -> None:
        loader = runner.train_loop.dataloader
        loaders = loader.loaders if isinstance(loader, ZippedDataLoader) else {'train': loader}
        for stream, stream_loader in loaders.items():
            dataset = stream_loader.dataset
            meta = dataset.metainfo
            if 'classes' not in meta:  # image-text pairs: no class names
                continue
            source = f'{stream} dataset {type(dataset).__name__}'
            check_class_names(meta['classes'], 'classes', source)
            cat_ids = getattr(dataset, 'cat_ids', None)
            if cat_ids is not None and len(cat_ids) != len(meta['classes']):
                raise DatasetError(
                    f'{source} ({dataset.ann_file}): {len(meta["classes"])} class names in '
                    f'metainfo.classes, but only {len(cat_ids)} of them are category names of '
                    f'the json. Write the json\'s category names exactly, in its order.')
