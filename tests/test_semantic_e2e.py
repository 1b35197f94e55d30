"""Zero-shot semantic segmentation end to end through tools/test.py and tools/dist_test.sh, on a
tiny ADE20K folder in mmsegmentation's layout, with the parity sample's weights."""
import glob
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from xdecoder_test_utils import CONFIGS, ROOT, fake_checkpoint, read_manifest, write_ade20k

DATA = ROOT / 'tests' / 'data'

CONFIG = str(CONFIGS / 'xdecoder-tiny_zeroshot_semseg.py')
# Short side 64 and the first 8 ADE classes (mmseg maps the other labels to 255) keep the run
# fast; everything else is the real config.
CLASSES = ['wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'bed']
FAST = ['test_dataloader.dataset.pipeline.1.scale=64', 'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
        f'test_dataloader.dataset.metainfo.classes=[{",".join(CLASSES)}]']


@pytest.fixture(scope='module')
def ade_root(tmp_path_factory):
    # Labels stay inside the subset: mmdet maps classes outside a subset to index 0, not 255.
    return write_ade20k(tmp_path_factory.mktemp('data'), max_label=len(CLASSES))


def reference_miou(data_root, predictions):
    """mIoU (in %) computed here with numpy from the dumped label maps and the PNGs."""
    k = len(CLASSES)
    inter, union = np.zeros(k), np.zeros(k)
    for pred in predictions:
        name = os.path.basename(pred['img_path']).replace('.jpg', '.png')
        gt = np.asarray(Image.open(data_root / 'annotations/validation' / name)).astype(int) - 1
        label = pred['pred_sem_seg']['sem_seg'].numpy()[0]
        assert label.shape == gt.shape  # predictions are at the original resolution
        valid = gt >= 0  # ADE label 0 ("other") is ignored
        for c in range(k):
            p, g = (label == c) & valid, (gt == c) & valid
            inter[c] += (p & g).sum()
            union[c] += (p | g).sum()
    present = union > 0
    return round(float(np.mean(inter[present] / union[present])) * 100, 2)


def test_tools_test_and_dist_test_agree(ade_root, synthetic_checkpoint, tmp_path):
    sys.path.insert(0, str(ROOT / 'tools'))
    import test as test_tool
    out = tmp_path / 'preds.pkl'
    data_root = f'test_dataloader.dataset.data_root={ade_root}'
    metrics = test_tool.main([CONFIG, str(synthetic_checkpoint), '--work-dir',
                              str(tmp_path / 'single'), '--out', str(out), '--cfg-options',
                              data_root, *FAST])
    predictions = pickle.loads(out.read_bytes())
    assert len(predictions) == 2
    assert metrics['mIoU'] == reference_miou(ade_root, predictions)

    env = dict(os.environ, PYTHON=sys.executable, PORT='29517')
    subprocess.run([str(ROOT / 'tools' / 'dist_test.sh'), CONFIG, str(synthetic_checkpoint), '2',
                    '--work-dir', str(tmp_path / 'dist'), '--cfg-options', data_root, *FAST],
                   check=True, env=env, cwd=tmp_path, timeout=600)
    logs = glob.glob(str(tmp_path / 'dist' / '*' / '*.json'))
    dist_metrics = json.loads(open(logs[0]).read().strip().splitlines()[-1])
    assert dist_metrics['mIoU'] == metrics['mIoU']


def test_missing_dataset_names_the_layout(synthetic_checkpoint, tmp_path):
    sys.path.insert(0, str(ROOT / 'tools'))
    import test as test_tool
    with pytest.raises(FileNotFoundError,
                       match=r'nowhere/images/validation.*does not exist.*README'):
        test_tool.main([CONFIG, str(synthetic_checkpoint), '--work-dir', str(tmp_path),
                        '--cfg-options', f'test_dataloader.dataset.data_root={tmp_path}/nowhere'])


def test_missing_checkpoint_says_where_to_download(tmp_path):
    sys.path.insert(0, str(ROOT / 'tools'))
    import test as test_tool
    with pytest.raises(FileNotFoundError, match='huggingface|Hugging Face'):
        test_tool.main([CONFIG, str(tmp_path / 'xdecoder_focalt_best_openseg.pt')])


@pytest.fixture(scope='module')
def focall_checkpoint(tmp_path_factory):
    """Random weights in the Focal-L release layout (929 keys)."""
    path = tmp_path_factory.mktemp('focall') / 'xdecoder_focall_random.pt'
    torch.save(fake_checkpoint(read_manifest(DATA / 'checkpoint_keys_focall.tsv')), path)
    return path


@pytest.mark.parametrize('config,precision', [
    ('xdecoder-tiny_zeroshot_open-vocab-semseg_ade20k.py', None),
    ('xdecoder-tiny_zeroshot_open-vocab-semseg_ade20k.py', 'bf16'),
    ('xdecoder-tiny_finetune_semseg_ade20k.py', None),
    ('xdecoder-large_zeroshot_open-vocab-semseg_ade20k.py', None)])
def test_other_ade20k_semantic_configs(config, precision, ade_root, synthetic_checkpoint,
                                       focall_checkpoint, tmp_path):
    sys.path.insert(0, str(ROOT / 'tools'))
    import test as test_tool
    checkpoint = focall_checkpoint if 'large' in config else synthetic_checkpoint
    out = tmp_path / 'preds.pkl'
    metrics = test_tool.main([str(CONFIGS / config), str(checkpoint), '--work-dir',
                              str(tmp_path), '--out', str(out),
                              *(['--precision', precision] if precision else []), '--cfg-options',
                              f'test_dataloader.dataset.data_root={ade_root}', *FAST])
    assert metrics['mIoU'] == reference_miou(ade_root, pickle.loads(out.read_bytes()))
    # The runner dumps the config it ran: the precision reached the model.
    (dumped, ) = tmp_path.glob(config)
    assert f"precision='{precision or 'fp32'}'" in dumped.read_text() or precision is None
