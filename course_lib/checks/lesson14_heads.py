"""Checks for lesson 14, heads in the wild: the induction score of every head, the mean weight on the key a relation
names (brackets, quotes), and the loss of a language model with some of its heads silenced."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from course_lib.experiments.analysis import capture
from course_lib.experiments.text_heads import induction_score, relation_score, silenced_loss
from course_lib.models.language_model import TransformerLM

from .kit import (Fail, Inputs, call, check, check_tensor, compare, describe_type, fmt_number, non_contiguous,
                  seeded_module, shape_str, summary)

LESSON = "14_heads_in_the_wild"


def _attention(rng: Inputs, B: int, L: int, H: int, T: int) -> torch.Tensor:
    """Random causal attention ``(B, L, H, T, T)``: each query's weights over the keys sum to 1, later keys get 0."""
    scores = rng.randn(B, L, H, T, T) * 2
    later = torch.ones(T, T, dtype=torch.bool).triu(1)
    return scores.masked_fill(later, float("-inf")).softmax(-1)


SWAPPED = ("query and key swapped: the query picks the row (the second-to-last axis) and the key the column (the "
           "last); the other way round reads a later key, which a causal head gives no weight")


# --- induction_score --------------------------------------------------------------------------------------------

def _induction_mistakes(weights: torch.Tensor, period: int):
    T = weights.shape[-1]
    t = torch.arange(period, T)
    right = weights[..., t, t - period + 1]  # (B, L, H, queries)

    def keys(queries, offset):
        return weights[..., queries, queries - period + offset].mean((0, -1))

    t0, t1, t2 = torch.arange(T), torch.arange(period - 1, T), torch.arange(period, min(2 * period, T))
    t_prev = torch.arange(1, T)
    copy = "counts the queries of the first copy, which has no earlier occurrence to look back to: only the queries " \
           "t >= period count"
    return [
        ("scores key t - period, the earlier occurrence itself: that is a duplicate-token score; an induction head "
         "looks one key further on, at the token that came after it, key t - period + 1", lambda: keys(t, 0)),
        ("one key too far, t - period + 2: the token right after the earlier occurrence is key t - period + 1",
         lambda: keys(t, 2)),
        (copy, lambda: keys(t0, 1)),
        (copy, lambda: keys(t1, 1)),
        ("divided by all T queries: only the T - period queries t >= period count, so average over those",
         lambda: right.sum((0, -1)) / (weights.shape[0] * T)),
        (SWAPPED, lambda: weights[..., t - period + 1, t].mean((0, -1))),
        ("counts only the second copy: every query of a later copy counts, the third copy's too (t >= period up to "
         "the end)", lambda: keys(t2, 1)),
        ("scores key t - 1, the previous token: the induction key is t - period + 1, the token after the current "
         "token's earlier occurrence", lambda: weights[..., t_prev, t_prev - 1].mean((0, -1))),
        ("summed instead of averaged: a score is a mean weight, between 0 and 1", lambda: right.sum((0, -1))),
        ("summed over the queries instead of averaging: a score is a mean weight, between 0 and 1",
         lambda: right.sum(-1).mean(0)),
        ("takes the largest weight over the queries instead of the mean: average over the queries and the batch",
         lambda: right.amax(-1).mean(0)),
        ("takes the largest weight over the queries instead of the mean: average over the queries and the batch",
         lambda: right.amax((0, -1))),
        ("returns one score per query: average over the queries too, to get one score per head",
         lambda: right.mean(0)),
        ("returns one score per sequence: average over the batch too, to get one score per head",
         lambda: right.mean(-1)),
        ("returns every weight it picked: average over the batch and the queries, to get one score per head",
         lambda: right),
        ("averaged over the layers and heads instead of the batch: each (layer, head) keeps its own score, the mean "
         "over the batch and the queries", lambda: right.mean((1, 2, 3))),
        ("averaged over the layers and heads too: return one score per head, shape (layers, heads), not one number",
         lambda: right.mean()),
    ]


