"""Helpers shared by tests: building the model from a config, running it on one image."""
from pathlib import Path

import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import init_default_scope

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / 'projects' / 'XDecoder' / 'configs'


def read_manifest(path):
    """{key: shape tuple} of a checkpoint key manifest (TSV: key, shape like 96x3x7x7, ...)."""
    shapes = {}
    for line in Path(path).read_text().splitlines():
        if not line.strip() or line.startswith('#'):
            continue
        key, shape = line.split('\t')[:2]
        shapes[key] = tuple(int(s) for s in shape.split('x')) if shape.strip() not in ('', 'scalar') else ()
    return shapes


def build_model(config='xdecoder-tiny_zeroshot_semseg.py', **model_overrides):
    import projects.XDecoder.xdecoder  # noqa: F401  (registers the modules)
    from mmdet.registry import MODELS
    cfg = Config.fromfile(str(CONFIGS / config))
    init_default_scope('mmdet')
    cfg.model.update(model_overrides)
    return MODELS.build(cfg.model).eval()


def run_on_image(model, rgb: np.ndarray, **metainfo):
    """Run ``model.test_step`` on one RGB uint8 image that is already at its test scale."""
    h, w = rgb.shape[:2]
    sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                         scale_factor=(1.0, 1.0), **metainfo))
    # mmdet pipelines give BGR CHW uint8 tensors; the preprocessor converts to RGB.
    inputs = torch.from_numpy(np.ascontiguousarray(rgb[..., ::-1].transpose(2, 0, 1)))
    with torch.no_grad():
        return model.test_step(dict(inputs=[inputs], data_samples=[sample]))[0]
