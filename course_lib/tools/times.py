"""``python -m course_lib times [--write | --check]``: how long each lesson and its exercises take, by one
stated method (docs/instructor-guide.md, "How the times are estimated").

A lesson's minutes:

    prose words / 150  +  words of code shown in markdown / 75  +  1.5 x code cells  +  compute allowance,

rounded **up** to the next 5 minutes. Prose is every markdown cell's words outside fenced code blocks
(link targets and HTML tags left out); a code block inside markdown is read at half the pace; each code cell
gets 1.5 minutes to read, run and look at its output; the compute allowance is the time the notebook's cells
take to run, measured once (``COMPUTE_SECONDS``).

An exercise's minutes, for each ``## Exercise`` section of ``solutions/NN_<topic>.ipynb`` (from its header to
the next ``## `` header): the same reading time for its words and code cells, plus a thinking allowance by
difficulty (``★`` 5, ``★★`` 10, ``★★★`` 20 minutes), rounded up to the next 5.

``--write`` puts the lesson minutes into each lesson's first cell ("**Time:** about N minutes", the rest of the
line kept; no notebook is executed), the README's course map (lesson column and the total row) and the
instructor guide's table. The exercise minutes are the exercise notebooks' own headers ("about N minutes"),
which their author writes: the README and the guide take the sum of those headers, as
``tests/test_notebooks.py`` requires, and this command only reports where a header differs from the method.
``--check`` writes nothing and exits 1 where a lesson header, the README or the guide differs from what
``--write`` would put there (``--exercises``: also where an exercise header differs from the method).

Standard library only.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROSE_WORDS_PER_MINUTE = 150  # technical reading pace
CODE_WORDS_PER_MINUTE = 75  # code shown inside markdown: half the pace
MINUTES_PER_CODE_CELL = 1.25  # read the cell, run it, look at its output
THINKING_MINUTES = {1: 5, 2: 10, 3: 20}  # an exercise's difficulty (★, ★★, ★★★) -> minutes to work it out
ROUND_TO = 5  # minutes; always rounded up

# Seconds each lesson computes, run top to bottom: `jupyter nbconvert --to notebook --execute` at
# OMP_NUM_THREADS=1 on the course's reference machine (2 cores), the lessons one after another in order
# (so 09 and 12 found lesson 08's and 11's models in the cache), kernel start included, rounded up.
# Measured 2026-12-07, after lesson 07's whole model moved to lesson 08. Without the cache, 09 and 12
# train the reference model first (about 30 s more).
COMPUTE_SECONDS = {
    "00": 8, "01": 5, "02": 8, "03": 6, "04": 6, "05": 6, "06": 6, "07": 4, "08": 34, "09": 9, "10": 28,
    "11": 18, "12": 15, "13": 45, "14": 53,
}

LESSON = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")
TIME_LINE = re.compile(r"\*\*Time:\*\*\s*about (\d+) minutes")
EXERCISE_MINUTES = re.compile(r"about (\d+) minutes")
DIFFICULTY = re.compile(r"\*\*Difficulty\s+[★☆]+\s*\((\d)/3\)")
FENCE = re.compile(r"```.*?```", re.S)
LINK_TARGET = re.compile(r"\]\([^)]*\)")
HTML_TAG = re.compile(r"<[^>]+>")
ROW = re.compile(r"^\|\s*(\d\d|total)\s*\|")


# --- counting -------------------------------------------------------------------------------------------

def count_words(text: str) -> int:
    """Whitespace-separated pieces with at least one letter or digit (a table's pipes, a lone dash: none)."""
    return sum(1 for piece in text.split() if re.search(r"[^\W_]", piece))


def markdown_words(text: str) -> tuple[int, int]:
    """(prose words, words inside fenced code blocks) of one markdown cell."""
    code = " ".join(block.strip("`") for block in FENCE.findall(text))
    prose = HTML_TAG.sub(" ", LINK_TARGET.sub("]", FENCE.sub(" ", text)))
    return count_words(prose), count_words(code)


@dataclass(frozen=True)
class Reading:
    """What there is to read and run in some cells."""
    words: int = 0
    code_words: int = 0  # inside markdown code blocks
    code_cells: int = 0

    def __add__(self, other: Reading) -> Reading:
        return Reading(self.words + other.words, self.code_words + other.code_words,
                       self.code_cells + other.code_cells)

    def minutes(self) -> float:
        return (self.words / PROSE_WORDS_PER_MINUTE + self.code_words / CODE_WORDS_PER_MINUTE
                + self.code_cells * MINUTES_PER_CODE_CELL)


def source(cell: dict) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else text


SOLUTION_ONLY = "solution-only"  # the exercise builder leaves these cells out: the learner never reads them


def reading(cells: list[dict]) -> Reading:
    total = Reading()
    for cell in cells:
        if SOLUTION_ONLY in cell.get("metadata", {}).get("tags", []):
            continue
        if cell["cell_type"] == "markdown":
            total += Reading(*markdown_words(source(cell)))
        elif cell["cell_type"] == "code":
            total += Reading(code_cells=1)
    return total


def round_up(minutes: float, step: int = ROUND_TO) -> int:
    """Up to the next multiple of ``step`` (an exact multiple stays; 0 stays 0)."""
    return int(math.ceil(round(minutes / step, 9))) * step


def lesson_minutes(read: Reading, compute_seconds: float = 0) -> int:
    return round_up(read.minutes() + compute_seconds / 60)


@dataclass(frozen=True)
class Exercise:
    title: str
    difficulty: int  # 1, 2 or 3 stars
    stated: int  # the minutes its header states
    read: Reading

    @property
    def minutes(self) -> int:
        return round_up(self.read.minutes() + THINKING_MINUTES[self.difficulty])


def exercises(cells: list[dict]) -> list[Exercise]:
    """Each ``## Exercise`` section: its header cell (with the difficulty line) up to the next ``## `` header."""
    found = []
    heads = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and source(c).startswith("## ")]
    for position, i in enumerate(heads):
        header = source(cells[i])
        if not header.startswith("## Exercise"):
            continue
        end = heads[position + 1] if position + 1 < len(heads) else len(cells)
        difficulty = DIFFICULTY.search(header)
        stated = EXERCISE_MINUTES.search(header)
        if not difficulty or not stated:
            raise ValueError(f"exercise header without '**Difficulty ★★☆ (2/3) · about N minutes**': "
                             f"{header.splitlines()[0]!r}")
        found.append(Exercise(header.splitlines()[0][3:].strip(), int(difficulty.group(1)), int(stated.group(1)),
                              reading(cells[i:end])))
    return found


