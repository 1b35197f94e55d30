"""Benchmark X-Decoder inference: images/s and peak memory for a config at a given input size.

    python tools/analysis_tools/benchmark.py CONFIG [--checkpoint CKPT] [--short-side 640]
        [--aspect 1.5] [--iters 5] [--warmup 1] [--device cpu|cuda] [--classes a b c]

Random weights (seeded, so the same in every run) are used when no checkpoint is given: speed
does not depend on the values. The vocabulary defaults to the config dataset's class names; its
text embeddings are timed separately, as a real run gets them: from the disk cache
($XDECODER_CACHE/embeddings) when an earlier run with the same weights made them, else computed
and stored (run the benchmark twice to see both).
"""
import argparse
import os.path as osp
import resource
import sys
import time

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--checkpoint', help='weights to load (default: random weights)')
    parser.add_argument('--short-side', type=int, default=640)
    parser.add_argument('--aspect', type=float, default=1.5, help='long side / short side')
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--classes', nargs='+', help='vocabulary (default: the dataset classes)')
    return parser.parse_args()


def peak_memory_mib(device: str) -> float:
    if device.startswith('cuda'):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux


def main():
    args = parse_args()
    from mmdet.registry import DATASETS, MODELS
    from mmdet.structures import DetDataSample

    import projects.XDecoder.xdecoder  # noqa: F401
    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).to(args.device).eval()
    if args.checkpoint:
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    classes = args.classes or list(
        DATASETS.get(cfg.test_dataloader.dataset.type).METAINFO['classes'])

    h, w = args.short_side, int(args.short_side * args.aspect + 0.5)
    rng = np.random.default_rng(0)
    inputs = torch.from_numpy(rng.integers(0, 256, (3, h, w), dtype=np.uint8))
    sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                         scale_factor=(1.0, 1.0), text=classes))
    data = dict(inputs=[inputs], data_samples=[sample])

    with torch.no_grad():
        start = time.perf_counter()
        model.text_encoder.class_embeddings(classes)
        text_s = time.perf_counter() - start
        text_source = model.text_encoder.last_embedding_source
        for _ in range(args.warmup):
            model.test_step(data)
        if args.device.startswith('cuda'):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(args.iters):
            model.test_step(data)
        if args.device.startswith('cuda'):
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start

    print(f'config: {osp.basename(args.config)}  task: {model.task}  device: {args.device}  '
          f'threads: {torch.get_num_threads()}')
    print(f'input: {h}x{w}  vocabulary: {len(classes)} names')
    print(f'class embeddings ({len(classes)} names x 81 templates, once per run; '
          f'{text_source}): {text_s:.1f} s')
    print(f'inference: {args.iters / elapsed:.3f} images/s ({elapsed / args.iters:.2f} s/image)')
    print(f'peak memory: {peak_memory_mib(args.device):.0f} MiB '
          f'({"CUDA allocated" if args.device.startswith("cuda") else "process RSS"})')


if __name__ == '__main__':
    main()
