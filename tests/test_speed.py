"""course_lib.experiments.speed and the recurrent model's additions: the counts lesson 10 prints, the matched models, the
timing helpers' shapes and errors. No test asserts a timing: those belong to ``python -m course_lib bench``."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from course_lib.experiments import recall as recall_lib
from course_lib.models.language_model import TransformerLM
from course_lib.models.recurrent import GRULanguageModel
from course_lib.experiments.speed import (attention_weight_bytes, budget_steps, dependency_graph, earliest_rounds,
                                         format_speed_figures, longest_chain, matched_models, multiply_adds,
                                         next_token_seconds, parameter_count, recall_race, recall_race_misses,
                                         seconds, step_seconds, time_models, train_until)


@pytest.mark.parametrize("T, n_layers", [(1, 1), (1, 3), (5, 1), (7, 2), (16, 4), (40, 3)])
def test_the_chain_of_a_gru_is_T_plus_layers_minus_one_and_of_a_transformer_its_layers(T, n_layers):
    assert longest_chain(dependency_graph("rnn", T, n_layers)) == T + n_layers - 1
    assert longest_chain(dependency_graph("transformer", T, n_layers)) == n_layers


def test_the_graphs_say_who_waits_for_whom():
    rnn = dependency_graph("rnn", 3, 2)
    assert rnn[(0, 0)] == [] and rnn[(0, 2)] == [(0, 1)] and sorted(rnn[(1, 1)]) == [(0, 1), (1, 0)]
    transformer = dependency_graph("transformer", 3, 2)
    assert transformer[(0, 2)] == [] and transformer[(1, 2)] == [(0, 0), (0, 1), (0, 2)]
    assert transformer[(1, 0)] == [(0, 0)]  # causal: position 0 sees only itself
    assert {layer for layer, _ in rnn} == {0, 1}  # layers count from 0, as everywhere in the course
    assert len(rnn) == len(transformer) == 6  # the same steps; only the waiting differs


def test_longest_chain_of_a_long_gru_needs_no_recursion():
    assert longest_chain(dependency_graph("rnn", 5000, 1)) == 5000


def test_longest_chain_on_hand_made_graphs():
    assert longest_chain({}) == 0
    assert longest_chain({"a": []}) == 1
    assert longest_chain({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}) == 3
    with pytest.raises(ValueError, match="cycle"):
        longest_chain({"a": ["b"], "b": ["a"]})
    with pytest.raises(ValueError, match="not a step"):
        longest_chain({"a": ["z"]})
    with pytest.raises(TypeError, match="dict"):
        longest_chain([("a", [])])


@pytest.mark.parametrize("call, error, words", [
    (lambda: dependency_graph("lstm", 4), ValueError, '"rnn" or "transformer"'),
    (lambda: dependency_graph("rnn", 0), ValueError, "T must be an integer >= 1"),
    (lambda: dependency_graph("rnn", 4, 2.0), TypeError, "n_layers must be an integer"),
    (lambda: matched_models(80, d_model=30, n_heads=4), ValueError, "divisible"),
    (lambda: multiply_adds("model", 4), TypeError, "torch.nn.Module"),
    (lambda: parameter_count(3), TypeError, "torch.nn.Module"),
    (lambda: seconds(3), TypeError, "function"),
    (lambda: seconds(lambda: None, repeats=0), ValueError, "repeats"),
    (lambda: time_models({}, [16]), TypeError, "non-empty dict"),
])
def test_public_functions_explain_bad_arguments(call, error, words):
    with pytest.raises(error, match=words):
        call()


def test_matched_models_have_parameter_counts_within_one_percent_and_the_same_vocabulary():
    for d_model, n_layers in ((64, 2), (32, 1), (48, 3)):
        models = matched_models(80, d_model=d_model, n_heads=4, n_layers=n_layers, max_len=128)
        transformer, gru = models["transformer"], models["gru"]
        assert isinstance(transformer, TransformerLM) and isinstance(gru, GRULanguageModel)
        assert len(transformer.blocks) == n_layers and gru.gru.num_layers == 2 * n_layers
        a, b = parameter_count(transformer), parameter_count(gru)
        assert abs(a - b) <= 0.01 * max(a, b)


def test_matched_models_are_seeded_and_leave_the_global_random_state_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    first = matched_models(80, seed=3)
    assert torch.equal(torch.rand(3), expected)
    second = matched_models(80, seed=3)
    for name in first:
        for p, q in zip(first[name].parameters(), second[name].parameters()):
            assert torch.equal(p, q)


@pytest.mark.parametrize("T", [4, 16])
def test_multiply_adds_of_the_matrices_match_pytorchs_flop_counter(T):
    """FlopCounterMode counts the matrix products (2 flops per multiply-add); the attention's own products
    run in a fused kernel it does not see on the CPU, so they are added by formula on our side only."""
    models = matched_models(80, max_len=64)
    ids = torch.randint(0, 80, (1, T))
    for name, model in models.items():
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(ids)
        counted = counter.get_total_flops() // 2
        attention = 2 * T * T * 64 * 2 if name == "transformer" else 0  # 2 layers, d_model 64
        assert multiply_adds(model, T) == counted + attention


def test_the_transformers_arithmetic_grows_like_T_squared_and_the_grus_like_T():
    models = matched_models(80, max_len=1024)
    gru = [multiply_adds(models["gru"], T) for T in (128, 256, 512)]
    transformer = [multiply_adds(models["transformer"], T) for T in (128, 256, 512)]
    assert gru[1] == 2 * gru[0] and gru[2] == 2 * gru[1]
    assert transformer[1] > 2 * transformer[0] and transformer[2] - 2 * transformer[1] == \
        4 * (transformer[1] - 2 * transformer[0])  # the T^2 part quadruples when T doubles


def test_attention_weight_bytes_is_batch_heads_T_squared_layers_floats():
    model = matched_models(80, max_len=256)["transformer"]
    ids = torch.randint(0, 80, (3, 100))
    assert attention_weight_bytes(model, ids) == 3 * 4 * 100 * 100 * 2 * 4
    with pytest.raises(TypeError, match="TransformerLM"):
        attention_weight_bytes(nn.Linear(2, 2), ids)


def test_time_models_returns_seconds_per_sequence_for_every_model_and_length():
    models = matched_models(80, d_model=16, n_heads=2, n_layers=1, max_len=64)
    result = time_models(models, [4, 32], tokens_per_batch=64, repeats=1)
    assert result["lengths"] == [4, 32] and result["batch"] == {4: 16, 32: 2}
    for kind in ("forward", "training"):
        assert set(result[kind]) == {"transformer", "gru"}
        assert all(set(per_length) == {4, 32} for per_length in result[kind].values())
        assert all(s > 0 for per_length in result[kind].values() for s in per_length.values())
    assert all(not m.training for m in models.values())
    assert all(p.grad is None for m in models.values() for p in m.parameters())
    assert time_models(models, [8], tokens_per_batch=4, repeats=1, training=False)["training"] == {}


def test_next_token_seconds_runs_both_models():
    models = matched_models(80, d_model=16, n_heads=2, n_layers=1, max_len=64)
    for model in models.values():
        assert next_token_seconds(model, prompt_length=8, repeats=1) > 0
    with pytest.raises(TypeError, match="GRULanguageModel or a TransformerLM"):
        next_token_seconds(nn.Linear(2, 2), 4)


def test_seconds_runs_warm_up_and_repeats():
    calls = []
    assert seconds(lambda: calls.append(1), repeats=3, warm_up=2) >= 0
    assert len(calls) == 5


# --- the GRU language model's state and generation -----------------------------------------------------------------

def test_the_gru_reads_a_sentence_in_two_pieces_as_at_once():
    torch.manual_seed(0)
    model = GRULanguageModel(30, 16, 2).eval()
    ids = torch.randint(0, 30, (3, 9))
    whole = model(ids)
    first, state = model(ids[:, :4], return_hidden=True)
    second = model(ids[:, 4:], state)
    assert state.shape == (2, 3, 16)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)


def test_gru_generation_equals_rereading_the_whole_text_greedily():
    torch.manual_seed(1)
    model = GRULanguageModel(30, 16, 2).eval()
    prompt = torch.randint(0, 30, (2, 5))
    out = model.generate(prompt, 6)
    assert out.shape == (2, 11) and torch.equal(out[:, :5], prompt)
    ids = prompt
    for _ in range(6):  # the slow way: read everything again for each token
        ids = torch.cat([ids, model(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, ids)
    assert torch.equal(model.generate(prompt, 0), prompt)
    sampled = [model.generate(prompt, 6, temperature=1.0, generator=torch.Generator().manual_seed(4)) for _ in range(2)]
    assert torch.equal(*sampled)


def test_the_gru_explains_a_wrong_state_and_keeps_its_old_api():
    model = GRULanguageModel(30, 16, 2)
    with pytest.raises(ValueError, match=r"\(n_layers, batch, hidden_size\) = \(2, 3, 16\)"):
        model(torch.zeros(3, 4, dtype=torch.long), torch.zeros(1, 3, 16))
    assert model(torch.zeros(3, 4, dtype=torch.long)).shape == (3, 4, 30)
    wide = GRULanguageModel(30, 16, 1, hidden_size=24)
    assert wide(torch.zeros(1, 2, dtype=torch.long)).shape == (1, 2, 30)


def test_format_speed_figures_prints_every_device_and_run():
    figures = {"threads": 1, "tokens_per_batch": 64, "devices": {"cpu": {
        "forward_ms": {"gru": {16: 1.0}, "transformer": {16: 2.0}},
        "training_ms": {"gru": {16: 3.0}, "transformer": {16: 4.0}},
        "transformer_faster_from": None,
        "next_token_ms": {"gru": {16: 0.5, 256: 0.5}, "transformer": {16: 1.5, 256: 3.0}}}},
        "quality": [{"seed": 0, "model": "gru", "same_steps": {"accuracy": 0.9, "steps": 10, "seconds": 1.0},
                     "same_time": {"accuracy": 0.8, "steps": 8, "seconds": 1.0}}]}
    text = format_speed_figures(figures)
    assert "cpu" in text and "faster from T = None" in text and "agreement 0.900 after 10 steps" in text


def test_earliest_rounds_of_a_two_layer_gru_run_along_diagonals():
    rounds = earliest_rounds(dependency_graph("rnn", 4, 2))
    assert rounds == {(layer, t): layer + t + 1 for layer in (0, 1) for t in range(4)}
    transformer = earliest_rounds(dependency_graph("transformer", 4, 2))
    assert transformer == {(layer, t): layer + 1 for layer in (0, 1) for t in range(4)}


# --- lesson 10's quality claim on many seeds: the record the lesson reads ---------------------------------------

def test_the_same_steps_record_covers_ten_seeds_at_three_thread_counts_and_every_run_meets_the_thresholds():
    from course_lib.experiments.speed import SAME_STEPS_THRESHOLDS, recorded_same_steps

    runs = recorded_same_steps()  # raises if recorded with other settings than the lesson's
    assert sorted((r["seed"], r["threads"]) for r in runs) == [(s, t) for s in range(10) for t in (1, 2, 4)]
    t = SAME_STEPS_THRESHOLDS
    for r in runs:  # each run's "holds" agrees with its own figures
        assert r["holds"] == (r["gru"] >= t["min_gru"] and r["transformer"] <= t["max_transformer"]
                              and r["gru"] - r["transformer"] >= t["min_lead"]
                              and r["loss_gru"] < r["loss_transformer"] - t["min_loss_gap"]), r
    assert all(r["holds"] for r in runs)


def test_recording_same_steps_replaces_a_rerun_and_keeps_the_rest(tmp_path):
    from course_lib.experiments.speed import recorded_same_steps
    from course_lib.tools.record import record_same_steps

    path = tmp_path / "record.json"
    run = dict(seed=0, threads=1, gru=0.9, transformer=0.5, loss_gru=1.6, loss_transformer=1.9, holds=True)
    record_same_steps([run, {**run, "seed": 1}], path)
    record_same_steps([{**run, "gru": 0.8}], path)
    assert [(r["seed"], r["gru"]) for r in recorded_same_steps(path)] == [(0, 0.8), (1, 0.9)]
    content = path.read_text().replace('"steps": 300', '"steps": 299')
    path.write_text(content)
    with pytest.raises(ValueError, match="other settings"):
        recorded_same_steps(path)


def test_same_steps_comparison_refuses_a_bad_seed():
    from course_lib.experiments.speed import same_steps_comparison

    with pytest.raises(ValueError, match="seed"):
        same_steps_comparison(-1)


# --- lesson 10's race at equal cost: the recall task, the counted budget, the record ----------------------------

def test_the_recall_task_hides_one_key_in_the_first_quarter_and_asks_for_it_at_the_end():
    from course_lib.experiments.recall import KEY_ZONE, N_FILLERS, N_KEYS, QUERY, recall_task

    for length in (2, 7, 16, 64):
        ids, answers = recall_task(300, length, seed=3)
        assert ids.shape == (300, length) and answers.shape == (300,) and ids.dtype == answers.dtype == torch.long
        is_key = (ids >= N_FILLERS) & (ids < N_FILLERS + N_KEYS)  # (300, length)
        assert torch.equal(is_key.sum(1), torch.ones(300, dtype=torch.long))  # exactly one key per sequence
        positions = is_key.float().argmax(1)  # (300,)
        assert int(positions.max()) < max(1, length // KEY_ZONE)  # far back: in the first quarter
        assert torch.equal(ids[torch.arange(300), positions], answers)  # the answer is that key
        assert (ids[:, -1] == QUERY).all() and (ids[:, :-1] != QUERY).all()
    first, again = recall_task(50, 16, seed=1), recall_task(50, 16, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], recall_task(50, 16, seed=2)[0])


def test_the_answer_depends_on_the_far_back_token_and_on_nothing_after_it():
    from course_lib.experiments.recall import QUERY, recall_accuracy, recall_task

    ids, answers = recall_task(400, 64, seed=0)
    first_quarter, rest = ids[:, :64 // 4], ids[:, 64 // 4:]  # (400, 16), (400, 48)
    assert (rest[:, :-1] < 16).all()  # after the first quarter: fillers only, then the question
    with_question = lambda part: torch.cat([part, torch.full((400, 1), QUERY)], dim=1)  # noqa: E731
    # Looking back perfectly at the first quarter is enough; everything else alone tells nothing.
    assert recall_accuracy(_Oracle(), with_question(first_quarter), answers) == 1.0
    assert recall_accuracy(_Oracle(), rest, answers) == 0.0
    # Change the key, and only the key: the answer a perfect reader gives changes with it.
    position = (ids >= 16).float().argmax(1)  # (400,)
    changed = ids.clone()
    changed[torch.arange(400), position] = 16 + (answers - 16 + 1) % 8
    assert recall_accuracy(_Oracle(), changed, answers) == 0.0


class _Oracle(nn.Module):
    """Scores the key of each sequence highest at every position: what a model that looks back perfectly does."""
    vocab_size, max_len = 25, None

    def forward(self, ids):
        keys = torch.where((ids >= 16) & (ids < 24), ids, 0).amax(1)  # (B,): the one key
        return F.one_hot(keys, 25).float()[:, None, :].expand(-1, ids.shape[1], -1)  # (B, T, 25)


class _Blind(nn.Module):
    """Always scores key 16 highest: a rule that never reads the key."""
    vocab_size, max_len = 25, None

    def forward(self, ids):
        return F.one_hot(torch.full_like(ids, 16), 25).float()  # (B, T, 25)


def test_recall_accuracy_and_loss_reward_reading_the_key_and_baselines_are_what_a_blind_rule_gets():
    from course_lib.experiments.recall import recall_accuracy, recall_baselines, recall_loss, recall_task

    ids, answers = recall_task(400, 32, seed=5)
    assert recall_accuracy(_Oracle(), ids, answers, batch_size=64) == 1.0
    blind = recall_accuracy(_Blind(), ids, answers)
    assert blind == pytest.approx(float((answers == 16).float().mean()))
    baselines = recall_baselines(answers)
    assert baselines["chance"] == 1 / 8 and blind <= baselines["best_fixed_guess"]
    assert baselines["best_fixed_guess"] == max(int((answers == k).sum()) for k in range(16, 24)) / 400
    assert recall_loss(_Oracle(), (ids, answers)) < recall_loss(_Blind(), (ids, answers))


@pytest.mark.parametrize("call, error, words", [
    (lambda: recall_lib.recall_task(0, 16), ValueError, "n must be"),
    (lambda: recall_lib.recall_task(4, 1), ValueError, "length"),
    (lambda: recall_lib.recall_task(4, 16.0), TypeError, "length"),
    (lambda: recall_lib.recall_batches(16, 0), ValueError, "batch_size"),
    (lambda: recall_lib.recall_loss(_Oracle(), torch.zeros(2, 3)),
     TypeError, "tuple"),
    (lambda: recall_lib.recall_accuracy(
        _Oracle(), torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, dtype=torch.long)), ValueError, r"\(batch,\)"),
    (lambda: recall_lib.recall_accuracy(
        "model", torch.zeros(2, 3, dtype=torch.long), torch.zeros(2)), TypeError, "torch.nn.Module"),
    (lambda: recall_lib.recall_baselines(torch.zeros(0)),
     ValueError, "answers"),
    (lambda: budget_steps(0, {"transformer": 1.0}), ValueError, "budget"),
    (lambda: budget_steps(10, {"gru": 1.0}), TypeError, "transformer"),
    (lambda: budget_steps(10, {"transformer": 1.0, "gru": -1.0}), ValueError, "positive"),
    (lambda: step_seconds({}, (), lambda m, b: 0), TypeError, "non-empty dict"),
    (lambda: step_seconds({"a": nn.Linear(1, 1)}, (), "loss"), TypeError, "loss_fn"),
    (lambda: train_until(nn.Linear(1, 1), lambda s: (), lambda m, b: 0, lambda m: 0, max_steps=0, lr=1e-3),
     ValueError, "max_steps"),
    (lambda: train_until("model", lambda s: (), lambda m, b: 0, lambda m: 0, max_steps=1, lr=1e-3),
     TypeError, "Module"),
    (lambda: recall_race(0, length=100), ValueError, "lengths"),
    (lambda: recall_race(-1), ValueError, "seed"),
])
def test_the_race_functions_explain_bad_arguments(call, error, words):
    with pytest.raises(error, match=words):
        call()


def test_the_counted_budget_gives_each_model_the_steps_its_share_of_the_time_buys():
    assert budget_steps(300, {"transformer": 0.01, "gru": 0.03}) == {"transformer": 300, "gru": 100}
    assert budget_steps(300, {"transformer": 0.2, "gru": 0.2}) == {"transformer": 300, "gru": 300}  # no 299
    assert budget_steps(100, {"transformer": 0.01, "gru": 0.035}) == {"transformer": 100, "gru": 28}  # rounded down
    assert budget_steps(10, {"transformer": 0.001, "gru": 1.0}) == {"transformer": 10, "gru": 1}  # at least one
    # a cheaper step buys more steps
    assert budget_steps(50, {"transformer": 0.04, "gru": 0.01}) == {"transformer": 50, "gru": 200}
    assert budget_steps(30, {"gru": 0.02, "transformer": 0.01}, unit="gru") == {"gru": 30, "transformer": 60}
    # Whatever the machine's speed, the shares are the same: only the ratio of the step times counts.
    assert budget_steps(300, {"transformer": 7.0, "gru": 21.0}) == budget_steps(300, {"transformer": 0.7, "gru": 2.1})


def test_step_seconds_times_every_model_and_leaves_them_as_they_were():
    from course_lib.experiments.recall import VOCAB_SIZE, recall_batches, recall_loss

    models = matched_models(VOCAB_SIZE, d_model=16, n_heads=2, n_layers=1, max_len=16)
    before = {name: [p.clone() for p in m.parameters()] for name, m in models.items()}
    seconds_per_step = step_seconds(models, recall_batches(16, 4)(0), recall_loss, repeats=2)
    assert set(seconds_per_step) == {"transformer", "gru"} and all(s > 0 for s in seconds_per_step.values())
    for name, m in models.items():
        assert all(torch.equal(p, q) for p, q in zip(m.parameters(), before[name]))
        assert all(p.grad is None for p in m.parameters())


def test_train_until_stops_at_the_first_score_that_reaches_the_target():
    model = nn.Linear(2, 1)
    scores = iter([0.1, 0.5, 0.95, 0.99])
    batch = (torch.ones(4, 2),)
    result = train_until(model, lambda step: batch, lambda m, b: m(b[0]).pow(2).mean(), lambda m: next(scores),
                         max_steps=100, lr=1e-2, warmup=2, eval_every=5, target=0.9)
    assert result == {"curve": [(5, 0.1), (10, 0.5), (15, 0.95)], "steps": 15, "steps_to_target": 15}
    never = train_until(model, lambda step: batch, lambda m, b: m(b[0]).pow(2).mean(), lambda m: 0.0,
                        max_steps=12, lr=1e-2, eval_every=5, target=0.9)
    assert never["steps_to_target"] is None and [s for s, _ in never["curve"]] == [5, 10, 12] and not model.training


def test_a_short_race_gives_the_transformer_the_budget_and_the_gru_its_share():
    from course_lib.experiments.speed import RECALL_RACE, race_curve, time_ratio

    race = recall_race(seed=0, length=16, budget=12, settings=dict(RECALL_RACE, timing_repeats=1, n_test=20))
    assert race["length"] == 16 and race["steps"]["transformer"] == 12 and 1 <= race["steps"]["gru"]
    # the GRU's share follows the measured step times (rounded in the result, so allow one step either way)
    share = 12 * race["step_ms"]["transformer"] / race["step_ms"]["gru"]
    assert abs(race["steps"]["gru"] - max(1, math.floor(share))) <= 1
    for name in ("transformer", "gru"):
        curve = race_curve(race, name)
        assert curve[-1][0] == race["steps_taken"][name] <= race["steps"][name]
        assert all(0 <= score <= 1 for _, score in curve)
    assert set(race["baselines"]) == {"chance", "best_fixed_guess"}
    if None not in race["cost_to_target"].values():
        assert time_ratio(race) == pytest.approx(race["cost_to_target"]["gru"] / race["cost_to_target"]["transformer"])


def _race(length, steps=(100, 100), step_ratio=3.0, baseline=0.15):
    """A hand-made result of recall_race: steps to the target (transformer, GRU) and the GRU's step price."""
    transformer, gru = steps
    return {"length": length, "gru_step_over_transformer": step_ratio, "baselines": {"chance": 0.125,
            "best_fixed_guess": baseline}, "steps_to_target": {"transformer": transformer, "gru": gru},
            "cost_to_target": {"transformer": transformer, "gru": None if gru is None else gru * step_ratio}}


