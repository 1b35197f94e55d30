"""Per-task post-processing of X-Decoder outputs, as pure tensor functions.

Nothing here holds state or parameters: each function takes the head's raw outputs for one
image (class logits over ``K`` names + a trailing "background" column, mask logits, embeddings)
and returns plain tensors / Python containers, on whatever device the inputs live. The heads and
inferencers wrap these into mmdet/mmseg data samples.

Conventions: ``Q`` queries, ``K`` class names (the ``background`` text is column ``K`` of the
class logits and is never a predicted label), ``H x W`` the mask resolution the caller already
resized to (normally the original image size, see :func:`resize_to_original`).
"""
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .layers import clamped_logit_scale, full_precision, l2_normalize
from .tokenizer import EOT_TEXT, SOT_TEXT

__all__ = [
    'resize_to_original', 'resize_matrices', 'semantic_inference', 'instance_inference',
    'panoptic_inference', 'panoptic_to_mmdet', 'referring_selection', 'caption_text',
    'retrieval_scores'
]


def _bicubic(x: Tensor, size: Tuple[int, int]) -> Tensor:
    # antialias=True is not only about downscaling: torch's antialiased bicubic uses the
    # PIL kernel (a = -0.5) and renormalised border weights, while the plain one uses a = -0.75
    # with edge clamping, so dropping the flag changes upsampled logits too.
    return F.interpolate(x, size=tuple(size), mode='bicubic', align_corners=False, antialias=True)


@full_precision
def resize_to_original(mask_logits: Tensor, padded_hw: Sequence[int], img_hw: Sequence[int],
                       ori_hw: Sequence[int]) -> Tensor:
    """Bring low-resolution mask logits back to the original image size.

    Order (as in the official evaluation): resize to the padded batch size, crop away the
    bottom/right padding, resize to the original size. Both resizes are bicubic with
    ``align_corners=False`` and ``antialias=True``.

    Args:
        mask_logits: ``[Q, h, w]`` or ``[B, Q, h, w]`` (typically stride-4) logits.
        padded_hw: ``(Hp, Wp)`` of the padded network input.
        img_hw: ``(Hi, Wi)`` of the resized but unpadded image (``img_shape`` in mmdet).
        ori_hw: ``(H0, W0)`` of the original image (``ori_shape`` in mmdet).

    Returns:
        ``[Q, H0, W0]`` (or ``[B, Q, H0, W0]`` for a 4-D input, all images sharing the sizes).
    """
    if mask_logits.dim() not in (3, 4):
        raise ValueError(f'expected [Q,h,w] or [B,Q,h,w], got {tuple(mask_logits.shape)}')
    batched = mask_logits.dim() == 4
    x = mask_logits if batched else mask_logits[None]
    x = _bicubic(x, padded_hw)
    x = x[..., :img_hw[0], :img_hw[1]]
    # The official code resizes even when img_hw == ori_hw; the antialiased kernel at scale 1
    # puts all weight on the source pixel, so skipping that pass is exact and saves a copy of
    # the full-size logits.
    if tuple(x.shape[-2:]) != tuple(ori_hw):
        x = _bicubic(x, ori_hw)
    return x if batched else x[0]


def resize_matrices(low_hw: Sequence[int], padded_hw: Sequence[int], img_hw: Sequence[int],
                    ori_hw: Sequence[int], dtype: torch.dtype = torch.float32,
                    device=None) -> Tuple[Tensor, Tensor]:
    """:func:`resize_to_original` as one matrix per axis: ``out[q] = rows @ x[q] @ cols.T``.

    The two bicubic resizes and the crop are linear and act on each axis separately (torch's
    antialiased bicubic runs one pass per axis), so resizing the identity along one axis gives
    that axis' matrix. Equal to :func:`resize_to_original` up to rounding.

    Returns:
        ``rows [H0, h]`` and ``cols [W0, w]`` for logits of size ``low_hw = (h, w)``.
    """
    matrices = []
    for axis in range(2):
        # The identity as an n x n image, resized along its height only (a resize at scale 1
        # is the identity): its columns become the resized unit vectors.
        n = low_hw[axis]
        eye = torch.eye(n, dtype=dtype, device=device)[None, None]
        sizes = [(hw[axis], n) for hw in (padded_hw, img_hw, ori_hw)]
        matrices.append(resize_to_original(eye, *sizes)[0, 0])
    return matrices[0], matrices[1]


def _resized_rows(rows: Tensor, x: Tensor) -> Tensor:
    """``einsum('rh,qhw->qrw', rows, x)`` over the band of ``h`` that ``rows`` (a few output
    rows of a resize matrix) reads: bicubic reads at most a few input rows per output row."""
    band = rows.ne(0).any(0).nonzero()
    lo, hi = int(band.min()), int(band.max()) + 1
    return torch.einsum('rh,qhw->qrw', rows[:, lo:hi], x[:, lo:hi])


