"""Lesson 06's exercises (positions): right and wrong learner answers, read by tests/test_checks.py.

Each wrong entry: (id, implementation, words its diagnosis must contain). The tables a case file may
hold (CASES, NAMED_MISTAKES, DELEGATING, HAND_BUILT, REPLAYABLE, CHEATS) are described at the top of
tests/test_checks.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import course_lib
from course_lib.checks.lesson06_positions import shift_matrix

# --- sinusoidal_positions, add_positions, position_similarity -----------------------------------------------------


def sinusoidal_exp_log(T, d):
    position = torch.arange(T).unsqueeze(1).float()
    div_term = torch.exp(torch.arange(0, d, 2).float() * (-math.log(10000.0) / d))
    pe = torch.zeros(T, d)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


def sinusoidal_loop(T, d):
    pe = torch.zeros(T, d)
    for t in range(T):
        for i in range(0, d, 2):
            pe[t, i] = math.sin(t / 10000 ** (i / d))
            pe[t, i + 1] = math.cos(t / 10000 ** (i / d))
    return pe


def sinusoidal_stack(T, d):
    angle = torch.arange(T)[:, None] / 10000 ** (torch.arange(0, d, 2) / d)
    return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1).float()


def sinusoidal_mistake(T, d, swap=False, concat=False, exponent="2i/d", start=0, multiply=False, dtype=torch.float32):
    t = torch.arange(start, start + T, dtype=torch.float64)[:, None]
    i = torch.arange(0, d, 2, dtype=torch.float64)  # the even feature indices 2i
    power = (i / 2) / d if exponent == "i/d" else i / d
    angle = t * (10000 ** power if multiply else 10000 ** -power)
    sin, cos = angle.sin(), angle.cos()
    if exponent == "own index":
        cos = (t * 10000 ** -((i + 1) / d)).cos()
    if swap:
        sin, cos = cos, sin
    if concat:
        return torch.cat([sin, cos], dim=-1).to(dtype)
    pe = torch.zeros(T, d, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = sin, cos
    return pe.to(dtype)


SINUSOIDAL_RIGHT = [("exp/log", sinusoidal_exp_log), ("loop", sinusoidal_loop), ("stack", sinusoidal_stack),
                    ("course_lib", course_lib.sinusoidal_positions)]
SINUSOIDAL_WRONG = [
    ("sin and cos swapped", lambda T, d: sinusoidal_mistake(T, d, swap=True), "sin and cos swapped"),
    ("halves", lambda T, d: sinusoidal_mistake(T, d, concat=True), "first half"),
    ("i/d", lambda T, d: sinusoidal_mistake(T, d, exponent="i/d"), "exponent is i/d"),
    ("odd index in the exponent", lambda T, d: sinusoidal_mistake(T, d, exponent="own index"), "own (odd) index"),
    ("positions from 1", lambda T, d: sinusoidal_mistake(T, d, start=1), "count from 1"),
    ("multiplied", lambda T, d: sinusoidal_mistake(T, d, multiply=True), "instead of dividing"),
    ("float64", lambda T, d: sinusoidal_mistake(T, d, dtype=torch.float64), "dtype torch.float64"),
    ("positions against frequencies, element by element",
     lambda T, d: torch.sin(torch.arange(T) / 10000 ** (torch.arange(0, d, 2) / d)), "do not make a table"),
]


def add_in_place(x, table):
    x += table[: x.shape[1]]
    return x


ADD_RIGHT = [
    ("slice", lambda x, table: x + table[: x.shape[1]]),
    ("explicit batch axis", lambda x, table: x + table[None, : x.shape[1], :]),
    ("narrow", lambda x, table: torch.add(x, table.narrow(0, 0, x.shape[1]))),
]
def add_whole_table(x, table):
    return x + table


def similarity_without_keepdim(p):
    unit = p / p.norm(dim=-1)
    return unit @ unit.T


ADD_WRONG = [
    ("whole table", add_whole_table, "adds the whole table"),
    ("in place", add_in_place, "in place"),
    ("concatenated", lambda x, table: torch.cat([x, table[: x.shape[1]].expand_as(x)], -1), "concatenates"),
    ("first row", lambda x, table: x + table[0], "first row"),
    ("last rows", lambda x, table: x + table[-x.shape[1]:], "last T rows"),
    ("multiplied", lambda x, table: x * table[: x.shape[1]], "multiplies"),
]


def cosine_by_hand(p):
    unit = p / p.norm(dim=-1, keepdim=True)
    return unit @ unit.T


SIMILARITY_RIGHT = [
    ("by hand", cosine_by_hand),
    ("F.cosine_similarity", lambda p: F.cosine_similarity(p[:, None], p[None, :], dim=-1)),
    ("einsum", lambda p: torch.einsum("id,jd->ij", F.normalize(p, dim=-1), F.normalize(p, dim=-1))),
]
SIMILARITY_WRONG = [
    ("norm without keepdim", similarity_without_keepdim, "the length lost its axis"),
    ("dot products", lambda p: p @ p.T, "dot products, not cosines"),
    ("columns", lambda p: F.normalize(p, dim=0) @ F.normalize(p, dim=0).T, "columns"),
    ("distances", lambda p: torch.cdist(p, p), "distances"),
]

# --- look_back_weights --------------------------------------------------------------------------------------------


def look_back(positions, back, sharpness, shift=None, transpose=False, mask=True, scale=1.0, dim=-1):
    T, d = positions.shape
    R = shift_matrix(-back if shift is None else shift, d)
    queries = positions @ (R if transpose else R.T)
    scores = sharpness * queries @ positions.T / scale
    if mask:
        scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    return scores.softmax(dim=dim)


def look_back_by_rows(positions, back, sharpness):
    """One query at a time, the rotation applied as R @ P[t]."""
    T, d = positions.shape
    R = shift_matrix(-back, d)
    rows = []
    for t in range(T):
        scores = sharpness * (positions[: t + 1] @ (R @ positions[t]))  # keys 0..t only
        rows.append(torch.cat([scores.softmax(-1), torch.zeros(T - t - 1)]))
    return torch.stack(rows)


def look_back_with_sdpa(positions, back, sharpness):
    """F.scaled_dot_product_attention's weights are not returned: rebuild them with its own scale."""
    T, d = positions.shape
    queries = positions @ shift_matrix(-back, d).T
    scores = (queries @ positions.T) * sharpness
    return torch.where(torch.ones(T, T, dtype=torch.bool).tril(), scores, -math.inf).softmax(-1)


