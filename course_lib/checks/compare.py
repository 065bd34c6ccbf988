"""Comparing the learner's answer with the reference, and naming the mistake instead of dumping two tensors.

``compare`` is the usual last step of a check: it fails with the first of these that applies: not a tensor,
a known mistake (``mistakes``: what each mistake would have returned), a wrong shape, dtype, NaN or inf, or
the first value that differs. ``close``, ``fmt_number`` and ``fmt_values`` serve checks of plain numbers.
``shape_error_named`` turns a raw shape error (a sum that lost its axis) into the mistake behind it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from course_lib.apart.answering import meta_message  # noqa: F401 - re-exported
from course_lib.validation import shape_str
from .result import Fail, describe_type


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise-equal shape and values, NaN equal to NaN."""
    return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b) or (
        a.is_floating_point() and torch.allclose(a, b, rtol=0, atol=0, equal_nan=True)))


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """Same shape and values within floating-point tolerance (NaN matches NaN), whatever the dtypes."""
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.shape != b.shape:
        return False
    a, b = a.detach().to(torch.float64), b.detach().to(torch.float64)
    return bool(torch.allclose(a, b, atol=atol, rtol=rtol, equal_nan=True))


def fmt_number(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = f"{x:.3f}"
    return "0.000" if text == "-0.000" else text


def fmt_values(t: torch.Tensor, limit: int = 6) -> str:
    """The first ``limit`` values of a tensor, rounded, on one line."""
    flat = t.detach().reshape(-1)
    if t.dtype == torch.bool:
        values = ["T" if v else "F" for v in flat[:limit].tolist()]
    elif t.is_floating_point():
        values = [fmt_number(v) for v in flat[:limit].tolist()]
    else:
        values = [str(v) for v in flat[:limit].tolist()]
    return "[" + ", ".join(values) + (", …]" if flat.numel() > limit else "]")


def _first_difference(got: torch.Tensor, expected: torch.Tensor) -> str:
    if got.dim() == 0:
        return f"expected {fmt_values(expected)[1:-1]}, got {fmt_values(got)[1:-1]}"
    g, e = got.detach().to(torch.float64), expected.detach().to(torch.float64)
    wrong = ~torch.isclose(g, e, atol=1e-5, rtol=1e-4, equal_nan=True)
    index = tuple(int(i) for i in wrong.nonzero()[0]) if wrong.any() else ()
    if not index:
        return ""
    where = "[" + ", ".join(str(i) for i in index) + "]"
    return (f"at {where} expected {fmt_number(float(e[index]))}, got {fmt_number(float(g[index]))}; "
            f"{int(wrong.sum())} of {wrong.numel()} values differ")


Mistakes = Sequence[tuple[str, Callable[[], object]]]


def mistake_values(mistakes):
    """``(diagnosis, value)`` for each ``(diagnosis, wrong)`` of ``mistakes`` whose ``wrong()`` runs here;
    a mistake that could not even have produced an answer on these inputs is skipped."""
    for diagnosis, wrong in mistakes:
        try:
            value = wrong()
        except Exception:
            continue
        yield diagnosis, value


def name_by_value_and_gradient(got: torch.Tensor, grad: torch.Tensor | None, inputs: torch.Tensor, mistakes: Mistakes,
                               label: str) -> None:
    """Fail naming the mistake whose scalar value *and* gradient with respect to ``inputs`` match the answer's
    (``grad``): two losses computed in different ways can agree in value by chance, never in gradient as well."""
    if grad is None:
        return
    for diagnosis, value in mistake_values(mistakes):
        if not isinstance(value, torch.Tensor) or value.dim() != 0 or not value.requires_grad or not close(got, value):
            continue
        wrong_grad, = torch.autograd.grad(value, inputs, retain_graph=True, allow_unused=True)
        if wrong_grad is not None and close(grad, wrong_grad):
            raise Fail(f"{diagnosis} ({label})")


def compare(got, expected: torch.Tensor, label: str, mistakes: Mistakes = (), what: str = "the output",
            atol: float = 1e-5, rtol: float = 1e-4, diagnose: Callable[[torch.Tensor], str | None] | None = None) -> None:
    """Fail unless ``got`` equals ``expected`` in type, shape, dtype and values.

    ``mistakes`` pairs a diagnosis with a function computing what that mistake would have returned; the
    first one matching ``got`` names the mistake. ``diagnose(got)`` may then recognise a mistake by a
    property of the answer. Otherwise the message shows expected against got.
    """
    if got is None:
        raise Fail(f"returned None ({label}): did you forget `return`?")
    if isinstance(got, tuple) and len(got) and all(isinstance(g, torch.Tensor) for g in got):
        raise Fail(f"returned a tuple of {len(got)} tensors ({label}); {what} should be one tensor of shape "
                   f"{shape_str(expected.shape)}")
    if not isinstance(got, torch.Tensor):
        raise Fail(f"returned {describe_type(got)} ({label}); expected {what} as a torch.Tensor of shape "
                   f"{shape_str(expected.shape)}")
    check_tensor(got, expected, label, what)
    if close(got, expected, atol, rtol) and bool(torch.isfinite(got.detach().to(torch.float64)).all()):
        if got.dtype != expected.dtype:
            raise Fail(f"{what} {'have' if _is_plural(what) else 'has'} dtype {got.dtype} ({label}); "
                       f"expected {expected.dtype}")
        return
    for diagnosis, value in mistake_values(mistakes):
        if isinstance(value, torch.Tensor) and close(got, value, atol, rtol):
            raise Fail(f"{diagnosis} ({label})")
    if diagnose is not None and got.shape == expected.shape:
        try:
            diagnosis = diagnose(got)
        except Exception:  # an answer too odd for this diagnosis: the general message below says what is off
            diagnosis = None
        if diagnosis:
            raise Fail(f"{diagnosis} ({label})")
    plural = _is_plural(what)
    has, is_, contains = ("have", "are", "contain") if plural else ("has", "is", "contains")
    if got.shape != expected.shape:
        raise Fail(f"{what} {has} shape {shape_str(got.shape)} ({label}); expected {shape_str(expected.shape)}")
    if got.dtype != expected.dtype and (got.dtype == torch.bool) != (expected.dtype == torch.bool):
        raise Fail(f"{what} {has} dtype {got.dtype} ({label}); expected {expected.dtype}")
    if got.is_floating_point() and not bool(torch.isfinite(got).all()):
        bad = "NaN" if bool(torch.isnan(got).any()) else "inf"
        raise Fail(f"{what} {contains} {bad} ({label}); expected finite values like {fmt_values(expected)}")
    if got.dim() == 0:
        raise Fail(f"{what} {is_} wrong ({label}): {_first_difference(got, expected)}")
    raise Fail(f"{what} {is_} wrong ({label}): {_first_difference(got, expected)}; "
               f"expected {fmt_values(expected)}, got {fmt_values(got)}")


# What PyTorch says when two shapes do not fit: broadcasting, a matrix product, an axis that is not there.
SHAPE_ERRORS = ("must match the size of tensor", "shapes cannot be multiplied", "size mismatch",
                "doesn't match the broadcast shape", "Expected size", "Dimension out of range",
                "must have at least 2 dimensions", "inconsistent tensor size")


def raised_shape_error(failure: Fail) -> bool:
    """Whether ``failure`` (from ``call``) is the learner's code raising a shape error of PyTorch's."""
    return failure.message.startswith("raised ") and any(words in failure.message for words in SHAPE_ERRORS)


def shape_error_named(failure: Fail, label: str, suspects: Sequence[tuple[str, Callable[[], bool]]]) -> Fail:
    """The ``Fail`` to raise for ``failure``, what ``call`` raised on the input ``label``: where it is a raw
    shape error, the first of ``suspects`` whose test says so is named instead, ``(diagnosis, test)``: the
    test runs the answer (through ``call``) on inputs where that mistake raises nothing, and returns True
    when the answer returns there what the mistake returns. A test that fails or raises names nothing::

        except Fail as failure:
            raise shape_error_named(failure, label, [("the sum lost its axis: ...", lambda: ...)]) from None
    """
    if raised_shape_error(failure):
        for diagnosis, test in suspects:
            try:
                named = bool(test())
            except Fail:  # the answer fails there too, in another way: not this mistake
                named = False
            if named:
                return Fail(f"{diagnosis} ({label})")
    return failure


def softmaxes_without_keepdim(x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """What a softmax over the last axis of a square ``x`` returns when its max, its sum or both lost their axis
    (no keepdim=True): ``[(what lost it, value)]``. On any other matrix the same code raises a shape error."""
    kept = x.max(dim=-1, keepdim=True).values
    lost = x.max(dim=-1).values

    def softmax(shift, keepdim):
        exps = (x - shift).exp()
        return exps / exps.sum(dim=-1, keepdim=keepdim)

    return [("the sum", softmax(0.0, False)), ("the sum", softmax(kept, False)), ("the max", softmax(lost, True)),
            ("the max and the sum", softmax(lost, False))]


def check_tensor(got: torch.Tensor, expected: torch.Tensor, label: str, what: str = "the output") -> None:
    """Fail on a tensor no comparison can read: on another device (``meta`` holds no values), complex,
    sparse. Each gets a diagnosis rather than an error from deep inside PyTorch."""
    if got.device != expected.device:
        if got.device.type == "meta":
            raise Fail(meta_message(label))
        raise Fail(f"{what} is on device '{got.device}' ({label}); the inputs are on '{expected.device}': "
                   f"create new tensors with device=x.device (or torch.zeros_like(x))")
    if got.is_complex() and not expected.is_complex():
        raise Fail(f"{what} is complex (dtype {got.dtype}) ({label}); expected real numbers, dtype {expected.dtype}")
    if got.layout != torch.strided:
        raise Fail(f"{what} is a {str(got.layout).replace('torch.', '')} tensor ({label}); expected an ordinary "
                   f"(dense) tensor: call .to_dense()")


def _is_plural(what: str) -> bool:
    """Whether ``what`` ("the weights", "the loss", "parameter 0 after the step") takes a plural verb."""
    words = what.split()
    noun = words[1] if len(words) > 1 and words[0] in ("the", "a", "an", "your") else words[0] if words else ""
    return noun.endswith("s") and not noun.endswith("ss")



def unpack_pair(got, label: str, expected_out: torch.Tensor, expected_weights: torch.Tensor,
                what: str = "(output, weights)"):
    """The learner's ``(output, weights)``, or ``Fail`` naming what came back instead (one tensor, None,
    the pair in the wrong order)."""
    if got is None:
        raise Fail(f"returned None ({label}): return the pair {what}")
    if isinstance(got, torch.Tensor):
        raise Fail(f"returns one tensor of shape {shape_str(got.shape)} ({label}): return both {what}")
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise Fail(f"returns {describe_type(got)} ({label}); expected the pair {what}")
    out, weights = got
    if weights is None and isinstance(out, torch.Tensor):
        raise Fail(f"returns the weights as None ({label}): return the weights too, {what}")
    if out is None and isinstance(weights, torch.Tensor):
        raise Fail(f"returns the output as None ({label}): return the output too, {what}")
    if isinstance(out, torch.Tensor) and isinstance(weights, torch.Tensor) and (
            (out.shape != expected_out.shape and out.shape == expected_weights.shape
             and weights.shape == expected_out.shape)
            or (close(out, expected_weights) and close(weights, expected_out) and not close(out, expected_out))):
        raise Fail(f"returns (weights, output) ({label}): return {what}, in that order")
    return out, weights
