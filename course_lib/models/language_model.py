"""A decoder-only (GPT-style) language model: predict each next token from the ones before it.

Lesson 07-08. ids ``(batch, time)`` -> logits ``(batch, time, vocab)``; position t sees tokens 0..t only.
Lesson 08 also trains two broken variants, chosen with ``mask``: ``"all"`` (no causal mask: every position
sees the whole sentence, so it can copy the next word) and ``"self"`` (each position sees only itself: no
information moves between positions).
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib.validation import require_int, require_number, require_token_ids
from course_lib.models.attention import causal_mask
from course_lib.models.block import TransformerStack, init_weights
from course_lib.models.positions import LearnedPositions, SinusoidalPositions


class TransformerLM(nn.Module):
    """Token embedding + positions -> ``n_layers`` causal blocks -> logits over the vocabulary.

    ``forward(ids, return_attention=False)``: ids ``(batch, time)`` long, time <= max_len.
    Returns logits ``(batch, time, vocab)``, or ``(logits, [per-layer (batch, heads, query, key)])``
    with the same logits when ``return_attention=True``.

    ``mask`` says which positions each position may attend to: ``"causal"`` (itself and the ones before
    it: a language model), ``"all"`` (every position, later ones too: the classic bug, which lets training
    copy the next word), ``"self"`` (only itself: no information moves between positions).
    """

    MASKS = ("causal", "all", "self")

    def __init__(self, vocab_size: int, d_model: int, n_heads: int, n_layers: int, max_len: int,
                 d_ff: int | None = None, dropout: float = 0.0, positions: str = "learned", mask: str = "causal"):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("d_model", d_model), ("max_len", max_len)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if positions not in ("learned", "sinusoidal"):
            raise ValueError(f'positions must be "learned" or "sinusoidal", got {positions!r}')
        if mask not in self.MASKS:
            raise ValueError(f'mask must be "causal", "all" or "self", got {mask!r}')
        self.vocab_size, self.max_len, self.mask = vocab_size, max_len, mask
        self.embed = nn.Embedding(vocab_size, d_model)
        self.positions = (LearnedPositions if positions == "learned" else SinusoidalPositions)(max_len, d_model)
        self.drop = nn.Dropout(dropout)
        self.stack = TransformerStack(d_model, n_heads, n_layers, d_ff, dropout)
        self.head = nn.Linear(d_model, vocab_size)
        self.apply(init_weights)

    @property
    def blocks(self) -> nn.ModuleList:
        return self.stack.blocks

    def forward(self, ids: torch.Tensor, return_attention: bool = False):
        ids = require_token_ids(ids, "ids", self.vocab_size, self.max_len)
        x = self.drop(self.positions(self.embed(ids)))  # (B, T, d_model)
        mask = self.attention_mask(ids.shape[1], ids.device)
        if return_attention:
            x, attention = self.stack(x, mask, return_attention=True)
            return self.head(x), attention
        return self.head(self.stack(x, mask))

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
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Extend ids ``(batch, time)`` by ``new_tokens`` (an int >= 0).

        Temperature 0 picks the likeliest token; a temperature > 0 samples from ``softmax(logits /
        temperature)``, reproducibly with a seeded ``generator``.
        """
        ids = require_token_ids(ids, "ids", self.vocab_size)
        new_tokens = require_int(new_tokens, "new_tokens", minimum=0)
        temperature = require_number(temperature, "temperature", minimum=0)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        for _ in range(new_tokens):
            logits = self(ids[:, -self.max_len:])[:, -1]  # (B, vocab)
            if temperature <= 0:
                next_id = logits.argmax(-1, keepdim=True)
            else:
                next_id = torch.multinomial((logits / temperature).softmax(-1), 1, generator=generator)
            ids = torch.cat([ids, next_id], dim=1)
        return ids
