"""The checks with each answer in its own forked process, as a learner's notebook runs them on Linux.

Every right and every wrong answer of the case files (tests/check_cases_*.py), and odd answers for a function, a
class, a training step and a NumPy-taking exercise: what crosses between the processes (inputs, results, what a
call did to its inputs, gradients) must give the same verdicts as test_checks.py, where answers run in the test's
own process. A file of its own, so that the two halves run side by side.
"""

from __future__ import annotations

import pytest
import torch

from course_lib.checks import check_softmax
from test_checks import _odd_answers_get_a_diagnosis, _params


@pytest.mark.parametrize("check, label, implementation", _params("right"))


def test_check_accepts_valid_implementation(check, label, implementation):
    result = check(implementation)
    assert result.passed, repr(result)
    assert repr(result).startswith(f"✓ {check.exercise}: ")


@pytest.mark.parametrize("check, label, implementation, diagnosis", _params("wrong"))


def test_check_rejects_mistake_with_diagnosis(check, label, implementation, diagnosis):
    result = check(implementation)
    assert not result.passed and result.implemented, repr(result)
    alternatives = diagnosis if isinstance(diagnosis, tuple) else (diagnosis,)
    assert any(words in result.message for words in alternatives), repr(result)
    assert "the check itself failed" not in result.message
    assert repr(result).startswith(f"✗ {check.exercise}: ") and "\n" not in str(result)


def test_a_recording_stays_in_the_answers_process():
    seen = []

    def spy(scores):
        seen.append(scores)
        return torch.softmax(scores, dim=-1)

    assert check_softmax(spy).passed
    assert seen == []  # the answer ran in a forked copy; nothing it did reached this process


def test_keyboard_interrupt_is_not_swallowed():
    import signal

    def interrupted(*args):
        raise KeyboardInterrupt

    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(KeyboardInterrupt):
        check_softmax(interrupted)
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0


# What an odd answer returns crosses from the answer's process as plain data or a handle: a function, a class,
# a training step and a NumPy-taking exercise, each with every odd answer, in their own processes.


@pytest.mark.parametrize("name", ["softmax", "multi_head_attention", "train_step", "nearest_neighbour_accuracy"])


def test_odd_answers_get_a_diagnosis_when_they_run_apart(name):
    _odd_answers_get_a_diagnosis(name)
