"""X-Decoder's segmentation training objective: Mask2Former's set-prediction loss, with the class
logits of each query computed against the text embeddings of the sample's vocabulary.

The pieces are mmdet's (Hungarian assigner and its match costs, cross-entropy and Dice losses,
point sampling); what is written here is only what differs from ``Mask2FormerHead``: the class
logits have one column per name of a per-sample vocabulary (+ 'background' as no-object), so
their width changes from image to image, and X-Decoder's trailing global query takes no part.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmcv.ops import point_sample
from mmdet.models.utils import get_uncertain_point_coords_with_randomness, multi_apply
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmdet.utils import reduce_mean
from mmengine.structures import InstanceData
from torch import Tensor, nn

from .tasks import TRAINABLE_TASKS, get_task


def mask_assigner(class_cost: str = 'ClassificationCost') -> Dict:
    """Config of X-Decoder's Hungarian assigner: costs class 2 (``class_cost``), mask BCE 5 and
    Dice 5 on point-sampled masks, the official matcher's weights for every task."""
    return dict(
        type='HungarianAssigner',
        match_costs=[
            dict(type=class_cost, weight=2.0),
            dict(type='CrossEntropyLossCost', weight=5.0, use_sigmoid=True),
            dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0)
        ])


@MODELS.register_module()
class XDecoderSegLoss(nn.Module):
    """Set-prediction loss of the generic (semantic / instance / panoptic) mode.

    Per prediction (the decoder's initial one and one per layer: deep supervision) and per image,
    the object queries are matched one-to-one to the ground-truth masks by ``assigner`` on
    ``num_points`` random points; matched queries learn their mask's class, the others the
    no-object class (the last column, 'background'); matched masks are supervised by BCE and Dice
    on ``num_points`` importance-sampled points (``oversample_ratio``, ``importance_sample_ratio``).

    Args:
        assigner, loss_cls, loss_mask, loss_dice: mmdet configs (defaults: Mask2Former's).
        no_object_weight: class-loss weight of queries matched to nothing.
        num_points, oversample_ratio, importance_sample_ratio: point sampling.
        num_summary_queries: trailing queries left out of matching and of every loss
            (X-Decoder's global query, which summarises the image).

    ``forward(class_logits, mask_logits, targets)``:

    * ``class_logits``: per prediction, a list over images of ``[Q, K_i + 1]`` logits (``K_i``
      names of image ``i``'s vocabulary, then no-object);
    * ``mask_logits``: per prediction, ``[B, Q, h, w]``;
    * ``targets``: per image, ``InstanceData(labels [N] in [0, K_i), masks [N, H, W] bool)``,
      the masks covering the same (padded) extent as ``mask_logits``.

    Returns ``loss_cls``, ``loss_mask``, ``loss_dice`` of the last prediction and
    ``d{j}.loss_*`` of the earlier ones, as mmdet's MaskFormer heads name them.
    """

    def __init__(self,
                 assigner: Dict = mask_assigner(),
                 loss_cls: Dict = dict(
                     type='CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0,
                     reduction='mean'),
                 loss_mask: Dict = dict(
                     type='CrossEntropyLoss', use_sigmoid=True, loss_weight=5.0,
                     reduction='mean'),
                 loss_dice: Dict = dict(
                     type='DiceLoss', use_sigmoid=True, activate=True, naive_dice=True, eps=1.0,
                     loss_weight=5.0, reduction='mean'),
                 no_object_weight: float = 0.1,
                 num_points: int = 12544,
                 oversample_ratio: float = 3.0,
                 importance_sample_ratio: float = 0.75,
                 num_summary_queries: int = 1):
        super().__init__()
        if loss_cls.get('class_weight') is not None:
            # The number of classes changes with the vocabulary, so a fixed per-class weight
            # list cannot describe it; the no-object weight is applied per query instead.
            raise ValueError('loss_cls.class_weight is not supported: vocabularies differ per '
                             'sample; set no_object_weight instead.')
        self.assigner = TASK_UTILS.build(assigner)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_mask = MODELS.build(loss_mask)
        self.loss_dice = MODELS.build(loss_dice)
        self.no_object_weight = no_object_weight
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.num_summary_queries = num_summary_queries

    def forward(self, class_logits: Sequence[Sequence[Tensor]], mask_logits: Sequence[Tensor],
                targets: Sequence[InstanceData]) -> Dict[str, Tensor]:
        if len(class_logits) != len(mask_logits):
            raise ValueError(f'{len(class_logits)} class predictions but {len(mask_logits)} '
                             'mask predictions; give one of each per decoder prediction.')
        losses_cls, losses_mask, losses_dice = multi_apply(
            self.loss_single, class_logits, mask_logits, [targets] * len(mask_logits))
        return name_deep_supervision([
            dict(loss_cls=cls, loss_mask=mask, loss_dice=dice)
            for cls, mask, dice in zip(losses_cls, losses_mask, losses_dice)])

    def loss_single(self, class_logits: Sequence[Tensor], mask_logits: Tensor,
                    targets: Sequence[InstanceData]) -> Tuple[Tensor, Tensor, Tensor]:
        """The three losses of one prediction for the whole batch."""
        if len(class_logits) != len(targets) or mask_logits.shape[0] != len(targets):
            raise ValueError(f'{len(targets)} targets for {len(class_logits)} class logits and '
                             f'{mask_logits.shape[0]} mask logits; give one per image.')
        num_objects = mask_logits.shape[1] - self.num_summary_queries
        class_logits = [logits[:num_objects] for logits in class_logits]
        mask_logits = mask_logits[:, :num_objects]
        labels, query_ids, gt_ids = multi_apply(self.match, class_logits, list(mask_logits),
                                                targets)

        # Weighted mean over all queries of the batch, as F.cross_entropy(weight=...) would
        # give with one vocabulary: the sum of the weights is the normaliser (averaged over
        # processes, so that DDP's gradient average is the whole batch's gradient).
        weights = [torch.where(label == logits.shape[-1] - 1, self.no_object_weight, 1.0)
                   for label, logits in zip(labels, class_logits)]
        total_weight = reduce_mean(sum(w.sum() for w in weights))
        loss_cls = sum(self.loss_cls(logits, label, w, avg_factor=total_weight)
                       for logits, label, w in zip(class_logits, labels, weights))

        preds = torch.cat([m[q] for m, q in zip(mask_logits, query_ids)])
        gts = torch.cat([t.masks[g] for t, g in zip(targets, gt_ids)])
        num_masks = reduce_mean(preds.new_tensor(float(len(preds)))).clamp(min=1)
        return (loss_cls, ) + point_mask_losses(self, preds, gts, num_masks)

    @torch.no_grad()
    def match(self, class_logits: Tensor, mask_logits: Tensor,
              target: InstanceData) -> Tuple[Tensor, Tensor, Tensor]:
        """Hungarian matching of one image's queries (``[Q, K+1]``, ``[Q, h, w]``) to its
        ground truth. Returns the class label of every query (``K`` = no-object) and the
        matched ``(query, ground-truth)`` index pairs."""
        num_classes = class_logits.shape[-1] - 1
        labels = class_logits.new_full((len(class_logits),), num_classes, dtype=torch.long)
        empty = labels.new_zeros(0)
        if len(target) == 0:
            return labels, empty, empty
        bad = target.labels[(target.labels < 0) | (target.labels >= num_classes)]
        if len(bad):
            raise ValueError(f'Ground-truth labels {bad.tolist()} are outside the vocabulary of '
                             f'{num_classes} names; the dataset classes and the labels must match.')
        query_ids, gt_ids = point_sampled_assign(self.assigner, class_logits, mask_logits,
                                                 target.labels, target.masks, self.num_points)
        labels[query_ids] = target.labels[gt_ids]
        return labels, query_ids, gt_ids