@full_precision
def semantic_inference(cls_logits: Tensor,
                       mask_logits: Tensor,
                       score_thr: Optional[float] = None,
                       ignore_index: int = 255,
                       with_scores: bool = True,
                       rows_per_chunk: int = 32,
                       resize_to: Optional[Sequence[Sequence[int]]] = None
                       ) -> Tuple[Optional[Tensor], Tensor]:
    """Open-vocabulary semantic segmentation.

    ``S[c] = sum_q softmax(cls_logits)[q, c] * sigmoid(mask_logits[q])`` for ``c < K`` (the
    background column takes part in the softmax and is then dropped); label = argmax over c.

    Args:
        cls_logits: ``[Q, K+1]`` class logits, background last.
        mask_logits: ``[Q, H, W]`` mask logits.
        score_thr: ``None`` (default) reproduces the official evaluation: plain argmax, every
            pixel labelled. A float reproduces the MMDetection port's ``use_thr_for_mc`` with
            ``mask_thr=score_thr``: pixels where no class has ``S > score_thr`` get
            ``ignore_index``. For ``K == 1`` this is exactly the port's single-prompt rule
            (``S > thr`` -> 0, else ignore), so that case needs no special branch; note the port
            applies it to K == 1 even when ``use_thr_for_mc`` is off — pass ``score_thr=0.5``
            to get that behaviour.
        ignore_index: label of pixels rejected by ``score_thr``.
        with_scores: also return the S map; without it, S is computed ``rows_per_chunk`` image
            rows at a time and never held whole (at 640x960 with 150 names the map is 369 MB,
            and the sigmoid of the masks another 248 MB).
        resize_to: ``(padded_hw, img_hw, ori_hw)``: ``mask_logits`` are the network's
            low-resolution logits, and each chunk of rows is resized to the original size as
            :func:`resize_to_original` would (through :func:`resize_matrices`, equal up to
            rounding), so the full-size logits (248 MB at 640x960, and 256 MB more for the
            padded size on the way) are never held either.

    Returns:
        ``scores [K, H, W]`` (the S map; None without ``with_scores``) and ``labels [H, W]``
        (long).
    """
    probs = cls_logits.softmax(-1)[:, :-1]
    if resize_to is None:
        height, width = mask_logits.shape[-2:]

        def logits_of(rows: slice) -> Tensor:
            return mask_logits[:, rows]
    else:
        row_matrix, col_matrix = resize_matrices(mask_logits.shape[-2:], *resize_to,
                                                 dtype=mask_logits.dtype,
                                                 device=mask_logits.device)
        # Resized along the width once ([Q, h, W0], a quarter of the full size at stride 4).
        wide = mask_logits @ col_matrix.T
        height, width = row_matrix.shape[0], col_matrix.shape[0]

        def logits_of(rows: slice) -> Tensor:
            return _resized_rows(row_matrix[rows], wide)
    step = max(height, 1) if with_scores else rows_per_chunk
    labels = torch.empty((height, width), dtype=torch.long, device=mask_logits.device)
    score_chunks = []
    for top in range(0, height, step):
        rows = slice(top, top + step)
        scores = torch.einsum('qk,qhw->khw', probs, logits_of(rows).sigmoid())
        max_scores, labels[rows] = scores.max(0)
        if score_thr is not None:
            labels[rows].masked_fill_(max_scores <= score_thr, ignore_index)
        if with_scores:
            score_chunks.append(scores)
    return (torch.cat(score_chunks, 1) if with_scores else None), labels


def _mask_scores(mask_logits: Tensor) -> Tuple[Tensor, Tensor]:
    """Binary masks (logit > 0) and mean sigmoid inside them, for ``[N, H, W]`` logits."""
    binary = mask_logits > 0
    inside = binary.to(mask_logits.dtype)
    score = (mask_logits.sigmoid() * inside).flatten(1).sum(1) / (inside.flatten(1).sum(1) + 1e-6)
    return binary, score


