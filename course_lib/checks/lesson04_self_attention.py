"""Checks for lesson 04, self-attention: the causal mask, a local (sliding-window) mask, scaled dot-product
attention, and the experiment showing that attention alone ignores word order."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from course_lib.models.attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention
from course_lib.models.positions import sinusoidal_positions
from .kit import (Fail, Inputs, call, check, check_tensor, compare, describe_type, lazy, non_contiguous, seeded_module,
                  shape_str, summary, unpack_pair)

LESSON = "04_self_attention"


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


@check("causal_mask", lesson=LESSON, reference=causal_mask, builtins=("course_lib.models.attention.causal_mask",),
       pieces="torch.ones(T, T, dtype=torch.bool).tril()")
def check_causal_mask(candidate) -> str:
    """``causal_mask(T) -> (T, T)`` bool, True where query t may attend to key s (s <= t)."""
    rng = Inputs()
    sizes = (rng.int(3, 9), 1, 2, rng.int(10, 40))
    for T in sizes:
        label = f"T = {T}"
        try:
            got = call(candidate, (T,), ("T",), label)
        except Fail as failure:
            if "at least 2 dimensions" in failure.message:  # tril() of torch.ones(T): a row, not a table
                raise Fail(f"builds a row of {T} value{'s' if T != 1 else ''}, not a (T, T) table: tril keeps the "
                           f"lower triangle of a "
                           f"table with a row per query and a column per key ({label})") from None
            raise
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
        if isinstance(got, torch.Tensor) and got.layout == torch.strided and got.dtype != torch.bool \
                and got.shape == expected.shape and torch.equal(got.detach().to(torch.float64), expected.double()):
            raise Fail(f"returns dtype {got.dtype} ({label}): return a bool tensor (True = may attend), "
                       f"e.g. with .bool()")
        compare(got, expected, label, mistakes, what="the mask")
    return summary(len(sizes), ["T = 1", "T = 2", "a long sequence"], "True on and below the diagonal")


def local_mask(T: int, window: int) -> torch.Tensor:
    """``(T, T)`` bool: True where query t may attend to key s, for the ``window`` last positions up to t:
    ``t - window < s <= t``. With ``window >= T`` it is the causal mask."""
    position = torch.arange(T)
    back = position[:, None] - position[None, :]  # (query, key): how many positions the key lies back
    return (back >= 0) & (back < window)


@check("local_mask", lesson=LESSON, reference=local_mask)
def check_local_mask(candidate) -> str:
    """``local_mask(T, window) -> (T, T)`` bool, True where ``t - window < s <= t``: each position sees
    itself and the ``window - 1`` positions before it, never a later one."""
    rng = Inputs()
    T1 = rng.int(6, 10)
    T2 = rng.int(3, 7)
    cases = [(T1, rng.int(2, T1 - 2)), (rng.int(4, 8), 1), (T2, T2 + rng.int(0, 3)), (1, rng.int(1, 3)),
             (rng.int(20, 40), rng.int(3, 6))]
    for T, window in cases:
        label = f"T = {T}, window = {window}"
        got = call(candidate, (T, window), ("T", "window"), label)
        expected = local_mask(T, window)
        mistakes = [
            ("one key too many: the window counts the position itself, so query t sees keys t - window + 1 "
             "... t", lambda: local_mask(T, window + 1)),
            ("one key too few: the window counts the position itself, so query t sees keys t - window + 1 "
             "... t", lambda: local_mask(T, window - 1)),
            ("the position itself is blocked: query t must see key t, the window ends at t", lambda: local_mask(
                T, window + 1) & ~torch.eye(T, dtype=torch.bool)),
            ("a band on both sides of the diagonal: query t may not see later keys (s <= t)",
             lambda: local_mask(T, window) | local_mask(T, window).T),
            ("mask convention inverted: True means 'may attend'", lambda: ~local_mask(T, window)),
            ("the window looks forward: rows are queries and columns keys, so query t sees keys at or "
             "before t (is the mask transposed?)", lambda: local_mask(T, window).T),
            ("the window is ignored: that is the causal mask", lambda: causal_mask(T)),
        ]
        if isinstance(got, torch.Tensor) and got.layout == torch.strided and got.dtype != torch.bool \
                and got.shape == expected.shape and torch.equal(got.detach().to(torch.float64), expected.double()):
            raise Fail(f"returns dtype {got.dtype} ({label}): return a bool tensor (True = may attend), "
                       f"e.g. with .bool()")
        compare(got, expected, label, mistakes, what="the mask")
    return summary(len(cases), ["window 1", "a window as long as the sequence", "T = 1", "a long sequence"],
                   "True for the window's keys up to each query")


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

    B, T = rng.int(2, 3), rng.int(3, 6)
    d = T + rng.int(1, 3)  # d > batch: k.T on batches cannot run by luck; d ≠ T: output and weights differ in shape
    Tq, Tk, d2 = rng.int(2, 4), rng.int(5, 7), rng.int(3, 6)
    dv2 = d2 + rng.int(1, 3)
    d3, dv3, T4, dv4, d5 = rng.int(2, 6), rng.int(2, 5), rng.int(3, 6), rng.int(2, 5), rng.int(3, 6)
    Tq5, Tk5, H6, T6, d6, T7, d7 = rng.int(2, 4), rng.int(4, 6), rng.int(2, 3), rng.int(3, 5), rng.int(2, 5), \
        rng.int(2, 5), rng.int(2, 5)
    return [
        (f"batch {B}, T {T}, d {d}", rng.randn(B, T, d), rng.randn(B, T, d), rng.randn(B, T, d), None),
        (f"d_v ≠ d and {Tq} queries on {Tk} keys (d {d2}, d_v {dv2})", rng.randn(2, Tq, d2), rng.randn(2, Tk, d2),
         rng.randn(2, Tk, dv2), None),
        (f"T = 1, d {d3}", rng.randn(1, 1, d3), rng.randn(1, 1, d3), rng.randn(1, 1, dv3), None),
        (f"batch of 1 with a causal mask, T {T4}", rng.randn(1, T4, T4), rng.randn(1, T4, T4), rng.randn(1, T4, dv4),
         causal_mask(T4)),
        (f"a mask that blocks all but one key, {Tq5} queries on {Tk5} keys", rng.randn(2, Tq5, d5),
         rng.randn(2, Tk5, d5), rng.randn(2, Tk5, 2), all_but_one(Tq5, Tk5)),
        (f"(batch, heads) inputs with a broadcast padding-style mask, {H6} heads, T {T6}", rng.randn(2, H6, T6, d6),
         rng.randn(2, H6, T6, d6), rng.randn(2, H6, T6, d6), random_mask(2, 1, T6, T6)),
        (f"non-contiguous q, k, v, T {T7}, d {d7}", non_contiguous(rng.randn(2, T7, d7)),
         non_contiguous(rng.randn(2, T7, d7)), non_contiguous(rng.randn(2, T7, d7 + 1)), None),
    ]


@check("scaled_dot_product_attention", lesson=LESSON, reference=scaled_dot_product_attention,
       builtins=("torch.nn.functional.scaled_dot_product_attention",
                 "course_lib.models.attention.scaled_dot_product_attention"),
       pieces="q @ k.transpose(-2, -1) / √d, masked_fill, softmax, @ v")
def check_scaled_dot_product_attention(candidate) -> str:
    """``scaled_dot_product_attention(q, k, v, mask=None) -> (output, weights)``; mask True = may attend."""
    cases = _attention_cases(Inputs())
    for label, q, k, v, mask in cases:
        args = (q, k, v) if mask is None else (q, k, v, mask)
        got = call(candidate, args, ("q", "k", "v", "mask"), label)
        expected_out, expected_weights = scaled_dot_product_attention(q, k, v, mask)
        out, weights = unpack_pair(got, label, expected_out, expected_weights)
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


def _as_bool(answer, label: str) -> bool:
    if isinstance(answer, torch.Tensor):
        check_tensor(answer, torch.zeros(()), label, "the answer")
    if isinstance(answer, (bool, np.bool_)):
        return bool(answer)
    if isinstance(answer, torch.Tensor) and answer.dim() == 0 and answer.dtype == torch.bool:
        return bool(answer)
    if isinstance(answer, torch.Tensor) and answer.dim() == 0 and answer.dtype != torch.bool:
        raise Fail(f"returns a {answer.dtype} tensor ({label}); expected True or False (a bool)")
    if isinstance(answer, torch.Tensor):
        raise Fail(f"returns a tensor of shape {shape_str(answer.shape)} ({label}): reduce the comparison to one "
                   f"True/False, e.g. with torch.allclose(...)")
    raise Fail(f"returns {describe_type(answer)} ({label}); expected True or False")


def _sum_left_to_right(x: torch.Tensor) -> torch.Tensor:
    """Every token gets the sum of all tokens, added one at a time in sequence order: equivariant in
    exact arithmetic, but float rounding depends on the order, the same way on every machine."""
    total = x[:, 0]
    for t in range(1, x.shape[1]):
        total = total + x[:, t]
    return total[:, None].expand_as(x)


def _is_permutation_equivariant(f, x, perm):
    return torch.allclose(f(x[:, perm]), f(x)[:, perm], atol=1e-5)


def _equivariance_cases(rng: Inputs):
    T, d = rng.int(4, 7), rng.choice((8, 12, 16))
    attention = seeded_module(lambda: MultiHeadAttention(d, 2), seed=rng.seed + 11).eval()
    mlp = seeded_module(lambda: nn.Sequential(nn.Linear(d, 16), nn.GELU(), nn.Linear(16, d)), seed=rng.seed + 12).eval()
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


@check("is_permutation_equivariant", lesson=LESSON, reference=_is_permutation_equivariant)
def check_is_permutation_equivariant(candidate) -> str:
    """``is_permutation_equivariant(f, x (batch, time, d), perm (time,)) -> bool``:
    does shuffling the tokens before f shuffle f's output the same way?

    The layers come in a new order on every call, so a fixed list of answers cannot pass.
    """
    rng = Inputs()
    functions, T, d = _equivariance_cases(rng)
    x = rng.randn(2, T, d)
    perm = rng.permutation(T)
    if int(perm.argsort()[0]) < 2:  # token 0 must come after two other tokens once shuffled
        perm = perm.roll(2)
    # For the sum added in order: 1 first, then 2^-24 twice, is 1 in float32 (each half-ulp is lost);
    # shuffled, the two come first and the sum is 1 + 2^-23. Equal up to rounding, never exactly equal.
    x_sum = x.clone()
    x_sum[0, :, 0] = 0.0
    x_sum[0, 0, 0] = 1.0
    x_sum[0, perm[0], 0] = x_sum[0, perm[1], 0] = 2.0 ** -24
    inputs = {name: (x_sum if f is _sum_left_to_right else x) for name, f, _ in functions}
    order = rng.permutation(len(functions)).tolist()
    answers, truths = {}, {}
    with torch.no_grad():
        for name, f, truth in (functions[i] for i in order):
            label = f"{name}"
            try:
                answer = call(candidate, (f, inputs[name], perm), ("f", "x", "perm"), label)
            except Fail as failure:
                if "dimension 0" in failure.message:
                    raise Fail(f"indexes the batch axis ({label}): permute the tokens, the time axis, "
                               f"with x[:, perm]") from None
                raise
            answers[name] = _as_bool(answer, label)
            truths[name] = truth
        if answers == truths:
            findings = ", ".join(f"{name} → {truth}" for (name, _, truth) in functions)
            return f"right on {len(functions)} layers: {findings}"
        shuffled = {name: (f(inputs[name][:, perm]), f(inputs[name])) for name, f, _ in functions}
        variants = [
            ("compares f(x[:, perm]) with f(x) itself: shuffle the output too, f(x)[:, perm]",
             {name: bool(torch.allclose(a, b, atol=1e-5)) for name, (a, b) in shuffled.items()}),
            ("compares floats exactly (== or torch.equal): sums in another order differ in the last digits; "
             "use torch.allclose", {name: bool(torch.equal(a, b[:, perm])) for name, (a, b) in shuffled.items()}),
            ("answers the opposite: True means the outputs are shuffled the same way as the inputs",
             {name: not t for name, t in truths.items()}),
        ]
    for diagnosis, wrong in variants:
        if answers == wrong and wrong != truths:
            raise Fail(diagnosis)
    name, truth = next((name, truth) for name, truth in truths.items() if answers[name] != truth)
    raise Fail(f"answers {not truth} for {name}; shuffling the tokens first and shuffling the output "
               f"afterwards give {'the same' if truth else 'different'} results there, so expected {truth}")


# --- causal_self_attention (find the bugs) ----------------------------------------------------------------------

def _causal_self_attention(x, w_q, w_k, w_v):
    T = x.shape[-2]
    q, k, v = x @ w_q, x @ w_k, x @ w_v  # (B, T, d_k), (B, T, d_k), (B, T, d_v)
    return attention_variant(q, k, v, torch.ones(T, T, dtype=torch.bool).tril())[0]


def _self_attention_variant(x, w_q, w_k, w_v, mask_kind="tril", **kw):
    T = x.shape[-2]
    mask = {"tril": torch.ones(T, T, dtype=torch.bool).tril(), "triu": torch.ones(T, T, dtype=torch.bool).triu(),
            "none": None}[mask_kind]
    return attention_variant(x @ w_q, x @ w_k, x @ w_v, mask, **kw)[0]


# What the check sees for each kind of bug: a symptom, never the fix (exercise 04-5 asks the learner to find it).
SYMPTOMS = (
    ("the output at position 0 changes when only later tokens change, and the last position ignores the earlier "
     "tokens: each position sees the wrong side of the sentence", {"mask_kind": "triu"}),
    ("the output at position 0 changes when only later tokens change: it sees the future",
     {"mask_kind": "none"}),
    ("a token a position must not see still changes its output, a little: blocked pairs still get some weight",
     {"mask_mode": "zero"}),
    ("when every token is the same, each position's output should be that token's value vector; here it is "
     "larger or smaller: a position's weights do not add up to 1", {"softmax_dim": -2}),
    ("the weights are sharper than scaled attention's: large scores take almost everything",
     {"scale": "none"}),
    ("the weights are flatter than scaled attention's", {"scale": "d"}),
)


def _future_leak(candidate, x, w_q, w_k, w_v, label) -> bool:
    """Whether the answer's output at position 0 moves when only the later tokens change."""
    changed = x.clone()
    changed[:, 1:] = changed[:, 1:] + 1.0
    before = call(candidate, (x, w_q, w_k, w_v), ("x", "w_q", "w_k", "w_v"), label)
    after = call(candidate, (changed, w_q, w_k, w_v), ("x", "w_q", "w_k", "w_v"), label + ", later tokens changed")
    return isinstance(before, torch.Tensor) and isinstance(after, torch.Tensor) and before.shape == after.shape \
        and not torch.allclose(before[:, 0], after[:, 0], atol=1e-5)