@torch.no_grad()
def point_sampled_assign(assigner, scores: Tensor, mask_logits: Tensor, labels: Tensor,
                         masks: Tensor, num_points: int) -> Tuple[Tensor, Tensor]:
    """One-to-one assignment of ``Q`` predictions to ``N`` ground-truth masks, Mask2Former's way.

    Args:
        assigner: an mmdet assigner (``HungarianAssigner``) whose costs read ``scores``
            ``[Q, K]`` and the ``labels`` ``[N]``, and the point-sampled masks.
        mask_logits: ``[Q, h, w]``; ``masks``: ``[N, H, W]`` bool, covering the same extent.
        num_points: uniform random points shared by every prediction and mask (cheaper than
            whole masks, and what the costs were tuned with).

    Returns the matched ``(query, ground-truth)`` index pairs, ``[M]`` each, queries ascending.
    """
    points = torch.rand(1, num_points, 2, device=mask_logits.device)
    pred_points = point_sample(mask_logits[:, None], points.expand(len(mask_logits), -1, -1))
    gt_points = point_sample(masks[:, None].to(points.dtype), points.expand(len(masks), -1, -1))
    # The costs in float32 whatever the model's precision: mmdet's DiceCost casts the ground
    # truth to float32 (a float64 model would fail), and fp16 costs would be coarse.
    assigned = assigner.assign(
        pred_instances=InstanceData(scores=scores.float(), masks=pred_points[:, 0].float()),
        gt_instances=InstanceData(labels=labels, masks=gt_points[:, 0].float())).gt_inds
    query_ids = torch.nonzero(assigned > 0)[:, 0]
    return query_ids, assigned[query_ids] - 1


