"""Small functions and layers that the model and the post-processing share."""
import contextlib
import functools
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


# Inference precisions (``test_cfg.precision``) and the autocast dtype of each.
PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def autocast_for(precision: str, device: torch.device):
    """The autocast region of an inference precision on ``device`` (none for fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f'Unknown precision {precision!r}; choose one of {sorted(PRECISIONS)}.')
    if PRECISIONS[precision] is None:
        return contextlib.nullcontext()
    if precision == 'fp16' and device.type == 'cpu':
        raise ValueError('fp16 inference needs a GPU (CPUs compute it slowly or not at all); use '
                         "precision='bf16' on a CPU.")
    return torch.autocast(device.type, dtype=PRECISIONS[precision])


def _at_least_fp32(x):
    if isinstance(x, Tensor) and x.is_floating_point():
        return x.to(torch.promote_types(x.dtype, torch.float32))
    return x


def full_precision(fn):
    """Run ``fn`` outside autocast, its floating tensor arguments in at least float32.

    For the steps whose result a threshold, an argmax or a softmax decides (attention masks
    thresholded at 0 from logits of magnitude ~200, class scores, mask resizing and the
    post-processing): in bf16/fp16 these would flip decisions, and the antialiased bicubic
    resize has no bf16 kernel on CPU. float64 stays float64.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        args = [_at_least_fp32(a) for a in args]
        kwargs = {k: _at_least_fp32(v) for k, v in kwargs.items()}
        devices = {t.device.type for t in [*args, *kwargs.values()] if isinstance(t, Tensor)}
        with contextlib.ExitStack() as stack:
            for device in devices:
                stack.enter_context(torch.autocast(device, enabled=False))
            return fn(*args, **kwargs)

    return wrapper


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