@check("induction_score", lesson=LESSON, reference=induction_score,
       builtins=("course_lib.experiments.text_heads.induction_score",),
       pieces="torch.arange, indexing and .mean")
def check_induction_score(candidate) -> str:
    """``induction_score(weights (batch, layers, heads, T, T), period) -> (layers, heads)``: on tokens repeated with
    ``period``, each head's mean weight from every query ``t >= period`` to key ``t - period + 1``, over the batch
    and those queries."""
    rng = Inputs()
    B, L, H, p = rng.int(2, 3), rng.int(2, 3), rng.int(4, 5), rng.int(3, 5)
    T = 2 * p + rng.int(1, p - 1)
    p2, p3, p4, p5, T5, p6 = rng.int(2, 6), rng.int(3, 5), rng.int(2, 5), rng.int(2, 4), rng.int(3, 7), rng.int(2, 4)
    T3 = 3 * p3 - rng.int(1, p3 - 1)
    T6 = 2 * p6 + rng.int(0, 2)
    cases = [
        (f"batch {B}, {L} layers, {H} heads, period {p}, T {T}", _attention(rng, B, L, H, T), p),
        (f"T = 2 x period = {2 * p2}: two copies", _attention(rng, 2, 2, 3, 2 * p2), p2),
        (f"three copies, the third cut short: period {p3}, T {T3}", _attention(rng, 2, 2, 2, T3), p3),
        (f"T = period + 1 = {p4 + 1}: a single query", _attention(rng, 3, 2, 2, p4 + 1), p4),
        (f"batch of 1, one layer, one head, period {p5}, T {2 * p5 + 1}", _attention(rng, 1, 1, 1, 2 * p5 + 1), p5),
        (f"period 1 (key t itself), T {T5}", _attention(rng, 2, 2, 2, T5), 1),
        (f"non-contiguous weights, period {p6}, T {T6}", non_contiguous(_attention(rng, 2, 3, 2, T6)), p6),
    ]
    for label, weights, period in cases:
        got = call(candidate, (weights, period), ("weights", "period"), label)
        compare(got, induction_score(weights, period), label, _induction_mistakes(weights, period), what="the scores")
    return summary(len(cases), ["T = 2 x period", "a third copy cut short", "a single query", "batch of 1",
                                "one head", "period 1", "non-contiguous weights"],
                   "matches each head's mean weight on key t - period + 1")


# --- text_relation_score ----------------------------------------------------------------------------------------

def _targets(rng: Inputs, T: int, counts: list[int]) -> torch.Tensor:
    """``(len(counts), T)`` long: row b names an earlier key (0 ... t - 1) for ``counts[b]`` of its queries 1 ... T-1,
    chosen at random, and -1 for the others."""
    targets = torch.full((len(counts), T), -1, dtype=torch.long)
    for b, n in enumerate(counts):
        queries = 1 + rng.permutation(T - 1)[:n]
        targets[b, queries] = (rng.rand(n) * queries).long().clamp(max=queries - 1)
    return targets