def point_mask_losses(criterion, preds: Tensor, gts: Tensor,
                      num_masks: Tensor) -> Tuple[Tensor, Tensor]:
    """BCE and Dice of matched mask logits ``preds`` ``[M, h, w]`` against ``gts``
    ``[M, H, W]`` (bool), on ``criterion.num_points`` importance-sampled points per mask.

    ``criterion`` provides ``loss_mask`` (sigmoid CE), ``loss_dice`` and the sampling
    parameters ``num_points``, ``oversample_ratio``, ``importance_sample_ratio``. Both losses
    are sums over masks divided by ``num_masks`` (BCE averaged over each mask's points first).
    Returns ``(loss_mask, loss_dice)``, scalars.
    """
    if len(preds) == 0:
        # Keeps the graph connected (distributed training expects every step to produce
        # gradients for the same parameters).
        return preds.sum(), preds.sum()
    with torch.no_grad():
        points = get_uncertain_point_coords_with_randomness(
            preds[:, None], None, criterion.num_points, criterion.oversample_ratio,
            criterion.importance_sample_ratio)
        gt_points = point_sample(gts[:, None].to(points.dtype), points)[:, 0]
    pred_points = point_sample(preds[:, None], points)[:, 0]
    loss_dice = criterion.loss_dice(pred_points, gt_points, avg_factor=num_masks)
    loss_mask = criterion.loss_mask(pred_points.reshape(-1), gt_points.reshape(-1),
                                    avg_factor=num_masks * criterion.num_points)
    return loss_mask, loss_dice


def name_deep_supervision(per_prediction: Sequence[Dict[str, Tensor]],
                          first: int = 0) -> Dict[str, Tensor]:
    """Loss names of deep supervision, as mmdet's MaskFormer heads give them.

    ``per_prediction`` holds the losses of predictions ``first, first + 1, ...`` of the decoder
    (0 = the prediction before the first layer), the last one being the final prediction: its
    losses keep their names, the others get the prefix ``d{index}.``.
    """
    losses = dict(per_prediction[-1])
    for offset, earlier in enumerate(per_prediction[:-1]):
        losses.update({f'd{first + offset}.{name}': value for name, value in earlier.items()})
    return losses


