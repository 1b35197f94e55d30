"""Shared fixtures: the parity sample copied from the official implementation and its weights."""
import importlib.util
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / 'data'
PARITY = DATA / 'parity_sample'


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


@pytest.fixture(scope='session')
def synthetic_checkpoint(synthetic_state_dict, tmp_path_factory) -> Path:
    """The same weights saved as a plain state dict, as the released .pt files are."""
    path = tmp_path_factory.mktemp('ckpt') / 'xdecoder_focalt_synthetic_seed1.pt'
    torch.save(synthetic_state_dict, path)
    return path
