"""FocalNet backbone (Focal Modulation Networks, Yang et al., NeurIPS 2022) as used by X-Decoder.

Two block flavours are supported, selected by ``block_type``:

* ``'focal_dw'`` (X-Decoder focal-T): every block adds a depth-wise 3x3 convolution residual
  before the modulation (``dw1``) and before the MLP (``dw2``); with ``use_postln`` the
  LayerNorm is applied *after* the residual sum, ``x = LN(x + g * f(x))``.
* ``'focal'`` (X-Decoder Focal-L): no depth-wise residuals; with ``use_postln`` the LayerNorm is
  applied to the branch output ("res-post-norm"), ``x = x + g * LN(f(x))``.

Parameter names follow the released X-Decoder checkpoints (``patch_embed``,
``layers.{s}.blocks.{b}.{gamma_1,dw1,norm1,modulation,...}``, ``layers.{s}.downsample``,
``norm{s}``) so they load without key conversion.

Inside the network, feature maps are kept channels-last, (B, H, W, C): the LayerNorms and the
linear layers act on the last dimension, and only the convolutions need NCHW.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from timm.layers import DropPath, Mlp
from torch import Tensor


def _to_nchw(x: Tensor) -> Tensor:
    return x.permute(0, 3, 1, 2)


def _to_nhwc(x: Tensor) -> Tensor:
    return x.permute(0, 2, 3, 1)


class PatchEmbed(nn.Module):
    """Strided convolution + optional LayerNorm, used for the stem and between stages.

    Written by hand rather than taken from timm/mmcv: those fix kernel = stride = patch size
    (or name the conv ``projection``), while the checkpoints need an overlapping conv named
    ``proj`` (7x7/s4 stem, 3x3/s2 downsampling) and right/bottom padding to a multiple of the
    stride.

    Args:
        in_channels (int): input channels.
        embed_dim (int): output channels.
        stride (int): downsampling factor (4 for the stem, 2 between stages).
        kernel_size (int): conv kernel size; ``stride`` itself gives the non-overlapping
            patchify of plain FocalNet.
        padding (int): conv padding.
        use_norm (bool): apply a LayerNorm to the output.

    Shapes:
        in: (B, C_in, H, W); out: (B, ceil(H / stride), ceil(W / stride), embed_dim),
        channels-last. (The ceil holds when kernel_size - stride <= 2 * padding < kernel_size,
        true for every configuration FocalNet uses.)
    """

    def __init__(self,
                 in_channels: int,
                 embed_dim: int,
                 stride: int,
                 kernel_size: int,
                 padding: int,
                 use_norm: bool = True) -> None:
        super().__init__()
        self.stride = stride
        self.proj = nn.Conv2d(
            in_channels, embed_dim, kernel_size=kernel_size, stride=stride, padding=padding)
        self.norm = nn.LayerNorm(embed_dim) if use_norm else None

    def forward(self, x: Tensor) -> Tensor:
        _, _, h, w = x.shape
        # Pad right/bottom to a multiple of the stride, so odd-sized maps lose no border
        # pixels and the output size is exactly ceil(size / stride).
        pad_h, pad_w = (-h) % self.stride, (-w) % self.stride
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = _to_nhwc(self.proj(x))
        if self.norm is not None:
            x = self.norm(x)
        return x


class FocalModulation(nn.Module):
    """Focal modulation: ``proj(q * h(sum_l gate_l * ctx_l + gate_L * global_ctx))``.

    The context ``ctx_l`` comes from ``focal_level`` stacked depth-wise convs (each followed by
    GELU) with kernel sizes ``focal_window + focal_factor * l``; the global context is the
    GELU of the spatial mean of the last level.

    Written by hand instead of using ``timm.models.focalnet.FocalModulation``: timm (>= 0.9)
    implements ``f`` and ``proj`` as 1x1 ``Conv2d`` (weights ``[out, in, 1, 1]``), whereas the
    checkpoints store them as ``nn.Linear`` (``[out, in]``).

    Args:
        dim (int): channels C.
        focal_level (int): number of depth-wise context levels L.
        focal_window (int): kernel size of the first level.
        focal_factor (int): kernel size increment per level.
        scaling_modulator (bool): divide the aggregated context by L + 1.
        use_postln_in_modulation (bool): LayerNorm (``ln``) before the output projection.
        proj_drop (float): dropout after the output projection.

    Shapes:
        in: (B, H, W, C); out: (B, H, W, C).
    """

    def __init__(self,
                 dim: int,
                 focal_level: int,
                 focal_window: int,
                 focal_factor: int = 2,
                 scaling_modulator: bool = True,
                 use_postln_in_modulation: bool = False,
                 proj_drop: float = 0.0) -> None:
        super().__init__()
        self.dim = dim
        self.focal_level = focal_level
        self.scaling_modulator = scaling_modulator

        # one projection produces the query, the context and L + 1 gates
        self.f = nn.Linear(dim, 2 * dim + focal_level + 1)
        self.h = nn.Conv2d(dim, dim, kernel_size=1)
        self.act = nn.GELU()
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.focal_layers = nn.ModuleList()
        for level in range(focal_level):
            k = focal_window + focal_factor * level
            self.focal_layers.append(
                nn.Sequential(
                    nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim, bias=False),
                    nn.GELU()))
        self.ln = nn.LayerNorm(dim) if use_postln_in_modulation else None

    def forward(self, x: Tensor) -> Tensor:
        q, ctx, gates = _to_nchw(self.f(x)).split(
            (self.dim, self.dim, self.focal_level + 1), dim=1)

        ctx_all = 0
        for level, focal_layer in enumerate(self.focal_layers):
            ctx = focal_layer(ctx)
            ctx_all = ctx_all + ctx * gates[:, level:level + 1]
        ctx_global = self.act(ctx.mean(dim=(2, 3), keepdim=True))
        ctx_all = ctx_all + ctx_global * gates[:, self.focal_level:]
        if self.scaling_modulator:
            # keeps the modulator's scale independent of the number of levels
            ctx_all = ctx_all / (self.focal_level + 1)

        out = _to_nhwc(q * self.h(ctx_all))
        if self.ln is not None:
            out = self.ln(out)
        return self.proj_drop(self.proj(out))


class FocalNetBlock(nn.Module):
    """One FocalNet block: focal-modulation residual, then MLP residual.

    Written by hand because timm's block has neither the ``dw1``/``dw2`` depth-wise residuals
    nor the post-sum LayerNorm of ``'focal_dw'``, and names its layer scales ``ls1.gamma``
    instead of the checkpoints' ``gamma_1``.

    Args:
        dim (int): channels C.
        block_type (str): ``'focal_dw'`` or ``'focal'`` (see the module docstring).
        mlp_ratio (float): MLP hidden size as a multiple of C.
        focal_level, focal_window, scaling_modulator, use_postln_in_modulation: see
            :class:`FocalModulation`.
        drop (float): dropout in the MLP and after the modulation projection.
        drop_path (float): stochastic depth rate of both residual branches.
        use_layerscale (bool): learnable per-channel branch scales ``gamma_1``/``gamma_2``.
        layerscale_value (float): their initial value.
        use_postln (bool): post-norm (``True``) or pre-norm (``False``) residuals.

    Shapes:
        in: (B, H, W, C); out: (B, H, W, C).
    """

    def __init__(self,
                 dim: int,
                 block_type: str = 'focal_dw',
                 mlp_ratio: float = 4.0,
                 focal_level: int = 3,
                 focal_window: int = 3,
                 scaling_modulator: bool = True,
                 use_postln_in_modulation: bool = False,
                 drop: float = 0.0,
                 drop_path: float = 0.0,
                 use_layerscale: bool = True,
                 layerscale_value: float = 1e-4,
                 use_postln: bool = True) -> None:
        super().__init__()
        if block_type not in ('focal_dw', 'focal'):
            raise ValueError(f'unknown block_type {block_type!r}')
        self.use_dwconv = block_type == 'focal_dw'
        # The two checkpoint families disagree on where the post-norm sits (module docstring).
        self.norm_after_sum = self.use_dwconv
        self.use_postln = use_postln

        if self.use_dwconv:
            self.dw1 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim)
        self.modulation = FocalModulation(
            dim,
            focal_level=focal_level,
            focal_window=focal_window,
            scaling_modulator=scaling_modulator,
            use_postln_in_modulation=use_postln_in_modulation,
            proj_drop=drop)
        if self.use_dwconv:
            self.dw2 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

        if use_layerscale:
            self.gamma_1 = nn.Parameter(torch.full((dim, ), layerscale_value))
            self.gamma_2 = nn.Parameter(torch.full((dim, ), layerscale_value))
        else:
            self.gamma_1 = self.gamma_2 = 1.0

    def _residual(self, x: Tensor, branch: nn.Module, norm: nn.Module, gamma) -> Tensor:
        if not self.use_postln:
            return x + self.drop_path(gamma * branch(norm(x)))
        if self.norm_after_sum:
            return norm(x + self.drop_path(gamma * branch(x)))
        return x + self.drop_path(gamma * norm(branch(x)))

    def forward(self, x: Tensor) -> Tensor:
        if self.use_dwconv:
            x = x + _to_nhwc(self.dw1(_to_nchw(x)))
        x = self._residual(x, self.modulation, self.norm1, self.gamma_1)
        if self.use_dwconv:
            x = x + _to_nhwc(self.dw2(_to_nchw(x)))
        x = self._residual(x, self.mlp, self.norm2, self.gamma_2)
        return x


class FocalNetStage(nn.Module):
    """A stage: ``depth`` blocks at one resolution, then an optional 2x downsampling.

    Shapes:
        in: (B, H, W, C). out: ``(x, x_down)`` with x (B, H, W, C) the stage output (before
        downsampling) and x_down (B, ceil(H/2), ceil(W/2), C_out) or ``None`` for the last
        stage.
    """

    def __init__(self,
                 dim: int,
                 depth: int,
                 drop_paths: Sequence[float],
                 downsample: Optional[nn.Module] = None,
                 **block_kwargs) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            FocalNetBlock(dim, drop_path=drop_paths[i], **block_kwargs) for i in range(depth))
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        for block in self.blocks:
            x = block(x)
        if self.downsample is None:
            return x, None
        return x, self.downsample(_to_nchw(x))


@MODELS.register_module()
class FocalNet(BaseModule):
    """FocalNet backbone returning multi-scale features, X-Decoder flavour.

    Defaults are X-Decoder focal-T (``focal_dw`` blocks). X-Decoder Focal-L is
    ``FocalNet(embed_dim=192, depths=(2, 2, 18, 2), focal_levels=(4, 4, 4, 4),
    block_type='focal')``; its stem padding defaults to 2.

    Args:
        in_channels (int): input image channels.
        embed_dim (int): channels of the first stage; they double at every stage.
        depths (Sequence[int]): blocks per stage.
        focal_levels (Sequence[int]): focal levels per stage.
        focal_windows (Sequence[int]): first focal kernel size per stage.
        focal_factor (int): focal kernel size increment per level.
        mlp_ratio (float): MLP hidden size as a multiple of the stage width.
        drop_rate (float): dropout rate in blocks.
        drop_path_rate (float): stochastic depth, increasing linearly over all blocks.
        patch_size (int): stem stride.
        patch_norm (bool): LayerNorm after the stem and every downsampling conv.
        use_conv_embed (bool): overlapping convs for the stem (7x7) and downsampling (3x3)
            instead of kernel = stride patchify convs.
        stem_padding (int, optional): stem conv padding with ``use_conv_embed``; ``None``
            selects what the checkpoints were trained with: 3 for ``'focal_dw'``,
            2 for ``'focal'``.
        block_type (str): ``'focal_dw'`` or ``'focal'``.
        use_layerscale (bool): per-channel branch scales ``gamma_1``/``gamma_2``.
        layerscale_value (float): their initial value.
        use_postln (bool): post-norm blocks.
        use_postln_in_modulation (bool): LayerNorm inside the modulation.
        scaling_modulator (bool): divide the modulator by ``focal_level + 1``.
        out_indices (Sequence[int]): stages to return; each gets its own LayerNorm ``norm{s}``.
        init_cfg (dict, optional): mmengine init config (e.g. ``Pretrained``).

    Shapes:
        in: (B, in_channels, H, W). out: tuple with, for each ``s`` in ``out_indices``, a
        tensor (B, embed_dim * 2**s, H_s, W_s), with H_0 = ceil(H / patch_size) and
        H_{s+1} = ceil(H_s / 2) (strides 4, 8, 16, 32 for the default patch size).
    """

    def __init__(self,
                 in_channels: int = 3,
                 embed_dim: int = 96,
                 depths: Sequence[int] = (2, 2, 6, 2),
                 focal_levels: Sequence[int] = (3, 3, 3, 3),
                 focal_windows: Sequence[int] = (3, 3, 3, 3),
                 focal_factor: int = 2,
                 mlp_ratio: float = 4.0,
                 drop_rate: float = 0.0,
                 drop_path_rate: float = 0.3,
                 patch_size: int = 4,
                 patch_norm: bool = True,
                 use_conv_embed: bool = True,
                 stem_padding: Optional[int] = None,
                 block_type: str = 'focal_dw',
                 use_layerscale: bool = True,
                 layerscale_value: float = 1e-4,
                 use_postln: bool = True,
                 use_postln_in_modulation: bool = False,
                 scaling_modulator: bool = True,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        num_stages = len(depths)
        dims = [embed_dim * 2**i for i in range(num_stages)]
        self.out_indices = tuple(out_indices)
        self.num_features = [dims[i] for i in self.out_indices]

        def embed(in_ch: int, out_ch: int, stride: int, conv_kernel: int,
                  conv_padding: int) -> PatchEmbed:
            if use_conv_embed:
                return PatchEmbed(in_ch, out_ch, stride, conv_kernel, conv_padding, patch_norm)
            return PatchEmbed(in_ch, out_ch, stride, stride, 0, patch_norm)

        if stem_padding is None:
            stem_padding = 3 if block_type == 'focal_dw' else 2
        self.patch_embed = embed(in_channels, dims[0], patch_size, 7, stem_padding)
        self.pos_drop = nn.Dropout(drop_rate)

        # explicit CPU device: still works when built under ``torch.device('meta')``
        drop_paths = torch.linspace(0, drop_path_rate, sum(depths), device='cpu').tolist()
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            first = sum(depths[:i])
            last_stage = i == num_stages - 1
            self.layers.append(
                FocalNetStage(
                    dims[i],
                    depth,
                    drop_paths=drop_paths[first:first + depth],
                    downsample=None if last_stage else embed(dims[i], dims[i + 1], 2, 3, 1),
                    block_type=block_type,
                    mlp_ratio=mlp_ratio,
                    focal_level=focal_levels[i],
                    focal_window=focal_windows[i],
                    scaling_modulator=scaling_modulator,
                    use_postln_in_modulation=use_postln_in_modulation,
                    drop=drop_rate,
                    use_layerscale=use_layerscale,
                    layerscale_value=layerscale_value,
                    use_postln=use_postln))

        for i in self.out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(dims[i]))

    def init_weights(self) -> None:
        if self.init_cfg is not None:
            super().init_weights()
            return
        # Without an init_cfg, reproduce FocalNet's from-scratch init; convolutions and
        # LayerNorms keep PyTorch defaults, layer scales keep ``layerscale_value``.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        # mmengine's data preprocessor always gives float32; a model converted with .double()
        # (the tests check algorithms in float64) computes in its own dtype.
        x = x.to(self.patch_embed.proj.weight.dtype)
        x = self.pos_drop(self.patch_embed(x))
        outs = []
        for i, stage in enumerate(self.layers):
            stage_out, x = stage(x)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(stage_out)
                outs.append(_to_nchw(out).contiguous())
        return tuple(outs)
