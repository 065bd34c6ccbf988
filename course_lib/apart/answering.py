"""What runs around one call of the learner's answer, in whichever process runs it.

``run_answer(candidate, args, label)`` calls the answer in the world a check promises it (gradients on,
float32 on the CPU, fresh random state), puts back whatever the answer changed of that world, and turns
whatever it raised into ``AnswerFailed`` with a sentence for the learner (``describe_exception``), or
``AnswerNotImplemented`` when the exercise itself still raises NotImplementedError.

``Delegation`` notices that the answer called the ready-made function the exercise asks it to build: while
active, every binding of each built-in the check names (its own attribute, the same object in torch's and
course_lib's modules, names the learner imported) is a counting wrapper that calls through. Such an answer
still passes; its line ends with a note ("— you called the built-in F.softmax; try it with the pieces (...)").
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import random
import re
import sys
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch


class AnswerFailed(Exception):
    """Stops a check with a diagnosis: the answer raised, or did something the check cannot accept; ``message``
    says what, for the learner. The checks know it as ``Fail`` (``course_lib.checks.result``)."""

    def __init__(self, message: str, about_inputs: bool = True):
        super().__init__(message)
        self.message = message
        self.about_inputs = about_inputs  # False: the same on any input, so the message names no seed


class AnswerNotImplemented(Exception):
    """The exercise itself still raises NotImplementedError: reads "not implemented yet". The checks know it as
    ``NotImplementedYet``."""


LEARNER_RUNNING = [False]  # True only while ``call`` runs the learner's code: the check's own calls don't count


def resolve_path(path: str):
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


def learner_globals(candidate) -> list[dict]:
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

    @classmethod
    def prepare(cls, paths: Sequence[str]) -> None:
        """Index the library's names now, so that a forked answer process inherits the index (it is slow to build)."""
        originals = [found[2] for path in paths if (found := resolve_path(path)) is not None]
        for space in _library_namespaces(cls._SCANNED):
            _keys_bound_to(space, originals)

    def __enter__(self) -> Delegation:
        if not self.paths:
            return self
        try:
            found_paths = [(path, found) for path in self.paths if (found := resolve_path(path)) is not None]
            # Every other name bound to each built-in, looked up before anything is patched.
            originals = [found[2] for _, found in found_paths]
            aliases = [(space, key) for space in _library_namespaces(self._SCANNED)
                       for key in _keys_bound_to(space, originals)]
            aliases += [(space, key) for space in learner_globals(self.candidate)
                        for key, value in list(space.items()) if any(value is o for o in originals)]
            wrappers = {}
            for path, (owner, attr, original) in found_paths:
                if is_the(self.candidate, original):
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
            if LEARNER_RUNNING[0]:
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
        return delegation_note(self.used(), pieces)


def delegation_note(used: Sequence[str], pieces: str) -> str:
    """The note a passing answer gets when it called the built-ins ``used`` (dotted paths); "" when none."""
    if not used:
        return ""
    name = builtin_label(used[0])
    called = f"you called {name}" if name.startswith("course_lib") else f"you called the built-in {name}"
    return f" — {called}" + (f"; try it with the pieces ({pieces})" if pieces else "")


def is_the(candidate, original) -> bool:
    target = candidate.func if isinstance(candidate, functools.partial) else candidate
    return target is original




# --- the sentence for what the answer raised -------------------------------------------------------------------

def first_line(error: BaseException, limit: int = 160) -> str:
    """The first line of ``error``'s message, cut to ``limit`` characters: a result is one line."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# PyTorch's kernels raise NotImplementedError ("... not implemented for 'Long'") or RuntimeError ("...
# Expected a floating point ... Got Long") when they get integers where they need floats.
INTEGER_DTYPE = re.compile(r"not implemented for '(Long|Int|Short|Char|Byte|Bool)'"
                           r"|(floating point|float).*\bGot:? (Long|Int|Short|Char|Byte|Bool)\b")


def integer_dtype_error(error: BaseException, label: str) -> str:
    return (f"uses an integer (or bool) tensor where a float is needed ({label}): convert it with .float(), or "
            f"check the order of the arguments (PyTorch: {first_line(error)})")


def describe_exception(error: Exception, label: str) -> str:
    """A learner-facing sentence for an exception the learner's code raised on the input ``label``."""
    text = str(error)
    if INTEGER_DTYPE.search(text):
        return integer_dtype_error(error, label)
    if "Boolean value of Tensor with more than one" in text:
        return (f"uses a tensor as a True/False condition ({label}), as in `if mask:`; a tensor of several "
                f"values is neither: use `if mask is not None:`")
    if "view size is not compatible" in text:
        return (f"calls .view() on a tensor whose memory is not laid out in that order ({label}): "
                f"use .reshape(...), or .contiguous().view(...)")
    if "leaf Variable that requires grad" in text:
        return ("changes a parameter in place while autograd is recording: "
                "wrap the update in `with torch.no_grad():`")
    return f"raised {type(error).__name__} on {label}: {first_line(error)}"


