"""The machinery every check shares: a one-line result, a safe way to call the learner's code, and
comparisons that name the mistake instead of dumping two tensors.

A check never raises. Whatever the learner's function does (raise, return None, return NaN, change
its inputs), the check turns it into a ``CheckResult`` whose one line says what happened.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import inspect
import math
import random
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from course_lib.validation import shape_str
from . import registry

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

    def __init__(self, message: str, about_inputs: bool = True):
        super().__init__(message)
        self.message = message
        self.about_inputs = about_inputs  # False: the same on any input, so the message names no seed


class _NotImplementedYet(Exception):
    pass


@dataclass
class Settings:
    """Module-level settings of every check. ``time_limit``: seconds, overriding each check's own limit
    when set (None: each check's own, 5 s by default; 0: no limit)."""

    time_limit: float | None = None


settings = Settings()


class TooSlow(BaseException):
    """Raised by the alarm inside a check that ran past its time limit. A BaseException, so that a learner's
    ``except Exception:`` cannot swallow it."""

    def __init__(self, seconds: float):
        super().__init__(seconds)
        self.seconds = seconds
        self.label = ""


@contextlib.contextmanager
def time_limited(seconds: float | None):
    """Raise ``TooSlow`` in the block after ``seconds`` (SIGALRM): only where the platform has
    ``signal.setitimer`` and only in the main thread; elsewhere (Windows, a worker thread) no limit.
    The previous SIGALRM handler, and a previous timer with its remaining time, are restored."""
    if not seconds or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise TooSlow(seconds)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if old_delay > 0:  # someone else's alarm was pending: let it ring when it would have
            remaining = max(old_delay - (time.monotonic() - start), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, remaining, old_interval)


# The seed of the check running now: ``Inputs()`` draws from it; failures print it.
_SEED: contextvars.ContextVar[int] = contextvars.ContextVar("check_seed", default=0)


def fresh_seed() -> int:
    """A new seed for every call, small enough to read and type: ``check_x(x, seed=81234)`` repeats it."""
    return random.SystemRandom().randrange(1, 100_000)


def check(name: str, *, lesson: str, reference: Callable, builtins: Sequence[str] = (), pieces: str = "",
          time_limit: float = 5.0, warm_up: Callable[[], object] | None = None) -> Callable:
    """Declare the check of exercise ``name`` of ``lesson``: turns ``body(candidate) -> success message`` into
    ``check_<name>(candidate, *, seed=None) -> CheckResult``, which never raises, and registers it.

    ``reference`` is a right answer (timed by ``time_checks()``, read by graders). ``builtins`` are the
    dotted paths of ready-made functions that do the exercise for the learner: the check still passes
    with them, and says so, suggesting the ``pieces`` to build it from. Each call draws fresh random
    inputs from a new seed (or ``seed``), shown in a failure's message; ``time_limit`` seconds at most.
    ``warm_up()`` runs once per process before the first timed call: PyTorch's one-off costs (the first
    ``torch.optim`` step loads seconds of code on a busy machine) must not count as the learner's time.
    """

    def decorate(body: Callable[[object], str]) -> Callable[..., CheckResult]:
        entry_builtins = tuple(builtins)
        pending_warm_up = [warm_up] if warm_up is not None else []

        @functools.wraps(body)
        def run(candidate, *, seed: int | None = None) -> CheckResult:
            seed = fresh_seed() if seed is None else int(seed)
            token = _SEED.set(seed)
            limit = settings.time_limit if settings.time_limit is not None else time_limit
            try:
                if candidate is None or not callable(candidate):
                    raise Fail(f"expected your function {name} itself (e.g. check_{name}({name})), "
                               f"got {describe_type(candidate)}", about_inputs=False)
                with contextlib.ExitStack() as stack:
                    # A learner's deprecation warning would bury the one line; the result says what matters.
                    stack.enter_context(warnings.catch_warnings())
                    warnings.simplefilter("ignore")
                    # The check's own world, whatever the notebook set: gradients on (a learner's
                    # `with torch.no_grad():` around the check), float32 on the CPU by default.
                    stack.enter_context(torch.inference_mode(False))
                    stack.enter_context(torch.enable_grad())
                    stack.enter_context(_default_dtype(torch.float32))
                    if torch.get_default_device().type != "cpu":
                        # Only then: as a context, torch.device routes every torch call through Python.
                        stack.enter_context(torch.device("cpu"))
                    if pending_warm_up:
                        with contextlib.suppress(Exception):
                            pending_warm_up.pop()()
                    delegation = stack.enter_context(Delegation(entry_builtins, candidate))
                    stack.enter_context(time_limited(limit))
                    message = body(candidate)
                note = delegation.note(pieces)
                return CheckResult(name, True, message + note)
            except _NotImplementedYet:
                return CheckResult(name, False, NOT_IMPLEMENTED, implemented=False)
            except Fail as failure:
                seeded = f"; seed {seed}" if failure.about_inputs else ""
                return CheckResult(name, False, failure.message + seeded)
            except TooSlow as slow:
                where = f" ({slow.label})" if slow.label else ""
                return CheckResult(name, False, f"your answer took longer than {slow.seconds:g} s{where}: it may "
                                                f"loop forever; check that every loop ends; seed {seed}")
            except Exception as error:  # a bug in the check must not look like the learner's
                return CheckResult(name, False, f"the check itself failed ({type(error).__name__}: "
                                                f"{_first_line(error)}); please report this to the course")
            finally:
                _SEED.reset(token)

        run.exercise = name
        run.lesson = lesson
        registry.register(registry.Exercise(name, lesson, run, reference, entry_builtins, pieces, time_limit))
        return run

    return decorate


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


# --- delegation: did the learner call the ready-made function? ---------------------------------------------------

_LEARNER_RUNNING = [False]  # True only while ``call`` runs the learner's code: the check's own calls don't count


def _resolve(path: str):
    """``"torch.nn.functional.softmax"`` -> (owner, attribute name, object); None when it does not exist."""
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for part in parts[split:-1]:
                owner = getattr(owner, part)
            return owner, parts[-1], getattr(owner, parts[-1])
        except AttributeError:
            return None
    return None


def builtin_label(path: str) -> str:
    """How a message names a built-in: "F.softmax", "torch.softmax", "course_lib's causal_mask"."""
    if path.startswith("course_lib."):  # course_lib.<part>.<module>.<name>
        return f"course_lib's {'.'.join(path.split('.')[3:]) or path.split('.')[-1]}"
    for long, short in (("torch.nn.functional.", "F."), ("torch.nn.", "nn.")):
        if path.startswith(long):
            return short + path[len(long):]
    return path


def _learner_globals(candidate) -> list[dict]:
    """The global namespaces of the learner's code (a function's module, a class's methods' module)."""
    spaces, seen = [], set()
    for code_owner in _functions_of(candidate):
        space = getattr(code_owner, "__globals__", None)
        if isinstance(space, dict) and id(space) not in seen:
            seen.add(id(space))
            spaces.append(space)
    return spaces


def _functions_of(candidate) -> list:
    target = candidate.func if isinstance(candidate, functools.partial) else candidate
    if inspect.ismethod(target):
        target = target.__func__
    if inspect.isfunction(target):
        return [target]
    cls = target if isinstance(target, type) else type(target)
    found = []
    for klass in getattr(cls, "__mro__", ()):
        if klass.__module__.split(".")[0] in ("torch", "builtins"):
            continue
        for value in vars(klass).values():
            function = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            if inspect.isfunction(function):
                found.append(function)
    return found


# id(namespace) -> (its size, {id(value): [names bound to it]}): torch's and course_lib's module namespaces
# are large and do not change while a course runs, so a check need not read all of them every time.
_NAME_INDEX: dict[int, tuple[int, dict[int, list[str]]]] = {}
_COURSE_MODULES: list = [-1, []]  # [len(sys.modules) when listed, course_lib's module namespaces]


def _keys_bound_to(space: dict, values: list) -> list[str]:
    """The names in ``space`` bound to any of ``values`` (each checked again: the index may be older)."""
    cached = _NAME_INDEX.get(id(space))
    if cached is None or cached[0] != len(space):
        index: dict[int, list[str]] = {}
        for key, value in list(space.items()):
            index.setdefault(id(value), []).append(key)
        cached = _NAME_INDEX[id(space)] = (len(space), index)
    return [key for value in values for key in cached[1].get(id(value), ()) if space.get(key) is value]


def _library_namespaces(scanned: Sequence[str]) -> list[dict]:
    """The namespaces of the ``scanned`` torch modules and of course_lib's modules outside its checks."""
    if _COURSE_MODULES[0] != len(sys.modules):
        _COURSE_MODULES[:] = [len(sys.modules), [
            module for name, module in list(sys.modules.items())
            if (name == "course_lib" or name.startswith("course_lib."))
            and not name.startswith(("course_lib.checks", "course_lib.tools")) and module is not None]]
    return [vars(sys.modules[name]) for name in scanned if name in sys.modules] + [vars(m) for m in _COURSE_MODULES[1]]


class Delegation:
    """While active, every binding of each built-in in ``paths`` (its own attribute, the same object in
    torch's and course_lib's modules, names the learner imported into their globals) is a counting
    wrapper that calls through. Only calls made while the learner's code runs count. Restored on exit."""

    _SCANNED = ("torch", "torch.nn.functional", "torch.special", "torch.linalg")

    def __init__(self, paths: Sequence[str], candidate):
        self.paths = tuple(paths)
        self.candidate = candidate
        self.counts = {path: 0 for path in self.paths}
        self._undo: list[Callable[[], None]] = []

    def __enter__(self) -> Delegation:
        if not self.paths:
            return self
        try:
            found_paths = [(path, found) for path in self.paths if (found := _resolve(path)) is not None]
            # Every other name bound to each built-in, looked up before anything is patched.
            originals = [found[2] for _, found in found_paths]
            aliases = [(space, key) for space in _library_namespaces(self._SCANNED)
                       for key in _keys_bound_to(space, originals)]
            aliases += [(space, key) for space in _learner_globals(self.candidate)
                        for key, value in list(space.items()) if any(value is o for o in originals)]
            wrappers = {}
            for path, (owner, attr, original) in found_paths:
                if _is_the(self.candidate, original):
                    self.counts[path] += 1  # the learner passed the built-in itself
                wrapper = self._counting(path, original)
                wrappers[id(original)] = (original, wrapper)
                self._patch(owner, attr, wrapper)
            for space, key in aliases:
                value = space.get(key)
                hit = wrappers.get(id(value))
                if hit is not None and hit[0] is value:  # not already the wrapper (the owner's own name)
                    self._patch_dict(space, key, hit[1])
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        while self._undo:
            self._undo.pop()()

    def _counting(self, path: str, original):
        counts = self.counts

        @functools.wraps(original)
        def counting(*args, **kwargs):
            if _LEARNER_RUNNING[0]:
                counts[path] += 1
            return original(*args, **kwargs)

        return counting

    def _patch(self, owner, attr: str, wrapper) -> None:
        had_own = isinstance(owner, type) and attr in vars(owner)
        old = vars(owner)[attr] if isinstance(owner, type) and had_own else getattr(owner, attr)
        setattr(owner, attr, wrapper)
        if isinstance(owner, type) and not had_own:
            self._undo.append(lambda: delattr(owner, attr))
        else:
            self._undo.append(lambda: setattr(owner, attr, old))

    def _patch_dict(self, space: dict, key: str, wrapper) -> None:
        old = space[key]
        space[key] = wrapper
        self._undo.append(lambda: space.__setitem__(key, old))

    def used(self) -> list[str]:
        return [path for path in self.paths if self.counts[path]]

    def note(self, pieces: str) -> str:
        used = self.used()
        if not used:
            return ""
        name = builtin_label(used[0])
        called = f"you called {name}" if name.startswith("course_lib") else f"you called the built-in {name}"
        return f" — {called}" + (f"; try it with the pieces ({pieces})" if pieces else "")


def _is_the(candidate, original) -> bool:
    target = candidate.func if isinstance(candidate, functools.partial) else candidate
    return target is original


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
        warn_always = torch.is_warn_always_enabled()
        torch.set_warn_always(True)  # PyTorch's warn-once warnings (`x.T` on a batch) every time, not once a session
        _LEARNER_RUNNING[0] = True
        try:
            result = candidate(*args)
        except NotImplementedError as error:
            _explain_not_implemented(error, candidate, label)
            raise _NotImplementedYet from None
        except TooSlow as slow:
            slow.label = label
            raise
        except SystemExit as error:
            raise Fail(f"calls exit() or sys.exit() ({label}), which would stop the notebook's kernel: "
                       f"return the answer instead (exit code {error.code!r})") from None
        except Exception as error:
            if any("`x.T`" in str(w.message) for w in caught):
                raise Fail(f"uses .T on a tensor with more than 2 dimensions ({label}): it reverses every "
                           f"axis; swap the last two with .transpose(-2, -1)") from None
            raise Fail(describe_exception(error, label)) from None
        finally:
            _LEARNER_RUNNING[0] = False
            torch.set_warn_always(warn_always)
    if not inplace_ok:
        for name, old, new in zip(names, before, args):
            if old is not None and not same(old, new.detach()):
                raise Fail(f"changes its input `{name}` in place ({label}): build a new tensor instead "
                           f"(write `y = x + ...`, not `x += ...` or `x[...] = ...`)")
    return result


def describe_type(value) -> str:
    """"a list", "an int", "a NumPy array", "a generator": what a learner's answer is, with its article."""
    if type(value).__module__ == "numpy" and type(value).__name__ == "ndarray":
        return "a NumPy array (use torch operations, or torch.from_numpy)"
    if inspect.isgenerator(value):
        return "a generator (a `yield`, or a comprehension in round brackets): build the result itself"
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


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
            raise Fail("has no forward method: define `def forward(self, x, mask=None):` in the class",
                       about_inputs=False)
        raise Fail(describe_exception(error, label))
    name = frame.f_code.co_qualname
    if "<locals>" in name or name.startswith("<"):
        name = frame.f_code.co_name
    raise Fail(f"calls `{name}`, which is not implemented yet: finish that exercise first", about_inputs=False)


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


def check_tensor(got: torch.Tensor, expected: torch.Tensor, label: str, what: str = "the output") -> None:
    """Fail on a tensor no comparison can read: on another device (``meta`` holds no values), complex,
    sparse. Each gets a diagnosis rather than an error from deep inside PyTorch."""
    if got.device != expected.device:
        if got.device.type == "meta":
            raise Fail(f"your answer produced tensors on device 'meta' ({label}), which hold no values: look for "
                       f"device='meta', torch.empty(...) on meta, or torch.set_default_device('meta'); create "
                       f"new tensors with torch.zeros_like(x) or device=x.device")
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


class Inputs:
    """Random inputs drawn from the running check's seed (a new one on every call) plus ``offset``,
    without touching the global random state (the learner's seeds stay intact)."""

    def __init__(self, offset: int = 0):
        self.seed = _SEED.get()
        self.generator = torch.Generator().manual_seed(self.seed * 1009 + offset)

    def randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=self.generator)

    def rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=self.generator)

    def randint(self, high: int, *shape: int) -> torch.Tensor:
        return torch.randint(0, high, shape, generator=self.generator)

    def permutation(self, n: int) -> torch.Tensor:
        return torch.randperm(n, generator=self.generator)

    def int(self, low: int, high: int) -> int:
        """A random int from ``low`` to ``high``, both included."""
        return int(torch.randint(low, high + 1, (), generator=self.generator))

    def choice(self, options: Sequence):
        return options[self.int(0, len(options) - 1)]


