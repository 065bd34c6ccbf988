"""``python -m course_lib nbgrader source DIR``: the course as an nbgrader course, one assignment per lesson.

    DIR/nbgrader_config.py                       course id, exchange root inside DIR, per-cell timeout,
                                                 the grader that runs each answer apart (course_lib.tools.autograde)
    DIR/source/<lesson>/<lesson>.ipynb           from solutions/<lesson>.ipynb and the checks' registry

Each solution notebook becomes an nbgrader source notebook:

- cells tagged ``solution-only`` are left out (as ``exercises build`` does);
- the first code cell (imports) is a locked setup cell: autograde puts back its original if a student
  edited it;
- a cell with ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` is a solution cell. nbgrader replaces the
  whole marked region with its stub, so each ``# HINT:`` line inside a region moves just above the
  ``### BEGIN SOLUTION`` line: the released notebook keeps it;
- the cell ``check_<name>(<answer>)`` that follows each exercise's answer is an autograded test cell,
  locked, worth the exercise's difficulty in points (★☆☆ = 1, ★★☆ = 2, ★★★ = 3, read from the
  "Difficulty" line above the exercise). Its output at grading time is the verdict of the course's grader,
  which runs the answer in a process of its own (``course_lib.tools.autograde``): whatever the submission
  defines, patches or edits, the real check judges it. A deleted test cell is put back (``add_missing_cells``).
  Every exercise of the lesson (``registry.exercises()``) needs exactly one.

Then, in DIR: ``nbgrader generate_assignment <lesson>``, ``nbgrader autograde <lesson>``,
``nbgrader generate_feedback <lesson>``, ``nbgrader export`` (docs/instructor-guide.md).
"""

from __future__ import annotations

import contextlib
import copy
import re
import sys
from pathlib import Path

from course_lib.tools.exercise_builder import BEGIN, END, HINT, SOLUTION_ONLY_TAG, BuildError

COURSE_ID = "transformers-hands-on"
DEFAULT_TIMEOUT = 60
DIFFICULTY = re.compile(r"Difficulty\s+(?P<stars>[★☆]+)")
CHECK_CALL = re.compile(r"^\s*check_(?P<name>\w+)\((?P<answer>[A-Za-z_]\w*)\)\s*;?\s*$")
DEFINES = re.compile(r"^(?:def|class)\s+(?P<name>\w+)", re.MULTILINE)
SCHEMA = 3

CONFIG = '''\
"""nbgrader's configuration for the course, written by `python -m course_lib nbgrader source`.

Run every nbgrader command from this folder, with the course's environment active. Each answer is graded in
its own process, apart from the grader (course_lib.tools.autograde); student code still runs with your file
rights: grade inside a throwaway copy or container (docs/instructor-guide.md, "The trust model").
"""
import os

from nbgrader.converters import Autograde
from nbgrader.preprocessors import Execute

from course_lib.tools.nbgrader_steps import ExecuteGently, GradeApart

HERE = os.path.dirname(os.path.abspath(__file__))

c = get_config()  # noqa: F821 - nbgrader provides it
c.CourseDirectory.course_id = "{course_id}"
c.CourseDirectory.root = HERE
# The exchange (release, fetch, submit) lives here, not in /usr/local/share/nbgrader/exchange.
# On a hub where each student is a Unix user, point it at a folder every student can write to.
c.Exchange.root = os.path.join(HERE, "exchange")
# Every cell gets {timeout} s: a hanging answer is interrupted and loses its own points only.
c.ExecutePreprocessor.timeout = {timeout}
c.ExecutePreprocessor.interrupt_on_timeout = True
c.ExecutePreprocessor.extra_arguments = ["--HistoryManager.hist_file=:memory:"]
# A test cell a student deleted is put back and graded, not silently skipped.
c.OverwriteCells.add_missing_cells = True
# After nbgrader has run the notebook, each test cell's output is replaced by the verdict of the course's
# grader, which ran the answer in a process of its own (course_lib.tools.autograde).
# A cell that outlives its interrupt or ends the kernel costs only itself (nbgrader alone gives up on the notebook).
steps = list(Autograde.class_traits()["autograde_preprocessors"].default())
at = steps.index(Execute)
c.Autograde.autograde_preprocessors = steps[:at] + [ExecuteGently, GradeApart] + steps[at + 1:]
c.ExecuteGently.timeout = {timeout}
c.ExecuteGently.interrupt_on_timeout = True
c.ExecuteGently.extra_arguments = ["--HistoryManager.hist_file=:memory:"]
c.GradeApart.course_root = HERE
c.GradeApart.cell_seconds = {timeout}
'''


