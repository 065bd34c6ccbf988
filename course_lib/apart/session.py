"""The check's side of a session with the process that runs the answer.

``fork_session(candidate, builtins)`` (self-study) forks the notebook's kernel: the copy holds the answer and
nothing the check computes afterwards. A grader gets its ``Session`` from the process that ran a submission
(``course_lib.tools.autograde``). Either way the check holds ``session.root``: the answer itself where it is
plain data (None, a number), otherwise a ``Remote``, a handle to an object in the answer's process.

``Session.call(target, args, label)`` runs one call there and waits, at most until ``session.deadline``: past
it, the answer's process is killed, whatever its code catches, and ``AnswerTimedOut`` is raised. What comes
back is plain data. The call's effects on the inputs are written back into the check's own objects
(``write_back``), and a result that autograd could differentiate there is rebuilt here with the same gradient
of its sum with respect to the inputs (``_with_gradients``), so a check can still ask autograd about it.
"""

from __future__ import annotations

import atexit
import gc
import os
import signal
import socket
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch

from . import wire
from .answering import AnswerFailed, AnswerNotImplemented, Delegation
from .serve import prepare_process, serve

START_SECONDS = 10.0  # for the answer's process to say hello (a fork, or a fork of the grading worker)


class AnswerTimedOut(Exception):
    """The answer ran past the check's time limit; its process was killed."""

    def __init__(self, seconds: float):
        super().__init__(seconds)
        self.seconds = seconds


class AnswerGone(AnswerFailed):
    """The answer's process ended during a call (``os._exit``, a crash, a signal)."""


