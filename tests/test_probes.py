"""course_lib.experiments.probes: the linear probe, nearest-neighbour retrieval and the vectors of each layer (lesson 12)."""

import numpy as np
import pytest
import torch

from course_lib.experiments.grammar import AgreementGrammar, agreement_vocabulary, encode_sentences
from course_lib.models.language_model import TransformerLM
from course_lib.experiments.probes import layer_vectors, nearest_neighbour_accuracy, probe_accuracy


def _separable(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    return x, (x @ np.array([1.0, -2.0, 0.5, 0.0, 1.0]) > 0).astype(int)


def test_a_probe_reads_a_linear_rule_and_not_shuffled_labels():
    x, y = _separable(600, 0)
    assert probe_accuracy(x[:400], y[:400], x[400:], y[400:]) > 0.95
    shuffled = np.random.default_rng(1).permutation(y[:400])
    assert probe_accuracy(x[:400], shuffled, x[400:], y[400:]) < 0.7
    assert probe_accuracy(torch.tensor(x[:400]), torch.tensor(y[:400]), torch.tensor(x[400:]), torch.tensor(y[400:])) > 0.95


def test_a_probe_cannot_read_xor():
    rng = np.random.default_rng(0)
    corner = rng.integers(0, 4, 400)
    x = np.array([[-2, -2], [2, 2], [-2, 2], [2, -2]])[corner] + 0.3 * rng.normal(size=(400, 2))
    y = (corner >= 2).astype(int)
    assert probe_accuracy(x[:300], y[:300], x[300:], y[300:]) < 0.8
    assert nearest_neighbour_accuracy(x[:300], y[:300], x[300:], y[300:]) > 0.95


def test_nearest_neighbour_takes_the_closest_training_vector():
    train = np.array([[0.0, 0.0], [10.0, 0.0]])
    assert nearest_neighbour_accuracy(train, [0, 1], np.array([[1.0, 0.0], [9.0, 0.0]]), [0, 1]) == 1.0
    assert nearest_neighbour_accuracy(train, [0, 1], np.array([[1.0, 0.0], [9.0, 0.0]]), [1, 1]) == 0.5


@pytest.mark.parametrize("args, message", [
    ((np.zeros((4, 2)), [0, 1, 0, 1], np.zeros((3, 3)), [0, 1, 0]), "same number of features"),
    ((np.zeros((4, 2)), [0, 1, 0], np.zeros((3, 2)), [0, 1, 0]), r"one label per row, shape \(4,\)"),
    ((np.zeros(4), [0, 1, 0, 1], np.zeros((3, 2)), [0, 1, 0]), r"\(n, d\) array"),
    ((np.zeros((4, 2)), [1, 1, 1, 1], np.zeros((3, 2)), [0, 1, 0]), "single label"),
    ((np.full((4, 2), np.nan), [0, 1, 0, 1], np.zeros((3, 2)), [0, 1, 0]), "NaN"),
])
def test_bad_inputs_get_clear_errors(args, message):
    with pytest.raises(ValueError, match=message):
        probe_accuracy(*args)


def test_layer_vectors_are_the_hidden_states_at_one_position_per_row():
    vocab = agreement_vocabulary()
    sentences = AgreementGrammar(seed=0).sentences(6)
    ids, _ = encode_sentences(sentences, vocab)
    torch.manual_seed(0)
    model = TransformerLM(len(vocab), d_model=16, n_heads=2, n_layers=2, max_len=32)
    positions = torch.tensor([s.verb - 1 for s in sentences])
    vectors = layer_vectors(model, ids, positions)
    assert vectors.shape == (6, 3, 16)
    with torch.no_grad():
        embedded = model.positions(model.embed(ids))  # what the first block reads
    assert torch.allclose(vectors[:, 0], embedded[torch.arange(6), positions], atol=1e-6)
    assert model.training  # left as it was
    with pytest.raises(ValueError, match="one position per row"):
        layer_vectors(model, ids, positions[:3])
