"""The stored outputs of the notebooks that train hold at 1, 2 and 4 threads.

A different thread count adds floats in a different order, so training takes a different path. The main
nbval run executes every notebook at the course's thread count (one, see ``course_lib.threads``); this
test re-runs the quick notebooks that train under strict nbval with ``OMP_NUM_THREADS`` set to each other
count. The slow ones (those that train the reference model, or load it when lesson 08 trained it before)
would take minutes more, so ``python -m course_lib bench --notebooks`` re-runs them, and ``bench --seeds`` trains the reference for
10 seeds at each thread count.
"""

from pathlib import Path

import pytest
import torch

from course_lib.bench import SLOW_TRAINING_NOTEBOOKS, TRAINING_NOTEBOOKS, notebooks_at_threads

ROOT = Path(__file__).resolve().parent.parent


def test_the_list_names_every_notebook_that_trains():
    trains = [p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "notebooks").glob("**/*.ipynb"))
              if ".ipynb_checkpoints" not in p.parts
              and any(word in p.read_text() for word in ("fit(", "train_reference_model(", "load_reference_model(", ".step()"))]
    assert sorted(trains) == sorted(TRAINING_NOTEBOOKS)
    assert set(SLOW_TRAINING_NOTEBOOKS) <= set(TRAINING_NOTEBOOKS)


def test_notebooks_that_train_pass_strict_nbval_at_every_other_thread_count():
    others = tuple(count for count in (1, 2, 4) if count != torch.get_num_threads())  # the main run did the rest
    quick = [name for name in TRAINING_NOTEBOOKS if name not in SLOW_TRAINING_NOTEBOOKS]
    results = notebooks_at_threads(quick, threads=others)
    assert list(results) == list(others)
    for count, result in results.items():
        assert result["passed"], f"strict nbval at {count} thread(s):\n{result['output']}"
