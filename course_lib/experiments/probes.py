"""Another system reads the vectors: linear probes, a new task learned from few labels, and nearest neighbours on
a model's representations. Lesson 12.

A **probe** is a logistic regression (scikit-learn) trained on vectors a model produced; its accuracy on
held-out vectors measures how much of one property the vectors carry in a form a simple system can read. A
probe for something the model was trained to output (the next word, a digit's class) is close to guaranteed to
succeed at the last layer; the informative probes are for properties nothing in training asked for. Each is
judged against controls: the same network before training, shuffled labels, and the model's own prediction
(what a probe reads there, training asked for, in effect).

    probe_accuracy(train_x, train_y, test_x, test_y)          fit on one part, score on the other
    nearest_neighbour_accuracy(train_x, train_y, test_x, test_y)  retrieval: the label of the closest vector
    layer_vectors(model, ids, positions)                      (n, layers + 1, d_model) at one position per row
    read_vectors(model, ids, rows)                            each layer's vector and the logits at (sentence, position)
    labels_before_verb / phrase_word_labels / subject_noun_labels   labels from the grammar's annotations
    probe_report(...)                                         one property: every layer, and every control
    few_label_accuracy(...)                                   a new task learned from a few labelled examples
    language_probe_figures / digit_probe_figures / probe_run   everything lesson 12 checks, for one model
    recorded_probes()                                         those figures for seeds 0-9 at 1, 2 and 4 threads
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from course_lib.experiments.analysis import capture
from course_lib.experiments.grammar import PLURAL, AgreementGrammar, encode_sentences, require_sentences
from course_lib.experiments.records import recorded_runs
from course_lib.validation import require_int, require_rank

MAX_ITER = 3000  # enough for every probe of lesson 12 to converge (no ConvergenceWarning)


def as_rows(x, name: str) -> np.ndarray:
    """``x`` (a torch tensor or array) as a float64 NumPy array of shape ``(n, d)``; a clear error otherwise."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"{name} must be a real (n, d) array of vectors, one per row, got "
                         f"{x.dtype} array of shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x.astype(np.float64)


def as_labels(y, name: str, n: int) -> np.ndarray:
    """``y`` as a 1-D NumPy array of ``n`` labels; a clear error otherwise."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"{name} must hold one label per row, shape ({n},), got shape {y.shape}")
    return y


def _checked(train_x, train_y, test_x, test_y):
    train_x, test_x = as_rows(train_x, "train_x"), as_rows(test_x, "test_x")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train_x and test_x must have the same number of features, got {train_x.shape[1]} "
                         f"and {test_x.shape[1]}")
    train_y, test_y = as_labels(train_y, "train_y", len(train_x)), as_labels(test_y, "test_y", len(test_x))
    if len(np.unique(train_y)) < 2:
        raise ValueError("train_y holds a single label: a probe needs at least two classes to learn")
    return train_x, train_y, test_x, test_y


def one_blas_thread():
    """A ``with`` block in which NumPy's and scikit-learn's linear algebra uses one thread. A probe's products are
    small: on a busy 2-core machine their threads spend most of the time waiting for each other (measured: a
    probe took ten times as long with two threads as with one), and one thread also sums in one fixed order."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def probe_accuracy(train_x, train_y, test_x, test_y, seed: int = 0) -> float:
    """Fit a linear probe (features scaled to mean 0 and variance 1, then a logistic regression) on
    ``train_x (n, d)``, ``train_y (n,)``; return its accuracy on ``test_x (m, d)``, ``test_y (m,)``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_x, train_y, test_x, test_y = _checked(train_x, train_y, test_x, test_y)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=MAX_ITER, random_state=seed))
    with warnings.catch_warnings(), one_blas_thread():
        warnings.simplefilter("error", category=UserWarning)  # a probe that did not converge must not pass quietly
        probe.fit(train_x, train_y)
        return float(probe.score(test_x, test_y))


def nearest_neighbour_accuracy(train_x, train_y, test_x, test_y) -> float:
    """Retrieval: for each test vector, the label of the closest training vector (Euclidean distance); the share
    of test vectors whose retrieved label is right."""
    train_x, train_y, test_x, test_y = _checked(train_x, train_y, test_x, test_y)
    distances = ((test_x[:, None, :] - train_x[None, :, :]) ** 2).sum(-1)  # (m, n)
    return float((train_y[distances.argmin(1)] == test_y).mean())


def commonest_share(labels) -> float:
    """The share of the commonest label in ``labels (n,)``: what always guessing it scores."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    return float(np.unique(labels, return_counts=True)[1].max() / len(labels))