# --- the course ------------------------------------------------------------------------------------------

def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def save(path: Path, notebook: dict) -> None:
    """As the course commits notebooks: JSON with indent 1, UTF-8 as is, a final newline."""
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class Lesson:
    number: str
    name: str  # the notebook's file name
    read: Reading
    compute_seconds: int
    stated: int | None  # the minutes its header states
    exercises: tuple[Exercise, ...]

    @property
    def minutes(self) -> int:
        return lesson_minutes(self.read, self.compute_seconds)

    @property
    def exercise_minutes(self) -> int:
        """By the method."""
        return sum(e.minutes for e in self.exercises)

    @property
    def exercise_headers(self) -> int:
        """The sum of the exercise headers (what the README's course map shows)."""
        return sum(e.stated for e in self.exercises)


def lessons(root: Path = ROOT) -> list[Lesson]:
    found = []
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        if not LESSON.match(path.name):
            continue
        cells = load(path)["cells"]
        stated = TIME_LINE.search(source(cells[0])) if cells else None
        solution = root / "solutions" / path.name
        found.append(Lesson(path.name[:2], path.name, reading(cells), COMPUTE_SECONDS.get(path.name[:2], 0),
                            int(stated.group(1)) if stated else None,
                            tuple(exercises(load(solution)["cells"])) if solution.exists() else ()))
    return found


def hours(minutes: int) -> str:
    """``565`` -> ``9 h 25``; ``540`` -> ``9 h``."""
    h, m = divmod(minutes, 60)
    return f"{h} h {m:02d}" if m else f"{h} h"


def table_lines(lines: list[str], heading: str) -> range:
    """The line numbers of the first table under ``heading`` (a markdown heading line), or none."""
    try:
        start = lines.index(heading)
    except ValueError:
        return range(0)
    first = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("|")
                  or lines[i].startswith("#")), len(lines))
    if first == len(lines) or lines[first].startswith("#"):
        return range(0)
    end = next((i for i in range(first, len(lines)) if not lines[i].startswith("|")), len(lines))
    return range(first, end)