def meta_message(label: str) -> str:
    """What a tensor on the ``meta`` device (a shape, no numbers) gets, wherever a check meets it."""
    return (f"your answer produced tensors on device 'meta' ({label}), which hold no values: look for "
            f"device='meta', torch.empty(...) on meta, or torch.set_default_device('meta'); create "
            f"new tensors with torch.zeros_like(x) or device=x.device")


# --- one call of the answer ------------------------------------------------------------------------------------

@contextlib.contextmanager
def world_kept():
    """Put back what the learner's code may change of the process: PyTorch's default dtype and device,
    gradient mode, thread count, and Python's and NumPy's random state (PyTorch's is ``fork_rng``'s)."""
    dtype, grad, threads = torch.get_default_dtype(), torch.is_grad_enabled(), torch.get_num_threads()
    device = torch.get_default_device()
    python_random, numpy_random = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        if torch.get_default_device() != device:  # None: no device context, PyTorch's fast default
            torch.set_default_device(None if device.type == "cpu" else device)
        torch.set_default_dtype(dtype)
        torch.set_grad_enabled(grad)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        random.setstate(python_random)
        np.random.set_state(numpy_random)


def run_answer(candidate: Callable, args: Sequence, label: str, kwargs: dict | None = None):
    """``candidate(*args)`` as a check calls it: PyTorch's global state (default dtype, gradients, threads,
    random numbers) is put back afterwards, so a learner's random numbers do not shift the notebook's seeded
    ones. Raises ``AnswerFailed`` (with the sentence) or ``AnswerNotImplemented``; a ``BaseException`` that is
    not an ``Exception`` (the check's own time limit) passes through."""
    with warnings.catch_warnings(record=True) as caught, torch.random.fork_rng(devices=[]), world_kept():
        warnings.simplefilter("always")
        warn_always = torch.is_warn_always_enabled()
        torch.set_warn_always(True)  # PyTorch's warn-once warnings (`x.T` on a batch) every time, not once a session
        LEARNER_RUNNING[0] = True
        try:
            return candidate(*args, **(kwargs or {}))
        except NotImplementedError as error:
            explain_not_implemented(error, candidate, label)
            raise AnswerNotImplemented from None
        except SystemExit as error:
            raise AnswerFailed(f"calls exit() or sys.exit() ({label}), which would stop the notebook's kernel: "
                               f"return the answer instead (exit code {error.code!r})") from None
        except Exception as error:
            if any("`x.T`" in str(w.message) for w in caught):
                raise AnswerFailed(f"uses .T on a tensor with more than 2 dimensions ({label}): it reverses every "
                                   f"axis; swap the last two with .transpose(-2, -1)") from None
            raise AnswerFailed(describe_exception(error, label)) from None
        finally:
            LEARNER_RUNNING[0] = False
            torch.set_warn_always(warn_always)


def own_code(candidate) -> set:
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


def explain_not_implemented(error: NotImplementedError, candidate, label: str) -> None:
    """Return if ``candidate`` itself is unfinished; otherwise raise ``AnswerFailed`` naming what raised.

    PyTorch raises NotImplementedError for a wrong dtype, and a finished function may call another
    exercise's unfinished function: neither is this exercise's `raise NotImplementedError`.
    """
    if INTEGER_DTYPE.search(str(error)):
        raise AnswerFailed(integer_dtype_error(error, label))
    traceback = error.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    if traceback is None:
        return
    frame = traceback.tb_frame
    if frame.f_code in own_code(candidate):
        return
    if frame.f_globals.get("__name__", "").split(".")[0] == "torch":
        if frame.f_code.co_name == "_forward_unimplemented":
            raise AnswerFailed("has no forward method: define `def forward(self, x, mask=None):` in the class",
                               about_inputs=False)
        raise AnswerFailed(describe_exception(error, label))
    name = frame.f_code.co_qualname
    if "<locals>" in name or name.startswith("<"):
        name = frame.f_code.co_name
    raise AnswerFailed(f"calls `{name}`, which is not implemented yet: finish that exercise first",
                       about_inputs=False)
