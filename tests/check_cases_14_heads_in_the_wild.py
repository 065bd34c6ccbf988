"""Lesson 14's exercises (heads in the wild): right and wrong learner answers, read by tests/test_checks.py.

Each wrong entry: (id, implementation, words its diagnosis must contain). The tables a case file may
hold (CASES, NAMED_MISTAKES, DELEGATING, HAND_BUILT, REPLAYABLE, CHEATS) are described at the top of
tests/test_checks.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from course_lib.experiments.analysis import ablate_heads, capture
from course_lib.experiments.text_heads import attention_and_loss, induction_score, relation_score, silenced_loss
from course_lib.experiments.text_model import next_token_loss

# --- induction_score -----------------------------------------------------------------------------------------------


def induction_index(weights, period):
    t = torch.arange(period, weights.shape[-1])
    return weights[..., t, t - period + 1].mean(dim=(0, -1))


def induction_loop(weights, period):
    B, L, H, T, _ = weights.shape
    total = torch.zeros(L, H)
    for b in range(B):
        for t in range(period, T):
            total += weights[b, :, :, t, t - period + 1]
    return total / (B * (T - period))


def induction_diagonal(weights, period):
    # the diagonal offset 1 - period holds (query t, key t - period + 1) for t = period - 1, period, ...
    return torch.diagonal(weights, offset=1 - period, dim1=-2, dim2=-1)[..., 1:].mean(-1).mean(0)


def make_induction(offset=1, first=None, swapped=False, reduce="mean", last=None):
    """A learner's induction_score; the defaults are right, each argument is one mistake: the key t - period +
    ``offset``, the first query (default period), query and key swapped, how the picked weights are reduced, the
    query after the last one counted (default T)."""

    def score(weights, period):
        T = weights.shape[-1]
        start = period if first is None else first(period)
        t = torch.arange(start, T if last is None else min(last(period), T))
        picked = weights[..., t - period + offset, t] if swapped else weights[..., t, t - period + offset]
        if reduce == "sum":
            return picked.sum(dim=(0, -1))
        if reduce == "max":
            return picked.amax(-1).mean(0)
        if reduce == "per query":
            return picked.mean(0)
        if reduce == "layers and heads":
            return picked.mean(dim=(1, 2, 3))
        return picked.mean(dim=(0, -1))

    return score


INDUCTION_RIGHT = [
    ("arange and indexing", induction_index),
    ("loops over the batch and the queries", induction_loop),
    ("torch.diagonal", induction_diagonal),
]
INDUCTION_WRONG = [
    ("key t - period", make_induction(offset=0), "duplicate-token score"),
    ("key t - period + 2", make_induction(offset=2), "one key too far"),
    ("queries from 0", make_induction(first=lambda period: 0), "counts the queries of the first copy"),
    ("queries from period - 1", make_induction(first=lambda period: period - 1), "counts the queries of the first copy"),
    ("query and key swapped", make_induction(swapped=True), "query and key swapped"),
    ("summed", make_induction(reduce="sum"), "summed instead of averaged"),
    ("the largest weight", make_induction(reduce="max"), "takes the largest weight"),
    ("one score per query", make_induction(reduce="per query"), "returns one score per query"),
    ("mean over the layers and heads", make_induction(reduce="layers and heads"),
     "averaged over the layers and heads instead of the batch"),
    ("only the second copy", make_induction(last=lambda period: 2 * period), "counts only the second copy"),
    ("a nested list", lambda weights, period: induction_index(weights, period).tolist(), "returned a list"),
    ("float64", lambda weights, period: induction_index(weights.double(), period), "dtype torch.float64"),
]

# --- text_relation_score -------------------------------------------------------------------------------------------


def relation_gather(weights, targets):
    counted = targets >= 0
    keys = torch.where(counted, targets, torch.zeros_like(targets))  # (B, T)
    B, L, H, T, _ = weights.shape
    on_key = weights.gather(-1, keys.view(B, 1, 1, T, 1).expand(B, L, H, T, 1))[..., 0]  # (B, L, H, T)
    return (on_key * counted.view(B, 1, 1, T)).sum(dim=(0, 3)) / counted.sum()


def relation_loop(weights, targets):
    B, L, H, T, _ = weights.shape
    total, count = torch.zeros(L, H), 0
    for b in range(B):
        for t in range(T):
            key = int(targets[b, t])
            if key >= 0:
                total = total + weights[b, :, :, t, key]
                count += 1
    return total / count


def relation_nonzero(weights, targets):
    b, t = torch.nonzero(targets >= 0, as_tuple=True)
    return weights[b, :, :, t, targets[b, t]].mean(0)  # (pairs, L, H) -> (L, H)


def make_relation(minus_one="skip", divide="counted", per_row=False, swapped=False, reduce="mean", offsets=False,
                  batch_index=True):
    """A learner's relation score; the defaults are right, each argument is one mistake."""

    def score(weights, targets):
        B, L, H, T, _ = weights.shape
        counted = targets >= 0
        keys = targets.clamp(min=0) if minus_one != "last" else targets % T
        if offsets:
            keys = (torch.arange(T) - targets).clamp(0, T - 1)
        rows = torch.arange(B)[:, None].expand(B, T)
        queries = torch.arange(T).expand(B, T)
        source = weights.transpose(-1, -2) if swapped else weights
        picked = source[rows, :, :, queries, keys]  # (B, T, L, H)
        if minus_one == "skip":
            picked = picked * counted[:, :, None, None]
        if not batch_index:
            b, t = torch.nonzero(counted, as_tuple=True)
            return weights[:, :, :, t, targets[b, t]].mean(dim=(0, 3))
        if per_row:
            return (picked.sum(1) / counted.sum(1)[:, None, None]).mean(0)
        if reduce == "sum":
            return picked.sum(dim=(0, 1))
        n = {"counted": counted.sum(), "all": B * T}[divide]
        return picked.sum(dim=(0, 1)) / n

    return score


