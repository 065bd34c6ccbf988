"""Every check must reject the mistakes learners really make, naming the mistake where it can, and
accept every valid way to write the answer (built-ins, einsum, loops, other formulations).

This file holds the machinery every check shares and the parametrisation; each lesson's cases live in
``tests/check_cases_<lesson>.py`` (named after the lesson in ``checks.EXERCISES``, e.g.
``check_cases_04_self_attention.py``), which may hold these tables:

``CASES``           exercise name -> (right answers, wrong answers): right ``(id, implementation)``, wrong
                    ``(id, implementation, words its diagnosis must contain)`` (a tuple of words: any of them).
``NAMED_MISTAKES``  ``(exercise, implementation, words)``: the classic mistakes, each diagnosed by name.
``DELEGATING``      exercise -> ``[(id, implementation, built-in)]``: an answer that calls the ready-made
                    built-in passes and names it.
``HAND_BUILT``      exercise -> id of a right answer that must pass without a "you called" note (every
                    exercise in DELEGATING needs one).
``REPLAYABLE``      exercises whose recorded outputs, replayed, must fail on fresh inputs.
``CHEATS``          ``(exercise, id, make_cheat, seed)``: ``make_cheat()`` answers without looking at the
                    inputs; the check must fail it on that seed.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import course_lib
from course_lib import checks
from course_lib.checks import registry
from course_lib.tools.exercise_builder import load_sanitizers
from course_lib.checks import (
    CheckResult, check_add_positions, check_attend, check_attention_weights, check_causal_mask,
    check_cross_entropy, check_embed_tokens, check_multi_head_attention, check_position_similarity,
    check_scaled_dot_product_attention, check_sgd_step, check_sinusoidal_positions, check_softmax,
    check_training_step,
)

# ---------------------------------------------------------------------------------------------------------------
# The lessons' cases, one file per lesson, merged here. The parametrisation below follows the registry.
# ---------------------------------------------------------------------------------------------------------------

LESSON_CASE_MODULES = [importlib.import_module(path.stem)
                       for path in sorted(Path(__file__).parent.glob("check_cases_*.py"))]


@pytest.fixture(autouse=True)
def _answers_in_this_process(monkeypatch):
    """Here answers run in the test's process: the checks' logic is the same wherever the answer runs, and a fork
    per check would triple the fast loop. tests/test_checks_apart.py runs the right and wrong answers apart."""
    monkeypatch.setattr(checks.settings, "apart", False)


def _merged(table: str, empty):
    """One table (CASES, DELEGATING, ...) of every lesson's case file, in lesson order."""
    merged = type(empty)()
    for module in LESSON_CASE_MODULES:
        part = getattr(module, table, type(empty)())
        if isinstance(merged, dict):
            assert not set(part) & set(merged), f"{module.__name__} repeats {sorted(set(part) & set(merged))}"
            merged.update(part)
        else:
            merged.extend(part)
    return merged


CASES = _merged("CASES", {})
NAMED_MISTAKES = _merged("NAMED_MISTAKES", [])
DELEGATING = _merged("DELEGATING", {})
HAND_BUILT = _merged("HAND_BUILT", {})
REPLAYABLE = _merged("REPLAYABLE", [])
CHEATS = _merged("CHEATS", [])
NAMES = [name for names in checks.EXERCISES.values() for name in names]  # from the registry, lesson order
ALL_CHECKS = [registry.get(name).check for name in NAMES]


def _right(name):
    """The first right answer of exercise ``name`` in its lesson's case file."""
    return CASES[name][0][0][1]


def _wrong(name):
    """The first wrong answer of exercise ``name`` in its lesson's case file."""
    return CASES[name][1][0][1]


def _params(kind):
    out = []
    for name in NAMES:
        check = registry.get(name).check
        right, wrong = CASES.get(name, ((), ()))
        for case in (right if kind == "right" else wrong):
            out.append(pytest.param(check, *case, id=f"{name}-{case[0]}"))
    return out


def test_every_exercise_has_a_check_with_cases():
    assert sorted(NAMES) == sorted(CASES)
    assert all(len(names) >= 3 for names in checks.EXERCISES.values())
    for name, (right, wrong) in CASES.items():
        assert len(right) >= 2 and len(wrong) >= 3, name
    # Each lesson's cases in one file, named after the lesson.
    for lesson, names in checks.EXERCISES.items():
        module = importlib.import_module(f"check_cases_{lesson}")
        assert set(names) == set(module.CASES), lesson
        assert set(getattr(module, "DELEGATING", {})) | set(getattr(module, "HAND_BUILT", {})) <= set(names), lesson
        assert {case[0] for case in getattr(module, "NAMED_MISTAKES", []) + getattr(module, "CHEATS", [])} \
            | set(getattr(module, "REPLAYABLE", [])) <= set(names), lesson
    assert len(LESSON_CASE_MODULES) == len(checks.EXERCISES)


