"""Segmentation training: the set-prediction loss on hand-made predictions, the ground truth built
from mmdet's annotations, and tools/train.py (+ --resume) on a tiny ADE20K training folder.

``assert_close`` without tolerances uses torch's fp32 defaults (1.3e-6 relative): the loss and
its hand computation evaluate the same formula on the same points, so they differ by rounding."""
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData, PixelData
from xdecoder_test_utils import CONFIGS, ROOT, write_ade20k

import projects.XDecoder.xdecoder  # noqa: F401  (registers the modules)
from projects.XDecoder.xdecoder import segmentation_loss
from projects.XDecoder.xdecoder.checkpoint import map_official_key
from projects.XDecoder.xdecoder.segmentation_loss import XDecoderSegLoss, segmentation_targets
from projects.XDecoder.xdecoder.xdecoder import XDecoder

NUM_NAMES = 3
# Three regions of a square image, classes 2, 0, 1; object queries 4, 1, 5 are built to predict
# them; the last of the 7 queries is the global query.
GT_LABELS = torch.tensor([2, 0, 1])
QUERY_OF_GT = (4, 1, 5)
NUM_QUERIES = 7


def regions(size: int) -> torch.Tensor:
    masks = torch.zeros(3, size, size, dtype=torch.bool)
    masks[0, :, :size // 2] = True
    masks[1, :size // 2, size // 2:] = True
    masks[2, size // 2:, size // 2:] = True
    return masks


def signed(mask: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.where(mask, scale, -scale)


def perfect_prediction(masks: torch.Tensor, scale: float = 8.0):
    """Confident, correct class logits and masks on the chosen queries; confident no-object and
    empty masks elsewhere."""
    cls = torch.full((NUM_QUERIES, NUM_NAMES + 1), -scale)
    cls[:, NUM_NAMES] = scale
    mask_logits = torch.full((NUM_QUERIES, *masks.shape[1:]), -scale)
    for gt, query in enumerate(QUERY_OF_GT):
        cls[query] = -scale
        cls[query, GT_LABELS[gt]] = scale
        mask_logits[query] = signed(masks[gt], scale)
    return cls, mask_logits


@pytest.fixture
def criterion():
    return XDecoderSegLoss(num_points=4096)


def test_matching_skips_the_global_query_and_class_loss_matches_hand_computation(criterion):
    torch.manual_seed(0)
    masks = regions(64)
    target = InstanceData(labels=GT_LABELS, masks=masks)
    cls = torch.randn(NUM_QUERIES, NUM_NAMES + 1) * 2
    mask_logits = torch.randn(NUM_QUERIES, 64, 64) * 0.5
    for gt, query in enumerate(QUERY_OF_GT):
        mask_logits[query] = signed(masks[gt], 3.0)
    # The global query predicts region 0 better than query 4 does: only its exclusion lets
    # query 4 have it.
    mask_logits[-1] = signed(masks[0], 8.0)

    labels, query_ids, gt_ids = criterion.match(cls[:-1], mask_logits[:-1], target)
    assert query_ids.tolist() == [1, 4, 5] and gt_ids.tolist() == [1, 0, 2]
    assert labels.tolist() == [NUM_NAMES, 0, NUM_NAMES, NUM_NAMES, 2, 1]

    losses = criterion([[cls]], [mask_logits[None]], [target])
    # Hand computation: torch's weighted cross-entropy over the 6 object queries, no-object 0.1.
    weight = torch.tensor([1.0] * NUM_NAMES + [0.1])
    expected = 2.0 * F.cross_entropy(cls[:-1], labels, weight=weight)
    torch.testing.assert_close(losses['loss_cls'], expected)


def test_mask_losses_match_hand_computation_on_the_sampled_points(criterion, monkeypatch):
    """BCE and Dice of the matched masks only, at the points the criterion sampled."""
    torch.manual_seed(1)
    masks = regions(32)
    target = InstanceData(labels=GT_LABELS, masks=masks)
    cls, mask_logits = perfect_prediction(masks)
    mask_logits = mask_logits + torch.randn_like(mask_logits) * 4  # not perfect any more
    sampled = []

    def recording(*args):
        points = get_points(*args)
        sampled.append(points)
        return points

    get_points = segmentation_loss.get_uncertain_point_coords_with_randomness
    monkeypatch.setattr(segmentation_loss, 'get_uncertain_point_coords_with_randomness',
                        recording)
    losses = criterion([[cls]], [mask_logits[None]], [target])

    (points,) = sampled  # [matched masks, P, 2], queries in ascending order: 1, 4, 5

    def at_points(x):
        grid = 2 * points[:, :, None] - 1
        return F.grid_sample(x[:, None].float(), grid, align_corners=False)[:, 0, :, 0]

    pred = at_points(mask_logits[[1, 4, 5]])
    gt = at_points(masks[[1, 0, 2]])
    bce = F.binary_cross_entropy_with_logits(pred, gt)
    prob = pred.sigmoid()
    dice = 1 - (2 * (prob * gt).sum(1) + 1) / (prob.sum(1) + gt.sum(1) + 1)
    torch.testing.assert_close(losses['loss_mask'], 5.0 * bce)
    torch.testing.assert_close(losses['loss_dice'], 5.0 * dice.mean())


def test_perfect_prediction_has_small_losses_and_random_large(criterion):
    torch.manual_seed(2)
    masks = regions(256)
    target = InstanceData(labels=GT_LABELS, masks=masks)
    perfect_cls, perfect_masks = perfect_prediction(masks)
    random_cls = torch.randn(NUM_QUERIES, NUM_NAMES + 1)
    random_masks = torch.randn(NUM_QUERIES, 32, 32) * 2  # at 1/4 resolution, as the decoder's
    # Deep supervision: the earlier prediction is reported as d0, the last one without prefix.
    losses = criterion([[perfect_cls], [random_cls]],
                       [perfect_masks[None], random_masks[None]], [target])
    assert sorted(losses) == sorted(f'{p}loss_{n}' for p in ('', 'd0.')
                                    for n in ('cls', 'mask', 'dice'))
    # Only the one-pixel band along region borders (and the image border), where bilinear
    # sampling blends the two sides, keeps the perfect masks' losses above zero; importance
    # sampling puts most points there.
    assert losses['d0.loss_cls'] < 1e-3
    assert losses['d0.loss_mask'] < 0.15 and losses['d0.loss_dice'] < 0.06
    assert losses['loss_cls'] > 1.5
    assert losses['loss_mask'] > 3.0 and losses['loss_dice'] > 2.5


def test_gradient_descent_on_the_loss_fits_the_ground_truth():
    """The gradients point the right way: free logits optimised on the loss segment the image."""
    torch.manual_seed(3)
    criterion = XDecoderSegLoss(num_points=1024)
    masks = regions(64)
    target = InstanceData(labels=GT_LABELS, masks=masks)
    cls = torch.randn(NUM_QUERIES, NUM_NAMES + 1, requires_grad=True)
    mask_logits = torch.randn(1, NUM_QUERIES, 16, 16, requires_grad=True)
    optimizer = torch.optim.Adam([cls, mask_logits], lr=0.3)
    totals = []
    for _ in range(30):
        total = sum(criterion([[cls]], [mask_logits], [target]).values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        totals.append(total.item())
    assert totals[-1] < totals[0] / 6
    labels, query_ids, gt_ids = criterion.match(cls[:-1].detach(), mask_logits[0, :-1].detach(),
                                                target)
    assert torch.equal(cls[:-1].argmax(-1), labels)  # matched: their class; others: no-object
    pred = F.interpolate(mask_logits[0, query_ids][None].detach(), size=64, mode='bilinear')[0]
    iou = ((pred > 0) & masks[gt_ids]).sum((1, 2)) / ((pred > 0) | masks[gt_ids]).sum((1, 2))
    assert iou.min() > 0.9


def test_no_ground_truth_trains_every_query_as_no_object(criterion):
    cls = torch.randn(NUM_QUERIES, NUM_NAMES + 1, requires_grad=True)
    mask_logits = torch.randn(1, NUM_QUERIES, 8, 8, requires_grad=True)
    empty = InstanceData(labels=torch.zeros(0, dtype=torch.long),
                         masks=torch.zeros(0, 32, 32, dtype=torch.bool))
    losses = criterion([[cls]], [mask_logits], [empty])
    no_object = torch.full((NUM_QUERIES - 1,), NUM_NAMES)
    torch.testing.assert_close(losses['loss_cls'], 2.0 * F.cross_entropy(cls[:-1], no_object))
    assert losses['loss_mask'] == 0 and losses['loss_dice'] == 0
    sum(losses.values()).backward()  # still a graph, as distributed training needs


def test_labels_outside_the_vocabulary_are_refused(criterion):
    target = InstanceData(labels=torch.tensor([NUM_NAMES]), masks=regions(16)[:1])
    with pytest.raises(ValueError, match='outside the vocabulary of 3 names'):
        criterion([[torch.randn(NUM_QUERIES, NUM_NAMES + 1)]],
                  [torch.randn(1, NUM_QUERIES, 4, 4)], [target])


# ---------------------------------------------------------------------- ground truth
def sample_with(batch_input_shape=(8, 8), **fields) -> DetDataSample:
    sample = DetDataSample(metainfo=dict(batch_input_shape=batch_input_shape))
    for key, value in fields.items():
        setattr(sample, key, value)
    return sample


def test_semantic_targets_one_mask_per_present_class_padded():
    sem = torch.tensor([[0, 0, 2, 2, 255, 255, 0, 0]] * 3 + [[255] * 8] * 3, dtype=torch.uint8)
    targets = segmentation_targets(sample_with(gt_sem_seg=PixelData(sem_seg=sem[None])),
                                   'semantic', num_classes=3)
    assert targets.labels.tolist() == [0, 2]
    expected = torch.zeros(2, 8, 8, dtype=torch.bool)  # rows 6-7 are the batch padding
    expected[0, :6] = sem == 0
    expected[1, :6] = sem == 2
    assert torch.equal(targets.masks, expected)


def test_panoptic_targets_are_things_plus_stuff_classes():
    things = np.zeros((2, 6, 8), np.uint8)
    things[0, :3, :4] = 1
    things[1, 3:, :4] = 1
    sem = torch.full((6, 8), 255, dtype=torch.uint8)
    sem[:, :4] = 1  # the two instances of thing class 1
    sem[:, 4:6] = 3  # stuff
    sample = sample_with(
        gt_instances=InstanceData(labels=torch.tensor([1, 1]), masks=BitmapMasks(things, 6, 8)),
        gt_sem_seg=PixelData(sem_seg=sem[None]))
    targets = segmentation_targets(sample, 'panoptic', num_classes=4, thing_labels=[0, 1])
    assert targets.labels.tolist() == [1, 1, 3]
    assert torch.equal(targets.masks[:2, :6], torch.from_numpy(things).bool())
    assert torch.equal(targets.masks[2, :6], sem == 3)
    assert not targets.masks[:, 6:].any()

    instance = segmentation_targets(sample, 'instance', num_classes=4)
    assert instance.labels.tolist() == [1, 1] and instance.masks.shape == (2, 8, 8)


def test_bad_ground_truth_is_named():
    sem = PixelData(sem_seg=torch.full((1, 8, 8), 7, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r'labels \[7\] outside the vocabulary of 3 names'):
        segmentation_targets(sample_with(gt_sem_seg=sem), 'semantic', num_classes=3)
    with pytest.raises(ValueError, match='needs .*gt_instances.*LoadAnnotations'):
        segmentation_targets(sample_with(gt_sem_seg=sem), 'instance', num_classes=3)


def test_model_without_criterion_says_how_to_train():
    model = types.SimpleNamespace(criterion=None, task='semantic')
    with pytest.raises(RuntimeError, match=r"dict\(segmentation=dict\(type='XDecoderSegLoss'\)\)"):
        XDecoder.loss(model, torch.zeros(1, 3, 32, 32), [])


def test_class_embeddings_stay_fp32_under_autocast():
    """--amp trains under autocast; the cached class embeddings must still be fp32, for the
    fp32 validation that follows (and the prefix-batched encoder writes fp32 rows)."""
    from projects.XDecoder.xdecoder.text_encoder import TextEncoder
    torch.manual_seed(0)
    encoder = TextEncoder(width=64, layers=1, heads=2, proj_dim=32, embedding_cache=False)
    reference = encoder.class_embeddings(['wall', 'sky'])
    encoder.clear_cache()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        embeddings = encoder.class_embeddings(['wall', 'sky'])
    assert embeddings.dtype == torch.float32
    torch.testing.assert_close(embeddings, reference)


# ---------------------------------------------------------------------- tools/train.py
CONFIG = str(CONFIGS / 'xdecoder-tiny_finetune_semseg_ade20k.py')
CLASSES = ['wall', 'building', 'sky']
# Unused in segmentation training, hence never updated; everything else must change.
UNTRAINED = {'backbone_proj', 'decoder.caping_embed', 'decoder.pos_embed_caping.weight'}


def fast_options(data_root, checkpoint, max_iters):
    """64-pixel crops, one image per step, a 3-name vocabulary, fewer loss points, no
    validation; everything else is the real fine-tuning config."""
    return [
        f'load_from={checkpoint}',
        f'train_dataloader.dataset.data_root={data_root}',
        f'train_dataloader.dataset.metainfo.classes=[{",".join(CLASSES)}]',
        'train_dataloader.dataset.pipeline.2.scale=(128,64)',
        'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',
        'train_dataloader.batch_size=1', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'model.criterion.segmentation.num_points=1024',
        f'train_cfg.max_iters={max_iters}', 'param_scheduler.end=1000',
        'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
        'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None'
    ]


@pytest.fixture(scope='module')
def trained(tmp_path_factory, synthetic_checkpoint, synthetic_state_dict):
    """Two iterations from the synthetic weights, then --resume to a third. Returns what the
    tests check from the last checkpoint; the (1.5 GB) checkpoints are deleted afterwards."""
    sys.path.insert(0, str(ROOT / 'tools'))
    import train as train_tool
    tmp = tmp_path_factory.mktemp('train')
    # Labels 0..3: after reduce_zero_label the 3 names, or ignored.
    data_root = write_ade20k(tmp / 'data', sizes=((64, 80), (72, 64)), max_label=len(CLASSES),
                             split='training')
    work_dir = tmp / 'work'
    base = [CONFIG, '--work-dir', str(work_dir), '--cfg-options']
    train_tool.main(base + fast_options(data_root, synthetic_checkpoint, max_iters=2))
    train_tool.main(base + fast_options(data_root, synthetic_checkpoint, max_iters=3) +
                    ['--resume'])

    # As the runner loads them: torch>=2.6 weights-only loading, which tools/train.py's
    # trust_mmengine_checkpoints() makes possible for mmengine's objects.
    ckpt = torch.load(work_dir / 'iter_3.pth', map_location='cpu', weights_only=True, mmap=True)
    initial = {map_official_key(k): v for k, v in synthetic_state_dict.items()}
    result = dict(
        checkpoints=sorted(p.name for p in work_dir.glob('*.pth')),
        iter=ckpt['meta']['iter'],
        steps={int(s['step']) for s in ckpt['optimizer']['state'].values()},
        scheduler_step=ckpt['param_schedulers'][0]['_global_step'],
        lr=ckpt['message_hub']['log_scalars']['train/lr'].current(),
        unchanged={k for k, v in ckpt['state_dict'].items() if torch.equal(v, initial[k])},
        text_encoder={k for k in initial if k.startswith('text_encoder.')},
        buffers={k for k in initial if k.endswith('self_attn_mask')},
        num_keys=len(initial))
    del ckpt
    yield result
    for path in work_dir.glob('*.pth'):
        path.unlink()


def test_train_then_resume_continues_the_run(trained):
    assert trained['checkpoints'] == ['iter_2.pth', 'iter_3.pth']
    assert trained['iter'] == 3
    # AdamW's step count lives in the optimizer state: 3 only if resuming restored it (1 if not).
    assert trained['steps'] == {3}
    assert trained['scheduler_step'] == 3
    # The learning rate of step 3: PolyLR (total_iters = end - 1) after two scheduler steps.
    # mmengine computes the same power in float64.
    assert trained['lr'] == pytest.approx(1e-4 * (997 / 999) ** 0.9, rel=1e-6)


def test_training_updates_all_but_the_frozen_text_encoder(trained):
    assert len(trained['text_encoder']) == 150
    assert trained['unchanged'] == trained['text_encoder'] | UNTRAINED | trained['buffers']
    assert trained['num_keys'] - len(trained['unchanged']) == 571
