"""Joint training on two processes: ``tools/dist_train.sh CONFIG 2`` (gloo) for one step gives
the gradients of one process (``tools/train.py``) holding both processes' batches.

Both runs train the pre-training config in float64 with the losses' random points replaced by a
fixed grid (``float64_training_probe.py``, imported by the training processes only): what is
compared is then the arithmetic of the distributed step (the retrieval loss's gathered batch,
the batch-wide normalisers of every loss, DDP's gradient average), not random draws.
"""
import os
import subprocess
import sys

import torch
from test_train_joint import derived_config, options, write_data
from xdecoder_test_utils import ROOT


def run(nproc, tmp_path, checkpoint, batch_per_process):
    root = tmp_path / 'data'
    if not root.exists():
        write_data(root)
    dump = tmp_path / f'grads_{nproc}.pt'
    (tmp_path / f'work{nproc}').mkdir()
    seg, pairs = 'train_dataloader.segmentation', 'train_dataloader.image_text'
    config = derived_config(
        tmp_path / f'work{nproc}', custom_imports=dict(
            imports=['projects.XDecoder.xdecoder', 'float64_training_probe'],
            allow_failed_imports=False),
        custom_hooks=[dict(type='GradientDumpHook', path=str(dump))])
    opts = options(root, checkpoint, 1) + [
        'default_hooks.checkpoint=None',  # nothing to keep (a float64 checkpoint is 1.4 GB)
        # Deterministic data: no flip, no jitter (64 px images, 64 px crops), in file order.
        f'{seg}.dataset.pipeline.3.prob=0.0', f'{seg}.dataset.pipeline.4.ratio_range=(1.0,1.0)',
        f'{seg}.sampler.shuffle=False', f'{pairs}.sampler.shuffle=False',
        f'{seg}.batch_size={batch_per_process}', f'{pairs}.batch_size={batch_per_process}',
    ]
    env = dict(os.environ, PYTHON=sys.executable, PORT='29531',
               PYTHONPATH=f'{ROOT}:{ROOT / "tests"}')
    command = ([str(ROOT / 'tools' / 'dist_train.sh'), config, str(nproc)] if nproc > 1 else
               [sys.executable, str(ROOT / 'tools' / 'train.py'), config])
    subprocess.run(command + ['--work-dir', str(tmp_path / f'work{nproc}'), '--cfg-options',
                              *opts], check=True, env=env, cwd=tmp_path, timeout=900)
    return torch.load(dump)


def test_two_processes_give_the_gradients_of_the_concatenated_batch(tmp_path,
                                                                    synthetic_checkpoint):
    two = run(2, tmp_path, synthetic_checkpoint, batch_per_process=1)
    one = run(1, tmp_path, synthetic_checkpoint, batch_per_process=2)
    # At least one parameter per entry of the probe's KEYS.
    assert sorted(two) == sorted(one) and len(one) >= 9
    for name in one:
        assert one[name].dtype == torch.float64
        # float64, the same operations on the same numbers in another grouping (two halves
        # averaged by DDP vs one batch) agree to ~1e-15 (measured on backbone_proj,
        # caping_embed, pos_embed_caping: retrieval and captioning only). The segmentation and
        # grounding losses differ more: mmdet's weight_reduce_loss divides by avg_factor +
        # float32 eps (1.19e-7), and the grouping changes avg_factor (e.g. the mean number of
        # masks per process, ~2.5 here vs 5), so they differ by up to ~eps / 2.5 = 5e-8
        # relative; measured up to 2.5e-9 of each gradient's largest entry.
        scale = one[name].abs().max()
        assert scale > 0, name
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=1e-7 * scale, msg=name)