LOOK_BACK_RIGHT = [
    ("all queries at once", look_back),
    ("one query at a time", look_back_by_rows),
    ("torch.where mask", look_back_with_sdpa),
]
LOOK_BACK_WRONG = [
    ("shift +back", lambda P, b, s: look_back(P, b, s, shift=b), "the queries look forward"),
    ("P @ R", lambda P, b, s: look_back(P, b, s, transpose=True), "the queries look forward"),
    ("no mask", lambda P, b, s: look_back(P, b, s, mask=False), "no causal mask"),
    ("no rotation", lambda P, b, s: look_back(P, b, s, shift=0), "not rotated"),
    ("divided by √d", lambda P, b, s: look_back(P, b, s, scale=math.sqrt(P.shape[1])), "divided by √d"),
    ("softmax over queries", lambda P, b, s: look_back(P, b, s, dim=-2), "softmax over the queries"),
    ("sharpness ignored", lambda P, b, s: look_back(P, b, 1.0), "sharpness not applied"),
]

CASES = {
    "sinusoidal_positions": (SINUSOIDAL_RIGHT, SINUSOIDAL_WRONG),
    "add_positions": (ADD_RIGHT, ADD_WRONG),
    "position_similarity": (SIMILARITY_RIGHT, SIMILARITY_WRONG),
    "look_back_weights": (LOOK_BACK_RIGHT, LOOK_BACK_WRONG),
}

NAMED_MISTAKES = [
    ("sinusoidal_positions", lambda T, d: torch.sin(torch.arange(T) / 10000 ** (torch.arange(0, d, 2) / d)),
     "do not make a table"),
    ("add_positions", add_whole_table, "x + table[:T]"),
    ("position_similarity", similarity_without_keepdim, "keepdim=True"),
    ("sinusoidal_positions", SINUSOIDAL_WRONG[0][1], "sin and cos swapped"),
    ("look_back_weights", LOOK_BACK_WRONG[0][1], "the queries look forward"),
    ("look_back_weights", LOOK_BACK_WRONG[2][1], "no causal mask"),
]

DELEGATING = {
    "sinusoidal_positions": [("course_lib itself", course_lib.sinusoidal_positions,
                              "course_lib's sinusoidal_positions")],
    "position_similarity": [("F.cosine_similarity", SIMILARITY_RIGHT[1][1], "F.cosine_similarity")],
}
HAND_BUILT = {"sinusoidal_positions": "exp/log", "position_similarity": "by hand"}

REPLAYABLE = ["sinusoidal_positions", "add_positions", "position_similarity"]
