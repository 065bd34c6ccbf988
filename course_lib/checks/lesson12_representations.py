"""Checks for lesson 12, representations: the training examples of some digits only, nearest-neighbour retrieval,
the labels of a property of your choice, and a linear probe with its bugs found."""

from __future__ import annotations

import numbers

import numpy as np
import torch

from course_lib.experiments.grammar import AgreementGrammar
from course_lib.experiments.probes import nearest_neighbour_accuracy, probe_accuracy
from .kit import Fail, Inputs, call, check, check_tensor, compare, describe_type, fmt_number, non_contiguous, summary

LESSON = "12_representations"


def _as_float(got, label: str, what: str = "the accuracy") -> float:
    """The learner's answer as a Python float, or ``Fail`` saying what came instead."""
    if got is None:
        raise Fail(f"returned None ({label}): did you forget `return`?")
    if isinstance(got, torch.Tensor):
        check_tensor(got, torch.zeros(()), label, what)
        if got.numel() == 1:
            got = got.item()
    if isinstance(got, np.ndarray) and got.size == 1:
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        raise Fail(f"returned {describe_type(got)} ({label}); expected {what} as one number between 0 and 1")
    value = float(got)
    if not np.isfinite(value):
        raise Fail(f"returned {value} ({label}); expected {what} between 0 and 1")
    if value > 1 + 1e-9:
        kind = "a percentage" if value <= 100 else "a count of right answers"
        raise Fail(f"returned {fmt_number(value)} ({label}): that looks like {kind}; return the share of test "
                   f"examples that are right, between 0 and 1")
    if value < 0:
        raise Fail(f"returned {fmt_number(value)} ({label}); an accuracy lies between 0 and 1")
    return value


def _linear_data(rng: Inputs, n: int, d: int, classes: int, noise: float, scale=None):
    """Points whose label is the argmax of a random linear map plus noise: what a linear probe can read."""
    x = rng.randn(n, d)
    if scale is not None:
        x = x * scale
    weights = rng.randn(d, classes)
    scores = (x / (scale if scale is not None else 1)) @ weights + noise * rng.randn(n, classes)
    return x, scores.argmax(1)


def _xor_data(rng: Inputs, n: int):
    """Four clusters at the corners of a square, labelled like XOR: no straight line separates them."""
    corner = rng.randint(4, n)
    centres = torch.tensor([[-2.0, -2.0], [2.0, 2.0], [-2.0, 2.0], [2.0, -2.0]])
    x = centres[corner] + 0.3 * rng.randn(n, 2)
    return x, (corner >= 2).long()


# --- keep_digits -------------------------------------------------------------------------------------------------

def _keep_digits(images, labels, digits):
    keep = torch.isin(labels, torch.as_tensor(list(digits), dtype=labels.dtype))  # (n,) bool
    return images[keep], labels[keep]


def _keep_mistakes(images, labels, digits):
    wanted = torch.as_tensor(list(digits), dtype=labels.dtype)
    keep = torch.isin(labels, wanted)
    order = torch.argsort(labels[keep], stable=True)
    relabelled = torch.searchsorted(torch.sort(wanted).values, labels[keep])
    first = labels == wanted[0]
    return [
        ("keeps the other digits: keep the examples whose label IS among the digits", images[~keep], labels[~keep]),
        ("keeps only the first digit of the list: keep every digit in it", images[first], labels[first]),
        ("renumbers the labels: keep each example's own label, so that a kept 3 is still a 3", images[keep],
         relabelled),
        ("sorts the kept examples by label: keep them in the order they came", images[keep][order],
         labels[keep][order]),
    ]


@check("keep_digits", lesson=LESSON, reference=_keep_digits,
       pieces="a True/False per example (is its label among the digits?), then that mask on images and labels")
