"""How a check runs: the ``@check`` decorator and ``call``, which runs the learner's code safely.

``@check`` turns a check's body into ``check_<name>(candidate, *, seed=None) -> CheckResult``, which never
raises: it sets a fresh seed (``inputs``), a time limit (``settings.time_limit``, else the check's own),
gradients on and float32 on the CPU, counts calls of the built-ins (``delegation``), and turns ``Fail``,
an unfinished exercise, a timeout or a bug in the check itself into a one-line ``CheckResult``. ``call``
runs the learner's function inside a check and turns whatever it does into a ``Fail`` with a diagnosis.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from course_lib.apart.answering import LEARNER_RUNNING, Delegation, delegation_note, run_answer, world_kept
from course_lib.apart.session import AnswerTimedOut, Remote, can_fork, fork_session, is_callable

from . import registry
from .compare import meta_message, same
from .delegation import REFERENCE_NOTE, ReferenceGuard
from .inputs import CHECK_SEED, fresh_seed
from .result import NOT_IMPLEMENTED, CheckResult, Fail, NotImplementedYet, describe_type, first_line


@dataclass
class Settings:
    """Module-level settings of every check. ``time_limit``: seconds, overriding each check's own limit
    when set (None: each check's own, 5 s by default; 0: no limit). ``apart``: run the answer in a forked copy
    of the kernel where the platform allows (``course_lib.apart.session.can_fork``), so that the limit holds
    whatever the answer catches and nothing the check computes is within the answer's reach."""

    time_limit: float | None = None
    apart: bool = True


settings = Settings()


class TooSlow(BaseException):
    """Raised by the alarm inside a check that ran past its time limit. A BaseException, so that a learner's
    ``except Exception:`` cannot swallow it."""

    def __init__(self, seconds: float):
        super().__init__(seconds)
        self.seconds = seconds
        self.label = ""


class _Deadline:
    """The running check's time limit: ``expired`` once it has passed (``call`` fails a learner's answer that
    swallowed the alarm), and ``seconds``."""

    def __init__(self, seconds: float):
        self.seconds, self.expired = seconds, False


_DEADLINE: list[_Deadline | None] = [None]
_AGAIN_EVERY = 0.05  # seconds between alarms once the limit has passed


def _learner_frame(frame) -> bool:
    """True for a frame of the learner's code: neither course_lib's nor a library's (whose clean-up must run)."""
    module = frame.f_globals.get("__name__", "") or ""
    return not module.split(".")[0] in ("course_lib", "torch", "numpy", "contextlib", "functools", "warnings",
                                        "threading", "signal", "inspect", "importlib", "_weakrefset", "abc")


def _raise_in_learner_code(seconds: float):
    """A trace function that raises ``TooSlow`` at the next line the learner's code runs: inside the
    ``except:`` that swallowed the alarm, so the exception leaves that handler. Python unsets a trace function
    that raised, so every alarm (each 50 ms past the limit) sets it again."""

    def trace(frame, event, arg):
        if event == "line" and LEARNER_RUNNING[0] and _learner_frame(frame):
            raise TooSlow(seconds)
        return trace

    return trace


@contextlib.contextmanager
def time_limited(seconds: float | None):
    """Raise ``TooSlow`` in the block after ``seconds`` (SIGALRM), and again every 50 ms in the learner's code
    until it leaves it: a bare ``except:`` or ``except BaseException:`` cannot keep it running. ``call`` also
    fails an answer that returned after the limit. Only where the platform has ``signal.setitimer`` and in
    the main thread; elsewhere (Windows, a worker thread) no limit. One long C operation (a huge matrix
    product) cannot be interrupted: it is reported when it ends. The previous SIGALRM handler, a previous
    timer with its remaining time, and the previous trace function are restored."""
    if not seconds or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return
    deadline = _Deadline(seconds)
    previous_trace = sys.gettrace()

    def on_alarm(signum, frame):
        first, deadline.expired = not deadline.expired, True
        if not LEARNER_RUNNING[0]:
            if first:  # the check's own code ran past the limit: stop it once
                raise TooSlow(seconds)
            return  # the check is unwinding after the learner's code stopped: let its clean-up run
        trace = _raise_in_learner_code(seconds)
        sys.settrace(trace)  # frames the learner's code starts from now on
        learner = frame is not None and _learner_frame(frame)
        while frame is not None:  # and the frames running now
            if _learner_frame(frame):
                frame.f_trace, frame.f_trace_lines = trace, True
            frame = frame.f_back
        if first or learner:
            raise TooSlow(seconds)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds, _AGAIN_EVERY)
    start = time.monotonic()
    outer, _DEADLINE[0] = _DEADLINE[0], deadline
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        sys.settrace(previous_trace)
        _DEADLINE[0] = outer
        if old_delay > 0:  # someone else's alarm was pending: let it ring when it would have
            remaining = max(old_delay - (time.monotonic() - start), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, remaining, old_interval)


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
            limit = settings.time_limit if settings.time_limit is not None else time_limit
            token = None
            try:
                if candidate is None or not is_callable(candidate):
                    raise Fail(f"expected your function {name} itself (e.g. check_{name}({name})), "
                               f"got {describe_type(candidate)}", about_inputs=False)
                with contextlib.ExitStack() as stack:
                    # The notebook's world comes back as it was, whatever the check or the answer did to it:
                    # random states, threads, default dtype and device, gradient mode.
                    stack.enter_context(world_kept())
                    stack.enter_context(torch.random.fork_rng(devices=[]))
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
                    session = _session_for(candidate, name, entry_builtins, stack)
                    if session is not None:  # the answer runs in its own process, killed past the limit
                        candidate = session.root
                        session.limit = limit or 0.0
                        session.deadline = time.monotonic() + limit if limit else None
                    else:  # in this process (no fork here): counted and timed in place
                        # The guard first: it must see the built-ins as they are, before Delegation wraps them.
                        guard = stack.enter_context(ReferenceGuard(name, candidate))
                        delegation = stack.enter_context(Delegation(entry_builtins, candidate))
                        stack.enter_context(time_limited(limit))
                    # Drawn only now: the answer's process, forked above, never held it.
                    seed = fresh_seed() if seed is None else int(seed)
                    token = CHECK_SEED.set(seed)
                    message = body(candidate)
                    if session is not None:
                        used_reference = session.reference_calls > 0
                        note = delegation_note([p for p in entry_builtins if session.counts.get(p)], pieces)
                    else:
                        used_reference, note = guard.used, delegation.note(pieces)
                if used_reference:
                    return CheckResult(name, True, message + REFERENCE_NOTE, used_reference=True)
                return CheckResult(name, True, message + note)
            except NotImplementedYet:
                return CheckResult(name, False, NOT_IMPLEMENTED, implemented=False)
            except Fail as failure:
                seeded = f"; seed {seed}" if failure.about_inputs and seed is not None else ""
                return CheckResult(name, False, failure.message + seeded)
            except (TooSlow, AnswerTimedOut) as slow:
                where = f" ({slow.label})" if getattr(slow, "label", "") else ""
                seeded = f"; seed {seed}" if seed is not None else ""
                return CheckResult(name, False, f"your answer took longer than {slow.seconds:g} s{where}: it may "
                                                f"loop forever; check that every loop ends{seeded}")
            except Exception as error:  # a bug in the check must not look like the learner's
                return CheckResult(name, False, f"the check itself failed ({type(error).__name__}: "
                                                f"{first_line(error)}); please report this to the course")
            finally:
                if token is not None:
                    CHECK_SEED.reset(token)

        run.exercise = name
        run.lesson = lesson
        registry.register(registry.Exercise(name, lesson, run, reference, entry_builtins, pieces, time_limit))
        return run

    return decorate


