"""The reference model's cache: lesson 08 trains and saves, lesson 09 and the explorer load the very same
model; anything that would change the result (seed, configuration, thread count, course_lib's source) is a
different entry; a broken or unwritable cache only means training again."""

from __future__ import annotations

import threading

import pytest
import torch

from course_lib.experiments import reference
from course_lib.experiments.reference import cache_path, load_reference_model, train_reference_model
from course_lib.tools.record import record_seed_matrix

QUICK = dict(steps=3, n_train=300, n_test=40)  # a few steps: the cache is the point, not the accuracy


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_LIB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_loaded_model_is_the_trained_one(cache):
    trained = train_reference_model(seed=3, progress=False, **QUICK)
    assert not trained.from_cache and cache_path(3, trained.config).exists()
    loaded = load_reference_model(seed=3, progress=False, **QUICK)
    assert loaded.from_cache
    for name, tensor in trained.model.state_dict().items():
        assert torch.equal(tensor, loaded.model.state_dict()[name]), name
    for name, tensor in trained.initial_state.items():
        assert torch.equal(tensor, loaded.initial_state[name]), name
    assert loaded.history.losses == trained.history.losses
    assert (loaded.agreement_accuracy, loaded.subject_head, loaded.neighbour_head) == \
        (trained.agreement_accuracy, trained.subject_head, trained.neighbour_head)
    assert [s.tokens for s in loaded.test] == [s.tokens for s in trained.test]


def test_training_changed_the_weights_it_reports_as_initial(cache):
    run = train_reference_model(seed=0, progress=False, **QUICK)
    moved = [name for name, before in run.initial_state.items() if not torch.equal(before, run.model.state_dict()[name])]
    assert moved and set(run.initial_state) == set(run.model.state_dict())


def test_without_a_cached_model_load_trains_and_saves_it(cache):
    run = load_reference_model(seed=1, progress=False, **QUICK)
    assert not run.from_cache and cache_path(1, run.config).exists()
    assert load_reference_model(seed=1, progress=False, **QUICK).from_cache


def test_another_seed_configuration_or_thread_count_is_another_entry(cache):
    config = reference.REFERENCE
    first = cache_path(0, config)
    assert cache_path(1, config) != first
    assert cache_path(0, reference.replace(config, steps=999)) != first
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(before + 1)
        assert cache_path(0, config) != first
    finally:
        torch.set_num_threads(before)


def test_a_corrupt_entry_is_trained_again(cache):
    run = train_reference_model(seed=2, progress=False, **QUICK)
    path = cache_path(2, run.config)
    path.write_bytes(b"half a file")
    again = load_reference_model(seed=2, progress=False, **QUICK)
    assert not again.from_cache and load_reference_model(seed=2, progress=False, **QUICK).from_cache


def test_an_unwritable_cache_only_means_no_cache(tmp_path, monkeypatch, read_only):
    folder = tmp_path / "read-only"
    folder.mkdir()
    read_only(folder)
    monkeypatch.setenv("COURSE_LIB_CACHE", str(folder / "cache"))
    run = load_reference_model(seed=0, progress=False, **QUICK)
    assert not run.from_cache and list(folder.iterdir()) == []
    assert not load_reference_model(seed=0, progress=False, **QUICK).from_cache


def test_a_file_where_the_cache_folder_should_be_only_means_no_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("COURSE_LIB_CACHE", str(blocker))
    run = load_reference_model(seed=0, progress=False, **QUICK)
    assert not run.from_cache and not load_reference_model(seed=0, progress=False, **QUICK).from_cache


def test_two_kernels_at_once_train_it_only_once(cache):
    """The second caller waits on the lock file, then loads what the first trained. (flock locks belong to
    each open file, so two threads here contend exactly as two kernels would.)"""
    results = []
    callers = [threading.Thread(target=lambda: results.append(
        load_reference_model(seed=4, progress=False, steps=20, n_train=300, n_test=40).from_cache)) for _ in range(2)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=120)
    assert sorted(results) == [False, True]


def test_a_bad_seed_is_refused_clearly():
    with pytest.raises(ValueError, match="seed must be a whole number"):
        load_reference_model(seed=-1)
    with pytest.raises(ValueError, match="seed must be a whole number"):
        train_reference_model(seed="0")


def test_a_new_entry_replaces_the_stale_ones_of_its_seed_and_thread_count(cache):
    run = train_reference_model(seed=5, progress=False, **QUICK)
    current = cache_path(5, run.config)
    stale = current.with_name(current.name.rsplit("-", 1)[0] + "-0123456789abcdef.pt")
    other_seed = current.with_name(current.name.replace("seed5", "seed6"))
    stale.write_bytes(b"from an older course")
    other_seed.write_bytes(b"another seed")
    train_reference_model(seed=5, progress=False, **QUICK)
    assert current.exists() and not stale.exists() and other_seed.exists()


# --- the recorded seed matrix (record reference-seeds), which lesson 09 reads --------------------------------------

def test_the_recorded_matrix_is_of_the_current_reference_with_every_head():
    runs = reference.recorded_seed_matrix()  # raises if recorded with another configuration
    counts = sorted({r["threads"] for r in runs})
    assert 1 in counts and len(counts) >= 2  # the course's one thread and more, each for seeds 0-9
    assert sorted((r["seed"], r["threads"]) for r in runs) == [(s, t) for s in range(10) for t in counts]
    c = reference.REFERENCE
    for r in runs:
        for table in r["heads"].values():
            assert len(table) == c.n_layers and all(len(row) == c.n_heads for row in table)
        layer, head = r["subject_head"]
        assert r["heads"]["verb_to_subject"][layer][head] == r["subject_head_weight"]


def test_a_record_is_read_back_and_one_of_another_configuration_is_refused(tmp_path):
    run = {"seed": 0, "threads": 1, "agreement_accuracy": 1.0}
    path = record_seed_matrix({"runs": [run]}, tmp_path / "matrix.json")
    assert reference.recorded_seed_matrix(path) == [run]
    content = path.read_text().replace('"steps": 1000', '"steps": 999')
    path.write_text(content)
    with pytest.raises(RuntimeError, match="another configuration"):
        reference.recorded_seed_matrix(path)


def test_recording_one_thread_count_keeps_the_others_of_the_same_configuration(tmp_path):
    path = tmp_path / "matrix.json"
    record_seed_matrix({"runs": [{"seed": 0, "threads": 1, "agreement_accuracy": 1.0},
                                           {"seed": 0, "threads": 4, "agreement_accuracy": 0.9}]}, path)
    record_seed_matrix({"runs": [{"seed": 0, "threads": 2, "agreement_accuracy": 0.8},
                                           {"seed": 0, "threads": 4, "agreement_accuracy": 0.7}]}, path)
    runs = reference.recorded_seed_matrix(path)
    assert [(r["threads"], r["agreement_accuracy"]) for r in runs] == [(1, 1.0), (2, 0.8), (4, 0.7)]
    # a record of another configuration is replaced, not merged
    path.write_text(path.read_text().replace('"steps": 1000', '"steps": 999'))
    record_seed_matrix({"runs": [{"seed": 1, "threads": 2, "agreement_accuracy": 0.5}]}, path)
    assert [(r["seed"], r["threads"]) for r in reference.recorded_seed_matrix(path)] == [(1, 2)]
