"""Generating text one token at a time, and the key-value cache that makes it fast. Lesson 13.

Training reads every position of a sequence at once. Generation cannot: the next token does not exist until the
model has chosen it. So ``generate`` calls the model once per new token. Without a cache each call reads the whole
text again: the keys and values of every earlier position are computed anew, although they have not changed (a
position sees only the ones before it). With a cache each layer keeps them, and a new token costs one position's
work plus one row of attention over the cache.

- ``top_k_sample(logits, k, temperature, generator)``: choose the next token from ``(batch, vocab)`` logits.
- ``attend_with_cache(q_new, k_new, v_new, k_cache, v_cache)``: one cached attention step for all heads.
- ``generate(model, ids, new_tokens, ..., cache=True)``: extend a ``TransformerLM``'s text, with or without the
  cache; the two give the same tokens.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from course_lib.models.attention import causal_mask, merge_heads, split_heads
from course_lib.models.language_model import TransformerLM, top_k_sample  # top_k_sample: the model's own sampler
from course_lib.validation import require_int, require_token_ids

__all__ = ["attend_with_cache", "generate", "top_k_sample"]


def attend_with_cache(q_new: torch.Tensor, k_new: torch.Tensor, v_new: torch.Tensor, k_cache: torch.Tensor,
                      v_cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One new position's attention, for every head at once.

    ``q_new``, ``k_new``, ``v_new``: ``(batch, heads, 1, d_head)``, the new position's query, key and value.
    ``k_cache``, ``v_cache``: ``(batch, heads, t, d_head)``, the keys and values of the t positions before it
    (t may be 0). Returns ``(output (batch, heads, 1, d_head), k_cache, v_cache)``, the caches now ``t + 1`` long.
    No mask is needed: every cached position comes before the new one, and the new one may see itself.
    """
    k_cache = torch.cat([k_cache, k_new], dim=2)  # (B, H, t + 1, d_head): the new key joins the end
    v_cache = torch.cat([v_cache, v_new], dim=2)
    scores = q_new @ k_cache.transpose(-2, -1) / math.sqrt(q_new.shape[-1])  # (B, H, 1, t + 1)
    return scores.softmax(dim=-1) @ v_cache, k_cache, v_cache  # (B, H, 1, d_head)


def _run_with_cache(model: TransformerLM, ids: torch.Tensor, caches: list) -> torch.Tensor:
    """Run ``ids`` ``(batch, n)``, the tokens that follow the ``t`` positions already in ``caches``, through
    ``model``; append their keys and values to each layer's ``[k_cache, v_cache]`` ``(batch, heads, t, d_head)``.
    Returns the last position's logits ``(batch, vocab)``.

    The prompt comes in whole (n tokens, t = 0): one parallel pass, as in training, with the causal mask. After
    that one token at a time (n = 1), and ``attend_with_cache`` needs no mask."""
    t, n = caches[0][0].shape[2], ids.shape[1]
    x = model.embed(ids) + model.positions.table.weight[t:t + n]  # (B, n, D)
    for block, layer_cache in zip(model.blocks, caches):
        attention, h = block.attn, block.ln1(x)
        q, k, v = (split_heads(projection(h), attention.n_heads)  # each (B, H, n, d_head)
                   for projection in (attention.q_proj, attention.k_proj, attention.v_proj))
        if n == 1:
            heads, *layer_cache[:] = attend_with_cache(q, k, v, *layer_cache)  # (B, H, 1, d_head)
        else:
            layer_cache[:] = [k, v]
            heads = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(n))  # (B, H, n, d_head)
        x = x + attention.out_proj(merge_heads(heads))  # (B, n, D)
        if block.mlp is not None:  # an attention-only model (lesson 14) has none
            x = x + block.mlp(block.ln2(x))
    return model.head(model.stack.ln_f(x[:, -1]))  # (B, vocab)


@torch.no_grad()
def generate(model: TransformerLM, ids: torch.Tensor, new_tokens: int, temperature: float = 1.0, k: int | None = None,
             generator: torch.Generator | None = None, cache: bool = True) -> torch.Tensor:
    """``ids`` ``(batch, time)`` extended by ``new_tokens`` tokens chosen with ``top_k_sample``.

    ``cache=False`` runs the whole text (its last ``max_len`` tokens) through the model for every new token:
    ``TransformerLM.generate``.
    ``cache=True`` keeps each layer's keys and values and runs only the new token; once the text is longer than
    the model's context (``max_len``), the window slides, every position changes place, and each new token
    reads the window again as without the cache. Both give the same tokens.
    """
    if not isinstance(model, TransformerLM):
        raise TypeError(f"model must be a course_lib TransformerLM, got {type(model).__name__}")
    if model.mask != "causal" or not hasattr(model.positions, "table"):
        raise ValueError("generate needs a causal TransformerLM with learned positions")
    ids = require_token_ids(ids, "ids", model.vocab_size)
    if ids.shape[1] == 0:
        raise ValueError("ids needs at least one token to start from, got shape (batch, 0)")
    new_tokens = require_int(new_tokens, "new_tokens", minimum=0)
    was_training = model.training
    model.eval()
    caches = None  # one [k_cache, v_cache] per layer, once the prompt has run
    try:
        if not cache:
            return model.generate(ids, new_tokens, temperature, generator, k=k)
        for _ in range(new_tokens):
            if ids.shape[1] <= model.max_len:
                if caches is None:  # the prompt, all at once, fills the caches
                    attention = model.blocks[0].attn
                    empty = model.embed.weight.new_zeros((ids.shape[0], attention.n_heads, 0, attention.d_head))
                    caches = [[empty, empty] for _ in model.blocks]
                    logits = _run_with_cache(model, ids, caches)
                else:  # then only the token chosen last
                    logits = _run_with_cache(model, ids[:, -1:], caches)
            else:  # past the context the window slides: every position changes place, the cache is of no use
                logits = model(ids[:, -model.max_len:])[:, -1]  # (B, vocab)
            ids = torch.cat([ids, top_k_sample(logits, k, temperature, generator)[:, None]], dim=1)
    finally:
        model.train(was_training)
    return ids
