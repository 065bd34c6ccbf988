"""Grading a class with nbgrader: `python -m course_lib nbgrader source`, then nbgrader's own commands on
fixture submissions, each score asserted.

Lesson 06 is graded for seven students: a correct one, one with a classic mistake in every exercise, one
whose answer crashes, one whose answers call os._exit, print 50 MB and call the
check's own reference, one whose notebook is not a notebook, one that overrides the checks and edits
the test cells, and one whose answers lie (a tensor equal to everything), patch PyTorch's comparisons and
hang inside nested ``except`` blocks (a cell of the lesson calls that answer, so nbgrader's kernel hangs too). Lesson 01's assignment is generated and released too
(grading it again would only repeat the same machinery at a cost in test time).

Without nbgrader (requirements-instructor.txt), those tests skip, saying so; the fast tests of the
generator and the grader still run.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from course_lib.tools.cli import main
from course_lib.checks import registry
from course_lib.tools.nbgrader_course import SourceError, move_hints_out, points, write_course

pytestmark = pytest.mark.integration  # left out of the fast loop (README, "Contributing")

NO_NBGRADER = "instructor packages not installed: pip install -r requirements-instructor.txt"

ROOT = Path(__file__).resolve().parent.parent
CELL_TIMEOUT = 6  # the test's per-cell limit (lesson 06's slowest cell takes about 2 s): the cheating student's hang costs it once

# Lesson 06 is graded for seven students; lesson 01 is generated and released. A lesson that gains an
# exercise stays covered: the correct student's answers come from the source notebook, points from its cells.
FULL, SHORT = "06_positions", "01_inputs_as_numbers"
MISTAKES = {
    FULL: {
        "sinusoidal_positions": (
            "def sinusoidal_positions(T, d):\n"
            "    pos = torch.arange(T, dtype=torch.float32)[:, None]\n"
            "    freq = torch.pow(10000.0, -torch.arange(0, d, 2, dtype=torch.float32) / d)\n"
            "    pe = torch.zeros(T, d)\n"
            "    pe[:, 0::2], pe[:, 1::2] = torch.cos(pos * freq), torch.sin(pos * freq)\n"
            "    return pe\n", "sin and cos swapped"),
        "add_positions": ("def add_positions(x, table):\n    return x + table[0]\n", "first row"),
        "position_similarity": ("def position_similarity(positions):\n    return positions @ positions.T\n",
                                "dot products, not cosines"),
    },
}
CRASHES = "add_positions"  # the crashing student's exercise
DELETED = "position_similarity"  # the crashing student also deleted this test cell: it is put back and graded
# Replaces every check the submission can reach by one that passes anything, then answers nothing right.
OVERRIDE = """\
import course_lib.checks as checks
from course_lib.checks import running, registry

def fake_check(candidate, **kwargs):
    return None

for name, entry in list(registry.REGISTRY.items()):
    registry.REGISTRY[name] = type(entry)(entry.name, entry.lesson, fake_check, entry.reference)
    setattr(checks, "check_" + name, fake_check)
running.settings.time_limit = 0
check_sinusoidal_positions = check_add_positions = check_position_similarity = fake_check
"""
# Patches the comparisons every check relies on (in the submission's own process only).
PATCHES = """\
import torch
torch.allclose = lambda *args, **kwargs: True
torch.equal = lambda *args, **kwargs: True
torch.Tensor.allclose = lambda *args, **kwargs: True
"""
LIAR = """\
import torch
class Liar(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in ("allclose", "equal"):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})

def sinusoidal_positions(T, d):
    return torch.zeros(T, d).as_subclass(Liar)
"""
NESTED_HANG = """\
import time
def position_similarity(positions):
    while True:
        try:
            try:
                while True:
                    time.sleep(0.01)
            except BaseException:
                pass
        except BaseException:
            pass
