"""Exercises make the learner think: the answer stands nowhere the learner sees first.

For every exercise of every solutions notebook, and the exercise notebook built from it, these tests read the
notebooks only (no kernel):

- the answer's code (the lines between ``### BEGIN SOLUTION`` and ``### END SOLUTION``: each statement, the
  right-hand side of each assignment and return, and every sub-expression of 25 characters or more, also with
  the answer's own helper names filled in) appears neither in the prompt, nor in any hint, nor in the stub the
  learner is given (its `raise NotImplementedError(...)` message included), nor in the outputs stored above it,
  nor in the notebook's summary; code the learner is given anyway (outside every solution region) does not count;
- the stub's message says what to write, never how: it starts with "Your code here";
- the hints climb: exactly three, "Hint 1 (a question)" with a question mark, "Hint 2 (the idea)",
  "Hint 3 (one step)", and nothing offers the recipe;
- a debugging exercise (a given ``buggy_...`` function to fix) does not say what the bugs are: no call,
  keyword or slice that the fix adds to the buggy code appears in its prompt, its stub or the check's stored
  output on the buggy version.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

from course_lib.tools.exercise_builder import BEGIN, END, HINT, SOLUTION_ONLY_TAG, solution_regions

ROOT = Path(__file__).resolve().parent.parent
TOPICS = sorted(path.stem for path in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))

HINT_CELL = "<details><summary>Hint"
SUMMARY = re.compile(r"<details><summary>(?P<summary>[^<]*)</summary>(?P<body>.*?)</details>", re.S)
LADDER = ["Hint 1 (a question)", "Hint 2 (the idea)", "Hint 3 (one step)"]
MESSAGE = re.compile(r"raise NotImplementedError\((?P<message>\"(?:[^\"\\]|\\.)*\")\)")
# Lengths in characters, whitespace removed (see _pieces).
LINE_AT_LEAST, RETURNED_AT_LEAST, TOP_LEVEL_AT_LEAST, PART_AT_LEAST, METHOD_CALL_AT_LEAST = 12, 8, 10, 25, 16


def normal(text: str) -> str:
    """Text and code compared alike: no whitespace, no backticks, one kind of quote, ASCII operators."""
    for unicode, ascii_ in (("−", "-"), ("×", "*"), ("·", "*"), ("’", "'"), ("'", '"')):
        text = text.replace(unicode, ascii_)
    return re.sub(r"[\s`]+", "", text)


@dataclass
class Exercise:
    topic: str
    title: str
    prompt: list[str] = field(default_factory=list)  # markdown above the hints
    hints: list[str] = field(default_factory=list)  # the hint cells (one per exercise)
    solution_cells: list = field(default_factory=list)  # solution code cells holding a marked region
    given_cells: list = field(default_factory=list)  # code cells of the exercise without a region

    @property
    def name(self) -> str:
        return f"{self.topic} · {self.title}"


def read(folder: str, topic: str):
    return nbformat.read(ROOT / folder / f"{topic}.ipynb", as_version=4)


def exercises_of(topic: str) -> list[Exercise]:
    """Each ``## Exercise`` section of a solutions notebook, up to the next ``## `` heading."""
    found, current = [], None
    for cell in read("solutions", topic).cells:
        if cell.cell_type == "markdown" and cell.source.startswith("## "):
            current = None
            if cell.source.startswith("## Exercise"):
                current = Exercise(topic, cell.source.split("\n", 1)[0].removeprefix("## "))
                current.prompt.append(cell.source)
                found.append(current)
            continue
        if current is None:
            continue
        if cell.cell_type == "markdown":
            if HINT_CELL in cell.source:
                current.hints.append(cell.source)
            elif not current.solution_cells and not current.hints:
                current.prompt.append(cell.source)
        elif cell.cell_type == "code":
            (current.solution_cells if solution_regions(cell.source) else current.given_cells).append(cell)
    return found


def given_code(topic: str) -> str:
    """Every line of the solutions notebook's code outside the solution regions: the learner sees it anyway."""
    lines = []
    for cell in read("solutions", topic).cells:
        if cell.cell_type != "code":
            continue
        inside = False
        for line in cell.source.split("\n"):
            if BEGIN.match(line):
                inside = True
            elif END.match(line):
                inside = False
            elif not inside:
                lines.append(line)
    return normal("\n".join(lines))


def exercise_cells(topic: str, cells) -> list:
    """The built exercise notebook's cells with the ids of ``cells`` (the builder keeps the ids); cells tagged
    solution-only are not there."""
    cells = [cell for cell in cells if SOLUTION_ONLY_TAG not in cell.get("metadata", {}).get("tags", [])]
    by_id = {cell.get("id"): cell for cell in read("exercises", topic).cells}
    missing = [cell.get("id") for cell in cells if cell.get("id") not in by_id]
    assert not missing, f"exercises/{topic}.ipynb lacks the cells {missing}: rebuild it"
    return [by_id[cell.get("id")] for cell in cells]


