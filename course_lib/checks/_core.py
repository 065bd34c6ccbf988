"""The machinery every check shares: a one-line result, a safe way to call the learner's code, and
comparisons that name the mistake instead of dumping two tensors.

A check never raises. Whatever the learner's function does (raise, return None, return NaN, change
its inputs), the check turns it into a ``CheckResult`` whose one line says what happened.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..validation import shape_str

NOT_IMPLEMENTED = "not implemented yet (replace the `raise NotImplementedError` line with your code)"


@dataclass(frozen=True, repr=False)
class CheckResult:
    """What a check found: ``passed``, a one-line ``message``, and the exercise's ``name``.

    In a notebook it shows as one line: ``✓ name: what was verified`` or ``✗ name: the diagnosis``.
    ``implemented`` is False when the function still raises NotImplementedError.
    """

    name: str
    passed: bool
    message: str
    implemented: bool = True

    def __repr__(self) -> str:
        return f"{'✓' if self.passed else '✗'} {self.name}: {self.message}"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return self.passed


class Fail(Exception):
    """Raised inside a check to stop it with a diagnosis; the decorator turns it into a result."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class _NotImplementedYet(Exception):
    pass


def check(name: str) -> Callable:
    """Turn ``body(candidate) -> success message`` into a check that returns a CheckResult and never raises."""

    def decorate(body: Callable[[object], str]) -> Callable[[object], CheckResult]:
        @functools.wraps(body)
        def run(candidate) -> CheckResult:
            try:
                if candidate is None or not callable(candidate):
                    raise Fail(f"expected your function {name} itself (e.g. check_{name}({name})), "
                               f"got {type(candidate).__name__}")
                with warnings.catch_warnings():
                    # A learner's deprecation warning would bury the one line; the result says what matters.
                    warnings.simplefilter("ignore")
                    message = body(candidate)
                return CheckResult(name, True, message)
            except _NotImplementedYet:
                return CheckResult(name, False, NOT_IMPLEMENTED, implemented=False)
            except Fail as failure:
                return CheckResult(name, False, failure.message)
            except Exception as error:  # a bug in the check must not look like the learner's
                return CheckResult(name, False, f"the check itself failed ({type(error).__name__}: "
                                                f"{_first_line(error)}); please report this to the course")

        run.exercise = name
        return run

    return decorate


def _first_line(error: BaseException, limit: int = 160) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# PyTorch's kernels raise NotImplementedError ("... not implemented for 'Long'") or RuntimeError ("...
# Expected a floating point ... Got Long") when they get integers where they need floats.
_INTEGER_DTYPE = re.compile(r"not implemented for '(Long|Int|Short|Char|Byte|Bool)'"
                            r"|(floating point|float).*\bGot:? (Long|Int|Short|Char|Byte|Bool)\b")


def _integer_dtype_error(error: BaseException, label: str) -> str:
    return (f"uses an integer (or bool) tensor where a float is needed ({label}): convert it with .float(), or "
            f"check the order of the arguments (PyTorch: {_first_line(error)})")


def describe_exception(error: Exception, label: str) -> str:
    """A learner-facing sentence for an exception the learner's code raised on the input ``label``."""
    text = str(error)
    if _INTEGER_DTYPE.search(text):
        return _integer_dtype_error(error, label)
    if "Boolean value of Tensor with more than one" in text:
        return (f"uses a tensor as a True/False condition ({label}), as in `if mask:`; a tensor of several "
                f"values is neither: use `if mask is not None:`")
    if "view size is not compatible" in text:
        return (f"calls .view() on a tensor whose memory is not laid out in that order ({label}): "
                f"use .reshape(...), or .contiguous().view(...)")
    if "leaf Variable that requires grad" in text:
        return ("changes a parameter in place while autograd is recording: "
                "wrap the update in `with torch.no_grad():`")
    return f"raised {type(error).__name__} on {label}: {_first_line(error)}"


def call(candidate: Callable, args: Sequence, names: Sequence[str], label: str, inplace_ok: bool = False):
    """Call ``candidate(*args)``, turning its failures into ``Fail`` and spotting inputs changed in place."""
    before = [a.detach().clone() if isinstance(a, torch.Tensor) else None for a in args]
    # fork_rng: a learner's random numbers inside the call must not shift the notebook's seeded ones.
    with warnings.catch_warnings(record=True) as caught, torch.random.fork_rng(devices=[]):
        warnings.simplefilter("always")
        try:
            result = candidate(*args)
        except NotImplementedError as error:
            _explain_not_implemented(error, candidate, label)
            raise _NotImplementedYet from None
        except Exception as error:
            if any("`x.T`" in str(w.message) for w in caught):
                raise Fail(f"uses .T on a tensor with more than 2 dimensions ({label}): it reverses every "
                           f"axis; swap the last two with .transpose(-2, -1)") from None
            raise Fail(describe_exception(error, label)) from None
    if not inplace_ok:
        for name, old, new in zip(names, before, args):
            if old is not None and not same(old, new.detach()):
                raise Fail(f"changes its input `{name}` in place ({label}): build a new tensor instead "
                           f"(write `y = x + ...`, not `x += ...` or `x[...] = ...`)")
    return result


