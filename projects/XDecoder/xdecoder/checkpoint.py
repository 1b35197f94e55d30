"""Loading the released X-Decoder checkpoints unchanged.

The released ``.pt`` files are plain state dicts whose names follow the official code
(``sem_seg_head.predictor.lang_encoder.lang_encoder.*`` ...). Our modules are named for what they
are (``pixel_decoder``, ``decoder``, ``text_encoder``); this is the one place that maps the
official prefixes onto them. Below those prefixes the names are identical.
"""
import os.path as osp
from typing import Dict, Iterable, List

from torch import nn

from .errors import CheckpointError, InputNotFoundError

# Longest prefix first: the text transformer's prefix extends the text encoder's.
OFFICIAL_PREFIXES = (
    ('sem_seg_head.predictor.lang_encoder.lang_encoder.', 'text_encoder.transformer.'),
    ('sem_seg_head.predictor.lang_encoder.', 'text_encoder.'),
    ('sem_seg_head.predictor.', 'decoder.'),
    ('sem_seg_head.pixel_decoder.', 'pixel_decoder.'),
)

CHECKPOINT_HELP = (
    'X-Decoder checkpoints are released on Hugging Face (xdecoder/X-Decoder): '
    'xdecoder_focalt_best_openseg.pt and xdecoder_focalt_last_novg.pt for the focal-T configs, '
    'xdecoder_focall_last.pt for the focal-L configs.')
RELEASE_URL = 'https://huggingface.co/xdecoder/X-Decoder/resolve/main/'
# The released files by backbone width (``backbone.embed_dim`` of the config).
RELEASED = {96: ('xdecoder_focalt_best_openseg.pt', 'xdecoder_focalt_last_novg.pt'),
            192: ('xdecoder_focall_last.pt',)}
# torch.save writes a zip archive; its legacy format (and a bare pickle) starts with the pickle
# protocol opcode 0x80.
CHECKPOINT_MAGIC = (b'PK\x03\x04', b'\x80')


def download_commands(path: str, embed_dim: int = None) -> str:
    """``wget`` lines for a checkpoint: the file itself if it is a released name, else the
    releases of the config's backbone width (all of them if that is unknown)."""
    released = [n for names in RELEASED.values() for n in names]
    name = osp.basename(path)
    names = [name] if name in released else RELEASED.get(embed_dim, released)
    return '\n'.join(f'  wget {RELEASE_URL}{n}' for n in names)


def check_checkpoint_file(path: str, embed_dim: int = None) -> None:
    """Refuse a local checkpoint that is missing or is not a torch file, naming the download.

    A failed download leaves an HTML page or an error text under the checkpoint's name; torch
    would then suggest ``weights_only=False``, which is the wrong fix (and unsafe).
    """
    if '://' in path:
        return
    if not osp.isfile(path):
        raise InputNotFoundError(f'Checkpoint not found: {path}. {CHECKPOINT_HELP} Download '
                                 f'with:\n{download_commands(path, embed_dim)}')
    with open(path, 'rb') as f:
        head = f.read(64)
    if head.startswith(CHECKPOINT_MAGIC):
        return
    start = head.decode('utf-8', 'replace').split('\n')[0][:60] if head else '(empty file)'
    raise CheckpointError(
        f'{path} is not a PyTorch checkpoint: it starts with {start!r}. A failed or '
        'interrupted download saves an HTML page or an error message under the file\'s name. '
        f'Download it again:\n{download_commands(path, embed_dim)}\n{CHECKPOINT_HELP}')


def map_official_key(key: str) -> str:
    """Our name for an official checkpoint key (unchanged if it is not official)."""
    for official, ours in OFFICIAL_PREFIXES:
        if key.startswith(official):
            return ours + key[len(official):]
    return key


def _preview(keys: Iterable[str], limit: int = 10) -> str:
    keys = sorted(keys)
    more = f' ... and {len(keys) - limit} more' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def official_checkpoint_pre_hook(module: nn.Module, state_dict: Dict, prefix: str, *args,
                                 strict_keys: bool = True) -> None:
    """Load-state-dict pre-hook of the detector.

    Renames official keys in place, then (if ``strict_keys``) checks the key set against the
    model's and raises on any difference. mmengine's Runner loads ``load_from`` non-strictly,
    which would silently leave a wrong checkpoint's weights random; a wrong file must fail loudly.
    """
    for key in [k for k in state_dict if k.startswith(prefix)]:
        new_key = prefix + map_official_key(key[len(prefix):])
        if new_key != key:
            state_dict[new_key] = state_dict.pop(key)
    if not strict_keys:
        return
    own = {prefix + k: v for k, v in module.state_dict().items()}
    given = {k for k in state_dict if k.startswith(prefix)}
    missing, unexpected = own.keys() - given, given - own.keys()
    # mmengine only warns about shape mismatches when loading non-strictly: check them here.
    mismatched = [f'{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}'
                  for k in sorted(given & own.keys())
                  if tuple(getattr(state_dict[k], 'shape', ())) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        lines: List[str] = [f'The checkpoint does not match this {type(module).__name__} model '
                            f'({len(given)} keys given, {len(own)} expected).']
        if missing:
            lines.append(f'Missing ({len(missing)}): {_preview(missing)}')
        if unexpected:
            lines.append(f'Unexpected ({len(unexpected)}): {_preview(unexpected)}')
        if mismatched:
            lines.append(f'Shape mismatch (checkpoint vs model) ({len(mismatched)}): '
                         f'{_preview(mismatched)}')
        lines.append('Is it a checkpoint of another model, or of another backbone size than the '
                     'config? ' + CHECKPOINT_HELP)
        raise CheckpointError('\n'.join(lines))
