"""The project's tooling: configs, command-line tools, compiled mmcv ops."""
import subprocess
import sys

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
