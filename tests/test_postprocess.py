"""Per-task post-processing on hand-made logits whose right answers are worked out in the test.

``assert_close`` without tolerances uses torch's per-dtype defaults (float64: 1e-7, fp32:
1.3e-6 relative): both sides evaluate the same formula, so they differ by rounding only."""
import math

import pytest
import torch
import torch.nn.functional as F

from projects.XDecoder.xdecoder.postprocess import (caption_text, instance_inference,
                                                    panoptic_inference, panoptic_to_mmdet,
                                                    referring_selection, resize_matrices,
                                                    resize_to_original, retrieval_scores,
                                                    semantic_inference)


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def softmax(row):
    exps = [math.exp(v) for v in row]
    total = sum(exps)
    return [e / total for e in exps]


def columns_map(values_per_column, rows):
    """[Q, rows, C] tensor whose every row repeats ``values_per_column[q]``."""
    t = torch.tensor(values_per_column, dtype=torch.float64)
    return t[:, None, :].expand(-1, rows, -1).contiguous()


# ------------------------------------------------------------------------------------ resize


def keys_cubic(d, a=-0.5):
    d = abs(d)
    if d < 1:
        return (a + 2) * d**3 - (a + 3) * d**2 + 1
    if d < 2:
        return a * (d**3 - 5 * d**2 + 8 * d - 4)
    return 0.0


def _reference_resize(x, padded_hw, img_hw, ori_hw):
    kw = dict(mode='bicubic', align_corners=False, antialias=True)
    x = F.interpolate(x[None], size=padded_hw, **kw)[:, :, :img_hw[0], :img_hw[1]]
    return F.interpolate(x, size=ori_hw, **kw)[0]


def test_resize_constant_stays_constant():
    x = torch.full((2, 8, 12), 1.5)
    out = resize_to_original(x, (32, 48), (30, 45), (61, 91))
    assert out.shape == (2, 61, 91)
    # Antialiased bicubic weights sum to 1 up to fp32 rounding (~1e-7 x 1.5, twice resized).
    torch.testing.assert_close(out, torch.full_like(out, 1.5), atol=1e-5, rtol=0)


def test_resize_crop_removes_padding():
    # stride-4 logits of a 32x48 padded batch whose image is 24x36: logits rows >= 6 and
    # cols >= 9 only see padding; fill them with 100 and the image part with 0.
    x = torch.zeros(1, 8, 12, dtype=torch.float64)
    x[:, 6:, :] = 100
    x[:, :, 9:] = 100
    out = resize_to_original(x, (32, 48), (24, 36), (24, 36))
    assert out.shape == (1, 24, 36)
    # An upsampled pixel y reads source rows around (y + 0.5) / 4 - 0.5 +- 2, so rows < 18 and
    # cols < 30 never touch the padded logits.
    assert torch.equal(out[0, :18, :30], torch.zeros(18, 30, dtype=torch.float64))
    assert out[0, 18:].abs().max() > 0  # the leak that is inside the bicubic support remains
    # Bottom-right pixel by hand: target 23 (and 35) sits at source coordinate 5.875 (8.875), its
    # taps are the 4 source pixels at distances 1.375, 0.375 | 0.625, 1.625 with the last two
    # in the padding; Keys kernel a = -0.5, weights renormalised. Without the crop this corner
    # would be ~100.
    w = [keys_cubic(d) for d in (1.375, 0.375, 0.625, 1.625)]
    leak = (w[2] + w[3]) / sum(w)
    assert out[0, -1, -1].item() == pytest.approx(100 * (1 - (1 - leak)**2), abs=1e-9)
    assert out[0, -1, 0].item() == pytest.approx(100 * leak, abs=1e-9)
    assert out.max() < 60
    # and with a different original size the cropped content is what gets resized
    out2 = resize_to_original(x, (32, 48), (24, 36), (48, 72))
    assert out2.shape == (1, 48, 72)
    assert torch.equal(out2[0, :30, :54], torch.zeros(30, 54, dtype=torch.float64))
    assert out2.max() < 70


