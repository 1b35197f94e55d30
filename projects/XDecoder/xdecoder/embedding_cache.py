"""Class embeddings of a vocabulary kept on disk, so that a second run costs no text encoding.

The ADE20K-150 vocabulary is 151 names x 81 prompt templates: ~20-30 s of text encoding on a CPU,
paid by every process of every evaluation (``dist_test.sh`` runs one per GPU). The result depends
only on the text encoder's weights, the names and the prompt rules, so it is stored under a hash
of exactly those. Torch's own caches (hub, compile) cover nothing like this, hence this module.

* One file per key, ``<folder>/<sha256>.pt`` holding the names and the ``[K+1, D]`` tensor.
* Concurrent writers are safe: each writes a private temporary file in the folder and renames it
  over the target (atomic on POSIX), so a reader sees a whole file or none.
* A file that cannot be read, or holds other names or another shape, is ignored (with a warning)
  and rewritten.
"""
import hashlib
import os
import os.path as osp
import tempfile
from typing import Optional, Sequence, Union

import torch
from mmengine.logging import print_log
from torch import nn

# Bump when what a cached embedding means changes (prompt rules, pooling, normalisation).
FORMAT_VERSION = 1


def default_cache_folder() -> str:
    """``$XDECODER_CACHE/embeddings``, default ``~/.cache/xdecoder/embeddings``."""
    root = os.environ.get('XDECODER_CACHE') or osp.join(osp.expanduser('~'), '.cache', 'xdecoder')
    return osp.join(root, 'embeddings')


def weights_hash(module: nn.Module) -> str:
    """sha256 over a module's state dict: names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f'{name}|{tensor.dtype}|{tuple(tensor.shape)}|'.encode())
        digest.update(memoryview(tensor.view(torch.uint8).numpy()))
    return digest.hexdigest()


class EmbeddingDiskCache:
    """Class embeddings on disk, keyed by ``(weights hash, names, prompt rules)``.

    Args:
        folder: where the files go; created when the first one is written.
    """

    def __init__(self, folder: str):
        self.folder = folder
        self._warned_unwritable = False

    def path(self, weights: str, names: Sequence[str], rules: Sequence[str]) -> str:
        key = '\x00'.join([str(FORMAT_VERSION), weights, *rules, '\x01', *names])
        return osp.join(self.folder, hashlib.sha256(key.encode()).hexdigest() + '.pt')

    def load(self, path: str, names: Sequence[str], shape: tuple,
             device: Union[str, torch.device]) -> Optional[torch.Tensor]:
        """The cached tensor, or None when there is none or it is not the right one."""
        if not osp.isfile(path):
            return None
        try:
            content = torch.load(path, map_location=device, weights_only=True)
            embeddings = content['embeddings']
            if list(content['names']) != list(names) or tuple(embeddings.shape) != shape:
                raise ValueError(f'it holds {len(content["names"])} names, '
                                 f'shape {tuple(embeddings.shape)}')
        except Exception as e:  # a truncated or foreign file: recompute and rewrite it
            print_log(f'Ignoring the unreadable class-embedding cache file {path} ({e}); it is '
                      'computed again and rewritten.', logger='current', level=30)
            return None
        return embeddings

    def save(self, path: str, names: Sequence[str], embeddings: torch.Tensor) -> None:
        try:
            os.makedirs(self.folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix='.tmp')
            try:
                with os.fdopen(fd, 'wb') as f:
                    torch.save(dict(names=list(names), embeddings=embeddings.cpu()), f)
                os.replace(tmp, path)
            finally:
                if osp.exists(tmp):
                    os.unlink(tmp)
        except OSError as e:  # read-only or full disk: keep working without the disk cache
            if not self._warned_unwritable:
                print_log(f'Cannot write class-embedding cache files to {self.folder} ({e}); '
                          'vocabularies are embedded again in every run. Set XDECODER_CACHE to '
                          'a writable folder.', logger='current', level=30)
                self._warned_unwritable = True
