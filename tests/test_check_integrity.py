"""Checks an answer cannot lie to, stop or reach around, and that leave the learner's world as they found it.

Each test is an answer a student who reads the course's source could write (issue: grading that cannot be
fooled). Grading runs these same checks, so each hole closed here is closed there too.
"""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
import torch

from course_lib.checks import check_overtaking_length, check_softmax, registry, settings
from course_lib.tools.grading import Grader

REFERENCE_SOFTMAX = registry.get("softmax").reference


@pytest.fixture
def short_limit(monkeypatch):
    """Every check gets 0.3 s, so that an answer that runs on costs the test little."""
    monkeypatch.setattr(settings, "time_limit", 0.3)


def _stopped_within(check, answer, seconds: float):
    start = time.monotonic()
    result = check(answer)
    took = time.monotonic() - start
    assert not result.passed and "took longer than 0.3 s" in result.message, result
    assert took < seconds, f"the check ran {took:.1f} s"
    return result


def test_an_endless_loop_inside_a_bare_except_is_stopped(short_limit):
    def softmax(scores):
        while True:
            try:
                time.sleep(0.01)
            except:  # noqa: E722 - the point: it swallows the alarm
                pass

    _stopped_within(check_softmax, softmax, 5)


def test_slow_work_that_swallows_the_alarm_and_then_answers_right_still_fails(short_limit):
    def softmax(scores):
        try:
            time.sleep(3)  # far past the limit, every call
        except BaseException:
            pass
        return REFERENCE_SOFTMAX(scores)

    _stopped_within(check_softmax, softmax, 2.5)


def test_after_a_stopped_answer_the_notebook_runs_normally(short_limit):
    def softmax(scores):
        while True:
            try:
                time.sleep(0.01)
            except:  # noqa: E722
                pass

    _stopped_within(check_softmax, softmax, 5)
    time.sleep(0.2)  # no alarm left over to interrupt the learner's next cell
    assert check_softmax(REFERENCE_SOFTMAX).passed


