"""The grader's own copy of the course's checks, taken before any student code runs.

``nbgrader autograde`` runs a student's notebook in one kernel: the student's cells and the test cells
share one namespace and one ``course_lib``. A submission that defines its own ``check_softmax`` (one
that returns None), assigns ``course_lib.checks.check_softmax = ...`` or edits ``registry.REGISTRY``
would fool a test cell that looked the check up by name. So the grading kernel builds a ``Grader`` at
start-up (``python -m course_lib nbgrader source`` writes that into ``nbgrader_config.py``:
IPython's ``exec_lines``, under a name that only the instructor's copy of the test cells knows), and
each test cell's hidden line rebinds ``check_softmax = <that name>.strict("softmax")`` just before the
cell's visible ``check_softmax(softmax)``: at grading time the visible call is the real, strict check,
whatever the submission defined or imported (or failed to import).

``grade`` uses the check functions and the ``CheckResult`` type it kept at start-up, resets the checks'
settings (a student cannot switch the time limit off), and accepts only a real, passing ``CheckResult``:
anything else raises ``AssertionError`` with the check's one line, which nbgrader scores as 0 points for
that test cell alone.

What this does not stop: student code runs in the grader's process with the grader's rights. A
submission written to attack the grader itself (patching PyTorch, reading every object in memory) can
still fool it, or delete files. Grade inside a throwaway copy or container, or on a hub where each
student is a Unix user (docs/instructor-guide.md, "The trust model").
"""

from __future__ import annotations


class Grader:
    """``grade(name, candidate)``: run the real check of exercise ``name`` on ``candidate``; return its
    ``CheckResult`` when it passed, raise ``AssertionError`` (the check's one line) when it did not."""

    __slots__ = ("grade", "exercises")

    def __init__(self) -> None:
        from course_lib.checks import registry, running  # importing the package registers every lesson's checks

        checks = {name: entry.check for name, entry in registry.REGISTRY.items()}
        result_type, settings, core = running.CheckResult, running.settings, running

        def grade(name: str, candidate):
            if name not in checks:
                raise KeyError(f"no exercise {name!r}; the grader knows: {', '.join(checks)}")
            core.settings = settings  # each check's own time limit, whatever the submission set or replaced
            settings.time_limit = None
            result = checks[name](candidate)
            if type(result) is not result_type:
                raise AssertionError(f"{name}: the check did not return a result (got {type(result).__name__}); "
                                     f"the submission interfered with the grader")
            if result.name != name or not result.passed:
                raise AssertionError(str(result))
            if result.used_reference:
                raise AssertionError(f"{name}: 0 points: the answer called the check's own reference solution "
                                     f"instead of computing the answer itself")
            return result

        self.grade = grade
        self.exercises = tuple(checks)

    def strict(self, name: str):
        """``check_<name>`` for grading: the real check, raising ``AssertionError`` unless the answer passes."""
        grade = self.grade

        def check(candidate, *args, **kwargs):
            return grade(name, candidate)

        check.__name__ = f"check_{name}"
        return check

    def __repr__(self) -> str:
        return f"<course_lib grader: {len(self.exercises)} exercises>"