def readme_text(text: str, course: list[Lesson]) -> str:
    """The README with the course map's times set: lessons by the method, exercises the sum of their headers
    (as ``tests/test_notebooks.py`` checks), the total row from both."""
    by_number = {lesson.number: lesson for lesson in course}
    lesson_total = sum(lesson.minutes for lesson in course)
    exercise_total = sum(lesson.exercise_headers for lesson in course)
    lines = text.split("\n")
    for i in table_lines(lines, "## Course map"):
        line = lines[i]
        match = ROW.match(line)
        if not match:
            continue
        cells = line.strip().strip("|").split("|")
        if len(cells) != 6:
            continue
        key = match.group(1)
        if key == "total":
            cells[2] = f" about {round((lesson_total + exercise_total) / 60)} hours in all "
            cells[3], cells[4] = f" {lesson_total} min ", f" {exercise_total} min "
        elif key in by_number:
            lesson = by_number[key]
            cells[3] = f" {lesson.minutes} min "
            cells[4] = f" {lesson.exercise_headers} min " if lesson.exercises else "  "
        lines[i] = "|" + "|".join(cells) + "|"
    return "\n".join(lines)


GUIDE_ROW = re.compile(r"^\| (\d\d) \| ([^|]+) \| [^|]* \| [^|]* \|$")
GUIDE_TOTAL = re.compile(r"^\| \| \*\*(\d\d)–(\d\d)\*\* \| [^|]* \| [^|]* \|$")


def guide_text(text: str, course: list[Lesson]) -> str:
    """The instructor guide with its table of times (a row per lesson, and rows of totals such as
    ``| | **00–09** | ... |``) set by the method; exercise times are the headers' sums."""
    by_number = {lesson.number: lesson for lesson in course}
    lines = text.split("\n")
    for i in table_lines(lines, "## Schedule"):
        line = lines[i]
        row, total = GUIDE_ROW.match(line), GUIDE_TOTAL.match(line)
        if row and row.group(1) in by_number:
            lesson = by_number[row.group(1)]
            exercise = f"{lesson.exercise_headers} min" if lesson.exercises else "—"
            lines[i] = f"| {lesson.number} | {row.group(2).strip()} | {lesson.minutes} min | {exercise} |"
        elif total:
            chosen = [lesson for lesson in course if total.group(1) <= lesson.number <= total.group(2)]
            minutes = sum(lesson.minutes for lesson in chosen)
            exercise = sum(lesson.exercise_headers for lesson in chosen)
            lines[i] = (f"| | **{total.group(1)}–{total.group(2)}** | **{minutes} min ({hours(minutes)})** | "
                        f"**{exercise} min ({hours(exercise)})** |")
    return "\n".join(lines)


def header_text(first_cell: str, minutes: int) -> str:
    return TIME_LINE.sub(f"**Time:** about {minutes} minutes", first_cell, count=1)


def write(root: Path = ROOT, dry_run: bool = False) -> list[str]:
    """Set every lesson header, the README's course map and the guide's table by the method; the files
    changed (or, with ``dry_run``, that would change), as paths relative to ``root``."""
    course = lessons(root)
    changed = []
    for lesson in course:
        path = root / "notebooks" / lesson.name
        notebook = load(path)
        first = notebook["cells"][0]
        new = header_text(source(first), lesson.minutes)
        if not TIME_LINE.search(source(first)):
            raise ValueError(f"notebooks/{lesson.name}: the first cell has no '**Time:** about N minutes'")
        if new != source(first):
            changed.append(f"notebooks/{lesson.name}")
            if not dry_run:
                first["source"] = new.splitlines(keepends=True)
                save(path, notebook)
    for name, rewrite in (("README.md", readme_text), ("docs/instructor-guide.md", guide_text)):
        path = root / name
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        new = rewrite(text, course)
        if new != text:
            changed.append(name)
            if not dry_run:
                path.write_text(new, encoding="utf-8")
    return changed


EXERCISE_TIME = re.compile(r"about \d+ minutes[^*\n]*\*\*")
NOTEBOOK_TIME = re.compile(r"\*\*About \d+ minutes(\.?)\*\*(?: \([^)\n]*\))?")


