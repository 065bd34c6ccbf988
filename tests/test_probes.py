"""course_lib.experiments.probes: the linear probe, nearest-neighbour retrieval, the vectors of each layer, the labels
read from the grammar, the controls, and the record lesson 12 reads (lesson 12)."""

import json

import numpy as np
import pytest
import torch

from course_lib.experiments import probes
from course_lib.experiments.grammar import AgreementGrammar, agreement_vocabulary, encode_sentences, parse
from course_lib.models.language_model import TransformerLM
from course_lib.experiments.probes import (
    PROBE_SETTINGS, PROBE_THRESHOLDS, before_training, commonest_share, embedding_class_gap, few_label_accuracy,
    first_noun_after_last_comma, labels_before_verb, layer_vectors, nearest_neighbour_accuracy, pca_probe_accuracy,
    phrase_word_labels, prediction_features, probe_accuracy, probe_claims, probe_report, raw_word_features,
    read_vectors, recorded_probes, subject_noun_labels)

# Hand-made sentences, read by the grammar's own parser (positions count <bos> as 0).
ONE = "later , near the cats , the old dog that the child sees runs ."  # subject 9, verb 14, no attractor
TWO = "the dogs near the cat that the teacher sees run ."              # subject 2, verb 10, two attractors
THREE = "near the dog , the cats beside the farmers sleep ."           # subject 6, verb 10, opening phrase


