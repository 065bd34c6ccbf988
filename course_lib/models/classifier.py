"""An encoder classifier: every token looks at every other (no causal mask), then one vector per
sequence is pooled and classified. Lesson 12: the pooled vectors are what other parts of a system use.
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib.validation import require_token_ids
from course_lib.models.block import TransformerStack, init_weights
from course_lib.models.positions import LearnedPositions

POOLINGS = ("mean", "cls")


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

    ``pooling="mean"`` averages the real tokens; ``"cls"`` prepends a learned vector and reads it out.
    ``encode(ids)`` gives the pooled vector ``(batch, d_model)``; ``forward(ids, return_attention=True)``
    also returns per-layer weights ``(batch, heads, query, key)``.
    """

    def __init__(self, vocab_size: int, n_classes: int, d_model: int, n_heads: int, n_layers: int,
                 max_len: int, pad_id: int = 0, pooling: str = "mean", dropout: float = 0.0):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.vocab_size, self.max_len, self.pad_id, self.pooling = vocab_size, max_len, pad_id, pooling
        self.embed = nn.Embedding(vocab_size, d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model)) if pooling == "cls" else None
        self.positions = LearnedPositions(max_len + (pooling == "cls"), d_model)
        self.stack = TransformerStack(d_model, n_heads, n_layers, dropout=dropout)
        self.head = nn.Linear(d_model, n_classes)
        self.apply(init_weights)

    def _run(self, ids: torch.Tensor, return_attention: bool):
        ids = require_token_ids(ids, "ids", self.vocab_size, self.max_len)
        x = self.embed(ids)  # (B, T, d_model)
        keep = ids != self.pad_id  # (B, T)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1)
            keep = torch.cat([torch.ones_like(keep[:, :1]), keep], dim=1)
        mask = keep[:, None, None, :]  # (B, 1, 1, key): nobody attends to padding
        out = self.stack(self.positions(x), mask, return_attention=return_attention)
        x, attention = out if return_attention else (out, None)
        return pool(x, keep, self.pooling), attention

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """The pooled representation ``(batch, d_model)``."""
        return self._run(ids, False)[0]

    def forward(self, ids: torch.Tensor, return_attention: bool = False):
        pooled, attention = self._run(ids, return_attention)
        logits = self.head(pooled)
        return (logits, attention) if return_attention else logits