@pytest.mark.parametrize('ori_hw', [(30, 45), (45, 67), (17, 23)])
def test_resize_matches_pad_crop_resize_order(ori_hw):
    torch.manual_seed(0)
    x = torch.randn(3, 8, 12, dtype=torch.float64) * 5
    out = resize_to_original(x, (32, 48), (30, 45), ori_hw)
    torch.testing.assert_close(out, _reference_resize(x, (32, 48), (30, 45), ori_hw))
    # a batched input keeps its batch dim
    out_b = resize_to_original(x[None].repeat(2, 1, 1, 1), (32, 48), (30, 45), ori_hw)
    assert out_b.shape == (2, 3) + tuple(ori_hw)
    torch.testing.assert_close(out_b[1], out)


def test_resize_uses_antialiased_kernel():
    # the antialiased bicubic (a = -0.5) differs from the plain one (a = -0.75) even when
    # upsampling, so a step input tells them apart
    x = torch.zeros(1, 4, 4, dtype=torch.float64)
    x[:, :, 2:] = 1
    out = resize_to_original(x, (16, 16), (16, 16), (16, 16))
    plain = F.interpolate(x[None], size=(16, 16), mode='bicubic', align_corners=False)[0]
    assert (out - plain).abs().max() > 1e-3
    torch.testing.assert_close(out, _reference_resize(x, (16, 16), (16, 16), (16, 16)))


# ------------------------------------------------------------------------------------ semantic

# 3 queries, K = 2 classes + background; q2 mostly votes background.
SEM_CLS = [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]]


def _semantic_masks():
    m = torch.full((3, 4, 4), -4.0, dtype=torch.float64)
    m[0, :, :2] = 4.0  # q0 (class 0) covers the left half
    m[1, 1:, 2:] = 4.0  # q1 (class 1) covers the right half except the top row
    m[2] = 4.0
    m[2, 0, 2:] = -4.0  # nothing is confident in the top-right corner
    return m


def _semantic_by_hand(cls, masks):
    probs = [softmax(row)[:-1] for row in cls]
    q, h, w = masks.shape
    k = len(probs[0])
    s = [[[0.0] * w for _ in range(h)] for _ in range(k)]
    for c in range(k):
        for y in range(h):
            for x in range(w):
                s[c][y][x] = sum(probs[i][c] * sigmoid(float(masks[i, y, x])) for i in range(q))
    return s


def test_semantic_scores_and_labels_by_hand():
    cls = torch.tensor(SEM_CLS, dtype=torch.float64)
    masks = _semantic_masks()
    scores, labels = semantic_inference(cls, masks)
    s = _semantic_by_hand(SEM_CLS, masks)
    assert scores.shape == (2, 4, 4) and labels.shape == (4, 4)
    assert labels.dtype == torch.long
    torch.testing.assert_close(scores, torch.tensor(s, dtype=torch.float64))
    for y in range(4):
        for x in range(4):
            expected = 0 if s[0][y][x] >= s[1][y][x] else 1
            assert labels[y, x] == expected
    # the layout the masks were built for
    assert (labels[:, :2] == 0).all() and (labels[1:, 2:] == 1).all()
    # in the weak corner every query is at sigmoid(-4); the class with the larger summed
    # (K+1)-softmax probability wins: class 0 (0.786 + 0.212 + 0.045) vs class 1
    assert (labels[0, 2:] == 0).all()
    assert labels.max() < 2  # official: no ignore label


@pytest.mark.parametrize('thr', [0.5, 0.7])
def test_semantic_threshold_marks_weak_pixels(thr):
    cls = torch.tensor(SEM_CLS, dtype=torch.float64)
    masks = _semantic_masks()
    s = _semantic_by_hand(SEM_CLS, masks)
    _, labels = semantic_inference(cls, masks, score_thr=thr)
    for y in range(4):
        for x in range(4):
            best = max(s[0][y][x], s[1][y][x])
            if best <= thr:
                assert labels[y, x] == 255
            else:
                assert labels[y, x] == (0 if s[0][y][x] >= s[1][y][x] else 1)
    assert (labels[0, 2:] == 255).all()
    assert (labels[:, :2] == 0).all()
    # the right half scores S_1 = 0.576 * sigmoid(4) + ... = 0.61: kept at 0.5, rejected at 0.7
    assert (labels[1:, 2:] == (1 if thr == 0.5 else 255)).all()
    _, labels = semantic_inference(cls, masks, score_thr=0.5, ignore_index=-1)
    assert (labels[0, 2:] == -1).all()


