"""The exercise builder: solutions/ is the single source, exercises/ is generated from it, `--check` catches
drift, and a learner's edited exercise is backed up before it is overwritten."""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from course_lib import checks
from course_lib.tools.cli import main as cli_main
from course_lib.tools.exercise_builder import (
    BEGIN, END, BuildError, differences, exercise_from_solution, fingerprint, kernel_noise, load_sanitizers,
    solution_regions, strip_solutions, without_shutdown_race,
)

REPO = Path(__file__).resolve().parents[1]
TOPICS = sorted(path.stem for path in (REPO / "solutions").glob("[0-9][0-9]_*.ipynb"))
RULES = load_sanitizers(REPO)


def exercises(argv: list[str]) -> int:
    """``python -m course_lib exercises ...``, in this process."""
    return cli_main(["exercises", *argv])


# --- turning solution code into exercise code ------------------------------------------------------------------

SOLUTION_CELL = '''def double(x):
    """x -> 2 x."""
    ### BEGIN SOLUTION
    # HINT: return 2 x.
    y = x * 2
    return y
    ### END SOLUTION'''


def test_region_becomes_raise_with_hint_keeping_def_and_docstring():
    assert strip_solutions(SOLUTION_CELL) == (
        'def double(x):\n    """x -> 2 x."""\n    raise NotImplementedError("Your code here: return 2 x.")')


def test_region_without_hint_gets_default_and_keeps_indentation():
    source = "class A:\n    def f(self):\n        ### BEGIN SOLUTION\n        return 1\n        ### END SOLUTION\n\nprint(2)"
    assert strip_solutions(source) == (
        'class A:\n    def f(self):\n        raise NotImplementedError("Your code here.")'
        '\n\nprint(2)')


def test_several_regions_and_quotes_in_hints():
    source = ('def f():\n    ### BEGIN SOLUTION\n    # HINT: use "quotes"\n    return 1\n    ### END SOLUTION\n'
              'def g():\n    ### BEGIN SOLUTION\n    return 2\n    ### END SOLUTION')
    stripped = strip_solutions(source)
    assert stripped.count("raise NotImplementedError") == 2
    assert 'raise NotImplementedError("Your code here: use \\"quotes\\"")' in stripped
    assert "return 1" not in stripped and "return 2" not in stripped
    assert solution_regions(source) == [['    # HINT: use "quotes"', "    return 1"], ["    return 2"]]


@pytest.mark.parametrize("source, words", [
    ("### END SOLUTION", "without ### BEGIN SOLUTION"),
    ("def f():\n    ### BEGIN SOLUTION\n    return 1", "never closed"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another"),
])
def test_unbalanced_markers_name_the_cell(source, words):
    with pytest.raises(BuildError, match=words) as error:
        strip_solutions(source, "solutions/01_x.ipynb, cell 4")
    assert "solutions/01_x.ipynb, cell 4" in str(error.value)


def _solution_notebook(cells):
    nb = new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}}
    for i, cell in enumerate(cells):
        cell.id = f"cell-{i}"
        nb.cells.append(cell)
    return nb


def test_exercise_drops_solution_only_cells_and_outputs():
    banner = new_markdown_cell("instructor note")
    banner.metadata["tags"] = ["solution-only"]
    code = new_code_cell(SOLUTION_CELL, execution_count=3, outputs=[new_output("stream", name="stdout", text="hi\n")])
    code.metadata["collapsed"] = True
    exercise = exercise_from_solution(_solution_notebook([banner, new_markdown_cell("# Title"), code]), "01_x.ipynb")
    assert [c.source for c in exercise.cells][0] == "# Title"
    assert exercise.cells[1].outputs == [] and exercise.cells[1].execution_count is None
    assert exercise.cells[1].metadata == {} and exercise.cells[1].id == "cell-2"
    assert exercise.metadata["course_lib"] == {"generated_from": "solutions/01_x.ipynb"}


