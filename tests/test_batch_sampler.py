"""SameSizeBatchSampler: batched evaluation that gives the batch-size-1 results.

(a) the grouping on a fake dataset, including the distributed cut of mmengine's
``collect_results``; (b) end to end: tools/test.py batched vs one at a time, and the model run
in float64 over both loaders."""
import glob
import json
import os
import pickle
import subprocess
import sys
from itertools import chain, zip_longest
from pathlib import Path

import pytest
import torch
from mmengine.dataset import DefaultSampler
from torch.utils.data import RandomSampler, SequentialSampler
from xdecoder_test_utils import CONFIGS, ROOT, write_ade20k

from projects.XDecoder.xdecoder.batch_sampler import SameSizeBatchSampler

# Three sizes, interleaved, so grouping has to reorder.
SIZES = [(4, 6), (5, 5), (4, 6), (6, 4), (4, 6), (5, 5), (4, 6), (4, 6), (6, 4), (5, 5), (4, 6)]


class FakeDataset:
    """COCO-style data_list: 'height' and 'width' per sample."""

    def __init__(self, sizes):
        self.sizes = list(sizes)

    def __len__(self):
        return len(self.sizes)

    def get_data_info(self, idx):
        h, w = self.sizes[idx]
        return dict(height=h, width=w, img_id=idx)


def default_sampler(dataset, rank, world_size, monkeypatch, round_up=True):
    monkeypatch.setattr('mmengine.dataset.sampler.get_dist_info', lambda: (rank, world_size))
    return DefaultSampler(dataset, shuffle=False, seed=0, round_up=round_up)


def collect(parts, size):
    """The order mmengine.dist.collect_results_cpu/gpu give: interleave the ranks' result lists
    (zip_longest, None dropped) and keep the first ``size`` (mmengine/dist/dist.py)."""
    return [r for r in chain.from_iterable(zip_longest(*parts)) if r is not None][:size]


