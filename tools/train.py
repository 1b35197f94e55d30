"""Train or fine-tune an X-Decoder config with mmengine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--cfg-options key=value ...] [--launcher {none,pytorch,slurm,mpi}]
"""
import argparse
import os.path as osp
import sys

from mmengine.runner import Runner

# Configs import the project as `projects.XDecoder.xdecoder`: make the repo root importable even
# when the package is not pip-installed; runtime.py lies beside this file.
TOOLS = osp.dirname(osp.abspath(__file__))
sys.path[:0] = [osp.dirname(TOOLS), TOOLS]
from runtime import (adapt_to_machine, add_runner_args, check_inputs,  # noqa: E402
                     config_from_args, run_cli, trust_mmengine_checkpoints)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train an X-Decoder model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the actual batch size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the latest checkpoint in work_dir if '
                        'no CKPT is given')
    add_runner_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = config_from_args(args)
    if args.amp:
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_wrapper not in ('OptimWrapper', 'AmpOptimWrapper'):
            raise ValueError(f'--amp needs OptimWrapper, the config uses {optim_wrapper}')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise ValueError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        if 'batch_size' not in cfg.train_dataloader:
            raise ValueError('--auto-scale-lr scales by one batch size; a joint config has one '
                             'per stream: scale optim_wrapper.optimizer.lr yourself.')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    check_inputs(cfg, None if cfg.get('resume') else cfg.get('load_from'), 'train_dataloader')
    adapt_to_machine(cfg)
    trust_mmengine_checkpoints()

    runner = Runner.from_cfg(cfg)
    runner.train()


if __name__ == '__main__':
    run_cli(main)