class RemoteError(Exception):
    """What a method of an object in the answer's process raised; ``kind`` is the exception's type name."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class Remote:
    """An object that lives in the answer's process. Reading an attribute asks for it (plain data comes back,
    anything else as another ``Remote``); calling it calls it there. A check passes a ``Remote`` answer to
    ``call``, and asks about its type with ``is_instance`` and ``type_name``."""

    __slots__ = ("_session", "_number", "_info")

    def __init__(self, session: Session, info: dict):
        object.__setattr__(self, "_session", session)
        object.__setattr__(self, "_number", info["remote"])
        object.__setattr__(self, "_info", info)

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._session.getattr(self, name)

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError("an object in the answer's process cannot be changed from here")

    def __call__(self, *args, **kwargs):
        return self._session.invoke(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<{self._info.get('type', 'object')} in the answer's process>"


def is_instance(obj, cls: type) -> bool:
    """``isinstance(obj, cls)``, also for a ``Remote`` (by the class's module and name)."""
    if isinstance(obj, Remote):
        return f"{cls.__module__}.{cls.__qualname__}" in obj._info.get("mro", ())
    return isinstance(obj, cls)


def type_name(obj) -> str:
    """``type(obj).__name__``, also for a ``Remote``."""
    return str(obj._info.get("type", "object")) if isinstance(obj, Remote) else type(obj).__name__


def is_callable(obj) -> bool:
    return bool(obj._info.get("callable")) if isinstance(obj, Remote) else callable(obj)


class Session:
    """One conversation with an answer's process: ``root`` (the answer), ``call``, ``invoke``, ``getattr``;
    ``counts`` (calls of each built-in), ``reference_calls``, ``deadline`` (``time.monotonic()``, or None)."""

    def __init__(self, sock: socket.socket, stop: Callable[[], str | None], show_output: bool = True):
        self.sock, self._stop, self.show_output = sock, stop, show_output
        self.deadline: float | None = None
        self.limit: float = 0.0
        self.counts: dict[str, int] = {}
        self.reference_calls = 0
        self.ended: str | None = None  # why the answer's process is gone, once it is
        self._kept: dict[int, object] = {}
        self._let_end: Callable[[], None] | None = None
        self.root = None
        self.missing: str | None = None

    # --- starting and ending ---

    def start(self, seconds: float = START_SECONDS):
        """Wait for the answer's process to say hello; ``root`` is then the answer (or a ``Remote`` of it), and
        ``missing`` the name the process was asked for when it has no such name (grading)."""
        try:
            header, blobs = wire.receive(self.sock, time.monotonic() + seconds)
            self.missing = str(header["missing"]) if "missing" in header else None
            self.root = wire.decode(header.get("root"), blobs, self._remote)
        except wire.WireError as error:
            self.close()
            raise AnswerGone(f"the process that runs your answer did not start ({error})") from None
        return self.root

    def close(self, graceful: bool = True) -> None:
        """End the session: the answer's process is told to leave (and reaped later), or killed now when not
        ``graceful`` (an interrupt or an error in the check: it may still be running the answer)."""
        ended = False
        if graceful and self.sock.fileno() >= 0 and self.ended is None:
            try:
                wire.send(self.sock, {"op": "end"})
                ended = True
            except OSError:
                pass
        if ended and self._let_end is not None:
            self._let_end()  # it leaves by itself; reaped later, so that the check answers sooner
        else:
            self._stop()
        self.sock.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, kind, *exc) -> None:
        self.close(graceful=kind is None)

    # --- requests ---

    def call(self, target, args, label: str, kwargs: dict | None = None):
        """``target(*args)`` in the answer's process, as a check calls an answer. Raises ``AnswerFailed``
        (with its sentence), ``AnswerNotImplemented``, ``AnswerTimedOut``, or ``AnswerGone``."""
        payload = wire.pickle_for_answer((tuple(args), dict(kwargs or {})), self._keep)
        header, blobs = self._request({"op": "call", "target": target._number, "label": label}, [payload], label)
        if header.get("interrupted") is True:
            raise KeyboardInterrupt
        if header.get("not_implemented") is True:
            raise AnswerNotImplemented
        if "failed" in header:
            raise AnswerFailed(str(header["failed"]), about_inputs=header.get("about_inputs") is not False)
        try:
            result = wire.decode(header.get("result"), blobs, self._remote)
            afters = header.get("after") or []
            for arg, after in zip(args, afters if isinstance(afters, list) else []):
                write_back(arg, after, blobs)
            return _with_gradients(result, args, header.get("gradients") or [], blobs)
        except (wire.WireError, TypeError, ValueError, KeyError, RuntimeError) as error:
            raise AnswerFailed(f"returned something a check cannot read ({label}): {error}") from None

    def invoke(self, target: Remote, args, kwargs):
        payload = wire.pickle_for_answer((tuple(args), dict(kwargs)), self._keep)
        header, blobs = self._request({"op": "invoke", "target": target._number}, [payload], "a method call")
        if "raised" in header:
            raise RemoteError(str(header["raised"]), str(header.get("message", "")))
        if "failed" in header:
            raise RemoteError("Error", str(header["failed"]))
        return wire.decode(header.get("value"), blobs, self._remote)

    def getattr(self, target: Remote, name: str):
        header, blobs = self._request({"op": "getattr", "target": target._number, "name": name}, [],
                                      f"reading .{name}")
        if "missing" in header:
            raise AttributeError(str(header["missing"]))
        if "failed" in header:
            raise AttributeError(str(header["failed"]))
        return wire.decode(header.get("value"), blobs, self._remote)

    def _request(self, header: dict, blobs: list, label: str) -> tuple[dict, list]:
        if self.ended == "ran past the time limit":
            raise AnswerTimedOut(self.limit)
        if self.ended is not None:
            raise AnswerGone(self.ended)
        try:
            wire.send(self.sock, header, blobs)
            while True:
                reply, received = wire.receive(self.sock, self.deadline)
                if reply.get("op") == "callback":
                    self._call_back(reply, received)
                    continue
                break
        except wire.Timeout:
            self._end("ran past the time limit")
            raise AnswerTimedOut(self.limit) from None
        except (wire.WireError, OSError) as error:
            how = self._end("ended")
            self.ended = (f"ended the process ({how or 'os._exit, a crash, or data too large to check'}) "
                          f"({label}): return the answer instead")
            raise AnswerGone(self.ended) from None
        self._take_counts(reply)
        return reply, received

    def _take_counts(self, reply: dict) -> None:
        counts = reply.get("counts")
        if isinstance(counts, dict):
            self.counts = {str(k): v for k, v in counts.items() if type(v) is int}
        if type(reply.get("guard")) is int:
            self.reference_calls = reply["guard"]
        text = reply.get("output")
        if self.show_output and isinstance(text, str) and text:
            sys.stdout.write(text)

    def _call_back(self, request: dict, blobs: list) -> None:
        """The answer called one of the check's functions: run it here, send back its (pickled) value."""
        try:
            function = self._kept[request.get("handle")]
            payload = wire.decode(request.get("payload"), blobs, self._remote)
            value = function(*payload["args"], **{str(k): v for k, v in payload["kwargs"].items()})
            data = wire.pickle_for_answer(value, self._keep)
        except Exception as error:  # noqa: BLE001 - the answer's call raises it, as a direct call would
            wire.send(self.sock, {"raised": type(error).__name__, "message": str(error)})
            return
        wire.send(self.sock, {"value": True}, [data])

    def _end(self, why: str) -> str | None:
        """Stop the answer's process; how it had ended ("exit code 3, ...") where this process can tell."""
        self.ended = why
        return self._stop()

    def _keep(self, obj) -> int:
        number = len(self._kept) + 1
        self._kept[number] = obj
        return number

    def _remote(self, info: dict) -> Remote:
        return Remote(self, info)