def _own_code(candidate) -> set:
    """The code of the learner's candidate: the function itself, or every method its class defines
    (``__init__``, ``forward``, helpers), so an unfinished part of the exercise reads "not implemented yet"."""
    target = candidate.func if isinstance(candidate, functools.partial) else candidate
    codes = set()
    try:
        code = getattr(inspect.unwrap(target), "__code__", None)
    except ValueError:  # a cycle of __wrapped__
        code = None
    if code is not None:
        codes.add(code)
    if inspect.isfunction(target) or inspect.ismethod(target):
        return codes
    cls = target if isinstance(target, type) else type(target)
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] in ("torch", "builtins"):
            continue  # nn.Module's own forward raises NotImplementedError when a module has none
        for value in vars(klass).values():
            function = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            if inspect.isfunction(function):
                codes.add(function.__code__)
    return codes


def _explain_not_implemented(error: NotImplementedError, candidate, label: str) -> None:
    """Return if ``candidate`` itself is unfinished; otherwise raise ``Fail`` naming what raised.

    PyTorch raises NotImplementedError for a wrong dtype, and a finished function may call another
    exercise's unfinished function: neither is this exercise's `raise NotImplementedError`.
    """
    if _INTEGER_DTYPE.search(str(error)):
        raise Fail(_integer_dtype_error(error, label))
    traceback = error.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    if traceback is None:
        return
    frame = traceback.tb_frame
    if frame.f_code in _own_code(candidate):
        return
    if frame.f_globals.get("__name__", "").split(".")[0] == "torch":
        if frame.f_code.co_name == "_forward_unimplemented":
            raise Fail("has no forward method: define `def forward(self, x, mask=None):` in the class")
        raise Fail(describe_exception(error, label))
    name = frame.f_code.co_qualname
    if "<locals>" in name or name.startswith("<"):
        name = frame.f_code.co_name
    raise Fail(f"calls `{name}`, which is not implemented yet: finish that exercise first")


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
        raise Fail(f"returned a {type(got).__name__} ({label}); expected {what} as a torch.Tensor of shape "
                   f"{shape_str(expected.shape)}")
    if close(got, expected, atol, rtol) and bool(torch.isfinite(got.detach().to(torch.float64)).all()):
        if got.dtype != expected.dtype:
            raise Fail(f"{what} {'have' if _is_plural(what) else 'has'} dtype {got.dtype} ({label}); "
                       f"expected {expected.dtype}")
        return
    for diagnosis, wrong in mistakes:
        try:
            value = wrong()
        except Exception:  # that mistake could not even have produced an answer here
            continue
        if isinstance(value, torch.Tensor) and close(got, value, atol, rtol):
            raise Fail(f"{diagnosis} ({label})")
    if diagnose is not None and got.shape == expected.shape:
        diagnosis = diagnose(got)
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


def _is_plural(what: str) -> bool:
    """Whether ``what`` ("the weights", "the loss", "parameter 0 after the step") takes a plural verb."""
    words = what.split()
    noun = words[1] if len(words) > 1 and words[0] in ("the", "a", "an", "your") else words[0] if words else ""
    return noun.endswith("s") and not noun.endswith("ss")


class Inputs:
    """Seeded random inputs that never touch the global random state (the learner's seeds stay intact)."""

    def __init__(self, seed: int = 0):
        self.generator = torch.Generator().manual_seed(seed)

    def randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=self.generator)

    def rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=self.generator)

    def randint(self, high: int, *shape: int) -> torch.Tensor:
        return torch.randint(0, high, shape, generator=self.generator)

    def permutation(self, n: int) -> torch.Tensor:
        return torch.randperm(n, generator=self.generator)


def non_contiguous(t: torch.Tensor) -> torch.Tensor:
    """The same values in a strided (non-contiguous) view, as slicing or transposing produce."""
    wide = torch.stack([t, torch.zeros_like(t)], dim=-1)  # every value followed by a gap
    return wide[..., 0]


def seeded_module(factory: Callable[[], torch.nn.Module], seed: int = 0) -> torch.nn.Module:
    """Build a module from a fixed seed without disturbing the global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()


def lazy(function: Callable, *args, **kwargs) -> Callable[[], object]:
    """``function(*args, **kwargs)``, computed on first use and remembered: mistakes cost nothing on a right answer."""
    return functools.cache(lambda: function(*args, **kwargs))


def summary(n_cases: int, labels: Sequence[str], verified: str = "matches the reference") -> str:
    return f"{verified} on {n_cases} inputs, incl. " + "; ".join(labels)
