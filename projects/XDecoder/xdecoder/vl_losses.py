"""X-Decoder's vision-language training objectives: referring (grounding) segmentation,
captioning and image-text retrieval, with the official recipe's deep supervision.

Facts of the official recipe (microsoft/X-Decoder: ``modeling/architectures/xdecoder_model.py``,
``modeling/modules/matcher.py``, ``modeling/language/vlpencoder.py``,
``configs/xdecoder/xdecoder_focalt_lang.yaml`` and the training command of its TRAIN.md; the
criterion itself as kept in SEEM's copy, ``modeling/modules/criterion.py`` and
``modeling/language/loss.py``):

* every similarity is ``min(exp(logit_scale), 100) * cos`` with the text encoder's
  ``logit_scale``, both sides normalised as ``x / (|x| + 1e-7)``;
* grounding queries are matched to phrases by the Hungarian algorithm (costs: class 2 with
  ``-softmax`` over the *queries* of the query x phrase similarity, mask BCE 5, Dice 5, on
  12,544 random points); matched masks get BCE + Dice on importance-sampled points, normalised
  by the number of matched masks; each phrase gets a cross-entropy over the queries (the
  matched one is the target), scaled per image by 2.0 for referring expressions and 0.5 for
  class names, then by the grounding class weight 0.4;
* captioning: next-token cross-entropy, logits = caption-query features @ token embedding^T,
  summed over real tokens and divided by their number + 1;
* retrieval: symmetric InfoNCE over the batch gathered from all processes (the local part keeps
  its gradient), for the global query and, with ``backbone_proj``, for the average-pooled last
  backbone stage;
* on several processes every normaliser here is the whole batch's, so that DDP's gradient
  average equals one process's gradient on the whole batch (the official code normalises per
  process; the values agree on one process).
* deep supervision: losses on the last 3 predictions for captioning and retrieval, the last 6
  for grounding (training command; the yaml says 3), all of them for segmentation.

Loss weights default to the training command of the official TRAIN.md (captioning 8,
retrieval 8, backbone retrieval 8); the yaml files carry 2.0 / 2.0 / 8.0 instead.
"""
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmdet.models.task_modules.assigners.match_cost import BaseMatchCost
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.utils import reduce_mean
from mmengine import dist
from mmengine.structures import InstanceData
from torch import Tensor, nn

from .layers import clamped_logit_scale, l2_normalize
from .segmentation_loss import (mask_assigner, name_deep_supervision, point_mask_losses,
                                point_sampled_assign)

# How many of the decoder's last predictions each task supervises (None: all of them).
OFFICIAL_TOP_LAYERS = dict(segmentation=None, grounding=6, captioning=3, retrieval=3)


def supervised_predictions(num_predictions: int, top_layers: Optional[int]) -> range:
    """Indices (0 = the prediction before the first decoder layer) of the predictions that a
    task with ``top_layers`` supervises: the last ``top_layers`` of ``num_predictions``."""
    if top_layers is None or top_layers >= num_predictions:
        return range(num_predictions)
    if top_layers < 1:
        raise ValueError(f'top_layers must be at least 1 (or None for all), got {top_layers}')
    return range(num_predictions - top_layers, num_predictions)


def all_gather_with_grad(x: Tensor) -> Tensor:
    """``[n, ...]`` on each of ``W`` processes -> ``[W * n, ...]`` in rank order.

    Other processes' rows are constants here; this process's rows are ``x`` itself, so its
    gradient flows back. Each process thus gets the gradient of the global loss with respect to
    its own inputs only; summed over processes these are the gradient of the loss on the whole
    batch (DDP averages them, so :func:`image_text_contrastive` scales them by ``W``).
    Every process must pass the same ``n``.
    """
    if dist.get_world_size() == 1:
        return x
    gathered = dist.all_gather(x.detach().contiguous())
    gathered[dist.get_rank()] = x
    return torch.cat(gathered)


def image_text_contrastive(image_embeds: Tensor, text_embeds: Tensor,
                           logit_scale: Union[Tensor, float]) -> Tensor:
    """Symmetric InfoNCE of paired ``[B, D]`` embeddings over the batch of all processes:
    the mean of the image->text and text->image cross-entropies, logits
    ``min(exp(logit_scale), 100) * cos``. Returns a scalar."""
    images = l2_normalize(all_gather_with_grad(image_embeds))
    texts = l2_normalize(all_gather_with_grad(text_embeds))
    logits = clamped_logit_scale(logit_scale, images) * images @ texts.t()
    pairs = torch.arange(len(logits), device=logits.device)
    loss = (F.cross_entropy(logits, pairs) + F.cross_entropy(logits.t(), pairs)) / 2
    # Each process holds the whole batch's loss but only its own rows' gradient, and DDP
    # averages over processes: the gradient is scaled up by the process count so that the
    # average is the whole batch's gradient, as for the other losses (the official code keeps
    # the 1 / W). The value stays the loss's.
    world_size = dist.get_world_size()
    return loss + (world_size - 1) * (loss - loss.detach())


