"""Checks for lesson 04, self-attention: the causal mask, scaled dot-product attention, and the
experiment showing that attention alone ignores word order."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention
from ..positions import sinusoidal_positions
from ._core import Fail, Inputs, call, check, compare, lazy, non_contiguous, seeded_module, shape_str, summary


def attention_variant(q, k, v, mask=None, *, scale="sqrt", softmax_dim=-1, mask_mode="before"):
    """Attention as written correctly (the defaults) or with one classic mistake; returns (output, weights).

    scale: "sqrt" (÷√d), "none", "d" (÷d) or a number to divide by. mask_mode: "before" (scores of blocked
    pairs -> -inf), "after" (weights of blocked pairs -> 0 after the softmax), "inverted" (True = blocked),
    "zero" (scores of blocked pairs -> 0), "ignored".
    """
    d = q.shape[-1]
    scores = q @ k.transpose(-2, -1)  # (..., query, key)
    divisor = {"sqrt": math.sqrt(d), "none": 1.0, "d": float(d)}.get(scale, scale)
    scores = scores / divisor
    if mask is not None:
        if mask_mode == "before":
            scores = scores.masked_fill(~mask, float("-inf"))
        elif mask_mode == "inverted":
            scores = scores.masked_fill(mask, float("-inf"))
        elif mask_mode == "zero":
            scores = scores.masked_fill(~mask, 0.0)
    weights = scores.softmax(dim=softmax_dim)
    if mask is not None and mask_mode == "after":
        weights = weights.masked_fill(~mask, 0.0)
    return weights @ v, weights


ATTENTION_MISTAKES = (
    ("softmax over the queries instead of the keys: use softmax(dim=-1)", {"softmax_dim": -2}),
    ("scores not divided by √d", {"scale": "none"}),
    ("scores divided by d instead of √d", {"scale": "d"}),
    ("mask applied after softmax: set blocked scores to -inf before the softmax, so the weights still "
     "sum to 1", {"mask_mode": "after"}),
    ("mask convention inverted: True means 'may attend', so fill the scores where the mask is False "
     "(masked_fill(~mask, -inf))", {"mask_mode": "inverted"}),
    ("blocked scores set to 0 instead of -inf: a score of 0 still gets weight after the softmax",
     {"mask_mode": "zero"}),
    ("the mask is ignored", {"mask_mode": "ignored"}),
)


def _unpack_pair(got, label: str, expected_out, expected_weights, what: str = "(output, weights)"):
    if got is None:
        raise Fail(f"returned None ({label}): return the pair {what}")
    if isinstance(got, torch.Tensor):
        raise Fail(f"returns one tensor of shape {shape_str(got.shape)} ({label}): return both {what}")
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise Fail(f"returns a {type(got).__name__} ({label}); expected the pair {what}")
    out, weights = got
    if weights is None and isinstance(out, torch.Tensor):
        raise Fail(f"returns the weights as None ({label}): return the weights too, {what}")
    if out is None and isinstance(weights, torch.Tensor):
        raise Fail(f"returns the output as None ({label}): return the output too, {what}")
    if (isinstance(out, torch.Tensor) and isinstance(weights, torch.Tensor) and out.shape != expected_out.shape
            and out.shape == expected_weights.shape and weights.shape == expected_out.shape):
        raise Fail(f"returns (weights, output) ({label}): return {what}, in that order")
    return out, weights


def _attention_cases(rng: Inputs):
    def all_but_one(T_q, T_k):
        keep = torch.zeros(T_q, T_k, dtype=torch.bool)
        keep[torch.arange(T_q), rng.randint(T_k, T_q)] = True
        return keep

    def random_mask(*shape):
        keep = rng.rand(*shape) < 0.5
        keep[..., 0] = True  # every query may attend to at least one key
        keep[..., -1] = False if shape[-1] > 1 else True
        return keep

    return [
        ("batch 2, T 3, d 4", rng.randn(2, 3, 4), rng.randn(2, 3, 4), rng.randn(2, 3, 4), None),
        ("d_v ≠ d and 2 queries on 5 keys", rng.randn(2, 2, 4), rng.randn(2, 5, 4), rng.randn(2, 5, 6), None),
        ("T = 1", rng.randn(1, 1, 3), rng.randn(1, 1, 3), rng.randn(1, 1, 2), None),
        ("batch of 1 with a causal mask", rng.randn(1, 4, 4), rng.randn(1, 4, 4), rng.randn(1, 4, 3),
         causal_mask(4)),
        ("a mask that blocks all but one key", rng.randn(2, 3, 4), rng.randn(2, 5, 4), rng.randn(2, 5, 2),
         all_but_one(3, 5)),
        ("(batch, heads) inputs with a broadcast padding-style mask", rng.randn(2, 2, 3, 4), rng.randn(2, 2, 3, 4),
         rng.randn(2, 2, 3, 4), random_mask(2, 1, 3, 3)),
        ("non-contiguous q, k, v", non_contiguous(rng.randn(2, 3, 4)), non_contiguous(rng.randn(2, 3, 4)),
         non_contiguous(rng.randn(2, 3, 5)), None),
    ]


@check("scaled_dot_product_attention")
def check_scaled_dot_product_attention(candidate) -> str:
    """``scaled_dot_product_attention(q, k, v, mask=None) -> (output, weights)``; mask True = may attend."""
    cases = _attention_cases(Inputs(10))
    for label, q, k, v, mask in cases:
        args = (q, k, v) if mask is None else (q, k, v, mask)
        got = call(candidate, args, ("q", "k", "v", "mask"), label)
        expected_out, expected_weights = scaled_dot_product_attention(q, k, v, mask)
        out, weights = _unpack_pair(got, label, expected_out, expected_weights)
        mistakes = [(diagnosis, kw) for diagnosis, kw in ATTENTION_MISTAKES if mask is not None or "mask_mode" not in kw]
        mistakes.append(("scores divided by √d_v instead of √d (d is the size of the queries and keys)",
                         {"scale": math.sqrt(v.shape[-1])}))
        variants = [(diagnosis, lazy(attention_variant, q, k, v, mask, **kw)) for diagnosis, kw in mistakes]
        weight_mistakes = [(d, lambda w=w: w()[1]) for d, w in variants]
        weight_mistakes.append(("weights transposed: return them as (..., query, key)",
                                lambda: expected_weights.transpose(-2, -1)))
        compare(weights, expected_weights, label, weight_mistakes, what="the weights")
        compare(out, expected_out, label, [(d, lambda w=w: w()[0]) for d, w in variants], what="the output")
    return summary(len(cases), ["d_v ≠ d", "T = 1", "causal mask", "all-but-one-key mask",
                                "broadcast mask", "non-contiguous inputs"], "output and weights match the reference")


@check("causal_mask")
def check_causal_mask(candidate) -> str:
    """``causal_mask(T) -> (T, T)`` bool, True where query t may attend to key s (s <= t)."""
    sizes = (4, 1, 2, 7)
    for T in sizes:
        label = f"T = {T}"
        got = call(candidate, (T,), ("T",), label)
        expected = causal_mask(T)
        ones = torch.ones(T, T, dtype=torch.bool)
        mistakes = [
            ("mask convention inverted: True means 'may attend' here (nn.MultiheadAttention uses the "
             "opposite), so True on and below the diagonal", lambda: ~ones.tril()),
            ("upper triangle: that lets each position see the future and not the past; use .tril()",
             lambda: ones.triu()),
            ("the diagonal is blocked: a position may attend to itself (tril(), not tril(-1))",
             lambda: ones.tril(-1)),
        ]
        if isinstance(got, torch.Tensor) and got.dtype != torch.bool and got.shape == expected.shape \
                and torch.equal(got.detach().to(torch.float64), expected.double()):
            raise Fail(f"returns dtype {got.dtype} ({label}): return a bool tensor (True = may attend), "
                       f"e.g. with .bool()")
        compare(got, expected, label, mistakes, what="the mask")
    return summary(len(sizes), ["T = 1", "T = 2", "T = 7"], "True on and below the diagonal")


def _as_bool(answer, label: str) -> bool:
    if isinstance(answer, (bool, np.bool_)):
        return bool(answer)
    if isinstance(answer, torch.Tensor) and answer.dim() == 0 and answer.dtype == torch.bool:
        return bool(answer)
    if isinstance(answer, torch.Tensor):
        raise Fail(f"returns a tensor of shape {shape_str(answer.shape)} ({label}): reduce the comparison to one "
                   f"True/False, e.g. with torch.allclose(...)")
    raise Fail(f"returns a {type(answer).__name__} ({label}); expected True or False")


def _sum_left_to_right(x: torch.Tensor) -> torch.Tensor:
    """Every token gets the sum of all tokens, added one at a time in sequence order: equivariant in
    exact arithmetic, but float rounding depends on the order, the same way on every machine."""
    total = x[:, 0]
    for t in range(1, x.shape[1]):
        total = total + x[:, t]
    return total[:, None].expand_as(x)


def _equivariance_cases():
    T, d = 5, 8
    attention = seeded_module(lambda: MultiHeadAttention(d, 2), seed=11).eval()
    mlp = seeded_module(lambda: nn.Sequential(nn.Linear(d, 16), nn.GELU(), nn.Linear(16, d)), seed=12).eval()
    positions = sinusoidal_positions(T, d)
    return [
        ("self-attention", lambda x: attention(x)[0], True),
        ("with a causal mask", lambda x: attention(x, causal_mask(x.shape[1]))[0], False),
        ("with positions added", lambda x: attention(x + positions)[0], False),
        ("a per-token MLP", mlp, True),
        ("the mean over time", lambda x: x.mean(1, keepdim=True).expand_as(x), True),
        ("a running sum", lambda x: x.cumsum(1), False),
        ("the sum over time, added in order", _sum_left_to_right, True),
    ], T, d


@check("is_permutation_equivariant")
def check_is_permutation_equivariant(candidate) -> str:
    """``is_permutation_equivariant(f, x (batch, time, d), perm (time,)) -> bool``:
    does shuffling the tokens before f shuffle f's output the same way?"""
    rng = Inputs(13)
    functions, T, d = _equivariance_cases()
    x = rng.randn(2, T, d)
    perm = torch.tensor([3, 0, 4, 1, 2])
    answers, truths = [], []
    with torch.no_grad():
        for name, f, truth in functions:
            label = f"{name}"
            try:
                answer = call(candidate, (f, x, perm), ("f", "x", "perm"), label)
            except Fail as failure:
                if "dimension 0" in failure.message:
                    raise Fail(f"indexes the batch axis ({label}): permute the tokens, the time axis, "
                               f"with x[:, perm]") from None
                raise
            answers.append(_as_bool(answer, label))
            truths.append(truth)
        if answers == truths:
            findings = ", ".join(f"{name} → {truth}" for (name, _, truth) in functions)
            return f"right on {len(functions)} layers: {findings}"
        shuffled = [(f(x[:, perm]), f(x)) for _, f, _ in functions]
        variants = [
            ("compares f(x[:, perm]) with f(x) itself: shuffle the output too, f(x)[:, perm]",
             [bool(torch.allclose(a, b, atol=1e-5)) for a, b in shuffled]),
            ("compares floats exactly (== or torch.equal): sums in another order differ in the last digits; "
             "use torch.allclose", [bool(torch.equal(a, b[:, perm])) for a, b in shuffled]),
            ("answers the opposite: True means the outputs are shuffled the same way as the inputs",
             [not t for t in truths]),
        ]
    for diagnosis, wrong in variants:
        if answers == wrong and wrong != truths:
            raise Fail(diagnosis)
    name, _, truth = next(c for c, a in zip(functions, answers) if a != c[2])
    raise Fail(f"answers {not truth} for {name}; shuffling the tokens first and shuffling the output "
               f"afterwards give {'the same' if truth else 'different'} results there, so expected {truth}")