"""


def nbgrader(course: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run nbgrader in the course folder, as an instructor does (its gradebook calls `alembic` from PATH)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run([str(Path(sys.executable).parent / "nbgrader"), *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=timeout)


def answer_name(cell) -> str:
    return re.search(r"^(?:def|class)\s+(\w+)", cell.source, re.MULTILINE).group(1)


def submit(course: Path, lesson: str, student: str, answers: dict[str, str] | None = None,
           before: dict[str, str] | None = None, extra_cell: str | None = None, edit_tests: bool = False,
           raw: str | None = None, delete_test: str | None = None) -> None:
    """Write submitted/<student>/<lesson>/<lesson>.ipynb from the released notebook: ``answers`` replace
    answer cells (by function name; the rest stay unanswered), ``before`` puts code in front of an
    answer, ``extra_cell`` goes after the setup cell, ``edit_tests`` rewrites every test cell, ``delete_test``
    removes the test cell of that exercise."""
    target = course / "submitted" / student / lesson / f"{lesson}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    if raw is not None:
        target.write_text(raw)
        return
    notebook = nbformat.read(course / "release" / lesson / f"{lesson}.ipynb", as_version=4)
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            name = answer_name(cell)
            code = (answers or {}).get(name)
            if code is not None:
                cell.source = (before or {}).get(name, "") + code
        if meta.get("grade") and edit_tests:
            cell.source = "pass  # no test here"
            meta["points"] = 100
    if delete_test is not None:
        notebook.cells = [cell for cell in notebook.cells
                          if cell.metadata.get("nbgrader", {}).get("grade_id") != f"check_{delete_test}"]
    if extra_cell is not None:
        setup = next(i for i, cell in enumerate(notebook.cells) if cell.metadata.get("nbgrader", {}).get("locked"))
        notebook.cells.insert(setup + 1, nbformat.v4.new_code_cell(extra_cell))
    nbformat.write(notebook, target)


def solutions(course: Path, lesson: str) -> dict[str, str]:
    """Function name -> the full answer cell, from the instructor's source notebook."""
    notebook = nbformat.read(course / "source" / lesson / f"{lesson}.ipynb", as_version=4)
    return {answer_name(cell): cell.source for cell in notebook.cells
            if cell.metadata.get("nbgrader", {}).get("solution")}


