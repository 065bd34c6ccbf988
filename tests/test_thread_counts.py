"""The stored outputs of the notebooks that train hold at 1, 2 and 4 threads.

A different thread count adds floats in a different order, so training takes a different path. The main
nbval run executes every notebook at the course's thread count (one, see ``course_lib.threads``); this
test re-runs the quick notebooks that train under strict nbval with ``OMP_NUM_THREADS`` set to each other
count. The slow one (the explorer, which trains the reference model) would take two minutes more, so
``python -m course_lib bench --notebooks`` re-runs it, and ``bench --seeds`` trains the reference for
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
              and any(word in p.read_text() for word in ("fit(", "train_reference_model(", ".step()"))]
    assert sorted(trains) == sorted(TRAINING_NOTEBOOKS)
    assert set(SLOW_TRAINING_NOTEBOOKS) <= set(TRAINING_NOTEBOOKS)


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_notebooks_that_train_pass_strict_nbval_at(threads):
    if threads == torch.get_num_threads():
        pytest.skip(f"the main nbval run of this test command already ran them at {threads} thread(s)")
    quick = [name for name in TRAINING_NOTEBOOKS if name not in SLOW_TRAINING_NOTEBOOKS]
    result = notebooks_at_threads(quick, threads=(threads,))[threads]
    assert result["passed"], f"strict nbval at {threads} thread(s):\n{result['output']}"