RELATION_RIGHT = [
    ("gather with a mask", relation_gather),
    ("loops over the batch and the queries", relation_loop),
    ("nonzero and indexing", relation_nonzero),
    ("indexing with a mask", make_relation()),
]
RELATION_WRONG = [
    ("-1 clamped to key 0 and counted", make_relation(minus_one="key 0", divide="all"),
     "the queries without a target (-1) are counted"),
    ("-1 read as the last key", make_relation(minus_one="last", divide="all"),
     "the queries without a target (-1) are counted"),
    ("-1 in the sum, the count right", make_relation(minus_one="key 0"),
     "the queries without a target (-1) are counted"),
    ("per row, then over the rows", make_relation(per_row=True), "averaged each sequence, then the sequences"),
    ("divided by every query", make_relation(divide="all"), "divided by every query"),
    ("query and key swapped", make_relation(swapped=True), "query and key swapped"),
    ("summed", make_relation(reduce="sum"), "summed instead of averaged"),
    ("targets as offsets back", make_relation(offsets=True), "offsets back from the query"),
    ("no batch index", make_relation(batch_index=False), "pairs every sequence with every sequence's"),
    ("a nested list", lambda weights, targets: relation_gather(weights, targets).tolist(), "returned a list"),
]

# --- silenced_loss -------------------------------------------------------------------------------------------------


def silenced_with_capture(model, ids, heads):
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), capture(model, attention=False, silence=heads):
            logits = model(ids)
    finally:
        model.train(was_training)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten()).item()


def silenced_with_lesson_13_loss(model, ids, heads):
    with ablate_heads(model, heads):
        return next_token_loss(model, (ids,))  # a 0-d tensor, the inputs one token shorter


def silenced_with_own_hooks(model, ids, heads):
    """Silences by hand: a pre-hook on each out_proj zeroes the silenced heads' slices of its input."""
    handles = []
    for layer, block in enumerate(model.blocks):
        off = [h for l, h in heads if l == layer]
        if not off:
            continue
        d_head = block.attn.d_model // block.attn.n_heads

        def zero(module, args, off=off, d_head=d_head):
            x = args[0].clone()
            for h in off:
                x[..., h * d_head:(h + 1) * d_head] = 0
            return (x,)

        handles.append(block.attn.out_proj.register_forward_pre_hook(zero))
    try:
        with torch.no_grad():
            logits = model(ids)
    finally:
        for handle in handles:
            handle.remove()
    losses = -logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None])
    return float(losses.mean())


LEFT_OPEN = []


def make_silenced(shift=True, swapped=False, silence=True, unit="nats", reduction="mean", restore_mode=True,
                  always_train=False, zero_weights=False, leave_hooks=False):
    """A learner's silenced_loss; the defaults are right, each argument is one mistake."""

    def loss(model, ids, heads):
        pairs = [(h, l) for l, h in heads] if swapped else list(heads)
        was_training = model.training
        model.eval()
        if zero_weights:  # silences by zeroing the heads' columns of out_proj, and leaves them so
            for layer, head in pairs:
                attn = model.blocks[layer].attn
                d_head = attn.d_model // attn.n_heads
                with torch.no_grad():
                    attn.out_proj.weight[:, head * d_head:(head + 1) * d_head] = 0
            logits = model(ids).detach()
        elif leave_hooks:
            silencing = ablate_heads(model, pairs)
            silencing.__enter__()  # never left: the heads stay silenced
            LEFT_OPEN.append(silencing)  # kept, or collecting it would end the block and remove the hooks
            logits = model(ids).detach()
        else:
            with torch.no_grad(), capture(model, attention=False, silence=pairs if silence else []):
                logits = model(ids)
        if always_train:
            model.train()
        elif restore_mode:
            model.train(was_training)
        V = logits.shape[-1]
        if shift:
            value = F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1), reduction=reduction)
        else:
            value = F.cross_entropy(logits.reshape(-1, V), ids.reshape(-1), reduction=reduction)
        if reduction == "none":
            return value
        return value.item() / (math.log(2) if unit == "bits" else 1.0)

    return loss


