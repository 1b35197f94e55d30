"""XDecoderInferencer, demo/image_demo.py and demo/inference.ipynb.

The parity sample's photo goes through the inferencer with the sample's seed-1 weights; the
files it saves are compared with the official golden outputs (the inputs are already at each
task's test scale, where the inferencer's resize is the identity). Smaller checks run on tiny
images (``scale=64``) to stay fast.

The inferencer's model runs in float64: the golden comparisons and the "same result two ways"
checks (batch vs one at a time, array vs file) are about the algorithm, and in fp32 a mask logit
within ~1e-5 of the attention-mask threshold flips under another summation order and cascades
(see conftest ``parity_model``).
"""
import json
import os
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from xdecoder_test_utils import ROOT, run_on_image

from projects.XDecoder.xdecoder.inferencer import XDecoderInferencer
from projects.XDecoder.xdecoder.results import load_saved
from projects.XDecoder.xdecoder.tasks import parse_texts
from projects.XDecoder.xdecoder.tokenizer import SOT_ID

# Greedy steps for the caption check: step s depends only on the steps before it, so the first
# 10 ids must equal the golden ones. The 50-step parity is in test_parity_tasks.py.
CAPTION_STEPS = 10
# One small vocabulary for the tiny-image tests: its class embeddings are computed once.
SMALL = ['sky', 'tree', 'person']


@pytest.fixture(scope='module')
def inferencer(synthetic_checkpoint):
    inferencer = XDecoderInferencer('xdecoder-tiny_zeroshot_semseg.py',
                                    weights=str(synthetic_checkpoint), device='cpu',
                                    test_cfg=dict(caption_steps=CAPTION_STEPS))
    inferencer.model.double()
    return inferencer


@pytest.fixture(scope='module')
def vocab(parity_dir):
    return json.loads((parity_dir / 'vocabularies.json').read_text())


@pytest.fixture(scope='module')
def out_root(tmp_path_factory):
    return tmp_path_factory.mktemp('inferencer_out')


def photo_path(parity_dir, size) -> str:
    return str(parity_dir / 'inputs' / f'input_{size}.png')


def golden_json(parity_dir, name):
    return json.loads((parity_dir / 'golden' / name).read_text())


def run_saved(inferencer, out_root, parity_dir, task, size, draw=False, **kwargs):
    """One parity photo through the inferencer into out_root/<task>; (prediction, its folder).
    Drawing vis.jpg at 640 takes mmdet's visualizer seconds, so only one test asks for it."""
    result = inferencer(photo_path(parity_dir, size), task=task, out_dir=str(out_root / task),
                        no_save_vis=not draw, **kwargs)
    pred = result['predictions'][0]
    assert pred['out_dir'] == str(out_root / task / f'input_{size}')
    assert (Path(pred['out_dir']) / 'vis.jpg').is_file() == draw
    return pred, Path(pred['out_dir'])


def assert_same_prediction(read, pred):
    """What load_saved read back equals what the call returned, dtypes included."""
    assert set(read) == set(pred) - {'out_dir'}
    for key in read:
        fields = pred[key].items() if isinstance(pred[key], dict) else [(None, pred[key])]
        for field, value in fields:
            got = read[key] if field is None else read[key][field]
            if isinstance(value, np.ndarray):
                assert got.dtype == value.dtype and np.array_equal(got, value), (key, field)
            else:
                assert got == value, (key, field)


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


# ------------------------------------------------------------------ (a) + (b) parity, round trip
def test_semantic_matches_golden(inferencer, vocab, parity_dir, out_root):
    pred, folder = run_saved(inferencer, out_root, parity_dir, 'semantic', 640, draw=True,
                             texts=vocab['semantic_12'])
    drawing = np.asarray(Image.open(folder / 'vis.jpg'))
    assert drawing.shape == (640, 959, 3)
    photo = np.asarray(Image.open(photo_path(parity_dir, 640)).convert('RGB'))
    assert np.abs(drawing.astype(int) - photo).mean() > 10  # the masks are drawn over it
    saved = np.asarray(Image.open(folder / 'semantic.png'))
    golden = np.asarray(Image.open(parity_dir / 'golden' / 'semantic.png'))
    assert saved.dtype == np.uint8 and saved.shape == golden.shape
    assert (saved == golden).mean() >= 0.995  # the sample's tolerance (measured: 99.998 %)
    assert json.loads((folder / 'meta.json').read_text())['classes'] == vocab['semantic_12']
    assert_same_prediction(load_saved(folder), pred)


