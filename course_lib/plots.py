"""The course's pictures: attention heatmaps, loss curves, positional encodings, timing charts.

Each function draws on ``ax`` (a new figure if None) and returns the Axes; every axis is labelled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .validation import shape_str


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=float)


def plot_attention(weights, query_tokens: Sequence[str], key_tokens: Sequence[str] | None = None,
                   ax=None, title: str = "attention weights", show_values: bool | None = None):
    """Heatmap of ``weights (query, key)``: row i shows how query token i spreads its attention."""
    w = _as_numpy(weights)
    key_tokens = list(query_tokens if key_tokens is None else key_tokens)
    if w.ndim != 2 or w.shape != (len(query_tokens), len(key_tokens)):
        raise ValueError(f"weights must have shape (query, key) = ({len(query_tokens)}, {len(key_tokens)}) "
                         f"to match the tokens, got {shape_str(w.shape)}")
    if ax is None:
        side = max(3.0, 0.45 * max(w.shape) + 1.5)
        _, ax = plt.subplots(figsize=(side + 1, side))
    image = ax.imshow(w, cmap="Blues", vmin=0, vmax=max(1e-9, float(w.max())))
    ax.set_xticks(range(len(key_tokens)), key_tokens, rotation=60, ha="right")
    ax.set_yticks(range(len(query_tokens)), query_tokens)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(title)
    if show_values if show_values is not None else max(w.shape) <= 10:
        for i in range(w.shape[0]):
            for j in range(w.shape[1]):
                ax.text(j, i, f"{w[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if w[i, j] > 0.6 * w.max() else "black")
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="weight")
    return ax


def plot_losses(losses: Sequence[float] | Mapping[str, Sequence[float]], ax=None, smooth: int = 1,
                title: str = "training loss", log: bool = False):
    """Loss per step; a dict draws one labelled curve per entry. ``smooth`` averages over that many steps."""
    curves = losses if isinstance(losses, Mapping) else {"loss": losses}
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for label, values in curves.items():
        values = _as_numpy(list(values))
        if smooth > 1 and len(values) >= smooth:
            values = np.convolve(values, np.ones(smooth) / smooth, mode="valid")
        ax.plot(np.arange(len(values)) + (smooth - 1 if smooth > 1 else 0), values, label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel("loss")
    if log:
        ax.set_yscale("log")
    ax.set_title(title)
    if len(curves) > 1:
        ax.legend()
    return ax


def plot_positions(encoding, ax=None, title: str = "positional encodings"):
    """Image of an encoding ``(position, feature)``: one row per position."""
    e = _as_numpy(encoding)
    if e.ndim != 2:
        raise ValueError(f"encoding must have shape (position, feature), got {shape_str(e.shape)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    image = ax.imshow(e, aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
    ax.set_xlabel("feature index")
    ax.set_ylabel("position")
    ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, label="value")
    return ax


def plot_timings(timings: Mapping[str, float], ax=None, unit: str = "ms", title: str = "time per run"):
    """Horizontal bars, one per named measurement."""
    if not timings:
        raise ValueError("plot_timings needs at least one measurement")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.5 * len(timings) + 1.2))
    names = list(timings)
    ax.barh(names, [timings[n] for n in names], color="tab:blue")
    ax.invert_yaxis()
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("method")
    ax.set_title(title)
    return ax


def plot_head_grid(attention, tokens: Sequence[str], title: str = "attention heads"):
    """All heads of all layers for one sentence: ``attention (layers, heads, query, key)``."""
    a = _as_numpy(attention)
    if a.ndim != 4 or a.shape[2:] != (len(tokens), len(tokens)):
        raise ValueError(f"attention must have shape (layers, heads, {len(tokens)}, {len(tokens)}), "
                         f"got {shape_str(a.shape)}")
    L, H = a.shape[:2]
    fig, axes = plt.subplots(L, H, figsize=(2.4 * H, 2.4 * L), squeeze=False)
    for layer in range(L):
        for head in range(H):
            ax = axes[layer, head]
            ax.imshow(a[layer, head], cmap="Blues", vmin=0, vmax=1)
            ax.set_title(f"layer {layer}, head {head}", fontsize=9)
            ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=6)
            ax.set_yticks(range(len(tokens)), tokens, fontsize=6)
    fig.supxlabel("key (attended to)")
    fig.supylabel("query (attending)")
    fig.suptitle(title)
    fig.tight_layout()
    return axes
