"""The X-Decoder transformer decoder: latent queries (plus text queries) over multi-scale features.

One stack of layers serves three modes, which differ only in the extra queries that enter and in
the attention masks:

* generic (semantic / instance / panoptic / retrieval): ``num_queries`` latent queries, the last
  of which is the global ("class") query;
* grounding (referring segmentation): a copy of the object queries plus the phrase tokens;
* captioning: the caption token features as causal queries, decoded greedily.

Each layer (``_layer``, the same in all three modes) is masked cross-attention -> self-attention
-> FFN, all post-norm (Mask2Former order); layer ``i`` attends to level ``i % num_levels`` of the
pixel decoder's maps, coarsest first.
"""
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

from .layers import SinePositionEmbedding, full_precision, l2_normalize


class CrossAttentionLayer(nn.Module):
    """Masked cross-attention from queries (L, B, C) to memory (S, B, C); post-norm."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(dim, num_heads)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, memory: Tensor, attn_mask: Optional[Tensor], memory_pos: Tensor,
                query_pos: Tensor) -> Tensor:
        out = self.multihead_attn(x + query_pos, memory + memory_pos, memory, attn_mask=attn_mask,
                                  need_weights=False)[0]
        return self.norm(x + out)


class SelfAttentionLayer(nn.Module):
    """Self-attention over queries (L, B, C), ``attn_mask`` True = blocked; post-norm.

    With ``prefix`` (P, B, C), the queries also attend to those earlier rows, whose outputs are
    not computed: the rows before them in the full sequence, when only later rows change.
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, num_heads)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, attn_mask: Optional[Tensor], query_pos: Tensor,
                prefix: Optional[Tensor] = None,
                prefix_pos: Optional[Tensor] = None) -> Tensor:
        q = x + query_pos
        k, v = q, x
        if prefix is not None:
            k, v = torch.cat([prefix + prefix_pos, q]), torch.cat([prefix, x])
        return self.norm(x + self.self_attn(q, k, v, attn_mask=attn_mask, need_weights=False)[0])


class FFNLayer(nn.Module):
    """Linear -> ReLU -> Linear with residual and post-norm, on (L, B, C)."""

    def __init__(self, dim: int, ffn_dim: int):
        super().__init__()
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.linear2(F.relu(self.linear1(x))))


class MLP(nn.Module):
    """``num_layers`` Linear layers with ReLU between them."""

    def __init__(self, dim: int, out_dim: int, num_layers: int = 3):
        super().__init__()
        dims = [dim] * num_layers + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims[:-1], dims[1:]))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


def unmask_empty_rows(attn_mask: Tensor) -> Tensor:
    """A query whose mask blocks every position would attend to nothing: let it see everything."""
    return attn_mask.masked_fill(attn_mask.all(-1, keepdim=True), False)


@full_precision
def resize_features(features: Tensor, size: Tuple[int, int]) -> Tensor:
    """``[B, C, H, W]`` -> ``[B, C, *size]``, resized as the official model resizes mask logits
    for attention masks (bicubic, antialiased; in fp32, which has the CPU kernel)."""
    return F.interpolate(features, size=size, mode='bicubic', align_corners=False, antialias=True)


@full_precision
def level_mask_logits(mask_embeds: Tensor, level_features: Tensor) -> Tensor:
    """Mask logits ``[B, L, h, w]`` at a level's size from the queries' mask embeddings
    ``[B, L, C]`` and the mask features resized to that size ``[B, C, h, w]``.

    The official model computes full-size logits and resizes them; resizing and this product are
    both linear, so ``resize(einsum(e, F)) == einsum(e, resize(F))`` up to rounding, and the
    features are resized once per level instead of 101+ logit maps per layer (issue 11: the
    prediction heads took 0.33 s of a 3.35 s semantic inference at 640x960). fp32 under
    autocast: these logits (magnitude ~200) are thresholded at 0.
    """
    return torch.einsum('bqc,bchw->bqhw', mask_embeds, level_features)


@full_precision
def blocked_pixels(mask_logits: Tensor) -> Tensor:
    """``[B, Q, h * w]`` True where a query's mask logits ``[B, Q, h, w]`` (at the size of the
    level the next layer attends to) are off (``sigmoid < 0.5``): what its cross-attention may
    not see in the next layer."""
    return mask_logits.sigmoid().flatten(2) < 0.5