# --- writing a call's effects back into the check's own inputs ---------------------------------------------------

def write_back(obj, after, blobs: list) -> None:
    """Make the check's ``obj`` what the answer's copy of it became (``serve.snapshot``'s form)."""
    if not isinstance(after, dict):
        return
    if "tensor" in after and isinstance(obj, torch.Tensor):
        new = wire.decode(after["tensor"], blobs)
        with torch.no_grad():
            if new.shape == obj.shape and new.dtype == obj.dtype:
                if not torch.equal(new, obj.detach()):
                    obj.copy_(new)
            else:
                obj.data = new
        grad = after.get("grad")
        obj.grad = None if grad is None else wire.decode(grad, blobs).to(obj.dtype)
        if obj.is_leaf and (obj.is_floating_point() or obj.is_complex()):
            obj.requires_grad_(after.get("requires_grad") is True)
    elif "array" in after and isinstance(obj, np.ndarray):
        new = wire.decode(after["array"], blobs)
        if new.shape == obj.shape and obj.flags.writeable:
            np.copyto(obj, new, casting="unsafe")
    elif "module" in after and isinstance(obj, torch.nn.Module):
        own = dict(obj.named_parameters(remove_duplicate=False)) | dict(obj.named_buffers(remove_duplicate=False))
        for name, state in after["module"] if isinstance(after["module"], list) else []:
            if name in own and isinstance(state, dict) and state.get("fresh") is True:
                _replace_parameter(obj, name, own[name], _fresh(state, blobs))
            elif name in own:
                write_back(own[name], state, blobs)
        obj.train(after.get("training") is True)
    elif "optimizer" in after and isinstance(obj, torch.optim.Optimizer):
        obj.load_state_dict(wire.decode(after["optimizer"], blobs))
    elif "generator" in after and isinstance(obj, torch.Generator):
        obj.set_state(wire.decode(after["generator"], blobs))
    elif "items" in after and type(obj) in (list, tuple):
        items = after["items"] if isinstance(after["items"], list) else []
        for index, (item, state) in enumerate(zip(obj, items)):
            _write_item(obj, index, item, state, blobs)
        if type(obj) is list and len(items) != len(obj):
            obj[:] = [_fresh(state, blobs) for state in items]
    elif "entries" in after and type(obj) is dict:
        for key, state in after["entries"] if isinstance(after["entries"], list) else []:
            if key in obj:
                _write_item(obj, key, obj[key], state, blobs)
            else:
                obj[key] = _fresh(state, blobs)
    elif "attributes" in after and hasattr(obj, "__dict__"):
        space = vars(obj)
        for key, state in after["attributes"] if isinstance(after["attributes"], list) else []:
            if type(key) is str and key in space:
                _write_item(space, key, space[key], state, blobs)


def _write_item(container, key, item, state, blobs: list) -> None:
    if not isinstance(state, dict):
        return
    if "value" in state or state.get("fresh") is True or (item is None and ("tensor" in state or "items" in state)):
        if type(container) is not tuple:
            container[key] = _fresh(state, blobs)
    else:
        write_back(item, state, blobs)


def _replace_parameter(module: torch.nn.Module, name: str, old: torch.Tensor, new) -> None:
    """The answer put a new tensor where the model had ``name``: so does the check's copy."""
    if not isinstance(new, torch.Tensor):
        return
    owner_name, _, attribute = name.rpartition(".")
    try:
        owner = module.get_submodule(owner_name) if owner_name else module
        if isinstance(old, torch.nn.Parameter):
            setattr(owner, attribute, torch.nn.Parameter(new.detach(), requires_grad=old.requires_grad))
        else:
            owner.register_buffer(attribute, new.detach())
    except (AttributeError, KeyError, TypeError):
        pass


def _fresh(state, blobs: list):
    """A new plain object from a snapshot (a value the answer put where there was none)."""
    if not isinstance(state, dict):
        return None
    if "value" in state:
        value = state["value"]
        return value if value is None or type(value) in (bool, int, float, str) else None
    if "tensor" in state:
        tensor = wire.decode(state["tensor"], blobs)
        if state.get("grad") is not None:
            tensor.grad = wire.decode(state["grad"], blobs)
        return tensor
    if "items" in state:
        return [_fresh(s, blobs) for s in state["items"]] if isinstance(state["items"], list) else []
    return None


