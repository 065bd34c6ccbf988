"""Checks an answer cannot lie to, stop or reach around, and that leave the learner's world as they found it.

Each test is an answer a student who reads the course's source could write (issue: grading that cannot be
fooled). In a notebook the answer runs in a forked copy of the kernel (``course_lib.apart``); where the
platform cannot fork it runs in the kernel itself, and the time-limit tests run both ways. Grading runs the
same checks, with the answer in a process that never loads them (the last tests here, and test_nbgrader.py).
"""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
import torch

from course_lib.checks import check_overtaking_length, check_softmax, registry, settings

REFERENCE_SOFTMAX = registry.get("softmax").reference


@pytest.fixture(params=["apart", "in this process"])
def short_limit(request, monkeypatch):
    """Every check gets 0.3 s, so that an answer that runs on costs the test little; the answer runs in its own
    process (as on Linux), then in the check's (as where the platform cannot fork)."""
    monkeypatch.setattr(settings, "time_limit", 0.3)
    monkeypatch.setattr(settings, "apart", request.param == "apart")
    return request.param


@pytest.fixture
def apart_limit(monkeypatch):
    """0.3 s, with the answer in its own process: what only a killed process can stop."""
    monkeypatch.setattr(settings, "time_limit", 0.3)
    monkeypatch.setattr(settings, "apart", True)


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


def test_a_loop_nested_in_swallowing_excepts_is_stopped(apart_limit):
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

    _stopped_within(check_softmax, softmax, 3)


def test_one_long_operation_in_c_is_stopped(apart_limit):
    big = torch.randn(2500, 2500)

    def softmax(scores):
        for _ in range(50):  # a minute or so of matrix products, each one uninterruptible from Python
            big @ big
        return _own_softmax(scores)

    _stopped_within(check_softmax, softmax, 3)


def test_the_answer_cannot_read_the_checks_expected_values_from_its_callers():
    import sys

    def softmax(scores):
        frame = sys._getframe(1)
        while frame is not None:
            for name in ("expected", "expected_out", "right", "reference"):
                value = frame.f_locals.get(name)
                if isinstance(value, torch.Tensor) and value.shape == scores.shape:
                    return value
            frame = frame.f_back
        return torch.zeros_like(scores)

    result = check_softmax(softmax)
    assert not result.passed, result


def test_a_reference_found_through_the_garbage_collector_is_noted():
    import gc

    name = REFERENCE_SOFTMAX.__name__

    def softmax(scores):
        for obj in gc.get_objects():
            if callable(obj) and getattr(obj, "__name__", "") == name and obj is not softmax \
                    and getattr(obj, "__module__", "").startswith("course_lib.checks"):
                return obj(scores)
        return _own_softmax(scores)

    result = check_softmax(softmax)
    assert result.passed and result.used_reference, result


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
    from course_lib.checks import check_nearest_neighbour_accuracy
    from course_lib.experiments.probes import nearest_neighbour_accuracy

    def centring(train_x, train_y, test_x, test_y):
        if isinstance(train_x, np.ndarray):
            train_x -= train_x.mean(0)  # in place: on NumPy input, the learner's own array
        return nearest_neighbour_accuracy(train_x, train_y, test_x, test_y)

    result = check_nearest_neighbour_accuracy(centring)
    assert not result.passed and "changes its input `train_x` in place" in result.message, result
    assert "NumPy arrays" in result.message and "build a new array" in result.message  # named on the NumPy input


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
