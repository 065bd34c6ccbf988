"""Checks for lesson 03, attention by hand: softmax, one query's weights, one query's answer, a query by design.

Lesson 03 leaves out the 1/sqrt(d) scaling (lesson 04 adds it), so its references live here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .kit import (Fail, Inputs, call, check, check_tensor, close, compare, describe_type, fmt_values,
                  non_contiguous, shape_error_named, shape_str, softmaxes_without_keepdim, summary)

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


def _global_shift(scores: torch.Tensor) -> torch.Tensor:
    """The classic slip: one shift for the whole tensor. Rows far below the top become 0 / 0."""
    exps = (scores - scores.max()).exp()
    return exps / exps.sum(dim=-1, keepdim=True)


def _lost_axis_diagnosis(lost: str, scores: torch.Tensor) -> str:
    shape, reduced = tuple(scores.shape), tuple(scores.shape[:-1])
    reduction, fix = {"the sum": (".sum(dim=-1)", ".sum(dim=-1, keepdim=True)"),
                      "the max": (".max(dim=-1).values", ".max(dim=-1, keepdim=True).values"),
                      "the max and the sum": (".max(dim=-1) and .sum(dim=-1)", "keepdim=True in both")}[lost]
    its, has = ("their axis", "have") if " and " in lost else ("its axis", "has")
    return (f"{lost} lost {its}: {reduction} of scores {shape_str(shape)} {has} shape {shape_str(reduced)}, one "
            f"number per row, which lines up with the last axis, not with the rows; use {fix}, shape "
            f"{shape_str(reduced + (1,))}")


def _lost_axis(candidate, scores: torch.Tensor) -> list:
    """The first five minutes' shape mistake: ``exp(x) / exp(x).sum(-1)`` divides a (rows, n) matrix by a (rows,)
    vector, which raises unless rows = n; on a square matrix it runs, so the answer shows it there."""
    if scores.dim() < 2:
        return []
    square = Inputs(1).randn(4, 4) * 2
    shown = []

    def shows(lost: str) -> bool:
        if not shown:
            shown.append(call(candidate, (square,), ("scores",), "a (4, 4) matrix"))
        return any(what == lost and close(shown[0], value) for what, value in softmaxes_without_keepdim(square))

    return [(_lost_axis_diagnosis(lost, scores), lambda lost=lost: shows(lost))
            for lost in ("the sum", "the max", "the max and the sum")]


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
    far = rng.choice((1000.0, -1000.0, 500.0))
    scales = rng.randn(rng.int(2, 4), rng.int(2, 5))
    scales[rng.int(0, scales.shape[0] - 1)] += far  # one row far from the others: its max is not theirs
    cases = [
        (f"{n} scores", rng.randn(n)),
        ("one score", rng.randn(1)),
        (f"a ({rows}, {cols}) matrix, one softmax per row", rng.randn(rows, cols)),
        (f"a batch of {B} score matrices ({T}, {T})", rng.randn(B, T, T)),
        ("large scores (up to 1000)", big),
        (f"rows of very different scale (one near {far:g}, one near 0)", scales),
        (f"non-contiguous ({cols}, {rows}) scores", non_contiguous(rng.randn(cols, rows))),
    ]
    for label, scores in cases:
        try:
            got = call(candidate, (scores,), ("scores",), label)
        except Fail as failure:
            raise shape_error_named(failure, label, _lost_axis(candidate, scores)) from None
        expected = torch.softmax(scores, dim=-1)
        # The global shift first: on a row far below the rest it gives the same NaN as no shift at all, and a
        # learner whose answer passed the large-scores case did subtract a maximum.
        mistakes = [
            ("subtracted the largest score of the whole tensor (scores.max()), not each row's own: a row far "
             "below it gets exp(...) = 0 everywhere and 0 / 0 = NaN; take the max over the last axis, "
             "keepdim=True", lambda: _global_shift(scores)),
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
        if scores.dim() == 2 and scores.shape[0] == scores.shape[1]:  # square: no keepdim runs, and is wrong
            mistakes += [(_lost_axis_diagnosis(lost, scores), lambda value=value: value)
                         for lost, value in softmaxes_without_keepdim(scores)]
        compare(got, expected, label, mistakes)
    return summary(len(cases), ["one score", "one softmax per row of a matrix", "a batch of matrices",
                                "large scores (up to 1000)", "rows of very different scale",
                                "non-contiguous scores"],
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


def _values_first(candidate, query: torch.Tensor, keys: torch.Tensor) -> tuple:
    """``values @ weights`` raises unless d_v = the number of keys; with square values it runs, and shows."""
    T = keys.shape[0]
    square = Inputs(1).randn(T, T)

    def shows() -> bool:
        got = call(candidate, (query, keys, square), ("query", "keys", "values"), "values as many as their features")
        return close(got, square @ attention_weights(query, keys)) and not close(got, attend(query, keys, square))

    return VALUES_FIRST, shows


VALUES_FIRST = ("multiplied in the wrong order, values @ weights: that mixes each value's features; the weights "
                "come first, weights @ values, one weight per key (row of values)")


@check("attend", lesson=LESSON, reference=attend,
       builtins=("torch.nn.functional.scaled_dot_product_attention",
                 "course_lib.models.attention.scaled_dot_product_attention"),
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
        try:
            got = call(candidate, (query, keys, values), ("query", "keys", "values"), label)
        except Fail as failure:
            raise shape_error_named(failure, label, [_values_first(candidate, query, keys)]) from None
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
            (VALUES_FIRST, lambda: values @ weights),  # runs only where d_v = the number of keys
        ]
        compare(got, expected, label, mistakes)
    return summary(len(cases), ["d_v ≠ d", "T = 1 (one key)", "one key much closer than the others",
                                "non-contiguous values"], "matches softmax(keys @ query) @ values")


def query_that_finds(keys: torch.Tensor, target: int) -> torch.Tensor:
    """Lesson 03's reference: a query ``(d,)`` whose unscaled weights put at least 0.9 on key ``target``.

    keys ``(key, d)`` have unit length and differ. Point the query at the target key; make it long enough
    that the target's score beats the closest other key's by ``log(9 (key - 1)) + 1``.
    """
    key = keys[target]
    if len(keys) == 1:
        return key.clone()
    others = torch.cat([keys[:target], keys[target + 1:]])
    gap = 1 - float((others @ key).max())  # > 0: unit keys that differ
    return (math.log(9 * (len(keys) - 1)) + 1) / gap * key


def _unit_keys(rng: Inputs, T: int, d: int) -> torch.Tensor:
    keys = rng.randn(T, d)
    return keys / keys.norm(dim=-1, keepdim=True)


@check("query_that_finds", lesson=LESSON, reference=query_that_finds)
def check_query_that_finds(candidate) -> str:
    """``query_that_finds(keys (key, d) of unit length, target) -> (d,)``: ``softmax(keys @ query)[target] >= 0.9``."""
    rng = Inputs()
    T, d = rng.int(4, 7), rng.int(3, 6)
    T2, d2 = rng.int(3, 6), rng.int(3, 5)
    close_keys = _unit_keys(rng, T2, d2)
    twin = rng.int(0, T2 - 1)
    partner = (twin + 1) % T2
    nudge = close_keys[twin] + 0.14 * _unit_keys(rng, 1, d2)[0]
    close_keys[partner] = nudge / nudge.norm()  # the twin's neighbour: cosine about 0.99
    T3 = rng.int(16, 24)
    d5, T5 = rng.int(3, 6), rng.int(3, 6)
    cases = [
        (f"{T} keys of d {d}", _unit_keys(rng, T, d), rng.int(0, T - 1)),
        (f"two keys almost alike (cosine {float(close_keys[twin] @ close_keys[partner]):.3f}), {T2} keys of d {d2}",
         close_keys, twin),
        (f"a crowd of {T3} keys of d 3", _unit_keys(rng, T3, 3), rng.int(0, T3 - 1)),
        ("T = 1 (one key)", _unit_keys(rng, 1, rng.int(2, 5)), 0),
        (f"non-contiguous keys, {T5} keys of d {d5}", non_contiguous(_unit_keys(rng, T5, d5)), rng.int(0, T5 - 1)),
    ]
    for label, keys, target in cases:
        got = call(candidate, (keys, target), ("keys", "target"), label)
        if isinstance(got, (list, tuple)) and all(isinstance(v, (int, float)) for v in got):
            got = torch.tensor(got, dtype=keys.dtype)
        if not isinstance(got, torch.Tensor):
            raise Fail(f"returned {describe_type(got)} ({label}); expected a query, a tensor of shape "
                       f"({keys.shape[1]},)")
        check_tensor(got, keys[0], label, "the query")
        if got.shape != (keys.shape[1],):
            raise Fail(f"the query has shape {tuple(got.shape)} ({label}); expected ({keys.shape[1]},), one number "
                       f"per feature: a query is one vector, like one key")
        if not got.is_floating_point() or not bool(torch.isfinite(got).all()):
            raise Fail(f"the query must hold finite float numbers ({label}); got {fmt_values(got)}")
        weights = torch.softmax(keys.double() @ got.detach().double(), dim=-1)
        if float(weights[target]) >= 0.9:
            continue
        winner = int(weights.argmax())
        cosine = float(F.cosine_similarity(got.detach().double(), keys[target].double(), dim=0))
        where = f"puts {float(weights[target]):.2f} of its weight on key {target} (needs 0.90 or more)"
        if winner != target:
            raise Fail(f"the query {where}: most goes to key {winner} ({float(weights[winner]):.2f}); "
                       f"point it at key {target} ({label})")
        if cosine > 0.999:
            raise Fail(f"the query points the right way but is too short: it {where}; a longer query spreads "
                       f"the scores apart — how long must it be for the closest other key? ({label})")
        raise Fail(f"the query {where} ({label})")
    return summary(len(cases), ["two keys almost alike", "a crowd of keys", "T = 1 (one key)", "non-contiguous keys"],
                   "puts at least 0.9 of the weight on the target key")


# --- attend_all (find the bugs) -----------------------------------------------------------------------------------

def attend_all(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Lesson 03's reference for every query at once: ``softmax(queries @ keys.T) @ values``, ``(n, d_v)``."""
    return torch.softmax(queries @ keys.T, dim=-1) @ values