@TASK_UTILS.register_module()
class QuerySoftmaxCost(BaseMatchCost):
    """Classification cost of grounding: ``-softmax`` over the predictions (not the classes).

    ``pred_instances.scores`` ``[Q, N]`` holds one column per ground truth (query x phrase
    similarity logits) and ``gt_instances.labels`` ``[N]`` the column of each ground truth.
    Returns ``[Q, N]``: ``-weight * softmax(scores, dim=0)[:, labels]``.
    """

    def __call__(self, pred_instances: InstanceData, gt_instances: InstanceData,
                 img_meta: Optional[dict] = None, **kwargs) -> Tensor:
        return -self.weight * pred_instances.scores.softmax(0)[:, gt_instances.labels]


@MODELS.register_module()
class XDecoderGroundingLoss(nn.Module):
    """Referring (grounding) segmentation loss.

    Per supervised prediction and image, the grounding queries are matched one-to-one to the
    image's phrases by ``assigner`` (default: the official costs, see the module docstring);
    matched queries' masks get BCE (``loss_mask``) and Dice (``loss_dice``) on importance-sampled
    points, divided by this process's number of matched masks as the official criterion does;
    every phrase gets a cross-entropy over the queries' similarities to it, whose target is its
    matched query (phrases sharing a ``group_ids`` value, e.g. several expressions of one object,
    share their matched queries' targets equally). That cross-entropy is averaged over the
    image's phrases, scaled by ``task_weights[image task]``, averaged over the images that have
    phrases and multiplied by ``class_weight``.

    ``forward(grounding_embeds, mask_logits, targets, logit_scale)``:

    * ``grounding_embeds``: per prediction, ``[B, Qg, D]`` class embeddings of the grounding
      queries (rows ``num_queries:`` of ``forward_grounding``'s ``class_embeds``);
    * ``mask_logits``: per prediction, ``[B, Qg, h, w]``;
    * ``targets``: per image, ``InstanceData(masks [N, H, W] bool, text_embeds [N, D]`` (the
      phrases' EOT embeddings, any norm) and optionally ``group_ids [N]`` long), its
      ``metainfo['task']`` 'text' (default: referring expressions) or 'class';
    * ``logit_scale``: the text encoder's (log) ``logit_scale``.

    Returns ``loss_grounding_mask``, ``loss_grounding_dice``, ``loss_grounding_cls`` of the last
    prediction and ``d{j}.loss_grounding_*`` of the earlier supervised ones (``j`` the
    prediction's index, as :class:`XDecoderSegLoss` names them).
    """

    def __init__(self,
                 assigner: Dict = mask_assigner('QuerySoftmaxCost'),
                 loss_mask: Dict = dict(type='CrossEntropyLoss', use_sigmoid=True),
                 loss_dice: Dict = dict(type='DiceLoss', naive_dice=True, eps=1.0),
                 class_weight: float = 0.4,
                 task_weights: Optional[Dict[str, float]] = None,
                 top_layers: Optional[int] = OFFICIAL_TOP_LAYERS['grounding'],
                 num_points: int = 12544,
                 oversample_ratio: float = 3.0,
                 importance_sample_ratio: float = 0.75):
        super().__init__()
        self.assigner = TASK_UTILS.build(assigner)
        self.loss_mask = MODELS.build(loss_mask)
        self.loss_dice = MODELS.build(loss_dice)
        self.class_weight = class_weight
        # 'class' is a keyword, so the default cannot be written as dict(class=...) in a config.
        self.task_weights = {'text': 2.0, 'class': 0.5} if task_weights is None else task_weights
        self.top_layers = top_layers
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio

    def forward(self, grounding_embeds: Sequence[Tensor], mask_logits: Sequence[Tensor],
                targets: Sequence[InstanceData],
                logit_scale: Union[Tensor, float]) -> Dict[str, Tensor]:
        if len(grounding_embeds) != len(mask_logits):
            raise ValueError(f'{len(grounding_embeds)} embedding predictions but '
                             f'{len(mask_logits)} mask predictions; give one of each per '
                             'decoder prediction.')
        layers = supervised_predictions(len(mask_logits), self.top_layers)
        per_prediction = [self.loss_single(grounding_embeds[j], mask_logits[j], targets,
                                           logit_scale) for j in layers]
        return name_deep_supervision(per_prediction, first=layers.start)

    def loss_single(self, grounding_embeds: Tensor, mask_logits: Tensor,
                    targets: Sequence[InstanceData],
                    logit_scale: Union[Tensor, float]) -> Dict[str, Tensor]:
        """The three losses of one prediction (``[B, Qg, D]``, ``[B, Qg, h, w]``)."""
        if len(grounding_embeds) != len(targets) or len(mask_logits) != len(targets):
            raise ValueError(f'{len(targets)} targets for {len(grounding_embeds)} embeddings '
                             f'and {len(mask_logits)} masks; give one per image.')
        preds, gts, class_losses = [], [], []
        for embeds, masks, target in zip(grounding_embeds, mask_logits, targets):
            if len(target) == 0:
                continue
            scale = clamped_logit_scale(logit_scale, embeds)
            logits = scale * l2_normalize(embeds) @ l2_normalize(target.text_embeds).t()
            phrases = torch.arange(len(target), device=logits.device)
            query_ids, phrase_ids = point_sampled_assign(
                self.assigner, logits.detach(), masks.detach(), phrases, target.masks,
                self.num_points)
            preds.append(masks[query_ids])
            gts.append(target.masks[phrase_ids])
            matched = torch.zeros_like(logits)
            matched[query_ids, phrase_ids] = 1.0
            groups = target.group_ids if 'group_ids' in target else phrases
            same = (groups[:, None] == groups[None, :]).to(logits.dtype)
            soft_target = matched @ (same / same.sum(-1, keepdim=True))  # [Qg, N]
            task = target.metainfo.get('task', 'text')
            if task not in self.task_weights:
                raise ValueError(f'Grounding task {task!r} has no weight; '
                                 f'known: {sorted(self.task_weights)}.')
            # Soft-target cross-entropy over the queries, one row per phrase.
            class_losses.append(self.task_weights[task]
                                * F.cross_entropy(logits.t(), soft_target.t()))
        if not class_losses:
            # No phrase in the batch: zeros that keep the graph connected for DDP.
            zero = grounding_embeds.sum() * 0 + mask_logits.sum() * 0
            return dict(loss_grounding_mask=zero, loss_grounding_dice=zero,
                        loss_grounding_cls=zero)
        preds, gts = torch.cat(preds), torch.cat(gts)
        # The batch-wide mean number of matched masks (Mask2Former's normaliser, which the
        # segmentation loss uses too): with it, DDP's gradient average equals the gradient of
        # one process holding the whole batch. On one process it is the official local count.
        num_masks = reduce_mean(preds.new_tensor(float(len(preds)))).clamp(min=1)
        loss_mask, loss_dice = point_mask_losses(self, preds, gts, num_masks)
        # The mean over the batch's images with phrases (counted over all processes).
        num_images = reduce_mean(grounding_embeds.new_tensor(float(len(class_losses))))
        loss_cls = self.class_weight * torch.stack(class_losses).sum() / num_images
        return dict(loss_grounding_mask=loss_mask, loss_grounding_dice=loss_dice,
                    loss_grounding_cls=loss_cls)


