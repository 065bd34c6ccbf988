"""A decoder-only (GPT-style) language model: predict each next token from the ones before it.

Lesson 07-08. ids ``(batch, time)`` -> logits ``(batch, time, vocab)``; position t sees tokens 0..t only.
Lesson 08 also trains two broken variants, chosen with ``mask``: ``"all"`` (no causal mask: every position
sees the whole sentence, so it can copy the next word) and ``"self"`` (each position sees only itself: no
information moves between positions).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from course_lib.models.attention import causal_mask
from course_lib.models.block import TransformerConfig, TransformerStack, init_weights
from course_lib.models.positions import LearnedPositions, SinusoidalPositions
from course_lib.validation import (config_from, require_choice, require_int, require_number, require_token_ids,
                                   settings_signature)

POSITIONS = ("learned", "sinusoidal")
MASKS = ("causal", "all", "self")


@dataclass
class LMConfig:
    """The settings of a ``TransformerLM``, checked when made (a TypeError for the wrong kind of value, a
    ValueError for one out of range or not among the choices)."""

    vocab_size: int  # tokens the model reads and predicts
    d_model: int
    n_heads: int
    n_layers: int
    max_len: int  # the longest input, in tokens
    d_ff: int | None = None  # the MLP's hidden width; None: 4 * d_model
    dropout: float = 0.0
    positions: str = "learned"  # or "sinusoidal" (lesson 06)
    mask: str = "causal"  # or "all" or "self": lesson 08's broken variants
    mlp: bool = True  # False: attention-only blocks (lesson 14)

    def __post_init__(self):
        self.vocab_size = require_int(self.vocab_size, "vocab_size", minimum=1)
        blocks = self.transformer()  # the blocks' own checks, the same at every level
        self.d_model, self.n_heads, self.n_layers, self.d_ff, self.dropout, self.mlp = (
            blocks.d_model, blocks.n_heads, blocks.n_layers, blocks.d_ff, blocks.dropout, blocks.mlp)
        self.max_len = require_int(self.max_len, "max_len", minimum=1)
        self.positions = require_choice(self.positions, "positions", POSITIONS)
        self.mask = require_choice(self.mask, "mask", MASKS)

    def transformer(self) -> TransformerConfig:
        """The settings of the model's ``TransformerStack``."""
        return TransformerConfig(self.d_model, self.n_heads, self.n_layers, self.d_ff, self.dropout, mlp=self.mlp)


