"""Class embeddings for training: one random prompt template per class per step.

The official training (``LanguageEncoder.get_text_embeddings(..., is_eval=False)`` in
microsoft/X-Decoder ``modeling/language/vlpencoder.py``) puts each cleaned class name into one
template drawn at random from the 81, embeds it (EOT feature ``@ lang_proj``, normalised with
+1e-7) with gradients, and draws again at the next step; evaluation averages all 81 templates
(:meth:`TextEncoder.class_embeddings`, cached and without gradients).
"""
from typing import Sequence, Tuple

import torch
from torch import Tensor

from .layers import l2_normalize
from .text_encoder import BACKGROUND, PROMPT_TEMPLATES, TextEncoder, clean_class_name


def random_prompts(names: Sequence[str], generator: torch.Generator) -> Tuple[list, Tensor]:
    """One prompt per name and for ``'background'`` (appended last), each from a template
    drawn uniformly from :data:`PROMPT_TEMPLATES` with ``generator`` (a CPU generator).

    Returns the ``K + 1`` prompts and the drawn template indices ``[K + 1]``.
    """
    # The evaluation path's checks: distinct, non-empty names, 'background' not among them.
    names = TextEncoder.check_vocabulary(names) + (BACKGROUND, )
    templates = torch.randint(len(PROMPT_TEMPLATES), (len(names), ), generator=generator)
    prompts = [PROMPT_TEMPLATES[t].format(clean_class_name(name))
               for t, name in zip(templates.tolist(), names)]
    return prompts, templates


def random_template_class_embeddings(text_encoder: TextEncoder, names: Sequence[str],
                                     generator: torch.Generator) -> Tensor:
    """Training-time class embeddings ``[K + 1, D]`` (unit rows, 'background' last), one
    random template per class (see :func:`random_prompts`).

    Computed by the text encoder's forward, so gradients reach it whenever its parameters
    require them (trainable text encoder); nothing is cached, since the templates change at
    every call. The same generator state gives the same templates.
    """
    prompts, _ = random_prompts(names, generator)
    input_ids, attention_mask = text_encoder.tokenizer(prompts)
    # Causal attention and EOT pooling: positions after the longest prompt change nothing.
    length = int(attention_mask.sum(dim=1).max())
    _, eot_feats = text_encoder(input_ids[:, :length].to(text_encoder.device))
    return l2_normalize(eot_feats)