def test_panoptic_matches_golden(inferencer, vocab, parity_dir, out_root):
    names, k = vocab['panoptic_6'], vocab['panoptic_num_things']
    pred, folder = run_saved(inferencer, out_root, parity_dir, 'panoptic', 640,
                             texts=names[:k], stuff_texts='.'.join(names[k:]))
    ids = np.asarray(Image.open(folder / 'panoptic.png'))
    assert ids.dtype == np.uint16
    segments = json.loads((folder / 'panoptic.json').read_text())['segments']
    golden_ids = np.asarray(Image.open(parity_dir / 'golden' / 'panoptic.png'))
    golden = golden_json(parity_dir, 'panoptic_segments.json')['segments_info']
    assert len(segments) == len(golden) == 3
    for seg, g in zip(segments, golden):
        assert (seg['id'], seg['label'], seg['isthing']) == \
            (g['id'], g['category_id'], g['isthing'])
        assert iou(ids == seg['id'], golden_ids == g['id']) > 0.99  # the sample's tolerance
    assert_same_prediction(load_saved(folder), pred)


def test_instance_matches_golden(inferencer, vocab, parity_dir, out_root):
    # The official evaluation scores the 6 panoptic names and keeps the 3 things' detections.
    names, k = vocab['panoptic_6'], vocab['panoptic_num_things']
    pred, folder = run_saved(inferencer, out_root, parity_dir, 'instance', 640,
                             texts=names[:k], stuff_texts=names[k:])
    saved = json.loads((folder / 'instances.json').read_text())
    golden = golden_json(parity_dir, 'instances.json')['detections']
    assert len(saved) == len(golden) == 51
    used, matched = set(), 0
    for g in golden[:20]:  # the sample's rule: the top-20 matched one-to-one
        for j, d in enumerate(saved):
            if j not in used and d['label'] == g['label'] and abs(d['score'] - g['score']) < 1e-3 \
                    and mask_utils.iou([d['mask']], [g['segmentation']], [0])[0][0] > 0.95:
                used.add(j)
                matched += 1
                break
    assert matched >= 19
    # The sample's score tolerance (its float64 re-run: max |diff| 9e-5).
    assert np.allclose([d['score'] for d in saved], [g['score'] for g in golden], atol=1e-3)
    assert_same_prediction(load_saved(folder), pred)


def test_referring_matches_golden(inferencer, vocab, parity_dir, out_root):
    phrases = vocab['referring_phrases']
    pred, folder = run_saved(inferencer, out_root, parity_dir, 'referring', 512, texts=phrases)
    golden = golden_json(parity_dir, 'referring.json')
    assert json.loads((folder / 'referring.json').read_text())['phrases'] == phrases
    for k, name in enumerate(golden['mask_files']):
        saved = np.asarray(Image.open(folder / 'referring' / f'{k}.png'))
        assert set(np.unique(saved)) <= {0, 255}
        g = np.asarray(Image.open(parity_dir / 'golden' / name)) > 127
        assert iou(saved == 255, g) >= 0.99  # the sample's tolerance (measured: 1.0)
    assert_same_prediction(load_saved(folder), pred)


def test_caption_matches_golden(inferencer, parity_dir, out_root):
    pred, folder = run_saved(inferencer, out_root, parity_dir, 'caption', 224)
    saved = json.loads((folder / 'caption.json').read_text())
    golden = golden_json(parity_dir, 'caption.json')
    n = CAPTION_STEPS + 1  # the start token, then the decoded steps
    assert saved['token_ids'][:n] == golden['token_ids'][:n]
    assert saved['token_ids'][n:] == [SOT_ID] * (77 - n)
    # The first steps' words start the golden caption (BPE may end inside a word).
    assert saved['text'] and golden['text'].startswith(saved['text'])
    assert_same_prediction(load_saved(folder), pred)


# ------------------------------------------------------------------ (c) input kinds
def test_bgr_array_rgb_array_pil_and_file_agree(inferencer, vocab, parity_dir):
    path = photo_path(parity_dir, 224)
    names = vocab['semantic_12']  # embeddings cached by the semantic test

    def labels(inputs, **kwargs):
        return inferencer(inputs, texts=names, task='semantic', scale=96,
                          **kwargs)['predictions'][0]['sem_seg']

    from_file = labels(path)
    bgr = cv2.imread(path)
    assert np.array_equal(labels(bgr), from_file)
    assert np.array_equal(labels(np.ascontiguousarray(bgr[..., ::-1]), rgb=True), from_file)
    assert np.array_equal(labels(Image.open(path)), from_file)
    # The flag matters: an RGB array read as BGR is another image.
    assert not np.array_equal(labels(bgr, rgb=True), from_file)