SILENCED_RIGHT = [
    ("capture, then F.cross_entropy", silenced_with_capture),
    ("ablate_heads and lesson 13's next_token_loss", silenced_with_lesson_13_loss),
    ("hooks of its own on out_proj", silenced_with_own_hooks),
    ("a helper with every option right", make_silenced()),
]
SILENCED_WRONG = [
    ("no shift", make_silenced(shift=False), "the targets are not shifted"),
    ("(head, layer) swapped", make_silenced(swapped=True), "layer and head swapped"),
    ("nothing silenced", make_silenced(silence=False), "nothing is silenced"),
    ("bits", make_silenced(unit="bits"), "in bits, not nats"),
    ("summed", make_silenced(reduction="sum"), "summed instead of averaged"),
    ("one loss per token", make_silenced(reduction="none"), "one loss per predicted token"),
    ("left in eval mode", make_silenced(restore_mode=False), "leaves the model in eval mode"),
    ("left in training mode", make_silenced(always_train=True), "leaves the model in training mode"),
    ("out_proj's columns zeroed for good", make_silenced(zero_weights=True), "changes the model's weights"),
    ("a list", lambda model, ids, heads: [silenced_with_capture(model, ids, heads)], "returns a list"),
]


CASES = {
    "induction_score": (INDUCTION_RIGHT, INDUCTION_WRONG),
    "text_relation_score": (RELATION_RIGHT, RELATION_WRONG),
    "silenced_loss": (SILENCED_RIGHT, SILENCED_WRONG),
}

NAMED_MISTAKES = [
    ("induction_score", make_induction(offset=0), "duplicate-token score"),
    ("induction_score", make_induction(offset=2), "one key too far"),
    ("induction_score", make_induction(first=lambda period: 0), "counts the queries of the first copy"),
    ("induction_score", make_induction(swapped=True), "query and key swapped"),
    ("induction_score", make_induction(reduce="sum"), "summed instead of averaged"),
    ("induction_score", make_induction(reduce="max"), "takes the largest weight"),
    ("induction_score", make_induction(reduce="layers and heads"), "instead of the batch"),
    ("text_relation_score", make_relation(minus_one="key 0", divide="all"),
     "the queries without a target (-1) are counted"),
    ("text_relation_score", make_relation(minus_one="last", divide="all"),
     "the queries without a target (-1) are counted"),
    ("text_relation_score", make_relation(per_row=True), "averaged each sequence, then the sequences"),
    ("text_relation_score", make_relation(divide="all"), "divided by every query"),
    ("text_relation_score", make_relation(swapped=True), "query and key swapped"),
    ("text_relation_score", make_relation(reduce="sum"), "summed instead of averaged"),
    ("text_relation_score", make_relation(offsets=True), "offsets back from the query"),
    ("silenced_loss", make_silenced(shift=False), "the targets are not shifted"),
    ("silenced_loss", make_silenced(swapped=True), "layer and head swapped"),
    ("silenced_loss", make_silenced(silence=False), "nothing is silenced"),
    ("silenced_loss", make_silenced(unit="bits"), "in bits, not nats"),
    ("silenced_loss", make_silenced(reduction="sum"), "summed instead of averaged"),
    ("silenced_loss", make_silenced(restore_mode=False), "leaves the model in eval mode"),
    ("silenced_loss", make_silenced(zero_weights=True), "changes the model's weights"),
    # Only where the answer runs in the check's process (these tests): in its own process the hooks stay there.
    ("silenced_loss", make_silenced(leave_hooks=True), "the heads stay silenced after the call"),
]

DELEGATING = {
    "induction_score": [("course_lib itself", induction_score, "course_lib's induction_score")],
    "text_relation_score": [("course_lib itself", relation_score, "course_lib's relation_score")],
    "silenced_loss": [
        ("course_lib itself", silenced_loss, "course_lib's silenced_loss"),
        ("course_lib's attention_and_loss", lambda model, ids, heads: attention_and_loss(model, ids, heads)[1].mean(),
         "course_lib's attention_and_loss")],
}
HAND_BUILT = {"induction_score": "arange and indexing", "text_relation_score": "gather with a mask",
              "silenced_loss": "capture, then F.cross_entropy"}

REPLAYABLE = ["induction_score", "text_relation_score"]


def uniform_guess():
    """The loss of a model that gives every token the same probability: log(vocab), whatever the heads."""
    return lambda model, ids, heads: math.log(model.vocab_size)


CHEATS = [("silenced_loss", "the uniform guess's loss", uniform_guess, 3)]
