"""The process that runs a graded submission: forked by the grader's zygote (``zygote``), or started as
``python -m course_lib.apart.notebook FD BLOCKED ALLOWED``.

The grader (``course_lib.tools.autograde``) gives it one end of a socket pair (file descriptor ``FD``) and
talks to it in ``wire`` messages:

- ``{"op": "run", "source": ...}``: run one of the submission's cells, as a notebook would (IPython's shell,
  its own namespace); reply ``{"ran": true}`` (or false: the cell raised, which is the student's business);
- ``{"op": "session", "answer": NAME, "builtins": [...]}``: fork a copy that serves the check of one exercise
  (``serve``) with ``NAME`` from the namespace as the answer, and send the grader its end of a new socket pair
  (``socket.send_fds``); reply ``{"session_over": true}`` once the copy has ended (the grader ends or kills it);
- ``{"op": "end"}``: leave.

The course's checks are never loaded here: ``course_lib.checks`` is a stand-in whose ``check_*`` names do
nothing (the submission's test cells are graded by the grader, not here), and an audit hook refuses to open
anything under the folders named in ``BLOCKED`` (a JSON list: the checks' and the tools' source, the
solutions, the nbgrader course's other folders) except under ``ALLOWED`` (the submission's own folder), and
refuses to import ``course_lib.checks.*`` or ``course_lib.tools.*``. Each refusal is counted; a session
reports the count as calls of the reference, and the grader gives that exercise no points.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import types


FD_MESSAGE = 64  # bytes of the message that carries a session's socket: read whole, before any other message


def _stand_in_checks(refusals: Refusals) -> types.ModuleType:
    """``course_lib.checks`` while grading: ``check_<name>`` does nothing; asking for anything else (the
    registry, a reference) is refused and counted."""
    module = types.ModuleType("course_lib.checks", "The course's checks are not available while grading.")

    def __getattr__(name: str):
        if name.startswith("check_"):
            def not_here(*args, **kwargs):
                return None
            not_here.__name__ = name
            return not_here
        if name.startswith("__"):
            raise AttributeError(name)
        refusals.calls += 1
        raise AttributeError(f"course_lib.checks.{name} is not available while grading")

    module.__getattr__ = __getattr__
    return module


class Refusals:
    """The audit hook's count of refused reads and imports; entered by ``serve`` as its reference guard."""

    def __init__(self) -> None:
        self.calls = 0

    def __enter__(self) -> Refusals:
        return self

    def __exit__(self, *exc) -> None:
        return None


def install_refusals(blocked: list[str], allowed: list[str], refusals: Refusals) -> None:
    """An audit hook (it cannot be removed) that refuses opening a file under ``blocked`` (unless under
    ``allowed``) and importing the course's checks or tools."""
    blocked = [os.path.realpath(path) for path in blocked]
    allowed = [os.path.realpath(path) for path in allowed]
    realpath, fspath, sep = os.path.realpath, os.fspath, os.sep

    def inside(path: str, folders: list[str]) -> bool:
        return any(path == folder or path.startswith(folder + sep) for folder in folders)

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            target = args[0] if args else None
            if isinstance(target, (str, bytes)) or hasattr(target, "__fspath__"):
                try:
                    path = realpath(fspath(target) if not isinstance(target, bytes) else target.decode())
                except (TypeError, ValueError, OSError):
                    return
                if inside(path, blocked) and not inside(path, allowed):
                    refusals.calls += 1
                    raise PermissionError(f"{path}: not readable while grading")
        elif event == "import":
            name = args[0] if args and isinstance(args[0], str) else ""
            if name.startswith(("course_lib.checks.", "course_lib.tools")):
                refusals.calls += 1
                raise ImportError(f"{name} is not available while grading")

    sys.addaudithook(hook)