# The named mistakes of the course's issue, each diagnosed by name.


# The named mistakes of the course's issue, each diagnosed by name.
@pytest.mark.parametrize("exercise, implementation, name", [
    pytest.param(*case, id=f"{case[0]}-{case[2]}") for case in NAMED_MISTAKES])
def test_named_classic_mistakes(exercise, implementation, name):
    result = registry.get(exercise).check(implementation)
    assert not result.passed and name in result.message, repr(result)


# The diagnoses hold on random sizes: two more seeds (the tests above use seed 0), each mistake still named.
@pytest.mark.parametrize("seed", range(1, 3))
def test_diagnoses_hold_on_random_sizes(seed, answers_in_this_process):
    # The diagnoses' logic on many sizes: the same wherever the answer runs, so here in this process (fast).
    for name in NAMES:
        check = registry.get(name).check
        for label, implementation, diagnosis in CASES[name][1]:
            result = check(implementation, seed=seed)
            alternatives = diagnosis if isinstance(diagnosis, tuple) else (diagnosis,)
            assert any(words in result.message for words in alternatives), (seed, label, repr(result))
        for label, implementation in CASES[name][0]:
            assert check(implementation, seed=seed).passed, (seed, label)


def _not_implemented(*args):
    raise NotImplementedError("Hint: this is the exercise")


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.exercise)
def test_unimplemented_exercise_reads_not_implemented_yet(check):
    if check is check_multi_head_attention:
        class Unfinished(nn.Module):
            def __init__(self, d_model, n_heads):
                super().__init__()
                raise NotImplementedError("Hint: four nn.Linear layers")
        result = check(Unfinished)
    else:
        result = check(_not_implemented)
    assert not result.passed and not result.implemented
    assert str(result) == f"✗ {check.exercise}: not implemented yet (replace the `raise NotImplementedError` " \
                          f"line with your code)"
    assert repr(result) == f"✗ {check.exercise}: not implemented yet\n  (replace the `raise NotImplementedError` " \
                           f"line with your code)"


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.exercise)
def test_check_never_raises_and_explains(check):
    def raises_value_error(*args):
        raise ValueError("something is off")

    def returns_none(*args):
        return None

    def returns_text(*args):
        return "attention"

    # sgd_step rightly returns None: doing nothing at all is its mistake.
    none_words = "did not change" if check is check_sgd_step else "None"
    for implementation, words in ((raises_value_error, "ValueError"), (returns_none, none_words),
                                  (returns_text, "str"), (42, "expected your function")):
        result = check(implementation)
        assert isinstance(result, CheckResult) and not result.passed
        assert words in result.message, repr(result)


def test_nan_output_is_reported():
    result = check_softmax(lambda x: torch.full_like(x, float("nan")))
    assert not result.passed and "NaN" in result.message


def test_inf_output_is_reported():
    result = check_add_positions(lambda x, table: x + table[: x.shape[1]] + float("inf"))
    assert not result.passed and "contains inf" in result.message


def test_wrong_dtype_is_reported():
    result = check_softmax(lambda x: x.softmax(-1).double())
    assert not result.passed and "dtype torch.float64" in result.message


def test_wrong_shape_is_reported():
    result = check_attend(lambda q, k, v: (torch.softmax(k @ q, -1) @ v)[None])
    assert not result.passed
    assert re.search(r"shape \(1, (\d+)\) .*expected \(\1,\)", result.message), repr(result)


def test_unrecognised_mistake_shows_expected_and_got():
    result = check_embed_tokens(lambda ids, table: table[ids] + torch.arange(ids.shape[1])[:, None])
    assert not result.passed
    assert "expected [" in result.message and "got [" in result.message and "values differ" in result.message


def test_modified_input_is_reported_by_name():
    def softmax_in_place(scores):
        scores -= scores.max(-1, keepdim=True).values
        return scores.exp() / scores.exp().sum(-1, keepdim=True)

    result = check_softmax(softmax_in_place)
    assert not result.passed and "changes its input `scores` in place" in result.message


