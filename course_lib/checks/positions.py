"""Checks for lesson 06, positions: the sinusoidal table, adding it to token vectors, how alike two
positions look."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..positions import sinusoidal_positions
from ._core import Inputs, call, check, compare, non_contiguous, summary


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


@check("sinusoidal_positions")
def check_sinusoidal_positions(candidate) -> str:
    """``sinusoidal_positions(T, d) -> (T, d)``: sin at even, cos at odd feature indices, base 10000."""
    sizes = [(6, 4), (1, 8), (5, 2), (50, 16)]
    for T, d in sizes:
        label = f"T = {T}, d = {d}"
        got = call(candidate, (T, d), ("T", "d"), label)
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
    return summary(len(sizes), ["T = 1", "d = 2", "T = 50"], "matches the reference table")


@check("add_positions")
def check_add_positions(candidate) -> str:
    """``add_positions(x (batch, time, d), table (max_len, d)) -> (batch, time, d)``: x plus the first ``time`` rows."""
    rng = Inputs(18)
    cases = [
        ("batch 2, T 3, d 4, table of 10 positions", rng.randn(2, 3, 4), rng.randn(10, 4)),
        ("T = 1", rng.randn(2, 1, 4), rng.randn(6, 4)),
        ("batch of 1, T = the table's length", rng.randn(1, 5, 2), rng.randn(5, 2)),
        ("non-contiguous x", non_contiguous(rng.randn(3, 4, 6)), sinusoidal_positions(8, 6)),
    ]
    for label, x, table in cases:
        got = call(candidate, (x, table), ("x", "table"), label)
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
    return summary(len(cases), [c[0] for c in cases[1:]], "equals x + table[:T] and leaves x unchanged")


@check("position_similarity")
def check_position_similarity(candidate) -> str:
    """``position_similarity(positions (T, d)) -> (T, T)``: the cosine similarity of every pair of rows."""
    rng = Inputs(19)
    cases = [
        ("the sinusoidal table, T 6, d 8", sinusoidal_positions(6, 8)),
        ("T = 1", rng.randn(1, 4)),
        ("rows of very different lengths", rng.randn(4, 3) * torch.tensor([[0.1], [1.0], [10.0], [3.0]])),
        ("non-contiguous positions", non_contiguous(rng.randn(5, 3))),
    ]
    for label, positions in cases:
        got = call(candidate, (positions,), ("positions",), label)
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
        ]
        compare(got, expected, label, mistakes)
    return summary(len(cases), [c[0] for c in cases[1:]], "matches the cosine similarity")