def output_text(cell) -> str:
    texts = []
    for output in cell.get("outputs", []):
        texts.append(str(output.get("text", "")))
        texts += [str(value) for mime, value in output.get("data", {}).items() if mime.startswith("text/")]
        texts.append(str(output.get("evalue", "")))
    return "\n".join(texts)


# --- the answer's code, as pieces that must not show ------------------------------------------------------------------


class _Inline(ast.NodeTransformer):
    """Fill in the names the answer assigns once (``batch = patches.shape[0]``), so that a hint writing
    ``cls.expand(patches.shape[0], 1, -1)`` is found as well as one writing ``cls.expand(batch, 1, -1)``."""

    def __init__(self, definitions):
        self.definitions = definitions

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load) and node.id in self.definitions:
            return ast.parse(ast.unparse(self.definitions[node.id]), mode="eval").body
        return node


def _definitions(tree) -> dict:
    targets: dict[str, list] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
            pairs = [(target, value)]
            if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
                pairs = list(zip(target.elts, value.elts))
            for name, expression in pairs:
                if isinstance(name, ast.Name):
                    targets.setdefault(name.id, []).append(expression)
        elif isinstance(node, (ast.AugAssign, ast.For)) and isinstance(node.target, ast.Name):
            targets.setdefault(node.target.id, []).extend([None, None])  # reassigned: never filled in
    return {name: values[0] for name, values in targets.items() if len(values) == 1 and values[0] is not None}


def _atomic(node) -> bool:
    """A name, a number, an attribute or an index of one, or a call of one with at most one such argument
    (``keys[target]``, ``ids.clone()``, ``torch.arange(T)``): what a prompt names when it states the contract."""
    if isinstance(node, (ast.Name, ast.Constant)):
        return True
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.operand, ast.Constant)
    if isinstance(node, ast.Attribute):
        return _atomic(node.value)
    if isinstance(node, ast.Subscript):
        return _atomic(node.value) and _atomic(node.slice)
    if isinstance(node, ast.Slice):
        return all(part is None or _atomic(part) for part in (node.lower, node.upper, node.step))
    if isinstance(node, ast.Tuple):
        return all(_atomic(part) for part in node.elts)
    if isinstance(node, ast.Call):
        arguments = [*node.args, *(k.value for k in node.keywords)]
        return _atomic(node.func) and len(arguments) <= 1 and all(_atomic(a) for a in arguments)
    return False


def _pieces(tree) -> set[str]:
    """The answer's code as the pieces that must not show (whitespace removed): each statement of
    LINE_AT_LEAST characters or more; each returned value; each right-hand side, condition or loop range
    that is more than a name or a simple call; every sub-expression of PART_AT_LEAST characters or more; and
    each method call with two arguments or more, whatever it is called on."""
    pieces = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Return, ast.Expr, ast.AnnAssign)):
            line = normal(ast.unparse(node))
            if len(line) >= LINE_AT_LEAST:
                pieces.add(line)
        if isinstance(node, ast.Return) and node.value is not None:
            text = normal(ast.unparse(node.value))
            if len(text) >= RETURNED_AT_LEAST:
                pieces.add(text)
        top = getattr(node, "value", None) if isinstance(node, (ast.Assign, ast.AugAssign, ast.Return, ast.Expr)) \
            else getattr(node, "test", None) if isinstance(node, (ast.If, ast.While)) \
            else getattr(node, "iter", None) if isinstance(node, ast.For) else None
        if isinstance(top, ast.expr) and not _atomic(top):
            text = normal(ast.unparse(top))
            if len(text) >= TOP_LEVEL_AT_LEAST:
                pieces.add(text)
        if isinstance(node, ast.expr):
            text = normal(ast.unparse(node))
            if len(text) >= PART_AT_LEAST:
                pieces.add(text)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and len(node.args) + len(node.keywords) >= 2:
                # "permute(0, 3, 1, 4, 2, 5)" gives the answer away whatever it is called on
                call = normal(ast.unparse(node)).removeprefix(normal(ast.unparse(node.func.value)) + ".")
                if len(call) >= METHOD_CALL_AT_LEAST:
                    pieces.add(call)
    return pieces


def answer_trees(exercise: Exercise) -> list:
    trees = []
    for cell in exercise.solution_cells:
        for region in solution_regions(cell.source):
            code = textwrap.dedent("\n".join(line for line in region if not HINT.match(line)))
            trees.append(ast.parse(code))
    return trees


def answer_pieces(exercise: Exercise) -> set[str]:
    pieces = set()
    for tree in answer_trees(exercise):
        pieces |= _pieces(tree)
        pieces |= _pieces(_Inline(_definitions(tree)).visit(ast.parse(ast.unparse(tree))))
    return pieces


