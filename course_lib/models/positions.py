"""Positions: attention alone cannot tell word order, so each position adds a vector of its own.

Lesson 06. Both modules take x ``(batch, time, d_model)`` and return x plus one vector per position.
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib.validation import require_int, require_number, require_rank, shape_str


def sinusoidal_positions(T: int, d: int, base: float = 10000.0) -> torch.Tensor:
    """The fixed encodings of Vaswani et al. (2017): ``(T, d)``.

    Feature pair (2i, 2i+1) at position t holds sin(t / base^(2i/d)) and cos(t / base^(2i/d)):
    sin at even feature indices, cos at odd ones.
    """
    T, d = require_int(T, "T"), require_int(d, "d")
    if T < 1 or d < 2 or d % 2:
        raise ValueError(f"sinusoidal_positions needs T >= 1 and an even d >= 2, got T={T!r}, d={d!r}")
    base = require_number(base, "base", above=0)
    position = torch.arange(T, dtype=torch.float32)[:, None]  # (T, 1)
    frequency = base ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)  # (d/2,)
    angle = position * frequency  # (T, d/2)
    encoding = torch.zeros(T, d)
    encoding[:, 0::2] = torch.sin(angle)
    encoding[:, 1::2] = torch.cos(angle)
    return encoding


def check_positions_input(x, max_len: int, d_model: int) -> None:
    """Raise a clear error unless x is ``(batch, time <= max_len, d_model)``."""
    require_rank(x, "x", 3, "(batch, time, d_model)", max_rank=3)
    if x.shape[1] > max_len or x.shape[2] != d_model:
        raise ValueError(f"x must have shape (batch, time <= {max_len}, d_model={d_model}), got {shape_str(x.shape)}")


class SinusoidalPositions(nn.Module):
    """Adds ``sinusoidal_positions`` to x ``(batch, time, d_model)``; nothing to learn.

    ``check=False`` skips the check of x: for a model that built x itself.
    """

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.max_len = require_int(max_len, "max_len", minimum=1)
        self.register_buffer("encoding", sinusoidal_positions(self.max_len, d_model), persistent=False)  # (max_len, d)

    def forward(self, x: torch.Tensor, *, check: bool = True) -> torch.Tensor:
        if check:
            check_positions_input(x, self.max_len, self.encoding.shape[1])
        return x + self.encoding[: x.shape[1]]  # (B, T, d) + (T, d)


class LearnedPositions(nn.Module):
    """Adds a learned vector per position to x ``(batch, time, d_model)``: a lookup table, like embeddings.

    ``check=False`` skips the check of x: for a model that built x itself.
    """

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.max_len = require_int(max_len, "max_len", minimum=1)
        self.table = nn.Embedding(self.max_len, require_int(d_model, "d_model", minimum=1))  # (max_len, d_model)
        nn.init.normal_(self.table.weight, std=0.02)

    def forward(self, x: torch.Tensor, *, check: bool = True) -> torch.Tensor:
        if check:
            check_positions_input(x, self.max_len, self.table.embedding_dim)
        return x + self.table.weight[: x.shape[1]]  # (B, T, d) + (T, d)
