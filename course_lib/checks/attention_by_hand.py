"""Checks for lesson 03, attention by hand: softmax, one query's weights, one query's answer.

Lesson 03 leaves out the 1/sqrt(d) scaling (lesson 04 adds it), so its references live here.
"""

from __future__ import annotations

import math

import torch

from ._core import Inputs, call, check, compare, non_contiguous, summary

LESSON = "03_attention_by_hand"


def attention_weights(query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Lesson 03's reference: ``softmax(keys @ query)``, query ``(d,)``, keys ``(key, d)`` -> ``(key,)``."""
    return torch.softmax(keys @ query, dim=-1)


def attend(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Lesson 03's reference: the weighted average of the values, ``(d_v,)``."""
    return attention_weights(query, keys) @ values


def _softmax(scores: torch.Tensor) -> torch.Tensor:
    shifted = scores - scores.max(dim=-1, keepdim=True).values
    exps = shifted.exp()
    return exps / exps.sum(dim=-1, keepdim=True)


@check("softmax", lesson=LESSON, reference=_softmax,
       builtins=("torch.softmax", "torch.nn.functional.softmax", "torch.special.softmax", "torch.Tensor.softmax",
                 "torch._softmax"),
       pieces="subtract the max, exp, divide by the sum")
def check_softmax(candidate) -> str:
    """``softmax(scores (..., n)) -> (..., n)``: exp, then divide by the sum over the last axis; no overflow."""
    rng = Inputs()
    n, rows, cols, B, T = rng.int(3, 9), rng.int(2, 5), rng.int(3, 7), rng.int(2, 3), rng.int(2, 5)
    big = rng.randn(rng.int(3, 6)) * 3
    big[0], big[-1] = 1000.0, -1000.0
    cases = [
        (f"{n} scores", rng.randn(n)),
        ("one score", rng.randn(1)),
        (f"a ({rows}, {cols}) matrix, one softmax per row", rng.randn(rows, cols)),
        (f"a batch of {B} score matrices ({T}, {T})", rng.randn(B, T, T)),
        ("large scores (up to 1000)", big),
        (f"non-contiguous ({cols}, {rows}) scores", non_contiguous(rng.randn(cols, rows))),
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
    return summary(len(cases), ["one score", "one softmax per row of a matrix", "a batch of matrices",
                                "large scores (up to 1000)", "non-contiguous scores"],
                   "matches torch.softmax(scores, dim=-1)")


@check("attention_weights", lesson=LESSON, reference=attention_weights)
def check_attention_weights(candidate) -> str:
    """``attention_weights(query (d,), keys (key, d)) -> (key,)``: ``softmax(keys @ query)``, unscaled."""
    rng = Inputs()
    d = rng.int(3, 7)  # as many keys as features: keys.T @ query runs, and gives the wrong weights
    T, d2 = rng.int(3, 8), rng.int(2, 6)
    T = T + 1 if T == d2 else T
    d3, d4, T4, d5, T5 = rng.int(2, 6), rng.int(4, 8), rng.int(2, 5), rng.int(2, 5), rng.int(3, 7)
    cases = [
        (f"d {d}, {d} keys", rng.randn(d), rng.randn(d, d)),
        (f"{T} keys of d {d2}", rng.randn(d2), rng.randn(T, d2)),
        (f"T = 1 (one key), d {d3}", rng.randn(d3), rng.randn(1, d3)),
        (f"large scores, {T4} keys of d {d4}", 6 * rng.randn(d4), 6 * rng.randn(T4, d4)),
        (f"non-contiguous keys, {T5} keys of d {d5}", rng.randn(d5), non_contiguous(rng.randn(T5, d5))),
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
    return summary(len(cases), ["more keys than features", "T = 1 (one key)", "large scores", "non-contiguous keys"],
                   "matches softmax(keys @ query)")


@check("attend", lesson=LESSON, reference=attend,
       builtins=("torch.nn.functional.scaled_dot_product_attention",
                 "course_lib.attention.scaled_dot_product_attention"),
       pieces="your attention_weights, then a weighted sum of the values")
def check_attend(candidate) -> str:
    """``attend(query (d,), keys (key, d), values (key, d_v)) -> (d_v,)``: the weights' average of the values."""
    rng = Inputs()
    d, T = rng.int(3, 6), rng.int(3, 7)
    d2, T2 = rng.int(2, 5), rng.int(2, 6)
    dv2 = d2 + rng.int(1, 4)
    d3, dv3, d5, T5, dv5 = rng.int(2, 5), rng.int(2, 5), rng.int(2, 5), rng.int(2, 6), rng.int(2, 5)
    cases = [
        (f"d {d}, {T} keys, d_v {d}", rng.randn(d), rng.randn(T, d), rng.randn(T, d)),
        (f"d_v ≠ d (d {d2}, d_v {dv2}, {T2} keys)", rng.randn(d2), rng.randn(T2, d2), rng.randn(T2, dv2)),
        (f"T = 1 (one key), d {d3}, d_v {dv3}", rng.randn(d3), rng.randn(1, d3), rng.randn(1, dv3)),
        ("one key much closer than the others", torch.tensor([4.0, 0.0]),
         torch.tensor([[4.0, 0.0], [0.0, 4.0], [-4.0, 0.0]]), rng.randn(3, 3)),
        (f"non-contiguous values, d {d5}, {T5} keys", rng.randn(d5), rng.randn(T5, d5),
         non_contiguous(rng.randn(T5, dv5))),
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
    return summary(len(cases), ["d_v ≠ d", "T = 1 (one key)", "one key much closer than the others",
                                "non-contiguous values"], "matches softmax(keys @ query) @ values")