def check_keep_digits(candidate) -> str:
    """``keep_digits(images (n, ...), labels (n,), digits) -> (images, labels)``: only the examples whose label is
    among ``digits``, in their order, images and labels alike."""
    rng = Inputs()
    cases = []
    n = rng.int(30, 60)
    digits = sorted(rng.permutation(10)[: rng.int(2, 5)].tolist())
    cases.append((f"{n} digits 8 x 8, keep {digits}", rng.rand(n, 1, 8, 8), rng.randint(10, n), digits))
    n = rng.int(20, 40)
    shuffled = rng.permutation(10)[:3].tolist()
    cases.append((f"{n} examples, keep {shuffled} (not in order)", rng.rand(n, 3), rng.randint(10, n), shuffled))
    one = rng.int(0, 9)
    cases.append((f"keep one digit, [{one}]", rng.rand(25, 1, 8, 8), rng.randint(10, 25), [one]))
    labels = rng.randint(5, 20)  # digits 0-4 only
    cases.append(("digits that do not occur: keep [7, 8], labels only 0-4", rng.rand(20, 1, 8, 8), labels, [7, 8]))
    cases.append(("non-contiguous images, keep [0, 1, 2, 3, 4]", non_contiguous(rng.rand(30, 1, 8, 8)),
                  rng.randint(10, 30), [0, 1, 2, 3, 4]))
    for label, images, labels, digits in cases:
        got = call(candidate, (images, labels, list(digits)), ("images", "labels", "digits"), label)
        if isinstance(got, torch.Tensor) and got.dtype == torch.bool:
            raise Fail(f"returns a mask ({label}): apply it, and return the pair (images, labels) it keeps")
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise Fail(f"returned {describe_type(got)} ({label}); expected the pair (images, labels)")
        got_images, got_labels = got
        expected_images, expected_labels = _keep_digits(images, labels, digits)
        if isinstance(got_labels, torch.Tensor) and isinstance(got_images, torch.Tensor) \
                and got_labels.shape == labels.shape and got_images.shape[0] != labels.shape[0]:
            raise Fail(f"filters the images but not the labels ({label}): keep the same examples of both")
        if isinstance(got_images, torch.Tensor) and got_images.shape == images.shape and len(expected_images) != len(images):
            raise Fail(f"returns every image ({label}): keep the same examples of the images as of the labels")
        for diagnosis, mistake_images, mistake_labels in _keep_mistakes(images, labels, digits):
            if (isinstance(got_images, torch.Tensor) and isinstance(got_labels, torch.Tensor)
                    and got_labels.shape == mistake_labels.shape and torch.equal(got_labels, mistake_labels)
                    and got_images.shape == mistake_images.shape and torch.equal(got_images, mistake_images)
                    and not (torch.equal(mistake_labels, expected_labels)
                             and torch.equal(mistake_images, expected_images))):
                raise Fail(f"{diagnosis} ({label})")
        compare(got_labels, expected_labels, label, what="the labels")
        compare(got_images, expected_images, label, what="the images")
    return summary(len(cases), ["digits out of order", "one digit", "digits that do not occur",
                                "non-contiguous images"], "keeps exactly those examples, in order")


# --- nearest_neighbour_accuracy ----------------------------------------------------------------------------------

@check("nearest_neighbour_accuracy", lesson=LESSON, reference=nearest_neighbour_accuracy,
       builtins=("course_lib.experiments.probes.nearest_neighbour_accuracy",),
       pieces="the distance to every training vector, the nearest one's label, the fraction right")
def check_nearest_neighbour_accuracy(candidate) -> str:
    """``nearest_neighbour_accuracy(train_x (n, d), train_y (n,), test_x (m, d), test_y (m,)) -> float``: the share
    of test vectors whose closest training vector (Euclidean) has the same label."""
    rng = Inputs()
    names = ("train_x", "train_y", "test_x", "test_y")
    cases = []
    n, m, d = rng.int(30, 60), rng.int(10, 25), rng.int(2, 6)
    x, y = _linear_data(rng, n + m, d, 3, noise=1.0)
    cases.append((f"{n} training and {m} test vectors, d {d}, 3 classes (torch tensors)", x[:n], y[:n], x[n:], y[n:]))
    x, y = _linear_data(rng, 50, 4, 2, noise=0.5)
    cases.append(("1 test vector, NumPy arrays", x[:49].numpy(), y[:49].numpy(), x[49:].numpy(), y[49:].numpy()))
    cases.append(("vectors where the closest, the best aligned, the largest dot product and the farthest "
                  "training vector each have another label", *_four_rules_data(rng)))
    # Test points that are copies of training points with other labels: distance 0 wins.
    x, y = rng.randn(20, 5), rng.randint(4, 20)
    cases.append(("test vectors that are exact copies of training vectors", x, y, x[:6].clone(), y[:6].clone()))
    wrong = []  # (label, got, expected, the diagnoses whose share equals the answer's)
    for label, train_x, train_y, test_x, test_y in cases:
        got = _as_float(call(candidate, (train_x, train_y, test_x, test_y), names, label), label)
        expected = nearest_neighbour_accuracy(train_x, train_y, test_x, test_y)
        if abs(got - expected) >= 1e-6:  # float32 answers round the share
            wrong.append((label, got, expected, [diagnosis for diagnosis, value in _retrieval_mistakes(
                train_x, train_y, test_x, test_y) if abs(got - value) < 1e-6]))
    if wrong:
        # A share can match two mistakes by chance (with one test vector every share is 0 or 1): name a mistake
        # only where exactly one matches, on whichever input tells them apart.
        for label, _, _, matches in wrong:
            if len(matches) == 1:
                raise Fail(f"{matches[0]} ({label})")
        label, got, expected, _ = wrong[0]
        raise Fail(f"returned {fmt_number(got)} ({label}); the closest training vectors give {fmt_number(expected)}")
    return ("matches 1-nearest-neighbour retrieval on 4 random inputs, incl. 1 test vector; vectors where the "
            "closest, the best aligned and the largest dot product disagree; exact copies of training vectors")


