"""Text side: CLIP tokenizer, UniCL text transformer, prompt-ensembled class embeddings."""
import json
import os.path as osp
from functools import partial

import pytest
import torch

from projects.XDecoder.xdecoder.text_encoder import (PROMPT_TEMPLATES, TextEncoder, TextTransformer,
                                                     clean_class_name)
from projects.XDecoder.xdecoder.tokenizer import CLIPTokenizer

SOT, EOT = 49406, 49407
LANG = 'sem_seg_head.predictor.lang_encoder.'

VARIED_TEXTS = [
    'a photo of a cat.',
    'HELLO, World!!! Is THIS Upper-Case?',
    'x != y !~ z',  # has id 0 ("!"), which must not be mistaken for open_clip's 0-padding
    "don't stop: it's 3.14159 -- or ~22/7; right?",
    'tabs\tand\nnewlines\r\n  and   spaces  ',
    'naïve façade in Zürich, São Paulo',
    'cafe\u0301 vs café',  # combining accent
    '東京タワー と 北京 and 서울',
    'rocket 🚀 launch 👩\u200d🚀 flags 🇫🇷',
    'Привет мир, مرحبا',
    'fish &amp; chips &lt;b&gt;',
    'sky-other-merged and tree-merged',
    '',
    '   ',
    'supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis',
    'one two three four five six seven eight nine ten ' * 9,  # > 77 tokens
]


def _map_key(key: str) -> str:
    """Official lang_encoder key -> TextEncoder key (the model-level map, minus 'text_encoder.')."""
    if key.startswith(LANG + 'lang_encoder.'):
        return 'transformer.' + key[len(LANG + 'lang_encoder.'):]
    return key[len(LANG):]


def _lang_state_dict(official: dict) -> dict:
    return {_map_key(k): v for k, v in official.items() if k.startswith(LANG)}