def _picked(weights: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """``(B, L, H, T)``: the weight from each query t to key ``keys[b, t]`` (an index 0 ... T-1)."""
    return weights.gather(-1, keys[:, None, None, :, None].expand(*weights.shape[:-1], 1)).squeeze(-1)


def _relation_mistakes(weights: torch.Tensor, targets: torch.Tensor):
    B, T = targets.shape
    counted = targets >= 0
    mask = counted[:, None, None]  # (B, 1, 1, T)
    n = counted.sum()
    on = _picked(weights, targets.clamp(min=0))
    last = _picked(weights, targets % T)  # -1 read as the last key
    query = torch.arange(T).expand(B, T)
    per_row = (on * mask).sum(-1) / counted.sum(-1)[:, None, None]  # (B, L, H)
    b_idx, t_idx = counted.nonzero(as_tuple=True)
    k_idx = targets[b_idx, t_idx]
    first = targets[:1].expand(B, T)
    counted_too = ("the queries without a target (-1) are counted: they name no key, so leave them out of both the "
                   "sum and the count")
    return [
        (counted_too, lambda: on.mean((0, -1))),
        (counted_too, lambda: last.mean((0, -1))),
        (counted_too, lambda: on.sum((0, -1)) / n),
        (counted_too, lambda: last.sum((0, -1)) / n),
        ("averaged each sequence, then the sequences: average over all the counted queries of the batch at once, so "
         "that each counts the same whatever its sequence", lambda: per_row.mean(0)),
        ("averaged each sequence, then the sequences: average over all the counted queries of the batch at once, so "
         "that each counts the same whatever its sequence", lambda: per_row.nanmean(0)),
        ("divided by every query, those without a target (-1) included: divide by the number of counted queries",
         lambda: (on * mask).sum((0, -1)) / (B * T)),
        ("divided by every query, those without a target (-1) included: divide by the number of counted queries",
         lambda: (on * mask).sum((0, -1)) / (B * (T - 1))),
        (SWAPPED, lambda: (_picked(weights.transpose(-1, -2), targets.clamp(min=0)) * mask).sum((0, -1)) / n),
        ("summed instead of averaged: a score is a mean weight, between 0 and 1", lambda: (on * mask).sum((0, -1))),
        ("reads the targets as offsets back from the query: each target is the key's own position in the sequence, "
         "not a distance", lambda: (_picked(weights, (query - targets).clamp(0, T - 1)) * mask).sum((0, -1)) / n),
        ("pairs every sequence with every sequence's (query, key) pairs: the key of row b's query comes from row b's "
         "targets, in row b's weights only", lambda: weights[:, :, :, t_idx, k_idx].mean((0, -1))),
        ("uses the first sequence's targets for every sequence: row b of the weights goes with row b of the targets",
         lambda: (_picked(weights, first.clamp(min=0)) * (first >= 0)[:, None, None]).sum((0, -1))
         / (first >= 0).sum()),
        ("returns one score per sequence: average over all the counted queries of the batch together, to get one "
         "score per head", lambda: per_row),
        ("returns the weight of every query: average over the counted queries of the batch, to get one score per head",
         lambda: on * mask),
    ]


def _empty_rows(targets: torch.Tensor):
    """A diagnosis for NaN scores where a row has no counted query (0 / 0), else None."""
    def diagnose(got):
        if bool(torch.isnan(got).any()) and bool(((targets >= 0).sum(-1) == 0).any()):
            return ("NaN where a sequence has no counted query, 0 / 0: average over all the counted queries of the "
                    "batch together, not sequence by sequence")
        return None
    return diagnose


@check("text_relation_score", lesson=LESSON, reference=relation_score,
       builtins=("course_lib.experiments.text_heads.relation_score",),
       pieces="a mask of the counted queries, gather or indexing, and a sum divided by the count")
def check_text_relation_score(candidate) -> str:
    """``relation_score(weights (batch, layers, heads, T, T), targets (batch, T)) -> (layers, heads)``: each head's
    mean weight from every query to the key its target names, over all the queries of the batch that have one
    (a target of -1 names none: those do not count)."""
    rng = Inputs()
    B, L, H, T = rng.int(3, 4), rng.int(2, 3), rng.int(4, 5), rng.int(7, 10)
    counts = [T - 1, 1] + [rng.int(2, T - 3) for _ in range(B - 2)]
    T2, T3, T4, T5 = rng.int(5, 9), rng.int(4, 8), rng.int(4, 8), rng.int(4, 8)
    single = torch.full((3, T3), -1, dtype=torch.long)
    q3 = rng.int(1, T3 - 1)
    single[1, q3] = rng.int(0, q3 - 1)
    previous = torch.arange(-1, T5 - 1).expand(2, T5).clone()  # key t - 1 for every query, none for query 0
    main = _targets(rng, T, counts)
    # Row 1's one counted query is not its last query, which has no target: a target of -1 read as the last key (a
    # wrap-around) picks that query's weight on itself, so that mistake differs from dividing by every query.
    q1 = rng.int(1, T - 2)
    main[1] = -1
    main[1, q1] = rng.int(0, q1 - 1)
    cases = [
        (f"batch {B}, {L} layers, {H} heads, T {T}, rows with {', '.join(map(str, counts))} counted queries",
         _attention(rng, B, L, H, T), main),
        (f"a row without any counted query, batch 3, T {T2}", _attention(rng, 3, 2, 2, T2),
         _targets(rng, T2, [rng.int(2, T2 - 1), 0, rng.int(1, T2 - 1)])),
        (f"a single counted query in the whole batch (row 1, query {q3}), T {T3}", _attention(rng, 3, 2, 2, T3),
         single),
        (f"batch of 1, one layer, one head, T {T4}", _attention(rng, 1, 1, 1, T4), _targets(rng, T4, [T4 - 2])),
        (f"every target t - 1 (the previous token), T {T5}", _attention(rng, 2, 2, 3, T5), previous),
        (f"non-contiguous weights and targets, T {T2}", non_contiguous(_attention(rng, 3, 2, 2, T2)),
         non_contiguous(_targets(rng, T2, [T2 - 1, 2, 3]))),
    ]
    for label, weights, targets in cases:
        got = call(candidate, (weights, targets), ("weights", "targets"), label)
        compare(got, relation_score(weights, targets), label, _relation_mistakes(weights, targets),
                what="the scores", diagnose=_empty_rows(targets))
    return summary(len(cases), ["a row without a counted query", "a single counted query", "batch of 1", "one head",
                                "the previous token", "non-contiguous inputs"],
                   "matches each head's mean weight on the named keys, over the counted queries of the batch")


# --- silenced_loss ----------------------------------------------------------------------------------------------

def _random_model(V: int, d_model: int, n_heads: int, n_layers: int, max_len: int, mlp: bool,
                  seed: int) -> TransformerLM:
    """A TransformerLM with weights far larger than its initialisation gives (embeddings of size 1, each linear map
    of gain about 2, LayerNorm gains and biases far from 1 and 0): then silencing any head moves the loss clearly,
    and so does every classic mistake."""

    def build():
        model = TransformerLM(V, d_model, n_heads, n_layers, max_len, mlp=mlp)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in ("embed.weight", "positions.table.weight"):
                    p.copy_(torch.randn_like(p))
                elif p.dim() == 2:
                    p.copy_(2 * torch.randn_like(p) / math.sqrt(p.shape[1]))
                elif "ln" in name and name.endswith("weight"):
                    p.copy_(1.0 + 0.4 * torch.randn_like(p))
                else:
                    p.copy_(0.4 * torch.randn_like(p))
        return model

    return seeded_module(build, seed=seed)


def _logits(model: TransformerLM, ids: torch.Tensor, heads) -> torch.Tensor:
    with torch.no_grad(), capture(model, attention=False, silence=list(heads)):
        return model(ids)


def _shifted(logits: torch.Tensor, ids: torch.Tensor, **kwargs) -> torch.Tensor:
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1), **kwargs)


