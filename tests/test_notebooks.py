"""Notebook hygiene that nbval alone does not catch, and the README / CI staying in step.

nbval (run by the same test command) re-executes every notebook and compares outputs; these tests fail
when a notebook was committed unexecuted, out of order, with an error, or showing a machine path.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_FOLDERS = ("notebooks", "exercises", "solutions")
MACHINE_PATH = re.compile(r"(/work/|/root/|/tmp/|/home/[a-z_][a-z0-9_-]*/|/Users/[^/\s]+/|[A-Z]:\\\\Users\\\\)")
IGNORE_MARKERS = ("NBVAL_IGNORE_OUTPUT", "nbval-ignore-output")


def all_notebooks():
    found = []
    for folder in NOTEBOOK_FOLDERS:
        found += [p for p in sorted((ROOT / folder).glob("**/*.ipynb")) if ".ipynb_checkpoints" not in p.parts
                  and "backups" not in p.parts]
    return found


def lessons():
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def code_cells(path):
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def source(cell):
    return "".join(cell["source"])


def tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def ignored(cell):
    return any(m in source(cell) for m in IGNORE_MARKERS) or any(m in tags(cell) for m in IGNORE_MARKERS)


def name(path):
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", all_notebooks(), ids=name)
def test_notebook_is_committed_executed_in_order(path):
    counts = [c["execution_count"] for c in code_cells(path)]
    assert None not in counts, f"{name(path)}: {counts.count(None)} cell(s) never ran: Restart & Run All, then save"
    assert counts == list(range(1, len(counts) + 1)), f"{name(path)}: cells ran out of order: {counts}"


@pytest.mark.parametrize("path", all_notebooks(), ids=name)
def test_notebook_has_no_errors_machine_paths_or_skips(path):
    for index, cell in enumerate(code_cells(path)):
        expects_error = "raises-exception" in tags(cell) or "NBVAL_RAISES_EXCEPTION" in source(cell)
        assert "NBVAL_SKIP" not in source(cell) and "nbval-skip" not in tags(cell), f"{name(path)} cell {index}"
        for output in cell.get("outputs", []):
            assert expects_error or output["output_type"] != "error", \
                f"{name(path)} code cell {index} has an error output: {output.get('ename')}"
            data = output.get("data", {})
            text = json.dumps(output.get("text", "")) + json.dumps(data.get("text/plain", "")) + \
                json.dumps(data.get("text/html", ""))
            match = MACHINE_PATH.search(text)
            assert not match, f"{name(path)} code cell {index} shows a machine path: {match.group(0)}"


@pytest.mark.parametrize("path", lessons(), ids=name)
def test_lesson_output_is_mostly_checked_by_nbval(path):
    showing = [c for c in code_cells(path) if c.get("outputs")]
    checked = [c for c in showing if not ignored(c)]
    assert showing, f"{name(path)} shows nothing"
    assert len(checked) >= 0.8 * len(showing), \
        f"{name(path)}: only {len(checked)} of {len(showing)} cells with output are compared by nbval"


@pytest.mark.parametrize("path", lessons(), ids=name)
def test_lesson_opens_with_objectives_and_time_and_ends_with_exercises(path):
    cells = json.loads(path.read_text())["cells"]
    markdown = [source(c) for c in cells if c["cell_type"] == "markdown"]
    opening = markdown[0].lower()
    assert "minute" in opening, f"{name(path)}: the first cell gives no time estimate"
    assert "you will" in opening or "objective" in opening or "by the end" in opening, \
        f"{name(path)}: the first cell states no objectives"
    if not path.name.startswith("00_"):
        number = path.name[:2]
        assert re.search(rf"\.\./exercises/{number}_\w+\.ipynb", markdown[-1]), \
            f"{name(path)}: the last cell does not link to its exercises"


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```(?:bash|sh)?\n(.*?)```", quickstart, re.S)
    lines = [line.strip() for block in commands for line in block.strip().splitlines() if line.strip()]
    assert len(lines) == 2, f"the Quickstart must hold exactly two commands, found {lines}"
    install_and_open, test_command = lines
    assert install_and_open.endswith("jupyter lab") and "requirements.txt" in install_and_open
    assert "pytest" in test_command
    ci_lines = [line.strip() for line in ci.splitlines()]
    assert test_command in ci_lines, f".ci/run does not call the README's test command {test_command!r}"
    assert "--nbval-lax" not in ci + (ROOT / "pyproject.toml").read_text()


def _minutes_of_lesson(path) -> int:
    opening = source(json.loads(path.read_text())["cells"][0])
    found = re.search(r"\*\*Time:\*\*\s*about (\d+) minutes", opening)
    assert found, f"{name(path)}: the first cell does not say '**Time:** about N minutes'"
    return int(found.group(1))


def _minutes_of_exercises(path) -> int:
    headers = [source(c) for c in json.loads(path.read_text())["cells"]
               if c["cell_type"] == "markdown" and source(c).startswith("## Exercise")]
    return sum(int(re.search(r"about (\d+) minutes", h).group(1)) for h in headers)


def test_the_course_map_gives_each_lessons_time_and_exercise_time_and_they_add_up():
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 6 and re.fullmatch(r"\d\d|total", cells[0]):
            rows[cells[0]] = cells
    assert sorted(k for k in rows if k != "total") == [p.name[:2] for p in lessons()]
    total_lesson = total_exercises = 0
    for path in lessons():
        number, cells = path.name[:2], rows[path.name[:2]]
        assert f"(notebooks/{path.name})" in cells[1], f"course map row {number} does not link {path.name}"
        lesson = _minutes_of_lesson(path)
        assert cells[3] == f"{lesson} min", f"course map row {number}: lesson time {cells[3]!r}, the notebook says {lesson} min"
        solution = ROOT / "solutions" / path.name
        exercises = _minutes_of_exercises(solution) if solution.exists() else 0
        assert cells[4] == (f"{exercises} min" if exercises else ""), \
            f"course map row {number}: exercise time {cells[4]!r}, the exercise headers add up to {exercises} min"
        total_lesson, total_exercises = total_lesson + lesson, total_exercises + exercises
    assert rows["total"][3:5] == [f"{total_lesson} min", f"{total_exercises} min"], rows["total"]