def test_the_race_thresholds_name_what_a_run_misses():
    from course_lib.experiments.speed import recall_race_misses, time_ratio

    assert recall_race_misses([_race(16, step_ratio=0.9), _race(64, step_ratio=1.1)]) == []
    assert time_ratio(_race(64, steps=(100, 50), step_ratio=4.0)) == 2.0
    assert time_ratio(_race(64, steps=(100, None))) is None
    slow = recall_race_misses([_race(16), _race(64, steps=(100, 40), step_ratio=2.0)])
    assert any("outside 0.5 to 2.0" in m for m in slow) and any("time to the target < 1.0" in m for m in slow)
    cheap = recall_race_misses([_race(16), _race(64, step_ratio=0.8)])
    assert any("GRU step < 1.0" in m for m in cheap) and any("time to the target < 1.0" in m for m in cheap)
    assert any("gru below the target" in m for m in recall_race_misses([_race(16, steps=(60, None)), _race(64)]))
    assert any("never reads the key" in m for m in recall_race_misses([_race(16, baseline=0.3), _race(64)]))
    strict = dict(steps_band=[0.9, 1.1], min_step_ratio=5.0, min_time_ratio=5.0, max_baseline=0.1)
    assert len(recall_race_misses([_race(16), _race(64, steps=(100, 150))], strict)) == 5


