"""The project's tooling: configs, command-line tools, compiled mmcv ops."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from xdecoder_test_utils import CONFIGS, ROOT

ALL_CONFIGS = sorted(p.name for p in CONFIGS.glob('*.py'))


@pytest.mark.parametrize('name', ALL_CONFIGS)
def test_config_parses_and_model_builds(name):
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    import projects.XDecoder.xdecoder  # noqa: F401
    cfg = Config.fromfile(str(CONFIGS / name))
    init_default_scope(cfg.default_scope)
    assert cfg.custom_imports['imports'] == ['projects.XDecoder.xdecoder']
    with torch.device('meta'):  # structure only: no memory, no init time
        model = MODELS.build(cfg.model)
    assert model.task == cfg.model.task
    # A missing dataset's message names this README entry (tools/runtime.check_inputs).
    assert f'**{cfg.readme_section}**' in (ROOT / 'README.md').read_text()
    assert cfg.test_dataloader.batch_size == 1  # padding is not masked: one image per process


@pytest.mark.parametrize('tool', ['test.py', 'train.py', 'analysis_tools/benchmark.py'])
def test_tool_help(tool):
    out = subprocess.run([sys.executable, str(ROOT / 'tools' / tool), '--help'],
                         capture_output=True, text=True, check=True, cwd='/')
    assert 'usage:' in out.stdout and 'config' in out.stdout


def test_compiled_mmcv_ops_run_on_cpu():
    from mmcv.ops import MultiScaleDeformableAttention, nms, point_sample, roi_align
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [50., 50., 60., 60.]])
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2]  # the second box overlaps the first by 0.68 IoU
    feat = torch.arange(16.).reshape(1, 1, 4, 4)
    pooled = roi_align(feat, torch.tensor([[0., 0., 0., 4., 4.]]), (1, 1), 1.0, 2, 'avg', True)
    # An fp32 average of 16 bilinear samples: rounding ~1e-6 at these magnitudes.
    assert torch.allclose(pooled, feat.mean().reshape(1, 1, 1, 1), atol=1e-5)
    centre = point_sample(feat, torch.tensor([[[0.5, 0.5]]]), align_corners=False)
    assert torch.allclose(centre, torch.tensor([[[7.5]]]))
    assert MultiScaleDeformableAttention(embed_dims=32, num_heads=4, num_levels=1,
                                         num_points=2) is not None


def test_ade20k_vocabulary_is_the_official_wording_in_mmdet_label_order():
    from mmdet.datasets import ADE20KSegDataset
    cfg = Config.fromfile(str(CONFIGS / 'xdecoder-tiny_zeroshot_semseg.py'))
    ours = cfg.test_dataloader.dataset.metainfo.classes
    theirs = ADE20KSegDataset.METAINFO['classes']
    assert len(ours) == len(set(ours)) == len(theirs) == 150
    renamed = {(a, b) for a, b in zip(theirs, ours) if a != b}
    assert renamed == {('bed ', 'bed'), ('windowpane', 'window'), ('bathtub', 'tub'),
                       ('railing', 'rail'), ('streetlight', 'street lamp'),
                       ('television receiver', 'tv'), ('apparel', 'clothes'),
                       ('swimming pool', 'pool'), ('waterfall', 'falls'), ('ashcan', 'trash can')}
    assert cfg.test_dataloader.dataset.use_label_map is False


# ---------------------------------------------------------------------- errors a user sees
def run_tool(*argv, cwd):
    """A command-line tool as a user runs it: (exit status, everything it printed)."""
    out = subprocess.run([sys.executable, *map(str, argv)], capture_output=True, text=True,
                         cwd=cwd)
    return out.returncode, out.stdout + out.stderr


def test_test_tool_names_a_missing_dataset_without_traceback(synthetic_checkpoint, tmp_path):
    code, printed = run_tool(ROOT / 'tools/test.py', CONFIGS / 'xdecoder-tiny_zeroshot_semseg.py',
                             synthetic_checkpoint, cwd=tmp_path)  # no data/ade in tmp_path
    assert code == 1 and 'Traceback' not in printed
    assert 'Dataset not found: data/ade/ADEChallengeData2016/images/validation' in printed
    assert 'See README.md, "Datasets" > "ADE20K-150", for where' in printed
    assert 'test_dataloader.dataset.data_root=' in printed


def test_html_saved_as_checkpoint_is_named_with_its_download(tmp_path):
    """A failed download (an HTML page under the checkpoint's name): not torch's advice to load
    with weights_only=False, but what the file is and how to download it again."""
    page = tmp_path / 'xdecoder_focalt_best_openseg.pt'
    page.write_text('<!DOCTYPE html>\n<html><head><title>Error</title></head></html>\n')
    code, printed = run_tool(ROOT / 'tools/test.py', CONFIGS / 'xdecoder-tiny_zeroshot_semseg.py',
                             page, cwd=tmp_path)
    assert code == 1 and 'Traceback' not in printed and 'weights_only' not in printed
    assert f"{page} is not a PyTorch checkpoint: it starts with '<!DOCTYPE html>'" in printed
    assert ('wget https://huggingface.co/xdecoder/X-Decoder/resolve/main/'
            'xdecoder_focalt_best_openseg.pt') in printed

    from projects.XDecoder.xdecoder import XDecoderInferencer
    from projects.XDecoder.xdecoder.errors import CheckpointError
    (tmp_path / 'empty.pt').write_bytes(b'')
    with pytest.raises(CheckpointError, match=r"starts with '\(empty file\)'.*\n.*wget "
                                              r'.*xdecoder_focalt_best_openseg.pt'):
        XDecoderInferencer('xdecoder-tiny_zeroshot_semseg.py', weights=str(tmp_path / 'empty.pt'))


def test_demo_with_another_models_checkpoint_prints_one_message(tmp_path):
    resnet = {'conv1.weight': torch.zeros(64, 3, 7, 7), 'fc.weight': torch.zeros(1000, 2048)}
    torch.save(resnet, tmp_path / 'resnet50.pth')
    code, printed = run_tool(ROOT / 'demo/image_demo.py', 'xdecoder-tiny_zeroshot_semseg.py',
                             '--weights', tmp_path / 'resnet50.pth', '--device', 'cpu',
                             '--texts', 'sky', '--scale', '32', cwd=tmp_path)
    assert code == 1 and 'Traceback' not in printed
    assert 'error: The checkpoint does not match this XDecoder model (2 keys given' in printed
    assert 'Unexpected (2): conv1.weight, fc.weight' in printed
    assert not (tmp_path / 'outputs').exists()


# ---------------------------------------------------------------------- compiled mmcv ops
def test_no_compiled_mmcv_op_runs_in_any_task(monkeypatch, tmp_path):
    """tools/setup_env.sh builds mmcv's compiled ops for the CPU, also on GPU machines (no nvcc
    needed): that is only right while X-Decoder calls none of them. Every entry point of mmcv's
    extension fails here; each task's forward and the segmentation loss must still run."""
    import importlib

    from mmcv.ops import nms
    from mmdet.structures import DetDataSample
    from mmengine.structures import PixelData
    from xdecoder_test_utils import build_model, run_on_image, smooth_image
    ext = importlib.import_module('mmcv._ext')
    called = []

    def refuse(name):
        def op(*args, **kwargs):
            called.append(name)
            raise AssertionError(f'compiled mmcv op {name} called')
        return op

    for name in dir(ext):
        if not name.startswith('_') and callable(getattr(ext, name)):
            monkeypatch.setattr(ext, name, refuse(name))
    with pytest.raises(AssertionError, match='compiled mmcv op nms'):  # the patch takes effect
        nms(torch.zeros(1, 4), torch.ones(1), 0.5)
    called.clear()

    torch.manual_seed(0)
    model = build_model(test_cfg=dict(caption_steps=2),
                        criterion=dict(segmentation=dict(type='XDecoderSegLoss', num_points=256)))
    rgb = smooth_image(np.random.default_rng(0), 64, 96)
    vocab = dict(text=['sky', 'tree'], stuff_text=['road'])
    for task, meta in [('semantic', vocab), ('instance', vocab), ('panoptic', vocab),
                       ('referring', dict(text=['the sky'])), ('caption', {}),
                       ('ref-caption', dict(text=['the sky'])), ('retrieval', {})]:
        run_on_image(model, rgb, task=task, **meta)
    model.train()
    sample = DetDataSample(metainfo=dict(img_shape=(64, 96), batch_input_shape=(64, 96),
                                         text=['sky', 'tree']))
    sample.gt_sem_seg = PixelData(sem_seg=torch.randint(0, 2, (1, 64, 96)))
    losses = model.loss(torch.randn(1, 3, 64, 96), [sample])
    sum(losses.values()).backward()
    assert called == []


def test_only_the_main_process_writes_the_test_summary(monkeypatch):
    """mmengine's LoggerHook dumps <timestamp>.json from every rank to one path (a dist_test.sh
    run left '{..."time": 0.62}4}'); the project's hook leaves it to rank 0."""
    from mmengine.hooks import LoggerHook

    from projects.XDecoder.xdecoder import hooks
    calls = []
    monkeypatch.setattr(LoggerHook, 'after_test_epoch', lambda self, runner, metrics=None:
                        calls.append(runner))
    hook = hooks.RankZeroLoggerHook()
    for main, runner in ((False, 'rank1'), (True, 'rank0')):
        monkeypatch.setattr(hooks, 'is_main_process', lambda main=main: main)
        hook.after_test_epoch(runner, {})
    assert calls == ['rank0']
