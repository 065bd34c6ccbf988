"""`python -m course_lib times`: the estimator on a tiny notebook made up here (words -> minutes, rounding,
the difficulty allowance), writing a made-up course, and the course itself agreeing with the method."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from course_lib.tools import times
from course_lib.tools.cli import main as cli_main

ROOT = Path(__file__).resolve().parent.parent


def markdown(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text.splitlines(keepends=True)}


def code(text: str = "x = 1") -> dict:
    return {"cell_type": "code", "execution_count": 1, "metadata": {}, "outputs": [], "source": [text]}


def notebook(cells: list[dict]) -> dict:
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def words(n: int) -> str:
    return " ".join(["word"] * n)


def test_words_are_counted_as_prose_and_code_blocks_apart():
    text = "## A title\n\nSee [lesson 03](../notebooks/03_attention_by_hand.ipynb) — <b>now</b> | a |\n" \
           "```python\nx = attention(q, k, v)\n```\n"
    prose, code_words = times.markdown_words(text)
    assert prose == 7  # A, title, See, lesson, 03], now, a: the link target, tag, dash and pipes are not words
    assert code_words == 5  # python, x, attention(q, k, v): "=" is not a word


def test_reading_minutes_follow_the_stated_paces():
    cells = [markdown(words(300)), markdown("```\n" + words(150) + "\n```"), code(), code()]
    read = times.reading(cells)
    assert read == times.Reading(words=300, code_words=150, code_cells=2)
    expected = (300 / times.PROSE_WORDS_PER_MINUTE + 150 / times.CODE_WORDS_PER_MINUTE
                + 2 * times.MINUTES_PER_CODE_CELL)
    assert read.minutes() == pytest.approx(expected)
    assert times.lesson_minutes(read) == times.round_up(expected)


@pytest.mark.parametrize("minutes, rounded", [(0, 0), (0.01, 5), (5, 5), (5 + 1e-12, 5), (5.1, 10), (12.4, 15),
                                              (15, 15), (59.9, 60)])
def test_minutes_round_up_to_the_next_five(minutes, rounded):
    assert times.round_up(minutes) == rounded


def test_compute_time_counts_for_a_lesson():
    read = times.Reading(words=1500)  # 10 minutes at 150 words a minute
    assert times.PROSE_WORDS_PER_MINUTE == 150
    assert times.lesson_minutes(read) == 10
    assert times.lesson_minutes(read, compute_seconds=30) == 15  # 10.5 minutes, rounded up


def exercise_notebook(difficulties: list[int], prose: int = 150) -> dict:
    cells = [markdown("# Exercises 99 · Made up"), code("import torch")]
    for number, stars in enumerate(difficulties, 1):
        stars_line = "★" * stars + "☆" * (3 - stars)
        cells += [markdown(f"## Exercise {number} · Something\n\n**Difficulty {stars_line} ({stars}/3) · about 5 "
                           f"minutes**\n\n{words(prose)}"), code("def answer(): ..."), code("check(answer)")]
    return notebook(cells + [markdown("## Summary\n\n" + words(500)), code()])


@pytest.mark.parametrize("stars", [1, 2, 3])
def test_an_exercise_adds_thinking_by_difficulty(stars):
    [exercise] = times.exercises(exercise_notebook([stars])["cells"])
    assert exercise.difficulty == stars and exercise.stated == 5
    # its header's 8 words (Exercise 1 Something **Difficulty (N/3) about 5 minutes**) too, not the summary's
    assert exercise.read == times.Reading(words=150 + 8, code_cells=2)
    reading = exercise.read.minutes()
    assert exercise.minutes == times.round_up(reading + times.THINKING_MINUTES[stars])
    assert times.THINKING_MINUTES == {1: 5, 2: 10, 3: 20}


def test_an_exercise_header_without_its_difficulty_is_an_error():
    cells = [markdown("## Exercise 1 · No line\n\nabout 10 minutes"), code()]
    with pytest.raises(ValueError, match="Difficulty"):
        times.exercises(cells)


def made_up_course(root: Path) -> None:
    """Two lessons, one with exercises, a README course map and a guide table, all with wrong times."""
    (root / "notebooks").mkdir()
    (root / "solutions").mkdir()
    (root / "docs").mkdir()
    for name, prose in (("00_start.ipynb", 600), ("01_more.ipynb", 1200)):
        cells = [markdown(f"# {name[:2]}\n\n**Time:** about 1 minutes (keep this).\n\n**You will:** read."),
                 markdown(words(prose)), code(), code()]
        (root / "notebooks" / name).write_text(json.dumps(notebook(cells), indent=1, ensure_ascii=False) + "\n")
    (root / "solutions" / "01_more.ipynb").write_text(json.dumps(exercise_notebook([1, 3]), indent=1) + "\n")
    (root / "README.md").write_text(
        "# Course\n\n## Course map\n\n| # | lesson | you will | lesson | exercises | practise |\n"
        "|---|---|---|---|---|---|\n"
        "| 00 | [Start](notebooks/00_start.ipynb) | start | 1 min |  |  |\n"
        "| 01 | [More](notebooks/01_more.ipynb) | more | 1 min | 1 min | [exercises](exercises/01_more.ipynb) |\n"
        "| total |  | about 1 hours in all | 2 min | 1 min |  |\n\n## Other\n\n| 00 | not | the | map | x | y |\n")
    (root / "docs" / "instructor-guide.md").write_text(
        "# Guide\n\n## Schedule\n\n| # | lesson | lesson | exercises |\n|---|---|---|---|\n"
        "| 00 | Start | 1 min | — |\n| 01 | More | 1 min | 1 min |\n| | **00–01** | **1 min** | **1 min** |\n\n"
        "## Next\n")


def test_write_sets_headers_readme_and_guide_and_then_check_agrees(tmp_path):
    made_up_course(tmp_path)
    assert len(times.check(tmp_path)) == 4  # two headers, the README, the guide
    changed = times.write(tmp_path)
    assert changed == ["notebooks/00_start.ipynb", "notebooks/01_more.ipynb", "README.md", "docs/instructor-guide.md"]
    assert times.check(tmp_path) == [] and times.write(tmp_path) == []

    course = times.lessons(tmp_path)
    # 00: 600 + 8 header words / 150 + 2 cells; 01: 1200 + 8 / 150 + 2 cells; no compute measured for them
    assert [lesson.minutes for lesson in course] == [times.round_up(608 / 150 + 2 * times.MINUTES_PER_CODE_CELL),
                                                     times.round_up(1208 / 150 + 2 * times.MINUTES_PER_CODE_CELL)]
    first = json.loads((tmp_path / "notebooks" / "00_start.ipynb").read_text())["cells"][0]
    assert f"**Time:** about {course[0].minutes} minutes (keep this)." in "".join(first["source"])
    readme = (tmp_path / "README.md").read_text()
    total = course[0].minutes + course[1].minutes
    # exercises: the headers' 5 + 5 minutes (the method's own figure is not written)
    assert f"| {course[1].minutes} min | 10 min | [exercises]" in readme
    assert f"| 00 | [Start](notebooks/00_start.ipynb) | start | {course[0].minutes} min |  |  |" in readme
    assert f"| total |  | about {round((total + 10) / 60)} hours in all | {total} min | 10 min |  |" in readme
    assert "| 00 | not | the | map | x | y |" in readme  # a table outside the course map is left alone
    guide = (tmp_path / "docs" / "instructor-guide.md").read_text()
    assert f"| 00 | Start | {course[0].minutes} min | — |" in guide
    assert f"| | **00–01** | **{total} min ({times.hours(total)})** | **10 min (0 h 10)** |" in guide


def test_check_names_an_exercise_header_only_when_asked(tmp_path):
    made_up_course(tmp_path)
    times.write(tmp_path)
    assert times.check(tmp_path) == []
    strict = times.check(tmp_path, exercises_too=True)
    assert len(strict) == 2 and all("solutions/01_more.ipynb Exercise" in line for line in strict)


def test_the_command_checks_and_writes(tmp_path, capsys):
    made_up_course(tmp_path)
    assert cli_main(["times", "--check", "--root", str(tmp_path)]) == 1
    assert "DIFFERS  notebooks/00_start.ipynb" in capsys.readouterr().err
    assert cli_main(["times", "--write", "--root", str(tmp_path)]) == 0
    assert cli_main(["times", "--check", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "00_start" in out and "total 00–01" in out and "method:" in out


def test_the_course_agrees_with_the_method():
    """Every lesson header, every exercise header, the README's course map and the guide's table are the method's
    figures: after changing a lesson or an exercise, run `python -m course_lib times --write --exercises`."""
    assert times.check(ROOT, exercises_too=True) == []


def test_write_with_exercises_sets_each_exercise_header_and_the_notebooks_opening(tmp_path):
    made_up_course(tmp_path)
    path = tmp_path / "solutions" / "01_more.ipynb"
    content = json.loads(path.read_text())
    content["cells"][0]["source"] = ["# Exercises 01 · More\n", "\n", "**About 10 minutes** (5 + 5). Read on."]
    content["cells"][2]["source"][2] = "**Difficulty ★☆☆ (1/3) · about 5 minutes: read (2), write (3)**\n"
    hidden = markdown(words(3000))
    hidden["metadata"]["tags"] = ["solution-only"]  # the learner never reads it: it must not count
    content["cells"].insert(4, hidden)
    path.write_text(json.dumps(content, indent=1) + "\n")
    assert times.write_exercises(tmp_path) == ["solutions/01_more.ipynb"]
    assert not [line for line in times.check(tmp_path, exercises_too=True) if "Exercise" in line]
    [lesson] = [lesson for lesson in times.lessons(tmp_path) if lesson.exercises]
    cells = json.loads(path.read_text())["cells"]
    first, second = lesson.exercises
    assert first.minutes == times.round_up(first.read.minutes() + 5) and first.read.words < 3000
    opening = f"# Exercises 01 · More\n\n**About {first.minutes + second.minutes} minutes**. Read on."
    assert "".join(cells[0]["source"]) == opening
    assert f"**Difficulty ★☆☆ (1/3) · about {first.minutes} minutes**\n" in "".join(cells[2]["source"])
    assert times.write_exercises(tmp_path) == []


def test_every_lesson_has_a_measured_compute_allowance():
    assert sorted(times.COMPUTE_SECONDS) == [lesson.number for lesson in times.lessons(ROOT)]
    assert all(0 < seconds <= 60 for seconds in times.COMPUTE_SECONDS.values())  # "about a minute of compute"
