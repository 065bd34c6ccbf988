"""course_lib.experiments.speed and the recurrent model's additions: the counts lesson 10 prints, the matched models, the
timing helpers' shapes and errors. No test asserts a timing: those belong to ``python -m course_lib bench``."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from course_lib.models.language_model import TransformerLM
from course_lib.models.recurrent import GRULanguageModel
from course_lib.experiments.speed import (attention_weight_bytes, dependency_graph, earliest_rounds, format_speed_figures,
                              next_token_seconds,
                              longest_chain, matched_models, multiply_adds, parameter_count, seconds, time_models)


@pytest.mark.parametrize("T, n_layers", [(1, 1), (1, 3), (5, 1), (7, 2), (16, 4), (40, 3)])
def test_the_chain_of_a_gru_is_T_plus_layers_minus_one_and_of_a_transformer_its_layers(T, n_layers):
    assert longest_chain(dependency_graph("rnn", T, n_layers)) == T + n_layers - 1
    assert longest_chain(dependency_graph("transformer", T, n_layers)) == n_layers


def test_the_graphs_say_who_waits_for_whom():
    rnn = dependency_graph("rnn", 3, 2)
    assert rnn[(1, 0)] == [] and rnn[(1, 2)] == [(1, 1)] and sorted(rnn[(2, 1)]) == [(1, 1), (2, 0)]
    transformer = dependency_graph("transformer", 3, 2)
    assert transformer[(1, 2)] == [] and transformer[(2, 2)] == [(1, 0), (1, 1), (1, 2)]
    assert transformer[(2, 0)] == [(1, 0)]  # causal: position 0 sees only itself
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
    assert rounds == {(layer, t): layer + t for layer in (1, 2) for t in range(4)}
    transformer = earliest_rounds(dependency_graph("transformer", 4, 2))
    assert transformer == {(layer, t): layer for layer in (1, 2) for t in range(4)}


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
