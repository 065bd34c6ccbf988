"""Checks for lesson 06, positions: the sinusoidal table, adding it to token vectors, how alike two
positions look, and a head that looks a fixed number of positions back through the rotation R_k."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.models.attention import causal_mask
from course_lib.models.positions import sinusoidal_positions
from .kit import Fail, Inputs, call, check, close, compare, non_contiguous, shape_error_named, summary

LESSON = "06_positions"


def _add_positions(x, table):
    return x + table[: x.shape[1]]


def _position_similarity(positions):
    unit = F.normalize(positions, dim=-1)
    return unit @ unit.T


def _sinusoidal_variant(T: int, d: int, swap=False, concat=False, exponent="2i/d", start=0, multiply=False):
    """The table as defined (defaults) or with one classic mistake."""
    t = torch.arange(start, start + T, dtype=torch.float64)[:, None]  # (T, 1)
    pair = torch.arange(d // 2, dtype=torch.float64)  # (d/2,)
    power = pair / d if exponent == "i/d" else 2 * pair / d
    frequency = 10000.0 ** power if multiply else 10000.0 ** -power
    angle = t * frequency  # (T, d/2)
    first, second = (torch.cos(angle), torch.sin(angle)) if swap else (torch.sin(angle), torch.cos(angle))
    if exponent == "own index":
        odd = t * 10000.0 ** (-(2 * pair + 1) / d)
        second = torch.cos(odd)
    if concat:
        return torch.cat([first, second], dim=-1).float()
    table = torch.empty(T, d, dtype=torch.float64)
    table[:, 0::2], table[:, 1::2] = first, second
    return table.float()


NO_TABLE = ("the positions and the frequencies do not make a table: T positions of shape (T,) against d/2 "
            "frequencies of shape (d/2,) meet element by element; give the positions an axis of their own, a column "
            "(T, 1) against a row (d/2,), so that every position meets every frequency")


def _not_a_table(candidate) -> bool:
    """Whether ``candidate`` fails to build a (T, d) table where T = d/2, where positions (T,) and frequencies
    (d/2,) line up element by element and raise nothing."""
    got = call(candidate, (4, 8), ("T", "d"), "T = 4, d = 8 (T = d/2)")
    return not (isinstance(got, torch.Tensor) and tuple(got.shape) == (4, 8))


@check("sinusoidal_positions", lesson=LESSON, reference=sinusoidal_positions,
       builtins=("course_lib.models.positions.sinusoidal_positions",),
       pieces="angles t / 10000^(2i/d), sin into 0::2, cos into 1::2")
def check_sinusoidal_positions(candidate) -> str:
    """``sinusoidal_positions(T, d) -> (T, d)``: sin at even, cos at odd feature indices, base 10000."""
    rng = Inputs()
    sizes = [(rng.int(3, 12), 2 * rng.int(2, 8)), (1, 2 * rng.int(1, 8)), (rng.int(2, 10), 2),
             (rng.int(40, 64), 2 * rng.int(6, 12))]
    for T, d in sizes:
        label = f"T = {T}, d = {d}"
        try:
            got = call(candidate, (T, d), ("T", "d"), label)
        except Fail as failure:
            raise shape_error_named(failure, label, [(NO_TABLE, lambda: _not_a_table(candidate))]) from None
        if isinstance(got, torch.Tensor) and got.dim() == 1 and T == d // 2 and got.shape[0] == T:
            raise Fail(f"{NO_TABLE} ({label})")  # T = d/2: the two line up element by element, no error
        expected = sinusoidal_positions(T, d)
        mistakes = [
            ("sin and cos swapped: sin goes to the even feature indices 0, 2, 4, ..., cos to the odd ones",
             lambda: _sinusoidal_variant(T, d, swap=True)),
            ("sin in the first half and cos in the second: interleave them (sin at 0::2, cos at 1::2)",
             lambda: _sinusoidal_variant(T, d, concat=True)),
            ("the exponent is i/d for pair i: use 2i/d, the even feature index divided by d",
             lambda: _sinusoidal_variant(T, d, exponent="i/d")),
            ("the cos features use their own (odd) index in the exponent: features 2i and 2i+1 share the "
             "frequency 1 / 10000^(2i/d)", lambda: _sinusoidal_variant(T, d, exponent="own index")),
            ("positions count from 1: the first position is 0, so row 0 is [0, 1, 0, 1, ...]",
             lambda: _sinusoidal_variant(T, d, start=1)),
            ("multiplies by 10000^(2i/d) instead of dividing: the frequencies must shrink along the features",
             lambda: _sinusoidal_variant(T, d, multiply=True)),
        ]
        compare(got, expected, label, mistakes, what="the table", atol=1e-4)
    return summary(len(sizes), ["T = 1", "d = 2", "a long sequence"], "matches the reference table")


def _whole_table(candidate, x: torch.Tensor, table: torch.Tensor) -> tuple:
    """``x + table`` raises unless the table is exactly T long; with such a table it is right, and shows."""
    B, T, d = x.shape
    short = Inputs(1).randn(T, d)

    def shows() -> bool:
        return close(call(candidate, (x, short), ("x", "table"), "a table of T positions"), x + short)

    return (f"adds the whole table: it has {table.shape[0]} positions and x only {T}; add its first T rows, "
            f"x + table[:T]", shows)


@check("add_positions", lesson=LESSON, reference=_add_positions)
def check_add_positions(candidate) -> str:
    """``add_positions(x (batch, time, d), table (max_len, d)) -> (batch, time, d)``: x plus the first ``time`` rows."""
    rng = Inputs()
    B, T, d = rng.int(2, 4), rng.int(2, 6), rng.int(2, 6)
    L = T + rng.int(2, 6)
    d2, L2, T3, d3, T4, d4 = rng.int(2, 5), rng.int(2, 8), rng.int(2, 6), rng.int(2, 4), rng.int(2, 5), 2 * rng.int(1, 4)
    cases = [
        (f"batch {B}, T {T}, d {d}, table of {L} positions", rng.randn(B, T, d), rng.randn(L, d)),
        (f"T = 1, d {d2}, table of {L2}", rng.randn(2, 1, d2), rng.randn(L2, d2)),
        (f"batch of 1, T = the table's length, {T3}", rng.randn(1, T3, d3), rng.randn(T3, d3)),
        (f"non-contiguous x, T {T4}, d {d4}", non_contiguous(rng.randn(3, T4, d4)), sinusoidal_positions(T4 + 3, d4)),
    ]
    for label, x, table in cases:
        try:
            got = call(candidate, (x, table), ("x", "table"), label)
        except Fail as failure:
            raise shape_error_named(failure, label, [_whole_table(candidate, x, table)]) from None
        T = x.shape[1]
        expected = x + table[:T]
        mistakes = [
            ("concatenates the positions to the features: add them instead, x + table[:T]",
             lambda: torch.cat([x, table[:T].expand_as(x)], dim=-1)),
            ("adds the first row to every position: position t gets row t, table[:T]", lambda: x + table[0]),
            ("uses the last T rows of the table: position t gets row t, table[:T]", lambda: x + table[-T:]),
            ("multiplies instead of adding", lambda: x * table[:T]),
            ("returns the positions without x: return x + table[:T]", lambda: table[:T].expand_as(x)),
        ]
        compare(got, expected, label, mistakes)
    return summary(len(cases), ["T = 1", "batch of 1, T = the table's length", "non-contiguous x"],
                   "equals x + table[:T] and leaves x unchanged")


def _length_lost_its_axis(candidate, positions: torch.Tensor) -> tuple:
    """``p / p.norm(dim=-1)`` divides (T, d) by (T,), which raises unless T = d; on a square table it runs."""
    square = Inputs(1).randn(4, 4) * torch.tensor([[0.5], [1.0], [3.0], [10.0]])

    def shows() -> bool:
        unit = square / square.norm(dim=-1)
        return close(call(candidate, (square,), ("positions",), "a (4, 4) table"), unit @ unit.T)

    return _lost_length(positions), shows


def _gram(unit: torch.Tensor) -> torch.Tensor:
    return unit @ unit.T


def _lost_length(positions: torch.Tensor) -> str:
    T, d = positions.shape
    return (f"the length lost its axis: p.norm(dim=-1) of positions ({T}, {d}) has shape ({T},), one length per "
            f"position, which lines up with the features, not with the positions; use p.norm(dim=-1, keepdim=True), "
            f"shape ({T}, 1), or F.normalize(p, dim=-1)")


@check("position_similarity", lesson=LESSON, reference=_position_similarity,
       builtins=("torch.nn.functional.cosine_similarity", "torch.cosine_similarity"),
       pieces="divide each row by its length, then unit @ unit.T")
def check_position_similarity(candidate) -> str:
    """``position_similarity(positions (T, d)) -> (T, T)``: the cosine similarity of every pair of rows."""
    rng = Inputs()
    T, d = rng.int(3, 9), 2 * rng.int(2, 6)
    d2, T3, d3, T4, d4 = rng.int(2, 6), rng.int(3, 6), rng.int(2, 5), rng.int(2, 6), rng.int(2, 5)
    lengths = torch.tensor([0.1, 1.0, 10.0, 3.0, 0.5, 30.0])[rng.permutation(6)][:T3, None]
    cases = [
        (f"the sinusoidal table, T {T}, d {d}", sinusoidal_positions(T, d)),
        (f"T = 1, d {d2}", rng.randn(1, d2)),
        (f"rows of very different lengths, T {T3}, d {d3}", rng.randn(T3, d3) * lengths),
        (f"non-contiguous positions, T {T4}, d {d4}", non_contiguous(rng.randn(T4, d4))),
    ]
    for label, positions in cases:
        try:
            got = call(candidate, (positions,), ("positions",), label)
        except Fail as failure:
            raise shape_error_named(failure, label, [_length_lost_its_axis(candidate, positions)]) from None
        unit = F.normalize(positions, dim=-1)
        expected = unit @ unit.T
        column_unit = F.normalize(positions, dim=0)
        mistakes = [
            ("dot products, not cosines: divide each vector by its length first (F.normalize(p, dim=-1))",
             lambda: positions @ positions.T),
            ("normalised the columns (dim=0) instead of each position's vector (dim=-1)",
             lambda: column_unit @ column_unit.T),
            ("distances instead of similarities: use the cosine of the angle between the vectors",
             lambda: torch.cdist(positions, positions)),
            (_lost_length(positions), lambda: _gram(positions / positions.norm(dim=-1))),
        ]
        compare(got, expected, label, mistakes)
    return summary(len(cases), ["T = 1", "rows of very different lengths", "non-contiguous positions"],
                   "matches the cosine similarity")


def shift_matrix(k: int, d: int) -> torch.Tensor:
    """``(d, d)`` rotation R_k with ``P[t + k] = R_k @ P[t]`` for the sinusoidal table P: one 2 x 2 block per
    (sin, cos) feature pair, turning it by the angle ``k * omega_i`` (lesson 06)."""
    omega = 10000 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
    cos, sin = torch.cos(k * omega), torch.sin(k * omega)
    R = torch.zeros(d, d, dtype=torch.float64)
    R[0::2, 0::2], R[0::2, 1::2] = torch.diag(cos), torch.diag(sin)
    R[1::2, 0::2], R[1::2, 1::2] = torch.diag(-sin), torch.diag(cos)
    return R.float()


def _look_back_variant(positions, back, sharpness, shift=None, mask=True, divide_sqrt=False, softmax_dim=-1):
    """The head's weights as defined (the defaults) or with one classic mistake."""
    T, d = positions.shape
    R = shift_matrix(-back if shift is None else shift, d)
    queries = positions @ R.T  # (T, d): row t is R P[t] = P[t - back]
    scores = sharpness * (queries @ positions.T)  # (query, key)
    if divide_sqrt:
        scores = scores / d ** 0.5
    if mask:
        scores = scores.masked_fill(~causal_mask(T), float("-inf"))
    return scores.softmax(dim=softmax_dim)


