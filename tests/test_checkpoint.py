"""The checkpoint contract: the released key layouts load strictly; anything else fails loudly."""
import pytest
import torch
from mmengine.runner import load_checkpoint
from xdecoder_test_utils import ROOT, build_model, fake_checkpoint, read_manifest

from projects.XDecoder.xdecoder.checkpoint import map_official_key
from projects.XDecoder.xdecoder.decoder import query_self_attn_mask

DATA = ROOT / 'tests' / 'data'


@pytest.mark.parametrize('config,manifest', [
    ('xdecoder-tiny_zeroshot_semseg.py', 'checkpoint_keys_focalt.tsv'),
    ('xdecoder-large_zeroshot_open-vocab-semseg_ade20k.py', 'checkpoint_keys_focall.tsv'),
])
def test_released_layout_loads_strictly(config, manifest, tmp_path):
    shapes = read_manifest(DATA / manifest)
    model = build_model(config)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == {map_official_key(k): s for k, s in shapes.items()}

    sd = fake_checkpoint(shapes)
    path = tmp_path / 'ckpt.pt'
    torch.save(sd, path)
    load_checkpoint(model, str(path), map_location='cpu', strict=True)
    loaded = model.state_dict()
    for key, value in sd.items():  # every tensor arrived at its mapped place, unchanged
        assert torch.equal(loaded[map_official_key(key)], value), key


def test_key_map_examples():
    assert map_official_key('sem_seg_head.predictor.lang_encoder.lang_encoder.ln_final.weight') \
        == 'text_encoder.transformer.ln_final.weight'
    assert map_official_key('sem_seg_head.predictor.lang_encoder.logit_scale') \
        == 'text_encoder.logit_scale'
    assert map_official_key('sem_seg_head.predictor.class_embed') == 'decoder.class_embed'
    assert map_official_key('sem_seg_head.pixel_decoder.adapter_1.weight') \
        == 'pixel_decoder.adapter_1.weight'
    assert map_official_key('backbone.norm0.weight') == 'backbone.norm0.weight'
    assert map_official_key('backbone_proj') == 'backbone_proj'


def test_checkpoint_of_other_size_fails_with_key_list(tmp_path):
    path = tmp_path / 'focall.pt'
    torch.save(fake_checkpoint(read_manifest(DATA / 'checkpoint_keys_focall.tsv')), path)
    model = build_model()
    with pytest.raises(RuntimeError) as err:
        load_checkpoint(model, str(path), map_location='cpu')  # non-strict, as the Runner does
    msg = str(err.value)
    # focal-L has no dw1/dw2 convs (48 keys) but 12 more blocks and 100 more queries
    assert 'Missing (48): backbone.layers.0.blocks.0.dw1.bias' in msg
    assert 'Unexpected (252): backbone.layers.0.blocks.0.modulation.focal_layers.3.0.weight' in msg
    assert ('Shape mismatch (checkpoint vs model) (260): '
            'backbone.layers.0.blocks.0.gamma_1 (192,) vs (96,)') in msg
    assert 'xdecoder_focall_last.pt' in msg  # names where the right file comes from


def test_checkpoint_of_another_model_fails(tmp_path):
    path = tmp_path / 'resnet.pt'
    torch.save({'conv1.weight': torch.zeros(64, 3, 7, 7), 'fc.bias': torch.zeros(10)}, path)
    with pytest.raises(RuntimeError, match=r'Missing \(725\).*\n.*Unexpected \(2\): conv1.weight'):
        load_checkpoint(build_model(), str(path), map_location='cpu')


def test_self_attn_mask_equals_released_buffer():
    buffers = torch.load(DATA / 'parity_sample' / 'model_buffers_focalt.pt')
    released = buffers['sem_seg_head.predictor.self_attn_mask']
    assert torch.equal(query_self_attn_mask(101, 77), released)
    # Focal-L: 201 queries, the same structure.
    mask = query_self_attn_mask(201, 77)
    assert mask.shape == (1, 278, 278) and not mask[0, 5, 199] and mask[0, 5, 200]
