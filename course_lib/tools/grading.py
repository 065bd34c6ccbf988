"""The grader's own copy of the course's checks, taken before any student code runs.

``nbgrader autograde`` runs a student's notebook in one kernel: the student's cells and the test cells
share one namespace and one ``course_lib``. A submission that defines its own ``check_softmax`` (one
that returns None), assigns ``course_lib.checks.check_softmax = ...`` or edits ``registry.REGISTRY``
would fool a test cell that looked the check up by name. So the grading kernel builds a ``Grader`` at
start-up (``python -m course_lib nbgrader source`` writes that into ``nbgrader_config.py``:
IPython's ``exec_lines``, under a name that only the instructor's copy of the test cells knows), and
each test cell's hidden line rebinds ``check_softmax = <that name>.strict("softmax")`` just before the
cell's visible ``check_softmax(softmax)``: at grading time the visible call is the real, strict check,
whatever the submission defined or imported (or failed to import).

``grade`` uses the check functions and the ``CheckResult`` type it kept at start-up, resets the checks'
settings (a student cannot switch the time limit off), and accepts only a real, passing ``CheckResult``:
anything else raises ``AssertionError`` with the check's one line, which nbgrader scores as 0 points for
that test cell alone.

Each check runs in a forked copy of the grading kernel (``run_apart``, where the platform can fork): an answer
that calls ``os._exit``, hangs in C or inside ``except:`` blocks, or prints without end costs only its own
exercise. The copy sends back plain data (the result's fields, as JSON), is killed past the check's time
limit, and its output is thrown away.

What this does not stop: student code runs in the grader's process with the grader's rights. A
submission written to attack the grader itself (patching PyTorch, reading every object in memory) can
still fool it, or delete files. Grade inside a throwaway copy or container, or on a hub where each
student is a Unix user (docs/instructor-guide.md, "The trust model").
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
from collections.abc import Callable

MAX_VERDICT_BYTES = 1 << 16  # a result's one line, with room to spare; anything longer is cut
# Taken when the grading kernel starts, before any student code: a submission that replaces os._exit cannot keep
# the forked copy running the kernel's code.
_fork, _pipe, _write, _read, _close, _exit, _dup2, _open, _kill, _waitpid = (
    getattr(os, "fork", None), os.pipe, os.write, os.read, os.close, os._exit, os.dup2, os.open, os.kill, os.waitpid)
_dumps, _loads, _select, _monotonic = json.dumps, json.loads, select.select, time.monotonic


class Grader:
    """``grade(name, candidate)``: run the real check of exercise ``name`` on ``candidate``; return its
    ``CheckResult`` when it passed, raise ``AssertionError`` (the check's one line) when it did not."""

    __slots__ = ("grade", "exercises")

    def __init__(self) -> None:
        from course_lib.checks import registry, running  # importing the package registers every lesson's checks

        checks = {name: entry.check for name, entry in registry.REGISTRY.items()}
        limits = {name: entry.time_limit for name, entry in registry.REGISTRY.items()}
        result_type, settings, core = running.CheckResult, running.settings, running
        pristine = Namespaces()  # course_lib's, PyTorch's and NumPy's names, before any student code

        def judged(name: str, candidate) -> dict:
            """The check's verdict as plain data (run in the forked copy, where there is one)."""
            if forking():
                pristine.restore()  # in the copy only: helpers a submission patched are the real ones again
            core.settings = settings  # each check's own time limit, whatever the submission set or replaced
            settings.time_limit = None
            result = checks[name](candidate)
            if type(result) is not result_type:
                return {"interfered": type(result).__name__}
            return {"name": str.__str__(result.name), "passed": result.passed is True,
                    "message": str.__str__(result.message), "used_reference": result.used_reference is True}

        def grade(name: str, candidate):
            if name not in checks:
                raise KeyError(f"no exercise {name!r}; the grader knows: {', '.join(checks)}")
            verdict = run_apart(lambda: judged(name, candidate), seconds=limits[name] + 3.0)
            if "ended" in verdict:
                raise AssertionError(f"{name}: the answer {verdict['ended']}, so it could not be checked")
            if "interfered" in verdict:
                raise AssertionError(f"{name}: the check did not return a result (got {verdict['interfered']}); "
                                     f"the submission interfered with the grader")
            result = result_type(verdict["name"], verdict["passed"], verdict["message"],
                                 used_reference=verdict["used_reference"])
            if result.name != name or not result.passed:
                raise AssertionError(str(result))
            if result.used_reference:
                raise AssertionError(f"{name}: 0 points: the answer called the check's own reference solution "
                                     f"instead of computing the answer itself")
            return result

        self.grade = grade
        self.exercises = tuple(checks)

    def strict(self, name: str):
        """``check_<name>`` for grading: the real check, raising ``AssertionError`` unless the answer passes."""
        grade = self.grade

        def check(candidate, *args, **kwargs):
            return grade(name, candidate)

        check.__name__ = f"check_{name}"
        return check

    def __repr__(self) -> str:
        return f"<course_lib grader: {len(self.exercises)} exercises>"


def forking() -> bool:
    """Whether ``run_apart`` runs its work in a forked copy here (not on Windows)."""
    return _fork is not None


# The namespaces a check relies on: course_lib's modules, and the parts of PyTorch, NumPy and Python a check
# calls. (Classes too: a submission may patch ``torch.Tensor.allclose``.)
_PROTECTED = ("torch", "torch.nn", "torch.nn.functional", "torch.nn.modules.module", "numpy", "builtins", "math",
              "functools", "contextlib", "inspect", "signal", "json", "os")


class Namespaces:
    """A copy of every name in course_lib's modules and in the modules and classes a check relies on, taken
    when made; ``restore()`` puts back every name a submission changed, added or deleted since, and the
    modules themselves in ``sys.modules``. Grading calls it in the forked copy, so the submission's own
    kernel keeps its changes."""

    def __init__(self) -> None:
        import torch

        self.modules = {name: module for name, module in list(sys.modules.items())
                        if module is not None and (name == "course_lib" or name.startswith("course_lib.")
                                                   or name in _PROTECTED)}
        owners = list(self.modules.values()) + [torch.Tensor, torch.nn.Module, torch.nn.Parameter]
        self.saved = [(owner, dict(vars(owner))) for owner in owners]
        from course_lib.checks import registry

        self.registry = (registry.REGISTRY, dict(registry.REGISTRY))

    def restore(self) -> None:
        sys.modules.update(self.modules)
        for owner, names in self.saved:
            space = vars(owner)
            for key in [key for key in list(space) if key not in names]:
                _set(owner, key, None, delete=True)
            for key, value in names.items():
                if space.get(key, _MISSING) is not value:
                    _set(owner, key, value)
        table, entries = self.registry
        table.clear()
        table.update(entries)


_MISSING = object()


def _set(owner, key: str, value, delete: bool = False) -> None:
    """Set (or delete) ``owner.key``, a module's or a class's name; a name that cannot be set is left."""
    try:
        if isinstance(owner, type):
            delattr(owner, key) if delete else setattr(owner, key, value)
        elif delete:
            del vars(owner)[key]
        else:
            vars(owner)[key] = value
    except (AttributeError, TypeError, KeyError):
        pass


def run_apart(work: Callable[[], dict], seconds: float) -> dict:
    """``work()`` (returning JSON-able plain data) in a forked copy of this process, killed after ``seconds``;
    its own output is thrown away. Returns what it returned, or ``{"ended": "<how it ended>"}`` when it died,
    exited or ran out of time. Where the platform cannot fork (Windows), ``work()`` runs here."""
    if _fork is None:
        return work()
    reader, writer = _pipe()
    pid = _fork()
    if pid == 0:  # the copy: run, send plain data, leave without running anything of the kernel's
        try:
            _close(reader)
            quiet = _open(os.devnull, os.O_WRONLY)
            _dup2(quiet, 1)
            _dup2(quiet, 2)
            sys.stdout = sys.stderr = open(os.devnull, "w")
            payload = _dumps(work())
        except BaseException as error:  # noqa: BLE001 - whatever happens here is reported, never raised
            payload = _dumps({"ended": f"stopped the check ({type(error).__name__})"})
        try:
            _write(writer, payload.encode()[:MAX_VERDICT_BYTES])
        finally:
            _exit(0)
    _close(writer)
    received, deadline = b"", _monotonic() + seconds
    try:
        while True:
            left = deadline - _monotonic()
            if left <= 0:
                return {"ended": f"took longer than {seconds:g} s (the grader stopped it)"}
            ready, _, _ = _select([reader], [], [], left)
            if ready:
                chunk = _read(reader, MAX_VERDICT_BYTES)
                if not chunk:
                    break
                received += chunk
    finally:
        _close(reader)
        try:
            _kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, status = _waitpid(pid, 0)
    try:
        return _loads(received.decode())
    except ValueError:
        if os.WIFEXITED(status):
            return {"ended": f"ended the process (exit code {os.WEXITSTATUS(status)}, e.g. os._exit or sys.exit)"}
        return {"ended": f"ended the process (signal {os.WTERMSIG(status) if os.WIFSIGNALED(status) else '?'})"}