@full_precision
def caption_logits(states: Tensor, caping_embed: Tensor, token_embedding: Tensor) -> Tensor:
    """Next-token logits ``[..., vocab]`` of caption query states ``[..., C]``: projected by
    ``caping_embed`` and scored against the text encoder's token table (tied output layer)."""
    return (states @ caping_embed) @ token_embedding.t()


def query_self_attn_mask(num_queries: int, context_length: int) -> Tensor:
    """The bool self-attention mask (True = blocked) of latent + caption queries, (1, N, N).

    Object queries see each other only; the global query (index ``num_queries - 1``) sees only
    itself; caption queries see every latent query and, causally, the caption queries before them.
    """
    n_obj, size = num_queries - 1, num_queries + context_length
    mask = torch.ones(size, size, dtype=torch.bool)
    mask[:n_obj, :n_obj] = False
    mask[n_obj, n_obj] = False
    mask[num_queries:, :num_queries] = False
    mask[num_queries:, num_queries:] = torch.ones(context_length, context_length,
                                                  dtype=torch.bool).triu(1)
    return mask[None]


class DecoderOutput(NamedTuple):
    """One prediction of the decoder (before the first layer, then after each layer).

    * ``class_embeds [B, Q, dim_proj]``, ``mask_logits [B, Q, H/4, W/4]``: the ``Q`` latent
      queries, the object queries first and the global query last;
    * ``grounding_embeds [B, Q - 1, dim_proj]``, ``grounding_masks [B, Q - 1, H/4, W/4]``: the
      grounding queries (grounding mode only, else None).

    In eval mode only the last prediction's masks are full-size (``H/4 x W/4``); the others are
    at the size of the level the next layer attends to, from which its attention mask is made
    (training supervises every prediction, so there all are full-size).
    """
    class_embeds: Tensor
    mask_logits: Tensor
    grounding_embeds: Optional[Tensor] = None
    grounding_masks: Optional[Tensor] = None

    @property
    def global_embeds(self) -> Tensor:
        """``[B, dim_proj]`` (``[dim_proj]`` for one image's output): the global query, which
        summarises the image (retrieval)."""
        return self.class_embeds[..., -1, :]


class Level(NamedTuple):
    """One flattened pixel-decoder map: ``memory`` and ``pos`` (h * w, B, C), ``size`` (h, w)."""
    memory: Tensor
    pos: Tensor
    size: Tuple[int, int]


