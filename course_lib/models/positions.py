"""Positions: attention alone cannot tell word order, so each position adds a vector of its own.

Lesson 06.
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib.validation import require_rank, shape_str


def sinusoidal_positions(T: int, d: int, base: float = 10000.0) -> torch.Tensor:
    """The fixed encodings of Vaswani et al. (2017): ``(T, d)``.

    Feature pair (2i, 2i+1) at position t holds sin(t / base^(2i/d)) and cos(t / base^(2i/d)):
    sin at even feature indices, cos at odd ones.
    """
    if not isinstance(T, int) or not isinstance(d, int) or T < 1 or d < 2 or d % 2:
        raise ValueError(f"sinusoidal_positions needs T >= 1 and an even d >= 2, got T={T!r}, d={d!r}")
    position = torch.arange(T, dtype=torch.float32)[:, None]  # (T, 1)
    frequency = base ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)  # (d/2,)
    angle = position * frequency  # (T, d/2)
    encoding = torch.zeros(T, d)
    encoding[:, 0::2] = torch.sin(angle)
    encoding[:, 1::2] = torch.cos(angle)
    return encoding


class SinusoidalPositions(nn.Module):
    """Adds ``sinusoidal_positions`` to x ``(batch, time, d_model)``; nothing to learn."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.max_len = max_len
        self.register_buffer("encoding", sinusoidal_positions(max_len, d_model), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        require_rank(x, "x", 3, "(batch, time, d_model)", max_rank=3)
        if x.shape[1] > self.max_len or x.shape[2] != self.encoding.shape[1]:
            raise ValueError(f"x must have shape (batch, time <= {self.max_len}, d_model={self.encoding.shape[1]}), "
                             f"got {shape_str(x.shape)}")
        return x + self.encoding[: x.shape[1]]


class LearnedPositions(nn.Module):
    """Adds a learned vector per position to x ``(batch, time, d_model)``: a lookup table, like embeddings."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.max_len = max_len
        self.table = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.table.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        require_rank(x, "x", 3, "(batch, time, d_model)", max_rank=3)
        if x.shape[1] > self.max_len or x.shape[2] != self.table.embedding_dim:
            raise ValueError(f"x must have shape (batch, time <= {self.max_len}, "
                             f"d_model={self.table.embedding_dim}), got {shape_str(x.shape)}")
        return x + self.table.weight[: x.shape[1]]