def test_grayscale_and_rgba_become_rgb(inferencer, tmp_path):
    rng = np.random.default_rng(0)
    gray = cv2.resize(rng.integers(0, 256, (8, 12), dtype=np.uint8), (96, 64))
    Image.fromarray(gray).save(tmp_path / 'gray.png')
    rgba = np.dstack([np.repeat(gray[..., None], 3, 2), np.full_like(gray, 128)])
    got = [inferencer(x, texts=SMALL, task='semantic', scale=64, **kw)['predictions'][0]
           for x, kw in ((str(tmp_path / 'gray.png'), {}), (gray, {}),
                         (np.repeat(gray[..., None], 3, 2), {}), (rgba, dict(rgb=True)))]
    assert got[0]['shape'] == (64, 96)
    for other in got[1:]:
        assert np.array_equal(other['sem_seg'], got[0]['sem_seg'])


def test_huge_image_is_shrunk_with_a_warning(inferencer):
    image = np.zeros((128, 192, 3), np.uint8)
    old, inferencer.max_pixels = inferencer.max_pixels, 64 * 96
    try:
        with pytest.warns(UserWarning, match='shrinking it to 96x64'):
            pred = inferencer(image, texts=SMALL, task='semantic', scale=64)
    finally:
        inferencer.max_pixels = old
    assert pred['predictions'][0]['sem_seg'].shape == (64, 96)


def test_bad_inputs_say_what_is_wrong(inferencer, synthetic_checkpoint, tmp_path):
    image = np.zeros((64, 96, 3), np.uint8)
    (tmp_path / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg')
    with pytest.raises(ValueError, match='Cannot decode image .*broken.jpg'):
        inferencer(str(tmp_path / 'broken.jpg'), texts=SMALL, scale=64)
    with pytest.raises(FileNotFoundError, match='Image not found'):
        inferencer(str(tmp_path / 'missing.jpg'), texts=SMALL, scale=64)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='No image files'):
        inferencer(str(tmp_path / 'empty'), texts=SMALL)
    with pytest.raises(ValueError, match='uint8'):
        inferencer(image.astype(np.float32), texts=SMALL, scale=64)
    with pytest.raises(ValueError, match='empty'):
        inferencer(image, texts=' . ', task='semantic', scale=64)
    with pytest.raises(ValueError, match='duplicate'):
        inferencer(image, texts=['sky', 'tree', 'sky'], task='semantic', scale=64)
    with pytest.raises(ValueError, match='one phrase'):
        inferencer(image, texts=['a cat', 'a dog'], task='ref-caption', scale=64)
    with pytest.raises(ValueError, match='Unknown task'):
        inferencer(image, texts=SMALL, task='depth')
    with pytest.raises(FileNotFoundError,
                       match=r'wget https://huggingface.co/xdecoder/X-Decoder/resolve/main/'
                             r'xdecoder_focalt_last_novg.pt'):
        XDecoderInferencer(weights=str(tmp_path / 'xdecoder_focalt_last_novg.pt'))
    # An existing output folder is refused before the model runs, and left as it was.
    (tmp_path / 'out' / 'image_0').mkdir(parents=True)
    (tmp_path / 'out' / 'image_0' / 'semantic.png').write_bytes(b'mine')
    with pytest.raises(FileExistsError, match='does not overwrite'):
        inferencer(image, texts=SMALL, scale=64, out_dir=str(tmp_path / 'out'))
    assert (tmp_path / 'out' / 'image_0' / 'semantic.png').read_bytes() == b'mine'


# ------------------------------------------------------------------ (d) vocabulary forms
def test_vocabulary_as_list_or_string(inferencer):
    assert parse_texts(' sky . tree.road. ') == ['sky', 'tree', 'road']
    assert parse_texts(['sky ', 'tree']) == ['sky ', 'tree']  # a list is taken as given
    encoder = inferencer.model.text_encoder
    from_list = inferencer.text_embeddings('semantic', SMALL).clone()
    encoder.clear_cache()  # computed again, not served from a cache
    disk_cache, encoder.disk_cache = encoder.disk_cache, None
    try:
        from_string = inferencer.text_embeddings('semantic', ' . '.join(SMALL))
    finally:
        encoder.disk_cache = disk_cache
    assert from_list.shape == (4, 512)  # + background
    assert torch.equal(from_list, from_string)
    phrases = inferencer.text_embeddings('referring', 'the sky.a tree')
    assert torch.equal(phrases, inferencer.text_embeddings('referring', ['the sky', 'a tree']))


# ------------------------------------------------------------------ (e) batching
def test_batch_of_three_matches_one_at_a_time(inferencer, parity_dir):
    # Same-size images: padding is not masked in the model, so only then may a batch equal
    # single runs. In float64 batched kernels differ from single ones by ~1e-13; the returned
    # scores are float32, whose rounding (ulp 6e-8 below 1) bounds their difference.
    photo = cv2.imread(photo_path(parity_dir, 224))
    crops = [photo[:64, x:x + 96] for x in (0, 120, 240)]
    kwargs = dict(texts=SMALL, task='instance', scale=64)
    one = [inferencer(c, **kwargs)['predictions'][0]['instances'] for c in crops]
    many = [p['instances'] for p in inferencer(crops, batch_size=3, **kwargs)['predictions']]
    for a, b in zip(one, many):
        assert np.array_equal(a['labels'], b['labels'])
        assert np.abs(a['scores'] - b['scores']).max() <= 1e-7
        assert np.array_equal(a['masks'], b['masks'])


