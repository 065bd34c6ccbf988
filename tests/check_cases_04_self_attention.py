"""Right and wrong learner answers to lesson 04's new exercise (the local mask), for tests/test_checks.py.
The older lesson-04 exercises keep their cases in tests/test_checks.py."""

from __future__ import annotations

import torch

# --- local_mask -----------------------------------------------------------------------------------------------------


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

CASES = {"local_mask": (LOCAL_RIGHT, LOCAL_WRONG)}

NAMED_MISTAKES = [
    ("local_mask", LOCAL_WRONG[0][1], "one key too many"),
    ("local_mask", LOCAL_WRONG[3][1], "the window looks forward"),
]