@check("causal_self_attention", lesson=LESSON, reference=_causal_self_attention)
def check_causal_self_attention(candidate) -> str:
    """``causal_self_attention(x (B, T, d), w_q (d, d_k), w_k (d, d_k), w_v (d, d_v)) -> (B, T, d_v)``: one head of
    causal self-attention, scores scaled by √d_k. Exercise 04-5 is a find-the-bugs exercise, so every message
    says what the check sees, not what to change."""
    rng = Inputs()
    # First every token the same: then every position's output must be that token's value vector, whatever it sees.
    x = rng.randn(1, 1, 4).expand(2, 6, 4).contiguous()
    w_q, w_k, w_v = rng.randn(4, 4), rng.randn(4, 4), rng.randn(4, 4)
    label = "every token the same"
    got = call(candidate, (x, w_q, w_k, w_v), ("x", "w_q", "w_k", "w_v"), label)
    expected = x @ w_v  # (2, 6, 4)

    def scaled_copies(answer):
        """Each position's output a multiple of the value vector, not the vector itself: weights that do not sum
        to 1."""
        if not isinstance(answer, torch.Tensor) or answer.shape != expected.shape:
            return None
        ratio = answer / expected  # (2, 6, 4): the same number across a position's features if scaled
        if torch.allclose(ratio, ratio[..., :1].expand_as(ratio), atol=1e-4) and not torch.allclose(ratio, torch.ones(())):
            return SYMPTOMS[3][0]
        return None

    compare(got, expected, label, what="the output", diagnose=scaled_copies)
    cases = []
    for label, B, T, d, d_k, d_v in (("batch 2, 5 tokens, d 4", 2, rng.int(4, 6), 4, 4, 4),
                                     ("batch 3, d_k and d_v differ from d", 3, rng.int(5, 8), 6, 3, 5),
                                     ("1 token", 2, 1, 4, 4, 4),
                                     ("a long sentence", 1, rng.int(20, 30), 8, 8, 8)):
        x = rng.randn(B, T, d)
        cases.append((f"{label}", x, rng.randn(d, d_k), rng.randn(d, d_k), rng.randn(d, d_v)))
    for label, x, w_q, w_k, w_v in cases:
        got = call(candidate, (x, w_q, w_k, w_v), ("x", "w_q", "w_k", "w_v"), label)
        expected = _causal_self_attention(x, w_q, w_k, w_v)
        if isinstance(got, torch.Tensor) and got.shape == expected.shape and x.shape[1] > 1 \
                and not torch.allclose(got, expected, atol=1e-5, rtol=1e-4) \
                and _future_leak(candidate, x, w_q, w_k, w_v, label):
            raise Fail(f"the output at position 0 changes when only later tokens change ({label}): a position "
                       f"sees tokens after it")
        mistakes = [(symptom, lazy(_self_attention_variant, x, w_q, w_k, w_v, **kw)) for symptom, kw in SYMPTOMS]
        compare(got, expected, label, mistakes, what="the output")
    return summary(len(cases) + 1, ["d_k and d_v unlike d", "1 token", "a long sentence", "every token the same"],
                   "causal, scaled, weights that add up to 1")
