"""Grading each answer apart from the grader (course_lib.tools.autograde), without nbgrader around it.

One submission holds every way a student who reads the course's source might try to fool the grader, each
before one test cell, with right answers between them: each cheat must cost exactly its own exercise, and
each right answer after it must still score. (test_nbgrader.py grades whole notebooks through nbgrader.)
"""

from __future__ import annotations

import time

import pytest

from course_lib.tools.autograde import blocked_paths, grade

pytestmark = pytest.mark.integration  # starts the submission's own processes

SETUP = "import torch\nfrom course_lib.checks import check_softmax, check_attention_weights, check_attend\n"
RIGHT = "def softmax(scores):\n    return torch.softmax(scores, dim=-1)\n"

CHEATS = [
    # (what the student tries, the cells before the test cell, the exercise, passes?, words in the verdict)
    ("looks for the grader's objects and names to replace", [
        "import gc\n"
        "found = [o for o in gc.get_objects() if type(o).__name__ in ('Grader', 'Session', 'CheckResult', 'Registry')]\n"
        "for name in list(globals()):\n"
        "    if name.startswith('_course_grader_') or name.startswith('check_'):\n"
        "        globals()[name] = lambda *args, **kwargs: None\n"
        "def softmax(scores):\n    assert not found, found\n    return torch.zeros_like(scores)\n"],
     "softmax", False, "softmax: the output is wrong"),
    ("reads the check's expected values from its callers' frames", [
        "import sys\n"
        "def attention_weights(query, keys):\n"
        "    frame = sys._getframe(1)\n"
        "    while frame is not None:\n"
        "        for value in frame.f_locals.values():\n"
        "            if isinstance(value, torch.Tensor) and value.shape == (keys.shape[0],):\n"
        "                return value\n"
        "        frame = frame.f_back\n"
        "    return torch.zeros(keys.shape[0])\n"],
     "attention_weights", False, "attention_weights: "),
    ("patches PyTorch's comparisons and returns a tensor equal to everything", [
        "torch.allclose = lambda *args, **kwargs: True\n"
        "torch.equal = lambda *args, **kwargs: True\n"
        "class Liar(torch.Tensor):\n"
        "    @classmethod\n"
        "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
        "        if getattr(func, '__name__', '') in ('allclose', 'equal', 'isclose'):\n"
        "            return True\n"
        "        return super().__torch_function__(func, types, args, kwargs or {})\n"
        "def attend(query, keys, values):\n"
        "    return torch.zeros(values.shape[-1]).as_subclass(Liar)\n"],
     "attend", False, "attend: "),
    ("prints 50 MB, then answers right", [
        "def softmax(scores):\n    print('x' * 50_000_000)\n    return torch.softmax(scores, dim=-1)\n"],
     "softmax", True, "✓ softmax"),
    ("calls os._exit", ["import os\ndef softmax(scores):\n    os._exit(3)\n"],
     "softmax", False, "softmax: ended the process"),
    ("loops inside nested excepts that swallow every interrupt", [
        "import time\n"
        "def softmax(scores):\n"
        "    while True:\n"
        "        try:\n"
        "            try:\n"
        "                while True:\n"
        "                    time.sleep(0.01)\n"
        "            except BaseException:\n"
        "                pass\n"
        "        except BaseException:\n"
        "            pass\n"],
     "softmax", False, "softmax: your answer took longer than 1 s"),
    ("a right answer after all that", [RIGHT], "softmax", True, "✓ softmax"),
    ("calls the check's reference through the registry", [
        "def softmax(scores):\n"
        "    from course_lib.checks import registry\n"
        "    return registry.get('softmax').reference(scores)\n"],
     "softmax", False, "softmax: 0 points: the submission called or read the course's checks"),
    ("reads the checks' source to copy the reference", [
        "import course_lib, pathlib\n"
        "source = pathlib.Path(course_lib.__file__).parent / 'checks' / 'lesson03_attention_by_hand.py'\n"
        "try:\n    text = source.read_text()\nexcept OSError:\n    text = ''\n" + RIGHT],
     "softmax", False, "softmax: 0 points: the submission called or read the course's checks"),
    ("a right answer: only the exercise of the attempt lost its points", [RIGHT], "softmax", True, "✓ softmax"),
    ("ends the notebook's process in a cell of its own", ["import os\nos._exit(1)\n"],
     "softmax", True, "✓ softmax"),  # the cell is skipped; the process starts again with the cells before it
]


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submission")
    cells, expected = [{"source": SETUP}], {}
    for what, before, exercise, passes, words in CHEATS:
        cells += [{"source": source} for source in before]
        expected[len(cells)] = (what, passes, words)
        cells.append({"exercise": exercise, "answer": exercise})
    start = time.monotonic()
    found = grade(cells, str(folder), blocked_paths(""), [str(folder)], cell_seconds=30, time_limit=1.0)
    return found, expected, time.monotonic() - start


@pytest.mark.parametrize("index", range(len(CHEATS)), ids=[cheat[0] for cheat in CHEATS])
def test_each_cheat_costs_its_own_exercise_and_nothing_else(verdicts, index):
    found, expected, _ = verdicts
    position = sorted(expected)[index]
    what, passes, words = expected[position]
    verdict = found[position]
    assert verdict["passed"] is passes, (what, verdict)
    assert words in verdict["line"], (what, verdict)


def test_a_verdict_is_one_short_line(verdicts):
    found, _, took = verdicts
    assert all("\n" not in v["line"] and len(v["line"]) < 600 for v in found.values()), found
    assert took < 120, f"grading took {took:.0f} s"