# --- comparing and fingerprints -------------------------------------------------------------------------------------


def _executed(source="print('x')", text="x\n", count=1):
    nb = _solution_notebook([new_markdown_cell("# T"),
                             new_code_cell(source, execution_count=count,
                                           outputs=[new_output("stream", name="stdout", text=text)])])
    return nb


def test_fingerprint_ignores_counts_and_metadata_but_not_content():
    a, b = _executed(count=1), _executed(count=7)
    b.metadata["language_info"] = {"name": "python", "version": "3.99"}
    b.cells[1].metadata["execution"] = {"iopub.status.busy": "2026-01-01"}
    assert fingerprint(a, RULES) == fingerprint(b, RULES)
    assert fingerprint(a, RULES) != fingerprint(_executed(source="print('y')"), RULES)
    assert fingerprint(a, RULES) != fingerprint(_executed(text="y\n"), RULES)


def test_fingerprint_applies_the_nbval_sanitizers():
    assert RULES, "nbval_sanitize.cfg should hold rules"
    a = _executed(text="<object at 0x7f3a2b1c4d50>\n")
    b = _executed(text="<object at 0x7f0000000abc>\n")
    assert fingerprint(a, RULES) == fingerprint(b, RULES)


def test_differences_name_the_cell_and_line():
    assert differences(_executed(), _executed(count=5), RULES) == []
    found = differences(_executed(source="a = 1\nprint('x')"), _executed(source="a = 2\nprint('x')"), RULES)
    assert len(found) == 1 and found[0].startswith("cell 2, line 1: source is 'a = 1'")
    found = differences(_executed(text="old\n"), _executed(text="new\n"), RULES)
    assert len(found) == 1 and found[0].startswith("cell 2: outputs are")
    assert differences(_executed(text="old\n"), _executed(text="new\n"), RULES, outputs=False) == []


def test_command_line_errors_return_nonzero(capsys):
    assert exercises([]) == 2
    assert exercises(["build", "--sources-only"]) == 2
    assert exercises(["build", "--check", "--root", str(REPO), "99_nothing"]) == 1
    assert "no solution notebook matches 99_nothing" in capsys.readouterr().err


# --- building in a scratch repository (executes notebooks) ----------------------------------------------------------

DEMO_CHECK = ("try:\n    print('double(2) =', double(2))\nexcept NotImplementedError:\n"
              "    print('double: not implemented yet')")


def _scratch_repo(tmp_path, solution_cells):
    (tmp_path / "solutions").mkdir(parents=True)
    shutil.copy(REPO / "nbval_sanitize.cfg", tmp_path / "nbval_sanitize.cfg")
    nb = _solution_notebook(solution_cells)
    nbformat.write(nb, tmp_path / "solutions" / "01_demo.ipynb")
    return tmp_path, tmp_path / "exercises" / "01_demo.ipynb"


def _read(path):
    return nbformat.read(path, as_version=4)