class SourceError(BuildError):
    """A solution notebook that cannot become an nbgrader source notebook; the message says where."""


def points(markdown: str) -> int | None:
    """The points of an exercise from its "Difficulty ★★☆" line: the number of filled stars, or None."""
    match = DIFFICULTY.search(markdown)
    return match.group("stars").count("★") if match else None


def move_hints_out(source: str, where: str = "cell") -> str:
    """Move each ``# HINT:`` line of a solution region to just above its ``### BEGIN SOLUTION`` line,
    indented like the marker, so nbgrader's stub does not swallow it."""
    out: list[str] = []
    begin_at = None
    indent = ""
    for number, line in enumerate(source.split("\n"), start=1):
        begin = BEGIN.match(line)
        if begin:
            if begin_at is not None:
                raise SourceError(f"{where}, line {number}: ### BEGIN SOLUTION inside another solution region")
            begin_at, indent = len(out), begin.group("indent")
            out.append(line)
        elif END.match(line):
            if begin_at is None:
                raise SourceError(f"{where}, line {number}: ### END SOLUTION without ### BEGIN SOLUTION")
            begin_at = None
            out.append(line)
        elif begin_at is not None and HINT.match(line):
            out.insert(begin_at, indent + line.strip())
            begin_at += 1
        else:
            out.append(line)
    if begin_at is not None:
        raise SourceError(f"{where}: ### BEGIN SOLUTION without ### END SOLUTION")
    return "\n".join(out)


def _nbgrader(grade_id: str, *, solution=False, grade=False, locked=False, points_=None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": SCHEMA,
            "solution": solution}
    if points_ is not None:
        meta["points"] = points_
    return meta


