"""Benchmark X-Decoder inference (one table row per task, precision and batch size) or, with
``--train``, a training config's step (iterations/s and peak memory).

    python tools/analysis_tools/benchmark.py CONFIG [--checkpoint CKPT] [--tasks all]
        [--precision fp32 bf16] [--batch-size 1 4] [--short-side N] [--aspect 1.5] [--iters 5]
        [--warmup 1] [--device cpu|cuda] [--classes a b c] [--compare-fp32]
    python tools/analysis_tools/benchmark.py TRAIN_CONFIG --train [--amp] [--batch-size 2]
        [--short-side 512] [--iters 5] [--warmup 1] [--device cpu|cuda]

Each row gives images/s, s/image and the peak memory of that row's runs (CUDA: allocated by
torch; CPU: the process's resident set, sampled every 5 ms). Inputs are random images of one
size (``--short-side``, default: each task's test scale, 640 for the config's segmentation);
batches repeat that size, as ``SameSizeBatchSampler`` forms them. ``--compare-fp32`` adds how
far a lower precision's predictions are from fp32's on the same input (label agreement, mask
IoU, equal caption tokens, embedding cosine).

``--train`` times ``model.train_step`` (forward, every loss of the config's ``model.criterion``,
backward, the config's optimiser step) on random images with synthetic ground truth for the
config's task, square at ``--short-side`` (default 512; the image-text stream of a joint config
at 224, its batch the config's), ``--batch-size`` images per step (default: the config's).

Random weights (seeded, so the same in every run) are used when no checkpoint is given: speed
does not depend on the values. The vocabulary defaults to the config dataset's class names; its
text embeddings are timed separately, as a real run gets them: from the disk cache
($XDECODER_CACHE/embeddings) when an earlier run with the same weights made them, else computed
and stored (run the benchmark twice to see both).
"""
import argparse
import os
import os.path as osp
import sys
import threading
import time

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from projects.XDecoder.xdecoder.layers import PRECISIONS  # noqa: E402
from projects.XDecoder.xdecoder.tasks import TASKS  # noqa: E402

# Texts of the tasks that read phrases (class-name tasks read the vocabulary).
PHRASES = {'phrases': ['the sky', 'a person'], 'one phrase': ['the sky'],
           'distinct phrases': ['a photo of the sky', 'a person']}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--checkpoint', help='weights to load (default: random weights)')
    parser.add_argument('--tasks', nargs='+', default=['all'],
                        help=f'tasks to run (default all): {", ".join(TASKS)}')
    parser.add_argument('--precision', nargs='+', default=['fp32'], choices=list(PRECISIONS))
    parser.add_argument('--batch-size', nargs='+', type=int,
                        help='inference: batch sizes (default 1); --train: images per step '
                        "(default: the config's)")
    parser.add_argument('--short-side', type=int, help="default: each task's test scale")
    parser.add_argument('--aspect', type=float, default=1.5, help='long side / short side')
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--classes', nargs='+', help='vocabulary (default: the dataset classes)')
    parser.add_argument('--compare-fp32', action='store_true',
                        help='agreement of each lower precision with fp32 on the same input')
    parser.add_argument('--train', action='store_true',
                        help="time the training config's step instead of inference")
    parser.add_argument('--amp', action='store_true',
                        help='--train with mixed precision: fp16 with loss scaling on CUDA '
                        "(mmengine's AmpOptimWrapper), bf16 autocast on CPU")
    return parser.parse_args()


class PeakMemory:
    """Peak memory (MiB) inside a ``with`` block: torch's CUDA counter, or the process's
    resident set sampled by a thread (ru_maxrss only ever grows, so it cannot give a row's)."""

    def __init__(self, device: str):
        self.cuda = device.startswith('cuda')
        self.peak = 0.0

    def _rss(self) -> float:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            self.peak, self._stop = self._rss(), threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() / 2**20
        else:
            self._stop.set()
            self._thread.join()


def make_batch(task, classes, h, w, batch_size, seed=0):
    from mmdet.structures import DetDataSample
    spec = TASKS[task]
    texts = classes if spec.texts == 'classes' else PHRASES.get(spec.texts)
    meta = dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0), task=task,
                **({'text': texts} if texts else {}))
    rng = np.random.default_rng(seed)
    inputs = [torch.from_numpy(rng.integers(0, 256, (3, h, w), dtype=np.uint8))
              for _ in range(batch_size)]
    return dict(inputs=inputs, data_samples=[DetDataSample(metainfo=meta)
                                             for _ in range(batch_size)])


