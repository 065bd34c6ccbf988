"""Grading a submission with each answer apart from the grader.

``nbgrader autograde`` runs a student's notebook in one kernel: the student's cells and the test cells share
one process, so whatever judges there can be reached by the student's code. The course grades elsewhere.
After nbgrader has run the notebook, ``GradeApart`` (``course_lib.tools.nbgrader_steps``, added by the generated
``nbgrader_config.py``) asks a grading process (``python -m course_lib.tools.autograde``, the only process that
loads the checks) to grade it, and writes each test cell's verdict as that cell's output: nothing the student's
code printed or raised there counts.

The grading process starts a fresh process for the submission (``course_lib.apart.notebook``): it runs the
submission's cells in order, without the checks, and for each test cell forks a copy that holds the student's
answer. The check runs in the grading process and sends that copy plain inputs; plain data comes back
(``course_lib.apart``). So:

- no student code runs where the checks, their expected values or their reference solutions are;
- an answer that hangs (inside any ``except``), exits, crashes or floods its output loses its own exercise: its
  copy is killed past the check's time limit, its output is thrown away;
- a submission that reads or imports the checks or the solutions is refused, and every exercise graded after
  the attempt gets no points, with a line that says why;
- a cell that hangs or kills the submission's process is skipped: the process is started again and the cells
  before it are run again.

What it does not do: the submission's process has the grader's file rights (it may delete files it can
reach) and no memory limit. Grade in a container for that (docs/instructor-guide.md, "The trust model").
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REFUSED = "0 points: the submission called or read the course's checks or solutions while it was graded"
START_SECONDS = 120.0  # a fresh Python with PyTorch, on a busy machine
MAX_RESTARTS = 3
FILE_SIZE_LIMIT = 256 << 20  # bytes one file written by a submission may reach
ROOT = Path(__file__).resolve().parents[2]


# --- the grading process ---------------------------------------------------------------------------------------

class SubmissionGone(Exception):
    """The submission's process ended or hung while running a cell."""