def _loss_mistakes(model: TransformerLM, ids: torch.Tensor, heads) -> list[tuple[str, float]]:
    """``(diagnosis, the loss that mistake returns)``, computed before the learner's code sees the model."""
    n_layers, n_heads = len(model.blocks), model.config.n_heads
    logits, plain = _logits(model, ids, heads), _logits(model, ids, [])
    V = logits.shape[-1]
    found = [
        ("the targets are not shifted: the logits at position t predict the token at t + 1, so compare all the "
         "positions but the last with all the tokens but the first", F.cross_entropy(logits.reshape(-1, V),
                                                                                     ids.reshape(-1))),
        ("shifted the wrong way: the logits at position t predict the token at t + 1, not the token at t - 1",
         F.cross_entropy(logits[:, 1:].reshape(-1, V), ids[:, :-1].reshape(-1))),
        ("nothing is silenced: the heads of `heads` must contribute nothing while the model predicts",
         _shifted(plain, ids)),
        ("in bits, not nats: the loss is the natural-log cross-entropy, as the loss function gives it",
         _shifted(logits, ids) / math.log(2)),
        ("summed instead of averaged: the loss is the mean over every predicted token",
         _shifted(logits, ids, reduction="sum")),
        ("applies a softmax before the cross-entropy, which takes the raw logits (it applies log-softmax itself)",
         _shifted(logits.softmax(-1), ids)),
    ]
    swapped = [(h, l) for l, h in heads]
    if all(l < n_layers and h < n_heads for l, h in swapped):
        found.insert(2, (SILENCED_SWAPPED, _shifted(_logits(model, ids, swapped), ids)))
    return [(diagnosis, float(value)) for diagnosis, value in found]