def non_contiguous(t: torch.Tensor) -> torch.Tensor:
    """The same values in a strided (non-contiguous) view, as slicing or transposing produce."""
    wide = torch.stack([t, torch.zeros_like(t)], dim=-1)  # every value followed by a gap
    return wide[..., 0]


def seeded_module(factory: Callable[[], torch.nn.Module], seed: int | None = None) -> torch.nn.Module:
    """Build a module from ``seed`` (default: the running check's) without disturbing the global random state."""
    seed = _SEED.get() if seed is None else seed
    with torch.random.fork_rng(devices=[]):
        # The CPU generator only: fork_rng(devices=[]) saves no other, and torch.manual_seed would also
        # queue a seed for CUDA, XPU and MTIA, recording the call stack for each (milliseconds per check).
        torch.default_generator.manual_seed(seed)
        return factory()


def lazy(function: Callable, *args, **kwargs) -> Callable[[], object]:
    """``function(*args, **kwargs)``, computed on first use and remembered: mistakes cost nothing on a right answer."""
    return functools.cache(lambda: function(*args, **kwargs))


def summary(n_cases: int, kinds: Sequence[str], verified: str = "matches the reference") -> str:
    """The success line: the same on every call (no random sizes), so notebooks can store it."""
    return f"{verified} on {n_cases} random inputs, incl. " + "; ".join(kinds)


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
