"""Shared fixtures: the parity sample copied from the official implementation and its weights."""
import importlib.util
import os
import tempfile
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / 'data'
PARITY = DATA / 'parity_sample'


def pytest_configure(config):
    """Class embeddings cached on disk go to a folder of this run (inherited by the tools the
    tests start), not into the user's ~/.cache/xdecoder."""
    os.environ['XDECODER_CACHE'] = tempfile.mkdtemp(prefix='xdecoder-test-cache-')


def _make_weights_module():
    spec = importlib.util.spec_from_file_location('make_weights', PARITY / 'make_weights.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def parity_dir() -> Path:
    return PARITY


@pytest.fixture(scope='session')
def synthetic_state_dict() -> dict:
    """The parity sample's seed-1 weights in the official focal-T key layout (725 tensors)."""
    return _make_weights_module().make_state_dict(
        keys_path=str(DATA / 'checkpoint_keys_focalt.tsv'), seed=1,
        buffers_path=str(PARITY / 'model_buffers_focalt.pt'))


@pytest.fixture(scope='module', params=(1, 2), ids=lambda n: f'{n}-thread')
def parity_threads(request):
    """The parity comparisons run with 1 and with 2 torch threads: two float summation orders,
    as another machine (other CPU, other thread count) would have. Each must pass."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.fixture(scope='session')
def parity_model(synthetic_checkpoint):
    """The semantic config's model with the sample's weights, loaded from the saved file as the
    tools load it (strict), in float64.

    The golden outputs are the official fp32 run. X-Decoder thresholds mask logits of magnitude
    ~200 at zero to build each layer's attention mask, so a logit within ~1e-5 of zero flips
    under any other fp32 summation order (thread count, CPU kernels, torch version), and one
    flipped entry cascades through the later layers: two equally correct fp32 runs can then
    disagree on a few percent of pixels. In float64 our run is the exact algorithm up to
    ~1e-12, which the sample's own float64 re-run meets within its tolerances (README of the
    sample: semantic 99.998 %, instance score diffs <= 9e-5, intermediates <= 1.3e-4)."""
    from mmengine.runner import load_checkpoint
    from xdecoder_test_utils import build_model, memoize_network
    model = build_model('xdecoder-tiny_zeroshot_semseg.py')
    load_checkpoint(model, str(synthetic_checkpoint), map_location='cpu', strict=True)
    # The semantic, panoptic and instance comparisons read the same 640 photo and differ only
    # in post-processing: its network pass is kept, per thread count (each computes its own).
    return memoize_network(model.double(), per_thread_count=True)


@pytest.fixture(scope='session')
def synthetic_checkpoint(synthetic_state_dict, tmp_path_factory) -> Path:
    """The same weights saved as a plain state dict, as the released .pt files are."""
    path = tmp_path_factory.mktemp('ckpt') / 'xdecoder_focalt_synthetic_seed1.pt'
    torch.save(synthetic_state_dict, path)
    return path