def _with_gradients(result, args, gradients: list, blobs: list):
    """``result`` whose tensors (alone, or in a tuple or list) carry, with respect to the check's inputs, the
    gradient of their sum that the answer's process computed; a result that required a gradient but depends on
    no input comes back as a leaf that requires one (cut off from the inputs, as it was)."""
    if not gradients and not _needs_grad(result):
        return result
    inputs = {}
    for i, arg in enumerate(args):
        if isinstance(arg, torch.Tensor):
            inputs[(i,)] = arg
        elif type(arg) in (list, tuple):
            inputs.update({(i, j): item for j, item in enumerate(arg) if isinstance(item, torch.Tensor)})
    parts = [result] if isinstance(result, torch.Tensor) else list(result) if type(result) in (tuple, list) else []
    by_part = {g.get("part"): g.get("of") for g in gradients if isinstance(g, dict)}
    for index, part in enumerate(parts):
        if not isinstance(part, torch.Tensor) or not part.requires_grad:
            continue
        value = part.detach()
        total = None
        for position, encoded in by_part.get(index) or []:
            source = inputs.get(tuple(position)) if isinstance(position, list) else None
            if encoded is None or source is None or not source.requires_grad:
                continue
            grad = wire.decode(encoded, blobs)
            if grad.shape != source.shape:
                continue
            term = (source * grad.to(source.dtype)).sum()
            total = term - term.detach() if total is None else total + (term - term.detach())
        if total is None:
            rebuilt = value.clone().requires_grad_(True) if value.is_floating_point() or value.is_complex() else value
        else:
            rebuilt = value + (total / max(value.numel(), 1)).to(value.dtype)
        parts[index] = rebuilt
    if isinstance(result, torch.Tensor):
        return parts[0]
    return type(result)(parts)


def _needs_grad(result) -> bool:
    parts = [result] if isinstance(result, torch.Tensor) else list(result) if type(result) in (tuple, list) else []
    return any(isinstance(p, torch.Tensor) and p.requires_grad for p in parts)


# --- self-study: the answer in a forked copy of the kernel -------------------------------------------------------

def can_fork() -> bool:
    """Whether checks run answers in a forked copy here: Linux (``fork`` is safe with PyTorch there once the
    copy uses one thread). Elsewhere answers run in the notebook's own process, with the older limits."""
    return sys.platform.startswith("linux") and hasattr(os, "fork") and os.environ.get("COURSE_CHECKS_IN_KERNEL") != "1"


def fork_session(candidate, builtins=(), guard: Callable[[], object] | None = None) -> Session:
    """A session whose answer's process is a fork of this one, holding ``candidate``. ``guard()`` makes the
    context that counts calls of the check's reference there."""
    _reap()
    Delegation.prepare(builtins)
    parent, child = socket.socketpair()
    pid = -1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "this process is multi-threaded": see can_fork
        # Frozen, the kernel's objects are never scanned by the copy's garbage collector: a scan would write
        # to every one of them, and each write copies a page of memory (copy-on-write).
        gc.freeze()
        try:
            pid = os.fork()
        finally:
            if pid != 0:
                gc.unfreeze()
    if pid == 0:  # the answer's process: serve, then leave without running any of the kernel's code
        try:
            parent.close()
            output = prepare_process()
            serve(child, candidate, builtins, guard() if guard is not None else None, output)
        finally:
            os._exit(0)
    child.close()

    def stop() -> str | None:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
            if not done:
                os.kill(pid, signal.SIGKILL)
                done, status = os.waitpid(pid, 0)
                return None
        except (ChildProcessError, ProcessLookupError):
            return None
        if os.WIFEXITED(status):
            return f"exit code {os.WEXITSTATUS(status)}, e.g. os._exit or sys.exit in a thread"
        return f"signal {os.WTERMSIG(status)}, a crash" if os.WIFSIGNALED(status) else None

    session = Session(parent, _once(stop))
    session._let_end = lambda: _ENDING.append((pid, time.monotonic()))
    session.start()
    return session


_ENDING: list[tuple[int, float]] = []  # answer processes told to end: (pid, when)
atexit.register(lambda: [_kill_quietly(pid) for pid, _ in _ENDING])
_GRACE = 2.0  # seconds an answer process has to leave once told to end; then it is killed


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reap() -> None:
    """Collect the answer processes that have ended; kill one still there long after it was told to end."""
    for entry in list(_ENDING):
        pid, since = entry
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _ENDING.remove(entry)
        elif time.monotonic() - since > _GRACE:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _once(function: Callable[[], str | None]) -> Callable[[], str | None]:
    done: list = []

    def once() -> str | None:
        if not done:
            done.append(function())
        return done[0]

    return once