def segmentation_targets(data_sample: DetDataSample, task: str, num_classes: int,
                         thing_labels: Optional[List[int]] = None,
                         ignore_index: int = 255) -> InstanceData:
    """One image's ground truth as masks and labels, padded to the network input.

    * semantic: one mask per class present in ``gt_sem_seg`` (``ignore_index`` is no class);
    * instance: ``gt_instances`` (``masks`` as ``BitmapMasks`` or a tensor, ``labels``);
    * panoptic: ``gt_instances`` (things) + one mask per stuff class of ``gt_sem_seg``
      (classes not in ``thing_labels``; all classes are things when it is None).

    Returns ``InstanceData(labels [N] long, masks [N, H_pad, W_pad] bool)``, the masks padded
    at the bottom and right to ``batch_input_shape`` as the images are.
    """
    needs = get_task(task).train_targets
    if not needs:
        raise ValueError(f'No segmentation ground truth for task {task!r}; '
                         f'choose one of {TRAINABLE_TASKS}.')
    missing = [key for key in needs if key not in data_sample]
    if missing:
        raise ValueError(f'Training task {task!r} needs {missing} in the data samples: load them '
                         '(LoadAnnotations with_seg / with_mask, LoadPanopticAnnotations) and '
                         'pack them with PackDetInputs.')
    pad_h, pad_w = data_sample.metainfo['batch_input_shape']
    labels, masks = [], []
    if 'gt_instances' in needs:
        labels.append(data_sample.gt_instances.labels.long())
        masks.append(padded_masks(data_sample.gt_instances.masks, data_sample,
                                  data_sample.gt_instances.labels.device))
    if 'gt_sem_seg' in needs:
        sem_seg = data_sample.gt_sem_seg.sem_seg[0]
        present = [c for c in torch.unique(sem_seg).tolist() if c != ignore_index]
        outside = [c for c in present if not 0 <= c < num_classes]
        if outside:
            raise ValueError(f'gt_sem_seg has labels {outside} outside the vocabulary of '
                             f'{num_classes} names (ignore_index {ignore_index}); the dataset '
                             'classes and the label maps must match (reduce_zero_label?).')
        if 'gt_instances' in needs:  # the instances are the things; the label map adds stuff
            things = set(range(num_classes) if thing_labels is None else thing_labels)
            present = [c for c in present if c not in things]
        labels.append(torch.tensor(present, dtype=torch.long, device=sem_seg.device))
        masks.append(_pad(sem_seg[None] == sem_seg.new_tensor(present)[:, None, None],
                          pad_h, pad_w))
    return InstanceData(labels=torch.cat(labels), masks=torch.cat(masks))


def padded_masks(masks: Union[BitmapMasks, Tensor], data_sample: DetDataSample,
                 device: Union[str, torch.device, None] = None) -> Tensor:
    """Masks (``BitmapMasks`` or ``[N, H, W]``) as a bool tensor on ``device`` (default: the
    tensor's own, CPU for ``BitmapMasks``) padded at the bottom and right to the sample's
    ``batch_input_shape``, as the images are."""
    if isinstance(masks, BitmapMasks):
        masks = masks.to_tensor(dtype=torch.bool, device=device or 'cpu')
    return _pad(masks.to(device or masks.device).bool(),
                *data_sample.metainfo['batch_input_shape'])


def _pad(masks: Tensor, pad_h: int, pad_w: int) -> Tensor:
    h, w = masks.shape[-2:]
    if h > pad_h or w > pad_w:
        raise ValueError(f'Ground-truth masks of size {(h, w)} exceed the network input '
                         f'{(pad_h, pad_w)}; resize the annotations with the image.')
    return F.pad(masks, (0, pad_w - w, 0, pad_h - h))