@pytest.mark.integration  # executes notebooks in a kernel
def test_build_check_rebuild_and_backup_of_a_learners_edits(tmp_path, capsys):
    root, exercise_path = _scratch_repo(tmp_path, [new_markdown_cell("# Demo"), new_code_cell(SOLUTION_CELL),
                                                   new_code_cell(DEMO_CHECK)])
    assert exercises(["build", "--root", str(root)]) == 0
    assert "exercises/01_demo.ipynb: written" in capsys.readouterr().out
    built = _read(exercise_path)
    assert built.cells[1].source.endswith('raise NotImplementedError("Your code here: return 2 x.")')
    assert built.cells[2].outputs[0]["text"] == "double: not implemented yet\n"  # executed in a kernel
    assert [c.execution_count for c in built.cells if c.cell_type == "code"] == [1, 2]
    assert built.metadata["course_lib"]["fingerprint"] == fingerprint(built, load_sanitizers(root))

    # --check agrees, and writes nothing; a second build leaves the file alone.
    before = exercise_path.read_bytes()
    assert exercises(["build", "--check", "--root", str(root)]) == 0
    assert "1 exercise notebooks match their solutions (sources and outputs)" in capsys.readouterr().out
    assert exercises(["build", "--root", str(root)]) == 0
    assert "up to date" in capsys.readouterr().out and exercise_path.read_bytes() == before

    # A learner solves the exercise: --check names the cell; build keeps a backup of their work.
    edited = _read(exercise_path)
    edited.cells[1].source = 'def double(x):\n    """x -> 2 x."""\n    return x + x'
    nbformat.write(edited, exercise_path)
    learner_bytes = exercise_path.read_bytes()
    assert exercises(["build", "--check", "--sources-only", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "exercises/01_demo.ipynb: cell 2, line 3: source is '    return x + x'" in out
    assert exercise_path.read_bytes() == learner_bytes  # --check wrote nothing

    # Its solution did not change: build leaves the learner's edits in place, with no backup.
    assert exercises(["build", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "exercises/01_demo.ipynb: kept your edits (its solution has not changed since the last build)" in out
    assert exercise_path.read_bytes() == learner_bytes
    assert not list((root / "exercises").glob("backups/*"))

    # The solution changes: build saves the learner's copy, then writes the new exercise, and says so.
    _revise_solution(root, "# Demo, revised")
    assert exercises(["build", "--check", "--sources-only", "--root", str(root)]) == 1
    assert "cell 1, line 1: source is '# Demo', build would write '# Demo, revised'" in capsys.readouterr().out
    assert exercises(["build", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    backups = list((root / "exercises" / "backups").glob("01_demo.*.ipynb"))
    assert len(backups) == 1 and backups[0].read_bytes() == learner_bytes
    assert re.search(r"^exercises/01_demo\.ipynb: its solution changed and you had edited it; saved your copy as "
                     r"exercises/backups/01_demo\.\d{8}-\d{6}\.ipynb and wrote the new exercise$", out, re.M), out
    rebuilt = _read(exercise_path)
    assert rebuilt.cells[0].source == "# Demo, revised" and rebuilt.cells[1].source == built.cells[1].source

    # An instructor's update to an unedited exercise is written without a backup.
    _revise_solution(root, "# Demo, revised twice")
    assert exercises(["build", "--root", str(root), "01"]) == 0
    out = capsys.readouterr().out
    assert "written" in out and "saved" not in out
    assert len(list((root / "exercises" / "backups").glob("*.ipynb"))) == 1


def _revise_solution(root, title):
    solution = _read(root / "solutions" / "01_demo.ipynb")
    solution.cells[0].source = title
    nbformat.write(solution, root / "solutions" / "01_demo.ipynb")


@pytest.mark.integration  # executes notebooks in a kernel
def test_check_catches_stale_outputs_and_orphans(tmp_path, capsys):
    root, exercise_path = _scratch_repo(tmp_path, [new_code_cell(SOLUTION_CELL), new_code_cell(DEMO_CHECK)])
    assert exercises(["build", "--root", str(root)]) == 0
    stale = _read(exercise_path)
    stale.cells[1].outputs[0]["text"] = "double(2) = 4\n"  # an output from solution code leaking into the exercise
    nbformat.write(stale, exercise_path)
    shutil.copy(exercise_path, root / "exercises" / "02_orphan.ipynb")
    capsys.readouterr()
    assert exercises(["build", "--check", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "exercises/01_demo.ipynb: cell 2: outputs are" in out
    assert "exercises/02_orphan.ipynb: has no source solutions/02_orphan.ipynb" in out
    exercise_path.unlink()
    assert exercises(["build", "--check", "--sources-only", "--root", str(root), "01_demo"]) == 1
    assert "exercises/01_demo.ipynb: missing" in capsys.readouterr().out


def _one_line_error(captured):
    err = captured.err.strip()
    assert "Traceback" not in captured.out + captured.err, captured.err
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


def test_a_solution_without_markers_is_refused(tmp_path, capsys):
    root, exercise_path = _scratch_repo(tmp_path, [new_markdown_cell("# Demo"),
                                                   new_code_cell("def double(x):\n    return 2 * x")])
    assert exercises(["build", "--root", str(root)]) == 1
    err = _one_line_error(capsys.readouterr())
    assert "solutions/01_demo.ipynb: has no ### BEGIN SOLUTION ... ### END SOLUTION region" in err
    assert not exercise_path.exists()
    assert exercises(["build", "--check", "--sources-only", "--root", str(root)]) == 1


def test_a_cell_without_source_is_named(tmp_path, capsys):
    root, exercise_path = _scratch_repo(tmp_path, [new_markdown_cell("# Demo"), new_code_cell(SOLUTION_CELL)])
    raw = json.loads((root / "solutions" / "01_demo.ipynb").read_text())
    del raw["cells"][0]["source"]
    (root / "solutions" / "01_demo.ipynb").write_text(json.dumps(raw))
    assert exercises(["build", "--root", str(root)]) == 1
    err = _one_line_error(capsys.readouterr())
    assert "solutions/01_demo.ipynb, cell 1: has no source" in err
    assert not exercise_path.exists()


def _edited_then_solution_changed(tmp_path, capsys):
    """A built exercise that a learner then edited, and a solution changed since: build must replace it."""
    root, exercise_path = _scratch_repo(tmp_path, [new_markdown_cell("# Demo"), new_code_cell(SOLUTION_CELL),
                                                   new_code_cell(DEMO_CHECK)])
    assert exercises(["build", "--root", str(root)]) == 0
    edited = _read(exercise_path)
    edited.cells[1].source = "def double(x):\n    return x + x  # my answer"
    nbformat.write(edited, exercise_path)
    _revise_solution(root, "# Demo, revised")
    capsys.readouterr()
    return root, exercise_path, exercise_path.read_bytes()


@pytest.mark.integration  # executes notebooks in a kernel
def test_unwritable_backups_or_a_read_only_exercise_stop_with_one_line_and_change_nothing(tmp_path, capsys):
    root, exercise_path, learner_bytes = _edited_then_solution_changed(tmp_path, capsys)
    backups = root / "exercises" / "backups"
    backups.write_text("a file where the backups folder should be")
    assert exercises(["build", "--root", str(root)]) == 1
    err = _one_line_error(capsys.readouterr())
    assert "exercises/01_demo.ipynb: cannot create exercises/backups/ for a backup of your edits" in err
    assert exercise_path.read_bytes() == learner_bytes
    backups.unlink()

    exercise_path.chmod(0o444)
    assert exercises(["build", "--root", str(root)]) == 1
    err = _one_line_error(capsys.readouterr())
    assert "exercises/01_demo.ipynb: is read-only, so build will not replace it" in err
    assert exercise_path.read_bytes() == learner_bytes and not list(backups.glob("*"))

    exercise_path.chmod(0o644)
    assert exercises(["build", "--root", str(root)]) == 0
    assert "saved your copy as exercises/backups/" in capsys.readouterr().out
    assert [p.read_bytes() for p in backups.glob("*.ipynb")] == [learner_bytes]


@pytest.mark.integration  # executes notebooks in a kernel
def test_a_backups_folder_without_write_permission_stops_the_build(tmp_path, capsys, read_only):
    root, exercise_path, learner_bytes = _edited_then_solution_changed(tmp_path, capsys)
    backups = root / "exercises" / "backups"
    backups.mkdir()
    read_only(backups)
    assert exercises(["build", "--root", str(root)]) == 1
    err = _one_line_error(capsys.readouterr())
    assert "cannot save a backup in exercises/backups/ (Permission denied)" in err
    assert exercise_path.read_bytes() == learner_bytes
    assert list(backups.iterdir()) == []


@pytest.mark.integration  # executes notebooks in a kernel
def test_backups_never_overwrite_one_another_and_a_failed_write_keeps_the_exercise(tmp_path, capsys, monkeypatch):
    root, exercise_path, learner_bytes = _edited_then_solution_changed(tmp_path, capsys)
    backups = root / "exercises" / "backups"
    backups.mkdir()
    stamp = "20260101-120000"
    monkeypatch.setattr(time, "strftime", lambda *args: stamp)
    taken = backups / f"01_demo.{stamp}.ipynb"
    taken.write_bytes(b"another build's backup of another answer")
    # Another build takes the name between this build's look and its write: a check-then-copy loses it.
    real_exists = Path.exists
    monkeypatch.setattr(Path, "exists", lambda self: False if self.parent == backups else real_exists(self))

    # A failure while writing the new exercise (a full disk) leaves the learner's notebook whole.
    real_writes = nbformat.writes

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nbformat, "writes", full_disk)
    assert exercises(["build", "--root", str(root)]) == 1
    err = _one_line_error(capsys.readouterr())
    assert "exercises/01_demo.ipynb" in err and "No space left on device" in err
    assert exercise_path.read_bytes() == learner_bytes
    assert taken.read_bytes() == b"another build's backup of another answer"
    assert not [p for p in exercise_path.parent.iterdir() if p.name.endswith(".tmp")]

    monkeypatch.setattr(nbformat, "writes", real_writes)
    assert exercises(["build", "--root", str(root)]) == 0
    assert taken.read_bytes() == b"another build's backup of another answer"
    assert learner_bytes in [p.read_bytes() for p in backups.glob("*.ipynb")]
    assert _read(exercise_path).cells[0].source == "# Demo, revised"


@pytest.mark.integration  # executes notebooks in a kernel
def test_an_exercise_built_before_source_fingerprints_keeps_its_edits_while_the_build_is_the_same(tmp_path, capsys):
    root, exercise_path = _scratch_repo(tmp_path, [new_code_cell(SOLUTION_CELL), new_code_cell(DEMO_CHECK)])
    assert exercises(["build", "--root", str(root)]) == 0
    edited = _read(exercise_path)
    del edited.metadata["course_lib"]["source_fingerprint"]  # as an older builder wrote it
    edited.cells[0].source = "def double(x):\n    return x + x"
    nbformat.write(edited, exercise_path)
    learner_bytes = exercise_path.read_bytes()
    capsys.readouterr()
    assert exercises(["build", "--root", str(root)]) == 0
    assert "kept your edits" in capsys.readouterr().out
    assert exercise_path.read_bytes() == learner_bytes and not (root / "exercises" / "backups").exists()


@pytest.mark.integration  # executes notebooks in a kernel
def test_a_cell_that_fails_when_executed_stops_the_build_naming_it(tmp_path, capsys):
    broken = "### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION"  # a region outside a function cannot run
    root, exercise_path = _scratch_repo(tmp_path, [new_markdown_cell("# Demo"), new_code_cell(broken)])
    assert exercises(["build", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "cell 2 raised an error when executed" in err and "NotImplementedError" in err
    assert not exercise_path.exists()


@pytest.mark.integration  # executes notebooks in a kernel
def test_an_unreadable_exercise_is_backed_up_as_it_is_and_rebuilt(tmp_path, capsys):
    root, exercise_path = _scratch_repo(tmp_path, [new_code_cell(SOLUTION_CELL), new_code_cell(DEMO_CHECK)])
    assert exercises(["build", "--root", str(root)]) == 0
    good = exercise_path.read_bytes()
    conflicted = b"<<<<<<< HEAD\n" + good[: len(good) // 2]  # half a notebook after a merge conflict
    exercise_path.write_bytes(conflicted)
    capsys.readouterr()

    assert exercises(["build", "--check", "--root", str(root)]) == 1
    captured = capsys.readouterr()
    assert "exercises/01_demo.ipynb: not a readable notebook" in captured.out
    assert "Traceback" not in captured.out + captured.err and exercise_path.read_bytes() == conflicted

    assert exercises(["build", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"exercises/01_demo\.ipynb: not a readable notebook; saved it as "
                     r"exercises/backups/01_demo\.\d{8}-\d{6}\.ipynb and wrote a new one", out), out
    backups = list((root / "exercises" / "backups").glob("01_demo.*.ipynb"))
    assert len(backups) == 1 and backups[0].read_bytes() == conflicted
    assert _read(exercise_path).cells[1].outputs[0]["text"] == "double: not implemented yet\n"
    assert exercises(["build", "--check", "--root", str(root)]) == 0


@pytest.mark.parametrize("line, noise", [
    ("[IPKernelApp] WARNING | Kernel is running over TCP without encryption. All communication ...", True),
    ("0.00s - Debugger warning: It seems that frozen modules are being used, which may", True),
    ("[IPKernelApp] ERROR | Exception in message handler:", False),
    ("Traceback (most recent call last):", False),
    ("real trouble", False),
])
def test_kernel_noise_is_only_the_start_up_chatter(line, noise):
    assert kernel_noise(line) is noise


# Seen once on a loaded machine: ipykernel logged this while shutting down, after every cell had run.
SHUTDOWN_RACE = """\
ERROR:tornado.general:Uncaught exception in ZMQStream callback
Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/ipykernel/kernelbase.py", line 406, in process_control
    sys.stdout.flush()
  File "zmq/backend/cython/_zmq.py", line 190, in zmq.backend.cython._zmq._check_rc
zmq.error.ZMQError: Socket operation on non-socket""".splitlines()


def test_the_kernels_shutdown_race_is_dropped_but_a_real_error_around_it_is_kept():
    real = ["Traceback (most recent call last):", '  File "x.py", line 1', "ValueError: real trouble"]
    assert without_shutdown_race(SHUTDOWN_RACE) == []
    assert without_shutdown_race(real + SHUTDOWN_RACE + ["after"]) == real + ["after"]
    # The same start without its ZMQError ending is not the race: kept whole.
    unfinished = SHUTDOWN_RACE[:-1] + ["ValueError: something else"]
    assert without_shutdown_race(unfinished) == unfinished


@pytest.mark.integration  # executes notebooks in a kernel
def test_build_runs_this_python_quietly_but_passes_real_kernel_errors_on(tmp_path, capfd, monkeypatch):
    # A "python3" kernelspec of another environment, as on a JupyterHub: the builder must not use it.
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(tmp_path / "elsewhere" / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Another Python", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    show = new_code_cell("import os, sys\nprint(sys.executable)\nos.write(2, b'a real problem\\n')")
    root, exercise_path = _scratch_repo(tmp_path / "repo", [new_code_cell(SOLUTION_CELL), show])
    capfd.readouterr()
    assert exercises(["build", "--root", str(root)]) == 0
    err = capfd.readouterr().err
    assert _read(exercise_path).cells[1].outputs[0]["text"] == sys.executable + "\n"
    assert "IPKernelApp" not in err and "without encryption" not in err, err
    assert "a real problem" in err  # written straight to the kernel's stderr, not to the cell


# --- the course's own notebooks --------------------------------------------------------------------------------------


def _notebooks(folder):
    return {p.stem: _read(p) for p in sorted((REPO / folder).glob("[0-9][0-9]_*.ipynb"))}


def test_every_lesson_has_a_solution_and_an_exercise_notebook():
    lessons = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb") if not p.stem.startswith("00_"))
    assert TOPICS == lessons  # lesson 00 has no exercises; every other lesson has
    assert sorted(_notebooks("exercises")) == TOPICS
    assert sorted(checks.EXERCISES) == TOPICS


def _outside_regions(source: str) -> list[str]:
    lines, inside = [], False
    for line in source.split("\n"):
        if "### BEGIN SOLUTION" in line:
            inside = True
        elif "### END SOLUTION" in line:
            inside = False
        elif not inside:
            lines.append(line)
    return lines


def test_no_solution_code_or_marker_in_any_exercise_notebook():
    for topic, solution in _notebooks("solutions").items():
        exercise = _read(REPO / "exercises" / f"{topic}.ipynb")
        exercise_text = json.dumps(exercise, ensure_ascii=False)
        for marker in ("### BEGIN SOLUTION", "### END SOLUTION", "# HINT:"):
            assert marker not in exercise_text, (topic, marker)
        texts = [cell.source for cell in exercise.cells]
        texts += [str(value) for cell in exercise.cells for output in cell.get("outputs", [])
                  for value in [output.get("text", ""), *output.get("data", {}).values()]]
        exercise_lines = {line.strip() for text in texts for line in text.split("\n")}
        solution_lines = [line.strip() for cell in solution.cells if cell.cell_type == "code"
                          for region in solution_regions(cell.source) for line in region]
        code_lines = [line for line in solution_lines if line and not line.startswith("#")]
        assert code_lines, topic
        # A line the learner is given outside every solution region (e.g. `loss.backward()` in a buggy
        # function to fix) is not a leak when the answer repeats it.
        given_lines = {line.strip() for cell in solution.cells if cell.cell_type == "code"
                       for line in _outside_regions(cell.source)}
        leaked = [line for line in code_lines if line in exercise_lines and line not in given_lines]
        assert not leaked, (topic, leaked)


def test_solution_notebooks_show_every_check_passing_and_exercises_not_implemented():
    for topic, names in checks.EXERCISES.items():
        for folder, symbol, words in (("solutions", "✓", ""), ("exercises", "✗", ": not implemented yet")):
            nb = _read(REPO / folder / f"{topic}.ipynb")
            check_cells = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("check_")]
            assert [c.source.split("(")[0] for c in check_cells] == [f"check_{n}" for n in names], (folder, topic)
            for cell, name in zip(check_cells, names):
                shown = cell.outputs[0]["data"]["text/plain"]
                assert shown.startswith(f"{symbol} {name}{words}"), (folder, topic, shown)


def test_each_exercise_has_difficulty_time_and_collapsible_hints():
    for topic, nb in _notebooks("solutions").items():
        headers = [c.source for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## Exercise")]
        assert len(headers) >= 3, topic
        for header in headers:
            assert re.search(r"Difficulty [★☆]{3} \([123]/3\) · about \d+ minutes", header), header
        hints = [c for c in nb.cells if c.cell_type == "markdown" and "<details><summary>Hint" in c.source]
        assert len(hints) == len(headers), topic
        code = [c.source for c in nb.cells if c.cell_type == "code"]
        assert sum(len(re.findall(BEGIN.pattern, s, re.M)) for s in code) >= 3
        assert all(len(re.findall(BEGIN.pattern, s, re.M)) == len(re.findall(END.pattern, s, re.M)) for s in code)


def test_committed_exercises_match_what_build_would_write(capsys):
    # Sources only: the same test command runs every committed exercise under strict nbval, which checks
    # that its stored outputs are what its sources produce; executing them here too would double the time.
    before = {p: p.read_bytes() for p in (REPO / "exercises").glob("*.ipynb")}
    code = exercises(["build", "--check", "--sources-only", "--root", str(REPO)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert len(TOPICS) >= 6 and f"{len(TOPICS)} exercise notebooks match their solutions (sources)" in out
    assert {p: p.read_bytes() for p in (REPO / "exercises").glob("*.ipynb")} == before