class Submission:
    """The process that runs one submission's cells (``course_lib.apart.notebook``)."""

    def __init__(self, cwd: str, blocked: list[str], allowed: list[str], cell_seconds: float):
        from course_lib.apart import wire

        self.wire, self.cell_seconds = wire, cell_seconds
        self.control, theirs = socket.socketpair()
        self.process, self.pid = None, None
        self.refusals = 0  # reads and imports of the checks refused so far (as the process last said)
        zygote = ZYGOTE[0]
        try:
            if zygote is not None:  # a fork of a process that has PyTorch loaded already: no start-up to wait for
                from course_lib.apart.notebook import FD_MESSAGE

                wire.send(zygote, {"cwd": cwd, "blocked": blocked, "allowed": allowed, "limits": LIMITS})
                socket.send_fds(zygote, [b"fd".ljust(FD_MESSAGE)], [theirs.fileno()])
                header, _ = wire.receive(zygote, time.monotonic() + START_SECONDS)
                self.pid = header.get("spawned")
            else:
                env = dict(os.environ, MPLBACKEND="Agg", PYTHONHASHSEED="0")
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "course_lib.apart.notebook", str(theirs.fileno()), json.dumps(blocked),
                     json.dumps(allowed)], pass_fds=[theirs.fileno()], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=_limits)
                self.pid = self.process.pid
            theirs.close()
            wire.receive(self.control, time.monotonic() + START_SECONDS)
        except (wire.WireError, OSError) as error:
            self.close()
            raise SubmissionGone(f"the submission's process did not start ({error})") from None

    def run(self, source: str) -> bool:
        """Run one cell; False when it raised. ``SubmissionGone`` when the process ended or hung."""
        try:
            self.wire.send(self.control, {"op": "run", "source": source})
            header, _ = self.wire.receive(self.control, time.monotonic() + self.cell_seconds)
        except (self.wire.WireError, OSError) as error:
            self.close()
            raise SubmissionGone(str(error)) from None
        if type(header.get("refusals")) is int:
            self.refusals = max(self.refusals, header["refusals"])
        return header.get("ran") is True

    def session(self, answer: str, builtins: tuple[str, ...]):
        """A ``Session`` with a fresh copy of the submission's process holding ``answer``; None when the
        submission defines no such name."""
        from course_lib.apart.notebook import FD_MESSAGE
        from course_lib.apart.session import AnswerGone, Session

        try:
            self.wire.send(self.control, {"op": "session", "answer": answer, "builtins": list(builtins)})
            self.control.settimeout(START_SECONDS)
            data, fds, _, _ = socket.recv_fds(self.control, FD_MESSAGE, 1)
            while len(data) < FD_MESSAGE:
                more = self.control.recv(FD_MESSAGE - len(data))
                if not more:
                    raise OSError("closed")
                data += more
            self.control.settimeout(None)
        except (OSError, self.wire.WireError) as error:
            self.close()
            raise SubmissionGone(str(error)) from None
        if len(fds) != 1:
            self.close()
            raise SubmissionGone("no session")
        copy = socket.socket(fileno=fds[0])
        try:
            claimed = json.loads(data.decode().strip()).get("session")
        except (ValueError, AttributeError):
            claimed = None
        session = Session(copy, lambda: self._end_copy(claimed), show_output=False)
        try:
            session.start(START_SECONDS)
        except AnswerGone:
            self._wait_session_over()
            raise SubmissionGone("the copy that holds the answer did not start") from None
        if session.missing is not None:
            session.close()
            self._wait_session_over()
            return None
        return session

    def end_session(self, session) -> None:
        session.close()
        self._wait_session_over()

    def _wait_session_over(self) -> None:
        try:
            self.wire.receive(self.control, time.monotonic() + 10)
        except (self.wire.WireError, OSError):
            self.close()
            raise SubmissionGone("the submission's process did not go on after a check") from None

    def _end_copy(self, pid) -> None:
        """Kill the copy that served a check, if it is still there and really a child of this submission's
        process (its pid came from the student's side)."""
        if type(pid) is not int or pid <= 1:
            return None
        try:
            with open(f"/proc/{pid}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return None
        if parent == self.pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return None

    def close(self) -> None:
        if type(self.pid) is int and self.pid > 1:
            try:
                os.killpg(self.pid, signal.SIGKILL)  # the process and every copy it forked
            except (ProcessLookupError, PermissionError):
                pass
        if self.process is not None:
            self.process.wait()
        self.control.close()


# No core files, no file larger than 256 MB, at most 30 minutes of CPU for the process that runs the cells.
LIMITS = {"RLIMIT_CORE": 0, "RLIMIT_FSIZE": FILE_SIZE_LIMIT, "RLIMIT_CPU": 1800}
ZYGOTE: list = [None]  # the grading process's zygote (serve_requests), where there is one


def _limits() -> None:
    """In the submission's process, before it starts (see LIMITS)."""
    for name, value in LIMITS.items():
        resource.setrlimit(getattr(resource, name), (value, value))


def grade(cells: list[dict], cwd: str, blocked: list[str], allowed: list[str], cell_seconds: float,
          time_limit: float | None = None) -> dict:
    """``cells``: the notebook's code cells in order, each ``{"source": ...}`` or, for a test cell,
    ``{"exercise": name, "answer": name}``. Returns {cell index: {"passed": bool, "line": str}} for the test
    cells. ``time_limit``: seconds for every check (None: each check's own, as when grading a class)."""
    from course_lib.checks import registry, settings

    verdicts: dict[int, dict] = {}
    ran: list[str] = []
    restarts = 0
    submission = None
    tried = False  # a cell since the last exercise tried to read or import the checks
    for index, cell in enumerate(cells):
        exercise = cell.get("exercise")
        if exercise is None:
            if restarts > MAX_RESTARTS or cell.get("skipped"):
                continue
            try:
                if submission is None:
                    submission = _started(cwd, blocked, allowed, cell_seconds, ran)
                before = submission.refusals
                submission.run(str(cell.get("source", "")))
                ran.append(str(cell.get("source", "")))
                tried = tried or submission.refusals > before
            except SubmissionGone:  # this cell is skipped; the next starts the process again with the cells before
                submission = None
                restarts += 1
            continue
        answer = str(cell.get("answer"))
        attempted, tried = tried, False  # a refused read since the last exercise counts against this one
        if exercise not in registry.REGISTRY:
            verdicts[index] = {"passed": False, "line": f"✗ {exercise}: the grader knows no such exercise"}
            continue
        entry = registry.REGISTRY[exercise]
        try:
            if submission is None:
                if restarts > MAX_RESTARTS:
                    raise SubmissionGone("stopped")
                submission = _started(cwd, blocked, allowed, cell_seconds, ran)
            session = submission.session(answer, entry.builtins)
        except SubmissionGone:
            submission = None
            verdicts[index] = {"passed": False, "line": f"✗ {exercise}: the notebook could not be run up to this "
                                                        f"exercise (a cell before it ended or hung the process)"}
            continue
        if session is None:
            line = REFUSED if attempted else f"the notebook defines no `{answer}`"
            verdicts[index] = {"passed": False, "line": f"✗ {exercise}: {line}"}
            continue
        settings.time_limit, settings.apart = time_limit, True
        try:
            result = entry.check(session.root)
        finally:
            try:
                submission.end_session(session)
            except SubmissionGone:
                submission = None
        if attempted or session.reference_calls > 0 or result.used_reference:
            verdicts[index] = {"passed": False, "line": f"✗ {exercise}: {REFUSED}"}
        else:
            verdicts[index] = {"passed": result.passed, "line": str(result)}
    if submission is not None:
        submission.close()
    return verdicts


def _started(cwd, blocked, allowed, cell_seconds, ran: list[str]) -> Submission:
    submission = Submission(cwd, blocked, allowed, cell_seconds)
    for source in ran:
        submission.run(source)
    return submission


def serve_requests() -> int:
    """``python -m course_lib.tools.autograde``: one JSON request per line on stdin (``grade``'s arguments),
    one JSON line of verdicts per request on stdout."""
    out = os.fdopen(os.dup(1), "w")
    sys.stdout = sys.stderr = open(os.devnull, "w")  # nothing else may reach the answer channel
    from course_lib.apart import notebook

    # Before the checks are loaded: a zygote that forks each submission's process with PyTorch ready, and
    # without anything of the checks in its memory.
    notebook.prepare()
    ours, theirs = socket.socketpair()
    if os.fork() == 0:
        ours.close()
        notebook.zygote(theirs)
    theirs.close()
    ZYGOTE[0] = ours
    import course_lib.checks  # noqa: F401 - loads every check once, before any request

    for line in sys.stdin:
        try:
            request = json.loads(line)
            verdicts = grade(request["cells"], request["cwd"], request["blocked"], request["allowed"],
                             float(request["cell_seconds"]))
            reply = {"verdicts": {str(k): v for k, v in verdicts.items()}}
        except Exception as error:  # noqa: BLE001 - the preprocessor reports it; the next notebook is graded
            reply = {"error": f"{type(error).__name__}: {error}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


def blocked_paths(course_root: str) -> list[str]:
    """What a submission may not read while graded: the checks' and tools' source, the solutions, and the
    nbgrader course's source, submissions, other autograded notebooks, feedback, gradebook and configuration."""
    package = Path(__file__).resolve().parents[1]
    paths = [package / "checks", package / "tools", ROOT / "solutions"]
    if course_root:
        root = Path(course_root)
        paths += [root / name for name in ("source", "submitted", "autograded", "feedback", "gradebook.db",
                                            "nbgrader_config.py")]
    return [str(path) for path in paths]


if __name__ == "__main__":
    sys.exit(serve_requests())