def test_the_recall_race_record_covers_ten_seeds_at_three_thread_counts_and_every_run_meets_the_thresholds():
    from course_lib.experiments.speed import RECALL_RACE, recall_race_misses, recorded_recall_race

    runs = recorded_recall_race()  # raises if recorded with other settings or thresholds than the lesson's
    assert sorted((r["seed"], r["threads"]) for r in runs) == [(s, t) for s in range(10) for t in (1, 2, 4)]
    for r in runs:
        assert [race["length"] for race in r["races"]] == RECALL_RACE["lengths"]
        assert recall_race_misses(r["races"]) == r["missed"] == [] and r["holds"], (r["seed"], r["threads"])
        for race in r["races"]:  # the counted budget: the GRU got what its share of the time bought
            share = race["budget"] * race["step_ms"]["transformer"] / race["step_ms"]["gru"]
            assert race["steps"]["transformer"] == race["budget"] and abs(race["steps"]["gru"] - share) <= 1


def test_recording_the_race_replaces_a_rerun_keeps_the_rest_and_refuses_other_settings(tmp_path):
    from course_lib.experiments.speed import recorded_recall_race
    from course_lib.tools.record import record_recall_race

    path = tmp_path / "race.json"
    run = {"seed": 0, "threads": 1, "races": [], "missed": [], "holds": True}
    record_recall_race([run, {**run, "seed": 1}], path)
    record_recall_race([{**run, "holds": False}], path)
    assert [(r["seed"], r["holds"]) for r in recorded_recall_race(path)] == [(0, False), (1, True)]
    path.write_text(path.read_text().replace('"target": 0.9', '"target": 0.8'))
    with pytest.raises(ValueError, match="other settings"):
        recorded_recall_race(path)