def _four_rules_data(rng: Inputs):
    """Ten test vectors, each with four training vectors of its own in its own three dimensions: the closest
    (label 0), the best aligned (1), the one with the largest dot product (2) and the farthest (3). Each test
    label is one of the four roles, 4, 3, 2 and 1 times: the right rule scores 0.4, cosine 0.3, dot product 0.2,
    the farthest 0.1. A random rotation and order hide the construction."""
    m = 10
    d = 3 * m
    rows, labels, tests = [], [], []
    for i in range(m):
        u, v, w = torch.eye(d)[3 * i], torch.eye(d)[3 * i + 1], torch.eye(d)[3 * i + 2]
        tests.append(u)
        rows += [u + 0.3 * v, 4 * u, 10 * (0.6 * u + 0.8 * w), -20 * u]
        labels += [0, 1, 2, 3]
    rotation, _ = torch.linalg.qr(rng.randn(d, d))
    train_x = torch.stack(rows) @ rotation
    test_x = torch.stack(tests) @ rotation
    roles = torch.tensor([0] * 4 + [1] * 3 + [2] * 2 + [3])[rng.permutation(m)]
    order = rng.permutation(len(rows))
    return train_x[order], torch.tensor(labels)[order], test_x, roles


def _retrieval_mistakes(train_x, train_y, test_x, test_y) -> list[tuple[str, float]]:
    tx, ty = np.asarray(train_x, dtype=np.float64), np.asarray(train_y)
    qx, qy = np.asarray(test_x, dtype=np.float64), np.asarray(test_y)
    distances = ((qx[:, None] - tx[None]) ** 2).sum(-1)
    unit_t = tx / np.linalg.norm(tx, axis=1, keepdims=True)
    unit_q = qx / np.linalg.norm(qx, axis=1, keepdims=True)
    mistakes = [
        ("took the farthest training vector (argmax of the distances): the neighbour is the closest, argmin",
         float((ty[distances.argmax(1)] == qy).mean())),
        ("used the largest dot product instead of the smallest distance: a long vector wins over a close one",
         float((ty[(qx @ tx.T).argmax(1)] == qy).mean())),
        ("used cosine similarity: the exercise asks for the closest vector by Euclidean distance",
         float((ty[(unit_q @ unit_t.T).argmax(1)] == qy).mean())),
    ]
    if len(qx) > 1:
        own = ((qx[:, None] - qx[None]) ** 2).sum(-1)
        np.fill_diagonal(own, np.inf)
        two_closest = np.sort(own, axis=1)[:, :2]
        # Where test vectors are equally far from each other (the four-rules data), this mistake's answer
        # depends on how ties break: it names nothing there.
        if len(qx) == 2 or not np.isclose(two_closest[:, 0], two_closest[:, 1], rtol=1e-6).any():
            mistakes.append(("compared the test vectors with each other: look for each test vector's neighbour "
                             "among the training vectors", float((qy[own.argmin(1)] == qy).mean())))
    return mistakes


# --- property_labels (open task) ---------------------------------------------------------------------------------

def _property_labels(sentences):
    return torch.tensor([int(s.tokens[1] != "the") for s in sentences])  # does the sentence open with a phrase?