def test_a_bug_in_the_check_itself_is_contained(monkeypatch):
    monkeypatch.setattr("course_lib.checks.lesson06_positions.sinusoidal_positions", None)
    result = check_sinusoidal_positions(_right("sinusoidal_positions"))
    assert not result.passed and "the check itself failed" in result.message


def test_checks_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check_multi_head_attention(course_lib.MultiHeadAttention)
    check_training_step(_right("training_step"))
    assert torch.equal(torch.rand(3), expected)


# Speed is the benchmark's business (`python -m course_lib bench` calls checks.time_checks()), not a test's.
@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.exercise)
def test_check_is_deterministic_for_a_seed_and_its_success_line_is_stable(check):
    right = CASES[check.exercise][0][0][1]
    # Fresh inputs on every call, but the success line never changes: notebooks store it (strict nbval).
    assert repr(check(right)) == repr(check(right)) == repr(check(right, seed=7))
    wrong = CASES[check.exercise][1][0][1]
    assert repr(check(wrong, seed=11)) == repr(check(wrong, seed=11))
    assert str(check(wrong, seed=11)).endswith("; seed 11") and repr(check(wrong, seed=11)).endswith("\n  seed 11")


def test_time_checks_times_every_exercise_on_a_right_answer():
    seconds = checks.time_checks()
    assert list(seconds) == [name for names in checks.EXERCISES.values() for name in names]
    assert all(isinstance(s, float) and s >= 0 for s in seconds.values())


@pytest.mark.parametrize("name", NAMES)
def test_reference_solutions_pass(name):
    entry = registry.get(name)
    result = entry.check(entry.reference)
    assert result.passed, repr(result)


def test_time_checks_refuses_to_time_a_failing_run(monkeypatch):
    wrong = dataclasses.replace(registry.get("softmax"), reference=lambda x: x.exp())
    monkeypatch.setitem(registry.REGISTRY, "softmax", wrong)
    with pytest.raises(RuntimeError, match="check_softmax rejects a right answer"):
        checks.time_checks()


def _displays_well(result) -> bool:
    """A notebook shows a result as a short first line and the details below it, wrapped on word boundaries:
    no line longer than 88 characters unless it is one word, every line after the first indented two spaces,
    and the words of ``message`` all there, in order."""
    lines = repr(result).splitlines()
    first = f"{'✓' if result.passed else '✗'} {result.name}: "
    assert lines[0].startswith(first) and len(lines[0]) <= 88, lines
    assert all(line.startswith("  ") and not line.startswith("   ") for line in lines[1:]), lines
    assert all(len(line) <= 88 or " " not in line.strip() for line in lines), lines
    assert re.sub(r"[\s:;,]", "", repr(result)) == re.sub(r"[\s:;,]", "", f"{str(result)[0]}{result.name}{result.message}")
    return True


def test_result_displays_as_a_short_first_line_and_wrapped_details():
    result = check_causal_mask(lambda T: torch.ones(T, T, dtype=torch.bool).tril())
    assert str(result) == f"✓ causal_mask: {result.message}" and "\n" not in result.message
    assert repr(result) == ("✓ causal_mask: True on and below the diagonal\n"
                            "  on 4 random inputs, incl. T = 1; T = 2; a long sequence")
    assert bool(result) is True and bool(check_causal_mask(_wrong("causal_mask"))) is False
    # A long failure: the mistake in a few words, the details wrapped below, the seed alone on the last line.
    message = ("subtracted the largest score of the whole tensor (scores.max()), not each row's own: a row far below "
               "it gets exp(...) = 0 everywhere and 0 / 0 = NaN; take the max over the last axis, keepdim=True (rows "
               "of very different scale (one near 1000, one near 0)); seed 81234")
    result = CheckResult("softmax", False, message)
    lines = repr(result).splitlines()
    assert lines[0] == "✗ softmax: subtracted the largest score of the whole tensor", lines
    assert len(lines) >= 4 and max(map(len, lines)) <= 90 and lines[-1] == "  seed 81234", lines
    assert result.message == message and str(result) == f"✗ softmax: {message}" and not result
    assert _displays_well(result)
    # The head is the part before the first ": " when it is short; the inputs' label goes below with the details.
    result = CheckResult("one_hot", False, "returns integers (dtype torch.int64) (batch 2, T 6, vocab 9, d 5): one-hot "
                                           "vectors get multiplied by float weights, so convert with .float(); seed 7")
    assert repr(result).splitlines()[0] == "✗ one_hot: returns integers (dtype torch.int64)"
    assert repr(result).splitlines()[1].startswith("  (batch 2, T 6, vocab 9, d 5): one-hot vectors")
    # A short message stays one line; a long word is never broken.
    assert repr(CheckResult("x", False, "scores not divided by √d")) == "✗ x: scores not divided by √d"
    word = "a" * 120
    assert "  " + word in repr(CheckResult("x", False, f"wrong: {word} and more words; seed 3")).splitlines()
    # nbval sanitizes the seed in both forms: the displayed last line and the one-line message.
    rules = load_sanitizers(Path(__file__).parents[1])
    shown = [repr(CheckResult("x", False, f"a long diagnosis: {'word ' * 30}; seed {seed}")) for seed in (1, 98765)]
    sanitize = lambda text: functools.reduce(lambda t, rule: rule[0].sub(rule[1], t), rules, text)  # noqa: E731
    assert sanitize(shown[0]) == sanitize(shown[1]) and sanitize(shown[0]).endswith("\n  seed <random>")
    assert sanitize("✗ x: wrong; seed 12") == sanitize("✗ x: wrong; seed 345")