def shown_texts(exercise: Exercise) -> dict[str, str]:
    """What the learner sees of one exercise before writing it, by where it stands: the prompt, the hints, the
    stub, the outputs stored above it, and the notebook's summary."""
    shown = {f"prompt cell {i + 1}": text for i, text in enumerate(exercise.prompt)}
    for i, text in enumerate(exercise.hints):
        for match in SUMMARY.finditer(text):
            shown[f"{match.group('summary').strip() or f'hint cell {i + 1}'}"] = match.group("body")
    for cell in exercise_cells(exercise.topic, exercise.solution_cells):
        shown[f"the stub {cell.get('id')}"] = cell.source
    for cell in exercise_cells(exercise.topic, exercise.given_cells):
        shown[f"the output of {cell.get('id')}"] = output_text(cell)
    summary = [c.source[c.source.index("## Summary"):] for c in read("exercises", exercise.topic).cells
               if c.cell_type == "markdown" and "## Summary" in c.source]
    shown.update({"the summary": text for text in summary})  # a scroll away from every exercise
    return shown


EXERCISES = [exercise for topic in TOPICS for exercise in exercises_of(topic)]


def test_every_notebook_has_exercises():
    assert len(TOPICS) >= 12 and all(any(e.topic == topic for e in EXERCISES) for topic in TOPICS)
    assert all(e.solution_cells and e.hints for e in EXERCISES), [e.name for e in EXERCISES
                                                                  if not (e.solution_cells and e.hints)]


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.name)
def test_the_answers_code_stands_nowhere_the_learner_sees_first(exercise):
    given = given_code(exercise.topic)
    pieces = sorted(piece for piece in answer_pieces(exercise) if piece not in given)
    assert pieces, f"{exercise.name}: found no code in its solution region"
    leaks = [f"{where}: {piece}" for where, text in shown_texts(exercise).items()
             for piece in pieces if piece in normal(text)]
    assert not leaks, f"{exercise.name} shows the answer's code: " + "; ".join(leaks)


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.name)
def test_the_stub_says_what_to_write_not_how(exercise):
    for cell in exercise_cells(exercise.topic, exercise.solution_cells):
        messages = [ast.literal_eval(m.group("message")) for m in MESSAGE.finditer(cell.source)]
        assert len(messages) == len(solution_regions(
            next(c for c in exercise.solution_cells if c.get("id") == cell.get("id")).source)), cell.source
        for message in messages:
            assert message.startswith("Your code here"), f"{exercise.name}: the stub's message {message!r}"


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.name)
def test_hints_climb_from_a_question_to_the_idea_to_one_step(exercise):
    assert len(exercise.hints) == 1, f"{exercise.name}: {len(exercise.hints)} hint cells, expected one"
    hints = [(m.group("summary").strip(), m.group("body").strip()) for m in SUMMARY.finditer(exercise.hints[0])]
    assert [summary for summary, _ in hints] == LADDER, f"{exercise.name}: the hints are {hints}"
    assert all(body for _, body in hints), f"{exercise.name}: an empty hint"
    assert "?" in hints[0][1], f"{exercise.name}: hint 1 asks no question: {hints[0][1]!r}"


@pytest.mark.parametrize("topic", TOPICS)
def test_no_notebook_promises_the_recipe(topic):
    for folder in ("solutions", "exercises"):
        markdown = "\n".join(c.source for c in read(folder, topic).cells if c.cell_type == "markdown")
        assert "recipe" not in markdown.lower(), f"{folder}/{topic}.ipynb promises a recipe"


def _fix_tokens(buggy: ast.AST, fixed: list) -> set[str]:
    """The calls, keywords and slices that the fixed version has and the buggy one lacks."""
    def tokens(tree):
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                found.add(f".{node.func.attr}(")
            elif isinstance(node, ast.keyword) and node.arg:
                found.add(f"{node.arg}=")
            elif isinstance(node, ast.Subscript):
                found.add(normal(ast.unparse(node)))
        return found
    return set().union(*(tokens(tree) for tree in fixed)) - tokens(buggy)


DEBUGGING = [e for e in EXERCISES if any(re.search(r"^def buggy_\w+\(", c.source, re.M) for c in e.given_cells)]


def test_there_is_a_debugging_exercise():
    assert DEBUGGING, "lesson 08's exercise 3 gives a buggy training step to fix"


@pytest.mark.parametrize("exercise", DEBUGGING, ids=lambda e: e.name)
def test_a_debugging_exercise_does_not_say_what_the_bugs_are(exercise):
    buggy = next(c for c in exercise.given_cells if re.search(r"^def buggy_\w+\(", c.source, re.M))
    fixes = _fix_tokens(ast.parse(buggy.source), answer_trees(exercise))
    assert fixes, f"{exercise.name}: the fix adds nothing to the buggy code?"
    shown = {where: text for where, text in shown_texts(exercise).items() if not where.startswith("Hint")}
    told = [f"{where}: {token}" for where, text in shown.items() for token in sorted(fixes) if token in normal(text)]
    assert not told, f"{exercise.name} says what the bugs are: " + "; ".join(told)