@MODELS.register_module()
class XDecoderTransformerDecoder(BaseModule):
    """X-Decoder's decoder ("predictor").

    Args:
        hidden_dim: query width (= the pixel decoder's conv_dim and mask_dim).
        dim_proj: width of the joint vision-language space of ``class_embed``/``caping_embed``.
        num_queries: latent queries including the trailing global query (101 for focal-T).
        num_layers, num_heads, ffn_dim: the layer stack.
        num_levels: multi-scale maps attended in turn.
        context_length: caption length (text context of the language encoder).

    Every mode takes the pixel decoder's output in its order: ``mask_features
    [B, hidden_dim, H/4, W/4]`` and ``multi_scale`` (list of ``[B, hidden_dim, h_l, w_l]``,
    coarsest first). Generic and grounding modes return one :class:`DecoderOutput` per prediction
    step (``num_layers + 1``, the last is the final one); captioning returns token ids.
    """

    def __init__(self, hidden_dim: int = 512, dim_proj: int = 512, num_queries: int = 101,
                 num_layers: int = 9, num_heads: int = 8, ffn_dim: int = 2048,
                 num_levels: int = 3, context_length: int = 77, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.num_queries = num_queries
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.context_length = context_length

        self.query_feat = nn.Embedding(num_queries, hidden_dim)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.level_embed = nn.Embedding(num_levels, hidden_dim)
        self.position_embedding = SinePositionEmbedding(hidden_dim // 2)
        self.transformer_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(hidden_dim, num_heads) for _ in range(num_layers))
        self.transformer_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(hidden_dim, num_heads) for _ in range(num_layers))
        self.transformer_ffn_layers = nn.ModuleList(
            FFNLayer(hidden_dim, ffn_dim) for _ in range(num_layers))
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.mask_embed = MLP(hidden_dim, hidden_dim, 3)
        self.class_embed = nn.Parameter(torch.empty(hidden_dim, dim_proj))
        self.caping_embed = nn.Parameter(torch.empty(hidden_dim, dim_proj))
        self.pos_embed_caping = nn.Embedding(context_length, hidden_dim)
        self.register_buffer('self_attn_mask', query_self_attn_mask(num_queries, context_length))
        nn.init.trunc_normal_(self.class_embed, std=0.02)
        nn.init.trunc_normal_(self.caping_embed, std=0.02)

    # ------------------------------------------------------------------ shared machinery
    def _levels(self, multi_scale: Sequence[Tensor]) -> List[Level]:
        """The maps flattened, with their level embedding and sine position embedding."""
        levels = []
        for i, feat in enumerate(multi_scale):
            memory = feat.flatten(2) + self.level_embed.weight[i][None, :, None]
            pos = self.position_embedding(feat).flatten(2)
            levels.append(Level(memory.permute(2, 0, 1), pos.permute(2, 0, 1), feat.shape[-2:]))
        return levels

    def _layer(self, i: int, x: Tensor, pos: Tensor, level: Level, cross_mask: Optional[Tensor],
               self_mask: Tensor, text: Optional[Tensor] = None,
               text_pos: Optional[Tensor] = None, prefix: Optional[Tensor] = None,
               prefix_pos: Optional[Tensor] = None) -> Tuple[Tensor, Optional[Tensor], Tensor]:
        """Layer ``i`` on queries ``x`` / ``pos`` (L, B, C).

        ``text`` (T, B, C) joins self-attention and the FFN only (grounding phrases); ``prefix``
        rows are attended to in self-attention without being updated (captioning's latent
        queries). Returns the new ``x``, the new ``text`` and ``x`` after cross-attention.
        """
        x = self.transformer_cross_attention_layers[i](x, level.memory, cross_mask, level.pos,
                                                       pos)
        crossed, num_visual = x, x.shape[0]
        if text is not None:
            x, pos = torch.cat([x, text]), torch.cat([pos, text_pos])
        x = self.transformer_self_attention_layers[i](x, self_mask, pos, prefix, prefix_pos)
        x = self.transformer_ffn_layers[i](x)
        if text is not None:
            x, text = x[:num_visual], x[num_visual:]
        return x, text, crossed

    def _predict(self, x: Tensor, mask_features: Tensor, level_features: Tensor,
                 full_size: bool) -> Tuple[DecoderOutput, Tensor]:
        """Prediction heads on the decoder state ``x`` (L, B, C), and the additive cross-attention
        mask ``[B * heads, L, h * w]`` (-inf = blocked, else 0) the masks imply for the next
        layer.

        Args:
            mask_features: ``[B, C, H/4, W/4]``.
            level_features: ``mask_features`` resized to the next layer's level ``[B, C, h, w]``
                (:func:`resize_features`), which the attention mask is computed at.
            full_size: whether the prediction's masks are ``[B, L, H/4, W/4]`` logits (else the
                level-size ones the attention mask comes from).

        The global query's output is replaced by a similarity-weighted mean of the object
        queries' outputs before any head reads it.
        """
        states = self.decoder_norm(x).transpose(0, 1)
        q = self.num_queries
        objects, global_query = states[:, :q - 1], states[:, q - 1:q]
        weights = (l2_normalize(global_query) @ l2_normalize(objects).transpose(1, 2)).softmax(-1)
        visual = torch.cat([objects, weights @ objects, states[:, q:]], dim=1)
        class_embeds = visual @ self.class_embed
        mask_embeds = self.mask_embed(visual)
        level_logits = level_mask_logits(mask_embeds, level_features)
        mask_logits = level_logits
        if full_size:
            mask_logits = torch.einsum('bqc,bchw->bqhw', mask_embeds, mask_features)

        blocked = blocked_pixels(level_logits.detach())
        # The released model unmasks the row right after the latent queries (the first grounding
        # query); reproduced because the weights were trained with it.
        blocked[:, q:q + 1] = False
        # Additive (-inf) mask made once per image and shared by the heads as a stride-0 view
        # (a view when B = 1): a per-head bool copy, which nn.MultiheadAttention turns into
        # floats, took 61 ms of a 0.53 s decoder pass at 640x960 (measured).
        b, length, pixels = blocked.shape
        attn = torch.zeros(blocked.shape, dtype=x.dtype, device=x.device).masked_fill_(
            unmask_empty_rows(blocked), float('-inf'))
        attn = attn[:, None].expand(b, self.num_heads, length, pixels).flatten(0, 1)
        grounding = (class_embeds[:, q:], mask_logits[:, q:]) if x.shape[0] > q else (None, None)
        return DecoderOutput(class_embeds[:, :q], mask_logits[:, :q], *grounding), attn

    def _decode(self, mask_features: Tensor, multi_scale: Sequence[Tensor], x: Tensor,
                pos: Tensor, self_mask: Tensor, text: Optional[Tensor] = None,
                text_pos: Optional[Tensor] = None) -> Tuple[List[DecoderOutput], List[Tensor]]:
        """All layers on queries ``x`` / ``pos`` (L, B, C): every prediction, and each layer's
        state after cross-attention (which captioning's queries attend to).

        Full-size masks are computed for every prediction in training (deep supervision), else
        for the last one only (see :class:`DecoderOutput`)."""
        levels = self._levels(multi_scale)
        level_features = [resize_features(mask_features, level.size) for level in levels]
        num_predictions = self.num_layers + 1
        predictions, crossed_states, attn = [], [], None
        for i in range(num_predictions):
            if i > 0:
                x, text, crossed = self._layer(i - 1, x, pos, levels[(i - 1) % self.num_levels],
                                               attn, self_mask, text, text_pos)
                crossed_states.append(crossed)
            full_size = self.training or i == num_predictions - 1
            pred, attn = self._predict(x, mask_features, level_features[i % self.num_levels],
                                       full_size)
            predictions.append(pred)
        return predictions, crossed_states

    def _latent_queries(self, batch_size: int, extra: int = 0):
        """Content and position of the latent queries followed by ``extra`` object-query copies."""
        feat, embed = self.query_feat.weight, self.query_embed.weight
        if extra:
            feat, embed = torch.cat([feat, feat[:extra]]), torch.cat([embed, embed[:extra]])
        return (feat[:, None].repeat(1, batch_size, 1), embed[:, None].repeat(1, batch_size, 1))

    # ------------------------------------------------------------------ the three modes
    def forward(self, mask_features: Tensor,
                multi_scale: Sequence[Tensor]) -> List[DecoderOutput]:
        """Generic mode: the ``num_queries`` latent queries."""
        x, pos = self._latent_queries(mask_features.shape[0])
        q = self.num_queries
        return self._decode(mask_features, multi_scale, x, pos, self.self_attn_mask[0, :q, :q])[0]

    def forward_grounding(self, mask_features: Tensor, multi_scale: Sequence[Tensor],
                          token_feats: Tensor,
                          token_padding: Optional[Tensor] = None) -> List[DecoderOutput]:
        """Grounding mode: ``token_feats`` (T, B, C) are the valid tokens of all phrases of each
        image, concatenated; ``token_padding [B, T]`` (True = padding) marks the positions that
        pad shorter images to ``T`` when a batch is grounded together (training). The object
        queries are duplicated as grounding queries, which together with the tokens form a group
        that the generic queries cannot see (and vice versa); their outputs are
        ``grounding_embeds`` / ``grounding_masks``, and the generic queries' outputs are those
        of :meth:`forward`."""
        q = self.num_queries
        x, pos = self._latent_queries(mask_features.shape[0], extra=q - 1)
        size = x.shape[0] + token_feats.shape[0]
        self_mask = torch.ones(size, size, dtype=torch.bool, device=x.device)
        self_mask[:q, :q] = self.self_attn_mask[0, :q, :q]
        self_mask[q:, q:] = False
        if token_padding is not None:
            # Nothing attends to padding (the official code lets zero-padded tokens be keys).
            blocked = torch.zeros(token_padding.shape[0], size, dtype=torch.bool,
                                  device=x.device)
            blocked[:, x.shape[0]:] = token_padding
            self_mask = (self_mask[None] | blocked[:, None]).repeat_interleave(self.num_heads, 0)
        return self._decode(mask_features, multi_scale, x, pos, self_mask,
                            text=token_feats.detach(), text_pos=token_feats)[0]

    def forward_caption_teacher(self, mask_features: Tensor, multi_scale: Sequence[Tensor],
                                token_feats: Tensor) -> Tuple[List[DecoderOutput], List[Tensor]]:
        """Captioning with teacher forcing (training): every position of the given captions at
        once.

        ``token_feats [B, L, C]``: the captions' text-encoder token features
        (``TextEncoder.token_features``). Returns the generic predictions (their global query
        serves retrieval) and, per prediction, the caption queries' features ``[B, L,
        dim_proj]`` (``decoder_norm`` then ``caping_embed``); position ``t`` scored against the
        token table predicts token ``t + 1``. As in the official training, the queries' content
        is the detached token features and their position embedding keeps the gradient.
        """
        b, q = mask_features.shape[0], self.num_queries
        latent, latent_pos = self._latent_queries(b)
        predictions, latent_states = self._decode(mask_features, multi_scale, latent, latent_pos,
                                                  self.self_attn_mask[0, :q, :q])
        length = token_feats.shape[1]
        tokens = token_feats.transpose(0, 1)
        states = self._caption_layers(tokens.detach(),
                                      tokens + self.pos_embed_caping.weight[:length, None],
                                      self._levels(multi_scale), latent_states, latent_pos)
        features = [self.decoder_norm(s).transpose(0, 1) @ self.caping_embed
                    for s in [tokens.detach()] + states]
        return predictions, features

    def _caption_layers(self, x: Tensor, pos: Tensor, levels: Sequence[Level],
                        latent_states: Sequence[Tensor], latent_pos: Tensor,
                        outside_region: Optional[Sequence[Optional[Tensor]]] = None
                        ) -> List[Tensor]:
        """Caption queries ``x`` / ``pos`` (L, B, C) through every layer; returns the state after
        each. They self-attend causally to each other and to each layer's latent states
        (``prefix``); ``outside_region`` (per level, [B, h * w] True = blocked) restricts their
        cross-attention, else they see every pixel."""
        length = x.shape[0]
        q = self.num_queries
        self_mask = self.self_attn_mask[0, q:q + length, :q + length]
        states = []
        for i in range(self.num_layers):
            cross_mask = None if outside_region is None else outside_region[i % self.num_levels]
            if cross_mask is not None:  # [B * heads, length, h * w]
                cross_mask = unmask_empty_rows(cross_mask[:, None, None].expand(
                    -1, self.num_heads, length, -1).flatten(0, 1))
            x = self._layer(i, x, pos, levels[i % self.num_levels], cross_mask, self_mask,
                            prefix=latent_states[i], prefix_pos=latent_pos)[0]
            states.append(x)
        return states

    def forward_caption(self, mask_features: Tensor, multi_scale: Sequence[Tensor],
                        token_features: Callable[[Tensor], Tensor], token_embedding: Tensor,
                        start_id: int, num_steps: int = 50,
                        region_mask: Optional[Tensor] = None) -> Tensor:
        """Greedy captioning; returns the token buffer ``[B, context_length]``.

        Args:
            token_features: maps token ids ``[B, L]`` to projected, un-normalised text-encoder
                token features ``[B, L, C]`` (``TextEncoder.token_features``).
            token_embedding: the text encoder's token table ``[vocab, C]`` (tied output layer).
            start_id: the start-of-text id that fills the buffer initially.
            region_mask: optional ``[B, H, W]`` bool, True inside the region the caption is
                about; caption queries then cross-attend only inside it.

        Caption positions after ``s`` never influence position ``s`` (causal text encoder,
        causal caption self-attention, latent queries blind to caption queries), so step ``s``
        runs on the first ``s + 1`` positions only: exact, and much cheaper than all 77.
        """
        b, q = mask_features.shape[0], self.num_queries
        tokens = torch.full((b, self.context_length), start_id, dtype=torch.long,
                            device=mask_features.device)
        # Latent queries never see caption queries, so their states are the same at every step:
        # decode them once and keep each layer's post-cross-attention state, which caption
        # queries attend to in that layer's self-attention.
        latent, latent_pos = self._latent_queries(b)
        latent_states = self._decode(mask_features, multi_scale, latent, latent_pos,
                                     self.self_attn_mask[0, :q, :q])[1]
        levels = self._levels(multi_scale)
        outside_region = self._region_cross_masks(region_mask, levels)
        for step in range(min(num_steps, self.context_length - 1)):
            length = step + 1
            x = token_features(tokens[:, :length]).transpose(0, 1)
            x = self._caption_layers(x, x + self.pos_embed_caping.weight[:length, None], levels,
                                     latent_states, latent_pos, outside_region)[-1]
            tokens[:, step + 1] = caption_logits(self.decoder_norm(x[step]), self.caping_embed,
                                                 token_embedding).argmax(-1)
        return tokens

    @staticmethod
    def _region_cross_masks(region_mask: Optional[Tensor],
                            levels: Sequence[Level]) -> List[Optional[Tensor]]:
        """Per level, [B, h * w] True outside the caption region (None: no region)."""
        if region_mask is None:
            return [None] * len(levels)
        return [F.interpolate(region_mask[:, None].float(), size=level.size,
                              mode='nearest').flatten(1) < 0.5 for level in levels]
