"""Training through the model: the decoder's training modes against its inference modes (float64,
where equal algorithms agree to rounding), and XDecoder.loss's dispatch of each kind of batch to
its losses."""
import random

import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData, PixelData
from xdecoder_test_utils import build_model

import projects.XDecoder.xdecoder  # noqa: F401  (registers the modules)
from projects.XDecoder.xdecoder.decoder import XDecoderTransformerDecoder

# float64: the same algorithm on the same numbers agrees to ~1e-15; attention masks threshold
# mask logits at 0, which float64 keeps away from accidental flips.
TOL = dict(rtol=1e-10, atol=1e-10)
HIDDEN, PROJ, QUERIES, VOCAB = 32, 16, 6, 20


def tiny_decoder() -> XDecoderTransformerDecoder:
    torch.manual_seed(0)
    decoder = XDecoderTransformerDecoder(hidden_dim=HIDDEN, dim_proj=PROJ, num_queries=QUERIES,
                                         num_layers=4, num_heads=4, ffn_dim=64, num_levels=3,
                                         context_length=12)
    for p in decoder.parameters():  # larger weights than the init: masks with real structure
        torch.nn.init.normal_(p, std=0.3)
    return decoder.double().eval()


def features(batch: int):
    g = torch.Generator().manual_seed(1)
    mask_features = torch.randn(batch, HIDDEN, 16, 16, dtype=torch.float64, generator=g)
    multi_scale = [torch.randn(batch, HIDDEN, s, s, dtype=torch.float64, generator=g)
                   for s in (2, 4, 8)]
    return mask_features, multi_scale


def image(i, mask_features, multi_scale):
    return mask_features[i:i + 1], [m[i:i + 1] for m in multi_scale]


def assert_outputs_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for field in x._fields:
            if getattr(x, field) is not None:
                torch.testing.assert_close(getattr(x, field), getattr(y, field), **TOL)


def test_batched_grounding_with_padding_equals_one_image_at_a_time():
    decoder = tiny_decoder()
    mask_features, multi_scale = features(2)
    g = torch.Generator().manual_seed(2)
    tokens = [torch.randn(n, HIDDEN, dtype=torch.float64, generator=g) for n in (3, 5)]
    padded = torch.nn.utils.rnn.pad_sequence(tokens)  # (5, 2, C); image 0 padded by 2
    padding = torch.tensor([[False] * 3 + [True] * 2, [False] * 5])
    with torch.no_grad():
        batched = decoder.forward_grounding(mask_features, multi_scale, padded, padding)
        for i, t in enumerate(tokens):
            single = decoder.forward_grounding(*image(i, mask_features, multi_scale), t[:, None])
            assert_outputs_equal([type(p)(*(v[i:i + 1] for v in p)) for p in batched], single)
        # The padding matters: without it image 0's grounding queries see two zero tokens.
        unpadded = decoder.forward_grounding(mask_features, multi_scale, padded)
    assert not torch.allclose(unpadded[-1].grounding_embeds[0], batched[-1].grounding_embeds[0])


def test_grounding_pass_gives_the_generic_pass_to_the_generic_queries():
    """Segmentation and grounding train on one pass: its first queries must be the generic
    pass's, as the grounding queries and tokens are invisible to them."""
    decoder = tiny_decoder()
    mask_features, multi_scale = features(2)
    tokens = torch.randn(4, 2, HIDDEN, dtype=torch.float64)
    with torch.no_grad():
        grounding = decoder.forward_grounding(mask_features, multi_scale, tokens)
        generic = decoder(mask_features, multi_scale)
    assert_outputs_equal([p._replace(grounding_embeds=None, grounding_masks=None)
                          for p in grounding], generic)


def test_teacher_forcing_predicts_what_greedy_decoding_chose():
    """Fed the greedy caption, the teacher-forced caption queries score each next token as the
    greedy step did: the same logits (recomputed here with the tied output layer) at every
    position, so the same argmax."""
    decoder = tiny_decoder()
    mask_features, multi_scale = features(2)
    g = torch.Generator().manual_seed(1)  # a seed whose greedy captions vary (5 and 8)
    table = 3 * torch.randn(VOCAB, HIDDEN, dtype=torch.float64, generator=g)  # token features
    token_embedding = torch.randn(VOCAB, PROJ, dtype=torch.float64, generator=g)
    steps = 7
    with torch.no_grad():
        tokens = decoder.forward_caption(mask_features, multi_scale,
                                         token_features=lambda ids: table[ids],
                                         token_embedding=token_embedding, start_id=1,
                                         num_steps=steps)
        predictions, caption_feats = decoder.forward_caption_teacher(
            mask_features, multi_scale, table[tokens[:, :steps + 1]])
        generic = decoder(mask_features, multi_scale)
    assert len(caption_feats) == len(predictions) == decoder.num_layers + 1
    assert_outputs_equal(predictions, generic)
    logits = caption_feats[-1] @ token_embedding.t()  # [B, steps + 1, vocab]
    assert torch.equal(logits[:, :steps].argmax(-1), tokens[:, 1:steps + 1])
    # Not a constant output: the greedy captions use several tokens.
    assert len(set(tokens[:, 1:steps + 1].flatten().tolist())) > 1
    # Causal: a prefix of the caption gives the same features at its positions.
    with torch.no_grad():
        prefix = decoder.forward_caption_teacher(mask_features, multi_scale,
                                                 table[tokens[:, :3]])[1]
    for full, part in zip(caption_feats, prefix):
        torch.testing.assert_close(part, full[:, :3], **TOL)