def _randomize_(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial values everywhere (biases, LN affine too) so any mis-wiring shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if name.endswith(('ln_1.weight', 'ln_2.weight', 'ln_final.weight')):
                p.copy_(1 + 0.1 * noise)
            elif name.endswith('logit_scale'):
                p.fill_(4.0)
            else:
                p.copy_(0.05 * noise)


@pytest.fixture(scope='module')
def tokenizer():
    return CLIPTokenizer()


@pytest.fixture(scope='module')
def random_encoder():
    # smaller than focal-T's 512x12 to keep the full-context reference runs quick
    enc = TextEncoder(width=256, layers=4, heads=8, proj_dim=128).eval()
    _randomize_(enc, seed=3)
    return enc


@pytest.fixture(scope='module')
def parity_encoder(synthetic_state_dict):
    enc = TextEncoder().eval()
    enc.load_state_dict(_lang_state_dict(synthetic_state_dict), strict=True)
    return enc


# ----------------------------------------------------------------------------- tokenizer
def test_tokenizer_matches_golden(tokenizer, parity_dir):
    golden = json.loads((parity_dir / 'golden' / 'tokenizer.json').read_text())
    assert len(golden['sentences']) == 8
    for sentence in golden['sentences']:
        ids, mask = tokenizer(sentence['text'])
        assert ids.shape == mask.shape == (1, 77)
        assert ids.dtype == mask.dtype == torch.long
        assert ids[0].tolist() == sentence['input_ids'], sentence['text']
        assert int(mask.sum()) == sentence['num_valid_tokens'], sentence['text']


def test_tokenizer_matches_open_clip(tokenizer):
    from open_clip.tokenizer import tokenize as open_clip_tokenize

    ids, mask = tokenizer(VARIED_TEXTS)
    ref = open_clip_tokenize(VARIED_TEXTS, context_length=77)
    assert ids.shape == mask.shape == ref.shape == (len(VARIED_TEXTS), 77)
    positions = torch.arange(77)
    for i, text in enumerate(VARIED_TEXTS):
        row = ref[i].clone()
        first_eot = int((row == EOT).nonzero()[0])
        row[first_eot + 1:] = EOT  # open_clip pads with 0, X-Decoder with EOT
        assert ids[i].tolist() == row.tolist(), text
        assert ids[i, 0] == SOT
        assert mask[i].tolist() == (positions <= first_eot).long().tolist(), text
    # the over-long text is cut to exactly 77 with EOT last; the empty one is SOT, EOT
    assert mask[-1].sum() == 77 and ids[-1, -1] == EOT and (ids[-1, :-1] != EOT).all()
    assert ids[VARIED_TEXTS.index('')][:3].tolist() == [SOT, EOT, EOT]
    assert 0 in ids[VARIED_TEXTS.index('x != y !~ z')].tolist()


def test_tokenizer_shapes_and_errors(tokenizer):
    ids, mask = tokenizer(['a', 'b c'], context_length=8)
    assert ids.shape == (2, 8)
    assert mask.sum(1).tolist() == [3, 4]
    ids, _ = tokenizer('word ' * 20, context_length=8)
    assert ids[0, -1] == EOT and (ids[0, :-1] != EOT).all()
    with pytest.raises(TypeError, match='int'):
        tokenizer(123)
    with pytest.raises(TypeError, match='NoneType'):
        tokenizer(['fine', None])
    with pytest.raises(TypeError, match='bytes'):
        tokenizer.encode(b'bytes')


def test_decode(tokenizer, parity_dir):
    ids, mask = tokenizer('A Photo of a CAT.')
    assert (tokenizer.decode(ids[0, :int(mask.sum())])
            == '<|startoftext|> a photo of a cat . <|endoftext|>')
    assert tokenizer.decode(ids[0].tolist(), skip_special_tokens=True) == 'a photo of a cat .'
    golden = json.loads((parity_dir / 'golden' / 'caption.json').read_text())
    text = tokenizer.decode(golden['token_ids'])
    assert text.startswith('<|startoftext|> ') and '<|endoftext|>' not in text
    text = tokenizer.decode(golden['token_ids'], skip_special_tokens=True)
    assert ''.join(text.split()) == ''.join(golden['text'].split())
    with pytest.raises(ValueError, match='outside'):
        tokenizer.decode([49408])


# ------------------------------------------------------------------------ text transformer
def test_text_transformer_matches_open_clip(tokenizer):
    """Same weights, same ids: our transformer vs open_clip's CLIP text tower configured as
    X-Decoder's (QuickGELU, fp32 LayerNorm with eps 1e-12, argmax pooling, no projection)."""
    from open_clip.transformer import LayerNormFp32, QuickGELU
    from open_clip.transformer import TextTransformer as OpenClipTextTransformer

    cfg = dict(context_length=77, vocab_size=49408, width=128, heads=4, layers=3)
    ours = TextTransformer(**cfg).eval()
    _randomize_(ours, seed=0)
    ref = OpenClipTextTransformer(
        **cfg, output_dim=None, proj_type='none', pool_type='argmax', output_tokens=True,
        act_layer=QuickGELU, norm_layer=partial(LayerNormFp32, eps=1e-12)).eval()
    mapped = {('transformer.' + k if k.startswith('resblocks.') else k): v
              for k, v in ours.state_dict().items()}
    ref.load_state_dict(mapped, strict=True)

    ids, _ = tokenizer(VARIED_TEXTS)
    with torch.no_grad():
        hidden = ours(ids)
        ref_pooled, ref_tokens = ref(ids)
    assert hidden.shape == (len(VARIED_TEXTS), 77, 128)
    pooled = hidden[torch.arange(len(ids)), ids.argmax(-1)]
    # The same fp32 operations in the same order: measured 0.0; 1e-5 allows another kernel's
    # rounding (values up to ~5, fp32 ulp there 5e-7).
    assert (pooled - ref_pooled).abs().max() <= 1e-5
    assert (hidden - ref_tokens).abs().max() <= 1e-5


def test_text_transformer_architecture():
    model = TextTransformer()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == 2 * 12 + 1 and all(m.eps == 1e-12 for m in norms)
    # fp32 normalisation: a half-precision input with tiny variance must not blow up
    x = (torch.randn(2, 512) * 1e-4).half()
    assert torch.isfinite(model.ln_final(x)).all() and model.ln_final(x).dtype == torch.half
    with pytest.raises(ValueError, match='context length'):
        model(torch.zeros(1, 78, dtype=torch.long))


def test_state_dict_matches_checkpoint_manifest(parity_dir):
    manifest = {}
    for line in (parity_dir.parent / 'checkpoint_keys_focalt.tsv').read_text().splitlines():
        if line.startswith(LANG):
            key, shape = line.split('\t')[:2]
            manifest[key] = () if shape == 'scalar' else tuple(int(s) for s in shape.split('x'))
    assert len(manifest) == 150
    ours = {k: tuple(v.shape) for k, v in TextEncoder().state_dict().items()}
    assert ours == {_map_key(k): shape for k, shape in manifest.items()}


# ------------------------------------------------------------------- exact work-saving paths
def test_truncated_batch_equals_full_context(random_encoder):
    texts = ['sky', 'a photo of the hard to see streetlight.', 'the thin white antenna pole '
             'standing on the right of the rocket behind a steel tower', 'tree', '']
    enc = random_encoder
    with torch.no_grad():
        out = enc.encode(texts)
        ids, mask = enc.tokenizer(texts)
        full_tokens, full_eot = enc(ids, mask)
    length = int(mask.sum(1).max())
    assert out['token_feats'].shape == (len(texts), length, 128)
    assert out['attention_mask'].tolist() == mask[:, :length].tolist()
    # Causal attention over a shorter context: the same sums, other fp32 kernel blocking;
    # measured <= 1.3e-6.
    assert (out['eot_feats'] - full_eot).abs().max() <= 1e-5
    assert (out['token_feats'] - full_tokens[:, :length]).abs().max() <= 1e-5


def test_shared_prefix_batches_equal_full_context(random_encoder):
    enc = random_encoder
    templates = ['{}.', 'a photo of the hard to see {}.', 'a {} in a video game.']
    names = ['person', 'sky', 'chest of drawers', 'television receiver', 'background']
    groups = [[enc.tokenizer.tokenize(t.format(n)) for n in names] for t in templates]
    groups.append([enc.tokenizer.tokenize('same prompt')] * 2)  # identical rows
    groups.append([enc.tokenizer.tokenize('a single prompt')])
    groups.append([enc.tokenizer.tokenize('long ' * 90), enc.tokenizer.tokenize('long ' * 80)])
    with torch.no_grad():
        fast = enc._eot_features(groups)
        # tiny batches: mixed prefix lengths, and one length split over several batches
        split = enc._eot_features(groups, max_batch_tokens=4)
        for group, got, got_split in zip(groups, fast, split):
            ids = torch.full((len(group), 77), EOT, dtype=torch.long)
            for i, row in enumerate(group):
                ids[i, :len(row)] = torch.tensor(row)
            _, want = enc(ids)
            assert got.shape == got_split.shape == want.shape
            # Other batch shapes, other fp32 kernel blocking: measured <= 2.4e-6.
            assert (got - want).abs().max() <= 1e-5
            assert (got_split - want).abs().max() <= 1e-5


def test_class_embeddings_skip_padding_and_shared_prefixes():
    """The 81-template path never runs padding or a repeated template prefix."""
    enc = TextEncoder(width=32, layers=1, heads=2, proj_dim=16).eval()
    names = ['building', 'sky', 'chest of drawers', 'swivel chair', 'television receiver',
             'sky-other-merged', 'traffic light', 'person']
    processed = []
    forward = enc.transformer.forward

    def counting_forward(ids, *args, **kwargs):
        processed.append(ids.numel())
        return forward(ids, *args, **kwargs)

    enc.transformer.forward = counting_forward
    enc.class_embeddings(names)
    prompts = [enc.tokenizer.tokenize(t.format(clean_class_name(n)))
               for t in PROMPT_TEMPLATES for n in names + ['background']]
    real_tokens = sum(len(p) for p in prompts)
    assert sum(processed) < 0.6 * real_tokens < 0.1 * 77 * len(prompts)


# ------------------------------------------------------------------------ class embeddings
@pytest.mark.parametrize('vocab,golden_key,golden_names', [
    ('semantic_12', 'semantic_12_plus_background', 'semantic_names'),
    ('panoptic_6', 'panoptic_6_plus_background', 'panoptic_names'),
])
def test_class_embeddings_match_golden(parity_encoder, parity_dir, vocab, golden_key,
                                       golden_names):
    vocabularies = json.loads((parity_dir / 'vocabularies.json').read_text())
    assert tuple(vocabularies['prompt_templates_81']) == PROMPT_TEMPLATES
    golden = torch.load(parity_dir / 'golden' / 'text_embeddings.pt')
    names = vocabularies[vocab]
    assert golden[golden_names] == names + ['background']
    emb = parity_encoder.class_embeddings(names)
    assert emb.shape == golden[golden_key].shape == (len(names) + 1, 512)
    # No threshold in the text encoder, so fp32 summation order only rounds: measured 5.2e-8.
    assert (emb - golden[golden_key]).abs().max() <= 1e-5
    # Unit vectors up to fp32 rounding of a 512-term norm: measured 1.2e-7.
    assert torch.allclose(emb.norm(dim=-1), torch.ones(len(names) + 1), atol=1e-6)


def test_class_name_cleaning():
    assert clean_class_name('sky-other-merged') == 'sky'
    assert clean_class_name('tree-merged') == 'tree'
    assert clean_class_name('wall-other-stuff') == 'wall'
    assert clean_class_name('floor-wood') == 'floor-wood'
    assert clean_class_name('playingfield') == 'playingfield'


# ------------------------------------------------------------------------------ cache
def _counting(enc):
    calls = []
    forward = enc.transformer.forward

    def counting_forward(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    enc.transformer.forward = counting_forward
    return calls


def test_class_embedding_cache():
    enc = TextEncoder(width=32, layers=1, heads=2, proj_dim=16, max_cached_vocabularies=2,
                      embedding_cache=False).eval()
    calls = _counting(enc)
    first = enc.class_embeddings(['sky', 'tree-merged'])
    assert first.shape == (3, 16) and calls
    n = len(calls)
    assert enc.class_embeddings(('sky', 'tree-merged')) is first  # list or tuple: same key
    assert len(calls) == n

    # loading weights (even identical ones) drops the cache
    enc.load_state_dict(enc.state_dict())
    again = enc.class_embeddings(['sky', 'tree-merged'])
    assert len(calls) > n and again is not first and torch.equal(again, first)

    # an in-place weight update is seen through the parameter version counter
    n = len(calls)
    with torch.no_grad():
        enc.lang_proj.mul_(2)
    changed = enc.class_embeddings(['sky', 'tree-merged'])
    # Unit vectors: scale-free up to fp32 rounding (measured 6e-8).
    assert len(calls) > n and torch.allclose(changed, first, atol=1e-6)
    with torch.no_grad():
        enc.transformer.ln_final.bias.add_(1)
    assert not torch.allclose(enc.class_embeddings(['sky', 'tree-merged']), first, atol=1e-4)

    # bounded size, least recently used evicted
    enc.clear_cache()
    for names in (['a'], ['b'], ['c']):
        enc.class_embeddings(names)
    assert len(enc._class_cache) == 2
    n = len(calls)
    enc.class_embeddings(['c'])
    assert len(calls) == n
    enc.class_embeddings(['a'])
    assert len(calls) > n


@pytest.mark.parametrize('names,message', [
    ([], 'empty'),
    (['sky', 'tree', 'sky'], r"duplicate.*'sky'"),
    (['sky', 3], 'not a str'),
    ('sky', 'list/tuple'),
    (['sky', 'background'], 'appended automatically'),
    (['-other'], 'empty after cleaning'),
])
def test_class_embeddings_reject_bad_vocabulary(names, message):
    enc = TextEncoder(width=32, layers=1, heads=2, proj_dim=16)
    with pytest.raises(ValueError, match=message):
        enc.class_embeddings(names)


def test_registered_and_class_similarity():
    from mmdet.registry import MODELS
    enc = MODELS.build(dict(type='TextEncoder', width=32, layers=1, heads=2, proj_dim=16))
    assert isinstance(enc, TextEncoder) and isinstance(enc.tokenizer, CLIPTokenizer)
    with torch.no_grad():
        enc.logit_scale.fill_(torch.log(torch.tensor(300.)))
    visual = torch.randn(5, 16)
    text = torch.nn.functional.normalize(torch.randn(3, 16), dim=-1)
    unit = visual / (visual.norm(dim=-1, keepdim=True) + 1e-7)
    torch.testing.assert_close(enc.compute_similarity(visual, text), 300 * unit @ text.t(),
                               rtol=1e-5, atol=1e-4)  # unclamped
    # (fp32 ulp at 300 is 3e-5; two orders of the 16-term dot product: measured 1.5e-5.)


# ------------------------------------------------------------------------------ disk cache
def test_disk_cache_serves_a_second_encoder_and_keys_on_weights(tmp_path):
    """A second process (here: a second encoder with the same weights) reads the vocabulary
    from disk without running the transformer; other names or other weights are other files."""
    torch.manual_seed(0)
    first = TextEncoder(width=32, layers=1, heads=2, proj_dim=16, embedding_cache=str(tmp_path))
    reference = first.class_embeddings(['sky', 'tree-merged'])
    assert len(list(tmp_path.glob('*.pt'))) == 1

    second = TextEncoder(width=32, layers=1, heads=2, proj_dim=16, embedding_cache=str(tmp_path))
    second.load_state_dict(first.state_dict())
    calls = _counting(second)
    assert torch.equal(second.class_embeddings(['sky', 'tree-merged']), reference)
    assert calls == []
    second.class_embeddings(['sky', 'tree'])  # other names: computed, a second file
    assert calls and len(list(tmp_path.glob('*.pt'))) == 2

    calls.clear()
    with torch.no_grad():
        second.lang_proj.add_(0.01)  # other weights: computed again, not the stale file
    changed = second.class_embeddings(['sky', 'tree-merged'])
    assert calls and not torch.equal(changed, reference)
    assert len(list(tmp_path.glob('*.pt'))) == 3


def test_corrupt_cache_file_is_ignored_and_rewritten(tmp_path):
    torch.manual_seed(0)
    enc = TextEncoder(width=32, layers=1, heads=2, proj_dim=16, embedding_cache=str(tmp_path))
    reference = enc.class_embeddings(['sky']).clone()
    (path, ) = tmp_path.glob('*.pt')
    for damage in (b'', b'not a torch file', path.read_bytes()[:100]):  # empty, foreign, cut
        path.write_bytes(damage)
        enc.clear_cache()
        calls = _counting(enc)
        assert torch.equal(enc.class_embeddings(['sky']), reference)
        assert calls  # recomputed ...
        loaded = torch.load(path, weights_only=True)  # ... and rewritten whole
        assert loaded['names'] == ['sky'] and torch.equal(loaded['embeddings'], reference)


def test_concurrent_writers_leave_a_whole_file(tmp_path):
    """dist_test.sh starts one process per GPU; they may all write the same vocabulary at once.
    Each writes a private file and renames it over the target: no reader sees a partial one."""
    from concurrent.futures import ThreadPoolExecutor

    from projects.XDecoder.xdecoder.embedding_cache import EmbeddingDiskCache
    cache = EmbeddingDiskCache(str(tmp_path / 'embeddings'))
    path = cache.path('weights', ['sky'], ['{}.'])
    tensors = [torch.full((2, 4096), float(i)) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda t: cache.save(path, ['sky'], t), tensors * 4))
    got = cache.load(path, ['sky'], (2, 4096), 'cpu')
    assert any(torch.equal(got, t) for t in tensors)
    assert [p.name for p in (tmp_path / 'embeddings').iterdir()] == [osp.basename(path)]
