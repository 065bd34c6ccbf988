"""An encoder classifier: every token looks at every other (no causal mask), then one vector per
sequence is pooled and classified. Lesson 12: the pooled vectors are what other parts of a system use.

ids ``(batch, time)`` -> class logits ``(batch, n_classes)``; ``ClassifierConfig`` holds the settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from course_lib.models.block import TransformerConfig, TransformerStack, init_weights
from course_lib.models.positions import LearnedPositions
from course_lib.validation import config_from, require_choice, require_int, require_token_ids, settings_signature

POOLINGS = ("mean", "cls")


@dataclass
class ClassifierConfig:
    """The settings of a ``TransformerClassifier``, checked when made (a TypeError for the wrong kind of value,
    a ValueError for one out of range or not among the choices)."""

    vocab_size: int
    n_classes: int
    d_model: int
    n_heads: int
    n_layers: int
    max_len: int  # the longest input, in tokens (a "cls" vector comes on top)
    pad_id: int = 0  # the padding token: masked out, and left out of the mean
    pooling: str = "mean"  # or "cls": prepend a learned vector and read it out
    dropout: float = 0.0

    def __post_init__(self):
        self.vocab_size = require_int(self.vocab_size, "vocab_size", minimum=1)
        self.n_classes = require_int(self.n_classes, "n_classes", minimum=1)
        blocks = self.transformer()  # the blocks' own checks, the same at every level
        self.d_model, self.n_heads, self.n_layers, self.dropout = (
            blocks.d_model, blocks.n_heads, blocks.n_layers, blocks.dropout)
        self.max_len = require_int(self.max_len, "max_len", minimum=1)
        self.pad_id = require_int(self.pad_id, "pad_id", minimum=0)
        if self.pad_id >= self.vocab_size:
            raise ValueError(f"pad_id must be a token id in [0, {self.vocab_size}), got {self.pad_id}")
        self.pooling = require_choice(self.pooling, "pooling", POOLINGS)

    def transformer(self) -> TransformerConfig:
        """The settings of the model's ``TransformerStack`` (its MLP 4 x d_model wide)."""
        return TransformerConfig(self.d_model, self.n_heads, self.n_layers, dropout=self.dropout)


def pool(x: torch.Tensor, keep: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """``(batch, time, d_model)`` -> ``(batch, d_model)``: the first position ("cls") or the mean over
    the positions where ``keep (batch, time)`` is True ("mean")."""
    if pooling == "cls":
        return x[:, 0]
    if keep is None:
        return x.mean(1)
    weights = keep.to(x.dtype)[..., None]  # (B, T, 1)
    return (x * weights).sum(1) / weights.sum(1)


class TransformerClassifier(nn.Module):
    """Token ids ``(batch, time)`` -> class logits ``(batch, n_classes)``; ``pad_id`` tokens are masked out.

    ``TransformerClassifier(config)`` or ``TransformerClassifier(vocab_size, n_classes, d_model, n_heads, n_layers,
    max_len, pad_id=0, pooling="mean", dropout=0.0)``: see ``ClassifierConfig``.

    ``pooling="mean"`` averages the real tokens; ``"cls"`` prepends a learned vector and reads it out.
    ``encode(ids)`` gives the pooled vector ``(batch, d_model)``; ``forward(ids, return_attention=True)``
    also returns per-layer weights ``(batch, heads, query, key)``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.config = config = config_from(ClassifierConfig, args, kwargs)
        self.vocab_size, self.max_len, self.pad_id, self.pooling = (config.vocab_size, config.max_len, config.pad_id,
                                                                    config.pooling)
        # The order below is the order of the random initial weights: keep it, or seeded runs change.
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, config.d_model)) if config.pooling == "cls" else None
        self.positions = LearnedPositions(config.max_len + (config.pooling == "cls"), config.d_model)
        self.stack = TransformerStack(config.transformer())
        self.head = nn.Linear(config.d_model, config.n_classes)
        self.apply(init_weights)

    def _run(self, ids: torch.Tensor, return_attention: bool):
        ids = require_token_ids(ids, "ids", self.vocab_size, self.max_len)  # (B, T) long
        keep = ids != self.pad_id  # (B, T): True at real tokens
        if self.cls is None and not keep.any(dim=1).all():  # checked once here, not in every layer
            raise ValueError(f"ids holds a sequence of padding only (pad_id={self.pad_id}): with mean pooling "
                             f"there is nothing to attend to or to average")
        x = self.embed(ids)  # (B, T, d_model)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1)  # (B, 1 + T, d_model)
            keep = torch.cat([torch.ones_like(keep[:, :1]), keep], dim=1)  # (B, 1 + T)
        mask = keep[:, None, None, :]  # (B, 1, 1, key): nobody attends to padding
        out = self.stack(self.positions(x, check=False), mask, return_attention=return_attention, check=False)
        x, attention = out if return_attention else (out, None)
        return pool(x, keep, self.pooling), attention  # (B, d_model)

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """The pooled representation ``(batch, d_model)``."""
        return self._run(ids, False)[0]

    def forward(self, ids: torch.Tensor, return_attention: bool = False):
        pooled, attention = self._run(ids, return_attention)
        logits = self.head(pooled)  # (B, n_classes)
        return (logits, attention) if return_attention else logits


TransformerClassifier.__signature__ = settings_signature(ClassifierConfig)  # help() shows the settings, not *args
