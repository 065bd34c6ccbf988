"""The course's steps inside ``nbgrader autograde``, named by the generated ``nbgrader_config.py``.

- ``ExecuteGently``: nbgrader's ``Execute``, except that a cell that does not stop when interrupted (a loop
  inside ``except BaseException:``) or that ends the kernel (``os._exit``) costs only itself: the kernel is
  started again and the next cells run (without what came before). nbgrader alone gives up on the whole
  notebook, and the student gets nothing back.
- ``GradeApart``: after the notebook has run, each of the course's test cells gets, as its only output, the
  verdict of the course's grader, which ran the answer in a process of its own (``course_lib.tools.autograde``).

This module imports nbgrader (requirements-instructor.txt); the grading process itself does not.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys

from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbconvert.preprocessors import Preprocessor
from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute
from traitlets import Bool, Float, Unicode

from course_lib.tools.autograde import ROOT, blocked_paths
from course_lib.tools.nbgrader_course import CHECK_CALL

STOPPED = ("CellTimeoutError", "KeyboardInterrupt", "DeadKernelError")  # how nbgrader's run marks a stopped cell


def check_call(source: str):
    """The ``check_<name>(<answer>)`` match of a test cell's one line of code: comments aside (nbgrader puts
    a comment line above a test cell it restored), or None."""
    code = [line for line in source.splitlines() if line.strip() and not line.strip().startswith("#")]
    return CHECK_CALL.match(code[0]) if len(code) == 1 else None


class ExecuteGently(Execute):
    """nbgrader's ``Execute``; a cell that outlives its interrupt, or kills the kernel, is marked and skipped."""

    def preprocess_cell(self, cell, resources, index):
        if _graded_apart(cell):  # GradeApart writes its output; running the check here would only cost time
            return cell, resources
        try:
            return super().preprocess_cell(cell, resources, index)
        except (CellTimeoutError, DeadKernelError) as error:
            name = type(error).__name__
            why = ("did not stop when interrupted" if isinstance(error, CellTimeoutError) else "ended the kernel")
            cell.outputs.append(new_output("error", ename=name, evalue=why, traceback=[
                f"{name}: this cell {why}; the kernel was started again, so the cells after it ran without what "
                f"came before. Each exercise was still graded on its own (course_lib.tools.autograde)."]))
            run_sync(self.km.restart_kernel)(now=True)
            run_sync(self.kc.wait_for_ready)(timeout=self.startup_timeout)
            return cell, self.resources


class GradeApart(Preprocessor):
    """After nbgrader's ``Execute``: grade each of the course's test cells apart (see the module's docstring)
    and make its outputs the verdict: a passing line, or an error that nbgrader scores 0."""

    course_root = Unicode("", help="The nbgrader course folder: its source, submissions and gradebook are "
                                   "closed to the submission while it is graded.").tag(config=True)
    cell_seconds = Float(60.0, help="Seconds one cell of a submission may run.").tag(config=True)

    enabled = Bool(True, help="nbconvert runs a preprocessor only when enabled; this one always").tag(config=True)

    _grader: list = [None]

    def preprocess(self, nb, resources):
        cells, tests = [], {}
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            meta = cell.metadata.get("nbgrader", {})
            match = check_call(cell.source) if meta.get("grade") and not meta.get("solution") else None
            if match:
                tests[len(cells)] = cell
                cells.append({"exercise": match.group("name"), "answer": match.group("answer")})
            elif _timed_out(cell):  # nbgrader already waited for it once: it would only hang here too
                cells.append({"source": "", "skipped": True})
            else:
                cells.append({"source": cell.source})
        if not tests:
            return nb, resources
        here = os.path.abspath(resources.get("metadata", {}).get("path") or ".")
        request = {"cells": cells, "cwd": here, "blocked": blocked_paths(self.course_root), "allowed": [here],
                   "cell_seconds": self.cell_seconds}
        reply = self._ask(request)
        verdicts = reply.get("verdicts", {})
        for index, cell in tests.items():
            verdict = verdicts.get(str(index)) or {"passed": False,
                                                   "line": f"✗ the grader failed: {reply.get('error', 'no verdict')}"}
            line = str(verdict.get("line", ""))
            if verdict.get("passed") is True:
                cell.outputs = [new_output("stream", name="stdout", text=line + "\n")]
            else:
                cell.outputs = [new_output("error", ename="AssertionError", evalue=line,
                                           traceback=[f"AssertionError: {line}"])]
        return nb, resources

    def _ask(self, request: dict) -> dict:
        process = GradeApart._grader[0]
        if process is None or process.poll() is not None:
            process = subprocess.Popen([sys.executable, "-m", "course_lib.tools.autograde"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
            GradeApart._grader[0] = process
            atexit.register(_stop, process)
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()
        line = process.stdout.readline()
        try:
            return json.loads(line)
        except ValueError:
            return {"error": "the grading process ended"}


def _graded_apart(cell) -> bool:
    """Whether ``cell`` is one of the course's test cells (``check_<name>(<answer>)``, an nbgrader grade cell)."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return (cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")
            and check_call(cell.get("source", "")) is not None)


def _timed_out(cell) -> bool:
    """Whether nbgrader's run stopped ``cell`` (a timeout, an interrupt, a kernel that ended)."""
    return any(output.get("output_type") == "error" and output.get("ename") in STOPPED
               for output in cell.get("outputs", []))


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
