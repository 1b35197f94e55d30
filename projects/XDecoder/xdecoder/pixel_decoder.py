"""Transformer-encoder FPN pixel decoder of X-Decoder (Mask2Former's ``XDecoderPixelDecoder``).

The coarsest backbone map goes through a post-norm transformer encoder, then a top-down FPN
merges the finer maps; the last FPN output, after one more conv, is the stride-4 mask-feature map.
"""
from typing import List, Sequence, Tuple

import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

from .layers import SinePositionEmbedding


class ConvNorm(nn.Conv2d):
    """Conv2d followed by an optional GroupNorm and ReLU.

    The norm is a child called ``norm`` of the conv itself, so parameters are named
    ``<conv>.weight`` and ``<conv>.norm.weight`` as in the released checkpoints (mmcv's
    ConvModule would name them ``conv.weight`` / ``gn.weight``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, norm: bool = True,
                 relu: bool = False, num_groups: int = 32):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                         bias=not norm)
        self.norm = nn.GroupNorm(num_groups, out_channels) if norm else None
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        x = super().forward(x)
        if self.norm is not None:
            x = self.norm(x)
        return F.relu(x) if self.relu else x


class EncoderLayer(nn.Module):
    """Post-norm transformer encoder layer whose queries and keys carry a position embedding.

    Args and shapes: ``x`` and ``pos`` are (HW, B, C); returns (HW, B, C).
    """

    def __init__(self, dim: int = 512, num_heads: int = 8, ffn_dim: int = 2048):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, num_heads)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: Tensor, pos: Tensor) -> Tensor:
        q = k = x + pos
        x = self.norm1(x + self.self_attn(q, k, x, need_weights=False)[0])
        return self.norm2(x + self.linear2(F.relu(self.linear1(x))))


class TransformerEncoder(nn.Module):
    """A stack of :class:`EncoderLayer` (no final norm); keys ``encoder.layers.{i}.*``."""

    def __init__(self, num_layers: int = 6, **layer_args):
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList(EncoderLayer(**layer_args) for _ in range(num_layers))

    def forward(self, x: Tensor, pos: Tensor) -> Tensor:
        for layer in self.encoder.layers:
            x = layer(x, pos)
        return x


@MODELS.register_module()
class XDecoderPixelDecoder(BaseModule):
    """Pixel decoder: transformer encoder on the /32 map, then a top-down FPN.

    Args:
        in_channels: channels of the backbone maps, finest first (res2..res5).
        conv_dim: FPN width. mask_dim: channels of the mask features.
        num_encoder_layers, num_heads, ffn_dim: the transformer encoder on the coarsest map.

    Shapes: ``forward(feats)`` takes the backbone maps finest first, ``[B, C_i, H/s_i, W/s_i]``
    for strides 4, 8, 16, 32, and returns ``(mask_features [B, mask_dim, H/4, W/4],
    multi_scale [P5 /32, P4 /16, P3 /8] each [B, conv_dim, h, w])``.
    """

    def __init__(self, in_channels: Sequence[int] = (96, 192, 384, 768), conv_dim: int = 512,
                 mask_dim: int = 512, num_encoder_layers: int = 6, num_heads: int = 8,
                 ffn_dim: int = 2048, num_outs: int = 3, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.num_outs = num_outs
        self.input_proj = nn.Conv2d(in_channels[-1], conv_dim, 1)
        self.position_embedding = SinePositionEmbedding(conv_dim // 2)
        self.transformer = TransformerEncoder(num_encoder_layers, dim=conv_dim,
                                              num_heads=num_heads, ffn_dim=ffn_dim)
        # adapter_k / layer_k follow the official numbering: k=1 is the finest level (res2) and
        # layer_4 is the output conv of the transformer-encoded res5.
        for k, channels in enumerate(in_channels[:-1], start=1):
            setattr(self, f'adapter_{k}', ConvNorm(channels, conv_dim, 1))
        for k in range(1, len(in_channels) + 1):
            setattr(self, f'layer_{k}', ConvNorm(conv_dim, conv_dim, 3, relu=True))
        self.mask_features = nn.Conv2d(conv_dim, mask_dim, 3, padding=1)

    def forward(self, feats: Sequence[Tensor]) -> Tuple[Tensor, List[Tensor]]:
        top = self.input_proj(feats[-1])
        b, c, h, w = top.shape
        pos = self.position_embedding(top).flatten(2).permute(2, 0, 1)
        top = self.transformer(top.flatten(2).permute(2, 0, 1), pos)
        y = getattr(self, f'layer_{len(feats)}')(top.permute(1, 2, 0).reshape(b, c, h, w))
        multi_scale = [y]
        for k in range(len(feats) - 1, 0, -1):
            lateral = getattr(self, f'adapter_{k}')(feats[k - 1])
            y = lateral + F.interpolate(y, size=lateral.shape[-2:], mode='nearest')
            y = getattr(self, f'layer_{k}')(y)
            if len(multi_scale) < self.num_outs:
                multi_scale.append(y)
        return self.mask_features(y), multi_scale
