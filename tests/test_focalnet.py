"""Tests for the FocalNet backbone (X-Decoder focal-T ``focal_dw`` and Focal-L ``focal``)."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from projects.XDecoder.xdecoder.focalnet import FocalNet, FocalNetBlock

DATA = Path(__file__).parent / 'data'
FOCAL_L_ARGS = dict(
    embed_dim=192, depths=(2, 2, 18, 2), focal_levels=(4, 4, 4, 4), block_type='focal')


# --------------------------------------------------------------------------------------------
# a. one block against a functional re-derivation of the equations
# --------------------------------------------------------------------------------------------
def _randomize(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial weights: O(1) layer scales and LayerNorm affines, so every term matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            z = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            if 'gamma' in name:
                p.copy_(0.5 + 0.2 * z)
            elif 'norm' in name and name.endswith('weight'):
                p.copy_(1 + 0.2 * z)
            elif name.endswith('bias'):
                p.copy_(0.1 * z)
            else:
                fan_in = p[0].numel()
                p.copy_(z / math.sqrt(fan_in))


def _ref_dwconv(x_nhwc, weight, bias):
    """Depth-wise conv (groups = C) on a channels-last map, 'same' padding."""
    c, k = weight.shape[0], weight.shape[-1]
    y = F.conv2d(x_nhwc.permute(0, 3, 1, 2), weight, bias, padding=k // 2, groups=c)
    return y.permute(0, 2, 3, 1)


def _ref_modulation(x, p, focal_level):
    """q * h(sum_l g_l ctx_l + g_L gelu(mean ctx_{L-1})) / (L + 1), then proj; x is (B,H,W,C)."""
    c = x.shape[-1]
    y = F.linear(x, p['modulation.f.weight'], p['modulation.f.bias'])
    q, ctx, gates = y[..., :c], y[..., c:2 * c], y[..., 2 * c:]
    assert gates.shape[-1] == focal_level + 1
    agg = torch.zeros_like(ctx)
    for level in range(focal_level):
        ctx = F.gelu(_ref_dwconv(ctx, p[f'modulation.focal_layers.{level}.0.weight'], None))
        agg = agg + ctx * gates[..., level:level + 1]
    b, h, w, _ = ctx.shape
    ctx_global = F.gelu(ctx.sum(dim=(1, 2), keepdim=True) / (h * w))
    agg = (agg + ctx_global * gates[..., focal_level:]) / (focal_level + 1)
    # h is a 1x1 conv: a per-pixel matrix product over channels
    modulator = agg @ p['modulation.h.weight'][:, :, 0, 0].T + p['modulation.h.bias']
    return F.linear(q * modulator, p['modulation.proj.weight'], p['modulation.proj.bias'])


def _ref_mlp(x, p):
    hidden = F.gelu(F.linear(x, p['mlp.fc1.weight'], p['mlp.fc1.bias']), approximate='none')
    return F.linear(hidden, p['mlp.fc2.weight'], p['mlp.fc2.bias'])


def _ln(x, p, name):
    return F.layer_norm(x, x.shape[-1:], p[f'{name}.weight'], p[f'{name}.bias'], eps=1e-5)


def _ref_focal_dw_block(x, p, focal_level):
    x = x + _ref_dwconv(x, p['dw1.weight'], p['dw1.bias'])
    x = _ln(x + p['gamma_1'] * _ref_modulation(x, p, focal_level), p, 'norm1')
    x = x + _ref_dwconv(x, p['dw2.weight'], p['dw2.bias'])
    return _ln(x + p['gamma_2'] * _ref_mlp(x, p), p, 'norm2')


def _ref_focal_block(x, p, focal_level):
    x = x + p['gamma_1'] * _ln(_ref_modulation(x, p, focal_level), p, 'norm1')
    return x + p['gamma_2'] * _ln(_ref_mlp(x, p), p, 'norm2')


@pytest.mark.parametrize('block_type,focal_level,ref', [
    ('focal_dw', 3, _ref_focal_dw_block),
    ('focal', 4, _ref_focal_block),
])
def test_block_matches_functional_reference(block_type, focal_level, ref):
    dim = 16
    block = FocalNetBlock(dim, block_type=block_type, focal_level=focal_level, drop_path=0.3)
    _randomize(block, seed=0)
    # float64, so the tolerance measures formula differences rather than rounding
    block = block.double().eval()
    x = torch.randn(2, 9, 11, dim, generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    params = dict(block.named_parameters())
    with torch.no_grad():
        out = block(x)
        expected = ref(x, params, focal_level)
    assert out.shape == x.shape
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    # the reference must not be trivially insensitive to the branches
    assert (expected - x).abs().max() > 0.1


def test_block_layout_differs_by_type():
    dw = dict(FocalNetBlock(8, block_type='focal_dw').named_parameters())
    plain = dict(FocalNetBlock(8, block_type='focal').named_parameters())
    assert {'dw1.weight', 'dw1.bias', 'dw2.weight', 'dw2.bias'} <= dw.keys()
    assert not any(k.startswith('dw') for k in plain)
    with pytest.raises(ValueError):
        FocalNetBlock(8, block_type='focal_v2')


# --------------------------------------------------------------------------------------------
# b. state-dict contract with the released checkpoints
# --------------------------------------------------------------------------------------------
def _manifest_backbone(tsv_name: str) -> dict:
    rows = {}
    for line in (DATA / tsv_name).read_text().splitlines():
        if not line or line.startswith('#'):
            continue
        key, shape = line.split('\t')[:2]
        if key.startswith('backbone.'):
            dims = [int(d) for d in shape.strip().strip("'\"").split('x') if d]
            rows[key[len('backbone.'):]] = tuple(dims)
    return rows


@pytest.mark.parametrize('tsv_name,kwargs,num_keys', [
    ('checkpoint_keys_focalt.tsv', {}, 300),
    ('checkpoint_keys_focall.tsv', FOCAL_L_ARGS, 504),
])
def test_state_dict_matches_manifest(tsv_name, kwargs, num_keys):
    expected = _manifest_backbone(tsv_name)
    assert len(expected) == num_keys
    with torch.device('meta'):  # shapes only; skips initialising ~200M Focal-L weights
        model = FocalNet(**kwargs)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert sorted(set(got) - set(expected)) == []
    assert sorted(set(expected) - set(got)) == []
    mismatched = {k: (got[k], expected[k]) for k in expected if got[k] != expected[k]}
    assert mismatched == {}


def test_registered_and_default_stem():
    from mmdet.registry import MODELS
    model = MODELS.build(dict(type='FocalNet'))
    assert isinstance(model, FocalNet)
    assert model.patch_embed.proj.padding == (3, 3)
    with torch.device('meta'):
        assert FocalNet(**FOCAL_L_ARGS).patch_embed.proj.padding == (2, 2)


# --------------------------------------------------------------------------------------------
# c. numerical parity with the official focal-T on the parity sample
# --------------------------------------------------------------------------------------------
def _official_input(parity_dir: Path) -> torch.Tensor:
    img = np.asarray(Image.open(parity_dir / 'inputs' / 'input_640.png').convert('RGB'))
    x = torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)
    mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
    x = (x - mean) / std
    h, w = x.shape[-2:]
    # zero padding after normalisation, bottom/right only, to a multiple of 32
    x = F.pad(x, (0, (-w) % 32, 0, (-h) % 32))
    return x[None]


def test_parity_with_official_focalt(synthetic_state_dict, parity_dir):
    weights = {
        k[len('backbone.'):]: v
        for k, v in synthetic_state_dict.items() if k.startswith('backbone.')
    }
    model = FocalNet()
    model.load_state_dict(weights, strict=True)
    model.eval()

    golden = torch.load(parity_dir / 'golden' / 'intermediates.pt', map_location='cpu')
    x = _official_input(parity_dir)
    assert tuple(x.shape[-2:]) == tuple(golden['padded_hw'])
    with torch.no_grad():
        feats = model(x)

    assert len(feats) == 4
    report = {}
    for level, feat in zip(range(2, 6), feats):
        ref = golden[f'backbone_res{level}']
        c, h, w = feat.shape[1:]
        assert (c, h, w) == tuple(ref['shape'])
        f = feat[0]
        pieces = {
            'corner': f[0:8, 0:6, 0:6],
            'centre': f[c - 8:c, h // 2 - 3:h // 2 + 3, w // 2 - 3:w // 2 + 3],
        }
        for name, got in pieces.items():
            want = ref[name].to(got.dtype)
            rel = ((got - want).abs().max() / want.abs().max()).item()
            report[f'res{level}.{name}'] = rel
            # No threshold in the backbone: fp32 summation order only rounds (measured
            # <= 4.1e-6); 1e-4 is the sample's bound.
            assert rel <= 1e-4, f'res{level} {name}: relative max diff {rel:.3g}'
        ref_std = float(ref['std'])
        report[f'res{level}.mean'] = abs(f.mean().item() - float(ref['mean'])) / ref_std
        report[f'res{level}.std'] = abs(f.std().item() - ref_std) / ref_std
        assert report[f'res{level}.mean'] <= 1e-4
        assert report[f'res{level}.std'] <= 1e-4
    print('parity (max|diff|/max|golden|; mean, std diffs / golden std):',
          {k: f'{v:.2e}' for k, v in report.items()})


# --------------------------------------------------------------------------------------------
# d. shapes and strides on an input that is not a multiple of 32
# --------------------------------------------------------------------------------------------
def test_output_shapes_odd_input():
    model = FocalNet(embed_dim=16, depths=(1, 1, 1, 1)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 100, 132))
    # every stage rounds up: 100x132 -> 25x33 -> 13x17 -> 7x9 -> 4x5
    assert [tuple(o.shape) for o in outs] == [
        (1, 16, 25, 33), (1, 32, 13, 17), (1, 64, 7, 9), (1, 128, 4, 5)]
    assert all(o.is_contiguous() for o in outs)
    assert all(torch.isfinite(o).all() for o in outs)


def test_out_indices_subset():
    model = FocalNet(embed_dim=16, depths=(1, 1, 1, 1), out_indices=(1, 3)).eval()
    assert not hasattr(model, 'norm0') and hasattr(model, 'norm3')
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(2, 32, 8, 8), (2, 128, 2, 2)]
