"""Lesson 04's exercises (self-attention): right and wrong learner answers, read by tests/test_checks.py.

Each wrong entry: (id, implementation, words its diagnosis must contain). The tables a case file may
hold (CASES, NAMED_MISTAKES, DELEGATING, HAND_BUILT, REPLAYABLE, CHEATS) are described at the top of
tests/test_checks.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import course_lib

# --- causal_mask, scaled_dot_product_attention --------------------------------------------------------------------


def attention(q, k, v, mask=None, scale=None, softmax_dim=-1, mask_mode="before", swap=False):
    """Learner-style attention with one switchable mistake."""
    scores = q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale is None else scale)
    if mask is not None and mask_mode == "before":
        scores = scores.masked_fill(~mask, float("-inf"))
    if mask is not None and mask_mode == "inverted":
        scores = scores.masked_fill(mask, float("-inf"))
    if mask is not None and mask_mode == "zero":
        scores = scores.masked_fill(~mask, 0.0)
    weights = torch.softmax(scores, dim=softmax_dim)
    if mask is not None and mask_mode == "after":
        weights = weights * mask
    return (weights, weights @ v) if swap else (weights @ v, weights)


def sdpa_einsum(q, k, v, mask=None):
    scores = torch.einsum("...qd,...kd->...qk", q, k) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = torch.where(mask, scores, torch.tensor(float("-inf")))
    weights = scores.softmax(-1)
    return torch.einsum("...qk,...kd->...qd", weights, v), weights


def sdpa_builtin(q, k, v, mask=None):
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = q @ k.mT / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(mask.logical_not(), -1e9)  # a large negative number works as well as -inf
    return out, scores.softmax(-1)


def sdpa_in_place_scale(q, k, v, mask=None):
    q /= math.sqrt(q.shape[-1])
    return attention(q, k, v, mask, scale=1.0)


def sdpa_dot_T(q, k, v, mask=None):
    weights = torch.softmax(q @ k.T / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ v, weights


def sdpa_mask_multiplied(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores * mask
    weights = scores.softmax(-1)
    return weights @ v, weights


SDPA_RIGHT = [("by hand", attention), ("einsum + torch.where", sdpa_einsum),
              ("F.scaled_dot_product_attention", sdpa_builtin),
              ("course_lib", course_lib.scaled_dot_product_attention)]
SDPA_WRONG = [
    ("softmax over queries", lambda q, k, v, mask=None: attention(q, k, v, mask, softmax_dim=-2),
     "softmax over the queries instead of the keys"),
    ("unscaled", lambda q, k, v, mask=None: attention(q, k, v, mask, scale=1.0), "scores not divided by √d"),
    ("divided by d", lambda q, k, v, mask=None: attention(q, k, v, mask, scale=q.shape[-1]), "by d instead of √d"),
    ("divided by √d_v", lambda q, k, v, mask=None: attention(q, k, v, mask, scale=math.sqrt(v.shape[-1])), "√d_v"),
    ("mask after softmax", lambda q, k, v, mask=None: attention(q, k, v, mask, mask_mode="after"),
     "mask applied after softmax"),
    ("mask inverted", lambda q, k, v, mask=None: attention(q, k, v, mask, mask_mode="inverted"),
     "mask convention inverted"),
    ("mask filled with 0", lambda q, k, v, mask=None: attention(q, k, v, mask, mask_mode="zero"), "0 instead of -inf"),
    ("mask ignored", lambda q, k, v, mask=None: attention(q, k, v), "mask is ignored"),
    ("mask multiplied into the scores", sdpa_mask_multiplied, "0 instead of -inf"),
    ("(weights, output)", lambda q, k, v, mask=None: attention(q, k, v, mask, swap=True), "(weights, output)"),
    ("output only", lambda q, k, v, mask=None: attention(q, k, v, mask)[0], "return both"),
    ("weights transposed", lambda q, k, v, mask=None: (attention(q, k, v, mask)[0],
                                                         attention(q, k, v, mask)[1].transpose(-2, -1)),
     "weights transposed"),
    ("in-place scaling", sdpa_in_place_scale, "in place"),
    ("k.T on batches", sdpa_dot_T, ".transpose(-2, -1)"),
]

CAUSAL_RIGHT = [
    ("tril", lambda T: torch.ones(T, T, dtype=torch.bool).tril()),
    ("comparison", lambda T: torch.arange(T)[:, None] >= torch.arange(T)[None, :]),
    ("not triu(1)", lambda T: ~torch.ones(T, T, dtype=torch.bool).triu(1)),
    ("float tril to bool", lambda T: torch.tril(torch.ones(T, T)).bool()),
    ("course_lib", course_lib.causal_mask),
]
CAUSAL_WRONG = [
    ("tril of a row of ones", lambda T: torch.ones(T, dtype=torch.bool).tril(), "builds a row of"),
    ("True = blocked", lambda T: torch.ones(T, T, dtype=torch.bool).triu(1), "mask convention inverted"),
    ("upper triangle", lambda T: torch.ones(T, T, dtype=torch.bool).triu(), "upper triangle"),
    ("diagonal blocked", lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1), "diagonal is blocked"),
    ("float", lambda T: torch.ones(T, T).tril(), "bool tensor"),
    ("list", lambda T: torch.ones(T, T, dtype=torch.bool).tril().tolist(), "returned a list"),
]

# --- is_permutation_equivariant -----------------------------------------------------------------------------------


def equivariant_inverse(f, x, perm):
    return torch.allclose(f(x[:, perm])[:, perm.argsort()], f(x), atol=1e-5)


EQUIVARIANT_RIGHT = [
    ("allclose", lambda f, x, perm: torch.allclose(f(x[:, perm]), f(x)[:, perm], atol=1e-5)),
    ("inverse permutation", equivariant_inverse),
    ("max difference, bool", lambda f, x, perm: bool((f(x[:, perm]) - f(x)[:, perm]).abs().max() < 1e-4)),
    ("max difference, 0-dim tensor", lambda f, x, perm: (f(x[:, perm]) - f(x)[:, perm]).abs().max() < 1e-4),
]
EQUIVARIANT_WRONG = [
    ("output not shuffled", lambda f, x, perm: torch.allclose(f(x[:, perm]), f(x), atol=1e-5), "shuffle the output"),
    ("exact equality", lambda f, x, perm: torch.equal(f(x[:, perm]), f(x)[:, perm]), "exactly"),
    ("opposite", lambda f, x, perm: not torch.allclose(f(x[:, perm]), f(x)[:, perm], atol=1e-5), "opposite"),
    ("batch axis", lambda f, x, perm: torch.allclose(f(x[perm]), f(x)[perm], atol=1e-5), "batch axis"),
    ("elementwise", lambda f, x, perm: torch.isclose(f(x[:, perm]), f(x)[:, perm]), "reduce the comparison"),
]


def answers_in_the_usual_order():
    """A fresh cheat that answers from a list learnt by heart, in the order the lesson shows the layers."""
    truths = {"self-attention": True, "with a causal mask": False, "with positions added": False,
              "a per-token MLP": True, "the mean over time": True, "a running sum": False,
              "the sum over time, added in order": True}
    answers = iter(truths.values())

    def in_the_usual_order(f, x, perm):
        return next(answers)

    return in_the_usual_order


# --- local_mask ---------------------------------------------------------------------------------------------------


def local_by_comparison(T, window):
    t = torch.arange(T)
    return (t[None, :] <= t[:, None]) & (t[None, :] > t[:, None] - window)


def local_by_triangles(T, window):
    ones = torch.ones(T, T, dtype=torch.bool)
    return ones.tril() & ones.triu(-(window - 1))


def local_by_loop(T, window):
    mask = torch.zeros(T, T, dtype=torch.bool)
    for t in range(T):
        mask[t, max(0, t - window + 1): t + 1] = True
    return mask


LOCAL_RIGHT = [
    ("comparison of positions", local_by_comparison),
    ("tril and triu", local_by_triangles),
    ("loop over queries", local_by_loop),
]
LOCAL_WRONG = [
    ("window + 1 keys", lambda T, w: local_by_comparison(T, w + 1), "one key too many"),
    ("itself blocked", lambda T, w: local_by_loop(T, w + 1) & ~torch.eye(T, dtype=torch.bool), "itself is blocked"),
    ("both sides", lambda T, w: local_by_comparison(T, w) | local_by_comparison(T, w).T, "both sides"),
    ("transposed", lambda T, w: local_by_triangles(T, w).T, "looks forward"),
    ("inverted", lambda T, w: ~local_by_loop(T, w), "inverted"),
    ("window ignored", lambda T, w: torch.ones(T, T, dtype=torch.bool).tril(), "the causal mask"),
    ("float mask", lambda T, w: local_by_comparison(T, w).float(), "return a bool tensor"),
]

# --- causal_self_attention (find the bugs) ---------------------------------------------------------------------


def causal_by_hand(x, w_q, w_k, w_v):
    T = x.shape[1]
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def causal_with_torch(x, w_q, w_k, w_v):
    return F.scaled_dot_product_attention(x @ w_q, x @ w_k, x @ w_v, is_causal=True)


def causal_upper_blocked(x, w_q, w_k, w_v):
    T = x.shape[1]
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(
        torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return scores.softmax(-1) @ v


def buggy_as_given(x, w_q, w_k, w_v):
    """The exercise's buggy version, all bugs in."""
    T = x.shape[1]
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    allowed = torch.ones(T, T, dtype=torch.bool).triu()
    scores = scores.masked_fill(~allowed, 0.0)
    weights = torch.softmax(scores, dim=1)
    return weights @ v


