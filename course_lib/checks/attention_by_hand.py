"""Checks for lesson 03, attention by hand: softmax, one query's weights, one query's answer.

Lesson 03 leaves out the 1/sqrt(d) scaling (lesson 04 adds it), so its references live here.
"""

from __future__ import annotations

import math

import torch

from ._core import Inputs, call, check, compare, non_contiguous, summary


def attention_weights(query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Lesson 03's reference: ``softmax(keys @ query)``, query ``(d,)``, keys ``(key, d)`` -> ``(key,)``."""
    return torch.softmax(keys @ query, dim=-1)


def attend(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Lesson 03's reference: the weighted average of the values, ``(d_v,)``."""
    return attention_weights(query, keys) @ values


@check("softmax")
def check_softmax(candidate) -> str:
    """``softmax(scores (..., n)) -> (..., n)``: exp, then divide by the sum over the last axis; no overflow."""
    rng = Inputs(7)
    cases = [
        ("5 scores", rng.randn(5)),
        ("one score", rng.randn(1)),
        ("a (3, 4) matrix, one softmax per row", rng.randn(3, 4)),
        ("large scores (up to 1000)", torch.tensor([1000.0, 999.0, 10.0, -1000.0])),
        ("non-contiguous scores", non_contiguous(rng.randn(4, 3))),
    ]
    for label, scores in cases:
        got = call(candidate, (scores,), ("scores",), label)
        expected = torch.softmax(scores, dim=-1)
        mistakes = [
            ("overflows for large scores (exp(1000) = inf): subtract the largest score before exp; the "
             "result does not change", lambda: scores.exp() / scores.exp().sum(-1, keepdim=True)),
            ("normalised over the whole tensor instead of each row: sum over the last axis, keepdim=True",
             lambda: scores.exp() / scores.exp().sum()),
            ("normalised over the first axis (dim=0) instead of the last (dim=-1)",
             lambda: torch.softmax(scores, dim=0)),
            ("exp is missing: softmax divides exp(score) by the sum of the exps",
             lambda: scores / scores.sum(-1, keepdim=True)),
            ("returns exp(scores) without dividing by their sum", lambda: scores.exp()),
        ]
        compare(got, expected, label, mistakes)
    return summary(len(cases), [c[0] for c in cases[1:]], "matches torch.softmax(scores, dim=-1)")


@check("attention_weights")
def check_attention_weights(candidate) -> str:
    """``attention_weights(query (d,), keys (key, d)) -> (key,)``: ``softmax(keys @ query)``, unscaled."""
    rng = Inputs(8)
    cases = [
        ("d 4, 4 keys", rng.randn(4), rng.randn(4, 4)),
        ("5 keys of d 3", rng.randn(3), rng.randn(5, 3)),
        ("T = 1 (one key)", rng.randn(3), rng.randn(1, 3)),
        ("large scores", 6 * rng.randn(8), 6 * rng.randn(3, 8)),
        ("non-contiguous keys", rng.randn(3), non_contiguous(rng.randn(6, 3))),
    ]
    for label, query, keys in cases:
        got = call(candidate, (query, keys), ("query", "keys"), label)
        expected = attention_weights(query, keys)
        d = query.shape[-1]
        mistakes = [
            ("the softmax is missing: these are the raw scores keys @ query", lambda: keys @ query),
            ("scores divided by √d: lesson 03's weights are unscaled, softmax(keys @ query); the scaling "
             "comes in lesson 04", lambda: torch.softmax(keys @ query / math.sqrt(d), dim=-1)),
            ("multiplied by keys.T: each key is a row, so the scores are keys @ query",
             lambda: torch.softmax(keys.T @ query, dim=-1)),
            ("scores divided by their sum instead of a softmax (exp is missing)",
             lambda: (keys @ query) / (keys @ query).sum()),
            ("scores are distances, not dot products: use keys @ query",
             lambda: torch.softmax(-((keys - query) ** 2).sum(-1), dim=-1)),
        ]
        compare(got, expected, label, mistakes, what="the weights")
    return summary(len(cases), [c[0] for c in cases[1:]], "matches softmax(keys @ query)")


@check("attend")
def check_attend(candidate) -> str:
    """``attend(query (d,), keys (key, d), values (key, d_v)) -> (d_v,)``: the weights' average of the values."""
    rng = Inputs(9)
    cases = [
        ("d 4, 5 keys, d_v 4", rng.randn(4), rng.randn(5, 4), rng.randn(5, 4)),
        ("d_v ≠ d (d 3, d_v 6)", rng.randn(3), rng.randn(4, 3), rng.randn(4, 6)),
        ("T = 1 (one key)", rng.randn(3), rng.randn(1, 3), rng.randn(1, 2)),
        ("one key much closer than the others", torch.tensor([4.0, 0.0]),
         torch.tensor([[4.0, 0.0], [0.0, 4.0], [-4.0, 0.0]]), rng.randn(3, 3)),
        ("non-contiguous values", rng.randn(3), rng.randn(5, 3), non_contiguous(rng.randn(5, 2))),
    ]
    for label, query, keys, values in cases:
        got = call(candidate, (query, keys, values), ("query", "keys", "values"), label)
        expected = attend(query, keys, values)
        weights = attention_weights(query, keys)
        d = query.shape[-1]
        mistakes = [
            ("returns the weights instead of the weighted average of the values", lambda: weights),
            ("averaged the keys instead of the values", lambda: weights @ keys),
            ("a plain average of the values: the attention weights are missing", lambda: values.mean(0)),
            ("returns the weighted values without summing over the keys (weights[:, None] * values): "
             "sum over the key axis", lambda: weights[:, None] * values),
            ("weights from raw scores (softmax missing): weight the values by softmax(keys @ query)",
             lambda: (keys @ query) @ values),
            ("scores divided by √d: lesson 03's weights are unscaled",
             lambda: torch.softmax(keys @ query / math.sqrt(d), dim=-1) @ values),
            ("returns the value of the best-scoring key (argmax) instead of the weighted average",
             lambda: values[(keys @ query).argmax()]),
        ]
        compare(got, expected, label, mistakes)
    return summary(len(cases), [c[0] for c in cases[1:]], "matches softmax(keys @ query) @ values")