@pytest.mark.parametrize("name", NAMES)
def test_every_wrong_case_displays_well(name):
    for _, implementation, _ in CASES[name][1]:
        assert _displays_well(registry.get(name).check(implementation))
    assert _displays_well(registry.get(name).check(_right(name)))


# --- NotImplementedError that is not this exercise's own `raise NotImplementedError` -----------------------------

@pytest.mark.parametrize("check, implementation, pytorch", [
    (check_softmax, lambda x: torch.softmax(x.long(), dim=-1), "not implemented for 'Long'"),
    (check_cross_entropy, lambda logits, t: F.cross_entropy(t, logits), "not implemented for 'Long'"),
    (check_attention_weights, lambda q, k: torch.softmax((k @ q) > 0, dim=-1), "not implemented for 'Bool'"),
    (check_position_similarity, lambda p: F.normalize(p.long(), dim=-1), "Got Long"),
])
def test_integer_tensor_where_a_float_is_needed(check, implementation, pytorch):
    result = check(implementation)
    assert not result.passed and result.implemented, repr(result)
    assert "uses an integer (or bool) tensor where a float is needed" in result.message, repr(result)
    assert "(PyTorch: " in result.message and pytorch in result.message
    assert "not implemented yet" not in result.message


def unfinished_attention_weights(query, keys):
    raise NotImplementedError("Hint: softmax(keys @ query)")


def attend_calling_unfinished(query, keys, values):
    return unfinished_attention_weights(query, keys) @ values


def unfinished_split_heads(x, n_heads):
    raise NotImplementedError("Hint: view, then transpose")


class MultiHeadAttentionCallingUnfinished(course_lib.MultiHeadAttention):
    def forward(self, x, mask=None):
        q = unfinished_split_heads(self.q_proj(x), self.n_heads)
        return q, q


class MultiHeadAttentionWithUnfinishedHelper(course_lib.MultiHeadAttention):
    def split(self, t):
        raise NotImplementedError("Hint: your own helper")

    def forward(self, x, mask=None):
        return self.split(x), None


class MultiHeadAttentionWithoutForward(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self, name, nn.Linear(d_model, d_model))


def test_a_finished_function_calling_an_unfinished_exercise_names_it():
    result = check_attend(attend_calling_unfinished)
    assert str(result) == ("✗ attend: calls `unfinished_attention_weights`, which is not implemented yet: "
                           "finish that exercise first")
    assert result.implemented
    result = check_multi_head_attention(MultiHeadAttentionCallingUnfinished)
    assert str(result) == ("✗ multi_head_attention: calls `unfinished_split_heads`, which is not implemented "
                           "yet: finish that exercise first")


def test_unfinished_parts_of_the_exercise_itself_read_not_implemented_yet():
    result = check_multi_head_attention(MultiHeadAttentionWithUnfinishedHelper)
    assert not result.implemented and "not implemented yet (replace" in result.message, repr(result)
    assert not check_attention_weights(unfinished_attention_weights).implemented


def test_a_module_without_forward_is_told_to_define_it():
    result = check_multi_head_attention(MultiHeadAttentionWithoutForward)
    assert not result.passed and "has no forward method" in result.message, repr(result)


# --- messages that read well ---------------------------------------------------------------------------------------

def test_a_wrong_scalar_shows_expected_and_got_once():
    result = check_cross_entropy(lambda logits, t: 1.5 * F.cross_entropy(logits, t))
    assert re.match(r"the loss is wrong \(batch \d+, \d+ classes\): expected \d+\.\d+, got", result.message)
    assert ": ;" not in result.message and result.message.count("expected") == 1, repr(result)