def _separable(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    return x, (x @ np.array([1.0, -2.0, 0.5, 0.0, 1.0]) > 0).astype(int)


def _tiny_model(vocab, seed=0):
    torch.manual_seed(seed)
    return TransformerLM(len(vocab), d_model=16, n_heads=2, n_layers=2, max_len=32)


def test_a_probe_reads_a_linear_rule_and_not_shuffled_labels():
    x, y = _separable(600, 0)
    assert probe_accuracy(x[:400], y[:400], x[400:], y[400:]) > 0.95
    shuffled = np.random.default_rng(1).permutation(y[:400])
    assert probe_accuracy(x[:400], shuffled, x[400:], y[400:]) < 0.7
    as_tensors = [torch.tensor(a) for a in (x[:400], y[:400], x[400:], y[400:])]
    assert probe_accuracy(*as_tensors) > 0.95


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
    model = _tiny_model(vocab)
    positions = torch.tensor([s.verb - 1 for s in sentences])
    vectors = layer_vectors(model, ids, positions)
    assert vectors.shape == (6, 3, 16)
    with torch.no_grad():
        embedded = model.positions(model.embed(ids))  # what the first block reads
    assert torch.allclose(vectors[:, 0], embedded[torch.arange(6), positions], atol=1e-6)
    assert model.training  # left as it was
    with pytest.raises(ValueError, match="one position per row"):
        layer_vectors(model, ids, positions[:3])


# ---------------------------------------------------------------- labels, from hand-made sentences

def test_labels_before_the_verb_follow_the_annotations():
    labels = labels_before_verb([parse(ONE), parse(TWO), parse(THREE)])
    assert labels["number"].tolist() == [0, 1, 1]           # dog, dogs, cats
    assert labels["distance"].tolist() == [0, 1, 0]         # 14 - 9 = 5 is not more than 5; 10 - 2 = 8 is
    assert labels["opening"].tolist() == [1, 0, 1]          # "near the cats ," / none / "near the dog ,"
    assert labels["attractors"].tolist() == [0, 2, 0]       # "child" agrees with "dog"; "cat" and "teacher" do not
    assert list(labels) == list(probes.BEFORE_VERB) and set(probes.TRAINED_FOR) <= set(labels)


def test_words_inside_a_prepositional_phrase_are_its_the_and_its_noun():
    rows, labels = phrase_word_labels([parse(ONE), parse(THREE)])
    # ONE: the(4) cats(5) inside "near the cats"; the(7) dog(9) the(11) child(12) outside.
    # THREE: the(2) dog(3) inside; the(5) cats(6) outside; the(8) farmers(9) inside "beside the farmers".
    assert rows.tolist() == [[0, 4], [0, 5], [0, 7], [0, 9], [0, 11], [0, 12],
                             [1, 2], [1, 3], [1, 5], [1, 6], [1, 8], [1, 9]]
    assert labels.tolist() == [1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1]


def test_subject_nouns_and_the_rule_that_finds_them():
    rows, labels = subject_noun_labels([parse(ONE), parse(TWO)])
    assert rows.tolist() == [[0, 5], [0, 9], [0, 12], [1, 2], [1, 5], [1, 8]]
    assert labels.tolist() == [0, 1, 0, 1, 0, 0]
    assert first_noun_after_last_comma([parse(ONE), parse(TWO), parse(THREE)]) == 1.0
    no_comma = parse(THREE.replace(" ,", "", 1), max_modifiers=3)
    assert no_comma is None  # the grammar never drops the comma: the rule is exact on its sentences
    assert commonest_share(labels) == pytest.approx(4 / 6)


@pytest.mark.parametrize("function", [labels_before_verb, phrase_word_labels, subject_noun_labels,
                                      first_noun_after_last_comma])
def test_label_functions_take_sentences_only(function):
    with pytest.raises(TypeError, match="Sentence"):
        function(ONE)
    with pytest.raises(ValueError, match="at least one sentence"):
        function([])


# ---------------------------------------------------------------- features

def test_read_vectors_gives_every_layer_and_the_models_own_logits_at_each_row():
    vocab = agreement_vocabulary()
    sentences = [parse(ONE), parse(TWO)]
    ids, _ = encode_sentences(sentences, vocab)
    model = _tiny_model(vocab)
    rows = np.array([[0, 13], [1, 9], [0, 2]])
    vectors, logits = read_vectors(model, ids, rows)
    assert vectors.shape == (3, 3, 16) and logits.shape == (3, len(vocab))
    with torch.no_grad():
        everything = model.eval()(ids)  # (2, time, vocab)
    assert torch.allclose(logits, everything[[0, 1, 0], [13, 9, 2]], atol=1e-6)
    assert torch.equal(vectors, layer_vectors(model, ids[[0, 1, 0]], torch.tensor([13, 9, 2])))
    for bad, message in (([[0, 1, 2]], r"\(n, 2\)"), ([[2, 0]], "inside ids"), ([[0, 40]], "inside ids")):
        with pytest.raises(ValueError, match=message):
            read_vectors(model, ids, bad)


def test_the_prediction_control_is_the_softmax_of_the_logits_and_the_logits_themselves():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    features = prediction_features(logits)
    assert np.allclose(features["logits"], logits.numpy())
    assert np.allclose(features["probabilities"], logits.softmax(-1).numpy())
    assert np.allclose(features["probabilities"].sum(1), 1)
    with pytest.raises(ValueError, match=r"\(n, vocab\)"):
        prediction_features(logits[0])


def test_probe_report_reads_the_control_from_the_logits_and_nothing_else():
    """Labels hidden in the logits only: the prediction control reads them, every layer's vector does not. Then
    the other way round."""
    rng = np.random.default_rng(0)
    n = 400
    labels = rng.integers(0, 2, n)
    noise = torch.tensor(rng.normal(size=(n, 3, 8)))
    logits = torch.tensor(rng.normal(size=(n, 6)))
    logits[:, 2] += 4.0 * torch.tensor(labels)  # the label sits in one logit
    train = np.arange(n) < 300
    report = probe_report(noise, noise, logits, labels, train)
    assert report["logits"] > 0.95 and report["probabilities"] > 0.9
    assert max(report["trained"] + report["untrained"]) < 0.7
    assert report["commonest"] == round(commonest_share(labels[~train]), 3)
    informative = noise.clone()
    informative[:, 2, 0] += 4.0 * torch.tensor(labels)  # now in the last layer's vector only
    report = probe_report(informative, noise, torch.tensor(rng.normal(size=(n, 6))), labels, train)
    assert report["trained"][2] > 0.95 and max(report["trained"][:2]) < 0.7
    assert report["logits"] < 0.7 and max(report["shuffled"]) < 0.7 and max(report["untrained"]) < 0.7


def test_probe_report_refuses_mismatched_inputs():
    vectors = torch.zeros(10, 3, 4)
    labels = np.array([0, 1] * 5)
    train = np.arange(10) < 6
    with pytest.raises(ValueError, match="both have shape"):
        probe_report(vectors, torch.zeros(10, 2, 4), torch.zeros(10, 5), labels, train)
    with pytest.raises(ValueError, match="boolean mask"):
        probe_report(vectors, vectors, torch.zeros(10, 5), labels, np.arange(6))
    with pytest.raises(ValueError, match="both sides"):
        probe_report(vectors, vectors, torch.zeros(10, 5), labels, np.ones(10, dtype=bool))
    with pytest.raises(ValueError, match="one row per vector"):
        probe_report(vectors, vectors, torch.zeros(9, 5), labels, train)


def test_raw_word_features_are_the_word_its_position_and_the_words_before_it():
    vocab = agreement_vocabulary()
    ids, _ = encode_sentences([parse(TWO)], vocab)
    time = ids.shape[1]
    features = raw_word_features(ids, np.array([[0, 5]]), len(vocab))  # "cat" in "<bos> the dogs near the cat"
    assert features.shape == (1, 2 * len(vocab) + time)
    word, position, before = np.split(features[0], [len(vocab), len(vocab) + time])
    assert word.nonzero()[0].tolist() == vocab.encode(["cat"]) and position.nonzero()[0].tolist() == [5]
    assert before[vocab.encode(["the"])[0]] == 2 and before.sum() == 5  # <bos> the dogs near the
    with pytest.raises(ValueError, match="vocab_size"):
        raw_word_features(ids, np.array([[0, 5]]), 3)


def test_few_label_accuracy_uses_the_same_draws_for_every_feature_and_only_the_pool():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 600)
    features = {"the label": labels[:, None] + 0.01 * rng.normal(size=(600, 1)), "noise": rng.normal(size=(600, 3))}
    pool, test = np.arange(300), np.arange(300, 600)
    result = few_label_accuracy(features, labels, pool, test, sizes=[10, 40], draws=3)
    assert result["the label"] == [1.0, 1.0] and max(result["noise"]) < 0.7
    assert few_label_accuracy(features, labels, pool, test, [10, 40], 3) == result  # seeded
    with pytest.raises(ValueError, match="share rows"):
        few_label_accuracy(features, labels, pool, np.arange(250, 400), [10])
    with pytest.raises(ValueError, match="cannot draw"):
        few_label_accuracy(features, labels, pool, test, [301])
    with pytest.raises(TypeError, match="draws"):
        few_label_accuracy(features, labels, pool, test, [10], draws=2.5)


