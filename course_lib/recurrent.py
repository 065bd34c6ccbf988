"""A recurrent baseline: a GRU reads one token after another, each step waiting for the last.
Lesson 10 compares it with the transformer, which computes all positions at once.
"""

from __future__ import annotations

import torch
from torch import nn

from .validation import require_token_ids


class GRULanguageModel(nn.Module):
    """ids ``(batch, time)`` -> logits ``(batch, time, vocab)``, like ``TransformerLM`` but recurrent.

    With the defaults, ``GRULanguageModel(V, d_model, n_layers=2 * L)`` has about as many parameters
    as a ``TransformerLM(V, d_model, ..., n_layers=L)``: a GRU layer holds ~6 d_model^2 weights, a
    transformer block ~12 d_model^2.
    """

    def __init__(self, vocab_size: int, d_model: int, n_layers: int, max_len: int | None = None):
        super().__init__()
        self.vocab_size, self.max_len = vocab_size, max_len
        self.embed = nn.Embedding(vocab_size, d_model)
        self.gru = nn.GRU(d_model, d_model, num_layers=n_layers, batch_first=True)
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = require_token_ids(ids, "ids", self.vocab_size, self.max_len)
        hidden, _ = self.gru(self.embed(ids))  # (B, T, d_model): step t waits for step t-1
        return self.head(self.ln_f(hidden))
