"""Right and wrong learner answers to lesson 06's new exercise (a head that looks back), for tests/test_checks.py.
The older lesson-06 exercises keep their cases in tests/test_checks.py."""

from __future__ import annotations

import math

import torch

from course_lib.checks.lesson06_positions import shift_matrix

# --- look_back_weights ----------------------------------------------------------------------------------------------


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

CASES = {"look_back_weights": (LOOK_BACK_RIGHT, LOOK_BACK_WRONG)}

NAMED_MISTAKES = [
    ("look_back_weights", LOOK_BACK_WRONG[0][1], "the queries look forward"),
    ("look_back_weights", LOOK_BACK_WRONG[2][1], "no causal mask"),
]