# ------------------------------------------------------------------ retrieval semantics
def test_retrieval_probabilities_and_grounding(inferencer, parity_dir, out_root):
    photo = cv2.imread(photo_path(parity_dir, 224))
    images = [photo[:64, :96], photo[-64:, -96:]]  # at scale 64 the resize is the identity
    texts = ['a rocket', 'the sky']
    result = inferencer(images, texts=texts, task='retrieval', scale=64,
                        out_dir=str(out_root / 'retrieval'))
    # Reference by hand: global-query embeddings from the detector, text EOT embeddings.
    model = inferencer.model
    embeds = torch.stack([run_on_image(model, im[..., ::-1], task='retrieval').image_embedding
                          for im in images])
    with torch.no_grad():
        text = model.text_encoder.encode(texts)['eot_feats']
    cos = torch.nn.functional.normalize(embeds, dim=-1) @ \
        torch.nn.functional.normalize(text, dim=-1).t()
    scale = min(model.text_encoder.logit_scale.exp().item(), 100)
    expected = (scale * cos).softmax(dim=0)
    saved = json.loads((out_root / 'retrieval' / 'retrieval.json').read_text())
    assert saved == result['retrieval']
    for t, text_ in enumerate(texts):
        assert np.allclose(saved[text_], expected[:, t].numpy(), atol=1e-5)
        best = int(expected[:, t].argmax())
        pred = result['predictions'][best]
        k = pred['referring']['phrases'].index(text_)
        direct = run_on_image(model, images[best][..., ::-1], task='referring',
                              text=[text_]).pred_instances
        assert np.array_equal(pred['referring']['masks'][k], direct.masks[0].numpy())
        assert (Path(pred['out_dir']) / 'referring' / f'{k}.png').is_file()


# ------------------------------------------------------------------ demo script
def test_image_demo(inferencer, synthetic_checkpoint, tmp_path, monkeypatch, capsys):
    sys.path.insert(0, str(ROOT / 'demo'))
    import image_demo
    config = str(ROOT / 'projects/XDecoder/configs/xdecoder-tiny_zeroshot_semseg.py')
    with pytest.raises(FileNotFoundError, match='wget https://huggingface.co'):
        image_demo.main([config, '--weights', str(tmp_path / 'xdecoder_focalt_best_openseg.pt')])

    def shared(model, weights, device, precision):  # the module's model, not a second build
        assert (model, weights, device, precision) == \
            (config, str(synthetic_checkpoint), 'cpu', None)
        return inferencer

    monkeypatch.setattr(image_demo, 'XDecoderInferencer', shared)
    out = tmp_path / 'demo'
    argv = [config, '--weights', str(synthetic_checkpoint), '--device', 'cpu',
            '--texts', *SMALL, '--scale', '64', '--out-dir', str(out)]
    result = image_demo.main(argv)  # no IMAGE: scikit-image's rocket photo
    assert result['predictions'][0]['classes'] == SMALL
    assert sorted(os.listdir(out / 'rocket')) == ['meta.json', 'semantic.png', 'vis.jpg']
    assert np.asarray(Image.open(out / 'rocket' / 'semantic.png')).shape == (427, 640)
    assert str(out / 'rocket') in capsys.readouterr().out
    with pytest.raises(FileExistsError):
        image_demo.main(argv)


# ------------------------------------------------------------------ (f) notebook
def test_notebook_runs_with_random_weights(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(ROOT / 'demo' / 'inference.ipynb', as_version=4)
    # papermill-style: a cell after the tagged parameters cell makes the run small and fast.
    index = next(i for i, c in enumerate(nb.cells) if 'parameters' in c.metadata.get('tags', []))
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell('SCALE = 64\nCAPTION_STEPS = 2'))
    monkeypatch.delenv('XDECODER_WEIGHTS', raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)  # jupyter_client's own
        NotebookClient(nb, kernel_name='python3', timeout=600,
                       resources={'metadata': {'path': str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', [])]
    assert not [o for o in outputs if o.output_type == 'error']
    assert sum('image/png' in o.get('data', {}) for o in outputs) >= 7  # one figure per task
    printed = ''.join(o.get('text', '') for o in outputs if o.output_type == 'stream')
    assert 'semantic.png' in printed and "'a cat':" in printed
