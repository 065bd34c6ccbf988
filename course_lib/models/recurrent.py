"""A recurrent baseline: a GRU reads one token after another, each step waiting for the last.
Lesson 10 compares it with the transformer, which computes all positions at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from course_lib.validation import (config_from, require_int, require_number, require_tensor, require_token_ids,
                                   settings_signature, shape_str)


@dataclass
class GRUConfig:
    """The settings of a ``GRULanguageModel``, checked when made (a TypeError for the wrong kind of value, a
    ValueError for one out of range)."""

    vocab_size: int
    d_model: int  # the width of the token embeddings
    n_layers: int  # GRU layers, one on top of the other
    max_len: int | None = None  # the longest input, in tokens; None: any length
    hidden_size: int | None = None  # the width of the GRU's state; None: d_model

    def __post_init__(self):
        self.vocab_size = require_int(self.vocab_size, "vocab_size", minimum=1)
        self.d_model = require_int(self.d_model, "d_model", minimum=1)
        self.n_layers = require_int(self.n_layers, "n_layers", minimum=1)
        self.max_len = None if self.max_len is None else require_int(self.max_len, "max_len", minimum=1)
        self.hidden_size = (self.d_model if self.hidden_size is None
                            else require_int(self.hidden_size, "hidden_size", minimum=1))


class GRULanguageModel(nn.Module):
    """ids ``(batch, time)`` -> logits ``(batch, time, vocab)``, like ``TransformerLM`` but recurrent.

    ``GRULanguageModel(config)`` or ``GRULanguageModel(vocab_size, d_model, n_layers, max_len=None,
    hidden_size=None)``: see ``GRUConfig``.

    With the defaults, ``GRULanguageModel(V, d_model, n_layers=2 * L)`` has about as many parameters
    as a ``TransformerLM(V, d_model, ..., n_layers=L)``: a GRU layer holds ~6 d_model^2 weights, a
    transformer block ~12 d_model^2. ``hidden_size`` (default ``d_model``) sets the width of the GRU's
    state, for a model with fewer, wider layers.

    ``forward(ids, hidden=None, return_hidden=False)``: ``hidden`` ``(n_layers, batch, hidden_size)`` is the
    state after the tokens read before ``ids`` (None: a fresh start); with ``return_hidden=True`` it returns
    ``(logits, hidden)``, the state after the last token of ``ids``. Reading a sentence in two pieces,
    passing the state on, gives the same logits as reading it at once.
    """

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.config = config = config_from(GRUConfig, args, kwargs)
        self.vocab_size, self.max_len = config.vocab_size, config.max_len
        self.n_layers, self.hidden_size = config.n_layers, config.hidden_size
        # The order below is the order of the random initial weights: keep it, or seeded runs change.
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.gru = nn.GRU(config.d_model, config.hidden_size, num_layers=config.n_layers, batch_first=True)
        self.ln_f = nn.LayerNorm(config.hidden_size)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, ids: torch.Tensor, hidden: torch.Tensor | None = None, return_hidden: bool = False):
        ids = require_token_ids(ids, "ids", self.vocab_size, self.max_len)
        if hidden is not None:
            expected = (self.n_layers, ids.shape[0], self.hidden_size)
            if tuple(require_tensor(hidden, "hidden").shape) != expected:
                raise ValueError(f"hidden must have shape (n_layers, batch, hidden_size) = {expected}, "
                                 f"got {shape_str(hidden.shape)}")
        states, last = self.gru(self.embed(ids), hidden)  # (B, T, hidden): step t waits for step t-1
        logits = self.head(self.ln_f(states))  # (B, T, vocab)
        return (logits, last) if return_hidden else logits

    @torch.no_grad()
    def generate(self, ids: torch.Tensor, new_tokens: int, temperature: float = 0.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Extend ids ``(batch, time)`` by ``new_tokens``, like ``TransformerLM.generate``. The prompt is read
        once; each new token then costs one step of the GRU, whatever the length so far (the state carries
        everything read before)."""
        ids = require_token_ids(ids, "ids", self.vocab_size)
        new_tokens = require_int(new_tokens, "new_tokens", minimum=0)
        temperature = require_number(temperature, "temperature", minimum=0)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        if new_tokens == 0:
            return ids
        logits, hidden = self(ids, return_hidden=True)
        for step in range(new_tokens):
            scores = logits[:, -1]  # (B, vocab)
            if temperature <= 0:
                next_id = scores.argmax(-1, keepdim=True)
            else:
                next_id = torch.multinomial((scores / temperature).softmax(-1), 1, generator=generator)
            ids = torch.cat([ids, next_id], dim=1)
            if step + 1 < new_tokens:
                logits, hidden = self(next_id, hidden, return_hidden=True)  # one step: (B, 1) in
        return ids


GRULanguageModel.__signature__ = settings_signature(GRUConfig)  # help() shows the settings, not *args