@MODELS.register_module()
class XDecoderCaptionLoss(nn.Module):
    """Teacher-forced captioning loss of the caption queries.

    Position ``t`` of the caption queries predicts token ``t + 1``; the cross-entropy is summed
    over the real next tokens (``attention_mask[:, 1:]``) and divided by their number + 1 (the
    official normaliser), times ``loss_weight``.

    ``forward(token_ids, attention_mask, logits=None, features=None, token_embedding=None)``:

    * ``token_ids``: ``[B, L]`` the caption's tokens (SOT ... EOT, padded);
      ``attention_mask``: ``[B, L]``, 1 on real tokens;
    * either ``logits``: per prediction, ``[B, L, V]``; or ``features``: per prediction,
      ``[B, L, C]`` (the caption queries' normalised states ``@ caping_embed``) with
      ``token_embedding`` ``[V, C]``, the text encoder's token table: the logits are then
      ``features @ token_embedding.T``, the tied output layer greedy decoding uses
      (``XDecoderTransformerDecoder.forward_caption``).

    Returns ``loss_captioning`` of the last prediction and ``d{j}.loss_captioning`` of the
    earlier supervised ones.
    """

    def __init__(self, loss_weight: float = 8.0,
                 top_layers: Optional[int] = OFFICIAL_TOP_LAYERS['captioning']):
        super().__init__()
        self.loss_ce = MODELS.build(dict(type='CrossEntropyLoss', use_sigmoid=False,
                                         loss_weight=loss_weight, reduction='mean'))
        self.top_layers = top_layers

    def forward(self, token_ids: Tensor, attention_mask: Tensor,
                logits: Optional[Sequence[Tensor]] = None,
                features: Optional[Sequence[Tensor]] = None,
                token_embedding: Optional[Tensor] = None) -> Dict[str, Tensor]:
        if (logits is None) == (features is None):
            raise ValueError('Give either logits or features (with token_embedding).')
        if features is not None:
            if token_embedding is None:
                raise ValueError('features need the token_embedding [V, C] to become logits.')
            logits = [f @ token_embedding.t() for f in features]
        layers = supervised_predictions(len(logits), self.top_layers)
        next_tokens = token_ids[:, 1:].reshape(-1)
        real = attention_mask[:, 1:].reshape(-1).float()
        # The official normaliser is this process's real-token count + 1. Here it is the
        # batch's (all processes') count + 1, over the process count: DDP then averages the
        # processes' gradients to that of one process holding the whole batch, and one process
        # gets the official value.
        avg_factor = (reduce_mean(real.sum()) * dist.get_world_size() + 1) / \
            dist.get_world_size()
        per_prediction = []
        for j in layers:
            if logits[j].shape[:2] != token_ids.shape:
                raise ValueError(f'Caption logits {tuple(logits[j].shape)} do not match the '
                                 f'tokens {tuple(token_ids.shape)}: give one position per '
                                 'token.')
            predicted = logits[j][:, :-1].reshape(len(next_tokens), -1)
            per_prediction.append(dict(loss_captioning=self.loss_ce(
                predicted, next_tokens, real, avg_factor=avg_factor)))
        return name_deep_supervision(per_prediction, first=layers.start)


