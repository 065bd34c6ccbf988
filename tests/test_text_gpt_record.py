"""Lesson 13's record (``record text-gpt``): seeds 0-9 at 1, 2 and 4 threads meet every threshold lesson 13 and exercise
13-4 print, recomputed from the recorded figures; the solution's "this run is the record's" line can fail."""

from __future__ import annotations

import pytest

from course_lib.experiments.text_model import (CONTEXT_THRESHOLDS, TEXT_GPT_THRESHOLDS, context_agrees_with_record,
                                               recorded_text_gpt)


@pytest.fixture(scope="module")
def runs():
    return recorded_text_gpt()  # a ValueError if recorded with other settings or thresholds


def test_the_record_holds_seeds_0_to_9_at_1_2_and_4_threads(runs):
    assert sorted((r["seed"], r["threads"]) for r in runs) == [(s, t) for s in range(10) for t in (1, 2, 4)]


def test_every_recorded_run_meets_every_threshold_the_notebooks_print(runs):
    t, c = TEXT_GPT_THRESHOLDS, CONTEXT_THRESHOLDS
    for run in runs:
        where = (run["seed"], run["threads"])
        chars, bpe = run["characters"]["bits_per_character"], run["bpe"]["bits_per_character"]
        assert chars <= t["max_char_bits"], where
        assert run["bigram"] - chars >= t["min_gain_over_bigram"], where
        assert chars - bpe >= t["bpe_ahead_by"], where
        assert 3.5 < run["bigram"] < 3.6 and 4.5 < run["unigram"] < 4.6, where  # counts: the same in every run
        short, long = (run["context"]["bits_per_character"][k] for k in ("8", "64"))
        assert short <= long - c["short_ahead_by"] and long < run["context"]["bigram"], where
        assert run["holds"], where


def test_a_stale_or_unrecorded_context_run_is_told_apart(runs):
    recorded = runs[0]
    same = {"seed": recorded["seed"], "threads": recorded["threads"], **recorded["context"]}
    assert context_agrees_with_record(same)
    stale = {**same, "bits_per_character": {**same["bits_per_character"], "8": same["bits_per_character"]["8"] + 0.1}}
    assert not context_agrees_with_record(stale)
    assert context_agrees_with_record({**stale, "threads": 3})  # no recorded run at 3 threads: nothing to disagree with
