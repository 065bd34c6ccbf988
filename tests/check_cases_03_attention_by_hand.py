"""Lesson 03's exercises (attention by hand): right and wrong learner answers, read by tests/test_checks.py.

Each wrong entry: (id, implementation, words its diagnosis must contain). The tables a case file may
hold (CASES, NAMED_MISTAKES, DELEGATING, HAND_BUILT, REPLAYABLE, CHEATS) are described at the top of
tests/test_checks.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# --- softmax, attention_weights, attend ---------------------------------------------------------------------------


def softmax_stable(x):
    e = (x - x.max(dim=-1, keepdim=True).values).exp()
    return e / e.sum(dim=-1, keepdim=True)


SOFTMAX_RIGHT = [
    ("stable by hand", softmax_stable),
    ("logsumexp", lambda x: torch.exp(x - x.logsumexp(-1, keepdim=True))),
    ("F.softmax", lambda x: F.softmax(x, dim=-1)),
]
def softmax_without_keepdim(x):
    """The first five minutes' shape mistake: the sum has one number per row, (rows,), and cannot divide (rows, n)."""
    return torch.exp(x) / torch.exp(x).sum(-1)


def softmax_max_without_keepdim(x):
    e = torch.exp(x - x.max(dim=-1).values)
    return e / e.sum(dim=-1, keepdim=True)


def attend_values_first(q, k, v):
    return v @ torch.softmax(k @ q, -1)


SOFTMAX_WRONG = [
    ("sum without keepdim", softmax_without_keepdim, "the sum lost its axis"),
    ("max without keepdim", softmax_max_without_keepdim, "the max lost its axis"),
    ("no max subtraction", lambda x: x.exp() / x.exp().sum(-1, keepdim=True), "overflows"),
    ("global max", lambda x: (x - x.max()).exp() / (x - x.max()).exp().sum(-1, keepdim=True), "each row's own"),
    ("sum of everything", lambda x: (x - x.max()).exp() / (x - x.max()).exp().sum(), "whole tensor"),
    ("dim 0", lambda x: torch.softmax(x, dim=0), "first axis"),
    ("no exp", lambda x: x / x.sum(-1, keepdim=True), "exp is missing"),
    ("no division", lambda x: x.exp(), "without dividing"),
]

WEIGHTS_RIGHT = [
    ("matmul", lambda q, k: torch.softmax(k @ q, dim=-1)),
    ("einsum", lambda q, k: F.softmax(torch.einsum("d,td->t", q, k), dim=0)),
    ("broadcast sum", lambda q, k: softmax_stable((k * q).sum(-1))),
]
WEIGHTS_WRONG = [
    ("no softmax", lambda q, k: k @ q, "softmax is missing"),
    ("scaled", lambda q, k: torch.softmax(k @ q / math.sqrt(q.shape[0]), dim=-1), "√d"),
    ("keys.T", lambda q, k: torch.softmax(k.T @ q, dim=-1), "keys.T"),
    ("divide by sum", lambda q, k: (k @ q) / (k @ q).sum(), "exp is missing"),
]

ATTEND_RIGHT = [
    ("matmul", lambda q, k, v: torch.softmax(k @ q, -1) @ v),
    ("weighted sum", lambda q, k, v: (torch.softmax(k @ q, -1)[:, None] * v).sum(0)),
    ("einsum", lambda q, k, v: torch.einsum("t,te->e", torch.softmax(torch.einsum("d,td->t", q, k), 0), v)),
    ("F.scaled_dot_product_attention, scale=1",
     lambda q, k, v: F.scaled_dot_product_attention(q[None], k, v, scale=1.0)[0]),
]
ATTEND_WRONG = [
    ("values @ weights", attend_values_first, "values @ weights"),
    ("returns weights", lambda q, k, v: torch.softmax(k @ q, -1), "returns the weights"),
    ("averages keys", lambda q, k, v: torch.softmax(k @ q, -1) @ k, "averaged the keys"),
    ("plain mean", lambda q, k, v: v.mean(0), "plain average"),
    ("no sum", lambda q, k, v: torch.softmax(k @ q, -1)[:, None] * v, "without summing"),
    ("argmax", lambda q, k, v: v[(k @ q).argmax()], "best-scoring key"),
    ("scaled", lambda q, k, v: torch.softmax(k @ q / math.sqrt(q.shape[0]), -1) @ v, "√d"),
]

# --- query_that_finds ---------------------------------------------------------------------------------------------


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