SILENCED_SWAPPED = ("layer and head swapped: each pair of `heads` is (layer, head), the layer first, as the silencing "
                    "takes it")


def _as_loss(got, label: str, B: int, T: int) -> float:
    """The answer as a float, or ``Fail`` saying what came instead of one number."""
    if got is None:
        raise Fail(f"returned None ({label}): did you forget `return`?")
    if isinstance(got, torch.Tensor):
        check_tensor(got, torch.zeros(()), label, "the loss")
        if got.dim() != 0:
            shape = tuple(got.shape)
            if shape in ((B, T - 1), (B * (T - 1),)):
                raise Fail(f"returns one loss per predicted token, shape {shape_str(shape)} ({label}): average them "
                           f"into one number")
            if shape in ((B, T), (B * T,)):
                raise Fail(f"returns one loss per position, shape {shape_str(shape)} ({label}): the last position "
                           f"has no next token to predict; average the losses of the others into one number")
            if shape == (B,) and B > 1:
                raise Fail(f"returns one loss per sequence, shape ({B},) ({label}): average over every predicted "
                           f"token of the batch into one number")
            raise Fail(f"returns a tensor of shape {shape_str(shape)} ({label}); expected the loss as one number, a "
                       f"Python float (or a 0-d tensor)")
        if not got.is_floating_point():
            raise Fail(f"returns a tensor of dtype {got.dtype} ({label}); expected the loss, a float")
        return float(got.detach())
    if isinstance(got, (int, float)) and not isinstance(got, bool):
        return float(got)
    raise Fail(f"returns {describe_type(got)} ({label}); expected the loss as a Python float (or a 0-d tensor)")


def _matches(a: float, b: float) -> bool:
    """Equal as two right ways of computing the loss are (float32 rounding moves it by about 1e-6): tight, so that a
    mistake whose loss happens to lie near the right one is still told apart."""
    return math.isclose(a, b, rel_tol=2e-5, abs_tol=1e-6)


def _state(model: TransformerLM) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


@check("silenced_loss", lesson=LESSON, reference=silenced_loss,
       builtins=("course_lib.experiments.text_heads.silenced_loss",
                 "course_lib.experiments.text_heads.attention_and_loss"),
       pieces="capture(model, attention=False, silence=heads) in a with block, the logits and F.cross_entropy")