def test_semantic_single_class_threshold():
    cls = torch.tensor([[3.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    masks = torch.full((2, 2, 2), -5.0, dtype=torch.float64)
    masks[0, 0, :] = 5.0
    scores, labels = semantic_inference(cls, masks)
    assert (labels == 0).all()  # official: argmax over one class labels everything 0
    _, labels = semantic_inference(cls, masks, score_thr=0.5)
    p = softmax([3.0, 0.0])[0]
    assert p * sigmoid(5.0) > 0.5
    assert labels.tolist() == [[0, 0], [255, 255]]


# ------------------------------------------------------------------------------------ instance

# 3 queries, K = 2 (+ background).
INS_CLS = [[3.0, 1.0, 0.0], [0.0, 2.5, 0.0], [2.0, 2.2, 1.0]]


def _instance_masks():
    m = torch.full((3, 2, 4), -3.0, dtype=torch.float64)
    m[0, 0, :] = 2.0  # 4 pixels at logit 2 -> mean sigmoid inside = sigmoid(2)
    m[1, 0, :2] = 1.0
    m[1, 1, :2] = 3.0  # mean sigmoid inside = (sigmoid(1) + sigmoid(3)) / 2
    m[2, 1, 3] = 0.5  # a single pixel
    return m


def _instance_by_hand(k, thing_labels=None):
    probs = [softmax(row)[:-1] for row in INS_CLS]
    mask_score = [
        4 * sigmoid(2.0) / (4 + 1e-6),
        (2 * sigmoid(1.0) + 2 * sigmoid(3.0)) / (4 + 1e-6),
        sigmoid(0.5) / (1 + 1e-6),
    ]
    flat = [(probs[q][c], q, c) for q in range(3) for c in range(2)]
    top = sorted(flat, reverse=True)[:k]
    if thing_labels is not None:
        top = [t for t in top if t[2] in thing_labels]
    dets = [(p * mask_score[q], q, c) for p, q, c in top]
    return sorted(dets, reverse=True)


@pytest.mark.parametrize('k', [1, 3, 4, 6, 100])
def test_instance_topk_labels_and_scores(k):
    cls = torch.tensor(INS_CLS, dtype=torch.float64)
    masks = _instance_masks()
    out = instance_inference(cls, masks, max_per_img=k)
    expected = _instance_by_hand(k)
    assert len(expected) == min(k, 6)
    assert out['labels'].tolist() == [c for _, _, c in expected]
    assert out['query_ids'].tolist() == [q for _, q, _ in expected]
    torch.testing.assert_close(out['scores'],
                               torch.tensor([s for s, _, _ in expected], dtype=torch.float64))
    assert out['labels'].dtype == torch.long and out['query_ids'].dtype == torch.long
    assert out['masks'].dtype == torch.bool
    assert out['masks'].shape == (len(expected), 2, 4)
    for i, q in enumerate(out['query_ids'].tolist()):
        assert torch.equal(out['masks'][i], masks[q] > 0)
    assert (out['scores'][:-1] >= out['scores'][1:]).all()


def test_instance_topk_uses_class_prob_then_rescores():
    cls = torch.tensor(INS_CLS, dtype=torch.float64)
    out = instance_inference(cls, _instance_masks(), max_per_img=3)
    # class probs: q1/c1 .86, q0/c0 .84, q2/c1 .47, q2/c0 .39, ... -> the 3 pairs kept, then
    # ordered by prob x mask score; q2 has the weakest mask and the lowest class prob
    pairs = set(zip(out['query_ids'].tolist(), out['labels'].tolist()))
    assert pairs == {(0, 0), (1, 1), (2, 1)}
    assert out['query_ids'].tolist()[-1] == 2
    # label is idx % K: the same query appears with both labels when k is large enough
    out = instance_inference(cls, _instance_masks(), max_per_img=6)
    pairs = list(zip(out['query_ids'].tolist(), out['labels'].tolist()))
    assert sorted(pairs) == [(q, c) for q in range(3) for c in range(2)]


def test_instance_thing_filter_after_topk():
    cls = torch.tensor(INS_CLS, dtype=torch.float64)
    out = instance_inference(cls, _instance_masks(), max_per_img=3, thing_labels={0})
    expected = _instance_by_hand(3, thing_labels={0})
    # only one of the top-3 pairs is a thing: stuff pairs used up the other slots
    assert len(expected) == 1
    assert out['labels'].tolist() == [0] and out['query_ids'].tolist() == [0]
    torch.testing.assert_close(out['scores'], torch.tensor([expected[0][0]], dtype=torch.float64))
    out = instance_inference(cls, _instance_masks(), max_per_img=100, thing_labels=[0])
    assert out['labels'].tolist() == [0, 0, 0]
    assert out['query_ids'].tolist() == [q for _, q, _ in _instance_by_hand(100, {0})]


def test_instance_empty_mask_scores_zero():
    cls = torch.tensor([[0.0, 4.0, 0.0]], dtype=torch.float64)
    masks = torch.full((1, 3, 3), -1.0, dtype=torch.float64)
    out = instance_inference(cls, masks, max_per_img=1)
    assert out['scores'].tolist() == [0.0]
    assert not out['masks'].any()


# ------------------------------------------------------------------------------------ panoptic

# K = 3 names: 0 thing, 1 and 2 stuff; column 3 is background.
PAN_CLS = [
    [6.0, 0.0, 0.0, 0.0],  # q0 thing
    [6.0, 0.0, 0.0, 0.0],  # q1 thing, loses most of its area to q0
    [0.0, 6.0, 0.0, 0.0],  # q2 stuff 1
    [0.0, 6.0, 0.0, 0.0],  # q3 stuff 1 again -> merged with q2
    [0.0, 0.0, 1.5, 0.0],  # q4 stuff 2, probability 0.6 < 0.8
    [0.0, 0.0, 0.0, 6.0],  # q5 background
]
# per-column mask logits (every row of the 4x6 map is the same)
PAN_MASKS = [
    [5, 5, -5, -8, -8, -2],
    [1, 1, 5, -8, -8, -6],
    [-8, -8, -8, 5, -8, -6],
    [-8, -8, -8, -8, 5, -6],
    [-8, -8, -8, -8, -8, 5],
    [8, 8, 8, 8, 8, 8],
]


def test_panoptic_official_rules():
    cls = torch.tensor(PAN_CLS, dtype=torch.float64)
    masks = columns_map(PAN_MASKS, rows=4)
    assert softmax(PAN_CLS[4])[2] < 0.8 < softmax(PAN_CLS[0])[0]
    seg, segments = panoptic_inference(cls, masks, thing_labels={0})
    assert seg.dtype == torch.int32 and seg.shape == (4, 6)
    # q0 wins cols 0-1 (and the void col 5, harmlessly: won 12 / own 8 >= 0.8); q1 wins only
    # col 2 of its 12 own pixels (4/12 < 0.8) and is dropped; q2 and q3 share one stuff id;
    # q4 (low score) and q5 (background) never compete, so col 5 stays void.
    assert seg[0].tolist() == [1, 1, 0, 2, 2, 0]
    assert (seg == seg[0]).all()
    assert [(s['id'], s['label'], s['isthing'], s['area'], s['query_id']) for s in segments] == [
        (1, 0, True, 8, 0), (2, 1, False, 8, 2)]
    # fp32 softmax vs the float64 hand computation: approx's rel 1e-6 > fp32 rounding 6e-8.
    assert segments[0]['score'] == pytest.approx(softmax(PAN_CLS[0])[0])


def test_panoptic_overlap_threshold_and_id_order():
    cls = torch.tensor(PAN_CLS, dtype=torch.float64)
    masks = columns_map(PAN_MASKS, rows=4)
    # with a lax overlap threshold q1 (ratio 1/3) survives and ids follow query order
    seg, segments = panoptic_inference(cls, masks, thing_labels={0}, overlap_thr=0.3)
    assert seg[0].tolist() == [1, 1, 2, 3, 3, 0]
    assert [(s['id'], s['label'], s['isthing'], s['area']) for s in segments] == [
        (1, 0, True, 8), (2, 0, True, 4), (3, 1, False, 8)]
    # a lower object threshold lets q4 in: it takes col 5 from q0 (whose won/own ratio stays 1)
    seg, segments = panoptic_inference(cls, masks, thing_labels={0}, object_mask_thr=0.5)
    assert seg[0].tolist() == [1, 1, 0, 2, 2, 3]
    assert [(s['label'], s['isthing']) for s in segments] == [(0, True), (1, False), (2, False)]


def test_panoptic_things_are_not_merged_and_stuff_is():
    cls = torch.tensor(PAN_CLS, dtype=torch.float64)
    masks = columns_map(PAN_MASKS, rows=4)
    # declare label 1 a thing: q2 and q3 become two instances
    seg, segments = panoptic_inference(cls, masks, thing_labels={0, 1})
    assert seg[0].tolist() == [1, 1, 0, 2, 3, 0]
    assert [s['isthing'] for s in segments] == [True, True, True]
    # declare label 0 stuff: q0 is still the only survivor of class 0
    seg, segments = panoptic_inference(cls, masks, thing_labels=())
    assert seg[0].tolist() == [1, 1, 0, 2, 2, 0]


def test_panoptic_nothing_kept():
    cls = torch.tensor([[0.0, 0.0, 5.0], [0.5, 0.0, 0.0]], dtype=torch.float64)
    masks = torch.ones(2, 3, 3, dtype=torch.float64)
    seg, segments = panoptic_inference(cls, masks, thing_labels={0})
    assert segments == [] and seg.dtype == torch.int32 and not seg.any()


def test_panoptic_to_mmdet_encoding():
    pytest.importorskip('mmdet')
    from mmdet.evaluation.functional import INSTANCE_OFFSET
    cls = torch.tensor(PAN_CLS, dtype=torch.float64)
    masks = columns_map(PAN_MASKS, rows=4)
    seg, segments = panoptic_inference(cls, masks, thing_labels={0}, overlap_thr=0.3)
    pan = panoptic_to_mmdet(seg, segments, num_classes=3)
    assert INSTANCE_OFFSET == 1000
    assert pan.dtype == torch.int32
    # things: label + instance_id * OFFSET (ids from 1); stuff: label; void: num_classes
    assert pan[0].tolist() == [1000, 1000, 2000, 1, 1, 3]
    assert panoptic_to_mmdet(seg, segments, 3, void_label=255)[0, 5] == 255


# ------------------------------------------------------------------------------------ referring


def test_referring_selection_argmax_and_clamp():
    grounding = torch.tensor([[3.0, 0.0], [0.0, 0.5], [2.0, 2.0]], dtype=torch.float64)
    phrases = torch.tensor([[1.0, 0.1], [0.2, 4.0]], dtype=torch.float64)
    ids, logits = referring_selection(grounding, phrases, math.log(300.0))
    assert ids.tolist() == [0, 1]
    assert logits.shape == (2, 3)

    def cos(a, b):
        na = math.sqrt(sum(v * v for v in a)) + 1e-7
        nb = math.sqrt(sum(v * v for v in b)) + 1e-7
        return sum(x * y for x, y in zip(a, b)) / (na * nb)

    expected = [[100 * cos(p, g) for g in grounding.tolist()] for p in phrases.tolist()]
    torch.testing.assert_close(logits, torch.tensor(expected, dtype=torch.float64))
    # exp(ln 300) = 300 is clamped to 100; below the clamp the scale is exp(logit_scale)
    ids50, logits50 = referring_selection(grounding, phrases,
                                          torch.tensor(math.log(50.0), dtype=torch.float64))
    assert ids50.tolist() == [0, 1]
    torch.testing.assert_close(logits50, logits / 2)
    assert logits[0, 0] == pytest.approx(100 * cos([1.0, 0.1], [3.0, 0.0]))


# ------------------------------------------------------------------------------------ caption

VOCAB = {49406: '<|startoftext|>', 49407: '<|endoftext|>', 1: 'a ', 2: 'dog ', 3: '. ',
         4: 'runs ', 5: 'fast'}


def fake_decode(ids):
    return ''.join(VOCAB[i] for i in ids)


def test_caption_text_cut_at_eot_and_period():
    ids = [49406, 1, 2, 3, 4, 5, 49407, 2, 4] + [49407] * 5
    assert caption_text(ids, fake_decode) == 'a dog . runs fast'
    assert caption_text(torch.tensor(ids), fake_decode) == 'a dog . runs fast'
    assert caption_text(ids, fake_decode, cut_at_period=True).strip() == 'a dog'
    # no EOT at all (a 50-step greedy run may never emit one): keep everything but specials
    assert caption_text([49406] * 2 + [2, 4], fake_decode) == 'dog runs'
    assert caption_text([49406, 49407, 2], fake_decode) == ''
    assert caption_text([2, 5], fake_decode, cut_at_period=True) == 'dog fast'


# ------------------------------------------------------------------------------------ retrieval


def test_retrieval_scores_cosine_and_ensemble():
    img = torch.tensor([[2.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    txt = torch.tensor([[0.0, 3.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    back = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    r = 1 / math.sqrt(2)
    cos_dec = torch.tensor([[0.0, 1.0, r], [r, r, 1.0]], dtype=torch.float64)
    cos_back = torch.tensor([[1.0, 0.0, r], [0.0, 1.0, r]], dtype=torch.float64)
    # The embeddings are normalised as x / (|x| + 1e-7) (official): cosines within 1e-7 of the
    # exact ones here (|x| >= 1), 1e-5 once scaled by 100.
    torch.testing.assert_close(retrieval_scores(img, txt), cos_dec, atol=1e-6, rtol=0)
    torch.testing.assert_close(retrieval_scores(img, txt, backbone_image_embeds=back),
                               0.5 * cos_dec + 0.5 * cos_back, atol=1e-6, rtol=0)
    torch.testing.assert_close(retrieval_scores(img, txt, logit_scale=math.log(1000.0)),
                               100 * cos_dec, atol=1e-4, rtol=0)
    torch.testing.assert_close(retrieval_scores(img, txt, logit_scale=math.log(20.0)),
                               20 * cos_dec, atol=1e-4, rtol=0)


@pytest.mark.parametrize('score_thr', [None, 0.3])
def test_semantic_labels_in_row_chunks_equal_whole_map(score_thr):
    """Without the score map, labels are computed a few rows at a time (issue 11's memory);
    they are those of the whole-map computation."""
    g = torch.Generator().manual_seed(0)
    cls_logits = torch.randn(7, 5, generator=g, dtype=torch.float64) * 3
    mask_logits = torch.randn(7, 45, 31, generator=g, dtype=torch.float64) * 4
    scores, labels = semantic_inference(cls_logits, mask_logits, score_thr)
    none, chunked = semantic_inference(cls_logits, mask_logits, score_thr, with_scores=False,
                                       rows_per_chunk=8)
    assert none is None and scores.shape == (4, 45, 31)
    assert torch.equal(chunked, labels)
    if score_thr is not None:
        assert (labels == 255).any()


# (low, padded, unpadded, original) sizes: upscaling with a crop (the evaluation's case), an
# unpadded image at its original size (one resize), downscaling (the antialiased kernel's
# wider support), and the seed command's 640x962 photo at stride 4.
RESIZES = [((8, 12), (32, 48), (30, 45), (61, 91)), ((8, 12), (32, 48), (24, 36), (24, 36)),
           ((8, 12), (32, 48), (32, 40), (16, 20)), ((40, 62), (160, 248), (160, 240),
                                                     (640, 962))]


@pytest.mark.parametrize('sizes', RESIZES)
def test_resize_matrices_equal_resize_to_original(sizes):
    """The resize as one matrix per axis (the linearity shortcut semantic inference streams
    with) is the resize itself: float64, equal to 1e-12 of the largest logit (5.6e-16
    measured)."""
    low, padded, img, ori = sizes
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, *low, generator=g, dtype=torch.float64) * 50
    rows, cols = resize_matrices(low, padded, img, ori, dtype=torch.float64)
    assert rows.shape == (ori[0], low[0]) and cols.shape == (ori[1], low[1])
    expected = resize_to_original(x, padded, img, ori)
    assert (rows @ x @ cols.T - expected).abs().max() <= 1e-12 * expected.abs().max()


@pytest.mark.parametrize('sizes', RESIZES)
@pytest.mark.parametrize('score_thr', [None, 0.3])
def test_semantic_resized_in_row_chunks_equals_resize_then_labels(sizes, score_thr):
    """Low-resolution logits resized a few rows at a time give the labels of the whole resize
    followed by semantic inference (float64: the two orders differ by ~1e-16 of the scores,
    far from any tie of these random logits)."""
    low, padded, img, ori = sizes
    g = torch.Generator().manual_seed(1)
    cls_logits = torch.randn(6, 5, generator=g, dtype=torch.float64) * 3
    mask_logits = torch.randn(6, *low, generator=g, dtype=torch.float64) * 4
    _, expected = semantic_inference(cls_logits, resize_to_original(mask_logits, padded, img, ori),
                                     score_thr)
    _, streamed = semantic_inference(cls_logits, mask_logits, score_thr, with_scores=False,
                                     rows_per_chunk=7, resize_to=(padded, img, ori))
    assert streamed.shape == tuple(ori)
    assert torch.equal(streamed, expected)