# --- attend_all (find the bugs) -----------------------------------------------------------------------------------


def attend_all_matmul(queries, keys, values):
    return torch.softmax(queries @ keys.T, dim=-1) @ values


def attend_all_stable_by_hand(queries, keys, values):
    scores = queries @ keys.T
    e = torch.exp(scores - scores.max(dim=1, keepdim=True).values)  # each row's own largest score
    return (e / e.sum(dim=1, keepdim=True)) @ values


def attend_all_by_rows(queries, keys, values):
    return torch.stack([torch.softmax(keys @ q, dim=0) @ values for q in queries])


def attend_all_buggy(queries, keys, values):
    """The exercise's buggy version, all its bugs in."""
    scores = queries @ keys.T
    scores = scores - scores.max()
    weights = torch.exp(scores) / torch.exp(scores).sum(dim=0)
    return weights @ keys


def attend_all_keys_back(queries, keys, values):
    return torch.softmax(queries @ keys.T, dim=-1) @ keys


def attend_all_columns(queries, keys, values):
    scores = queries @ keys.T
    return (torch.exp(scores) / torch.exp(scores).sum(dim=0)) @ values


def attend_all_global_max(queries, keys, values):
    scores = queries @ keys.T
    e = torch.exp(scores - scores.max())
    return (e / e.sum(dim=1, keepdim=True)) @ values


def attend_all_values_ignored(queries, keys, values):
    return torch.softmax(queries @ keys.T, dim=-1) @ torch.ones_like(values)


def attend_all_scaled(queries, keys, values):
    return torch.softmax(queries @ keys.T / keys.shape[1] ** 0.5, dim=-1) @ values


ATTEND_ALL_RIGHT = [("matmul", attend_all_matmul), ("stable by hand", attend_all_stable_by_hand),
                    ("one query at a time", attend_all_by_rows)]
ATTEND_ALL_WRONG = [
    ("the buggy version as given", attend_all_buggy, "not something the size of a key"),
    ("the keys come back", attend_all_keys_back, "not something the size of a key"),
    ("weights normalised over the queries", attend_all_columns, "do not add up to 1"),
    ("the whole matrix's largest score", attend_all_global_max, "NaN or inf"),
    ("the values ignored", attend_all_values_ignored, "does not change when the values double"),
    ("scaled by sqrt(d) (lesson 04's rule, not lesson 03's)", attend_all_scaled, "the output is wrong"),
]

CASES = {
    "softmax": (SOFTMAX_RIGHT, SOFTMAX_WRONG),
    "attention_weights": (WEIGHTS_RIGHT, WEIGHTS_WRONG),
    "attend": (ATTEND_RIGHT, ATTEND_WRONG),
    "query_that_finds": (QUERY_RIGHT, QUERY_WRONG),
    "attend_all": (ATTEND_ALL_RIGHT, ATTEND_ALL_WRONG),
}

NAMED_MISTAKES = [
    ("softmax", softmax_without_keepdim, "the sum lost its axis: .sum(dim=-1)"),
    ("softmax", softmax_max_without_keepdim, "keepdim=True"),
    ("attend", attend_values_first, "multiplied in the wrong order, values @ weights"),
    ("query_that_finds", QUERY_WRONG[1][1], "points the right way but is too short"),
    ("attend_all", attend_all_keys_back, "not something the size of a key"),
    ("attend_all", attend_all_columns, "do not add up to 1"),
    ("attend_all", attend_all_global_max, "NaN or inf"),
    ("attend_all", attend_all_values_ignored, "does not change when the values double"),
    ("attend_all", attend_all_scaled, "the output is wrong"),
]

DELEGATING = {
    "softmax": [("torch.softmax", lambda x: torch.softmax(x, dim=-1), "torch.softmax"),
                ("F.softmax", lambda x: F.softmax(x, dim=-1), "F.softmax"),
                ("Tensor.softmax", lambda x: x.softmax(-1), "torch.Tensor.softmax"),
                ("nn.Softmax", nn.Softmax(dim=-1), "F.softmax")],
    "attend": [("F.scaled_dot_product_attention", ATTEND_RIGHT[3][1], "F.scaled_dot_product_attention")],
}
# attention_weights may use torch.softmax (the previous exercise, not this one): the solution's style gets no note.
HAND_BUILT = {"softmax": "stable by hand", "attend": "matmul", "attention_weights": "matmul"}

REPLAYABLE = ["softmax", "attention_weights", "attend"]