def check_silenced_loss(candidate) -> str:
    """``silenced_loss(model, ids (batch, T), heads) -> float``: the mean next-token cross-entropy (nats) of the
    TransformerLM ``model`` on ``ids`` with the ``(layer, head)`` pairs of ``heads`` silenced. Each case gets a model
    of its own, in training or in eval mode: afterwards it must be as it was (weights, mode, no head silenced)."""
    rng = Inputs()
    V, d_head = rng.int(12, 20), rng.int(4, 6)
    B, T = rng.int(2, 4), rng.int(6, 10)
    l1 = rng.int(0, 3)
    h1 = (l1 + rng.int(1, 3)) % 4  # another number than the layer's: swapped, the pair names another head
    h2, h3, h5 = rng.int(0, 3), rng.int(0, 1), rng.int(1, 2)
    # (label, (heads, layers, mlp), heads silenced, batch, T, handed over in training mode)
    cases = [
        (f"4 layers of 4 heads, layer {l1}'s head {h1} silenced, batch {B}, T {T}", (4, 4, True), [(l1, h1)], B, T,
         True),
        (f"3 layers of 4 heads, two heads in different layers, T {T}", (4, 3, True), [(0, 3), (2, h2)], B, T, False),
        ("no head silenced (an empty list), 2 layers of 2 heads", (2, 2, True), [], B, T, True),
        (f"every head of layer {h3}, 2 layers of 4 heads", (4, 2, True), [(h3, h) for h in range(4)], B, T, False),
        (f"an attention-only model (mlp=False), 3 layers of 3 heads, batch of 1, T {T}", (3, 3, False),
         [(0, h5), (2, (h5 + 1) % 3)], 1, T, True),
        ("T = 2 (one prediction per sequence), 2 layers of 3 heads", (3, 2, True), [(1, rng.int(0, 2))], B, 2,
         False),
    ]
    for index, (label, (n_heads, n_layers, mlp), heads, batch, time, training) in enumerate(cases):
        model = _random_model(V, n_heads * d_head, n_heads, n_layers, max(time, 10), mlp, rng.seed * 7 + index)
        model.train(training)
        ids = rng.randint(V, batch, time)
        expected = silenced_loss(model, ids, heads)
        mistakes = _loss_mistakes(model, ids, heads)
        before, logits_before = _state(model), _logits(model, ids, [])
        try:
            got = call(candidate, (model, ids, list(heads)), ("model", "ids", "heads"), label)
        except Fail as failure:
            if "is outside this model's" in failure.message:
                raise Fail(f"{SILENCED_SWAPPED} ({label}): the silencing refused a pair outside the model's "
                           f"{n_layers} layers x {n_heads} heads") from None
            raise
        value = _as_loss(got, label, batch, time)
        if not math.isfinite(value):
            raise Fail(f"returns {fmt_number(value)} ({label}); expected the mean loss, {fmt_number(expected)}")
        if not _matches(value, expected):
            for diagnosis, wrong in mistakes:
                if _matches(value, wrong):
                    raise Fail(f"{diagnosis} ({label})")
            raise Fail(f"returned loss {fmt_number(value)} ({label}); expected {fmt_number(expected)}, the mean "
                       f"next-token loss in nats with those heads silenced")
        _expect_as_before(model, ids, before, logits_before, training, label)
    return summary(len(cases), ["no head silenced", "one head", "two heads in different layers",
                                "every head of a layer", "an attention-only model", "T = 2",
                                "models in training and in eval mode"],
                   "matches the mean next-token loss with those heads silenced, and leaves the model as it was")


def _expect_as_before(model: TransformerLM, ids: torch.Tensor, before: dict, logits_before: torch.Tensor,
                      training: bool, label: str) -> None:
    """Fail unless the check's model is as it was before the call: weights, mode, and its outputs."""
    after = model.state_dict()
    changed = [name for name, value in before.items() if name not in after or not torch.equal(after[name], value)]
    if changed:
        raise Fail(f"changes the model's weights, {', '.join(changed[:3])}{', ...' if len(changed) > 3 else ''} "
                   f"({label}): silence the heads for the one forward pass only (capture or ablate_heads does that "
                   f"without touching a weight), so that the model is left as you found it")
    if model.training != training:
        now, was = ("eval", "training") if training else ("training", "eval")
        raise Fail(f"leaves the model in {now} mode; it was in {was} mode before the call ({label}): note the mode "
                   f"first and put it back afterwards, even after an error")
    with torch.no_grad():
        logits_after = model(ids)
    if not torch.equal(logits_after, logits_before):
        raise Fail(f"the heads stay silenced after the call: the model's outputs differ from before it ({label}); "
                   f"silence them only inside a `with` block around the forward pass, so that the silencing ends "
                   f"with it")