def agreement(task: str, low, full) -> str:
    """How close a lower precision's prediction of one image is to fp32's."""
    def iou(a, b):
        return float((a & b).sum()) / max(float((a | b).sum()), 1.0)

    if task == 'semantic':
        same = (low.pred_sem_seg.sem_seg == full.pred_sem_seg.sem_seg).float().mean()
        return f'{100 * float(same):.1f}% labels'
    if task == 'panoptic':
        same = (low.pred_panoptic_seg.sem_seg == full.pred_panoptic_seg.sem_seg).float().mean()
        return f'{100 * float(same):.1f}% pixels'
    if task in ('instance', 'referring', 'ref-caption') and len(full.pred_instances):
        a, b = low.pred_instances, full.pred_instances
        text = f'top-1 mask IoU {iou(a.masks[0], b.masks[0]):.3f}'
        if task == 'ref-caption':
            same = (low.caption_token_ids == full.caption_token_ids).float().mean()
            text += f', {100 * float(same):.0f}% tokens'
        return text
    if task == 'caption':
        same = (low.caption_token_ids == full.caption_token_ids).float().mean()
        return f'{100 * float(same):.0f}% tokens'
    if task == 'retrieval':
        cos = torch.nn.functional.cosine_similarity(low.image_embedding.float(),
                                                    full.image_embedding.float(), dim=0)
        return f'embedding cos {float(cos):.4f}'
    return '-'


def make_train_batch(task: str, size: int, batch_size: int, seed: int = 0) -> dict:
    """Random images with ground truth for ``task`` ('image_text' for the joint image-text
    stream): three names, masks of the image's quarters, one caption, one phrase."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData, PixelData
    rng = np.random.default_rng(seed)
    quarters = np.zeros((3, size, size), np.uint8)
    quarters[0, :size // 2, :size // 2] = quarters[1, size // 2:, size // 2:] = 1
    quarters[2] = 1 - quarters[0] - quarters[1]
    samples = []
    for _ in range(batch_size):
        meta = dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0),
                    text=['person', 'car'], stuff_text=['sky'], gt_caption=['a photo of a car'])
        if task == 'referring':
            meta['text'] = ['the car on the right']
        sample = DetDataSample(metainfo=meta)
        labels = torch.tensor([0, 1, 2] if task != 'panoptic' else [0, 1])
        masks = quarters if task != 'referring' else quarters[1:2]
        sample.gt_instances = InstanceData(labels=labels[:len(masks)],
                                           masks=BitmapMasks(masks[:len(labels)], size, size))
        sample.gt_sem_seg = PixelData(sem_seg=torch.from_numpy(
            np.argmax(quarters, 0)[None].astype(np.int64)))
        if task == 'panoptic':  # the joint segmentation stream: one phrase per image too
            sample.gt_grounding = InstanceData(masks=BitmapMasks(quarters[1:2], size, size),
                                               phrase_ids=torch.tensor([0]))
            sample.set_metainfo(dict(grounding_text=['the car'], grounding_groups=[0],
                                     grounding_task='text'))
        samples.append(sample)
    inputs = [torch.from_numpy(rng.integers(0, 256, (3, size, size), dtype=np.uint8))
              for _ in range(batch_size)]
    return dict(inputs=inputs, data_samples=samples)


def benchmark_training(args, cfg):
    """Print the training step's iterations/s and peak memory for the config."""
    from mmdet.registry import MODELS
    from mmengine.optim import build_optim_wrapper
    if not cfg.model.get('criterion'):
        sys.exit(f'error: {args.config} has no model.criterion: --train needs a training '
                 'config (xdecoder-tiny_finetune_*.py, xdecoder-tiny_pretrain_coco-vlp.py)')
    model = MODELS.build(cfg.model).to(args.device).train()
    if args.checkpoint:
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    optim_cfg = dict(cfg.optim_wrapper)
    cpu_amp = args.amp and not args.device.startswith('cuda')
    if args.amp and not cpu_amp:
        optim_cfg.update(type='AmpOptimWrapper', loss_scale='dynamic')
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    # mmengine's AmpOptimWrapper refuses the CPU; bf16 needs no loss scaling.
    precision = torch.autocast('cpu', dtype=torch.bfloat16, enabled=cpu_amp)
    loaders = cfg.train_dataloader
    joint = 'dataset' not in loaders  # {stream: dataloader} (JointTrainLoop)
    streams = {
        # The joint segmentation stream trains train_cfg.segmentation_task, not model.task.
        name: dict(task=(model.train_cfg['segmentation_task'] if joint else model.task)
                   if name == 'segmentation' else 'image_text',
                   size=(args.short_side or 512) if name == 'segmentation' else 224,
                   batch=args.batch_size[0] if args.batch_size else loader.batch_size)
        for name, loader in (loaders.items() if joint else [('segmentation', loaders)])}

    def batch():
        data = {name: make_train_batch(s['task'], s['size'], s['batch'])
                for name, s in streams.items()}
        return data if joint else data['segmentation']

    print(f'config: {osp.basename(args.config)}  device: {args.device}  '
          f'threads: {torch.get_num_threads()}  torch {torch.__version__}  '
          f'{("amp bf16" if cpu_amp else "amp fp16") if args.amp else "fp32"}')
    print('streams: ' + ', '.join(f'{name} {s["task"]} {s["batch"]} x {s["size"]}x{s["size"]}'
                                  for name, s in streams.items()))
    with precision:
        for _ in range(args.warmup):
            model.train_step(batch(), optim_wrapper)
    with PeakMemory(args.device) as memory, precision:
        start = time.perf_counter()
        for _ in range(args.iters):
            losses = model.train_step(batch(), optim_wrapper)
        if args.device.startswith('cuda'):
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    print(f'{"iterations/s":>12}{"s/iter":>9}{"peak MiB":>10}{"loss":>10}')
    print(f'{args.iters / elapsed:>12.3f}{elapsed / args.iters:>9.2f}{memory.peak:>10.0f}'
          f'{losses["loss"].item():>10.2f}')