# ---------------------------------------------------------------- vectors

def _check_rows(rows, ids: torch.Tensor) -> torch.Tensor:
    require_rank(ids, "ids", 2, "(batch, time)", max_rank=2)  # a TypeError for anything but a tensor
    rows = np.asarray(rows)
    if not np.issubdtype(rows.dtype, np.integer):
        raise ValueError(f"rows must hold whole numbers, (sentence, position) pairs, got dtype {rows.dtype}")
    rows = torch.as_tensor(rows, dtype=torch.long)
    if rows.ndim != 2 or rows.shape[1] != 2:
        raise ValueError(f"rows must be an (n, 2) array of (sentence, position) pairs, got shape {tuple(rows.shape)}")
    batch, time = ids.shape
    if len(rows) and ((rows[:, 0] < 0).any() or (rows[:, 0] >= batch).any() or (rows[:, 1] < 0).any()
                      or (rows[:, 1] >= time).any()):
        raise ValueError(f"rows must point inside ids of shape ({batch}, {time}): sentence 0..{batch - 1}, "
                         f"position 0..{time - 1}")
    return rows


@torch.no_grad()
def read_vectors(model: nn.Module, ids: torch.Tensor, rows) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` on ``ids (batch, time)`` once and return, at each ``(sentence, position)`` of ``rows (n, 2)``,
    the vector before the first block and after each block, ``(n, layers + 1, d_model)``, and the model's
    output there, its logits over the next word, ``(n, vocab)``."""
    rows = _check_rows(rows, ids)
    was_training = model.training
    model.eval()
    try:
        with capture(model, attention=False, hidden=True) as record:
            logits = model(ids)  # (batch, time, vocab)
    finally:
        model.train(was_training)
    hidden = record.hidden  # (batch, layers + 1, time, d_model)
    return hidden[rows[:, 0], :, rows[:, 1]], logits[rows[:, 0], rows[:, 1]]


def layer_vectors(model: nn.Module, ids: torch.Tensor, positions) -> torch.Tensor:
    """Run ``model`` on ``ids (batch, time)`` and return the vector at ``positions[b]`` of each row b, before
    the first block and after each block: ``(batch, layers + 1, d_model)``."""
    positions = torch.as_tensor(positions, dtype=torch.long)
    if positions.shape != (ids.shape[0],):
        raise ValueError(f"positions must hold one position per row of ids, shape ({ids.shape[0]},), "
                         f"got {tuple(positions.shape)}")
    return read_vectors(model, ids, torch.stack([torch.arange(len(ids)), positions], 1))[0]


def prediction_features(logits) -> dict[str, np.ndarray]:
    """The model's own output as features for a probe: ``{"probabilities": softmax, "logits": as they are}``,
    each ``(n, vocab)``. Whatever a probe reads from these, training asked for, in effect: it is part of the
    prediction of the next word."""
    require_rank(logits, "logits", 2, "(n, vocab), as read_vectors returns", max_rank=2)
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got dtype {logits.dtype}")
    return {"probabilities": logits.softmax(-1).double().numpy(), "logits": logits.double().numpy()}


def raw_word_features(ids: torch.Tensor, rows, vocab_size: int) -> np.ndarray:
    """What a classifier sees without a model, for the word at each ``(sentence, position)`` of ``rows (n, 2)``:
    which word it is (one-hot, ``vocab_size``), where it stands (one-hot, ``time``) and how often each word of
    the vocabulary came before it in its sentence (counts, ``vocab_size``): ``(n, 2 * vocab_size + time)``."""
    vocab_size = require_int(vocab_size, "vocab_size", minimum=1)
    rows = _check_rows(rows, ids).numpy()
    time = ids.shape[1]
    words = ids.numpy()
    if words.max(initial=0) >= vocab_size:
        raise ValueError(f"ids hold {words.max()}, not below vocab_size={vocab_size}")
    features = np.zeros((len(rows), 2 * vocab_size + time))
    n = np.arange(len(rows))
    features[n, words[rows[:, 0], rows[:, 1]]] = 1
    features[n, vocab_size + rows[:, 1]] = 1
    for i, (sentence, position) in enumerate(rows):
        np.add.at(features[i], vocab_size + time + words[sentence, :position], 1)
    return features


# ---------------------------------------------------------------- labels from the grammar's annotations

# At the position right before the verb: the property, in words. The model is trained to predict the next word
# there, the verb, whose form *is* the subject's number: "number" is asked for. Nothing asks for the others.
BEFORE_VERB = {"number": "the subject is plural",
               "distance": "the subject stands more than 5 words back",
               "opening": "a phrase with a noun opens the sentence, before its subject",
               "attractors": "how many attractors stand between subject and verb (0, 1 or 2)"}
TRAINED_FOR = ("number",)


def labels_before_verb(sentences) -> dict[str, np.ndarray]:
    """For each sentence, the label of each property of ``BEFORE_VERB``, read from the grammar's annotations:
    ``{name: (n,) ints}`` (1 for yes, 0 for no; ``attractors`` counts)."""
    sentences = require_sentences(sentences, "labels_before_verb")
    return {"number": np.array([s.number == PLURAL for s in sentences], dtype=int),
            "distance": np.array([s.distance > 5 for s in sentences], dtype=int),
            "opening": np.array([any(noun < s.subject for noun in s.nouns) for s in sentences], dtype=int),
            "attractors": np.array([len(s.attractors) for s in sentences], dtype=int)}


def phrase_word_labels(sentences) -> tuple[np.ndarray, np.ndarray]:
    """Every "the" and every noun of ``sentences``, as ``rows (n, 2)`` of (sentence, position), and whether it
    stands inside a prepositional phrase ("near the cats"): ``labels (n,)``, 1 or 0. Both words occur inside and
    outside such phrases, so the word alone does not say."""
    sentences = require_sentences(sentences, "phrase_word_labels")
    rows, labels = [], []
    for i, s in enumerate(sentences):
        inside = {position for the, preposition in s.neighbours for position in (the, the + 1)}  # "the" and its noun
        nouns = set(s.nouns)
        for position, word in enumerate(s.tokens):
            if word == "the" or position in nouns:
                rows.append((i, position))
                labels.append(int(position in inside))
    return np.array(rows, dtype=int).reshape(-1, 2), np.array(labels, dtype=int)


def subject_noun_labels(sentences) -> tuple[np.ndarray, np.ndarray]:
    """Every noun of ``sentences``, as ``rows (n, 2)`` of (sentence, position), and whether it is its sentence's
    subject: ``labels (n,)``, 1 or 0."""
    sentences = require_sentences(sentences, "subject_noun_labels")
    rows = [(i, noun) for i, s in enumerate(sentences) for noun in s.nouns]
    labels = [int(noun == s.subject) for s in sentences for noun in s.nouns]
    return np.array(rows, dtype=int).reshape(-1, 2), np.array(labels, dtype=int)


def first_noun_after_last_comma(sentences) -> float:
    """The best simple rule for finding the subject, written by someone who knows this grammar: the first noun
    after the last comma before the verb (else the first noun). The share of sentences where it is the subject."""
    sentences = require_sentences(sentences, "first_noun_after_last_comma")
    hits = 0
    for s in sentences:
        commas = [i for i, word in enumerate(s.tokens[:s.verb]) if word == ","]
        after = [noun for noun in s.nouns if commas and commas[-1] < noun < s.verb]
        hits += (after[0] if after else s.nouns[0]) == s.subject
    return hits / len(sentences)


# ---------------------------------------------------------------- probes with their controls

def _mask(train, n: int) -> np.ndarray:
    train = np.asarray(train)
    if train.dtype != bool or train.shape != (n,):
        raise ValueError(f"train must be a boolean mask with one entry per row, shape ({n},), got "
                         f"{train.dtype} array of shape {train.shape}")
    if train.all() or not train.any():
        raise ValueError("train must leave rows on both sides: some to fit the probe on, some to score it on")
    return train


def probe_report(vectors, untrained_vectors, logits, labels, train, seed: int = 0) -> dict:
    """One property, probed on every layer of a trained model and against every control.

    ``vectors``, ``untrained_vectors``: ``(n, layers + 1, d_model)`` from the trained model and from the same
    network before training; ``logits (n, vocab)``: the trained model's output at the same positions; ``labels
    (n,)``; ``train (n,)`` a boolean mask: fit on those rows, score on the others.

    Returns ``{"trained", "untrained", "shuffled"}``, one accuracy per layer (input first; "shuffled": the
    trained vectors with the training labels in a random order), ``"probabilities"`` and ``"logits"``, the probe
    on the model's own prediction, and ``"commonest"``, always guessing the commonest label of the scored rows.
    Accuracies are rounded to 3 decimals."""
    seed = require_int(seed, "seed", minimum=0)
    vectors, untrained_vectors = (torch.as_tensor(v) for v in (vectors, untrained_vectors))
    if vectors.ndim != 3 or vectors.shape != untrained_vectors.shape:
        raise ValueError(f"vectors and untrained_vectors must both have shape (n, layers + 1, d_model), got "
                         f"{tuple(vectors.shape)} and {tuple(untrained_vectors.shape)}")
    n, layers = vectors.shape[:2]
    labels = as_labels(labels, "labels", n)
    train = _mask(train, n)
    test = ~train
    shuffled = labels[train][np.random.default_rng(seed).permutation(int(train.sum()))]
    prediction = prediction_features(torch.as_tensor(logits))
    if len(prediction["logits"]) != n:
        raise ValueError(f"logits must have one row per vector, {n}, got {len(prediction['logits'])}")

    def probe(x, y):
        return round(probe_accuracy(x[train], y, x[test], labels[test], seed=seed), 3)

    report = {kind: [probe(x[:, layer].numpy(), y) for layer in range(layers)]
              for kind, x, y in (("trained", vectors, labels[train]), ("untrained", untrained_vectors, labels[train]),
                                 ("shuffled", vectors, shuffled))}
    return {**report, **{kind: probe(x, labels[train]) for kind, x in prediction.items()},
            "commonest": round(commonest_share(labels[test]), 3)}


def few_label_accuracy(features: dict, labels, pool, test, sizes, draws: int = 5, seed: int = 0) -> dict[str, list]:
    """A new task learned from a few labelled examples: for each size in ``sizes``, draw that many labelled rows
    from ``pool`` (``draws`` times, the same draws for every feature set), fit a probe on each of ``features``
    (``{name: (n, d)}``) and score it on the ``test`` rows. Returns ``{name: [mean accuracy per size]}``,
    rounded to 3 decimals. ``pool`` and ``test``: index arrays of rows."""
    draws, seed = require_int(draws, "draws", minimum=1), require_int(seed, "seed", minimum=0)
    if not isinstance(features, dict) or not features:
        raise TypeError(f"features must be a non-empty dict {{name: (n, d) array}}, got {type(features).__name__}")
    features = {name: as_rows(x, name) for name, x in features.items()}
    n = len(next(iter(features.values())))
    if any(len(x) != n for x in features.values()):
        raise ValueError(f"every feature set must have one row per label, {n}; got "
                         f"{[len(x) for x in features.values()]}")
    labels = as_labels(labels, "labels", n)
    pool, test = np.asarray(pool, dtype=int), np.asarray(test, dtype=int)
    if not all(len(rows) and rows.min() >= 0 and rows.max() < n for rows in (pool, test)):
        raise ValueError(f"pool and test must be non-empty arrays of row numbers between 0 and {n - 1}")
    if np.intersect1d(pool, test).size:
        raise ValueError("pool and test share rows: a task must be scored on rows it did not learn from")
    sizes = [require_int(size, "size", minimum=2) for size in sizes]
    if max(sizes) > len(pool):
        raise ValueError(f"cannot draw {max(sizes)} labelled rows from a pool of {len(pool)}")
    rng = np.random.default_rng(seed)
    chosen = []
    for size in sizes:
        for _ in range(draws):
            rows = rng.choice(pool, size, replace=False)
            while len(np.unique(labels[rows])) < 2:  # a draw with one label teaches nothing: draw again
                rows = rng.choice(pool, size, replace=False)
            chosen.append(rows)
    result = {}
    for name, x in features.items():
        scores = [probe_accuracy(x[rows], labels[rows], x[test], labels[test], seed=seed) for rows in chosen]
        result[name] = [round(float(np.mean(scores[i * draws:(i + 1) * draws])), 3) for i in range(len(sizes))]
    return result


def pca_probe_accuracy(train_x, train_y, test_x, test_y, dimensions) -> list[float]:
    """Keep the first k principal components of ``train_x`` (the k directions along which the training vectors
    vary most), probe on those k numbers; one accuracy per k in ``dimensions``, rounded to 3 decimals."""
    from sklearn.decomposition import PCA

    train_x, train_y, test_x, test_y = _checked(train_x, train_y, test_x, test_y)
    result = []
    for k in dimensions:
        k = require_int(k, "k", minimum=1)
        if k > train_x.shape[1]:
            raise ValueError(f"cannot keep {k} dimensions of {train_x.shape[1]}-number vectors")
        with one_blas_thread():
            pca = PCA(n_components=k, random_state=0).fit(train_x)
        result.append(round(probe_accuracy(pca.transform(train_x), train_y, pca.transform(test_x), test_y), 3))
    return result


# ---------------------------------------------------------------- everything lesson 12 checks, for one model

# The lesson's settings: the record (python -m course_lib record probes) was made with exactly these.
PROBE_SETTINGS = {"sentence_seed": 12, "sentences": 2000, "train_sentences": 1500,
                  "phrase_train_sentences": 500,  # the word-by-word probe: ~3,000 words are plenty, and quicker
                  "few_labels": [25, 50, 100, 200], "few_label_draws": 5, "few_label_seed": 0,
                  "digit_split_seed": 0, "digit_dimensions": [2, 4, 8, 16, 32]}


def _require_modules(**models) -> None:
    for name, model in models.items():
        if not isinstance(model, nn.Module):
            raise TypeError(f"{name} must be a model (torch.nn.Module), got {type(model).__name__}")


def probe_sentences(settings: dict = PROBE_SETTINGS) -> list:
    """Lesson 12's 2,000 new sentences, drawn from the grammar with their own seed: the probes learn on the first
    1,500 (``settings["train_sentences"]``) and are scored on the others."""
    return AgreementGrammar(seed=settings["sentence_seed"]).sentences(settings["sentences"])


def before_training(run) -> nn.Module:
    """The reference model of ``run`` (``load_reference_model``) with the weights it had before training: the
    same network, the same random start, no learning."""
    from course_lib.models.language_model import TransformerLM

    if not getattr(run, "initial_state", None):
        raise ValueError("run must be a ReferenceRun with its initial_state, as load_reference_model returns")
    untrained = TransformerLM(run.model.config)
    untrained.load_state_dict(run.initial_state)
    return untrained.eval()


def language_probe_figures(model: nn.Module, untrained: nn.Module, vocab, settings: dict = PROBE_SETTINGS) -> dict:
    """Lesson 12's language-model figures: ``"before_verb"`` (``probe_report`` per property of ``BEFORE_VERB``),
    ``"inside_phrase"`` (``probe_report`` on every "the" and noun) and ``"find_the_subject"`` (the new task,
    "is this noun the subject?", learned from a few labelled nouns: ``few_label_accuracy`` on the output vectors
    of both models and on the raw words, with the commonest label and the best simple rule), and
    ``"embedding_gap"`` (``embedding_class_gap`` of both models' embedding tables)."""
    _require_modules(model=model, untrained=untrained)
    sentences = probe_sentences(settings)
    ids, _ = encode_sentences(sentences, vocab)  # (sentences, time)
    n_train = settings["train_sentences"]
    before_verb = np.array([(i, s.verb - 1) for i, s in enumerate(sentences)])
    vectors, logits = read_vectors(model, ids, before_verb)  # (n, layers + 1, d_model), (n, vocab)
    untrained_vectors, _ = read_vectors(untrained, ids, before_verb)
    train = np.arange(len(sentences)) < n_train
    figures = {"before_verb": {name: probe_report(vectors, untrained_vectors, logits, labels, train)
                               for name, labels in labels_before_verb(sentences).items()}}

    # Word by word: a shorter training part, the same held-out sentences.
    rows, labels = phrase_word_labels(sentences)
    keep = (rows[:, 0] < settings["phrase_train_sentences"]) | (rows[:, 0] >= n_train)
    rows, labels = rows[keep], labels[keep]
    vectors, logits = read_vectors(model, ids, rows)
    untrained_vectors, _ = read_vectors(untrained, ids, rows)
    figures["inside_phrase"] = probe_report(vectors, untrained_vectors, logits, labels, rows[:, 0] < n_train)

    rows, labels = subject_noun_labels(sentences)
    features = {"trained": read_vectors(model, ids, rows)[0][:, -1],  # (nouns, d_model): after the last layer
                "untrained": read_vectors(untrained, ids, rows)[0][:, -1],
                "raw words": raw_word_features(ids, rows, len(vocab))}  # (nouns, 2 * vocab + time)
    pool, test = np.flatnonzero(rows[:, 0] < n_train), np.flatnonzero(rows[:, 0] >= n_train)
    figures["find_the_subject"] = {
        "sizes": list(settings["few_labels"]),
        **few_label_accuracy(features, labels, pool, test, settings["few_labels"], settings["few_label_draws"],
                             settings["few_label_seed"]),
        "commonest": round(commonest_share(labels[test]), 3),
        "rule": round(first_noun_after_last_comma(sentences[n_train:]), 3)}
    figures["embedding_gap"] = {"trained": embedding_class_gap(model.embed.weight, vocab),
                                "untrained": embedding_class_gap(untrained.embed.weight, vocab)}
    return figures


def digit_probe_figures(vit: nn.Module, untrained_vit: nn.Module, split, settings: dict = PROBE_SETTINGS) -> dict:
    """Lesson 12's vision figures: probes on the first k PCA numbers of the pixels, of the trained ViT's class-token
    vector and of the same ViT's before training, for each k of ``settings["digit_dimensions"]``; nearest-neighbour
    retrieval in pixel space and in the trained vector's; the ViT's own test accuracy."""
    from course_lib.experiments.digits import accuracy

    _require_modules(vit=vit, untrained_vit=untrained_vit)
    dimensions = settings["digit_dimensions"]
    train_pixels, train_y, test_pixels, test_y = split.flat()  # (n, 64)
    with torch.no_grad():
        trained = [vit.eval().encode(images).numpy() for images in (split.train_images, split.test_images)]  # (n, 32)
        untrained = [untrained_vit.eval().encode(images).numpy() for images in (split.train_images, split.test_images)]
    return {"dimensions": list(dimensions),
            "pixels": pca_probe_accuracy(train_pixels, train_y, test_pixels, test_y, dimensions),
            "trained": pca_probe_accuracy(trained[0], train_y, trained[1], test_y, dimensions),
            "untrained": pca_probe_accuracy(untrained[0], train_y, untrained[1], test_y, dimensions),
            "retrieval_pixels": round(nearest_neighbour_accuracy(train_pixels, train_y, test_pixels, test_y), 3),
            "retrieval_trained": round(nearest_neighbour_accuracy(trained[0], train_y, trained[1], test_y), 3),
            "vit_accuracy": round(accuracy(vit, split.test_images, split.test_labels), 3),
            "commonest": round(commonest_share(test_y), 3)}


def embedding_class_gap(table: torch.Tensor, vocab) -> float:
    """Words of the grammar's own classes (singular nouns, plural nouns, prepositions, adjectives, adverbs): the mean
    cosine similarity of two rows of ``table (vocab, d_model)`` of the same class minus that of two rows of
    different classes, rounded to 3 decimals. About 0 for a random table."""
    from course_lib.experiments.grammar import ADJECTIVES, ADVERBS, NOUNS, PREPOSITIONS

    classes = [[singular for singular, _ in NOUNS], [plural for _, plural in NOUNS], PREPOSITIONS, ADJECTIVES, ADVERBS]
    word_ids = torch.tensor([vocab.encode([word])[0] for words in classes for word in words])
    group = torch.tensor([g for g, words in enumerate(classes) for _ in words])
    same_class = (group[:, None] == group[None]) & ~torch.eye(len(group), dtype=torch.bool)
    unit = torch.nn.functional.normalize(table.detach()[word_ids], dim=-1)
    similarity = unit @ unit.T  # (words, words)
    return round(float(similarity[same_class].mean() - similarity[group[:, None] != group[None]].mean()), 3)


# ---------------------------------------------------------------- the claims, and the thresholds they must meet

# Each chosen, with margin, to hold in every run of the record (seeds 0-9 at 1, 2 and 4 threads). The figures that
# came close are not claimed: the distance is read from the prediction almost as well as from the vector (0.92-0.97
# against 0.96-1.00), and at 2 PCA numbers the ViT's vector was level with the pixels in some runs.
PROBE_THRESHOLDS = {
    "number_layer0_max": 0.95,              # the subject's number, after layer 0: below
    "number_min": 0.97,                     # ... after layer 1 and from the prediction: at least
    "distance_min": 0.93,                   # the subject's distance, after layer 1: at least
    "beyond_input_min": 0.05,               # distance and opening: after layer 1 above the input vector by at least
    "opening_beyond_prediction_min": 0.05,  # opening phrase: after layer 1 above the prediction by at least
    "attractors_gain_max": 0.08,            # attractors: no layer above the input vector by more than
    "phrase_layer0_min": 0.97,              # inside a phrase: after layer 0, at least
    "phrase_input_max": 0.8,                # ... the input vector at most
    "subject_labels": 100,                  # find the subject from this many labelled nouns:
    "subject_trained_min": 0.85,            # ... the output vectors at least
    "subject_lead_min": 0.06,               # ... ahead of the raw words by at least
    "subject_untrained_max": 0.78,          # ... the untrained model's output vectors at most
    "shuffled_margin": 0.08,                # shuffled labels: at most the commonest label plus
    "untrained_gain_max": 0.05,             # the untrained model: no layer above its own input vector by more than
    "digit_dimensions": 4,                  # at this many PCA numbers per digit,
    "digit_lead_min": 0.01,                 # ... the ViT's vector ahead of the pixels by at least
    "digit_untrained_max": 0.45,            # ... the same ViT before training at most
    "retrieval_min": 0.8,                   # nearest-neighbour retrieval, in pixel space and in the ViT's: at least
    "gap_trained_min": 0.3,                 # embeddings: same class minus other class, trained at least
    "gap_untrained_max": 0.05,              # ... before training within plus or minus
}


def probe_claims(language: dict, digits: dict, thresholds: dict = PROBE_THRESHOLDS) -> dict[str, bool]:
    """Each claim lesson 12 checks, in words, and whether ``language`` (``language_probe_figures``) and ``digits``
    (``digit_probe_figures``) meet it."""
    t = thresholds
    verb = language["before_verb"]

    def prediction(report):
        return max(report["probabilities"], report["logits"])

    reports = [*verb.values(), language["inside_phrase"]]
    phrase, subject = language["inside_phrase"], language["find_the_subject"]
    at = subject["sizes"].index(t["subject_labels"])
    k = digits["dimensions"].index(t["digit_dimensions"])
    return {
        "number: read after layer 1 (not after layer 0), and from the prediction alike":
            verb["number"]["trained"][1] < t["number_layer0_max"] and verb["number"]["trained"][2] >= t["number_min"]
            and prediction(verb["number"]) >= t["number_min"],
        "distance: read after layer 1, beyond the input":
            verb["distance"]["trained"][2] >= t["distance_min"]
            and verb["distance"]["trained"][2] >= verb["distance"]["trained"][0] + t["beyond_input_min"],
        "opening phrase: the output vector beyond the prediction and the input":
            verb["opening"]["trained"][2] >= prediction(verb["opening"]) + t["opening_beyond_prediction_min"]
            and verb["opening"]["trained"][2] >= verb["opening"]["trained"][0] + t["beyond_input_min"],
        "attractors: no layer beyond the input":
            max(verb["attractors"]["trained"]) <= verb["attractors"]["trained"][0] + t["attractors_gain_max"],
        "inside a phrase: read after layer 0, not from the input":
            phrase["trained"][1] >= t["phrase_layer0_min"] and phrase["trained"][0] <= t["phrase_input_max"],
        "find the subject: the output vectors ahead of the raw words and the untrained model":
            subject["trained"][at] >= t["subject_trained_min"]
            and subject["trained"][at] >= subject["raw words"][at] + t["subject_lead_min"]
            and subject["untrained"][at] <= t["subject_untrained_max"],
        "shuffled labels: never beyond the commonest label":
            all(max(r["shuffled"]) <= r["commonest"] + t["shuffled_margin"] for r in reports),
        "untrained model: no layer beyond its input":
            all(max(r["untrained"]) <= r["untrained"][0] + t["untrained_gain_max"] for r in reports),
        "digits: the ViT's vector ahead of the pixels, the untrained ViT's behind":
            digits["trained"][k] >= digits["pixels"][k] + t["digit_lead_min"]
            and digits["untrained"][k] <= t["digit_untrained_max"],
        "digits: retrieval works in both spaces":
            min(digits["retrieval_pixels"], digits["retrieval_trained"]) >= t["retrieval_min"],
        "embeddings: words of a class alike after training, not before":
            language["embedding_gap"]["trained"] >= t["gap_trained_min"]
            and abs(language["embedding_gap"]["untrained"]) <= t["gap_untrained_max"],
    }


# ---------------------------------------------------------------- many seeds: the record

RECORDED_PROBES = Path(__file__).resolve().parent.parent / "data" / "lesson12_probes.json"


def probe_run(seed: int = 0) -> dict:
    """Every figure lesson 12 checks, for the reference model and the digit ViT of ``seed`` at the current thread
    count (each loaded from the cache, or trained and cached): ``{"seed", "threads", "language", "digits",
    "missed"}``, ``missed`` naming each claim of ``probe_claims`` the run does not meet."""
    from course_lib.experiments.digits import digit_vit, load_digit_split, load_digit_vit
    from course_lib.experiments.reference import load_reference_model

    seed = require_int(seed, "seed", minimum=0)
    run = load_reference_model(seed=seed, progress=False)
    untrained = before_training(run)
    language = language_probe_figures(run.model, untrained, run.vocab)
    split = load_digit_split(seed=PROBE_SETTINGS["digit_split_seed"])
    vit, _ = load_digit_vit(seed=seed, split=split, progress=False)
    digits = digit_probe_figures(vit, digit_vit(seed), split)
    claims = probe_claims(language, digits)
    return {"seed": seed, "threads": torch.get_num_threads(), "language": language, "digits": digits,
            "missed": [claim for claim, holds in claims.items() if not holds]}


def recorded_probes(path: Path | None = None) -> list[dict]:
    """The recorded runs of ``probe_run``, one per (seed, threads); a ValueError if the record was made with other
    settings or thresholds than this course_lib's (then run its command again)."""
    return recorded_runs(RECORDED_PROBES if path is None else path, PROBE_SETTINGS, PROBE_THRESHOLDS)