def _one_bug(**kw):
    def answer(x, w_q, w_k, w_v):
        T = x.shape[1]
        q, k, v = x @ w_q, x @ w_k, x @ w_v
        scores = q @ k.transpose(-2, -1)
        scores = scores / {"sqrt": math.sqrt(q.shape[-1]), "none": 1.0, "d": float(q.shape[-1])}[kw.get("scale", "sqrt")]
        allowed = {"tril": torch.ones(T, T, dtype=torch.bool).tril(),
                   "triu": torch.ones(T, T, dtype=torch.bool).triu()}[kw.get("mask", "tril")]
        scores = scores.masked_fill(~allowed, kw.get("fill", float("-inf")))
        return torch.softmax(scores, dim=kw.get("dim", -1)) @ v
    return answer


causal_triu = _one_bug(mask="triu")
causal_zero_fill = _one_bug(fill=0.0)
causal_softmax_queries = _one_bug(dim=1)
causal_unscaled = _one_bug(scale="none")
causal_over_d = _one_bug(scale="d")

CAUSAL_ATTENTION_RIGHT = [("by hand", causal_by_hand), ("torch's is_causal", causal_with_torch),
                          ("the upper triangle blocked", causal_upper_blocked)]
CAUSAL_ATTENTION_WRONG = [
    ("the buggy version as given", buggy_as_given, "do not add up to 1"),
    ("triu", causal_triu, "position 0 changes when only later tokens change"),
    ("blocked scores 0", causal_zero_fill, "position 0 changes when only later tokens change"),
    ("softmax over the queries", causal_softmax_queries, "do not add up to 1"),
    ("not scaled", causal_unscaled, "sharper than scaled attention"),
    ("scaled by d", causal_over_d, "flatter than scaled attention"),
]

