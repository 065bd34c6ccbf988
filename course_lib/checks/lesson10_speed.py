"""Checks for lesson 10, why transformers are fast: a GRU's forward pass as a loop over time, the length of
each model's dependency chain, and reading off where the transformer overtakes the GRU in a measurement."""

from __future__ import annotations

import numbers

import torch
from torch import nn

from .kit import Fail, Inputs, call, check, compare, describe_type, lazy, non_contiguous, seeded_module, summary

LESSON = "10_speed"


# --- rnn_forward ------------------------------------------------------------------------------------------------

def _rnn_forward(cell, x, h0):
    h, states = h0, []
    for t in range(x.shape[1]):
        h = cell(x[:, t], h)  # (B, H): step t needs the state of step t - 1
        states.append(h)
    return torch.stack(states, dim=1)  # (B, T, H)


def _rnn_variant(cell, x, h0, carry=True, before=False, backwards=False, swapped=False):
    """What ``_rnn_forward`` computes, or the same with one classic mistake."""
    h, states = h0, []
    order = range(x.shape[1] - 1, -1, -1) if backwards else range(x.shape[1])
    for t in order:
        new = cell(h, x[:, t]) if swapped else cell(x[:, t], h if carry else h0)
        states.append(h if before else new)
        h = new
    if backwards:
        states = states[::-1]
    return torch.stack(states, dim=1)


RNN_MISTAKES = (
    ("uses h0 at every step: give each step the state the step before returned, h = cell(x[:, t], h)",
     {"carry": False}),
    ("stores the state from before each step: append the new state that cell(x[:, t], h) returns",
     {"before": True}),
    ("reads the sequence backwards: go from t = 0 to T - 1", {"backwards": True}),
    ("passes the state first: nn.GRUCell takes the input first, cell(x[:, t], h)", {"swapped": True}),
)


def _random_cell(rng: Inputs, offset: int, D: int, H: int) -> nn.GRUCell:
    return seeded_module(lambda: nn.GRUCell(D, H), seed=rng.seed + offset)


@check("rnn_forward", lesson=LESSON, reference=_rnn_forward, time_limit=10.0,
       builtins=("torch._VF.gru",), pieces="the cell, called once per time step, each state fed to the next")
def check_rnn_forward(candidate) -> str:
    """``rnn_forward(cell: nn.GRUCell, x (batch, time, D), h0 (batch, H)) -> (batch, time, H)``: the state after
    every step, by a loop over time; compared with the same loop and with ``nn.GRU`` holding the cell's weights."""
    rng = Inputs()
    H = rng.int(2, 6)
    B, T = rng.int(2, 4), rng.int(5, 8)  # T != B: a (time, batch, H) answer has another shape here
    D2, T2, T3, H4, T4 = H + rng.int(1, 3), rng.int(3, 6), rng.int(20, 40), rng.int(2, 5), rng.int(2, 5)
    same = _random_cell(rng, 1, H, H)
    wider = _random_cell(rng, 2, D2, H)
    other = _random_cell(rng, 3, H4 + 1, H4)
    cases = [  # D = H first: there, passing (h, x) for (x, h) gives numbers, which the diagnosis can name
        (same, f"D = H = {H}, batch {B}, T {T}", rng.randn(B, T, H), rng.randn(B, H)),
        (wider, f"D {D2} ≠ H {H}, batch 2, T {T2}", rng.randn(2, T2, D2), rng.randn(2, H)),
        (wider, f"T = 1, batch of 1, D {D2}, H {H}", rng.randn(1, 1, D2), rng.randn(1, H)),
        (same, f"a long sequence, T {T3}, H {H}", rng.randn(2, T3, H), rng.randn(2, H)),
        (other, f"non-contiguous x and h0, T {T4}, H {H4}", non_contiguous(rng.randn(2, T4, H4 + 1)),
         non_contiguous(rng.randn(2, H4))),
    ]
    for cell, label, x, h0 in cases:
        got = call(candidate, (cell, x, h0), ("cell", "x", "h0"), label)
        if isinstance(got, (list, tuple)) and got and all(isinstance(g, torch.Tensor) for g in got):
            raise Fail(f"returns a {type(got).__name__} of {len(got)} tensors ({label}): stack the states into one "
                       f"(batch, time, H) tensor, torch.stack(states, dim=1)")
        expected = _rnn_forward(cell, x, h0)
        B_, T_, H_ = expected.shape
        mistakes = [(diagnosis, lazy(_rnn_variant, cell, x, h0, **kw)) for diagnosis, kw in RNN_MISTAKES
                    if not kw.get("swapped") or x.shape[-1] == H_]
        if isinstance(got, torch.Tensor) and got.shape == (B_, H_) and T_ > 1:
            raise Fail(f"returns only the last state, shape {tuple(got.shape)} ({label}): return the state after "
                       f"every step, shape (batch, time, H) = {tuple(expected.shape)}")
        if isinstance(got, torch.Tensor) and got.shape == (T_, B_, H_) and T_ != B_:
            raise Fail(f"returns shape (time, batch, H) = {tuple(got.shape)} ({label}): stack along dim=1, "
                       f"torch.stack(states, dim=1), for (batch, time, H)")
        compare(got, expected.detach(), label, mistakes, what="the states")
        if not got.requires_grad:
            raise Fail(f"the states are cut off from autograd ({label}): no gradient would reach the cell's "
                       f"weights; leave out torch.no_grad(), .detach() and .item() in the loop")
    with torch.no_grad():  # and the loop is what nn.GRU computes, with the cell's weights
        cell, _, x, h0 = cases[1]
        gru = nn.GRU(cell.input_size, cell.hidden_size, batch_first=True)
        for ours, theirs in (("weight_ih", "weight_ih_l0"), ("weight_hh", "weight_hh_l0"),
                             ("bias_ih", "bias_ih_l0"), ("bias_hh", "bias_hh_l0")):
            getattr(gru, theirs).copy_(getattr(cell, ours))
        got = call(candidate, (cell, x, h0), ("cell", "x", "h0"), cases[1][1])
        compare(got, gru(x, h0[None])[0], "nn.GRU with the cell's weights", what="the states")
    return summary(len(cases), ["D = H and D ≠ H", "T = 1", "batch of 1", "a long sequence", "non-contiguous inputs"],
                   "matches the loop and nn.GRU with the cell's weights")