def test_none_as_the_weights_asks_for_the_weights():
    def output_only(q, k, v, mask=None):
        return course_lib.scaled_dot_product_attention(q, k, v, mask)[0], None

    result = check_scaled_dot_product_attention(output_only)
    assert "returns the weights as None" in result.message and "return the weights too" in result.message
    assert "forget `return`" not in result.message


def test_if_mask_is_told_to_compare_with_none():
    def if_mask(q, k, v, mask=None):
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if mask:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(-1)
        return weights @ v, weights

    result = check_scaled_dot_product_attention(if_mask)
    assert not result.passed and "use `if mask is not None:`" in result.message, repr(result)
    assert "ambiguous" not in result.message


@pytest.mark.parametrize("implementation, words", [
    (lambda q, k: torch.softmax(k @ q, -1) + 0.1, "the weights are wrong"),
    (lambda q, k: torch.softmax(k @ q, -1).double(), "the weights have dtype torch.float64"),
    (lambda q, k: torch.full((k.shape[0],), float("nan")), "the weights contain NaN"),
    (lambda q, k: torch.softmax(k @ q, -1)[None], "the weights have shape"),
])
def test_verbs_agree_with_plural_names(implementation, words):
    assert words in check_attention_weights(implementation).message


def test_verbs_agree_with_singular_names():
    assert "the loss has dtype torch.float64" in check_cross_entropy(
        lambda logits, t: F.cross_entropy(logits.double(), t)).message
    assert "the output contains NaN" in check_softmax(lambda x: torch.full_like(x, float("nan"))).message


# --- the registry: one declaration per exercise -------------------------------------------------------------------

def test_registry_entries_carry_name_lesson_check_and_reference():
    for lesson, names in checks.EXERCISES.items():
        for name in names:
            entry = registry.get(name)
            assert (entry.name, entry.lesson) == (name, lesson)
            assert entry.check.exercise == name and callable(entry.reference)
            assert getattr(checks, f"check_{name}") is entry.check and f"check_{name}" in checks.__all__
    assert registry.get("check_softmax") is registry.get("softmax")
    with pytest.raises(KeyError, match="no exercise 'nope'"):
        registry.get("nope")


def test_a_check_declared_anywhere_shows_up_in_exercises_without_other_edits():
    def fake_reference(x):
        return x + 1

    try:
        @checks.check("fake_exercise", lesson="99_fake_lesson", reference=fake_reference)
        def check_fake_exercise(candidate):
            got = candidate(torch.ones(2))
            if not torch.equal(got, torch.full((2,), 2.0)):
                raise Exception("wrong")
            return "adds one"

        assert checks.EXERCISES["99_fake_lesson"] == ("fake_exercise",)
        assert list(checks.EXERCISES)[-1] == "99_fake_lesson"
        assert checks.check_fake_exercise is check_fake_exercise
        assert registry.references()["fake_exercise"] is fake_reference
        assert "fake_exercise" in checks.time_checks()
    finally:
        registry.unregister("fake_exercise")
    assert "99_fake_lesson" not in checks.EXERCISES