def source_notebook(solution, lesson: str, exercise_names: tuple[str, ...]):
    """The nbgrader source notebook of ``lesson`` from its solution notebook (an ``nbformat.NotebookNode``)."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {key: copy.deepcopy(solution.metadata[key])
                         for key in ("kernelspec", "language_info") if key in solution.metadata}
    defined_in_answers: set[str] = set()
    graded: dict[str, int] = {}
    difficulty: int | None = None
    setup_done = False
    for index, cell in enumerate(solution.cells):
        where = f"solutions/{lesson}.ipynb, cell {index + 1}"
        if SOLUTION_ONLY_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        new = nbformat.v4.new_code_cell() if cell.cell_type == "code" else copy.deepcopy(cell)
        new.source = cell.source
        new.metadata = {key: value for key, value in cell.get("metadata", {}).items() if key == "tags"}
        if cell.cell_type == "markdown":
            found = points(cell.source)
            difficulty = found if found is not None else difficulty
            notebook.cells.append(new)
            continue
        if cell.cell_type != "code":
            notebook.cells.append(new)
            continue
        check_call = CHECK_CALL.match(cell.source)
        if any(BEGIN.match(line) for line in cell.source.split("\n")):
            new.source = move_hints_out(cell.source, where)
            answers = DEFINES.findall(cell.source)
            defined_in_answers.update(answers)
            new.metadata["nbgrader"] = _nbgrader(f"answer_{len(graded) + 1}_{'_'.join(answers) or index}",
                                                 solution=True)
        elif check_call and check_call.group("name") in exercise_names \
                and check_call.group("answer") in defined_in_answers:
            name, answer = check_call.group("name"), check_call.group("answer")
            if name in graded:
                raise SourceError(f"{where}: a second graded check of {name!r} (one test cell per exercise)")
            if difficulty is None:
                raise SourceError(f"{where}: no \"Difficulty ★☆☆\" line above exercise {name!r}, so it has no points")
            graded[name] = difficulty
            new.source = f"check_{name}({answer})"  # graded apart (course_lib.tools.autograde), not by this line
            new.metadata["nbgrader"] = _nbgrader(f"check_{name}", grade=True, locked=True, points_=difficulty)
            difficulty = None
        elif not setup_done:
            new.metadata["nbgrader"] = _nbgrader("setup", locked=True)
        setup_done = True
        notebook.cells.append(new)
    missing = [name for name in exercise_names if name not in graded]
    if missing:
        raise SourceError(f"solutions/{lesson}.ipynb: no cell `check_<name>(<your answer>)` after the answer of "
                          f"{', '.join(missing)}")
    return notebook


def write_course(directory: Path, solutions: Path, lessons: list[str] | None = None,
                 course_id: str = COURSE_ID, timeout: int = DEFAULT_TIMEOUT) -> list[Path]:
    """Write ``nbgrader_config.py`` and ``source/<lesson>/<lesson>.ipynb`` for ``lessons`` (default: every
    lesson of the registry that has a solution notebook). Returns the notebooks written."""
    import nbformat

    from course_lib.checks import registry

    by_lesson = registry.exercises()
    chosen = list(by_lesson) if not lessons else [_lesson_named(name, by_lesson) for name in lessons]
    _make_folder(directory)
    _make_folder(directory / "exchange")  # before any notebook is written: a file in its way stops nothing halfway
    config = directory / "nbgrader_config.py"
    written = []
    for lesson in chosen:
        path = solutions / f"{lesson}.ipynb"
        if not path.exists():
            if lessons:
                raise SourceError(f"{path}: no solution notebook for lesson {lesson}")
            continue
        notebook = source_notebook(nbformat.read(path, as_version=4), lesson, by_lesson[lesson])
        target = directory / "source" / lesson / f"{lesson}.ipynb"
        _make_folder(target.parent)
        with _os_errors(target, "cannot be written"):
            nbformat.write(notebook, target)
        written.append(target)
    with _os_errors(config, "cannot be written"):
        config.write_text(CONFIG.format(course_id=course_id, timeout=timeout), encoding="utf-8")
    return written


@contextlib.contextmanager
def _os_errors(path: Path, what: str):
    """An OSError inside (a file in the way, no permission, a full disk) as a BuildError naming ``path``: the
    command prints one line, not a traceback."""
    try:
        yield
    except OSError as error:
        raise BuildError(f"{path}: {what} ({error.strerror or type(error).__name__})") from None


def _make_folder(path: Path) -> None:
    """``path`` as a folder, with its parents (an existing folder is fine); a BuildError, not an OSError, where a
    file stands in the way or the folder cannot be made."""
    if path.is_dir():
        return
    if path.exists() or path.is_symlink():
        raise BuildError(f"{path}: cannot be created as a folder: it is a file, not a folder")
    blocking = next((parent for parent in path.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise BuildError(f"{path}: cannot be created as a folder: {blocking} is a file, not a folder")
    with _os_errors(path, "cannot be created as a folder"):
        path.mkdir(parents=True, exist_ok=True)


def _lesson_named(name: str, by_lesson: dict) -> str:
    matches = [lesson for lesson in by_lesson if lesson == name or lesson.split("_")[0] == name]
    if len(matches) != 1:
        raise SourceError(f"no lesson {name!r} with exercises; known: {', '.join(by_lesson)}")
    return matches[0]


def run(args) -> int:
    root = Path(__file__).resolve().parents[2]
    try:
        written = write_course(args.directory.resolve(), root / "solutions", args.lessons, args.course_id,
                               args.timeout)
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # one not foreseen above: still one line, not a traceback
        print(f"error: {error.filename or args.directory}: {error.strerror or error}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    config = args.directory.resolve() / "nbgrader_config.py"
    print(f"wrote {config}\nnext: cd {args.directory} && nbgrader generate_assignment --force <lesson>, "
          f"e.g. {written[0].parent.name if written else '03_attention_by_hand'}")
    return 0
