"""Small functions and layers that the model and the post-processing share."""
from typing import Union

import torch
from mmdet.models.layers import SinePositionalEncoding
from torch import Tensor, nn


def l2_normalize(x: Tensor, eps: float = 1e-7) -> Tensor:
    """``x / (||x|| + eps)`` over the last dim (X-Decoder's epsilon, not F.normalize's clamp)."""
    return x / (x.norm(dim=-1, keepdim=True) + eps)


def clamped_logit_scale(logit_scale: Union[Tensor, float], like: Tensor,
                        max_scale: float = 100.0) -> Tensor:
    """``min(exp(logit_scale), max_scale)`` as a scalar of ``like``'s dtype and device: the
    temperature of grounding and retrieval scores (class logits use the unclamped scale)."""
    return torch.as_tensor(logit_scale).to(like).exp().clamp(max=max_scale)


class SinePositionEmbedding(nn.Module):
    """Normalised sine/cosine position embedding of a feature map ``[B, C, H, W]`` ->
    ``[B, 2 * num_feats, H, W]``; no parameters.

    Padding is not masked (the official model does not mask it either), so the map is treated as
    all-valid.
    """

    def __init__(self, num_feats: int):
        super().__init__()
        self.encoding = SinePositionalEncoding(num_feats=num_feats, normalize=True)

    def forward(self, x: Tensor) -> Tensor:
        padding = x.new_zeros((x.shape[0], ) + x.shape[-2:], dtype=torch.bool)
        return self.encoding(padding).to(x.dtype)
