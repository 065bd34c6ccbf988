"""The stored outputs of the notebooks that train hold at 1, 2 and 4 threads.

A different thread count adds floats in a different order, so training takes a different path. The main
nbval run executes every notebook at the course's thread count (one, see ``course_lib.threads``); this
file re-runs the notebooks that train under strict nbval with ``OMP_NUM_THREADS`` set to each other count.
The quick ones run in every test run. The slow ones (those that train the reference model, or load it)
would take minutes more: they run with ``--slow-notebooks``::

    .venv/bin/python -m pytest tests/test_thread_counts.py --slow-notebooks -n 0

and ``python -m course_lib record reference-seeds`` trains the reference for 10 seeds at each thread count.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.integration  # left out of the fast loop (README, "Contributing")

ROOT = Path(__file__).resolve().parent.parent

# The notebooks whose checked outputs depend on a training run.
TRAINING_NOTEBOOKS = ("notebooks/02_learning.ipynb", "notebooks/08_training_a_language_model.ipynb",
                      "notebooks/09_what_heads_learn.ipynb", "notebooks/10_speed.ipynb",
                      "notebooks/11_vision_transformer.ipynb", "notebooks/12_representations.ipynb",
                      "notebooks/13_your_own_gpt.ipynb", "notebooks/14_heads_in_the_wild.ipynb",
                      "notebooks/extras/attention_explorer.ipynb",
                      # solutions that train (the experiment exercises retrain a small model with the learner's change)
                      "solutions/02_learning.ipynb", "solutions/07_transformer_block.ipynb",
                      "solutions/08_training_a_language_model.ipynb", "solutions/09_what_heads_learn.ipynb",
                      "solutions/10_speed.ipynb", "solutions/11_vision_transformer.ipynb",
                      "solutions/12_representations.ipynb", "solutions/13_your_own_gpt.ipynb",
                      "solutions/14_heads_in_the_wild.ipynb")
# Lesson 08 trains the reference model and its baselines; 09, 12 and the explorer load the model, or train
# it; 10 and 11 train small models for most of their minute: re-running them at two more thread counts
# would take the test command past its budget, so they run with --slow-notebooks only.
SLOW_TRAINING_NOTEBOOKS = ("notebooks/08_training_a_language_model.ipynb", "notebooks/09_what_heads_learn.ipynb",
                           "notebooks/10_speed.ipynb", "notebooks/11_vision_transformer.ipynb",
                           "notebooks/12_representations.ipynb", "notebooks/13_your_own_gpt.ipynb",
                           "notebooks/14_heads_in_the_wild.ipynb", "notebooks/extras/attention_explorer.ipynb",
                           # the experiments are recorded at 1, 2 and 4 threads by `record exercise-runs`
                           "solutions/02_learning.ipynb", "solutions/07_transformer_block.ipynb",
                           "solutions/08_training_a_language_model.ipynb", "solutions/09_what_heads_learn.ipynb",
                           "solutions/10_speed.ipynb", "solutions/11_vision_transformer.ipynb",
                           "solutions/12_representations.ipynb", "solutions/13_your_own_gpt.ipynb",
                           "solutions/14_heads_in_the_wild.ipynb")


def notebooks_at_threads(notebooks, threads=(1, 2, 4), timeout: int = 900) -> dict:
    """Run ``notebooks`` under strict nbval (the test command's settings, in one process each) with
    ``OMP_NUM_THREADS`` set to each count, all counts at once (a result does not depend on how busy the
    machine is, only its time): ``{threads: {"passed": bool, "output": the run's last lines}}``."""
    runs = {}
    for count in threads:
        env = {key: value for key, value in os.environ.items() if key != "COURSE_LIB_THREADS"}
        env["OMP_NUM_THREADS"] = str(count)
        log = tempfile.TemporaryFile(mode="w+")
        runs[count] = (subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-n", "0", *notebooks],
                                        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True), log)
    results = {}
    for count, (process, log) in runs.items():
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        log.seek(0)
        results[count] = {"passed": code == 0, "output": log.read()[-3000:]}
        log.close()
    return results


def test_the_list_names_every_notebook_that_trains():
    words = ("fit(", "train_reference_model(", "load_reference_model(", ".step()", "_experiment(", "train_text_model(",
             "plain_model(", "repeats_model_trained(")
    found = [*sorted((ROOT / "notebooks").glob("**/*.ipynb")), *sorted((ROOT / "solutions").glob("*.ipynb"))]
    trains = [p.relative_to(ROOT).as_posix() for p in found
              if ".ipynb_checkpoints" not in p.parts and any(word in p.read_text() for word in words)]
    assert sorted(trains) == sorted(TRAINING_NOTEBOOKS)
    assert set(SLOW_TRAINING_NOTEBOOKS) <= set(TRAINING_NOTEBOOKS)


def _other_counts() -> tuple[int, ...]:
    return tuple(count for count in (1, 2, 4) if count != torch.get_num_threads())  # the main run did the rest


def _assert_all_pass(results: dict, counts: tuple[int, ...]) -> None:
    assert list(results) == list(counts)
    for count, result in results.items():
        assert result["passed"], f"strict nbval at {count} thread(s):\n{result['output']}"


def test_notebooks_that_train_pass_strict_nbval_at_every_other_thread_count():
    quick = [name for name in TRAINING_NOTEBOOKS if name not in SLOW_TRAINING_NOTEBOOKS]
    _assert_all_pass(notebooks_at_threads(quick, threads=_other_counts()), _other_counts())


@pytest.mark.slow_notebooks
def test_slow_notebooks_that_train_pass_strict_nbval_at_every_other_thread_count():
    _assert_all_pass(notebooks_at_threads(SLOW_TRAINING_NOTEBOOKS, threads=_other_counts()), _other_counts())