def points_in_source(course: Path, lesson: str) -> dict[str, int]:
    """Exercise name -> its test cell's points, from the instructor's source notebook."""
    notebook = nbformat.read(course / "source" / lesson / f"{lesson}.ipynb", as_version=4)
    return {cell.metadata.nbgrader["grade_id"][len("check_"):]: cell.metadata.nbgrader["points"]
            for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("grade")}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The whole instructor workflow, once: source, generate_assignment, submissions, autograde,
    generate_feedback, export."""
    pytest.importorskip("nbgrader", reason=NO_NBGRADER)
    course = tmp_path_factory.mktemp("nbgrader-course")
    timings, clock = {}, time.monotonic()

    def lap(step):
        nonlocal clock
        timings[step] = time.monotonic() - clock
        clock = time.monotonic()

    written = write_course(course, ROOT / "solutions", ["06", "01"], timeout=CELL_TIMEOUT)
    assert sorted(path.parent.name for path in written) == [SHORT, FULL]
    for lesson in (FULL, SHORT):
        done = nbgrader(course, "generate_assignment", lesson, "--force")
        assert done.returncode == 0, done.stdout + done.stderr
    lap("source + generate_assignment x2")

    submit(course, FULL, "correct", solutions(course, FULL))
    submit(course, FULL, "mistaken", {name: code for name, (code, _) in MISTAKES[FULL].items()})
    right = solutions(course, FULL)
    # ... and ends the kernel in a cell of its own (os._exit): that cell alone is lost, in nbgrader's run too
    submit(course, FULL, "crashing", right, before={CRASHES: "raise RuntimeError('a bug in my cell')\n"},
           delete_test=DELETED, extra_cell="import os\nos._exit(1)\n")
    submit(course, FULL, "sabotaging", {
        **right,  # every other exercise answered right
        # os._exit inside the answer: only the check's forked copy ends, not the grading kernel
        "sinusoidal_positions": "import os\ndef sinusoidal_positions(*args, **kwargs):\n    os._exit(1)\n",
        # 50 MB of output, then the right answer: the output is thrown away, the answer judged
        "add_positions": right["add_positions"] + "\n_real_add_positions = add_positions\n"
                         "def add_positions(*args, **kwargs):\n    print('x' * 50_000_000)\n"
                         "    return _real_add_positions(*args, **kwargs)\n",
        # the check's own reference, through the registry: no points
        "position_similarity": "from course_lib.checks import registry\ndef position_similarity(*args, **kwargs):\n"
                               "    return registry.get('position_similarity').reference(*args, **kwargs)\n"})
    submit(course, FULL, "cheating", {**right, "sinusoidal_positions": LIAR, "position_similarity": NESTED_HANG},
           extra_cell=PATCHES)
    submit(course, FULL, "malformed", raw='{"cells": [ this is half a notebook')
    submit(course, FULL, "overriding", {name: f"def {name}(*args, **kwargs):\n    return None\n" for name in right},
           extra_cell=OVERRIDE, edit_tests=True)

    clock = time.monotonic()
    logs = {FULL: nbgrader(course, "autograde", FULL, "--force", timeout=900)}
    # nbgrader logs a configuration file that fails to load and goes on without it: it must load
    assert "Exception while loading config file" not in logs[FULL].stdout + logs[FULL].stderr
    lap("autograde (7 submissions)")
    feedback = nbgrader(course, "generate_feedback", FULL, "--force")
    assert feedback.returncode == 0, feedback.stdout + feedback.stderr
    lap("generate_feedback")
    export = nbgrader(course, "export", "--to", str(course / "grades.csv"))
    assert export.returncode == 0, export.stdout + export.stderr
    lap("export")
    with open(course / "grades.csv", newline="") as handle:
        grades = {(row["assignment"], row["student_id"]): row for row in csv.DictReader(handle)}
    points_of = {lesson: points_in_source(course, lesson) for lesson in (FULL, SHORT)}
    return course, grades, logs, points_of, timings


def score(grades, lesson, student) -> tuple[float, float]:
    row = grades[(lesson, student)]
    return float(row["raw_score"]), float(row["max_score"])


def feedback(course: Path, lesson: str, student: str) -> str:
    return (course / "feedback" / student / lesson / f"{lesson}.html").read_text(encoding="utf-8")


def test_source_notebooks_have_nbgraders_cells_and_points(graded):
    course, _, _, points_of, _ = graded
    notebook = nbformat.read(course / "source" / FULL / f"{FULL}.ipynb", as_version=4)
    meta = [cell.metadata.get("nbgrader") for cell in notebook.cells if cell.metadata.get("nbgrader")]
    assert meta[0]["grade_id"] == "setup" and meta[0]["locked"] and not meta[0]["grade"]
    # points: the filled stars of the "Difficulty" line above each exercise in the solution notebook
    solution = nbformat.read(ROOT / "solutions" / f"{FULL}.ipynb", as_version=4)
    stars, expected = None, {}
    for cell in solution.cells:
        if cell.cell_type == "markdown" and "Difficulty" in cell.source:
            stars = re.search(r"Difficulty\s+([★☆]+)", cell.source).group(1).count("★")
        found = re.match(r"^check_(\w+)\((\w+)\)$", cell.source.strip()) if cell.cell_type == "code" else None
        if found and found.group(1) in points_of[FULL] and found.group(1) not in expected and \
                f"def {found.group(2)}" in "".join(c.source for c in solution.cells if "BEGIN SOLUTION" in c.source):
            expected[found.group(1)] = stars
    assert points_of[FULL] == expected and set(expected.values()) <= {1, 2, 3}
    assert all(m["locked"] for m in meta if m["grade"])
    assert sum(1 for m in meta if m["solution"]) == sum(1 for m in meta if m["grade"]) == len(points_of[FULL])
    config = (course / "nbgrader_config.py").read_text()
    assert 'course_id = "transformers-hands-on"' in config and "Exchange.root" in config
    assert f"ExecutePreprocessor.timeout = {CELL_TIMEOUT}" in config


def test_release_keeps_hints_and_the_test_cells_are_the_learners_own_line(graded):
    course = graded[0]
    source = (course / "source" / FULL / f"{FULL}.ipynb").read_text()
    release = nbformat.read(course / "release" / FULL / f"{FULL}.ipynb", as_version=4)
    answers = [cell.source for cell in release.cells if cell.metadata.get("nbgrader", {}).get("solution")]
    assert answers and all("# HINT:" in text and "raise NotImplementedError()" in text for text in answers)
    assert all("return" not in text.split("# YOUR CODE HERE")[1] for text in answers)  # no answer left
    solution = nbformat.read(ROOT / "solutions" / f"{FULL}.ipynb", as_version=4)
    hints = [line.strip() for cell in solution.cells if "BEGIN SOLUTION" in cell.source
             for line in cell.source.splitlines() if line.strip().startswith("# HINT:")]
    assert hints and all(any(hint in text for text in answers) for hint in hints)  # every hint kept
    tests = [cell.source for cell in release.cells if cell.metadata.get("nbgrader", {}).get("grade")]
    assert tests[0] == "check_sinusoidal_positions(sinusoidal_positions)"
    assert "HIDDEN TESTS" not in source  # nothing hidden: the grading happens apart (course_lib.tools.autograde)
    assert "GradeApart" in (course / "nbgrader_config.py").read_text()


def test_move_hints_out_and_points():
    cell = "def f(x):\n    ### BEGIN SOLUTION\n    # HINT: add one.\n    return x + 1\n    ### END SOLUTION"
    assert move_hints_out(cell) == ("def f(x):\n    # HINT: add one.\n    ### BEGIN SOLUTION\n    return x + 1\n"
                                    "    ### END SOLUTION")
    assert [points(f"**Difficulty {stars} (n/3)") for stars in ("★☆☆", "★★☆", "★★★")] == [1, 2, 3]
    assert points("no difficulty here") is None


def test_an_untouched_submission_logs_no_changed_checksum(graded):
    _, _, logs, _, _ = graded
    log = logs[FULL].stdout + logs[FULL].stderr
    per_student = re.split(r"(?=\[AutogradeApp \| INFO\] Sanitizing )", log)
    correct = [part for part in per_student if "/submitted/correct/" in part.split("\n")[0]]
    assert correct and all("has changed" not in part for part in correct), correct
    overriding = [part for part in per_student if "/submitted/overriding/" in part.split("\n")[0]]
    assert overriding and any("has changed" in part for part in overriding)  # its edited test cells are noticed


def test_correct_submissions_get_full_marks(graded, capsys):
    course, grades, _, points_of, timings = graded
    with capsys.disabled():
        print("\nnbgrader: " + "; ".join(f"{step} {seconds:.1f} s" for step, seconds in timings.items()))
    total = sum(points_of[FULL].values())
    assert score(grades, FULL, "correct") == (total, total)
    released = nbformat.read(course / "release" / SHORT / f"{SHORT}.ipynb", as_version=4)
    assert sum(cell.metadata.get("nbgrader", {}).get("points", 0) for cell in released.cells) == \
        sum(points_of[SHORT].values()) > 0


def test_a_classic_mistake_costs_its_exercise_and_is_named_in_the_feedback(graded):
    course, grades, _, points_of, _ = graded
    assert score(grades, FULL, "mistaken") == (0.0, sum(points_of[FULL].values()))
    text = feedback(course, FULL, "mistaken")
    for name, (_, diagnosis) in MISTAKES[FULL].items():
        assert diagnosis in text, name


def test_a_cell_that_outlives_its_interrupt_costs_only_itself(graded):
    # The cheating student's position_similarity loops inside nested excepts; the lesson's next cell calls it at
    # the top level. nbgrader alone gave up on such a notebook (no score at all); now that cell is marked, the
    # kernel starts again, and every exercise is still graded.
    course, grades, _, points_of, _ = graded
    assert ("06_positions", "cheating") in grades
    text = feedback(course, FULL, "cheating")
    assert "CellTimeoutError" in text and "the kernel was started again" in text


def test_a_crash_loses_only_its_own_exercise(graded):
    course, grades, _, points_of, _ = graded
    total = sum(points_of[FULL].values())
    assert score(grades, FULL, "crashing") == (total - points_of[FULL][CRASHES], total)
    assert "a bug in my cell" in feedback(course, FULL, "crashing")
    assert "DeadKernelError" in feedback(course, FULL, "crashing")  # marked; the kernel started again
    restored = nbformat.read(course / "autograded" / "crashing" / FULL / f"{FULL}.ipynb", as_version=4)
    test = [cell for cell in restored.cells if cell.metadata.get("nbgrader", {}).get("grade_id") == f"check_{DELETED}"]
    assert len(test) == 1 and "✓ position_similarity" in json.dumps(test[0].outputs, ensure_ascii=False)


def test_an_exit_a_flood_and_a_call_of_the_reference_cost_only_their_own_exercises(graded):
    course, grades, _, points_of, _ = graded
    total = sum(points_of[FULL].values())
    lost = points_of[FULL]["sinusoidal_positions"] + points_of[FULL]["position_similarity"]
    assert score(grades, FULL, "sabotaging") == (total - lost, total)
    text = feedback(course, FULL, "sabotaging")
    assert "sinusoidal_positions: ended the process" in text
    assert "position_similarity: 0 points: the submission called or read the course" in text
    assert len(text) < 2_000_000  # the 50 MB print was not kept


def test_lies_patched_comparisons_and_a_hang_in_nested_excepts_earn_nothing(graded):
    course, grades, _, points_of, _ = graded
    total = sum(points_of[FULL].values())
    # The right answers keep their points: the submission's patches live in its own process only.
    lost = points_of[FULL]["sinusoidal_positions"] + points_of[FULL]["position_similarity"]
    assert score(grades, FULL, "cheating") == (total - lost, total)
    text = feedback(course, FULL, "cheating")
    assert "✗ sinusoidal_positions" in text and "position_similarity: your answer took longer than" in text


def test_every_feedback_shows_each_exercises_verdict(graded):
    course, *_ = graded
    pages = sorted((course / "feedback").glob(f"*/{FULL}/{FULL}.html"))
    assert len(pages) >= 6
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for name in ("sinusoidal_positions", "add_positions", "position_similarity"):
            assert f"✓ {name}" in text or f"✗ {name}" in text, (page, name)
    assert feedback(course, FULL, "correct").count("✓ ") >= 3


def test_a_malformed_notebook_scores_zero_and_the_others_are_still_graded(graded):
    course, grades, logs, points_of, _ = graded
    assert score(grades, FULL, "malformed") == (0.0, sum(points_of[FULL].values()))
    assert "malformed" in logs[FULL].stdout + logs[FULL].stderr
    assert not (course / "feedback" / "malformed").exists()


def test_overriding_the_checks_or_editing_the_tests_earns_nothing(graded):
    course, grades, _, points_of, _ = graded
    assert score(grades, FULL, "overriding") == (0.0, sum(points_of[FULL].values()))
    graded_notebook = nbformat.read(course / "autograded" / "overriding" / FULL / f"{FULL}.ipynb", as_version=4)
    tests = [cell for cell in graded_notebook.cells if cell.metadata.get("nbgrader", {}).get("grade")]
    assert [cell.metadata.nbgrader["points"] for cell in tests] == list(points_of[FULL].values())  # not 100
    assert all("no test here" not in cell.source for cell in tests)  # the original test cells ran
    assert "0 points: the submission called or read the course" in feedback(course, FULL, "overriding")


def test_every_lesson_becomes_an_assignment_with_one_test_cell_per_exercise(tmp_path):
    """Every exercise of the registry has its graded `check_<name>(<answer>)` cell in its solution notebook."""
    written = write_course(tmp_path, ROOT / "solutions")
    by_lesson = registry.exercises()
    assert sorted(path.parent.name for path in written) == sorted(
        lesson for lesson in by_lesson if (ROOT / "solutions" / f"{lesson}.ipynb").exists())
    for path in written:
        notebook = nbformat.read(path, as_version=4)
        graded = [cell.metadata.nbgrader["grade_id"] for cell in notebook.cells
                  if cell.metadata.get("nbgrader", {}).get("grade")]
        assert graded == [f"check_{name}" for name in by_lesson[path.parent.name]], path.name


def test_the_command_writes_the_course_and_refuses_an_unknown_lesson(tmp_path, capsys):
    assert main(["nbgrader", "source", str(tmp_path / "course"), "--lessons", "06", "--timeout", "45"]) == 0
    assert (tmp_path / "course" / "source" / FULL / f"{FULL}.ipynb").exists()
    config = (tmp_path / "course" / "nbgrader_config.py").read_text()
    assert "ExecutePreprocessor.timeout = 45" in config and (tmp_path / "course" / "exchange").is_dir()
    assert "GradeApart.cell_seconds = 45" in config
    # regenerating writes the same course again (a gradebook made before still matches the test cells)
    def cells():
        notebook = nbformat.read(tmp_path / "course" / "source" / FULL / f"{FULL}.ipynb", as_version=4)
        return [(cell.source, cell.metadata.get("nbgrader")) for cell in notebook.cells]

    before = cells()
    assert main(["nbgrader", "source", str(tmp_path / "course"), "--lessons", "06", "--timeout", "45"]) == 0
    assert cells() == before
    capsys.readouterr()
    assert main(["nbgrader", "source", str(tmp_path / "other"), "--lessons", "99"]) == 1
    assert "no lesson '99'" in capsys.readouterr().err


def test_a_folder_that_cannot_be_made_is_a_one_line_error_not_a_traceback(tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    # DIR inside a file (like /etc/passwd/x), and DIR that is a file: each was a traceback
    for directory, why in ((a_file / "course", f"{a_file} is a file, not a folder"),
                           (a_file, "it is a file, not a folder")):
        capsys.readouterr()
        assert main(["nbgrader", "source", str(directory), "--lessons", "06"]) == 1
        out, err = capsys.readouterr()
        assert err == f"error: {directory}: cannot be created as a folder: {why}\n", err
        assert out == ""
    assert a_file.read_text() == "not a folder"  # left as it was
    # a file where the course puts a folder of its own: the same one line, naming it
    course = tmp_path / "course"
    course.mkdir()
    (course / "exchange").write_text("")
    assert main(["nbgrader", "source", str(course), "--lessons", "06"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {course / 'exchange'}: cannot be created as a folder") and err.count("\n") == 1, err


def test_a_solution_without_a_graded_check_or_difficulty_is_refused():
    cells = [nbformat.v4.new_code_cell("from course_lib.checks import check_add_positions"),
             nbformat.v4.new_markdown_cell("## Exercise\n\n**Difficulty ★☆☆ (1/3)**"),
             nbformat.v4.new_code_cell("def add_positions(x, table):\n    ### BEGIN SOLUTION\n    return x\n"
                                       "    ### END SOLUTION")]
    from course_lib.tools.nbgrader_course import source_notebook
    with pytest.raises(SourceError, match="add_positions"):
        source_notebook(nbformat.v4.new_notebook(cells=cells), FULL, ("add_positions",))
    cells.append(nbformat.v4.new_code_cell("check_add_positions(add_positions)"))
    del cells[1]
    with pytest.raises(SourceError, match="Difficulty"):
        source_notebook(nbformat.v4.new_notebook(cells=cells), FULL, ("add_positions",))
