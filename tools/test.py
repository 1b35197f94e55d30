"""Evaluate an X-Decoder config and checkpoint with mmengine's Runner.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE] [--show-dir DIR]
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
    parser = argparse.ArgumentParser(description='Test (evaluate) an X-Decoder model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file (e.g. xdecoder_focalt_best_openseg.pt)')
    parser.add_argument('--out', help='dump predictions to a pickle file (must not exist yet)')
    parser.add_argument('--show-dir', help='save drawn predictions under work_dir/timestamp/DIR')
    parser.add_argument('--show', action='store_true', help='show drawn predictions in a window')
    parser.add_argument('--wait-time', type=float, default=2, help='seconds between shown images')
    parser.add_argument('--precision', choices=['fp32', 'bf16', 'fp16'],
                        help="inference precision (model.test_cfg.precision; default: the "
                        "config's, fp32): bf16 on CPU or GPU, fp16 on GPU; attention masks, "
                        'class scores and post-processing stay fp32')
    add_runner_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = config_from_args(args)
    cfg.load_from = args.checkpoint
    if args.precision is not None:
        cfg.model.test_cfg = {**cfg.model.get('test_cfg', {}), 'precision': args.precision}
    check_inputs(cfg, args.checkpoint, 'test_dataloader')
    adapt_to_machine(cfg)
    trust_mmengine_checkpoints()

    if args.show or args.show_dir:
        hook = cfg.default_hooks.visualization
        hook.draw = True
        hook.show = args.show
        hook.wait_time = args.wait_time
        if args.show_dir:
            hook.test_out_dir = args.show_dir
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError('--out must end with .pkl or .pickle')
        if osp.exists(args.out):
            raise FileExistsError(f'--out {args.out} exists; choose another name (not overwritten)')
        cfg.test_evaluator = [*(cfg.test_evaluator if isinstance(cfg.test_evaluator, list)
                                else [cfg.test_evaluator]),
                              dict(type='DumpDetResults', out_file_path=args.out)]

    runner = Runner.from_cfg(cfg)
    return runner.test()


if __name__ == '__main__':
    run_cli(main)