def _session_for(candidate, name: str, builtins: tuple, stack: contextlib.ExitStack):
    """The session that runs ``candidate``: the grader's (the answer already lives in its own process), a
    fork of this process (``settings.apart`` where the platform forks), or None (run here)."""
    if isinstance(candidate, Remote):
        return candidate._session
    if not settings.apart or not can_fork():
        return None
    try:
        return stack.enter_context(fork_session(candidate, builtins, lambda: ReferenceGuard(name, candidate, True)))
    except OSError:  # no process to spare (a container's limit): run here, as on a platform without fork
        return None


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def call(candidate: Callable, args: Sequence, names: Sequence[str], label: str, inplace_ok: bool = False):
    """Call ``candidate(*args)``, turning its failures into ``Fail`` and spotting inputs changed in place.

    A ``Remote`` candidate runs in its own process (``course_lib.apart``): the inputs go there, plain data comes
    back, and what the call did to the inputs is written back into them. Otherwise it runs here. Either way
    what comes back is plain: a tensor subclass becomes a plain tensor, an ``int``/``float`` subclass a plain
    number (in tuples and lists too), so an answer cannot lie to the comparisons that follow; and whatever the
    answer changed of PyTorch's global state (default dtype, gradients, threads, random numbers) is put back."""
    before = [a.detach().clone() if isinstance(a, torch.Tensor) else a.copy() if isinstance(a, np.ndarray) else None
              for a in args]
    try:
        if isinstance(candidate, Remote):
            result = candidate._session.call(candidate, args, label)
        else:
            result = run_answer(candidate, args, label)
    except AnswerTimedOut as late:
        slow = TooSlow(late.seconds)
        slow.label = label
        raise slow from None
    except TooSlow as slow:
        slow.label = label
        raise
    deadline = _DEADLINE[0]
    if deadline is not None and deadline.expired:  # it swallowed the alarm and carried on: still too slow
        slow = TooSlow(deadline.seconds)
        slow.label = label
        raise slow
    if not inplace_ok:
        for name, old, new in zip(names, before, args):
            if isinstance(old, np.ndarray) and not _same_array(old, new):
                raise Fail(f"changes its input `{name}` in place ({label}): build a new array instead "
                           f"(write `y = x + ...`, not `x += ...`, `x[...] = ...` or `np.random.shuffle(x)`)")
            if isinstance(old, torch.Tensor) and not same(old, new.detach()):
                raise Fail(f"changes its input `{name}` in place ({label}): build a new tensor instead "
                           f"(write `y = x + ...`, not `x += ...` or `x[...] = ...`)")
    if any(isinstance(part, torch.Tensor) and part.device.type == "meta" for part in _parts(result)):
        raise Fail(meta_message(label))
    return plain(result)


