"""The experiments behind the change-retrain-measure exercises (07-2, 10-2, 11-1, 12-1): the record of seeds 0-9 at
1, 2 and 4 threads meets every threshold the notebooks print, and the experiments refuse bad answers clearly."""

from __future__ import annotations

import pytest
import torch

from course_lib.experiments import changes
from course_lib.experiments.changes import (PATCH_SHUFFLE_THRESHOLDS, REACH_THRESHOLDS, RESIDUAL_THRESHOLDS,
                                            UNSEEN_DIGITS_THRESHOLDS, agrees_with_record, recorded_exercise_runs)


@pytest.fixture(scope="module")
def runs():
    return recorded_exercise_runs()  # a ValueError if recorded with other settings or thresholds


def test_the_record_holds_seeds_0_to_9_at_1_2_and_4_threads(runs):
    assert sorted((r["seed"], r["threads"]) for r in runs) == [(s, t) for s in range(10) for t in (1, 2, 4)]


def test_every_recorded_run_meets_every_threshold_the_notebooks_print(runs):
    """Recomputed from the recorded figures, not read from their "holds" flags."""
    r_t, reach_t, shuffle_t, unseen_t = RESIDUAL_THRESHOLDS, REACH_THRESHOLDS, PATCH_SHUFFLE_THRESHOLDS, \
        UNSEEN_DIGITS_THRESHOLDS
    for run in runs:
        where = (run["seed"], run["threads"])
        res = run["residuals"]
        assert res["with_residuals"] < r_t["max_with"], where
        assert abs(res["yours"] - res["baseline"]) < r_t["baseline_band"], where
        assert res["yours"] - res["with_residuals"] > r_t["min_gap"], where
        models = run["reach"]["models"]
        assert models["causal, 2 layers"]["accuracy"] >= reach_t["min_direct"], where
        assert models["window 9, 1 layer"]["accuracy"] <= reach_t["max_unreached"], where
        assert models["window 9, 1 layer"]["reached"] == 0.0 and models["window 9, 2 layers"]["reached"] == 1.0, where
        shuffle = run["patch_shuffle"]
        assert shuffle["vit"]["shuffled"] >= shuffle_t["min_vit_shuffled"], where
        assert shuffle["mlp"]["shuffled"] <= shuffle_t["max_mlp_shuffled"], where
        assert shuffle["vit"]["shuffled"] - shuffle["mlp"]["shuffled"] >= shuffle_t["min_gap"], where
        assert shuffle["mlp"]["as_they_are"] >= shuffle_t["min_mlp_as_they_are"], where
        unseen = run["unseen_digits"]
        assert unseen["trained_on_all"] >= unseen_t["min_all"], where
        assert unseen["trained_on_all"] - unseen["trained_on_0_to_4"] >= unseen_t["min_drop"], where
        assert unseen["trained_on_0_to_4"] < unseen["pixels"], where
        assert run["holds"], where


def test_the_relayed_window_is_left_unchecked_because_it_varies(runs):
    """Exercise 10-2 says the 2-layer window's recall ranges from about 0.2 to 1.0 across the record."""
    relay = [r["reach"]["models"]["window 9, 2 layers"]["accuracy"] for r in runs]
    assert min(relay) < 0.5 and max(relay) == 1.0


def test_a_run_at_an_unrecorded_thread_count_agrees_with_the_record(runs):
    unrecorded = {"seed": 0, "threads": 3, "with_residuals": 0.0, "yours": 0.0, "baseline": 0.0, "holds": False}
    assert agrees_with_record("residuals", unrecorded)
    recorded = runs[0]
    stale = {"seed": recorded["seed"], "threads": recorded["threads"], **recorded["residuals"]}
    stale["yours"] += 0.5
    assert not agrees_with_record("residuals", stale)


@pytest.mark.parametrize("experiment", [changes.residual_experiment, changes.reach_experiment,
                                        changes.patch_shuffle_experiment, changes.unseen_digits_experiment])
def test_an_answer_that_is_not_a_function_gets_a_clear_error(experiment):
    with pytest.raises(TypeError, match="must be your function"):
        experiment(None)


def test_reach_answers_of_the_wrong_shape_are_refused_before_training():
    with pytest.raises(ValueError, match=r"must return a \(16, 16\) tensor"):
        changes.reach_experiment(lambda mask, n_layers: mask[:4, :4])


def test_keep_digits_answers_that_are_not_a_pair_are_refused_before_training():
    with pytest.raises(TypeError, match="the pair"):
        changes.unseen_digits_experiment(lambda images, labels, digits: labels)


def test_the_window_mask_lets_each_position_see_itself_and_the_window_before_it():
    mask = changes.window_mask(5, 2)
    assert mask.tolist() == torch.tensor([[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 1, 1, 0],
                                          [0, 0, 0, 1, 1]], dtype=torch.bool).tolist()
