"""The answer's side of a session: run what the check asks, send back plain data.

``serve(sock, root, builtins)`` answers the check's requests until it says "end" (or kills this process):

- ``call``: run ``target(*args)`` as a check calls an answer (``answering.run_answer``), then send back the
  result, what the call did to the inputs (their values and gradients, a model's parameters, an optimizer's
  state: ``snapshot``), and, for a result that autograd can differentiate, its gradient with respect to each
  input that requires one (``_gradients``);
- ``invoke``: a plain method call on an object of the answer's (``layer.load_state_dict(...)``);
- ``getattr``: one attribute of such an object.

Every reply carries the calls made to the exercise's built-ins (``Delegation``), to the check's reference
(``guard``, where the checks are loaded), and what the answer printed (cut at ``OUTPUT_LIMIT`` characters).
Objects that cannot travel stay here, in ``handles``; the check gets a handle (``session.Remote``).
"""

from __future__ import annotations

import builtins as python_builtins
import contextlib
import io
import os
import pickle
import signal
import socket
import sys
import threading

import numpy as np
import torch

from . import wire
from .answering import AnswerFailed, AnswerNotImplemented, Delegation, run_answer, world_kept

OUTPUT_LIMIT = 20_000  # characters of the answer's own output a check passes on


class CappedOutput(io.TextIOBase):
    """``sys.stdout`` / ``sys.stderr`` of the answer's process: keeps the first ``OUTPUT_LIMIT`` characters."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size, self.cut = 0, False

    def writable(self) -> bool:
        return True

    def write(self, text) -> int:
        text = str(text)
        room = OUTPUT_LIMIT - self.size
        if room > 0:
            self.parts.append(text[:room])
            self.size += min(len(text), room)
        if len(text) > room:
            self.cut = True
        return len(text)

    def take(self) -> str:
        text = "".join(self.parts) + ("\n… (the rest of the output was cut)\n" if self.cut else "")
        self.parts, self.size, self.cut = [], OUTPUT_LIMIT if self.cut else 0, self.cut
        return text


def prepare_process() -> CappedOutput:
    """What a freshly forked answer process does first: no timers or trace functions of its parent, one thread
    (a fork must not use its parent's thread pool, and an answer may not change that), C-level output thrown
    away, Python-level output captured."""
    signal.setitimer(signal.ITIMER_REAL, 0)
    for name in ("SIGALRM", "SIGINT", "SIGTERM"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    sys.settrace(None)
    threading.settrace(None)
    torch.set_num_threads(1)
    torch.set_num_threads = _one_thread_only
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    output = CappedOutput()
    sys.stdout = sys.stderr = output
    return output


def _one_thread_only(threads: int) -> None:
    """``torch.set_num_threads`` in an answer's process: it stays at one thread (see ``prepare_process``)."""


@contextlib.contextmanager
def _check_world():
    """The world a check promises an answer: gradients on, float32 on the CPU."""
    previous_dtype = torch.get_default_dtype()
    with torch.inference_mode(False), torch.enable_grad():
        torch.set_default_dtype(torch.float32)
        if torch.get_default_device().type != "cpu":
            torch.set_default_device(None)
        try:
            yield
        finally:
            torch.set_default_dtype(previous_dtype)


def serve(sock: socket.socket, root, builtins=(), guard=None, output: CappedOutput | None = None) -> None:
    """Answer the check's requests on ``sock`` until "end" or the connection closes. ``root`` is the answer
    (the check's first handle); ``builtins`` the dotted paths ``Delegation`` counts; ``guard`` an entered-here
    context whose ``calls`` counts the check's reference (None where the checks are not loaded)."""
    handles: dict[int, object] = {}

    def handle(obj) -> dict:
        number = len(handles) + 1
        handles[number] = obj
        kind = type(obj)
        mro = [f"{k.__module__}.{k.__qualname__}" for k in getattr(kind, "__mro__", (kind,))]
        return {"remote": number, "type": kind.__name__, "mro": mro, "callable": callable(obj)}

    def ask(number: int, args, kwargs):
        """A call of one of the check's own functions (a ``CallBack``), made by the answer."""
        blobs: list = []
        payload = wire.encode({"args": list(args), "kwargs": dict(kwargs)}, blobs, handle)
        wire.send(sock, {"op": "callback", "handle": number, "payload": payload}, blobs)
        header, blobs = wire.receive(sock)
        if "raised" in header:
            kind = getattr(python_builtins, str(header["raised"]), None)
            kind = kind if isinstance(kind, type) and issubclass(kind, Exception) else RuntimeError
            raise kind(header.get("message", ""))
        return pickle.loads(blobs[0])

    wire.CallBack.connection[0] = ask
    with contextlib.ExitStack() as stack:
        stack.enter_context(_check_world())
        # The guard first: it must see the built-ins as they are, before Delegation wraps them. Only the calls
        # from now on are this session's (a grading process's guard counts from its start).
        start = guard.calls if guard is not None else 0
        if guard is not None:
            stack.enter_context(guard)
        guard_calls = (lambda: guard.calls - start) if guard is not None else (lambda: 0)
        delegation = stack.enter_context(Delegation(tuple(builtins), root))
        blobs: list = []
        wire.send(sock, {"hello": os.getpid(), "root": _encoded(root, blobs, handle)}, blobs)
        while True:
            try:
                header, blobs = wire.receive(sock)
            except wire.WireError:
                return
            if header.get("op") == "end":
                return
            out: list = []
            try:
                reply = _dispatch(header, blobs, handles, handle, out)
            except wire.WireError as error:
                reply, out = {"failed": f"returned something a check cannot read ({error})"}, []
            reply["counts"] = dict(delegation.counts)
            reply["guard"] = guard_calls()
            reply["output"] = output.take() if output is not None else ""
            wire.send(sock, reply, out)


def _encoded(value, blobs: list, handle):
    try:
        return wire.encode(value, blobs, handle)
    except wire.WireError:
        blobs.clear()
        return handle(value)


def _dispatch(header: dict, blobs: list, handles: dict, handle, out: list) -> dict:
    op = header.get("op")
    target = handles.get(header.get("target")) if header.get("target") else None
    if op == "getattr":
        try:
            value = getattr(target, str(header.get("name")))
        except AttributeError as error:
            return {"missing": str(error)}
        return {"value": _encoded(value, out, handle)}
    args, kwargs = pickle.loads(blobs[0]) if blobs else ((), {})
    if op == "invoke":
        with torch.random.fork_rng(devices=[]), world_kept():
            try:
                value = target(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - reported to the check, as the call would raise it
                return {"raised": type(error).__name__, "message": str(error)}
        return {"value": _encoded(value, out, handle)}
    if op != "call":
        return {"failed": f"an unknown request {op!r}"}
    label = str(header.get("label", ""))
    received = _reachable_tensors(args)
    try:
        result = run_answer(target, args, label, kwargs)
    except KeyboardInterrupt:  # the answer's own: the check stops, as it would in the notebook's process
        return {"interrupted": True}
    except AnswerFailed as failure:
        return {"failed": failure.message, "about_inputs": failure.about_inputs}
    except AnswerNotImplemented:
        return {"not_implemented": True}
    encoded = wire.encode(result, out, handle)
    return {"result": encoded, "after": [snapshot(arg, out, received=received) for arg in args],
            "gradients": _gradients(result, args, out)}


def _inputs(args) -> list[tuple[list[int], torch.Tensor]]:
    """The tensors among ``args`` and inside list or tuple arguments, with their positions."""
    found = []
    for i, arg in enumerate(args):
        if isinstance(arg, torch.Tensor):
            found.append(([i], arg))
        elif type(arg) in (list, tuple):
            found += [([i, j], item) for j, item in enumerate(arg) if isinstance(item, torch.Tensor)]
    return found


def _gradients(result, args, out: list) -> list:
    """For each tensor of the result (or of a tuple/list result) that autograd can differentiate: the gradient
    of its sum with respect to each input that requires a gradient (None where it does not depend on it)."""
    parts = [result] if isinstance(result, torch.Tensor) else list(result) if type(result) in (tuple, list) else []
    inputs = [(position, tensor) for position, tensor in _inputs(args) if tensor.requires_grad]
    found = []
    for index, part in enumerate(parts):
        if not isinstance(part, torch.Tensor) or not part.requires_grad or not inputs:
            continue
        if not (part.is_floating_point() or part.is_complex()) or part.device.type != "cpu":
            continue
        try:
            grads = torch.autograd.grad(part.sum(), [t for _, t in inputs], allow_unused=True, retain_graph=True)
        except RuntimeError:
            continue
        found.append({"part": index, "of": [[position, None if g is None else wire.encode(g, out)]
                                            for (position, _), g in zip(inputs, grads)]})
    return found


def _reachable_tensors(args) -> set[int]:
    """The ids of the tensors the check sent: in the arguments, in lists, tuples and dicts, in models."""
    found: set[int] = set()

    def walk(obj, depth: int) -> None:
        if depth > 6:
            return
        if isinstance(obj, torch.Tensor):
            found.add(id(obj))
        elif isinstance(obj, torch.nn.Module):
            found.update(id(t) for t in obj.parameters())
            found.update(id(t) for t in obj.buffers())
        elif type(obj) in (list, tuple):
            for item in obj:
                walk(item, depth + 1)
        elif type(obj) is dict:
            for item in obj.values():
                walk(item, depth + 1)
        elif isinstance(getattr(obj, "__dict__", None), dict) and not isinstance(obj, type):
            for item in vars(obj).values():
                walk(item, depth + 1)

    walk(args, 0)
    return found


def snapshot(obj, out: list, depth: int = 0, seen: set | None = None, received: set | None = None):
    """What a call left of one input, as plain data: a tensor's values and gradient, an array's values, a
    model's parameters and buffers, an optimizer's state, a generator's state, a list's or an object's parts.
    The check's process writes it back into its own copy (``session.write_back``). None: nothing to send."""
    seen = set() if seen is None else seen
    if depth > 6 or id(obj) in seen or isinstance(obj, wire.CallBack):
        return None
    seen.add(id(obj))
    if obj is None or type(obj) in (bool, int, float, str):
        return {"value": obj}
    if isinstance(obj, torch.Tensor):
        grad = obj.grad if isinstance(obj.grad, torch.Tensor) else None
        return {"tensor": wire.encode(obj.detach(), out), "requires_grad": bool(obj.requires_grad),
                "grad": None if grad is None else wire.encode(grad.detach(), out),
                "fresh": received is not None and id(obj) not in received}
    if isinstance(obj, np.ndarray):
        try:
            return {"array": wire.encode(obj, out)}
        except wire.WireError:
            return None
    if isinstance(obj, torch.nn.Module):
        named = list(obj.named_parameters(remove_duplicate=False)) + list(obj.named_buffers(remove_duplicate=False))
        return {"module": [[name, snapshot(t, out, depth + 1, set(), received)] for name, t in named],
                "training": bool(obj.training)}
    if isinstance(obj, torch.optim.Optimizer):
        return {"optimizer": wire.encode(obj.state_dict(), out)}
    if isinstance(obj, torch.Generator):
        return {"generator": wire.encode(obj.get_state(), out)}
    if type(obj) in (list, tuple):
        return {"items": [snapshot(item, out, depth + 1, seen, received) for item in obj]}
    if type(obj) is dict:
        return {"entries": [[key, snapshot(value, out, depth + 1, seen, received)] for key, value in obj.items()
                            if type(key) in (str, int)]}
    space = getattr(obj, "__dict__", None)
    if isinstance(space, dict):
        return {"attributes": [[key, snapshot(value, out, depth + 1, seen, received)] for key, value in space.items()
                               if type(key) is str]}
    return None