@MODELS.register_module()
class XDecoderRetrievalLoss(nn.Module):
    """Image-text contrastive loss of the global query, and of the backbone through
    ``backbone_proj``, over the batch gathered from all processes
    (:func:`all_gather_with_grad`).

    ``forward(image_embeds, text_embeds, logit_scale, backbone_feats=None, backbone_proj=None)``:

    * ``image_embeds``: per prediction, ``[B, D]`` the global query's class embedding;
    * ``text_embeds``: ``[B, D]`` the paired captions' EOT embeddings (``@ lang_proj``);
    * ``logit_scale``: the text encoder's (log) ``logit_scale``; the scale is
      ``min(exp(logit_scale), 100)``;
    * ``backbone_feats``: ``[B, C5, h, w]`` the last backbone stage, and ``backbone_proj``
      ``[C5, D]``: their spatial mean ``@ backbone_proj`` is contrasted with the captions too.

    Returns ``loss_retrieval`` (+ ``d{j}.loss_retrieval`` of the earlier supervised
    predictions) times ``loss_weight``, and ``loss_retrieval_backbone`` times
    ``backbone_loss_weight`` when the backbone inputs are given. Every process must hold the
    same batch size.
    """

    def __init__(self, loss_weight: float = 8.0, backbone_loss_weight: float = 8.0,
                 top_layers: Optional[int] = OFFICIAL_TOP_LAYERS['retrieval']):
        super().__init__()
        self.loss_weight = loss_weight
        self.backbone_loss_weight = backbone_loss_weight
        self.top_layers = top_layers

    def forward(self, image_embeds: Sequence[Tensor], text_embeds: Tensor,
                logit_scale: Union[Tensor, float], backbone_feats: Optional[Tensor] = None,
                backbone_proj: Optional[Tensor] = None) -> Dict[str, Tensor]:
        layers = supervised_predictions(len(image_embeds), self.top_layers)
        losses = name_deep_supervision([
            dict(loss_retrieval=self.loss_weight
                 * image_text_contrastive(image_embeds[j], text_embeds, logit_scale))
            for j in layers], first=layers.start)
        if (backbone_feats is None) != (backbone_proj is None):
            raise ValueError('The backbone retrieval loss needs both backbone_feats and '
                             'backbone_proj.')
        if backbone_feats is not None:
            pooled = backbone_feats.flatten(2).mean(-1) @ backbone_proj
            losses['loss_retrieval_backbone'] = self.backbone_loss_weight * \
                image_text_contrastive(pooled, text_embeds, logit_scale)
        return losses