def test_a_new_lesson_module_is_discovered_without_editing_the_package(tmp_path, monkeypatch):
    package = tmp_path / "more_lessons"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "lesson_07.py").write_text(
        "from course_lib.checks import check\n\n"
        "def _double(x):\n    return 2 * x\n\n"
        "@check('double', lesson='07_doubling', reference=_double)\n"
        "def check_double(candidate):\n    return 'doubles'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    import sys
    try:
        assert registry.discover(importlib.import_module("more_lessons")) == ["lesson_07"]
        assert checks.EXERCISES["07_doubling"] == ("double",)
        assert checks.check_double(lambda x: x).passed
    finally:
        registry.unregister("double")
        for name in ("more_lessons", "more_lessons.lesson_07"):
            sys.modules.pop(name, None)


def test_the_package_lists_no_lesson_by_hand():
    import inspect
    import pkgutil
    source = inspect.getsource(checks)
    lessons = [info.name for info in pkgutil.iter_modules(checks.__path__) if info.name.startswith("lesson")]
    assert len(lessons) == len(checks.EXERCISES)
    for module in lessons:
        assert f".{module}" not in source and module not in source
    assert not hasattr(checks, "REFERENCE_SOLUTIONS")


def test_no_private_name_is_imported_across_modules():
    import ast
    import pathlib
    for path in pathlib.Path(checks.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                private = [alias.name for alias in node.names if alias.name.startswith("_")
                           and alias.name != "__future__"]
                assert not private, f"{path.name} imports {private} from {node.module}"
    from course_lib.checks.kit import unpack_pair  # the shared helper is public now
    assert callable(unpack_pair)


# --- fresh inputs on every call: a recording cannot pass ----------------------------------------------------------

def _key(value):
    if isinstance(value, torch.Tensor):
        return (tuple(value.shape), tuple(value.detach().reshape(-1).tolist()))
    return value


def _shape(value):
    return tuple(value.shape) if isinstance(value, torch.Tensor) else value


class Replay:
    """A cheat: record the right outputs once, then answer by looking the input up (exactly, or by shape)."""

    def __init__(self, reference):
        self.reference, self.by_input, self.by_shape, self.recording = reference, {}, {}, True

    def __call__(self, *args):
        key, shape = tuple(map(_key, args)), tuple(map(_shape, args))
        if self.recording:
            out = self.reference(*args)
            self.by_input[key] = out
            self.by_shape.setdefault(shape, out)
            return out
        if key in self.by_input:
            return self.by_input[key]
        if shape in self.by_shape:
            return self.by_shape[shape]
        return next(iter(self.by_input.values()))


@pytest.mark.parametrize("name", REPLAYABLE)
def test_replaying_recorded_outputs_fails_the_next_call(name, answers_in_this_process):
    # In this process, where an answer can carry a recording from one call to the next (in its own process,
    # what it records is gone after each check: test_a_recording_stays_in_the_answers_process).
    entry = registry.get(name)
    cheat = Replay(entry.reference)
    assert entry.check(cheat, seed=1).passed
    cheat.recording = False
    if name != "cross_entropy":  # a replayed loss is cut off from the new logits: it never passes
        assert entry.check(cheat, seed=1).passed  # what fixed inputs allowed
    result = entry.check(cheat, seed=2)
    assert not result.passed and "seed 2" in result.message, repr(result)


@pytest.mark.parametrize("name, label, make_cheat, seed", [
    pytest.param(*case, id=f"{case[0]}-{case[1]}") for case in CHEATS])
def test_answers_learnt_by_heart_fail(name, label, make_cheat, seed):
    assert not registry.get(name).check(make_cheat(), seed=seed).passed


def test_failures_name_sizes_and_seed_and_the_seed_repeats_them():
    result = check_softmax(lambda x: torch.softmax(x, dim=0), seed=4321)
    assert re.search(r"\(a \(\d+, \d+\) matrix, one softmax per row\); seed 4321$", result.message), repr(result)
    assert repr(check_softmax(lambda x: torch.softmax(x, dim=0), seed=4321)) == repr(result)


@pytest.mark.parametrize("name", ["softmax", "causal_mask", "sinusoidal_positions", "scaled_dot_product_attention"])
def test_inputs_change_between_calls(name, answers_in_this_process):
    entry = registry.get(name)
    seen = []

    def spy(*args):
        seen.append(tuple(_key(a) for a in args))
        return entry.reference(*args)

    entry.check(spy)
    first = list(seen)
    seen.clear()
    entry.check(spy)
    assert first != seen


# --- time limit ------------------------------------------------------------------------------------------------------

def loops_forever(*args):
    while True:
        pass


def loops_forever_and_swallows_exceptions(*args):
    while True:
        try:
            while True:
                pass
        except Exception:
            pass


@pytest.mark.parametrize("implementation", [loops_forever, loops_forever_and_swallows_exceptions])
def test_an_endless_loop_is_stopped_and_explained(monkeypatch, implementation):
    import signal
    import time
    monkeypatch.setattr(checks.settings, "time_limit", 0.3)

    def mine(signum, frame):
        raise AssertionError("the previous handler must not be called by the check")

    previous = signal.signal(signal.SIGALRM, mine)
    try:
        start = time.monotonic()
        result = check_softmax(implementation)
        assert time.monotonic() - start < 5
        assert signal.getsignal(signal.SIGALRM) is mine
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert not result.passed and "took longer than 0.3 s" in result.message
    assert "may loop forever" in result.message and "\n" not in result.message, repr(result)


def test_every_check_has_a_time_limit_of_a_few_seconds():
    for name in NAMES:
        assert 1 <= registry.get(name).time_limit <= 10


def test_a_checks_own_time_limit_applies_without_the_setting():
    import time

    try:
        @checks.check("slow_fake", lesson="99_fake_lesson", reference=lambda: None, time_limit=0.2)
        def check_slow_fake(candidate):
            candidate()
            return "fine"

        start = time.monotonic()
        result = check_slow_fake(loops_forever)
        assert time.monotonic() - start < 3
        assert "took longer than 0.2 s" in result.message
    finally:
        registry.unregister("slow_fake")


def test_a_warm_up_runs_once_outside_the_time_limit():
    import time

    warm_ups = []
    try:
        @checks.check("warm_fake", lesson="99_fake_lesson", reference=lambda: None, time_limit=0.2,
                      warm_up=lambda: (warm_ups.append(1), time.sleep(0.4)))
        def check_warm_fake(candidate):
            candidate()
            return "fine"

        assert check_warm_fake(lambda: None).passed and check_warm_fake(lambda: None).passed
        assert warm_ups == [1]
    finally:
        registry.unregister("warm_fake")


def test_a_pending_alarm_and_its_handler_survive_a_check():
    import signal
    rang = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: rang.append(signum))
    try:
        signal.setitimer(signal.ITIMER_REAL, 30)
        assert check_softmax(_right("softmax")).passed
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < remaining <= 30
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_check_in_a_worker_thread_runs_without_a_limit():
    import threading
    results = []
    thread = threading.Thread(target=lambda: results.append(check_softmax(_right("softmax"))))
    thread.start()
    thread.join(30)
    assert results and results[0].passed, results


# --- a learner's mistake gets a learner's diagnosis -----------------------------------------------------------------

def _meta_like(value):
    return torch.empty_like(value, device="meta")


@pytest.mark.parametrize("name, implementation", [
    ("softmax", lambda x: _meta_like(x)),
    ("cross_entropy", lambda logits, t: torch.empty((), device="meta")),
    ("scaled_dot_product_attention", lambda q, k, v, mask=None: tuple(
        _meta_like(t) for t in course_lib.scaled_dot_product_attention(q, k, v, mask))),
    ("causal_mask", lambda T: torch.ones(T, T, dtype=torch.bool, device="meta").tril()),
    ("is_permutation_equivariant", lambda f, x, perm: torch.tensor(True, device="meta")),
])
def test_meta_tensors_are_explained(name, implementation):
    result = registry.get(name).check(implementation)
    assert not result.passed and "device 'meta'" in result.message, repr(result)


def sgd_moves_to_meta(params, lr):
    for p in params:
        p.data = torch.empty_like(p, device="meta")
        p.grad = None


def step_moves_model_to_meta(model, loss_fn, optimizer, inputs, targets):
    loss = _right("training_step")(model, loss_fn, optimizer, inputs, targets)
    model.to("meta")
    return loss


def test_parameters_moved_to_meta_are_explained():
    result = check_training_step(step_moves_model_to_meta)
    assert not result.passed and "device 'meta'" in result.message, repr(result)
    result = check_sgd_step(sgd_moves_to_meta)  # PyTorch refuses this one itself: its error is the learner's
    assert not result.passed and "raised RuntimeError" in result.message, repr(result)


@pytest.mark.parametrize("name", NAMES)
def test_right_answers_pass_under_no_grad(name):
    entry = registry.get(name)
    right = CASES[name][0][0][1]
    with torch.no_grad():
        assert entry.check(right).passed
        assert entry.check(entry.reference).passed
    with torch.inference_mode():
        assert entry.check(right).passed


def test_right_answers_pass_with_gradients_switched_off_globally():
    torch.set_grad_enabled(False)
    try:
        for name in ("cross_entropy", "sgd_step", "training_step"):
            result = registry.get(name).check(CASES[name][0][0][1])
            assert result.passed, repr(result)
    finally:
        torch.set_grad_enabled(True)


def test_a_learners_default_dtype_and_device_do_not_change_the_verdict():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert check_sinusoidal_positions(_right("sinusoidal_positions")).passed
    finally:
        torch.set_default_dtype(previous)
    torch.set_default_device("meta")
    try:
        assert check_causal_mask(_right("causal_mask")).passed
    finally:
        torch.set_default_device(None)


def _exits(*args):
    raise SystemExit(1)


def _odd_answers():
    import numpy as np
    return [
        ("a list", lambda *a: [1.0, 2.0]),
        ("a NumPy array", lambda *a: np.zeros(3)),
        ("an int", lambda *a: 3),
        ("a complex tensor", lambda *a: torch.zeros(3, dtype=torch.complex64)),
        ("a float16 tensor", lambda *a: torch.zeros(3, dtype=torch.float16)),
        ("a meta tensor", lambda *a: torch.empty(3, device="meta")),
        ("a generator", lambda *a: (i for i in range(3))),
        ("a sparse tensor", lambda *a: torch.zeros(3, 3).to_sparse()),
        ("SystemExit", _exits),
    ]


def _as_module(answer):
    class Odd(course_lib.MultiHeadAttention):
        def forward(self, x, mask=None):
            return answer(x, mask)
    return Odd


@pytest.mark.parametrize("name", NAMES)
def test_odd_answers_get_a_diagnosis_never_a_check_failure(name):
    _odd_answers_get_a_diagnosis(name)


def _odd_answers_get_a_diagnosis(name):
    check = registry.get(name).check
    for kind, answer in _odd_answers():
        candidate = _as_module(answer) if name == "multi_head_attention" else answer
        result = check(candidate)
        assert not result.passed, (kind, repr(result))
        assert "the check itself failed" not in result.message, (kind, repr(result))
        assert "\n" not in result.message and _displays_well(result)
        if kind == "SystemExit":
            assert "sys.exit()" in result.message, repr(result)
    if name == "multi_head_attention":  # and the class itself returning something odd
        for kind, answer in _odd_answers():
            result = check(lambda d_model, n_heads, answer=answer: answer())
            assert not result.passed and "the check itself failed" not in result.message, (kind, repr(result))


@pytest.mark.parametrize("answer, words", [
    (lambda x: x.softmax(-1).numpy(), "a NumPy array"),
    (lambda x: x.shape[-1], "an int"),
    (lambda x: (v for v in x.softmax(-1)), "a generator"),
    (lambda x: x.softmax(-1).to(torch.complex64), "complex"),
])
def test_odd_answer_messages_read_well(answer, words):
    result = check_softmax(answer)
    assert words in result.message and "a int" not in result.message, repr(result)


# --- delegation: calling the built-in passes, and says so -----------------------------------------------------------

def _delegation_params():
    return [pytest.param(name, *case, id=f"{name}-{case[0]}") for name, cases in DELEGATING.items() for case in cases]


def test_every_exercise_with_builtins_has_a_delegating_case():
    declared = {name for name in NAMES if registry.get(name).builtins}
    assert declared == set(DELEGATING)
    assert set(DELEGATING) <= set(HAND_BUILT)


@pytest.mark.parametrize("name, label, implementation, builtin", _delegation_params())
def test_calling_the_builtin_passes_and_says_so(name, label, implementation, builtin):
    entry = registry.get(name)
    result = entry.check(implementation)
    assert result.passed, repr(result)
    assert f"— you called {'the built-in ' if not builtin.startswith('course_lib') else ''}{builtin}" \
        in result.message, repr(result)
    assert entry.pieces and f"try it with the pieces ({entry.pieces})" in result.message
    assert "\n" not in result.message and _displays_well(result)
    assert any(line.startswith("  — you called") for line in repr(result).splitlines()), repr(result)


@pytest.mark.parametrize("name", sorted(HAND_BUILT))
def test_a_hand_built_answer_gets_no_note(name):
    hand_built = HAND_BUILT[name]
    implementation = dict(CASES[name][0])[hand_built]
    result = registry.get(name).check(implementation)
    assert result.passed and "you called" not in result.message, repr(result)


def test_a_builtin_imported_by_name_into_the_learners_namespace_is_noticed_and_restored():
    namespace = {}
    exec("from torch.nn.functional import softmax as sm\n"
         "def my_softmax(x):\n    return sm(x, dim=-1)\n", namespace)
    result = check_softmax(namespace["my_softmax"])
    assert result.passed and "you called the built-in F.softmax" in result.message, repr(result)
    assert namespace["sm"] is F.softmax


def test_builtins_are_restored_after_every_check_even_a_failing_one():
    originals = (torch.softmax, F.softmax, torch.special.softmax, F.scaled_dot_product_attention,
                 course_lib.models.attention.causal_mask, course_lib.causal_mask, torch.optim.SGD.step,
                 course_lib.MultiHeadAttention.forward, nn.MultiheadAttention.forward)
    assert "softmax" not in vars(torch.Tensor)

    def raises(*args):
        raise ValueError("no")

    for name in NAMES:
        registry.get(name).check(raises)
        registry.get(name).check(CASES[name][0][0][1])
    assert (torch.softmax, F.softmax, torch.special.softmax, F.scaled_dot_product_attention,
            course_lib.models.attention.causal_mask, course_lib.causal_mask, torch.optim.SGD.step,
            course_lib.MultiHeadAttention.forward, nn.MultiheadAttention.forward) == originals
    assert "softmax" not in vars(torch.Tensor)
