"""Lesson 03's new exercise, right and wrong: imported by tests/test_checks.py (CASES, NAMED_MISTAKES).

The first three exercises of lesson 03 keep their cases in tests/test_checks.py. Each wrong entry:
(id, implementation, words its diagnosis must contain).
"""

from __future__ import annotations

import math

import torch


def query_by_formula(keys, target):
    key = keys[target]
    if len(keys) == 1:
        return key.clone()
    closest = torch.cat([keys[:target], keys[target + 1:]]) @ key
    return (math.log(9 * (len(keys) - 1)) + 1) / (1 - closest.max()) * key


def query_by_doubling(keys, target):
    query = keys[target].clone()
    while torch.softmax(keys @ query, dim=-1)[target] < 0.9:
        query = 2 * query
    return query


def query_away_from_the_closest(keys, target):
    """Another valid design: aim between the target and away from its nearest rival, then lengthen."""
    key = keys[target]
    if len(keys) == 1:
        return key.clone()
    others = torch.cat([keys[:target], keys[target + 1:]])
    direction = key - 0.5 * others[(others @ key).argmax()]
    if int((keys @ direction).argmax()) != target:  # in a crowd, another key can lie closer to that direction
        direction = key
    query = direction
    while torch.softmax(keys @ query, dim=-1)[target] < 0.95:
        query = 1.5 * query
    return query


QUERY_RIGHT = [
    ("formula", query_by_formula),
    ("doubling", query_by_doubling),
    ("away from the closest", query_away_from_the_closest),
    ("list of floats", lambda keys, target: query_by_doubling(keys, target).tolist()),
]
QUERY_WRONG = [
    ("the key itself", lambda keys, target: keys[target], "too short"),
    ("a fixed length of 10", lambda keys, target: 10 * keys[target], "too short"),
    ("the next key", lambda keys, target: 50 * keys[(target + 1) % len(keys)] if len(keys) > 1 else keys[0],
     "point it at key"),
    ("all keys", lambda keys, target: 10 * keys, "one vector"),
    ("the weights instead of a query", lambda keys, target: torch.softmax(keys @ keys[target], dim=-1),
     ("shape", "of its weight on key")),
]

CASES = {"query_that_finds": (QUERY_RIGHT, QUERY_WRONG)}

NAMED_MISTAKES = [
    ("query_that_finds", QUERY_WRONG[1][1], "points the right way but is too short"),
]