def test_pca_keeps_the_directions_that_vary_most():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    x = np.concatenate([5.0 * (2 * labels[:, None] - 1) + rng.normal(size=(400, 1)), rng.normal(size=(400, 4))], 1)
    assert pca_probe_accuracy(x[:300], labels[:300], x[300:], labels[300:], [1, 5]) == [1.0, 1.0]
    with pytest.raises(ValueError, match="cannot keep 6"):
        pca_probe_accuracy(x[:300], labels[:300], x[300:], labels[300:], [6])


def test_before_training_is_the_same_network_with_its_first_weights():
    vocab = agreement_vocabulary()
    model = _tiny_model(vocab)
    initial = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)  # "training"

    class Run:
        pass

    run = Run()
    run.model, run.initial_state = model, initial
    untrained = before_training(run)
    assert all(torch.equal(untrained.state_dict()[name], initial[name]) for name in initial)
    run.initial_state = {}
    with pytest.raises(ValueError, match="initial_state"):
        before_training(run)


def test_embedding_class_gap_is_near_zero_for_a_random_table_and_large_when_classes_share_a_direction():
    vocab = agreement_vocabulary()
    torch.manual_seed(0)
    table = torch.randn(len(vocab), 64)
    assert abs(embedding_class_gap(table, vocab)) < 0.05
    from course_lib.experiments.grammar import NOUNS
    for singular, _ in NOUNS:
        table[vocab.encode([singular])[0]] += 10.0 * torch.eye(64)[0]
    assert embedding_class_gap(table, vocab) > 0.1


# ---------------------------------------------------------------- the claims and the record

def _figures():
    report = {"trained": [0.65, 0.7, 1.0], "untrained": [0.65, 0.65, 0.64], "shuffled": [0.5, 0.5, 0.5],
              "probabilities": 1.0, "logits": 1.0, "commonest": 0.5}
    beyond = {**report, "trained": [0.8, 0.9, 0.95], "probabilities": 0.8, "logits": 0.85}
    language = {"before_verb": {"number": report, "distance": beyond, "opening": dict(beyond),
                                "attractors": {**report, "trained": [0.66, 0.68, 0.67]}},
                "inside_phrase": {**report, "trained": [0.7, 1.0, 1.0]},
                "find_the_subject": {"sizes": [25, 50, 100, 200], "trained": [0.8, 0.9, 0.95, 0.98],
                                     "untrained": [0.7] * 4, "raw words": [0.7, 0.75, 0.8, 0.88],
                                     "commonest": 0.67, "rule": 1.0},
                "embedding_gap": {"trained": 0.5, "untrained": 0.0}}
    digits = {"dimensions": [2, 4, 8, 16, 32], "pixels": [0.59, 0.8, 0.9, 0.96, 0.96],
              "trained": [0.78, 0.92, 0.95, 0.96, 0.96], "untrained": [0.15, 0.26, 0.6, 0.86, 0.94],
              "retrieval_pixels": 0.98, "retrieval_trained": 0.96, "vit_accuracy": 0.96, "commonest": 0.1}
    return language, digits