# --- sequential_steps -------------------------------------------------------------------------------------------

def _sequential_steps(model_kind, T, n_layers):
    if model_kind == "rnn":
        return T + n_layers - 1  # the layers work like a pipeline: layer l takes position t once l - 1 has it
    return n_layers  # every position of a layer at once; each layer waits for the one below


def _is_count(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _steps_mistakes(kind: str, T: int, L: int):
    """The classic wrong counts for one input, first match wins."""
    if kind == "rnn":
        return [
            (T * L, f"counts T × n_layers for the rnn: layer l can take position t as soon as layer l − 1 has "
                    f"finished position t, without waiting for the whole sequence; follow the longest path "
                    f"through the grid of steps"),
            (T, "ignores n_layers for the rnn: with T = 1 and 3 layers, 3 steps still run one after another"),
            (T + L - 2, "counts the waits between steps, not the steps: a chain of k steps has k − 1 waits"),
            (T + L, "one step too many for the rnn: follow the chain from the first step to the last and count "
                    "its steps"),
        ]
    return [
        (T * L, "lets the transformer's positions wait for each other: the causal mask stops position t from "
                "*using* later positions, yet every position of a layer is computed at the same time"),
        (T, "lets the transformer's positions wait for each other: every position of a layer is computed at the "
            "same time; only the layers wait for each other"),
        (2 * L, "counts attention and MLP as two steps: count one step per layer (block), as the lesson does"),
        (1, "treats the transformer's layers as parallel: layer l needs layer l − 1's output, so the layers run "
            "one after another"),
        (L - 1, "counts the waits between steps, not the steps: a chain of k steps has k − 1 waits"),
    ]


@check("sequential_steps", lesson=LESSON, reference=_sequential_steps,
       builtins=("course_lib.experiments.speed.longest_chain",),
       pieces="the count itself: which steps must one step wait for, and how long is the longest such chain?",
       time_limit=10.0)  # an answer that builds the whole graph of steps is right, and slower
def check_sequential_steps(candidate) -> str:
    """``sequential_steps(model_kind, T, n_layers) -> int``: the steps that must run one after another for
    "rnn" (T + n_layers - 1) and "transformer" (n_layers)."""
    rng = Inputs()
    cases = [("rnn", rng.int(8, 60), rng.int(3, 5)), ("transformer", rng.int(20, 40), rng.int(2, 6)),
             ("rnn", 1, rng.int(2, 5)), ("transformer", 1, 1), ("rnn", rng.int(2, 9), 1),
             ("transformer", rng.int(100, 200), rng.int(2, 6)), ("rnn", rng.int(100, 500), rng.int(2, 8))]
    for kind, T, L in cases:
        label = f"{kind!r}, T {T}, {L} layer{'s' if L > 1 else ''}"
        got = call(candidate, (kind, T, L), ("model_kind", "T", "n_layers"), label)
        if got is None:
            raise Fail(f"returned None ({label}): did you forget `return`?")
        if isinstance(got, torch.Tensor):
            raise Fail(f"returned a tensor ({label}): return the count as a Python int (int(...) or .item())")
        if isinstance(got, float) and got.is_integer():
            raise Fail(f"returned the float {got} ({label}): a count of steps is a whole number, return an int")
        if not _is_count(got):
            raise Fail(f"returned {describe_type(got)} ({label}); expected the number of steps as an int")
        expected = _sequential_steps(kind, T, L)
        if got == expected:
            continue
        if got == _sequential_steps("transformer" if kind == "rnn" else "rnn", T, L):
            other = "transformer" if kind == "rnn" else "rnn"
            raise Fail(f"answers with the {other}'s count for {kind!r} ({label}): are the two kinds swapped?")
        for value, diagnosis in _steps_mistakes(kind, T, L):
            if got == value:
                raise Fail(f"{diagnosis} ({label})")
        raise Fail(f"the count is wrong ({label}): expected {expected}, got {got}")
    return summary(len(cases), ["T = 1", "one layer", "many layers", "T up to 500"], "counts the chain")


# --- overtaking_length ------------------------------------------------------------------------------------------

def _overtaking_length(gru_seconds, transformer_seconds):
    answer = None
    for T in sorted(gru_seconds, reverse=True):  # from the longest length down, while the transformer is faster
        if transformer_seconds[T] < gru_seconds[T]:
            answer = T
        else:
            break
    return answer


def _first_faster(gru, transformer):
    return next((T for T in sorted(gru) if transformer[T] < gru[T]), None)


def _timings(rng: Inputs, lengths, cross: int | None, dip: int | None = None, tie: int | None = None):
    """Seconds per sequence: the GRU's grow like T, the transformer's start higher and cross at ``cross``
    (None: never); ``dip``: one length before the crossing where the transformer is faster by chance;
    ``tie``: a length where both take exactly the same time."""
    gru, transformer = {}, {}
    for T in lengths:
        g = 1e-4 * T * (0.8 + 0.4 * float(rng.rand(1)))
        faster = cross is not None and T >= cross or T == dip
        factor = 0.4 + 0.5 * float(rng.rand(1)) if faster else 1.2 + float(rng.rand(1))
        gru[T], transformer[T] = g, g * factor
    if tie is not None:
        transformer[tie] = gru[tie]
    return gru, transformer


@check("overtaking_length", lesson=LESSON, reference=_overtaking_length)
def check_overtaking_length(candidate) -> str:
    """``overtaking_length(gru_seconds {T: s}, transformer_seconds {T: s}) -> int | None``: the shortest T from
    which the transformer is faster at that T and at every longer T measured; None if it never is."""
    rng = Inputs()
    shortest = 2 ** rng.int(3, 4)
    lengths = [shortest * 2 ** k for k in range(rng.int(5, 7))]  # e.g. 16, 32, ..., 512
    n = len(lengths)
    cross = lengths[rng.int(2, n - 2)]
    dip = lengths[rng.int(0, lengths.index(cross) - 2)]
    tie_at = lengths[lengths.index(cross) - 1]
    cases = [
        ("a crossing in the middle", *_timings(rng, lengths, cross), None),
        ("faster by chance at a short length, for good only later", *_timings(rng, lengths, cross, dip=dip), None),
        ("never faster", *_timings(rng, lengths, None), None),
        ("faster at every length", *_timings(rng, lengths, lengths[0]), None),
        ("a tie just before the crossing", *_timings(rng, lengths, cross, tie=tie_at), None),
        ("the lengths from the longest to the shortest", *_timings(rng, lengths, cross), "reversed"),
        ("faster only at the longest length", *_timings(rng, lengths, lengths[-1]), None),
    ]
    for label, gru, transformer, order in cases:
        if order == "reversed":  # a dict keeps the order its keys came in; this one comes longest first
            gru, transformer = {T: gru[T] for T in lengths[::-1]}, {T: transformer[T] for T in lengths[::-1]}
        expected = _overtaking_length(gru, transformer)
        got = call(candidate, (dict(gru), dict(transformer)), ("gru_seconds", "transformer_seconds"), label)
        where = f"{label}; lengths {sorted(lengths)}"
        if got is not None and not _is_count(got):
            raise Fail(f"returned {describe_type(got)} ({where}); expected a length T (an int) or None")
        if got == expected:
            continue
        if order == "reversed":
            raise Fail(f"relies on the dicts' order ({where}): the lengths can come in any order; sort them first, "
                       f"sorted(gru_seconds)")
        if got is None:
            raise Fail(f"returned None ({where}), but the transformer is faster from T = {expected} on: is the "
                       f"comparison the right way round (faster = fewer seconds, transformer_seconds[T] < "
                       f"gru_seconds[T])? Does your function return its answer?")
        if expected is None:
            raise Fail(f"returned {got}, but the transformer is never faster ({where}): return None then")
        if got == _first_faster(gru, transformer):
            raise Fail(f"returns the first T where the transformer is faster, T = {got}, but it is slower again at a "
                       f"longer T ({where}): it must be faster there and at every longer T")
        if got == _overtaking_length(transformer, gru) or got == _first_faster(transformer, gru):
            raise Fail(f"returns where the GRU is faster ({where}): compare transformer_seconds[T] < gru_seconds[T]")
        ties = _overtaking_length({T: s * (1 + 1e-12) for T, s in gru.items()}, transformer)
        if got == ties:
            raise Fail(f"counts a tie as faster ({where}): at T = {got} both take the same time; use <, not <=")
        if got in range(n) and got not in lengths:
            raise Fail(f"returns a position in the list, {got}, not the length T ({where})")
        raise Fail(f"the length is wrong ({where}): expected {expected}, got {got}")
    return summary(len(cases), ["a lucky short length", "never faster", "always faster", "a tie", "lengths longest first"],
                   "reads the crossing")

