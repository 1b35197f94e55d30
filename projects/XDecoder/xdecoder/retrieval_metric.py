"""Image-text retrieval recall (COCO Karpathy test), as X-Decoder's evaluation reports it.

mmdet 3.3 has no retrieval metric, and mmpretrain's ``RetrievalRecall`` scores one query against
one label per row; this metric needs the caption-to-image grouping of COCO (5 captions per image)
and the decoder/backbone ensemble, so it is written here.
"""
from typing import Dict, List, Optional, Sequence

import torch
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from torch import Tensor

from .postprocess import retrieval_scores


@METRICS.register_module()
class RetrievalRecallMetric(BaseMetric):
    """Recall@k for image->text and text->image retrieval.

    Each data sample (one image) must carry, as the X-Decoder ``retrieval`` task writes them:

    * ``image_embedding`` ``[D]``: the global query's class embedding;
    * ``caption_embeddings`` ``[C, D]``: EOT embeddings of the image's C ground-truth captions;
    * ``backbone_image_embedding`` ``[D]`` (optional): ``avgpool(res5) @ backbone_proj``. When the
      samples carry it (``model.test_cfg.retrieval_ensemble=True``), the score is the official
      ensemble ``(1 - w) * cos_decoder + w * cos_backbone``; otherwise ``cos_decoder``.

    Over I images and T = sum(C) captions, a score matrix ``[I, T]`` is built. Image->text recall
    @k is the share of images whose best-ranked own caption is among the top k of all T captions;
    text->image recall@k is the share of captions whose image is among the top k of all I images.
    A candidate ranks ahead only with a strictly higher score (ties count in the query's favour).

    Args:
        topk: the k values.
        backbone_weight: w of the ensemble.
        chunk_size: queries scored at a time (the 5k x 25k matrix is never held whole).
    """
    default_prefix = 'retrieval'

    def __init__(self, topk: Sequence[int] = (1, 5, 10), backbone_weight: float = 0.5,
                 chunk_size: int = 1024, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = tuple(int(k) for k in topk)
        self.backbone_weight = backbone_weight
        self.chunk_size = chunk_size

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            missing = [k for k in ('image_embedding', 'caption_embeddings') if k not in sample]
            if missing:
                raise KeyError(
                    f'RetrievalRecallMetric needs {missing} in the predictions: run the model '
                    "with task='retrieval' on a dataset whose samples carry their captions "
                    "('gt_caption' in PackDetInputs' meta_keys, e.g. CocoCaptionDataset).")
            self.results.append(dict(
                image=sample['image_embedding'].detach().float().cpu(),
                captions=sample['caption_embeddings'].detach().float().cpu(),
                backbone=(sample['backbone_image_embedding'].detach().float().cpu()
                          if 'backbone_image_embedding' in sample else None)))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        with_backbone = [r['backbone'] is not None for r in results]
        if any(with_backbone) and not all(with_backbone):
            raise ValueError('Only some images carry backbone_image_embedding; the ensemble '
                             'needs it for every image (model.test_cfg.retrieval_ensemble).')
        images = torch.stack([r['image'] for r in results])
        backbone = torch.stack([r['backbone'] for r in results]) if all(with_backbone) else None
        texts = torch.cat([r['captions'] for r in results])
        owner = torch.cat([torch.full((len(r['captions']),), i, dtype=torch.long)
                           for i, r in enumerate(results)])
        img_rank = self._image_to_text_ranks(images, backbone, texts, owner)
        txt_rank = self._text_to_image_ranks(images, backbone, texts, owner)
        metrics = {}
        for k in self.topk:
            metrics[f'img2txt_R@{k}'] = float((img_rank < k).double().mean()) * 100
        for k in self.topk:
            metrics[f'txt2img_R@{k}'] = float((txt_rank < k).double().mean()) * 100
        metrics['mean_R'] = sum(metrics.values()) / len(metrics)
        return metrics

    def _scores(self, images: Tensor, backbone: Optional[Tensor], texts: Tensor) -> Tensor:
        return retrieval_scores(images, texts, backbone_image_embeds=backbone,
                                backbone_weight=self.backbone_weight)

    def _image_to_text_ranks(self, images, backbone, texts, owner) -> Tensor:
        ranks = []
        for start in range(0, len(images), self.chunk_size):
            stop = start + self.chunk_size
            scores = self._scores(images[start:stop],
                                  None if backbone is None else backbone[start:stop], texts)
            own = owner[None] == torch.arange(start, start + len(scores))[:, None]
            best_own = scores.masked_fill(~own, float('-inf')).max(1, keepdim=True).values
            ranks.append((scores > best_own).sum(1))
        return torch.cat(ranks)

    def _text_to_image_ranks(self, images, backbone, texts, owner) -> Tensor:
        ranks = []
        for start in range(0, len(texts), self.chunk_size):
            stop = start + self.chunk_size
            scores = self._scores(images, backbone, texts[start:stop])  # [I, chunk]
            own = scores.gather(0, owner[None, start:stop])
            ranks.append((scores > own).sum(0))
        return torch.cat(ranks)