def prepare() -> None:
    """What every submission's process needs before its first cell: PyTorch (one thread, its one-off costs paid),
    IPython's shell, the serving code. Done once in a zygote (``zygote``) whose forks then start at once."""
    os.environ["MPLBACKEND"] = "Agg"
    import torch
    from IPython.core.interactiveshell import InteractiveShell  # noqa: F401
    from traitlets.config import Config  # noqa: F401

    from . import serve, wire  # noqa: F401

    torch.set_num_threads(1)
    _warm_up()


def run_submission(control: socket.socket, blocked: list[str], allowed: list[str]) -> int:
    """Serve the grader's requests on ``control`` (see the module's docstring) until "end"."""
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)

    import torch
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    from . import wire
    from .serve import CappedOutput, prepare_process, serve

    output = CappedOutput()
    sys.stdout = sys.stderr = output
    torch.set_num_threads(1)
    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)
    sys.stdout = sys.stderr = output  # the shell set its own
    refusals = Refusals()
    sys.modules["course_lib.checks"] = _stand_in_checks(refusals)
    install_refusals(blocked, allowed, refusals)
    wire.send(control, {"ready": os.getpid()})
    while True:
        try:
            header, _ = wire.receive(control)
        except wire.WireError:
            return 0
        op = header.get("op")
        if op == "run":
            result = shell.run_cell(str(header.get("source", "")), store_history=False, silent=True)
            output.take()
            wire.send(control, {"ran": bool(result.success), "refusals": refusals.calls})
        elif op == "session":
            ours, theirs = socket.socketpair()
            pid = os.fork()
            if pid == 0:
                try:
                    control.close()
                    theirs.close()
                    prepare_process()
                    missing = object()
                    answer = shell.user_ns.get(str(header.get("answer")), missing)
                    if answer is missing:
                        wire.send(ours, {"hello": os.getpid(), "missing": str(header.get("answer"))})
                    else:
                        serve(ours, answer, [str(b) for b in header.get("builtins") or []], refusals)
                finally:
                    os._exit(0)
            ours.close()
            socket.send_fds(control, [json.dumps({"session": pid}).encode().ljust(FD_MESSAGE)], [theirs.fileno()])
            theirs.close()
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            wire.send(control, {"session_over": True, "refusals": refusals.calls})
        else:
            return 0


def zygote(requests: socket.socket) -> None:
    """Fork a fresh submission's process for each request: ``wire`` ``{"cwd", "blocked", "allowed", "limits"}``
    followed by the submission's control socket (``send_fds``); reply ``{"spawned": pid}``. The zygote itself
    never runs a submission's code. Never returns."""
    import resource
    import signal

    from . import wire

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # its children are reaped as they end
    while True:
        try:
            header, _ = wire.receive(requests)
            _, fds, _, _ = socket.recv_fds(requests, FD_MESSAGE, 1)
        except (wire.WireError, OSError):
            os._exit(0)
        if len(fds) != 1:
            os._exit(0)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                requests.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.setsid()  # its own process group: the grader kills it and every copy it forked at once
                os.chdir(str(header["cwd"]))
                for name, value in (header.get("limits") or {}).items():
                    limit = getattr(resource, name)
                    resource.setrlimit(limit, (int(value), int(value)))
                code = run_submission(socket.socket(fileno=fds[0]), list(header["blocked"]), list(header["allowed"]))
            finally:
                os._exit(code)
        os.close(fds[0])
        wire.send(requests, {"spawned": pid})


def main(argv: list[str]) -> int:
    """``python -m course_lib.apart.notebook FD BLOCKED ALLOWED``: one submission's process, started directly."""
    prepare()
    return run_submission(socket.socket(fileno=int(argv[1])), json.loads(argv[2]), json.loads(argv[3]))


def _warm_up() -> None:
    """PyTorch's one-off costs (the first optimizer step imports seconds of code on a busy machine), paid
    before any answer runs: a check's time limit must not count them."""
    import torch

    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.zeros(1, 2)).sum().backward()
    optimizer.step()
    torch.optim.SGD(model.parameters(), lr=0.1).step()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
