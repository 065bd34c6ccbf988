"""Learning = changing the connections so that a loss goes down. Lessons 02 and 08.

``fit`` is the one training loop of the course: it works for every course model, because you pass
it how to make a batch and how to compute the loss on one.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from course_lib.validation import require_int, require_number


def seed_everything(seed: int = 0) -> None:
    """Seed Python's ``random``, NumPy and PyTorch, so that a run repeats exactly on the same machine with the
    same thread count (``course_lib.threads``: another count adds floats in another order).

    What it cannot seed: the order of a ``set`` of strings, which Python fixes when it starts (from the
    ``PYTHONHASHSEED`` environment variable, read once at start-up, so setting it here would change nothing).
    The course's code sorts wherever such an order could reach a result."""
    seed = require_int(seed, "seed", minimum=0)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(prefer: str | None = None) -> torch.device:
    """The fastest available device: cuda, then Apple's mps, then cpu. ``prefer`` forces one."""
    if prefer is not None:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class AdamW:
    """Adam with decoupled weight decay, as ``torch.optim.AdamW`` computes it on the CPU (its default path,
    one tensor at a time), written out so that you can read the update. ``tests/test_training.py`` checks
    that both leave the same weights, bit for bit.

    The course has its own because the first ``torch.optim`` optimizer of a session imports
    ``torch._dynamo``: about 3 s of CPU on the course's 2-core machine, in every lesson that trains.

    For each parameter ``p`` with gradient ``g``, at its ``t``-th step (from 1)::

        m = beta1 * m + (1 - beta1) * g          # running mean of the gradient
        v = beta2 * v + (1 - beta2) * g * g      # running mean of its square
        p = p * (1 - lr * weight_decay)          # shrink, apart from the gradient ("decoupled")
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    ``lr`` may change between steps (``fit``'s schedule sets it). The defaults are torch's.
    """

    def __init__(self, parameters, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        self.parameters = list(parameters)
        if not self.parameters or not all(isinstance(p, torch.Tensor) for p in self.parameters):
            raise ValueError("AdamW needs a non-empty list of tensors, e.g. AdamW(model.parameters()), got "
                             f"{len(self.parameters)} item(s)")
        self.lr = require_number(lr, "lr", above=0)
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        self.beta1, self.beta2 = (float(b) for b in betas)
        self.eps = require_number(eps, "eps", minimum=0)
        self.weight_decay = require_number(weight_decay, "weight_decay", minimum=0)
        self.state: dict[torch.Tensor, dict] = {}  # parameter -> its step count t, m and v

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2, lr = self.beta1, self.beta2, self.lr
        for p in self.parameters:
            if p.grad is None:  # not used by this step's loss: left alone, its t not counted
                continue
            g = p.grad
            state = self.state.get(p)
            if state is None:
                state = self.state[p] = {"t": 0, "m": torch.zeros_like(p, memory_format=torch.preserve_format),
                                         "v": torch.zeros_like(p, memory_format=torch.preserve_format)}
            state["t"] += 1
            t, m, v = float(state["t"]), state["m"], state["v"]
            if self.weight_decay != 0:
                p.mul_(1 - lr * self.weight_decay)
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            # The same operations in the same order as torch's, so the floats round the same way.
            bias_correction1 = 1 - beta1**t
            bias_correction2 = 1 - beta2**t
            denom = (v.sqrt() / bias_correction2**0.5).add_(self.eps)
            p.addcdiv_(m, denom, value=-(lr / bias_correction1))


class TrainingDiverged(FloatingPointError):
    """``fit`` stopped because the loss became nan or inf (usually: the learning rate is too large)."""


@dataclass
class TrainingHistory:
    """What ``fit`` measured: the loss of every step, and the evaluations every ``eval_every`` steps."""

    losses: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def __repr__(self) -> str:
        last = f", last loss {self.losses[-1]:.3f}" if self.losses else ""
        return f"TrainingHistory({len(self.losses)} steps{last})"


def fit(model: nn.Module, make_batch: Callable[[int], tuple], loss_fn: Callable[[nn.Module, tuple], torch.Tensor],
        steps: int, lr: float = 3e-3, weight_decay: float = 0.0, warmup: int = 0, clip: float | None = 1.0,
        evaluate: Callable[[nn.Module], dict] | None = None, eval_every: int = 100,
        progress: bool = True, device: torch.device | str | None = None) -> TrainingHistory:
    """Train ``model`` with AdamW for ``steps`` steps and return its ``TrainingHistory``.

    make_batch(step) -> a tuple of tensors; loss_fn(model, batch) -> a scalar loss.
    evaluate(model) -> a dict of numbers, run in eval mode without gradients every ``eval_every`` steps
    and at the end. The learning rate warms up linearly for ``warmup`` steps, then decays to 10 %
    along a cosine. ``clip`` caps the gradients' total norm (None or 0: no clipping).

    Raises ``TrainingDiverged`` (a ``FloatingPointError``) at the first step whose loss is nan or inf,
    naming the step and the loss, before that loss touches the weights.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    steps = require_int(steps, "steps")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    lr = require_number(lr, "lr", above=0)
    weight_decay = require_number(weight_decay, "weight_decay", minimum=0)
    warmup = require_int(warmup, "warmup", minimum=0)
    clip = None if clip is None else require_number(clip, "clip", minimum=0)
    eval_every = require_int(eval_every, "eval_every", minimum=0)
    if not callable(make_batch) or not callable(loss_fn):
        raise TypeError("make_batch and loss_fn must be functions: make_batch(step) -> batch, "
                        "loss_fn(model, batch) -> a scalar loss")
    if evaluate is not None and not callable(evaluate):
        raise TypeError(f"evaluate must be a function evaluate(model) -> dict, or None, got {type(evaluate).__name__}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    optimizer = AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress_fraction = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress_fraction))

    history = TrainingHistory()
    start = time.perf_counter()

    def run_evaluation(step: int) -> None:
        model.eval()
        with torch.no_grad():
            history.evals.append(dict(evaluate(model)))
        history.eval_steps.append(step)
        model.train()

    model.train()
    bar = tqdm(range(steps), disable=not progress, desc="training", leave=False)
    # Training needs gradients even where the caller switched them off (a lesson that only looks at models).
    with torch.enable_grad():
        for step in bar:
            batch = tuple(t.to(device) if isinstance(t, torch.Tensor) else t for t in make_batch(step))
            optimizer.lr = lr * schedule(step)  # as torch.optim.lr_scheduler.LambdaLR sets it
            loss = loss_fn(model, batch)
            value = loss.item()
            if not math.isfinite(value):
                bar.close()
                raise TrainingDiverged(
                    f"training diverged: the loss became {value} at step {step} of {steps} (lr={lr:g}); "
                    f"the weights are no longer usable. Try a smaller learning rate, e.g. lr={lr / 10:g}, "
                    f"and build the model again")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            history.losses.append(value)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{history.losses[-1]:.3f}")
            if evaluate is not None and eval_every and (step + 1) % eval_every == 0 and step + 1 < steps:
                run_evaluation(step + 1)
    if evaluate is not None:
        run_evaluation(steps)
    model.eval()
    history.seconds = time.perf_counter() - start
    return history


def language_model_loss(model: nn.Module, batch: tuple, pad_id: int = 0) -> torch.Tensor:
    """Next-token cross-entropy for ``batch = (ids (batch, time),)``; padding positions are ignored.

    Padding columns at the end of the batch are cut off first: with a causal model no real token
    sees them, so the loss is the same and the step is faster.
    """
    ids = batch[0]
    longest = int((ids != pad_id).sum(dim=1).max()) if ids.numel() else ids.shape[1]
    ids = ids[:, :max(longest, 2)]  # (B, T'): T' = the longest sentence of this batch
    logits = model(ids[:, :-1])  # (B, T-1, vocab): position t predicts token t+1
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), ignore_index=pad_id)


def classification_loss(model: nn.Module, batch: tuple) -> torch.Tensor:
    """Cross-entropy for ``batch = (inputs, labels (batch,))``."""
    inputs, labels = batch[0], batch[1]
    return F.cross_entropy(model(inputs), labels)


def random_batches(*tensors: torch.Tensor, batch_size: int, seed: int = 0) -> Callable[[int], tuple]:
    """A ``make_batch`` for ``fit``: a seeded random sample of rows of the given tensors at each step."""
    if not tensors:
        raise ValueError("random_batches needs at least one tensor, got none")
    for index, t in enumerate(tensors):
        if not isinstance(t, torch.Tensor) or t.dim() == 0:
            raise TypeError(f"tensors must be torch.Tensors with a first (row) dimension, got "
                            f"{type(t).__name__ if not isinstance(t, torch.Tensor) else 'a 0-d tensor'} at position {index}")
    batch_size = require_int(batch_size, "batch_size", minimum=1)
    seed = require_int(seed, "seed")
    n = tensors[0].shape[0]
    if any(t.shape[0] != n for t in tensors):
        raise ValueError(f"all tensors need the same first dimension, got {[tuple(t.shape) for t in tensors]}")
    if n == 0:
        raise ValueError("random_batches needs at least one row, got tensors with 0 rows")
    generator = torch.Generator().manual_seed(seed)

    def make_batch(step: int) -> tuple:
        rows = torch.randint(0, n, (batch_size,), generator=generator)
        return tuple(t[rows] for t in tensors)

    return make_batch