# ------------------------------------------------------------------------ XDecoder.loss
H = W = 64


@pytest.fixture(scope='module')
def model():
    return build_model(criterion=dict(
        segmentation=dict(type='XDecoderSegLoss', num_points=256),
        grounding=dict(type='XDecoderGroundingLoss', num_points=256),
        captioning=dict(type='XDecoderCaptionLoss'),
        retrieval=dict(type='XDecoderRetrievalLoss'))).train()


def sample(**meta) -> DetDataSample:
    return DetDataSample(metainfo=dict(batch_input_shape=(H, W), img_shape=(H, W),
                                       ori_shape=(H, W), img_path='x.jpg', **meta))


def halves() -> torch.Tensor:
    masks = torch.zeros(2, H, W, dtype=torch.bool)
    masks[0, :H // 2] = True
    masks[1, H // 2:] = True
    return masks


def panoptic_sample(phrase_ids, named_task=True):
    s = sample(**(dict(task='panoptic') if named_task else {}), text=['cat', 'dog'],
               stuff_text=['sky'],
               grounding_text=['the cat', 'a cat on top', 'the dog'], grounding_groups=[0, 0, 1],
               grounding_task='text')
    s.gt_instances = InstanceData(labels=torch.tensor([0, 1]),
                                  masks=BitmapMasks(halves().numpy(), H, W))
    s.gt_sem_seg = PixelData(sem_seg=torch.full((1, H, W), 2))
    masks = halves()[[0, 0, 1]][phrase_ids]
    s.gt_grounding = InstanceData(masks=BitmapMasks(masks.numpy(), H, W),
                                  phrase_ids=torch.tensor(phrase_ids, dtype=torch.long))
    return s


def names(losses):
    return {k.split('.')[-1] for k in losses}


def test_each_kind_of_batch_trains_its_losses(model):
    torch.manual_seed(0)
    inputs = torch.randn(2, 3, H, W)
    seg = model.loss(inputs, [panoptic_sample([0, 1, 2]), panoptic_sample([2])])
    assert names(seg) == {'loss_cls', 'loss_mask', 'loss_dice', 'loss_grounding_mask',
                          'loss_grounding_dice', 'loss_grounding_cls'}
    # Deep supervision: segmentation on all 10 predictions, grounding on the last 6.
    assert sum(k.endswith('loss_cls') for k in seg) == 10
    assert sum(k.endswith('loss_grounding_cls') for k in seg) == 6

    referring = []
    for _ in range(2):
        s = sample(task='referring', text=['the cat', 'cat on the left'])
        # As RefCOCO's samples: masks without labels.
        s.gt_instances = InstanceData(masks=BitmapMasks(halves()[:1].numpy(), H, W))
        referring.append(s)
    assert names(model.loss(inputs, referring)) == {
        'loss_grounding_mask', 'loss_grounding_dice', 'loss_grounding_cls'}

    captions = [sample(task='caption', gt_caption=['a cat on a mat']) for _ in range(2)]
    assert names(model.loss(inputs, captions)) == {'loss_captioning'}
    retrieval = [sample(task='retrieval', gt_caption=c) for c in ('a cat', 'a dog')]
    assert names(model.loss(inputs, retrieval)) == {'loss_retrieval', 'loss_retrieval_backbone'}

    # Joint: both streams' losses, every trainable parameter reached by the summed loss (what
    # DDP without find_unused_parameters needs).
    # The segmentation stream's samples name no task (dataset samples): they train
    # train_cfg.segmentation_task (panoptic), whatever the model's task (validation's) is.
    model.zero_grad()
    model.task = 'referring'
    try:
        joint = model.loss(dict(segmentation=inputs[:1], image_text=inputs),
                           dict(segmentation=[panoptic_sample([0, 2], named_task=False)],
                                image_text=captions))
    finally:
        model.task = 'semantic'
    assert names(joint) == {'loss_cls', 'loss_mask', 'loss_dice', 'loss_grounding_mask',
                            'loss_grounding_dice', 'loss_grounding_cls', 'loss_captioning',
                            'loss_retrieval', 'loss_retrieval_backbone'}
    sum(joint.values()).backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []
    # The text encoder is frozen by default.
    assert not any(p.requires_grad for p in model.text_encoder.parameters())


def test_joint_loss_under_bf16_autocast_is_fp32_within_rounding(model):
    """AMP readiness, on CPU (mmengine's AmpOptimWrapper is GPU-only): the joint losses under
    bf16 autocast are near fp32's, and every trainable parameter gets a finite gradient.
    Tolerances (measured, this test alone and after the others): the mask BCE and Dice within
    20 %, since their importance-sampled points follow the logits' uncertainty and bf16 picks
    other points (up to 8.7 %); the other losses within 5 % (up to 1.9 %, the phrase CE of an
    intermediate layer, whose Hungarian matching can pick other queries; caption and retrieval
    losses 0.06 %); the total within 1 % (0.02 %)."""
    def joint_losses(bf16):
        torch.manual_seed(0)
        random.seed(0)
        inputs = torch.randn(2, 3, H, W)
        captions = [sample(task='caption', gt_caption=['a cat on a mat']) for _ in range(2)]
        model.zero_grad()
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            losses = model.loss(dict(segmentation=inputs[:1], image_text=inputs),
                                dict(segmentation=[panoptic_sample([0, 2], named_task=False)],
                                     image_text=captions))
        sum(losses.values()).backward()
        return {k: v.item() for k, v in losses.items()}

    fp32 = joint_losses(False)
    bf16 = joint_losses(True)
    assert fp32.keys() == bf16.keys()
    for name, value in fp32.items():
        sampled = name.endswith(('_mask', '_dice'))
        assert abs(bf16[name] - value) <= (0.2 if sampled else 0.05) * abs(value), \
            (name, value, bf16[name])
    assert abs(sum(bf16.values()) - sum(fp32.values())) <= 1e-3 * sum(fp32.values())
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for _, p in trainable)


def test_bad_training_batches_are_named(model):
    inputs = torch.randn(1, 3, H, W)
    with pytest.raises(ValueError, match="x.jpg: captioning and retrieval training need its "
                                         "captions in the sample's 'gt_caption'"):
        model.loss(inputs, [sample(task='caption')])
    s = sample(task='referring', text=['a', 'b', 'c'])
    s.gt_instances = InstanceData(labels=torch.tensor([0, 0]),
                                  masks=BitmapMasks(halves().numpy(), H, W))
    with pytest.raises(ValueError, match='3 phrases but 2 masks'):
        model.loss(inputs, [s])
    with pytest.raises(NotImplementedError, match="not 'ref-caption'"):
        model.loss(inputs, [sample(task='ref-caption', text=['a'])])
    only_seg = build_model(criterion=dict(segmentation=dict(type='XDecoderSegLoss')))
    with pytest.raises(ValueError, match="trains the 'captioning' loss, which model.criterion "
                                         'lacks'):
        only_seg.loss(inputs, [sample(task='caption', gt_caption='a cat')])
    with pytest.raises(ValueError, match='model.criterion takes {branch: loss config}'):
        build_model(criterion=dict(type='XDecoderSegLoss'))
    with pytest.raises(ValueError, match="Unknown model.train_cfg keys \\['freeze'\\]"):
        build_model(train_cfg=dict(freeze=True))
    with pytest.raises(ValueError, match="class_prompts='mean' .* needs freeze_text_encoder"):
        build_model(train_cfg=dict(class_prompts='mean', freeze_text_encoder=False))


def test_trainable_text_encoder_gets_gradients_from_every_branch():
    model = build_model(criterion=dict(segmentation=dict(type='XDecoderSegLoss', num_points=256),
                                       captioning=dict(type='XDecoderCaptionLoss')),
                        train_cfg=dict(freeze_text_encoder=False)).train()
    inputs = torch.randn(1, 3, H, W)
    s = panoptic_sample([0])
    losses = model.loss(dict(segmentation=inputs, image_text=inputs),
                        dict(segmentation=[s], image_text=[sample(gt_caption='a cat')]))
    seg = sum(v for k, v in losses.items() if 'captioning' not in k)
    # Segmentation reaches the text encoder through the class-name embeddings (random
    # templates, with gradients), captioning through the token table (tied output layer).
    seg.backward(retain_graph=True)
    assert model.text_encoder.lang_proj.grad.abs().sum() > 0
    model.zero_grad()
    losses['loss_captioning'].backward()
    assert model.text_encoder.token_embedding.grad.abs().sum() > 0
