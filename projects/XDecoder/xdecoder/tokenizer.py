"""CLIP byte-level BPE tokenizer, offline.

X-Decoder was trained with Hugging Face's ``CLIPTokenizer`` for
``openai/clip-vit-base-patch32``.  That tokenizer and open_clip's
``SimpleTokenizer`` share the same merges file and the same pre-tokenisation
regex, so open_clip's BPE (whose vocabulary ships inside the wheel) gives the
same ids without touching the Hugging Face hub.  Only the framing differs:
X-Decoder pads with the end-of-text id (49407) where open_clip pads with 0,
and X-Decoder also needs an attention mask, so that part is done here.
"""
import logging
from functools import lru_cache
from typing import List, Sequence, Tuple, Union

import torch

__all__ = ['CLIPTokenizer']

SOT_ID = 49406
EOT_ID = 49407
VOCAB_SIZE = 49408
CONTEXT_LENGTH = 77

# Hugging Face spells the special tokens differently from open_clip; the
# captioning post-processing cuts decoded text at the HF spelling.
SOT_TEXT = '<|startoftext|>'
EOT_TEXT = '<|endoftext|>'


@lru_cache(maxsize=1)
def _open_clip_bpe():
    """One shared open_clip tokenizer: reading the merges takes ~0.3 s."""
    from open_clip.tokenizer import SimpleTokenizer

    bpe = SimpleTokenizer(clean='lower')
    # Guard against a future vocabulary layout change silently shifting ids.
    if (bpe.sot_token_id, bpe.eot_token_id, bpe.vocab_size) != (SOT_ID, EOT_ID, VOCAB_SIZE):
        raise RuntimeError(
            'open_clip SimpleTokenizer has an unexpected vocabulary layout '
            f'(sot={bpe.sot_token_id}, eot={bpe.eot_token_id}, '
            f'size={bpe.vocab_size}); expected {SOT_ID}/{EOT_ID}/{VOCAB_SIZE}.')
    return bpe


class CLIPTokenizer:
    """CLIP BPE tokenizer with X-Decoder's framing (HF ``CLIPTokenizer``
    equivalent, ``padding='max_length', truncation=True``).

    Each text becomes ``[SOT, bpe..., EOT]`` (SOT=49406, EOT=49407), padded
    with EOT to ``context_length``.  Text cleaning is CLIP's: ftfy fix-up,
    HTML unescape, whitespace collapse, lower case.

    Over-long text is truncated the way CLIP truncates: the first
    ``context_length - 1`` ids are kept (SOT included) and the last kept
    position is overwritten with EOT, so every row holds exactly one
    real EOT before its padding.  The first truncation is logged once (as a
    warning through mmengine's ``print_log``).

    Known divergence from HF on pathological input: the literal strings
    ``<start_of_text>`` / ``<end_of_text>`` inside a text are read as the
    special tokens (open_clip's convention), where HF reserves
    ``<|startoftext|>`` / ``<|endoftext|>``.

    Call: ``texts`` (str or list of str) ->
    ``(input_ids LongTensor[N, L], attention_mask LongTensor[N, L])``,
    ``L = context_length``; the mask is 1 on SOT..EOT inclusive, 0 on padding.
    """

    sot_token_id = SOT_ID
    eot_token_id = EOT_ID
    pad_token_id = EOT_ID
    vocab_size = VOCAB_SIZE

    def __init__(self, context_length: int = CONTEXT_LENGTH):
        if not isinstance(context_length, int) or context_length < 2:
            raise ValueError(f'context_length must be an int >= 2, got {context_length!r}')
        self.context_length = context_length
        self._bpe = _open_clip_bpe()
        self._warned_truncation = False

    def encode(self, text: str) -> List[int]:
        """BPE ids of one text, without SOT/EOT and without truncation."""
        if not isinstance(text, str):
            raise TypeError('CLIPTokenizer expects str inputs, got '
                            f'{type(text).__name__}: {text!r}')
        return self._bpe.encode(text)

    def tokenize(self, text: str, context_length: int = None) -> List[int]:
        """``[SOT, bpe..., EOT]`` of one text, truncated but not padded."""
        context_length = context_length or self.context_length
        ids = [SOT_ID] + self.encode(text) + [EOT_ID]
        if len(ids) > context_length:
            self._warn_truncation(len(ids), context_length)
            ids = ids[:context_length]
            ids[-1] = EOT_ID
        return ids

    def _warn_truncation(self, length: int, context_length: int) -> None:
        if self._warned_truncation:
            return
        self._warned_truncation = True
        from mmengine.logging import print_log
        print_log(f'CLIPTokenizer: a text of {length} tokens (SOT/EOT included) was '
                  f'truncated to {context_length}, as CLIP does; further truncations '
                  'are not reported.', logger='current', level=logging.WARNING)

    def __call__(self,
                 texts: Union[str, Sequence[str]],
                 context_length: int = None) -> Tuple[torch.Tensor, torch.Tensor]:
        context_length = context_length or self.context_length
        if isinstance(texts, str):
            texts = [texts]
        elif not isinstance(texts, (list, tuple)):
            raise TypeError('CLIPTokenizer expects a str or a list/tuple of str, '
                            f'got {type(texts).__name__}')
        rows = [self.tokenize(t, context_length) for t in texts]
        input_ids = torch.full((len(rows), context_length), EOT_ID, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), context_length), dtype=torch.long)
        for i, ids in enumerate(rows):
            input_ids[i, :len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[i, :len(ids)] = 1
        return input_ids, attention_mask

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Ids (list, tuple or 1-D tensor) -> text, HF-style.

        Special ids are rendered as ``<|startoftext|>`` / ``<|endoftext|>``
        (dropped when ``skip_special_tokens``); runs of ordinary tokens are
        byte-decoded and stripped, and the pieces are joined by single
        spaces.  No cutting at EOT happens here; captioning does that.
        """
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError('decode expects a 1-D sequence of ids, got shape '
                                 f'{tuple(ids.shape)}')
            ids = ids.tolist()
        pieces, run = [], []

        def flush():
            if run:
                pieces.append(self._bpe.decode(run).strip())
                run.clear()

        for i in ids:
            i = int(i)
            if i in (SOT_ID, EOT_ID):
                flush()
                if not skip_special_tokens:
                    pieces.append(SOT_TEXT if i == SOT_ID else EOT_TEXT)
            elif 0 <= i < VOCAB_SIZE:
                run.append(i)
            else:
                raise ValueError(f'token id {i} is outside the CLIP vocabulary [0, {VOCAB_SIZE})')
        flush()
        return ' '.join(p for p in pieces if p)