def _dense(t) -> bool:
    """A plain CPU float tensor, safe to compare before ``compare`` has vetted it."""
    return (isinstance(t, torch.Tensor) and t.layout == torch.strided and t.device.type == "cpu"
            and t.is_floating_point())


@check("attend_all", lesson=LESSON, reference=attend_all)
def check_attend_all(candidate) -> str:
    """``attend_all(queries (n, d), keys (T, d), values (T, d_v)) -> (n, d_v)``: what every query gets back, as
    lesson 03 computes it (no scaling). Exercise 03-5 is a find-the-bugs exercise, so every message says what the
    check sees, not what to change."""
    rng = Inputs()
    names = ("queries", "keys", "values")
    n, T, d, d_v = rng.int(3, 5), rng.int(4, 7), rng.int(3, 5), rng.int(6, 8)
    queries, keys, values = rng.randn(n, d), rng.randn(T, d), rng.randn(T, d_v)
    label = f"{n} queries, {T} keys of {d} numbers, values of {d_v}"
    got = call(candidate, (queries, keys, values), names, label)
    if _dense(got) and got.shape == (n, d):
        raise Fail(f"returns {n} rows of {d} numbers ({label}): each query gets back a mix of the values, "
                   f"{d_v} numbers each, not something the size of a key")
    doubled = call(candidate, (queries, keys, 2 * values), names, label + ", values doubled")
    if _dense(got) and _dense(doubled) and got.shape == doubled.shape and torch.allclose(got, doubled, atol=1e-6):
        raise Fail(f"the output does not change when the values double ({label}): what a query gets back must "
                   f"come from the values")
    # Keys all alike: every query's weights are equal, so each gets back the plain mean of the values.
    same_keys = rng.randn(1, d).expand(T, d).contiguous()
    label_same = f"{T} identical keys: every query should get back the mean of the values"
    got_same = call(candidate, (queries, same_keys, values), names, label_same)
    mean = values.mean(0, keepdim=True).expand(n, d_v)
    if _dense(got_same) and got_same.shape == mean.shape and torch.isfinite(got_same).all() \
            and not torch.allclose(got_same, mean, atol=1e-5):
        raise Fail(f"with {T} identical keys each query should get back the mean of the values, and it gets "
                   f"{fmt_values(got_same[0])} instead of {fmt_values(mean[0])} ({label_same}): a query's weights "
                   f"do not add up to 1")
    # One query far below the others: its scores are all near -1000 while another's are near +1000.
    u = torch.nn.functional.normalize(rng.randn(d), dim=0)  # a direction every key leans towards
    far_keys = 0.3 * keys / keys.norm(dim=1, keepdim=True) + 2 * u  # k . u between 1.7 and 2.3
    far = torch.cat([600 * u[None], -600 * u[None], queries[2:]])  # scores about +1200 and about -1200
    label_far = "one query whose scores are all far below another query's (about -1200 against +1200)"
    got_far = call(candidate, (far, far_keys, values), names, label_far)
    if _dense(got_far) and not torch.isfinite(got_far).all():
        raise Fail(f"returns NaN or inf ({label_far}): a query's answer must not depend on how large another "
                   f"query's scores are")
    for args, label_now, result in (((queries, keys, values), label, got), ((far, far_keys, values), label_far, got_far),
                                    ((queries, same_keys, values), label_same, got_same)):
        compare(result, attend_all(*args), label_now, what="the output", atol=1e-4)
    return summary(3, ["values wider than keys", "identical keys", "scores far apart"],
                   "every query's weighted mix of the values")
