"""Checks for lesson 10, why transformers are fast: a GRU's forward pass as a loop over time, how far information
can travel through layers with a given mask, and reading off where the transformer overtakes the GRU in a
measurement."""

from __future__ import annotations

import numbers

import torch
from torch import nn

from course_lib.experiments.changes import window_mask
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


# --- reach ------------------------------------------------------------------------------------------------------

def _reach(mask, n_layers, hops=None, residual=True, transposed=False):
    """Which inputs each output can depend on after ``n_layers`` layers with ``mask`` (the right answer, the
    defaults), or the same with one classic mistake: ``hops`` layers counted instead, no residual, transposed."""
    T = mask.shape[0]
    hop = mask | torch.eye(T, dtype=torch.bool) if residual else mask  # one layer: what i attends to, and i itself
    reached = torch.eye(T, dtype=torch.bool)  # no layer yet: each output is its own input
    for _ in range(n_layers if hops is None else max(hops, 0)):
        reached = (hop.int() @ reached.int()) > 0  # (T, T): i reaches j if i attends to some k that reaches j
    return reached.T.contiguous() if transposed else reached


def _reach_mistakes(mask, n_layers):
    mistakes = [
        ("the residual is missing: a position always keeps its own input through the residual, even where the mask "
         "does not let it attend to itself", {"residual": False}),
        (f"one hop too few: with {n_layers} layer(s) information can hop {n_layers} time(s); with 0 layers each "
         f"output depends only on its own input", {"hops": n_layers - 1}),
        (f"one hop too many: with {n_layers} layer(s) information can hop {n_layers} time(s), not "
         f"{n_layers + 1}", {"hops": n_layers + 1}),
        ("rows and columns swapped: row i must say which inputs the output at position i depends on, as the mask's "
         "row i says which keys query i reads", {"transposed": True}),
    ]
    # first: with a mask that has its diagonal, the mask itself is also "one hop" at 2 layers; name the cause
    found = [("returns the mask itself, whatever the number of layers: each layer lets information hop once "
              "more", lambda: mask)]
    return found + [(diagnosis, lazy(_reach, mask, n_layers, **kw)) for diagnosis, kw in mistakes]


@check("reach", lesson=LESSON, reference=_reach,
       pieces="the mask as a table of one-hop links, composed once per layer",
       time_limit=10.0)
def check_reach(candidate) -> str:
    """``reach(mask (T, T) bool, n_layers) -> (T, T) bool``: True where the output at position i after ``n_layers``
    layers (each with ``mask`` and a residual) can depend on the input at position j."""
    rng = Inputs()
    T1, T2, T3, T4, T5 = rng.int(6, 12), rng.int(8, 16), rng.int(5, 9), rng.int(4, 8), rng.int(20, 40)
    w = rng.int(2, 4)
    previous_only = torch.zeros(T3, T3, dtype=torch.bool)
    previous_only[torch.arange(1, T3), torch.arange(T3 - 1)] = True  # i reads i - 1 only, not itself
    random_mask = rng.rand(T4, T4) < 0.3
    cases = [  # the mask without its diagonal first: there every classic mistake gives its own answer
        (previous_only, rng.int(2, 3), f"each position reads only the one before it (not itself), T {T3}"),
        (torch.ones(T1, T1, dtype=torch.bool).tril(), rng.int(2, 4), f"causal mask, T {T1}"),
        (window_mask(T2, w), rng.int(2, 4), f"a window of {w}, T {T2}"),
        (random_mask, 2, f"a random mask, T {T4}"),
        (window_mask(T2, w), 0, f"0 layers, a window of {w}, T {T2}"),
        (window_mask(T2, w), 1, f"1 layer, a window of {w}, T {T2}"),
        (window_mask(T5, 2), rng.int(5, 9), f"a window of 2, many layers, T {T5}"),
    ]
    for mask, n_layers, label in cases:
        label = f"{label}, {n_layers} layer{'s' if n_layers != 1 else ''}"
        got = call(candidate, (mask.clone(), n_layers), ("mask", "n_layers"), label)
        if isinstance(got, torch.Tensor) and got.dtype != torch.bool and got.shape == mask.shape:
            hint = (" (a matrix product counts the paths from j to i: turn counts into yes or no with > 0)"
                    if not got.is_floating_point() or got.max() > 1 else "")
            raise Fail(f"returns a {str(got.dtype).replace('torch.', '')} tensor ({label}): return a bool tensor, "
                       f"True where the output at i can depend on the input at j{hint}")
        compare(got, _reach(mask, n_layers), label, _reach_mistakes(mask, n_layers), what="the reach")
    return summary(len(cases), ["causal mask", "a window", "a mask without the diagonal", "a random mask",
                                "0 layers", "many layers"], "says which inputs every output can depend on")


def _is_count(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


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

