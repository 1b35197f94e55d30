"""Inference in bf16 (``test_cfg.precision``): every task runs under autocast on the CPU, the
network's features stay within bf16's rounding of fp32, and the steps that decide (attention
masks, class scores, post-processing) are computed in fp32."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from xdecoder_test_utils import build_model, run_on_image, smooth_image

from projects.XDecoder.xdecoder import postprocess
from projects.XDecoder.xdecoder.decoder import blocked_pixels, level_mask_logits, resize_features
from projects.XDecoder.xdecoder.layers import autocast_for


@pytest.fixture(scope='module')
def model(synthetic_state_dict):
    model = build_model(test_cfg=dict(caption_steps=3))
    model.load_state_dict(synthetic_state_dict, strict=True)
    return model


def run(model, precision, rgb, **metainfo):
    model.test_cfg['precision'] = precision
    try:
        return run_on_image(model, rgb, **metainfo)
    finally:
        model.test_cfg['precision'] = 'fp32'


def relative(a, b):
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())


def test_bf16_features_within_rounding_of_fp32(model, parity_dir):
    """bf16 keeps 8 significant bits (relative rounding 2^-9 = 0.2 % per value); through the
    backbone and pixel decoder the errors add up to 0.8-1.6 % (measured on the sample photo at
    224). The first prediction (no attention mask yet) differs by 1.3 %. After it, masks that
    flip at the threshold change what later layers attend to, so final outputs are compared as
    decisions: 97.7 % of the pixels keep their label with the sample weights, whose sharp class
    softmax (logit scale 300) makes that a hard case."""
    names = json.loads((parity_dir / 'vocabularies.json').read_text())['semantic_12']
    rgb = np.asarray(Image.open(parity_dir / 'inputs' / 'input_224.png').convert('RGB'))
    runs = {}
    for precision in ('fp32', 'bf16'):
        captured = {}
        hooks = [model.backbone.register_forward_hook(
                     lambda m, i, o: captured.__setitem__('backbone', o)),
                 model.pixel_decoder.register_forward_hook(
                     lambda m, i, o: captured.__setitem__('mask_features', o[0])),
                 model.decoder.register_forward_hook(
                     lambda m, i, o: captured.__setitem__('first', o[0]))]
        try:
            result = run(model, precision, rgb, task='semantic', text=names)
        finally:
            for hook in hooks:
                hook.remove()
        runs[precision] = captured, result.pred_sem_seg.sem_seg[0]
    (low, low_labels), (full, full_labels) = runs['bf16'], runs['fp32']
    assert low['mask_features'].dtype == torch.bfloat16  # the network did run in bf16
    for a, b in zip(low['backbone'], full['backbone']):
        assert relative(a, b) < 0.04
    assert relative(low['mask_features'], full['mask_features']) < 0.04
    assert relative(low['first'].mask_logits, full['first'].mask_logits) < 0.04
    assert relative(low['first'].class_embeds, full['first'].class_embeds) < 0.04
    assert full_labels.dtype == low_labels.dtype
    assert (low_labels == full_labels).float().mean() > 0.9


def test_every_task_runs_in_bf16(model):
    rgb = smooth_image(np.random.default_rng(0), 64, 96)
    vocab = dict(text=['sky', 'tree'], stuff_text=['road'])
    for task, meta in [('semantic', vocab), ('instance', vocab), ('panoptic', vocab),
                       ('referring', dict(text=['the sky'])), ('caption', {}),
                       ('ref-caption', dict(text=['the sky'])), ('retrieval', {})]:
        result = run(model, 'bf16', rgb, task=task, **meta)
        if task == 'instance':  # post-processed in fp32
            assert result.pred_instances.scores.dtype == torch.float32
        if task == 'caption':
            assert len(result.caption_token_ids) == 77


def test_deciding_steps_are_fp32_under_autocast():
    """Under autocast, the attention masks (mask features resized to a level, mask logits at that
    size, threshold) and the semantic scores are computed as outside it, in fp32 (bf16 would
    round a logit of 200 to a multiple of 1), and float64 stays float64."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 5, 24, 36, generator=g, dtype=torch.float64) * 200
    classes = torch.randn(5, 4, generator=g)
    # as the decoder's mask embeddings and the pixel decoder's features are under autocast
    embeds = torch.randn(1, 5, 8, generator=g).to(torch.bfloat16)
    features = (torch.randn(1, 8, 24, 36, generator=g) * 20).to(torch.bfloat16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        # (torch has no bf16 antialiased bicubic kernel on CPU: this raised before)
        level = level_mask_logits(embeds, resize_features(features, (6, 9)))
        masked = blocked_pixels(level)
        _, labels = postprocess.semantic_inference(classes, logits[0].float())
        scores64, _ = postprocess.semantic_inference(classes.double(), logits[0])
    assert level.dtype == torch.float32
    expected = level_mask_logits(embeds.float(), resize_features(features.float(), (6, 9)))
    assert torch.equal(level, expected)
    assert torch.equal(masked, blocked_pixels(expected))
    assert torch.equal(labels, postprocess.semantic_inference(classes, logits[0].float())[1])
    assert scores64.dtype == torch.float64


def test_fp16_on_cpu_and_unknown_precisions_are_refused():
    with pytest.raises(ValueError, match="fp16 inference needs a GPU.*'bf16'"):
        autocast_for('fp16', torch.device('cpu'))
    with pytest.raises(ValueError, match=r"Unknown model.test_cfg.precision 'int8'"):
        build_model(test_cfg=dict(precision='int8'))
