"""How long each check takes on a right answer: a learner waits that long after every attempt.

``time_checks()`` runs every check of ``EXERCISES`` on a correct implementation and returns the seconds
each took; ``python -m course_lib bench`` compares them with its target. Speed is measured here, not
asserted in tests, because a shared or slow machine would make a timed test fail at random.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..attention import MultiHeadAttention, causal_mask, merge_heads, scaled_dot_product_attention, split_heads
from ..images import image_to_patches
from ..positions import sinusoidal_positions
from . import attention_by_hand, inputs, learning, multi_head, positions, self_attention


def _embed_tokens(ids, table):
    return table[ids]


def _one_hot(ids, vocab_size):
    return F.one_hot(ids, vocab_size).float()


def _sgd_step(params, lr):
    with torch.no_grad():
        for p in params:
            p -= lr * p.grad
            p.grad = None


def _softmax(scores):
    return torch.softmax(scores, dim=-1)


def _is_permutation_equivariant(f, x, perm):
    return torch.allclose(f(x[:, perm]), f(x)[:, perm], atol=1e-5)


def _add_positions(x, table):
    return x + table[: x.shape[1]]


def _position_similarity(positions):
    unit = F.normalize(positions, dim=-1)
    return unit @ unit.T


# A right answer to every exercise: course_lib's own code where it has the exercise's signature.
REFERENCE_SOLUTIONS: dict[str, Callable] = {
    "embed_tokens": _embed_tokens,
    "one_hot": _one_hot,
    "image_to_patches": image_to_patches,
    "cross_entropy": F.cross_entropy,
    "sgd_step": _sgd_step,
    "training_step": learning._reference_step,
    "softmax": _softmax,
    "attention_weights": attention_by_hand.attention_weights,
    "attend": attention_by_hand.attend,
    "causal_mask": causal_mask,
    "scaled_dot_product_attention": scaled_dot_product_attention,
    "is_permutation_equivariant": _is_permutation_equivariant,
    "split_heads": split_heads,
    "merge_heads": merge_heads,
    "multi_head_attention": MultiHeadAttention,
    "sinusoidal_positions": sinusoidal_positions,
    "add_positions": _add_positions,
    "position_similarity": _position_similarity,
}

CHECKS: dict[str, Callable] = {
    check.exercise: check
    for module in (inputs, learning, attention_by_hand, self_attention, multi_head, positions)
    for check in vars(module).values()
    if callable(check) and hasattr(check, "exercise")
}


def time_checks() -> dict[str, float]:
    """Seconds each check of ``EXERCISES`` takes on a right answer, in the order the lessons present them.

    Each check runs once untimed first: one-off costs (the first torch.optim optimizer alone imports
    for about 1.5 s) are paid by the lesson's own cells before a learner runs the check, so the second,
    timed run is what a learner waits. Raises RuntimeError if a check rejects its right answer: the time
    of a failing run would mean nothing.
    """
    from . import EXERCISES

    seconds: dict[str, float] = {}
    for name in (name for names in EXERCISES.values() for name in names):
        check, solution = CHECKS[name], REFERENCE_SOLUTIONS[name]
        check(solution)
        start = time.perf_counter()
        result = check(solution)
        seconds[name] = time.perf_counter() - start
        if not result.passed:
            raise RuntimeError(f"check_{name} rejects a right answer: {result!r}")
    return seconds
