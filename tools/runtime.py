"""Runner set-up shared by tools/test.py and tools/train.py (command-line helpers, not part of
the registered package)."""
import argparse
import os
import os.path as osp
import sys
from typing import Optional

import torch
from mmengine.config import Config, DictAction

from projects.XDecoder.xdecoder.checkpoint import check_checkpoint_file
from projects.XDecoder.xdecoder.errors import InputNotFoundError, XDecoderInputError


def add_runner_args(parser: argparse.ArgumentParser) -> None:
    """Arguments every runner tool takes."""
    parser.add_argument('--work-dir', help='directory for logs, results and checkpoints')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, xxx=yyy, e.g. model.test_cfg.mask_thr=0.4')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def config_from_args(args: argparse.Namespace) -> Config:
    """The config with the command line applied; work_dir defaults to work_dirs/<config name>."""
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def adapt_to_machine(cfg: Config) -> None:
    """Without CUDA, run distributed jobs as CPU processes over gloo.

    mmengine's pytorch launcher always calls ``torch.cuda.set_device`` and gives DDP a CUDA
    device id, so on a CPU machine the process group is started here (from torchrun's
    environment), and the DDP wrapper gets no device ids.
    """
    if torch.cuda.is_available():
        return
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    if cfg.get('launcher', 'none') == 'none':
        return
    if cfg.launcher == 'pytorch' and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend='gloo')
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))


def trust_mmengine_checkpoints() -> None:
    """Let torch>=2.6's weights-only loading read the objects mmengine puts into checkpoints.

    Resuming reads the runner's own checkpoint, which stores its message hub (HistoryBuffer and
    numpy values); weights-only loading refuses them unless they are declared safe. A
    HistoryBuffer pickles its statistics methods as ``getattr(HistoryBuffer, 'min')`` and so on,
    hence ``getattr``; the loader still calls only what is listed here, so attributes it fetches
    cannot be run.
    """
    import numpy as np
    from mmengine.logging import HistoryBuffer

    # numpy 2 renamed numpy.core (now a deprecated alias) to numpy._core.
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    safe = [HistoryBuffer, getattr, np.dtype, np.ndarray, multiarray._reconstruct]
    safe += [type(np.dtype(t)) for t in ('float64', 'float32', 'int64', 'int32', 'bool')]
    scalar = getattr(multiarray, 'scalar', None)
    if scalar is not None:
        safe.append(scalar)
    torch.serialization.add_safe_globals(safe)


def _dataset_dirs(dataset_cfg) -> list:
    """Folders/files a dataset config reads, for a pre-flight existence check."""
    if dataset_cfg is None:
        return []
    if 'datasets' in dataset_cfg:  # ConcatDataset and friends
        return [p for d in dataset_cfg['datasets'] for p in _dataset_dirs(d)]
    if 'dataset' in dataset_cfg:  # RepeatDataset and friends
        return _dataset_dirs(dataset_cfg['dataset'])
    root = dataset_cfg.get('data_root', '') or ''
    paths = []
    for key in ('ann_file', 'split_file', 'caption_file', 'grounding_file'):
        if dataset_cfg.get(key):
            paths.append(osp.join(root, dataset_cfg[key]))
    for value in (dataset_cfg.get('data_prefix') or {}).values():
        if value:
            paths.append(osp.join(root, value))
    return paths or ([root] if root else [])


def check_inputs(cfg: Config, checkpoint: Optional[str], loader: str) -> None:
    """Fail early, naming the fix, when the checkpoint or the dataset is missing."""
    if checkpoint is not None:
        check_checkpoint_file(checkpoint, cfg.model.get('backbone', {}).get('embed_dim'))
    loader_cfg = cfg.get(loader) or {}
    # Joint training: one dataloader per stream (train_dataloader = dict(segmentation=...,
    # image_text=...)).
    streams = {loader: loader_cfg} if 'dataset' in loader_cfg or not loader_cfg else {
        f'{loader}.{name}': stream for name, stream in loader_cfg.items()}
    # Training configs name their training data's README entry (train_readme_section); the
    # evaluation data's is readme_section.
    section = (cfg.get('train_readme_section') if loader == 'train_dataloader' else None) or \
        cfg.get('readme_section')
    for name, stream in streams.items():
        dataset = stream.get('dataset')
        missing = [p for p in _dataset_dirs(dataset) if not osp.exists(p)]
        if missing:
            # Each dataset config names its entry in README's "Datasets".
            entry = f' > "{section}"' if section else ''
            raise InputNotFoundError(
                f'Dataset not found: {", ".join(missing)} does not exist (config '
                f'{name}.dataset, type {dataset.get("type")}). See README.md, "Datasets"{entry}, '
                'for where to download it and how to lay it out (mmsegmentation/mmdetection '
                f'dataset docs). Or point --cfg-options {name}.dataset.data_root=... at your '
                'copy.')
    # COCO-style metrics read their annotation files themselves, from paths that do not follow
    # an overridden data_root.
    evaluator = loader.replace('_dataloader', '_evaluator')
    metrics = cfg.get(evaluator) or []
    missing = [f'{evaluator}.{key}={metric[key]}'
               for metric in (metrics if isinstance(metrics, (list, tuple)) else [metrics])
               for key in ('ann_file', 'seg_prefix')
               if metric.get(key) and not osp.exists(metric[key])]
    if missing:
        raise InputNotFoundError(
            f'Metric annotations not found: {", ".join(missing)} does not exist. With another '
            f'data_root, point these at the same copy too (--cfg-options '
            f'{evaluator}.ann_file=...).')


def run_cli(main) -> None:
    """Run a tool's ``main``; a user's bad input ends it with its message and exit status 1,
    without a traceback (the message already names the problem and the fix).

    A distributed run's process group is torn down before the interpreter exits: left to the
    exit, gloo's threads sometimes abort a rank ("terminate called without an active
    exception", exit -6) after all the work is done, which fails the whole torchrun job.
    """
    try:
        main()
    except XDecoderInputError as e:
        sys.exit(f'error: {e}')
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