def main():
    args = parse_args()
    from mmdet.registry import DATASETS, MODELS

    import projects.XDecoder.xdecoder  # noqa: F401
    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    torch.manual_seed(0)
    if args.train:
        return benchmark_training(args, cfg)
    model = MODELS.build(cfg.model).to(args.device).eval()
    if args.checkpoint:
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    classes = args.classes or list(
        DATASETS.get(cfg.test_dataloader.dataset.type).METAINFO['classes'])
    tasks = list(TASKS) if args.tasks == ['all'] else args.tasks
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        sys.exit(f'error: unknown tasks {unknown}; choose from {list(TASKS)}')

    start = time.perf_counter()
    with torch.no_grad():
        model.text_encoder.class_embeddings(classes)
    text_s = time.perf_counter() - start
    print(f'config: {osp.basename(args.config)}  device: {args.device}  '
          f'threads: {torch.get_num_threads()}  torch {torch.__version__}')
    print(f'class embeddings ({len(classes)} names x 81 templates, once per run; '
          f'{model.text_encoder.last_embedding_source}): {text_s:.1f} s')
    header = f'{"task":<12}{"precision":<10}{"batch":>5}{"input":>10}{"images/s":>10}' \
             f'{"s/image":>9}{"peak MiB":>10}'
    print(header + ('  vs fp32' if args.compare_fp32 else ''))
    for task in tasks:
        spec = TASKS[task]
        side = args.short_side or (spec.resize or {}).get('scale', 640)
        h, w = side, int(side * args.aspect + 0.5)
        reference = {}
        for batch_size in args.batch_size or [1]:
            for precision in args.precision:
                # Fresh samples per row: predict fills them in place, and fp32's are kept.
                data = make_batch(task, classes, h, w, batch_size)
                model.test_cfg['precision'] = precision
                with torch.no_grad():
                    for _ in range(args.warmup):
                        model.test_step(data)
                    with PeakMemory(args.device) as memory:
                        start = time.perf_counter()
                        for _ in range(args.iters):
                            out = model.test_step(data)
                        if args.device.startswith('cuda'):
                            torch.cuda.synchronize()
                        elapsed = time.perf_counter() - start
                images = args.iters * batch_size
                row = f'{task:<12}{precision:<10}{batch_size:>5}{f"{h}x{w}":>10}' \
                      f'{images / elapsed:>10.3f}{elapsed / images:>9.2f}{memory.peak:>10.0f}'
                if args.compare_fp32:
                    if precision == 'fp32':
                        reference[batch_size] = out[0]
                        row += '  -'
                    elif batch_size in reference:
                        row += '  ' + agreement(task, out[0], reference[batch_size])
                    else:
                        row += '  (run fp32 first)'
                print(row, flush=True)
    model.test_cfg['precision'] = 'fp32'


if __name__ == '__main__':
    main()