def test_probe_claims_hold_for_good_figures_and_name_the_one_that_fails():
    language, digits = _figures()
    assert all(probe_claims(language, digits).values())
    language["before_verb"]["opening"]["logits"] = 0.93  # the prediction reads it about as well as the vector
    missed = [claim for claim, holds in probe_claims(language, digits).items() if not holds]
    assert missed == ["opening phrase: the output vector beyond the prediction and the input"]


def test_the_record_was_made_with_the_current_settings_on_every_seed_and_thread_count():
    content = json.loads(probes.RECORDED_PROBES.read_text())
    assert content["settings"] == PROBE_SETTINGS and content["thresholds"] == PROBE_THRESHOLDS
    assert content["torch"] == torch.__version__ and content["command"] == "python -m course_lib record probes"
    runs = recorded_probes()
    assert sorted((r["seed"], r["threads"]) for r in runs) == [(s, t) for s in range(10) for t in (1, 2, 4)]


def test_every_recorded_run_meets_every_claim_of_the_lesson():
    for run in recorded_probes():
        claims = probe_claims(run["language"], run["digits"])  # recomputed: not the record's own verdict
        assert all(claims.values()), (run["seed"], run["threads"], [c for c, holds in claims.items() if not holds])
        assert run["missed"] == []


def test_a_record_with_other_settings_is_refused(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"settings": {**PROBE_SETTINGS, "sentences": 10}, "thresholds": PROBE_THRESHOLDS,
                                "command": "python -m course_lib record probes", "runs": []}))
    with pytest.raises(ValueError, match="record probes"):
        recorded_probes(path)


def test_the_record_command_writes_the_probes_record_and_fails_on_a_missed_claim(monkeypatch, tmp_path, capsys):
    from course_lib.tools import record
    from course_lib.tools.cli import main as cli_main

    language, digits = _figures()
    seen = []

    def fake_run(seed=0):
        threads = torch.get_num_threads()
        seen.append((seed, threads))
        missed = ["digits: retrieval works in both spaces"] if (seed, threads) == (1, 2) else []
        return {"seed": seed, "threads": threads, "language": language, "digits": digits, "missed": missed}

    monkeypatch.setattr(record, "probe_run", fake_run)
    monkeypatch.setattr(record, "RECORDED_PROBES", tmp_path / "probes.json")
    assert cli_main(["record", "probes", "--seeds", "1", "--thread-counts", "1,2", "--dry-run"]) == 0
    assert not (tmp_path / "probes.json").exists() and "every run met its targets" in capsys.readouterr().out
    assert cli_main(["record", "probes", "--seeds", "2", "--thread-counts", "1,2"]) == 1
    out = capsys.readouterr().out
    assert "missed: digits: retrieval works in both spaces" in out and "every claim met in 3 of 4 runs" in out
    saved = json.loads((tmp_path / "probes.json").read_text())
    assert saved["settings"] == PROBE_SETTINGS and saved["thresholds"] == PROBE_THRESHOLDS
    assert saved["command"] == "python -m course_lib record probes"
    assert [(r["seed"], r["threads"]) for r in saved["runs"]] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert seen[-4:] == [(0, 1), (0, 2), (1, 1), (1, 2)]


def test_the_figures_and_features_refuse_the_wrong_kind_of_input():
    vocab = agreement_vocabulary()
    ids, _ = encode_sentences([parse(ONE)], vocab)
    with pytest.raises(TypeError, match="ids"):
        read_vectors(_tiny_model(vocab), ids.tolist(), [[0, 1]])
    with pytest.raises(ValueError, match="whole numbers"):
        raw_word_features(ids, np.array([[0.0, 1.5]]), len(vocab))
    with pytest.raises(TypeError, match="logits"):
        prediction_features(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="model"):
        probes.language_probe_figures("the reference model", _tiny_model(vocab), vocab)
    with pytest.raises(TypeError, match="features"):
        few_label_accuracy([np.zeros((4, 2))], [0, 1, 0, 1], [0, 1], [2, 3], [2])
    with pytest.raises(ValueError, match="one label per row"):
        few_label_accuracy({"x": np.zeros((4, 2))}, [0, 1, 0], [0, 1], [2, 3], [2])
    with pytest.raises(ValueError, match="row numbers"):
        few_label_accuracy({"x": np.zeros((4, 2))}, [0, 1, 0, 1], [0, 1], [2, 9], [2])
    with pytest.raises(TypeError, match="seed"):
        probes.probe_run(seed="0")