def _labels(got, n: int, label: str) -> np.ndarray:
    if got is None:
        raise Fail(f"returned None ({label}): did you forget `return`?")
    if isinstance(got, torch.Tensor):
        check_tensor(got, torch.zeros(n, dtype=torch.long), label, "the labels")
        got = got.detach().cpu().numpy()
    if not isinstance(got, (np.ndarray, list, tuple)):
        raise Fail(f"returned {describe_type(got)} ({label}); expected one label per sentence: a tensor, array or "
                   f"list of {n} whole numbers")
    try:
        array = np.asarray(got)
    except Exception:
        raise Fail(f"returned {describe_type(got)} ({label}); expected one label per sentence") from None
    if array.shape != (n,):
        raise Fail(f"returned labels of shape {array.shape} ({label}); expected one label per sentence, ({n},)")
    if array.dtype.kind not in "iub":
        raise Fail(f"returned labels of dtype {array.dtype} ({label}); expected whole numbers (0, 1, ...) or "
                   f"True/False, one class per sentence")
    return array.astype(np.int64)


@check("property_labels", lesson=LESSON, reference=_property_labels, time_limit=10.0)
def check_property_labels(candidate) -> str:
    """``property_labels(sentences) -> (n,)``: one whole-number label per sentence, for a property of your choice
    that the grammar's annotations or tokens decide."""
    rng = Inputs()
    sentences = AgreementGrammar(seed=rng.int(1, 10_000)).sentences(200)
    label = "200 grammar sentences"
    before = list(sentences)
    labels = _labels(call(candidate, (sentences,), ("sentences",), label), 200, label)
    if sentences != before:
        raise Fail(f"changes its input `sentences` ({label}): leave the list as it is")
    counts = np.bincount(labels - labels.min())
    if (counts > 0).sum() < 2:
        raise Fail(f"gives every sentence the same label, {int(labels[0])} ({label}): a probe needs at least two "
                   f"classes; choose a property on which sentences differ")
    if counts.max() > 0.97 * 200:
        raise Fail(f"gives {counts.max()} of 200 sentences the same label ({label}): a property this rare cannot "
                   f"be probed on a few hundred sentences; choose one where every class has at least 3% of them")
    again = _labels(call(candidate, (list(sentences),), ("sentences",), f"{label}, asked again"), 200, label)
    if not np.array_equal(labels, again):
        raise Fail(f"gives other labels when asked again for the same sentences ({label}): a property of a sentence "
                   f"must not be random")
    order = rng.permutation(200)
    reordered = [sentences[int(i)] for i in order]
    moved = _labels(call(candidate, (reordered,), ("sentences",), f"{label}, reordered"), 200, label)
    if not np.array_equal(moved, labels[order.numpy()]):
        raise Fail(f"the labels do not follow their sentences when the list is reordered ({label}): label i must "
                   f"come from sentences[i] itself, not from its place in the list")
    single = _labels(call(candidate, ([sentences[0]],), ("sentences",), "a list of 1 sentence"), 1, "a list of 1 sentence")
    if int(single[0]) != int(labels[0]):
        raise Fail(f"labels sentence 0 {int(labels[0])} in a list of 200 but {int(single[0])} alone: a sentence's "
                   f"label must depend only on that sentence")
    return ("one label per sentence, at least two classes, the same on every call and following each sentence, "
            "on 200 random grammar sentences")


# --- probe_accuracy (find the bugs) --------------------------------------------------------------------------

def _load_scikit_learn():
    """Import scikit-learn and fit once: its first import takes seconds that are not the learner's."""
    from sklearn.linear_model import LogisticRegression

    LogisticRegression().fit(np.array([[0.0], [1.0]]), np.array([0, 1]))


@check("probe_accuracy", lesson=LESSON, reference=probe_accuracy, time_limit=10.0, warm_up=_load_scikit_learn,
       builtins=("course_lib.experiments.probes.probe_accuracy",),
       pieces="a LogisticRegression fitted on the training vectors, scored on the test vectors")