def write_exercises(root: Path = ROOT, dry_run: bool = False) -> list[str]:
    """Set every exercise header of ``solutions/`` to the method's minutes ("about N minutes**", any breakdown
    after it dropped) and each solution notebook's opening "**About N minutes**" to their sum. Returns the
    notebooks changed; run ``python -m course_lib exercises build`` afterwards to carry them to ``exercises/``."""
    changed = []
    for lesson in lessons(root):
        path = root / "solutions" / lesson.name
        if not lesson.exercises or not path.exists():
            continue
        notebook = load(path)
        cells = notebook["cells"]
        found = iter(lesson.exercises)
        before = json.dumps(cells)
        for cell in cells:
            text = source(cell)
            if cell["cell_type"] == "markdown" and text.startswith("## Exercise"):
                exercise = next(found)
                text = EXERCISE_TIME.sub(f"about {exercise.minutes} minutes**", text, count=1)
            elif cell["cell_type"] == "markdown" and NOTEBOOK_TIME.search(text) and text.startswith("# "):
                text = NOTEBOOK_TIME.sub(lambda m: f"**About {lesson.exercise_minutes} minutes{m.group(1)}**", text,
                                         count=1)
            cell["source"] = text.splitlines(keepends=True)
        if json.dumps(cells) != before:
            changed.append(f"solutions/{lesson.name}")
            if not dry_run:
                save(path, notebook)
    return changed


def check(root: Path = ROOT, exercises_too: bool = False) -> list[str]:
    """Where the course disagrees with the method: one line each (empty when it agrees)."""
    course = lessons(root)
    problems = [f"notebooks/{lesson.name}: the header says {lesson.stated} minutes, the method {lesson.minutes}"
                for lesson in course if lesson.stated != lesson.minutes]
    problems += [f"{name}: its times differ from the method's (python -m course_lib times --write)"
                 for name in write(root, dry_run=True) if not name.startswith("notebooks/")]
    if exercises_too:
        problems += exercise_differences(course)
    return problems


def exercise_differences(course: list[Lesson]) -> list[str]:
    return [f"solutions/{lesson.name} {e.title}: the header says {e.stated} minutes, the method {e.minutes}"
            for lesson in course for e in lesson.exercises if e.stated != e.minutes]


def table(course: list[Lesson]) -> str:
    head = (f"{'lesson':<36} {'words':>6} {'code':>5} {'cells':>5} {'compute':>8} {'lesson':>7} {'header':>7}"
            f" {'exercises':>10} {'headers':>8}")
    lines = [head, "-" * len(head)]
    for lesson in course:
        lines.append(f"{lesson.name[:-6]:<36} {lesson.read.words:>6} {lesson.read.code_words:>5} "
                     f"{lesson.read.code_cells:>5} {lesson.compute_seconds:>6} s {lesson.minutes:>7} "
                     f"{lesson.stated if lesson.stated is not None else '—':>7} "
                     f"{lesson.exercise_minutes or '—':>10} {lesson.exercise_headers or '—':>8}")
    lines.append("-" * len(head))
    for first, last in (("00", "09"), ("00", course[-1].number)):
        chosen = [lesson for lesson in course if first <= lesson.number <= last]
        minutes = sum(lesson.minutes for lesson in chosen)
        exercise = sum(lesson.exercise_minutes for lesson in chosen)
        stated = sum(lesson.stated or 0 for lesson in chosen)
        headers = sum(lesson.exercise_headers for lesson in chosen)
        lines.append(f"{'total ' + first + '–' + last:<36} {'':>6} {'':>5} {'':>5} {'':>8} {minutes:>7} {stated:>7}"
                     f" {exercise:>10} {headers:>8}   (lessons {hours(minutes)}, exercises {hours(exercise)})")
    return "\n".join(lines)


METHOD = (f"method: prose words / {PROSE_WORDS_PER_MINUTE} + code-block words / {CODE_WORDS_PER_MINUTE} + "
          f"{MINUTES_PER_CODE_CELL} min per code cell + the lesson's compute, rounded up to {ROUND_TO} min; "
          f"an exercise adds {THINKING_MINUTES[1]}/{THINKING_MINUTES[2]}/{THINKING_MINUTES[3]} min of thinking "
          f"for ★/★★/★★★. lesson, exercises: the method's minutes; header(s): what the notebooks say now.")


def run(args) -> int:
    root = args.root or ROOT
    if args.write:
        changed = (write_exercises(root) if args.exercises else []) + write(root)
        print("\n".join(f"wrote {name}" for name in changed) or "nothing to write: the course agrees with the method")
        return 0
    course = lessons(root)
    print(table(course))
    print(METHOD)
    if args.check:
        problems = check(root, exercises_too=args.exercises)
        for line in problems:
            print(f"DIFFERS  {line}", file=sys.stderr)
        if not args.exercises:
            for line in exercise_differences(course):
                print(f"note     {line} (the exercises' author sets these)")
        return 1 if problems else 0
    return 0
