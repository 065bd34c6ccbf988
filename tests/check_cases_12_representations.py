"""Right and wrong learner answers to lesson 12's exercises (representations), for tests/test_checks.py."""

from __future__ import annotations

import numpy as np
import torch

from course_lib.experiments.grammar import ADJECTIVES, ADVERBS
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from course_lib.experiments.probes import nearest_neighbour_accuracy, probe_accuracy

# --- keep_digits ---------------------------------------------------------------------------------------------------


def keep_isin(images, labels, digits):
    keep = torch.isin(labels, torch.tensor(digits))
    return images[keep], labels[keep]


def keep_any_equal(images, labels, digits):
    keep = torch.zeros(len(labels), dtype=torch.bool)
    for d in digits:
        keep |= labels == d
    return images[keep], labels[keep]


def keep_by_rows(images, labels, digits):
    rows = [i for i, y in enumerate(labels.tolist()) if y in digits]
    return images[rows], labels[rows]


def keep_the_others(images, labels, digits):
    keep = torch.isin(labels, torch.tensor(digits))
    return images[~keep], labels[~keep]


def keep_first_digit(images, labels, digits):
    keep = labels == digits[0]
    return images[keep], labels[keep]


def keep_renumbered(images, labels, digits):
    keep = torch.isin(labels, torch.tensor(digits))
    new = torch.tensor([sorted(digits).index(y) for y in labels[keep].tolist()], dtype=labels.dtype)
    return images[keep], new


def keep_sorted(images, labels, digits):
    keep = torch.isin(labels, torch.tensor(digits))
    order = torch.argsort(labels[keep], stable=True)
    return images[keep][order], labels[keep][order]


def keep_labels_only(images, labels, digits):
    keep = torch.isin(labels, torch.tensor(digits))
    return images, labels[keep]


def keep_returns_mask(images, labels, digits):
    return torch.isin(labels, torch.tensor(digits))


def keep_in_place(images, labels, digits):
    keep = torch.isin(labels, torch.tensor(digits))
    labels[~keep] = -1
    return images[keep], labels[keep]


KEEP_RIGHT = [("torch.isin", keep_isin), ("one comparison per digit", keep_any_equal),
              ("a list of rows", keep_by_rows)]
KEEP_WRONG = [
    ("the other digits", keep_the_others, "keeps the other digits"),
    ("the first digit only", keep_first_digit, "keeps only the first digit"),
    ("labels renumbered", keep_renumbered, "renumbers the labels"),
    ("sorted by label", keep_sorted, "sorts the kept examples by label"),
    ("labels filtered, images not", keep_labels_only, "returns every image"),
    ("a mask", keep_returns_mask, "returns a mask"),
    ("labels changed in place", keep_in_place, "in place"),
]

# --- nearest_neighbour_accuracy ---------------------------------------------------------------------------------------


def nn_numpy(train_x, train_y, test_x, test_y):
    train_x, test_x = np.asarray(train_x, dtype=float), np.asarray(test_x, dtype=float)
    distances = ((test_x[:, None] - train_x[None]) ** 2).sum(-1)
    return float((np.asarray(train_y)[distances.argmin(1)] == np.asarray(test_y)).mean())


def nn_cdist(train_x, train_y, test_x, test_y):
    train_x, train_y, test_x, test_y = (torch.as_tensor(v) for v in (train_x, train_y, test_x, test_y))
    closest = torch.cdist(test_x.double(), train_x.double()).argmin(1)
    return (train_y[closest] == test_y).float().mean().item()


def nn_loop(train_x, train_y, test_x, test_y):
    train_x, test_x = np.asarray(train_x, dtype=float), np.asarray(test_x, dtype=float)
    right = 0
    for x, y in zip(test_x, np.asarray(test_y)):
        right += int(np.asarray(train_y)[np.linalg.norm(train_x - x, axis=1).argmin()] == y)
    return right / len(test_x)


def nn_farthest(train_x, train_y, test_x, test_y):
    train_x, test_x = np.asarray(train_x, dtype=float), np.asarray(test_x, dtype=float)
    distances = ((test_x[:, None] - train_x[None]) ** 2).sum(-1)
    return float((np.asarray(train_y)[distances.argmax(1)] == np.asarray(test_y)).mean())


def nn_dot(train_x, train_y, test_x, test_y):
    train_x, test_x = np.asarray(train_x, dtype=float), np.asarray(test_x, dtype=float)
    return float((np.asarray(train_y)[(test_x @ train_x.T).argmax(1)] == np.asarray(test_y)).mean())


def nn_cosine(train_x, train_y, test_x, test_y):
    train_x, test_x = np.asarray(train_x, dtype=float), np.asarray(test_x, dtype=float)
    train_x = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    test_x = test_x / np.linalg.norm(test_x, axis=1, keepdims=True)
    return float((np.asarray(train_y)[(test_x @ train_x.T).argmax(1)] == np.asarray(test_y)).mean())


NN_RIGHT = [("NumPy broadcasting", nn_numpy), ("torch.cdist", nn_cdist), ("loop over test vectors", nn_loop)]
NN_WRONG = [
    ("farthest", nn_farthest, "farthest training vector"),
    ("dot product", nn_dot, ("largest dot product", "returned")),
    ("cosine", nn_cosine, ("cosine similarity", "largest dot product", "returned")),
    ("the retrieved labels", lambda a, b, c, d: np.asarray(b)[:len(c)], "expected the accuracy"),
]