def check_probe_accuracy(candidate) -> str:
    """``probe_accuracy(train_x (n, d), train_y (n,), test_x (m, d), test_y (m,)) -> float``: fit a linear probe
    on the training vectors and labels, return its accuracy on the test ones. Exercise 12-4 is a find-the-bugs
    exercise, so every message says what the check sees, not what to change."""
    rng = Inputs()
    names = ("train_x", "train_y", "test_x", "test_y")
    d, classes = rng.int(4, 8), rng.int(3, 4)
    x, y = _linear_data(rng, 400, d, classes, noise=0.6)
    label = f"{classes} classes, d {d}, 300 training and 100 test vectors, NumPy arrays"
    args = (x[:300].numpy(), y[:300].numpy(), x[300:].numpy(), y[300:].numpy())
    got = _as_float(call(candidate, args, names, label), label)
    expected = probe_accuracy(*args)
    if abs(got - expected) > 0.06:
        train_score = probe_accuracy(args[0], args[1], args[0], args[1])  # scored on the data it was fitted on
        test_fit_score = probe_accuracy(args[2], args[3], args[2], args[3])  # the same, with the test vectors
        like_train, like_test_fit = abs(got - train_score) < 1e-9, abs(got - test_fit_score) < 1e-9
        if like_train or like_test_fit:  # either way the probe is scored on vectors it was fitted on
            raise Fail(f"returned {fmt_number(got)}, what a probe scores on the very vectors it was fitted on "
                       f"({label}): the number says how well the probe remembers vectors it has seen, not how well "
                       f"it reads new ones")
        if abs(got - nearest_neighbour_accuracy(*args)) < 1e-9:  # the non-linear read-out the buggy version used
            raise Fail(f"returned {fmt_number(got)}, what a nearest-neighbour read-out scores here ({label}); a linear "
                       f"probe scores about {fmt_number(expected)}: this probe can read more than what the vectors "
                       f"hold in linear form")
        raise Fail(f"returned {fmt_number(got)} ({label}); a linear probe fitted on the training vectors scores "
                   f"about {fmt_number(expected)} on the test vectors")

    # Test labels that follow the opposite rule: a probe of the training data scores ~0 there, not ~1.
    x2, y2 = _linear_data(rng, 200, 3, 2, noise=0.0)
    label = "2 classes, the test labels flipped: a right probe scores near 0 on them (torch tensors)"
    got = _as_float(call(candidate, (x2[:150], y2[:150], x2[150:], 1 - y2[150:]), names, label), label)
    if got > 0.5:
        raise Fail(f"scores {fmt_number(got)} where the test labels are the opposite of the training rule ({label}): "
                   f"a probe that learned the rule from the training data scores near 0 there; this one scores as "
                   f"on the very vectors it was fitted on")

    # Test data the training rule says nothing about, few enough to memorise: fitting on it would score 1.
    x3, y3 = _linear_data(rng, 200, 12, 2, noise=0.0)
    for _ in range(20):  # a right probe scores all 12 by chance once in about 900 draws: then this case says nothing
        test_x3 = rng.randn(12, 12)
        test_y3 = torch.tensor([0, 1] * 6)[rng.permutation(12)]
        if probe_accuracy(x3, y3, test_x3, test_y3) <= 0.99:
            break
    label = "12 test vectors in 12 dimensions with unrelated labels"
    got = _as_float(call(candidate, (x3, y3, test_x3, test_y3), names, label), label)
    if got > 0.99:
        raise Fail(f"scores {fmt_number(got)} on test labels the training data cannot predict ({label}): only a "
                   f"probe that has seen those labels can do that, as on the very vectors it was fitted on")

    # XOR: no straight line does better than about 3 in 4; a non-linear reader gets it all.
    x4, y4 = _xor_data(rng, 300)
    label = "XOR-shaped data, which no straight line separates"
    got = _as_float(call(candidate, (x4[:200], y4[:200], x4[200:], y4[200:]), names, label), label)
    if got > 0.9:
        raise Fail(f"scores {fmt_number(got)} on XOR-shaped data ({label}), which no straight line separates: "
                   f"this probe can read more than what the vectors hold in linear form")

    # Labels that are not 0 .. k-1.
    x5, y5 = _linear_data(rng, 300, 5, 2, noise=0.3)
    labels5 = np.where(y5.numpy() == 1, 7, 3)
    label = "labels 3 and 7 (not 0 and 1)"
    args5 = (x5[:200].numpy(), labels5[:200], x5[200:].numpy(), labels5[200:])
    got = _as_float(call(candidate, args5, names, label), label)
    expected = probe_accuracy(*args5)
    if abs(got - expected) > 0.1:
        raise Fail(f"returned {fmt_number(got)} ({label}); a linear probe scores about {fmt_number(expected)} "
                   f"with labels that are not 0 and 1")
    return ("a linear probe, fitted on the training data and scored on the test data, on 5 random data sets, incl. "
            "flipped test labels; XOR; labels 3 and 7")
