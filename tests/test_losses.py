"""Vision-language training losses (grounding, captioning, retrieval), deep supervision, the
all-gather across processes and the random-template class embeddings of training.

Each loss is compared with a hand computation written independently of the module (explicit
loops, log-softmax by hand, grid_sample instead of mmcv's point_sample), and a perfect prediction
is compared with a random one."""
import math
import socket
import traceback

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from mmengine.structures import InstanceData
from test_training import regions  # three disjoint regions: left half, right quarters

import projects.XDecoder.xdecoder  # noqa: F401  (registers the modules)
from projects.XDecoder.xdecoder import segmentation_loss, vl_losses
from projects.XDecoder.xdecoder.text_encoder import (BACKGROUND, PROMPT_TEMPLATES, TextEncoder,
                                                     clean_class_name)
from projects.XDecoder.xdecoder.train_text import random_prompts, random_template_class_embeddings
from projects.XDecoder.xdecoder.vl_losses import (OFFICIAL_TOP_LAYERS, XDecoderCaptionLoss,
                                                  XDecoderGroundingLoss, XDecoderRetrievalLoss,
                                                  all_gather_with_grad, supervised_predictions)

LOG_100 = math.log(100.0)


def at_points(x: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear values of maps ``x [M, H, W]`` at normalised points ``[M, P, 2]`` in [0, 1]."""
    grid = 2 * points[:, :, None].to(torch.float32) - 1
    return F.grid_sample(x[:, None].float(), grid, align_corners=False)[:, 0, :, 0]


# ------------------------------------------------------------------------ deep supervision
def test_official_top_layer_counts_select_the_last_predictions():
    assert OFFICIAL_TOP_LAYERS == dict(segmentation=None, grounding=6, captioning=3, retrieval=3)
    assert list(supervised_predictions(10, 3)) == [7, 8, 9]
    assert list(supervised_predictions(10, 6)) == [4, 5, 6, 7, 8, 9]
    assert list(supervised_predictions(10, None)) == list(range(10))
    assert list(supervised_predictions(2, 6)) == [0, 1]
    with pytest.raises(ValueError, match='at least 1'):
        supervised_predictions(10, 0)


# ------------------------------------------------------------------------ grounding
QG = 6  # grounding queries


def grounding_case(seed: int, size: int = 32):
    """One image, 3 phrases over 2 objects: phrases 1 and 2 are two expressions of one object
    (same mask, same group). Queries 4, 1, 2 are built to answer phrases 0, 1, 2 (masks right,
    embeddings equal to the phrase's); the others are random."""
    g = torch.Generator().manual_seed(seed)
    areas = regions(size)
    masks = torch.stack([areas[0], areas[1], areas[1]])
    text = torch.randn(3, 8, generator=g)
    text[2] = text[1] + 0.3 * torch.randn(8, generator=g)
    embeds = torch.randn(QG, 8, generator=g)
    mask_logits = torch.randn(QG, size, size, generator=g)
    for phrase, query in enumerate((4, 1, 2)):
        embeds[query] = text[phrase]
        mask_logits[query] = torch.where(masks[phrase], 3.0, -3.0) + torch.randn(
            size, size, generator=g)
    target = InstanceData(masks=masks, text_embeds=text, group_ids=torch.tensor([0, 1, 1]))
    return embeds, mask_logits, target


def test_grounding_matches_and_equals_hand_computation(monkeypatch):
    torch.manual_seed(0)
    embeds, mask_logits, target = grounding_case(0)
    criterion = XDecoderGroundingLoss(num_points=2048, top_layers=1)
    matches, sampled = [], []

    def recording_assign(*args):
        result = assign(*args)
        matches.append(result)
        return result

    def recording_points(*args):
        points = get_points(*args)
        sampled.append(points)
        return points

    assign = vl_losses.point_sampled_assign
    get_points = segmentation_loss.get_uncertain_point_coords_with_randomness
    monkeypatch.setattr(vl_losses, 'point_sampled_assign', recording_assign)
    monkeypatch.setattr(segmentation_loss, 'get_uncertain_point_coords_with_randomness',
                        recording_points)
    logit_scale = torch.tensor(2.5)
    losses = criterion([embeds[None]], [mask_logits[None]], [target], logit_scale)
    assert sorted(losses) == ['loss_grounding_cls', 'loss_grounding_dice', 'loss_grounding_mask']

    (query_ids, phrase_ids), = matches
    pairs = dict(zip(phrase_ids.tolist(), query_ids.tolist()))
    # Phrases 1 and 2 have the same mask; their queries may be swapped, phrase 0 may not.
    assert pairs[0] == 4 and {pairs[1], pairs[2]} == {1, 2}

    # Class loss by hand: cosine similarities times exp(2.5), a softmax over the queries for
    # each phrase; phrases 1 and 2 (one group) each put half their target on both queries.
    scale = math.exp(2.5)
    cos = torch.tensor([[F.cosine_similarity(embeds[q:q + 1], target.text_embeds[p:p + 1],
                                             eps=0).item() for p in range(3)]
                        for q in range(QG)], dtype=torch.float64)
    log_prob = torch.log_softmax(scale * cos.t(), dim=-1)  # [phrase, query]
    targets = {0: {pairs[0]: 1.0}, 1: {pairs[1]: 0.5, pairs[2]: 0.5},
               2: {pairs[1]: 0.5, pairs[2]: 0.5}}
    ce = sum(-w * log_prob[p, q] for p in range(3) for q, w in targets[p].items()) / 3
    # F.cosine_similarity divides by max(|a||b|, eps), the loss by (|a| + 1e-7)(|b| + 1e-7):
    # relative differences ~1e-7 on similarities of order 1, scaled by e^2.5 in the logits.
    torch.testing.assert_close(losses['loss_grounding_cls'].double(), 0.4 * 2.0 * ce,
                               rtol=1e-5, atol=1e-5)

    # Mask losses by hand on the points the criterion sampled: mean BCE per mask and Dice
    # (smoothing 1), summed over the 3 matched masks and divided by 3.
    (points, ) = sampled
    order = torch.argsort(query_ids)  # the matched masks enter in query order
    pred = at_points(mask_logits[query_ids[order]], points)
    gt = at_points(target.masks[phrase_ids[order]], points)
    bce = F.binary_cross_entropy_with_logits(pred, gt, reduction='none').mean(1).sum() / 3
    prob = pred.sigmoid()
    dice = (1 - (2 * (prob * gt).sum(1) + 1) / (prob.sum(1) + gt.sum(1) + 1)).sum() / 3
    # float32 sums over 2048 points in different orders: rounding of order 1e-6 relative.
    torch.testing.assert_close(losses['loss_grounding_mask'], bce, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(losses['loss_grounding_dice'], dice, rtol=1e-5, atol=1e-6)


def test_grounding_class_names_weigh_less_and_deep_supervision_names():
    embeds, mask_logits, target = grounding_case(1)
    criterion = XDecoderGroundingLoss(num_points=512)
    preds = [embeds[None]] * 10
    masks = [mask_logits[None]] * 10
    torch.manual_seed(3)
    as_text = criterion(preds, masks, [target], torch.tensor(1.0))
    target.set_metainfo(dict(task='class'))
    torch.manual_seed(3)
    as_class = criterion(preds, masks, [target], torch.tensor(1.0))
    # Official grounding weights: referring expressions 2.0, class names 0.5.
    torch.testing.assert_close(as_class['loss_grounding_cls'] * 4, as_text['loss_grounding_cls'])
    # Top 6 of 10 predictions: d4 ... d8, and the last without a prefix.
    assert sorted({k.split('.')[0] for k in as_text if '.' in k}) == [f'd{j}' for j in range(4, 9)]
    assert len(as_text) == 18


def test_grounding_perfect_prediction_scores_far_below_random():
    torch.manual_seed(4)
    size = 64
    areas = regions(size)
    # Orthogonal phrases, and unmatched queries orthogonal to all of them: a perfect query is
    # unambiguous.
    text = torch.eye(10)[:3] * 2
    targets = [InstanceData(masks=areas, text_embeds=text),
               InstanceData(masks=areas[:1], text_embeds=text[:1])]
    perfect_embeds = torch.eye(10)[3:3 + QG].repeat(2, 1, 1)
    perfect_masks = torch.full((2, QG, size // 4, size // 4), -10.0)
    small = F.interpolate(areas[None].float(), size=(size // 4, ) * 2)[0] > 0.5
    for b, target in enumerate(targets):
        for phrase in range(len(target)):
            perfect_embeds[b, phrase] = text[phrase]
            perfect_masks[b, phrase] = torch.where(small[phrase], 10.0, -10.0)
    criterion = XDecoderGroundingLoss(num_points=4096, top_layers=None)
    random_embeds = torch.randn(2, QG, 10)
    random_masks = torch.randn(2, QG, size // 4, size // 4) * 2
    losses = criterion([perfect_embeds, random_embeds], [perfect_masks, random_masks], targets,
                       torch.tensor(LOG_100))
    perfect = sum(v for k, v in losses.items() if k.startswith('d0.'))
    random = sum(v for k, v in losses.items() if '.' not in k)
    # Only the bilinear band along region borders keeps the perfect masks above zero; the
    # perfect similarities (100 vs 0) make the class loss ~e^-100. Measured: perfect 0.11
    # (mask 0.073, Dice 0.037), random 11.0 (class 9.6 at scale 100, mask 0.73, Dice 0.59).
    assert losses['d0.loss_grounding_cls'] < 1e-6
    assert perfect < 0.2 and random > 3.0, (perfect, random)


def test_grounding_without_phrases_gives_connected_zeros():
    embeds = torch.randn(1, QG, 8, requires_grad=True)
    masks = torch.randn(1, QG, 8, 8, requires_grad=True)
    empty = InstanceData(masks=torch.zeros(0, 32, 32, dtype=torch.bool),
                         text_embeds=torch.zeros(0, 8))
    losses = XDecoderGroundingLoss(top_layers=1)([embeds], [masks], [empty], torch.tensor(1.0))
    total = sum(losses.values())
    total.backward()
    assert total.item() == 0 and embeds.grad is not None and masks.grad is not None


# ------------------------------------------------------------------------ captioning
def caption_case():
    g = torch.Generator().manual_seed(5)
    vocab, dim = 11, 6
    token_ids = torch.tensor([[9, 3, 4, 5, 10], [9, 7, 10, 10, 10]])  # 9 = SOT, 10 = EOT (pad)
    attention_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    features = torch.randn(2, 5, dim, generator=g, dtype=torch.float64)
    token_embedding = torch.randn(vocab, dim, generator=g, dtype=torch.float64)
    return token_ids, attention_mask, features, token_embedding


def test_caption_loss_equals_hand_computation_with_tied_output_layer():
    token_ids, attention_mask, features, table = caption_case()
    criterion = XDecoderCaptionLoss(top_layers=1)
    from_features = criterion(token_ids, attention_mask, features=[features],
                              token_embedding=table)
    from_logits = criterion(token_ids, attention_mask, logits=[features @ table.t()])
    total, count = 0.0, 0
    for b in range(2):
        for t in range(4):
            if attention_mask[b, t + 1]:
                logits = [float(features[b, t] @ table[v]) for v in range(len(table))]
                log_z = math.log(sum(math.exp(x) for x in logits))
                total += log_z - logits[token_ids[b, t + 1]]
                count += 1
    expected = torch.tensor(8.0 * total / (count + 1), dtype=torch.float64)
    assert count == 6
    # float64; mmdet's CE adds float32 eps (1.2e-7) to the normaliser 7: 2e-8 relative.
    torch.testing.assert_close(from_features['loss_captioning'], expected, rtol=1e-7, atol=0)
    torch.testing.assert_close(from_logits['loss_captioning'], expected, rtol=1e-7, atol=0)


def test_caption_padding_is_ignored_and_perfect_beats_random():
    token_ids, attention_mask, _, _ = caption_case()
    criterion = XDecoderCaptionLoss(top_layers=3)
    perfect = torch.full((2, 5, 11), -10.0, dtype=torch.float64)
    perfect[:, :-1].scatter_(-1, token_ids[:, 1:, None], 10.0)
    random = torch.randn(2, 5, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    noisy_padding = perfect.clone()
    noisy_padding[1, 2:] = random[1, 2:]  # predictions of padded next tokens
    losses = criterion(token_ids, attention_mask, logits=[random, random, noisy_padding, perfect])
    assert sorted(losses) == ['d1.loss_captioning', 'd2.loss_captioning', 'loss_captioning']
    torch.testing.assert_close(losses['d2.loss_captioning'], losses['loss_captioning'])
    # Perfect: 8 * 6/7 * log(1 + 10 e^-20) = 1.4e-7; random logits (std 1): measured 19.0,
    # about 8 * 6/7 * (log(11) + 0.5).
    assert losses['loss_captioning'] < 1e-6
    assert losses['d1.loss_captioning'] > 10.0


# ------------------------------------------------------------------------ retrieval
def hand_contrastive(images: torch.Tensor, texts: torch.Tensor, scale: float) -> float:
    n = len(images)
    sim = [[scale * float(images[i] @ texts[j]) / (float(images[i].norm()) * float(texts[j].norm()))
            for j in range(n)] for i in range(n)]

    def nll(rows):
        return sum(math.log(sum(math.exp(x) for x in row)) - row[i]
                   for i, row in enumerate(rows)) / n
    return 0.5 * (nll(sim) + nll([list(col) for col in zip(*sim)]))


def test_retrieval_losses_equal_hand_computation_and_clamp_the_scale():
    g = torch.Generator().manual_seed(7)
    images = [torch.randn(4, 5, dtype=torch.float64, generator=g) for _ in range(3)]
    texts = torch.randn(4, 5, dtype=torch.float64, generator=g)
    res5 = torch.randn(4, 3, 2, 2, dtype=torch.float64, generator=g)
    proj = torch.randn(3, 5, dtype=torch.float64, generator=g)
    criterion = XDecoderRetrievalLoss(top_layers=2)
    for logit_scale, scale in ((1.0, math.e), (math.log(400.0), 100.0)):
        losses = criterion(images, texts, torch.tensor(logit_scale, dtype=torch.float64), res5,
                           proj)
        assert sorted(losses) == ['d1.loss_retrieval', 'loss_retrieval',
                                  'loss_retrieval_backbone']
        pooled = torch.stack([sum(res5[b, :, y, x] for y in range(2) for x in range(2)) / 4
                              for b in range(4)]) @ proj
        # float64; the loss normalises with |x| + 1e-7, the hand computation exactly: ~1e-7
        # relative on cosines of order 1, times the scale (up to 100) in the logits.
        tol = dict(rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(losses['loss_retrieval'].item(),
                                   8.0 * hand_contrastive(images[2], texts, scale), **tol)
        torch.testing.assert_close(losses['d1.loss_retrieval'].item(),
                                   8.0 * hand_contrastive(images[1], texts, scale), **tol)
        torch.testing.assert_close(losses['loss_retrieval_backbone'].item(),
                                   8.0 * hand_contrastive(pooled, texts, scale), **tol)


def test_retrieval_perfect_pairs_score_far_below_random():
    g = torch.Generator().manual_seed(8)
    texts = torch.eye(6)[:4] * 3
    perfect = texts * 2  # same directions, other norm
    random = torch.randn(4, 6, generator=g)
    losses = XDecoderRetrievalLoss(top_layers=None, loss_weight=1.0)(
        [random, perfect], texts, torch.tensor(LOG_100))
    # Perfect: similarities 100 on the diagonal, 0 elsewhere -> 3 e^-100; random directions
    # at scale 100 are confidently wrong: measured 68.9.
    assert losses['loss_retrieval'] < 1e-6
    assert losses['d0.loss_retrieval'] > 10.0


def test_all_gather_in_one_process_is_the_identity():
    x = torch.randn(3, 4, requires_grad=True)
    assert all_gather_with_grad(x) is x


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _rank_step(rank: int, port: int, images: torch.Tensor, texts: torch.Tensor,
               res5: torch.Tensor, proj: torch.Tensor, results):
    torch.set_num_threads(1)  # a forked child must not reuse the parent's OpenMP pool
    torch_dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                                  world_size=2)
    try:
        _rank_losses(rank, images, texts, res5, proj, results)
    except Exception:  # reported to the parent, which would otherwise wait for its timeout
        results.put((rank, traceback.format_exc()))
    finally:
        torch_dist.destroy_process_group()


def _rank_losses(rank: int, images: torch.Tensor, texts: torch.Tensor, res5: torch.Tensor,
                 proj: torch.Tensor, results):
    """This process's half of the batch through the retrieval loss; losses and gradients
    to the parent."""
    half = slice(2 * rank, 2 * rank + 2)
    mine = images[half].clone().requires_grad_()
    feats = res5[half].clone().requires_grad_()
    proj = proj.clone().requires_grad_()
    losses = XDecoderRetrievalLoss(top_layers=1)([mine], texts[half], torch.tensor(0.5),
                                                 feats, proj)
    sum(losses.values()).backward()
    # numpy arrays travel by value; tensors would travel as shared memory that this
    # process releases when it exits.
    results.put((rank, {k: v.detach().numpy() for k, v in losses.items()},
                 mine.grad.numpy(), feats.grad.numpy(), proj.grad.numpy()))


def test_two_gloo_processes_give_the_loss_and_gradients_of_the_concatenated_batch():
    g = torch.Generator().manual_seed(9)
    images = torch.randn(4, 5, dtype=torch.float64, generator=g)
    texts = torch.randn(4, 5, dtype=torch.float64, generator=g)
    res5 = torch.randn(4, 3, 2, 2, dtype=torch.float64, generator=g)
    proj = torch.randn(3, 5, dtype=torch.float64, generator=g)

    # fork: the children inherit the imported modules (spawn would re-import mmdet and the
    # project in each child, ~15 s on 2 cores).
    ctx = mp.get_context('fork')
    results = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_rank_step, args=(r, port, images, texts, res5, proj, results))
             for r in range(2)]
    for p in procs:
        p.start()
    outputs = {}
    for _ in procs:
        rank, losses, *grads = results.get(timeout=120)
        assert not isinstance(losses, str), f'process {rank} failed:\n{losses}'
        outputs[rank] = [{k: torch.from_numpy(v) for k, v in losses.items()}] + [
            torch.from_numpy(grad) for grad in grads]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    whole = images.clone().requires_grad_()
    feats = res5.clone().requires_grad_()
    whole_proj = proj.clone().requires_grad_()
    losses = XDecoderRetrievalLoss(top_layers=1)([whole], texts, torch.tensor(0.5), feats,
                                                 whole_proj)
    sum(losses.values()).backward()
    # float64, same operations on the same numbers; only the order in which gradient parts
    # are summed can differ: rounding at 1e-15 relative.
    tol = dict(rtol=1e-12, atol=1e-12)
    for rank in range(2):
        for name, value in losses.items():  # every process computes the global loss
            torch.testing.assert_close(outputs[rank][0][name], value.detach(), **tol)
    # Each process gets the gradient of its own rows, scaled by the process count so that
    # DDP's average over processes is the whole batch's gradient.
    torch.testing.assert_close(torch.cat([outputs[r][1] for r in range(2)]) / 2, whole.grad,
                               **tol)
    torch.testing.assert_close(torch.cat([outputs[r][2] for r in range(2)]) / 2, feats.grad,
                               **tol)
    # A shared parameter: DDP's average of the processes' gradients.
    torch.testing.assert_close((outputs[0][3] + outputs[1][3]) / 2, whole_proj.grad, **tol)


# ------------------------------------------------------------------------ class prompts
@pytest.fixture(scope='module')
def tiny_text_encoder():
    torch.manual_seed(10)
    return TextEncoder(width=32, layers=2, heads=4, proj_dim=16,
                       embedding_cache=False).double().eval()


NAMES = ['wall-other-merged', 'person', 'traffic light']


def test_random_templates_are_reproducible_and_vary_with_the_seed():
    prompts_a, templates_a = random_prompts(NAMES, torch.Generator().manual_seed(1))
    prompts_b, templates_b = random_prompts(NAMES, torch.Generator().manual_seed(1))
    assert prompts_a == prompts_b and templates_a.tolist() == templates_b.tolist()
    assert prompts_a == [PROMPT_TEMPLATES[t].format(clean_class_name(n))
                         for t, n in zip(templates_a.tolist(), NAMES + [BACKGROUND])]
    assert 'wall' in prompts_a[0] and 'other' not in prompts_a[0]
    # One generator, consecutive steps: new draws (P(same 4 templates) = 81^-4).
    gen = torch.Generator().manual_seed(1)
    draws = {tuple(random_prompts(NAMES, gen)[1].tolist()) for _ in range(3)}
    assert len(draws) == 3
    with pytest.raises(ValueError, match='duplicate'):
        random_prompts(['person', 'person'], gen)


def test_random_template_embeddings_equal_the_direct_computation(tiny_text_encoder):
    enc = tiny_text_encoder
    embeddings = random_template_class_embeddings(enc, NAMES, torch.Generator().manual_seed(2))
    prompts, _ = random_prompts(NAMES, torch.Generator().manual_seed(2))
    assert embeddings.shape == (4, 16)
    for row, prompt in zip(embeddings, prompts):
        # One prompt at a time through the unbatched path: EOT feature @ lang_proj, unit norm.
        eot = enc.encode([prompt])['eot_feats'][0]
        # float64; batched with padding vs alone: same causal computation, rounding only.
        # (X-Decoder normalises with |x| + 1e-7, not |x|.)
        torch.testing.assert_close(row, eot / (eot.norm() + 1e-7), rtol=1e-10, atol=1e-12)
    again = random_template_class_embeddings(enc, NAMES, torch.Generator().manual_seed(2))
    assert torch.equal(embeddings, again)
    # Evaluation keeps the 81-template mean, which is not any single template's embedding.
    assert not torch.allclose(enc.class_embeddings(NAMES).double(), embeddings, atol=1e-3)


def test_random_template_embeddings_train_the_text_encoder(tiny_text_encoder):
    enc = tiny_text_encoder
    enc.zero_grad()
    embeddings = random_template_class_embeddings(enc, NAMES, torch.Generator().manual_seed(3))
    embeddings[:, 0].sum().backward()
    assert enc.lang_proj.grad.abs().sum() > 0
    assert enc.transformer.resblocks[0].attn.in_proj_weight.grad.abs().sum() > 0
    enc.zero_grad()
    enc.requires_grad_(False)
    try:
        frozen = random_template_class_embeddings(enc, NAMES, torch.Generator().manual_seed(3))
        assert not frozen.requires_grad
    finally:
        enc.requires_grad_(True)