class TransformerLM(nn.Module):
    """Token embedding + positions -> ``n_layers`` causal blocks -> logits over the vocabulary.

    ``TransformerLM(config)`` or ``TransformerLM(vocab_size, d_model, n_heads, n_layers, max_len, d_ff=None,
    dropout=0.0, positions="learned", mask="causal", mlp=True)``: see ``LMConfig``.

    ``forward(ids, return_attention=False)``: ids ``(batch, time)`` long, time <= max_len.
    Returns logits ``(batch, time, vocab)``, or ``(logits, [per-layer (batch, heads, query, key)])``
    with the same logits when ``return_attention=True``.

    ``mask`` says which positions each position may attend to: ``"causal"`` (itself and the ones before
    it: a language model), ``"all"`` (every position, later ones too: the classic bug, which lets training
    copy the next word), ``"self"`` (only itself: no information moves between positions).
    """

    MASKS = MASKS

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.config = config = config_from(LMConfig, args, kwargs)
        self.vocab_size, self.max_len, self.mask = config.vocab_size, config.max_len, config.mask
        # The order below is the order of the random initial weights: keep it, or seeded runs change.
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        positions = LearnedPositions if config.positions == "learned" else SinusoidalPositions
        self.positions = positions(config.max_len, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.stack = TransformerStack(config.transformer())
        self.head = nn.Linear(config.d_model, config.vocab_size)
        self.apply(init_weights)

    @property
    def blocks(self) -> nn.ModuleList:
        return self.stack.blocks

    def forward(self, ids: torch.Tensor, return_attention: bool = False):
        ids = require_token_ids(ids, "ids", self.vocab_size, self.max_len)  # (B, T) long: the one check
        # x and the mask are built here, right by construction: the layers below need not check them
        x = self.drop(self.positions(self.embed(ids), check=False))  # (B, T, d_model)
        mask = self.attention_mask(ids.shape[1], ids.device)  # (T, T), or None for "all"
        if return_attention:
            x, attention = self.stack(x, mask, return_attention=True, check=False)
            return self.head(x), attention  # (B, T, vocab), [(B, H, T, T)] * n_layers
        return self.head(self.stack(x, mask, check=False))  # (B, T, vocab)

    def attention_mask(self, time: int, device: torch.device | str | None = None) -> torch.Tensor | None:
        """The bool ``(time, time)`` mask of this model's ``mask`` mode (True = may attend); None for "all"."""
        if self.mask == "causal":
            return causal_mask(time, device=device)
        if self.mask == "self":
            return torch.eye(time, dtype=torch.bool, device=device)
        return None

    def extra_repr(self) -> str:
        return "" if self.mask == "causal" else f"mask={self.mask!r}"

    @torch.no_grad()
    def generate(self, ids: torch.Tensor, new_tokens: int, temperature: float = 0.0,
                 generator: torch.Generator | None = None, k: int | None = None) -> torch.Tensor:
        """Extend ids ``(batch, time)`` by ``new_tokens`` (an int >= 0), each chosen by ``top_k_sample``.

        Temperature 0 picks the likeliest token; a temperature > 0 samples from ``softmax(logits /
        temperature)`` over the ``k`` likeliest tokens (all of them when ``k`` is None), reproducibly with a
        seeded ``generator``. Each new token reads the whole text again (its last ``max_len`` tokens); lesson 13's
        ``course_lib.experiments.generation.generate`` adds a key-value cache.
        """
        ids = require_token_ids(ids, "ids", self.vocab_size)
        new_tokens = require_int(new_tokens, "new_tokens", minimum=0)
        temperature, k = _sampling_settings(temperature, k, generator, self.vocab_size)
        for _ in range(new_tokens):
            logits = self(ids[:, -self.max_len:])[:, -1]  # (B, vocab)
            ids = torch.cat([ids, _choose(logits, k, temperature, generator)[:, None]], dim=1)
        return ids


def _sampling_settings(temperature, k, generator, vocab_size: int) -> tuple[float, int | None]:
    """``temperature`` and ``k`` checked (a TypeError or ValueError naming the bad one), and ``generator``."""
    temperature = require_number(temperature, "temperature", minimum=0)
    if k is not None:
        k = require_int(k, "k", minimum=1)
        if k > vocab_size:
            raise ValueError(f"k must be at most the vocabulary's size, {vocab_size}, got {k}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return temperature, k


def _choose(logits: torch.Tensor, k: int | None, temperature: float, generator) -> torch.Tensor:
    """``top_k_sample`` without its checks: logits ``(batch, vocab)`` -> ids ``(batch,)``."""
    if temperature == 0:
        return logits.argmax(dim=-1)  # (B,)
    if k is not None:
        kth_largest = logits.topk(k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))  # the rest get probability 0
    probabilities = (logits / temperature).softmax(dim=-1)  # (B, vocab)
    return torch.multinomial(probabilities, 1, generator=generator).squeeze(-1)  # (B,)


def top_k_sample(logits: torch.Tensor, k: int | None = None, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """The next token for each row of ``logits`` ``(batch, vocab)``: ``(batch,)`` long. Lesson 13.

    Temperature 0 picks the likeliest token (greedy). Otherwise keep the ``k`` largest logits of each row (all of
    them when ``k`` is None), divide by ``temperature`` and draw from their softmax with ``generator``.
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or not logits.is_floating_point():
        raise ValueError("logits must be a float tensor of shape (batch, vocab)")
    temperature, k = _sampling_settings(temperature, k, generator, logits.shape[-1])
    return _choose(logits, k, temperature, generator)


TransformerLM.__signature__ = settings_signature(LMConfig)  # help() shows the settings, not *args