@full_precision
def instance_inference(cls_logits: Tensor,
                       mask_logits: Tensor,
                       max_per_img: int = 100,
                       thing_labels: Optional[Iterable[int]] = None) -> Dict[str, Tensor]:
    """Instance segmentation: top-k (query, class) pairs re-scored by their mask.

    The top-k runs over all ``Q*K`` class probabilities (background dropped), so one query can
    yield several detections with different labels. Thing filtering, when asked, happens after
    the top-k (as the official evaluation does with panoptic on), so stuff pairs still use up
    slots of the k.

    Args:
        cls_logits: ``[Q, K+1]`` class logits, background last.
        mask_logits: ``[Q, H, W]`` mask logits.
        max_per_img: k; clipped to ``Q*K``.
        thing_labels: label indices to keep; ``None`` keeps all.

    Returns:
        dict with, for ``N <= k`` detections sorted by score (descending):
        ``labels [N]`` long, ``scores [N]`` (class prob x mean sigmoid inside the binary mask),
        ``masks [N, H, W]`` bool (logit > 0), ``query_ids [N]`` long.
    """
    num_classes = cls_logits.shape[-1] - 1
    probs = cls_logits.softmax(-1)[:, :-1].flatten()
    k = min(max_per_img, probs.numel())
    top_probs, top_idx = probs.topk(k, sorted=False)
    labels = top_idx % num_classes
    query_ids = top_idx // num_classes
    if thing_labels is not None:
        things = torch.as_tensor(sorted(set(int(t) for t in thing_labels)),
                                 dtype=labels.dtype, device=labels.device)
        keep = torch.isin(labels, things)
        top_probs, labels, query_ids = top_probs[keep], labels[keep], query_ids[keep]
    masks, mask_score = _mask_scores(mask_logits[query_ids])
    scores = top_probs * mask_score
    order = scores.argsort(descending=True, stable=True)
    return dict(labels=labels[order].long(), scores=scores[order], masks=masks[order],
                query_ids=query_ids[order].long())


@full_precision
def panoptic_inference(cls_logits: Tensor,
                       mask_logits: Tensor,
                       thing_labels: Iterable[int],
                       object_mask_thr: float = 0.8,
                       overlap_thr: float = 0.8) -> Tuple[Tensor, List[dict]]:
    """Panoptic segmentation (official Mask2Former-style merging).

    Queries are kept when their top class (softmax over K+1) is not background and its
    probability is ``> object_mask_thr``. Each pixel goes to the kept query maximising
    ``score * sigmoid(mask)``. Walking the kept queries in query order, a query becomes a
    segment only if its won area, its own ``sigmoid >= 0.5`` area and their intersection are all
    non-empty and ``won / own >= overlap_thr``; the segment's pixels are that intersection.
    Stuff queries of a label that already has a segment are merged into it.

    Args:
        cls_logits: ``[Q, K+1]`` class logits, background last.
        mask_logits: ``[Q, H, W]`` mask logits.
        thing_labels: label indices that are things; all other labels are stuff.
        object_mask_thr: class-probability threshold for keeping a query (official 0.8; the
            MMDetection port's final configs use 0.4).
        overlap_thr: minimum won/own area ratio.

    Returns:
        ``seg_ids [H, W]`` int32 with 0 = void and segment ids 1..N, and a list of N dicts
        ``{id, label, isthing, score, area, query_id}``. ``score``/``query_id`` are those of the
        query that created the segment; ``area`` counts the final pixels (merged stuff included).
    """
    things = set(int(t) for t in thing_labels)
    num_classes = cls_logits.shape[-1] - 1
    height, width = mask_logits.shape[-2:]
    seg_ids = torch.zeros((height, width), dtype=torch.int32, device=mask_logits.device)

    scores, labels = cls_logits.softmax(-1).max(-1)
    keep = (labels != num_classes) & (scores > object_mask_thr)
    kept_queries = keep.nonzero().flatten().tolist()
    if not kept_queries:
        return seg_ids, []
    probs = mask_logits[keep].sigmoid()
    winner = (scores[keep][:, None, None] * probs).argmax(0)

    segments: List[dict] = []
    stuff_segment: Dict[int, dict] = {}
    for k, query in enumerate(kept_queries):
        label = int(labels[query])
        won = winner == k
        own = probs[k] >= 0.5
        region = won & own
        won_area, own_area = int(won.sum()), int(own.sum())
        if won_area == 0 or own_area == 0 or not bool(region.any()):
            continue
        if won_area / own_area < overlap_thr:
            continue
        isthing = label in things
        if not isthing and label in stuff_segment:
            segment = stuff_segment[label]
        else:
            segment = dict(id=len(segments) + 1, label=label, isthing=isthing,
                           score=float(scores[query]), area=0, query_id=query)
            segments.append(segment)
            if not isthing:
                stuff_segment[label] = segment
        seg_ids[region] = segment['id']
        # won-regions of different queries are disjoint, so areas simply add up
        segment['area'] += int(region.sum())
    return seg_ids, segments


