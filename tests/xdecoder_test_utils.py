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
        scalar = shape.strip() in ('', 'scalar')
        shapes[key] = () if scalar else tuple(int(s) for s in shape.split('x'))
    return shapes


def build_model(config='xdecoder-tiny_zeroshot_semseg.py', **model_overrides):
    from mmdet.registry import MODELS

    import projects.XDecoder.xdecoder  # noqa: F401  (registers the modules)
    cfg = Config.fromfile(str(CONFIGS / config))
    init_default_scope('mmdet')
    cfg.model.update(model_overrides)
    return MODELS.build(cfg.model).eval()


def memoize(fn, key):
    """``fn`` computing once per ``key(*args)``; the results are in ``wrapper.cache``."""
    results = {}

    def wrapper(*args):
        k = key(*args)
        if k not in results:
            results[k] = fn(*args)
        return results[k]
    wrapper.cache = results
    return wrapper


def memoize_network(model, per_thread_count: bool = False):
    """Keep the model's network pass per input image, for tests that post-process the same image
    several ways: the backbone keyed by the input's values (and the torch thread count, so that
    each count computes its own), the pixel decoder and the generic decoder pass by the identity
    of the kept outputs (they stay alive, so their ids stay unique)."""
    threads = torch.get_num_threads if per_thread_count else (lambda: None)
    model.backbone.forward = memoize(model.backbone.forward,
                                     lambda x: (threads(), x.shape, x.numpy().tobytes()))
    model.pixel_decoder.forward = memoize(model.pixel_decoder.forward, id)
    model.decoder.forward = memoize(model.decoder.forward,
                                    lambda mask_features, multi_scale: id(mask_features))
    return model


def run_on_image(model, rgb: np.ndarray, **metainfo):
    """Run ``model.test_step`` on one RGB uint8 image that is already at its test scale."""
    h, w = rgb.shape[:2]
    sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                         scale_factor=(1.0, 1.0), **metainfo))
    # mmdet pipelines give BGR CHW uint8 tensors; the preprocessor converts to RGB.
    inputs = torch.from_numpy(np.ascontiguousarray(rgb[..., ::-1].transpose(2, 0, 1)))
    with torch.no_grad():
        return model.test_step(dict(inputs=[inputs], data_samples=[sample]))[0]


def smooth_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An RGB uint8 image with large smooth regions (JPEG-friendly, not pure noise)."""
    small = rng.integers(0, 256, (max(h // 16, 2), max(w // 16, 2), 3), dtype=np.uint8)
    from PIL import Image
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR))


def write_ade20k(root: Path, sizes=((48, 64), (64, 40)), seed: int = 0,
                 max_label: int = 150, split: str = 'validation') -> Path:
    """A tiny ADE20K-150 folder in mmsegmentation's layout: JPEG images and PNG label maps with
    values 0..max_label (0 = 'other', ignored after reduce_zero_label), in ``split``
    ('validation' or 'training'). Returns the data root."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    data_root = Path(root) / 'ade' / 'ADEChallengeData2016'
    for sub in (f'images/{split}', f'annotations/{split}'):
        (data_root / sub).mkdir(parents=True, exist_ok=True)
    prefix = {'validation': 'val', 'training': 'train'}[split]
    for i, (h, w) in enumerate(sizes, start=1):
        name = f'ADE_{prefix}_{i:08d}'
        Image.fromarray(smooth_image(rng, h, w)).save(data_root / f'images/{split}' /
                                                      f'{name}.jpg', quality=95)
        labels = rng.integers(0, max_label + 1, (h // 8 + 1, w // 8 + 1), dtype=np.uint8)
        labels = np.kron(labels, np.ones((8, 8), np.uint8))[:h, :w]
        Image.fromarray(labels).save(data_root / f'annotations/{split}' / f'{name}.png')
    return data_root


def fake_checkpoint(manifest, seed=0):
    """A plain state dict with the manifest's keys and shapes and distinct random values."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in manifest.items():
        if key.endswith('self_attn_mask'):
            sd[key] = torch.rand(shape, generator=g) > 0.5
        else:
            sd[key] = torch.randn(shape, generator=g)
    return sd