CASES = {
    "causal_self_attention": (CAUSAL_ATTENTION_RIGHT, CAUSAL_ATTENTION_WRONG),
    "causal_mask": (CAUSAL_RIGHT, CAUSAL_WRONG),
    "local_mask": (LOCAL_RIGHT, LOCAL_WRONG),
    "scaled_dot_product_attention": (SDPA_RIGHT, SDPA_WRONG),
    "is_permutation_equivariant": (EQUIVARIANT_RIGHT, EQUIVARIANT_WRONG),
}

NAMED_MISTAKES = [
    ("causal_mask", lambda T: torch.ones(T).tril().bool(), "not a (T, T) table"),
    ("causal_self_attention", causal_triu, "sees tokens after it"),
    ("causal_self_attention", causal_zero_fill, "sees tokens after it"),
    ("causal_self_attention", causal_softmax_queries, "do not add up to 1"),
    ("causal_self_attention", causal_unscaled, "sharper than scaled attention"),
    ("causal_self_attention", causal_over_d, "flatter than scaled attention"),
    ("scaled_dot_product_attention", SDPA_WRONG[0][1], "softmax over the queries instead of the keys"),
    ("scaled_dot_product_attention", SDPA_WRONG[1][1], "scores not divided by √d"),
    ("scaled_dot_product_attention", SDPA_WRONG[4][1], "mask applied after softmax"),
    ("scaled_dot_product_attention", SDPA_WRONG[5][1], "mask convention inverted"),
    ("local_mask", LOCAL_WRONG[0][1], "one key too many"),
    ("local_mask", LOCAL_WRONG[3][1], "the window looks forward"),
]

DELEGATING = {
    "causal_mask": [("course_lib itself", course_lib.causal_mask, "course_lib's causal_mask"),
                    ("course_lib inside", lambda T: course_lib.models.attention.causal_mask(T),
                     "course_lib's causal_mask")],
    "scaled_dot_product_attention": [
        ("F.scaled_dot_product_attention", sdpa_builtin, "F.scaled_dot_product_attention"),
        ("course_lib itself", course_lib.scaled_dot_product_attention, "course_lib's scaled_dot_product_attention")],
}
HAND_BUILT = {"causal_mask": "tril", "scaled_dot_product_attention": "by hand"}

REPLAYABLE = ["causal_mask", "scaled_dot_product_attention"]
CHEATS = [("is_permutation_equivariant", "a fixed sequence of answers", answers_in_the_usual_order, 3)]