def panoptic_to_mmdet(seg_ids: Tensor,
                      segments: Sequence[dict],
                      num_classes: int,
                      void_label: Optional[int] = None) -> Tensor:
    """Re-encode :func:`panoptic_inference` output the way mmdet's panoptic heads do.

    Stuff pixels hold their label, thing pixels ``label + instance_id * INSTANCE_OFFSET`` with
    instance ids counted from 1 in segment order, void pixels ``void_label``. The default void
    value ``num_classes`` is what mmdet 3.3's ``MaskFormerFusionHead`` writes and what
    ``CocoPanopticMetric`` skips without extra metadata (it also skips a PixelData
    ``ignore_index``, e.g. 255 as the MMDetection X-Decoder port uses).

    Args:
        seg_ids: ``[H, W]`` ids, 0 = void.
        segments: the segment dicts (``id``, ``label``, ``isthing``).
        num_classes: K, the number of class names (things + stuff).
        void_label: value for void pixels; ``None`` means ``num_classes``.

    Returns:
        ``[H, W]`` int32 panoptic map in mmdet encoding.
    """
    # mmdet.evaluation pulls in pycocotools & co.; importing here keeps this module light.
    from mmdet.evaluation.functional import INSTANCE_OFFSET

    void = num_classes if void_label is None else void_label
    out = torch.full_like(seg_ids, void, dtype=torch.int32)
    instance_id = 0
    for segment in segments:
        value = int(segment['label'])
        if segment['isthing']:
            instance_id += 1
            value += instance_id * INSTANCE_OFFSET
        out[seg_ids == segment['id']] = value
    return out


@full_precision
def referring_selection(grounding_embeds: Tensor, phrase_embeds: Tensor,
                        logit_scale: Union[Tensor, float]) -> Tuple[Tensor, Tensor]:
    """Pick one grounding query per referring phrase.

    Args:
        grounding_embeds: ``[Qg, D]`` class embeddings of the grounding queries.
        phrase_embeds: ``[N, D]`` EOT embeddings of the N phrases.
        logit_scale: log temperature; the scale used is ``min(exp(logit_scale), 100)``.

    Returns:
        ``query_ids [N]`` (argmax over queries per phrase) and ``logits [N, Qg]``
        (``min(exp(logit_scale), 100) * cos``, one row per phrase).
    """
    scale = clamped_logit_scale(logit_scale, grounding_embeds)
    logits = scale * l2_normalize(phrase_embeds) @ l2_normalize(grounding_embeds).t()
    return logits.argmax(-1), logits


def caption_text(ids: Union[Tensor, Sequence[int]],
                 tokenizer_decode: Callable[[List[int]], str],
                 cut_at_period: bool = False) -> str:
    """Turn greedy caption token ids into text.

    Decode, keep what precedes the first ``<|endoftext|>``, drop any remaining
    ``<|startoftext|>`` / ``<|endoftext|>`` strings, strip. With ``cut_at_period`` also keep only
    the text before the first ``'.'`` (official evaluation; not stripped again, as there).

    Args:
        ids: ``[L]`` token ids (tensor or sequence), usually the 77 decoded positions.
        tokenizer_decode: callable mapping a list of ids to a string (e.g. ``tokenizer.decode``).
        cut_at_period: apply the official cut at the first period.
    """
    if isinstance(ids, Tensor):
        ids = ids.flatten().tolist()
    text = tokenizer_decode([int(i) for i in ids])
    text = text.split(EOT_TEXT, 1)[0]
    text = text.replace(SOT_TEXT, '').replace(EOT_TEXT, '').strip()
    if cut_at_period:
        text = text.split('.')[0]
    return text


@full_precision
def retrieval_scores(image_embeds: Tensor,
                     text_embeds: Tensor,
                     logit_scale: Optional[Union[Tensor, float]] = None,
                     backbone_image_embeds: Optional[Tensor] = None,
                     backbone_weight: float = 0.5) -> Tensor:
    """Image-text similarity for retrieval.

    ``cos(image, text)``, or with ``backbone_image_embeds`` (``avgpool(res5) @ backbone_proj``)
    the official ensemble ``(1 - w) * cos_decoder + w * cos_backbone`` (``w = 0.5``); the text
    side is the same EOT embedding for both terms.

    Args:
        image_embeds: ``[I, D]`` global-query class embeddings.
        text_embeds: ``[T, D]`` text EOT embeddings.
        logit_scale: if given, scores are multiplied by ``min(exp(logit_scale), 100)`` (the demo
            and the MMDetection inferencer, which then softmax over images); ``None`` returns
            plain cosines, as the recall evaluation uses.
        backbone_image_embeds: ``[I, D]`` optional backbone-path image embeddings.
        backbone_weight: weight of the backbone term in the ensemble.

    Returns:
        ``[I, T]`` scores.
    """
    text = l2_normalize(text_embeds)
    scores = l2_normalize(image_embeds) @ text.t()
    if backbone_image_embeds is not None:
        backbone = l2_normalize(backbone_image_embeds) @ text.t()
        scores = (1 - backbone_weight) * scores + backbone_weight * backbone
    if logit_scale is not None:
        scores = clamped_logit_scale(logit_scale, scores) * scores
    return scores