# --- probe_accuracy (find the bugs) -------------------------------------------------------------------------------------------------


def probe_scaled(train_x, train_y, test_x, test_y):
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, random_state=0))
    return float(model.fit(train_x, train_y).score(test_x, test_y))


def probe_plain(train_x, train_y, test_x, test_y):
    return LogisticRegression(max_iter=2000, random_state=0).fit(train_x, train_y).score(test_x, test_y)


def probe_by_hand_predict(train_x, train_y, test_x, test_y):
    model = LogisticRegression(max_iter=2000, random_state=1).fit(np.asarray(train_x), np.asarray(train_y))
    return float(np.mean(model.predict(np.asarray(test_x)) == np.asarray(test_y)))


def probe_on_training_data(train_x, train_y, test_x, test_y):
    return probe_scaled(train_x, train_y, train_x, train_y)


def probe_fit_on_test(train_x, train_y, test_x, test_y):
    return probe_scaled(test_x, test_y, test_x, test_y)


def probe_nearest_neighbour(train_x, train_y, test_x, test_y):
    return float(KNeighborsClassifier(1).fit(train_x, train_y).score(test_x, test_y))


def probe_percent(train_x, train_y, test_x, test_y):
    return 100 * probe_scaled(train_x, train_y, test_x, test_y)


PROBE_RIGHT = [("scaled logistic regression", probe_scaled), ("plain logistic regression", probe_plain),
               ("predict and compare", probe_by_hand_predict)]
PROBE_WRONG = [
    ("scored on the training data", probe_on_training_data, ("the very vectors it was fitted on",
                                                             "opposite of the training rule")),
    ("fitted on the test data", probe_fit_on_test, ("the very vectors it was fitted on", "opposite of the training rule",
                                                    "scores about")),
    ("a nearest neighbour, not linear", probe_nearest_neighbour, ("no straight line separates",
                                                                  "nearest-neighbour read-out", "scores about")),
    ("a percentage", probe_percent, "percentage"),
    ("forgot return", lambda *args: None, "forget `return`"),
]



def probe_buggy(train_x, train_y, test_x, test_y):
    """The exercise's buggy probe, as the learner first sees it."""
    x = np.concatenate([np.asarray(train_x), np.asarray(test_x)])
    y = np.concatenate([np.asarray(train_y), np.asarray(test_y)])
    probe = KNeighborsClassifier(1).fit(x, y)
    return 100 * probe.score(np.asarray(train_x), np.asarray(train_y))


PROBE_WRONG.append(("the exercise's buggy probe", probe_buggy, "percentage"))

# --- property_labels --------------------------------------------------------------------------------------------------

LABELS_RIGHT = [
    ("adverb first", lambda sentences: torch.tensor([int(s.tokens[1] in ADVERBS) for s in sentences])),
    ("adjective before the subject", lambda sentences: np.array([s.tokens[s.subject - 1] in ADJECTIVES for s in sentences])),
    ("attractor count, a list", lambda sentences: [len(s.attractors) for s in sentences]),
]
LABELS_WRONG = [
    ("random", lambda sentences: torch.randint(0, 2, (len(sentences),)), ("must not be random", "reordered")),
    ("by place in the list", lambda sentences: [i % 2 for i in range(len(sentences))], "reordered"),
    ("one class", lambda sentences: [0] * len(sentences), "same label"),
    ("strings", lambda sentences: [s.number for s in sentences], "dtype"),
    ("one label", lambda sentences: 1, "expected one label per sentence"),
]

CASES = {
    "keep_digits": (KEEP_RIGHT, KEEP_WRONG),
    "nearest_neighbour_accuracy": (NN_RIGHT, NN_WRONG),
    "property_labels": (LABELS_RIGHT, LABELS_WRONG),
    "probe_accuracy": (PROBE_RIGHT, PROBE_WRONG),
}

NAMED_MISTAKES = [
    ("keep_digits", keep_the_others, "keeps the other digits"),
    ("keep_digits", keep_first_digit, "keeps only the first digit"),
    ("keep_digits", keep_renumbered, "renumbers the labels"),
    ("keep_digits", keep_sorted, "sorts the kept examples by label"),
    ("keep_digits", keep_labels_only, "returns every image"),
    ("nearest_neighbour_accuracy", nn_farthest, "farthest training vector"),
    ("property_labels", LABELS_WRONG[1][1], "do not follow their sentences"),
    ("probe_accuracy", probe_percent, "percentage"),
    ("probe_accuracy", probe_on_training_data, "the very vectors it was fitted on"),
    ("probe_accuracy", probe_fit_on_test, "the very vectors it was fitted on"),
    ("probe_accuracy", probe_nearest_neighbour, "can read more than what the vectors hold in linear form"),
]

DELEGATING = {
    "probe_accuracy": [("course_lib itself", probe_accuracy, "course_lib's probe_accuracy")],
    "nearest_neighbour_accuracy": [("course_lib itself", nearest_neighbour_accuracy,
                                    "course_lib's nearest_neighbour_accuracy")],
}
HAND_BUILT = {"probe_accuracy": "scaled logistic regression", "nearest_neighbour_accuracy": "NumPy broadcasting"}
