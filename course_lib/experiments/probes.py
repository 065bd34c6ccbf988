"""Another system reads the vectors: linear probes and nearest neighbours on a model's representations. Lesson 12.

A **probe** is a logistic regression (scikit-learn) trained on vectors a model produced, with labels the model
was never trained to output; its accuracy on held-out vectors measures how much of that information the
vectors carry in a form a simple system can read.

    probe_accuracy(train_x, train_y, test_x, test_y)          fit on one part, score on the other
    nearest_neighbour_accuracy(train_x, train_y, test_x, test_y)  retrieval: the label of the closest vector
    layer_vectors(model, ids, positions)                      (n, layers + 1, d_model) at one position per row
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from course_lib.experiments.analysis import capture

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


def probe_accuracy(train_x, train_y, test_x, test_y, seed: int = 0) -> float:
    """Fit a linear probe (features scaled to mean 0 and variance 1, then a logistic regression) on
    ``train_x (n, d)``, ``train_y (n,)``; return its accuracy on ``test_x (m, d)``, ``test_y (m,)``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_x, train_y, test_x, test_y = _checked(train_x, train_y, test_x, test_y)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=MAX_ITER, random_state=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=UserWarning)  # a probe that did not converge must not pass quietly
        probe.fit(train_x, train_y)
    return float(probe.score(test_x, test_y))


def nearest_neighbour_accuracy(train_x, train_y, test_x, test_y) -> float:
    """Retrieval: for each test vector, the label of the closest training vector (Euclidean distance); the share
    of test vectors whose retrieved label is right."""
    train_x, train_y, test_x, test_y = _checked(train_x, train_y, test_x, test_y)
    distances = ((test_x[:, None, :] - train_x[None, :, :]) ** 2).sum(-1)  # (m, n)
    return float((train_y[distances.argmin(1)] == test_y).mean())


@torch.no_grad()
def layer_vectors(model: nn.Module, ids: torch.Tensor, positions) -> torch.Tensor:
    """Run ``model`` on ``ids (batch, time)`` and return the vector at ``positions[b]`` of each row b, before
    the first block and after each block: ``(batch, layers + 1, d_model)``."""
    positions = torch.as_tensor(positions, dtype=torch.long)
    if positions.shape != (ids.shape[0],):
        raise ValueError(f"positions must hold one position per row of ids, shape ({ids.shape[0]},), "
                         f"got {tuple(positions.shape)}")
    was_training = model.training
    model.eval()
    try:
        with capture(model, attention=False, hidden=True) as record:
            model(ids)
    finally:
        model.train(was_training)
    hidden = record.hidden  # (batch, layers + 1, time, d_model)
    return hidden[torch.arange(len(ids)), :, positions]