class Liar(torch.Tensor):
    """A tensor that says it equals anything it is compared with."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in ("allclose", "equal", "__eq__", "eq", "isclose"):
            return True if name in ("allclose", "equal") else torch.ones((), dtype=torch.bool)
        return super().__torch_function__(func, types, args, kwargs or {})


def test_a_tensor_that_lies_about_equality_is_judged_on_its_numbers():
    def softmax(scores):
        return torch.zeros_like(scores).as_subclass(Liar)

    result = check_softmax(softmax)
    assert not result.passed, result


def test_a_number_that_lies_about_equality_is_judged_on_its_value():
    class AlwaysEqual(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    def overtaking_length(*args, **kwargs):
        return AlwaysEqual(-12345)

    result = check_overtaking_length(overtaking_length)
    assert not result.passed, result


def test_calling_the_checks_own_reference_through_the_registry_is_noted_and_graded_zero():
    def softmax(scores):
        return registry.get("softmax").reference(scores)

    result = check_softmax(softmax)
    assert result.passed and result.used_reference
    assert "called the check's own reference solution" in result.message
    grader = Grader()
    with pytest.raises(AssertionError, match="0 points: the answer called the check's own reference"):
        grader.strict("softmax")(softmax)
    assert grader.strict("softmax")(REFERENCE_SOFTMAX.__wrapped__ if hasattr(REFERENCE_SOFTMAX, "__wrapped__")
                                    else _own_softmax).passed


def _own_softmax(scores):
    shifted = scores - scores.max(dim=-1, keepdim=True).values
    e = shifted.exp()
    return e / e.sum(dim=-1, keepdim=True)


def test_passing_the_reference_itself_is_noted():
    result = check_softmax(registry.get("softmax").reference)
    assert result.used_reference and "reference solution" in result.message


def test_an_honest_answer_is_not_flagged():
    result = check_softmax(_own_softmax)
    assert result.passed and not result.used_reference and "reference" not in result.message


def test_a_right_answer_that_changes_the_global_state_is_still_right_and_the_state_comes_back():
    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)
    dtype, threads, grad = torch.get_default_dtype(), torch.get_num_threads(), torch.is_grad_enabled()
    expected = (torch.rand(()).item(), random.random(), np.random.rand())
    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)

    def softmax(scores):
        torch.set_default_dtype(torch.float64)
        torch.set_num_threads(threads + 1)
        torch.set_grad_enabled(False)
        torch.manual_seed(123)
        random.seed(123)
        np.random.seed(123)
        return _own_softmax(scores)

    result = check_softmax(softmax)
    assert result.passed, result
    assert (torch.get_default_dtype(), torch.get_num_threads(), torch.is_grad_enabled()) == (dtype, threads, grad)
    assert (torch.rand(()).item(), random.random(), np.random.rand()) == expected


def test_an_answer_that_moves_the_default_device_leaves_it_where_it_was():
    def softmax(scores):
        torch.set_default_device("meta")
        return _own_softmax(scores)

    assert check_softmax(softmax).passed
    assert torch.get_default_device() == torch.device("cpu")
    assert torch.ones(1).device.type == "cpu"


def test_every_check_leaves_the_notebooks_random_state_and_threads_alone():
    threads = torch.get_num_threads()
    for name in registry.REGISTRY:
        entry = registry.get(name)
        torch.manual_seed(11)
        random.seed(11)
        np.random.seed(11)
        expected = (torch.rand(()).item(), random.random(), float(np.random.rand()))
        torch.manual_seed(11)
        random.seed(11)
        np.random.seed(11)
        assert entry.check(entry.reference).passed, name
        assert (torch.rand(()).item(), random.random(), float(np.random.rand())) == expected, name
        assert torch.get_num_threads() == threads, name


def test_a_meta_tensor_is_named_not_a_crash_of_the_check():
    from course_lib.checks import check_cross_entropy

    def cross_entropy(logits, targets):
        return torch.empty((), device="meta")

    result = check_cross_entropy(cross_entropy)
    assert not result.passed and "device 'meta'" in result.message and "check itself" not in result.message


def test_a_numpy_input_changed_in_place_is_named():
    from course_lib.checks import check_probe_accuracy
    from course_lib.experiments.probes import probe_accuracy

    def centring(train_x, train_y, test_x, test_y):
        x = np.asarray(train_x)
        x -= x.mean(0)  # in place: on NumPy input, the learner's own array
        return probe_accuracy(train_x, train_y, test_x, test_y)

    result = check_probe_accuracy(centring)
    assert not result.passed and "changes its input `train_x` in place" in result.message, result
    assert "NumPy arrays" in result.message and "build a new array" in result.message  # named on the NumPy input


# --- grading: each answer's check runs in a forked copy of the grading kernel --------------------------------------

def _right_softmax(scores):
    return _own_softmax(scores)


def _graded(answer):
    grader = Grader()
    start = time.monotonic()
    try:
        result = grader.strict("softmax")(answer)
        return True, str(result), time.monotonic() - start
    except AssertionError as failed:
        return False, str(failed), time.monotonic() - start


def test_grading_an_answer_that_calls_os_exit_costs_that_exercise_only():
    import os

    passed, line, _ = _graded(lambda scores: os._exit(3))
    assert not passed and "ended the process (exit code 3" in line
    assert _graded(_right_softmax)[0]  # and this process, the grading kernel, goes on


def test_grading_a_loop_nested_in_swallowing_excepts_is_killed():
    def softmax(scores):
        while True:
            try:
                try:
                    while True:
                        time.sleep(0.01)
                except BaseException:
                    pass
            except BaseException:
                pass

    passed, line, took = _graded(softmax)
    limit = registry.get("softmax").time_limit
    assert not passed and ("took longer than" in line) and took < limit + 6, (line, took)


def test_grading_throws_a_flood_of_output_away_and_judges_the_answer():
    import contextlib
    import io

    def softmax(scores):
        print("x" * 50_000_000)
        return _own_softmax(scores)

    seen = io.StringIO()
    with contextlib.redirect_stdout(seen):
        passed, line, _ = _graded(softmax)
    assert passed, line
    assert len(seen.getvalue()) < 10_000


def test_grading_uses_the_real_helpers_whatever_the_submission_patched(monkeypatch):
    import course_lib.checks.compare as compare_module
    import course_lib.checks.lesson03_attention_by_hand as lesson03

    grader = Grader()  # as the grading kernel does, before any student code

    def wrong_softmax(scores):
        return scores.exp()  # no division by the sum

    # The submission's patches: every comparison passes, the built-in comparison lies too.
    monkeypatch.setattr(lesson03, "compare", lambda *args, **kwargs: None)
    monkeypatch.setattr(compare_module, "compare", lambda *args, **kwargs: None)
    monkeypatch.setattr(torch, "allclose", lambda *args, **kwargs: True)
    monkeypatch.setattr(torch.Tensor, "allclose", lambda *args, **kwargs: True)
    assert check_softmax(wrong_softmax).passed  # in the patched process the check is fooled
    with pytest.raises(AssertionError, match="softmax"):
        grader.strict("softmax")(wrong_softmax)  # the grader's copy runs with the real helpers
    assert torch.allclose(torch.zeros(1), torch.ones(1)) is True  # and the submission's kernel keeps its own


def test_is_causal_cannot_be_answered_from_the_models_names():
    from course_lib.checks import check_is_causal

    def is_causal(model, ids, vocab_size):  # reads names, runs nothing
        inner = getattr(model, "model", model)
        name = type(inner).__name__
        if name == "_Decoder":
            return getattr(getattr(inner, "mask", None), "__name__", "") == "causal_mask"
        return name in ("_Lookup", "_RunningMean", "_TotalMinusLater")

    assert not check_is_causal(is_causal).passed
    assert check_is_causal(registry.get("is_causal").reference).passed