def _parts(value) -> list:
    """``value`` and, for a tuple or list, its items (one level: what a check compares)."""
    return [value, *value] if type(value) in (tuple, list) else [value]


def _same_array(old: np.ndarray, new) -> bool:
    if not isinstance(new, np.ndarray) or new.shape != old.shape:
        return False
    try:
        return bool(np.array_equal(old, new, equal_nan=True))
    except TypeError:  # strings, objects: no NaN to speak of
        return bool(np.array_equal(old, new))


def plain(value):
    """``value`` with every tensor subclass made a plain ``torch.Tensor`` (the same data, without the subclass's
    methods), every ``int``/``float`` subclass a plain number, through tuples and lists: what a check compares
    can then not answer ``True`` to everything. ``nn.Parameter`` and modules are left as they are."""
    if isinstance(value, torch.Tensor) and type(value) not in (torch.Tensor, torch.nn.Parameter):
        with torch._C.DisableTorchFunctionSubclass():
            return torch.Tensor.as_subclass(value, torch.Tensor)
    if isinstance(value, bool):
        return value if type(value) is bool else bool(int.__int__(value))
    if isinstance(value, int) and type(value) is not int:
        return int.__int__(value)
    if isinstance(value, float) and type(value) is not float:
        return float.__float__(value)
    if type(value) in (tuple, list):
        return type(value)(plain(v) for v in value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple: its fields, made plain
        return type(value)(*(plain(v) for v in value))
    return value