def look_back_weights(positions, back, sharpness):
    """``(T, T)`` weights of a head that looks ``back`` positions back: queries ``R_{-back} P[t]``, keys ``P[s]``,
    scores ``sharpness * query · key``, a causal mask, softmax over the keys; ``positions (T, d)`` a sinusoidal
    table."""
    return _look_back_variant(positions, back, sharpness)


@check("look_back_weights", lesson=LESSON, reference=look_back_weights)
def check_look_back_weights(candidate) -> str:
    """``look_back_weights(positions (T, d), back, sharpness) -> (T, T)`` attention weights (query, key)."""
    rng = Inputs()
    cases = []
    for T, d, back, sharpness in [(rng.int(8, 14), rng.choice((16, 32)), 2, rng.choice((2.0, 3.0))),
                                  (rng.int(6, 10), rng.choice((8, 16)), rng.int(1, 4), rng.choice((1.0, 2.5))),
                                  (rng.int(20, 30), 32, rng.int(3, 6), 4.0), (1, 8, 1, 2.0)]:
        cases.append((f"T {T}, d {d}, back {back}, sharpness {sharpness}", sinusoidal_positions(T, d), back,
                       sharpness))
    for label, positions, back, sharpness in cases:
        got = call(candidate, (positions.clone(), back, sharpness), ("positions", "back", "sharpness"), label)
        expected = look_back_weights(positions, back, sharpness)
        T = positions.shape[0]

        def variant(**kw):
            return lambda: _look_back_variant(positions, back, sharpness, **kw)

        mistakes = [
            ("the queries look forward: shift_matrix(+back) (or P @ R instead of P @ R.T) turns P[t] into "
             "P[t + back]; the head must ask for t - back", variant(shift=back)),
            ("no causal mask: the head must not see later positions", variant(mask=False)),
            ("the causal mask and the rotation are both missing: the queries are P[t] itself",
             variant(shift=0, mask=False)),
            ("the queries are not rotated: query P[t] scores position t itself highest", variant(shift=0)),
            ("scores divided by √d: here the score is sharpness · query · key, nothing else",
             variant(divide_sqrt=True)),
            ("softmax over the queries instead of the keys: each query's weights must sum to 1 (dim=-1)",
             variant(softmax_dim=-2)),
            ("sharpness not applied: multiply the scores by it before the softmax",
             lambda: _look_back_variant(positions, back, 1.0)),
        ]
        if T > 1 and isinstance(got, torch.Tensor) and got.shape == expected.shape and got.dtype == expected.dtype \
                and torch.isfinite(got).all() and not torch.allclose(got.sum(-1), torch.ones(T), atol=1e-4):
            if not any(torch.allclose(got, m(), atol=1e-5) for _, m in mistakes):
                raise Fail(f"the weights of a query do not sum to 1 ({label}): softmax over the keys, dim=-1")
        compare(got, expected, label, mistakes, what="the weights")
    return summary(len(cases), ["back 1 to 5", "T = 1", "a long sequence"],
                   "weights match the look-back head")