@pytest.mark.parametrize('batch_size', [1, 2, 3, 4, 20])
def test_single_process_batches_same_size_each_index_once(batch_size):
    data = FakeDataset(SIZES)
    batches = list(SameSizeBatchSampler(SequentialSampler(data), batch_size))
    assert sorted(chain.from_iterable(batches)) == list(range(len(SIZES)))
    for batch in batches:
        assert 1 <= len(batch) <= batch_size
        assert len({SIZES[i] for i in batch}) == 1
        assert batch == sorted(batch)  # within a size, the sampler's order is kept
    # As few batches as same-size grouping allows.
    per_size = {s: SIZES.count(s) for s in set(SIZES)}
    assert len(batches) == sum(-(-n // batch_size) for n in per_size.values())
    assert len(SameSizeBatchSampler(SequentialSampler(data), batch_size)) == len(batches)
    if batch_size == 3:  # full buckets as they fill, then the partial ones in first-seen order
        assert batches == [[0, 2, 4], [1, 5, 9], [6, 7, 10], [3, 8]]


@pytest.mark.parametrize('world_size', [1, 2, 3, 4])
@pytest.mark.parametrize('num', [len(SIZES), 9, 2])
@pytest.mark.parametrize('round_up', [True, False])
def test_distributed_cut_keeps_every_sample_once(world_size, num, round_up, monkeypatch):
    """Each rank's batches, collected as mmengine collects results, give every dataset sample
    exactly once, as batch size 1 does (num=2 < world_size=3/4: ranks with only repeats)."""
    data = FakeDataset(SIZES[:num])
    parts, parts_bs1 = [], []
    for rank in range(world_size):
        sampler = default_sampler(data, rank, world_size, monkeypatch, round_up)
        batch_sampler = SameSizeBatchSampler(sampler, 3)
        batches = list(batch_sampler)
        assert len(batch_sampler) == len(batches)
        assert sorted(chain.from_iterable(batches)) == sorted(sampler)  # nothing lost per rank
        assert all(len({data.sizes[i] for i in b}) == 1 for b in batches)
        parts.append(list(chain.from_iterable(batches)))
        parts_bs1.append(list(sampler))
    assert sorted(collect(parts_bs1, num)) == list(range(num))  # the premise: bs 1 is exact
    assert sorted(collect(parts, num)) == list(range(num))


def test_grouping_repeats_with_real_samples_would_lose_one(monkeypatch):
    """Why repeats are grouped separately: without it, the cut drops a real sample. (11 images
    on 2 ranks: rank 1 gets [1, 3, 5, 7, 9] + a repeat of image 0, the size of image 7; in
    batches of 2, [7, 0] fills before the partial [9] and [3], so the cut would drop image 3.)"""
    data = FakeDataset(SIZES)
    parts = []
    for rank in range(2):
        batch_sampler = SameSizeBatchSampler(default_sampler(data, rank, 2, monkeypatch), 2)
        monkeypatch.setattr(batch_sampler, 'num_real', lambda n: n)
        parts.append(list(chain.from_iterable(batch_sampler)))
    assert parts[1] == [1, 5, 7, 0, 9, 3]
    assert 3 not in collect(parts, len(SIZES))


def test_refuses_what_it_cannot_keep_exact():
    data = FakeDataset(SIZES)
    with pytest.raises(TypeError, match='DefaultSampler'):
        SameSizeBatchSampler(RandomSampler(data), 2)
    with pytest.raises(ValueError, match='drop_last'):
        SameSizeBatchSampler(SequentialSampler(data), 2, drop_last=True)


# ---------------------------------------------------------------- end to end
CLASSES = ['wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'bed']
# Two sizes, interleaved: batches of 4 group the five 48x64 images (4 + 1), the 64x40 ones apart.
# On 2 processes rank 1 gets images 1, 3, 5 and a repeat of 0; 0 and 1 share a size, so grouping
# the repeat with the real images would give [1, 0] + [3, 5] and the collection would cut 5.
ADE_SIZES = ((48, 64), (48, 64), (48, 64), (64, 40), (48, 64), (64, 40), (48, 64))
FAST = ['test_dataloader.dataset.pipeline.1.scale=32', 'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
        f'test_dataloader.dataset.metainfo.classes=[{",".join(CLASSES)}]']
CONFIG = str(CONFIGS / 'xdecoder-tiny_zeroshot_semseg.py')
BATCHED = ['test_dataloader.batch_size=4',
           'test_dataloader.batch_sampler.type=SameSizeBatchSampler']


@pytest.fixture(scope='module')
def ade_root(tmp_path_factory):
    """ADE20K folder whose dataset index i has size ADE_SIZES[i]. (ADE20K semantic has no sizes
    in its data_list: the sampler reads the JPEG headers.)"""
    from mmdet.registry import DATASETS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    root = tmp_path_factory.mktemp('data')
    data_root = write_ade20k(root, sizes=ADE_SIZES, max_label=len(CLASSES))
    # The dataset lists the folder in directory order (os.scandir, not sorted), which depends on
    # the file system: rewrite the same names with the sizes permuted to that order.
    init_default_scope('mmdet')
    dataset_cfg = Config.fromfile(CONFIG).test_dataloader.dataset
    dataset_cfg.update(data_root=str(data_root), pipeline=[], metainfo=dict(classes=CLASSES))
    dataset = DATASETS.build(dataset_cfg)
    file_numbers = [int(Path(dataset.get_data_info(i)['img_path']).stem[-8:]) - 1
                    for i in range(len(dataset))]
    sizes = [None] * len(ADE_SIZES)
    for position, number in enumerate(file_numbers):
        sizes[number] = ADE_SIZES[position]
    write_ade20k(root, sizes=sizes, max_label=len(CLASSES))
    dataset = DATASETS.build(dataset_cfg)
    sampler = SameSizeBatchSampler(SequentialSampler(dataset), 1)
    assert [sampler.image_size(i) for i in range(len(dataset))] == list(ADE_SIZES)
    return data_root


def test_model_float64_batched_equals_one_at_a_time(ade_root, synthetic_state_dict, monkeypatch):
    """The exact claim, where summation order cannot decide: in float64 the model's semantic
    maps from same-size batches equal the one-image ones, and batches of several images ran."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    from xdecoder_test_utils import build_model
    cfg = Config.fromfile(str(CONFIGS / 'xdecoder-tiny_zeroshot_semseg.py'))
    init_default_scope('mmdet')
    # FAST, as attributes.
    cfg.test_dataloader.update(num_workers=0, persistent_workers=False)
    cfg.test_dataloader.dataset.data_root = str(ade_root)
    cfg.test_dataloader.dataset.pipeline[1].scale = 32
    cfg.test_dataloader.dataset.metainfo.classes = CLASSES
    model = build_model('xdecoder-tiny_zeroshot_semseg.py')
    model.load_state_dict(synthetic_state_dict, strict=True)
    model.double().eval()

    def run(loader_cfg):
        maps, batch_sizes = {}, []
        with torch.no_grad():
            for batch in Runner.build_dataloader(loader_cfg):
                batch_sizes.append(len(batch['data_samples']))
                for sample in model.test_step(batch):
                    maps[sample.img_path] = sample.pred_sem_seg.sem_seg
        return maps, batch_sizes

    import projects.XDecoder.xdecoder  # noqa: F401  (registers the sampler)
    single, sizes1 = run(cfg.test_dataloader.copy())
    batched_cfg = cfg.test_dataloader.copy()
    batched_cfg.update(batch_size=4, batch_sampler=dict(type='SameSizeBatchSampler'))
    batched, sizes4 = run(batched_cfg)
    assert sizes1 == [1] * len(ADE_SIZES)
    assert sorted(sizes4) == [1, 2, 4]  # five 48x64 images: 4 + 1; two 64x40: 2
    assert single.keys() == batched.keys()
    for path in single:
        assert torch.equal(single[path], batched[path]), path

    # The comparison can see padding: batching the two sizes together changes the maps.
    monkeypatch.setattr(SameSizeBatchSampler, 'image_size', lambda self, idx: (1, 1))
    mixed, sizes_mixed = run(batched_cfg)
    assert sorted(sizes_mixed) == [3, 4]
    assert any(not torch.equal(single[p], mixed[p]) for p in single)


def run_test_tool(checkpoint, data_root, work_dir, *options):
    """tools/test.py main in this process: (metrics, {img_path: dumped label map})."""
    sys.path.insert(0, str(ROOT / 'tools'))
    import test as test_tool
    out = work_dir / 'preds.pkl'
    metrics = test_tool.main([CONFIG, str(checkpoint), '--work-dir', str(work_dir), '--out',
                              str(out), '--cfg-options',
                              f'test_dataloader.dataset.data_root={data_root}', *FAST, *options])
    preds = pickle.loads(out.read_bytes())
    maps = {p['img_path']: p['pred_sem_seg']['sem_seg'] for p in preds}
    assert len(preds) == len(maps) == len(ADE_SIZES)  # every image, once
    return metrics, maps


@pytest.fixture(scope='module')
def one_at_a_time(ade_root, synthetic_checkpoint, tmp_path_factory):
    """The reference: the config as it is, batch size 1, one process."""
    return run_test_tool(synthetic_checkpoint, ade_root, tmp_path_factory.mktemp('single'))


def assert_same(reference, run):
    (m1, p1), (m4, p4) = reference, run
    assert m4['mIoU'] == m1['mIoU']
    assert p1.keys() == p4.keys()
    for path in p1:
        assert torch.equal(p1[path], p4[path]), path


# These two runs are float32, where only summation order could differ between a batch and one
# image: on CPU the kernels here sum each image alike, and the label maps came out identical.
# Were a platform to flip a near-tie, the float64 test above is the claim about the algorithm.
def test_tools_test_batched_gives_the_same_metric_and_dump(ade_root, synthetic_checkpoint,
                                                           one_at_a_time, tmp_path, monkeypatch):
    """tools/test.py with the option: the same mIoU and the same dumped label maps as batch
    size 1 (the dump lists them in another order; each carries its img_path)."""
    passes = []
    iterate = SameSizeBatchSampler.__iter__

    def recording_iter(self):
        passes.append(list(iterate(self)))
        return iter(passes[-1])

    monkeypatch.setattr(SameSizeBatchSampler, '__iter__', recording_iter)
    batched = run_test_tool(synthetic_checkpoint, ade_root, tmp_path, *BATCHED)
    assert passes and sorted(map(len, passes[-1])) == [1, 2, 4]  # the option batched
    assert_same(one_at_a_time, batched)


def test_dist_test_two_processes_batched_keeps_every_image_once(ade_root, synthetic_checkpoint,
                                                                one_at_a_time, tmp_path):
    """dist_test.sh, 2 gloo processes, batched: 7 images give rank 1 a round-up repeat of
    image 0 (see ADE_SIZES), which must be the result the collection cuts.
    The dump (rank 0 writes the collected results) has every image once, as batch size 1."""
    out = tmp_path / 'preds.pkl'
    env = dict(os.environ, PYTHON=sys.executable, PORT='29531')
    subprocess.run([str(ROOT / 'tools' / 'dist_test.sh'), CONFIG, str(synthetic_checkpoint), '2',
                    '--work-dir', str(tmp_path), '--out', str(out), '--cfg-options',
                    f'test_dataloader.dataset.data_root={ade_root}', *FAST, *BATCHED],
                   check=True, env=env, cwd=tmp_path, timeout=600)
    preds = pickle.loads(out.read_bytes())
    maps = {p['img_path']: p['pred_sem_seg']['sem_seg'] for p in preds}
    assert len(preds) == len(maps) == len(ADE_SIZES)
    logs = glob.glob(str(tmp_path / '*' / '*.json'))
    metrics = json.loads(open(logs[0]).read().strip().splitlines()[-1])
    assert_same(one_at_a_time, (metrics, maps))
