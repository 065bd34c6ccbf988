"""The small models and the optimizer that lesson 08's ``train_step`` check hands to an answer.

They live here, not in ``course_lib.checks``: a graded answer runs in a process that never loads the checks,
and it must still be able to rebuild the check's model and optimizer from their pickles.
"""

from __future__ import annotations

import torch
from torch import nn


class CausalAverage(nn.Module):
    """A tiny causal language model: each position adds the mean of the embeddings up to it to its own, then
    maps to scores, ids (batch, time) -> (batch, time, vocab). No attention module: its first call costs nothing."""

    def __init__(self, vocab: int, width: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.out = nn.Linear(width, vocab)

    def forward(self, ids):
        x = self.embed(ids)  # (batch, time, width)
        so_far = x.cumsum(dim=1) / torch.arange(1, ids.shape[1] + 1, device=ids.device)[:, None]
        return self.out(torch.tanh(x + so_far))


class PositionWise(nn.Module):
    """A tiny language model without attention: embedding -> linear, ids (batch, time) -> (batch, time, vocab)."""

    def __init__(self, vocab: int, width: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.out = nn.Linear(width, vocab)

    def forward(self, ids):
        return self.out(torch.tanh(self.embed(ids)))


class SGD:
    """Stochastic gradient descent, with optional momentum, as ``torch.optim.SGD`` computes it, with its
    ``zero_grad()`` and ``step()``. Not torch.optim's own: the first torch optimizer of a session imports part of
    PyTorch (torch._dynamo), seconds on a busy machine, and a check's time limit must not cut that import short."""

    def __init__(self, params, lr: float, momentum: float = 0.0):
        self.params = list(params)
        self.lr, self.momentum = lr, momentum
        self.velocity = [None] * len(self.params)
        self.param_groups = [{"params": self.params, "lr": lr, "momentum": momentum}]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self, closure=None):
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            direction = p.grad
            if self.momentum:
                previous = self.velocity[i]
                direction = p.grad.clone() if previous is None else previous.mul_(self.momentum).add_(p.grad)
                self.velocity[i] = direction
            p.add_(direction, alpha=-self.lr)

    def __repr__(self) -> str:
        return f"SGD(lr={self.lr:g}, momentum={self.momentum:g})"