def test_the_record_command_runs_the_race_for_every_seed_and_thread_count(monkeypatch, tmp_path, capsys):
    from course_lib.tools import record
    from course_lib.tools.cli import main as cli_main

    def races(seed=0):
        short, long = _race(16, step_ratio=1.2), _race(64, step_ratio=0.8 if seed == 1 else 3.0)
        missed = recall_race_misses([short, long])
        return {"seed": seed, "threads": torch.get_num_threads(), "races": [short, long], "missed": missed,
                "holds": not missed}

    monkeypatch.setattr(record, "recall_races", races)
    monkeypatch.setattr(record, "RECORDED_RECALL_RACE", tmp_path / "race.json")
    assert cli_main(["record", "recall-race", "--seeds", "1", "--thread-counts", "1,2", "--dry-run"]) == 0
    assert not (tmp_path / "race.json").exists() and "every run met its targets" in capsys.readouterr().out
    assert cli_main(["record", "recall-race", "--seeds", "2", "--thread-counts", "1"]) == 1  # seed 1 misses
    out = capsys.readouterr().out
    assert "1 of 2 runs" in out and "missed: GRU step < 1.0" in out
    saved = json.loads((tmp_path / "race.json").read_text())
    assert saved["command"] == "python -m course_lib record recall-race" and len(saved["runs"]) == 2
