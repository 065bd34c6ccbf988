"""Different heads learn different relationships: every head's scores against the grammar, and what
silencing it costs. Lesson 09.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from course_lib.experiments.analysis import ablation_effects, agreement_accuracy, head_scores
from course_lib.experiments.grammar import BASELINE_RULES, Sentence, require_sentences, subject_baselines
from course_lib.experiments.vocab import Vocabulary

SCORES = {"previous_token": "previous-token", "neighbour": "neighbour", "verb_to_subject": "verb->subject",
          "accuracy_drop": "accuracy drop"}
BASELINES = BASELINE_RULES  # each rule of subject_baselines, in words


def _r2(x: float) -> str:
    # + 0.0 turns -0.0 into 0.0: a head whose removal changes nothing prints 0.00, not -0.00
    return f"{round(float(x), 2) + 0.0:.2f}"


def _heatmap_panel(fig, ax, values: np.ndarray, title: str, cmap: str, vmin: float, vmax: float) -> None:
    """One score as a heatmap (layers x heads) on ``ax``, each head's value written in its square, with a colour bar
    as tall as the heatmap itself (an inset of the axes, whose box fits the image)."""
    layers, heads = values.shape
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
    for layer in range(layers):
        for head in range(heads):
            dark = values[layer, head] > vmin + 0.6 * (vmax - vmin)
            ax.text(head, layer, _r2(values[layer, head]), ha="center", va="center", fontsize=9,
                    color="white" if dark else "black")
    ax.set_xticks(range(heads))
    ax.set_yticks(range(layers))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title)
    fig.colorbar(image, cax=ax.inset_axes((1.04, 0.0, 0.06, 1.0)))


class _ShownAsTable:
    """A report that prints, and shows in a notebook, as its ``table()``."""

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return self.table()


@dataclass(frozen=True, eq=False, repr=False)  # repr: the table (_ShownAsTable)
class HeadReport(_ShownAsTable):
    """Scores of every head, each ``(layers, heads)``.

    previous_token: mean weight from each position to the one before it, over every position.
    neighbour: mean weight from each "the" after a preposition to that preposition, which decides the
    next word (a local head, measured where the grammar says the previous word matters).
    verb_to_subject: mean weight from the position that predicts the verb to the subject.
    baselines: how often rules that need no understanding find the subject (``subject_baselines``):
    the fraction a verb->subject head must beat.
    accuracy: agreement accuracy of the whole model; ablated_accuracy: the same with one head silenced.
    accuracy_drop = accuracy - ablated_accuracy: how much the model needs that head.
    """

    previous_token: np.ndarray
    neighbour: np.ndarray
    verb_to_subject: np.ndarray
    accuracy: float
    ablated_accuracy: np.ndarray
    n_sentences: int
    baselines: dict

    @property
    def accuracy_drop(self) -> np.ndarray:
        return self.accuracy - self.ablated_accuracy

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.previous_token.shape)

    def best(self, score: str) -> tuple[int, int]:
        """``(layer, head)`` with the highest ``score``: one of ``SCORES``."""
        if score not in SCORES:
            raise ValueError(f"score must be one of {list(SCORES)}, got {score!r}")
        values = getattr(self, score)
        layer, head = np.unravel_index(int(np.argmax(values)), values.shape)
        return int(layer), int(head)

    def table(self) -> str:
        """A fixed-width text table, one row per head, numbers rounded to 2 decimals."""
        lines = [f"{'layer':>5} {'head':>4}" + "".join(f" {label:>14}" for label in SCORES.values())]
        layers, heads = self.shape
        for layer in range(layers):
            for head in range(heads):
                lines.append(f"{layer:>5} {head:>4}" + "".join(f" {_r2(getattr(self, name)[layer, head]):>14}"
                                                            for name in SCORES))
        lines.append(f"agreement accuracy with every head: {_r2(self.accuracy)} ({self.n_sentences} sentences)")
        lines.append("baselines, the fraction of sentences whose subject a rule finds: " +
                     ", ".join(f"{BASELINES[k]} {_r2(v)}" for k, v in self.baselines.items()))
        return "\n".join(lines)

    def plot(self, fig=None):
        """Four heatmaps (layers x heads): the three attention scores and the accuracy drop. Returns the axes."""
        import matplotlib.pyplot as plt  # a report is meant for display, so pyplot is wanted here

        layers, heads = self.shape
        if fig is None:  # two by two, so that the four panels fit a 960-pixel notebook column (course_lib.plots)
            fig = plt.figure(figsize=(9.0, 2 * (0.9 * layers + 1.4)), layout="constrained")
        axes = fig.subplots(2, 2).ravel()  # (4,): the panels in reading order
        panels = [("previous_token", "Blues", (0, 1)), ("neighbour", "Blues", (0, 1)), ("verb_to_subject", "Blues", (0, 1)),
                  ("accuracy_drop", "Reds", (0, max(0.05, float(self.accuracy_drop.max()))))]
        for ax, (name, cmap, (vmin, vmax)) in zip(axes, panels):
            _heatmap_panel(fig, ax, getattr(self, name), SCORES[name], cmap, vmin, vmax)
        return axes


def head_report(model: torch.nn.Module, sentences: list[Sentence], vocab: Vocabulary,
                reference: list[Sentence] | None = None) -> HeadReport:
    """Score and ablate every head of a course model on agreement ``sentences``.

    ``reference`` (e.g. the training sentences) is where the most common subject position is counted.

    Uses ``course_lib.experiments.analysis``: ``head_scores`` for the attention scores, ``ablation_effects`` for the
    accuracy with each head silenced, ``agreement_accuracy`` for the intact model.
    """
    sentences = require_sentences(sentences, "head_report")
    scores = head_scores(model, sentences, vocab)
    ablated = ablation_effects(model, sentences, vocab)
    return HeadReport(previous_token=scores["previous_token"].cpu().double().numpy(),
                      neighbour=scores["neighbour"].cpu().double().numpy(),
                      verb_to_subject=scores["verb_to_subject"].cpu().double().numpy(),
                      accuracy=agreement_accuracy(model, sentences, vocab),
                      ablated_accuracy=ablated.cpu().double().numpy(),
                      n_sentences=len(sentences), baselines=subject_baselines(sentences, reference))


@dataclass(frozen=True, eq=False, repr=False)  # repr: the table (_ShownAsTable)
class HeadScores(_ShownAsTable):
    """Every head's scores on relations of your choice, each ``(layers, heads)``: the head report of a model that
    reads real text (lesson 14; ``course_lib.experiments.text_heads.text_head_report`` makes one).

    ``scores`` maps a label (``"previous token"``) to its ``(layers, heads)`` array; ``notes`` are lines printed under
    the table (the baselines each score must beat). ``best(label)``, ``table()`` and ``plot()`` work as
    ``HeadReport``'s do.
    """

    scores: dict
    notes: tuple = ()

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(np.asarray(next(iter(self.scores.values()))).shape)

    def best(self, label: str, layer: int | None = None) -> tuple[int, int]:
        """``(layer, head)`` with the highest score ``label`` (one of ``scores``), within ``layer`` if given."""
        if label not in self.scores:
            raise ValueError(f"label must be one of {list(self.scores)}, got {label!r}")
        values = np.asarray(self.scores[label], dtype=float)
        if layer is not None:
            return int(layer), int(np.argmax(values[layer]))
        found_layer, head = np.unravel_index(int(np.argmax(values)), values.shape)
        return int(found_layer), int(head)

    def table(self) -> str:
        """A fixed-width text table, one row per head, numbers rounded to 2 decimals, then the notes."""
        width = max(14, *(len(label) + 1 for label in self.scores))
        lines = [f"{'layer':>5} {'head':>4}" + "".join(f" {label:>{width}}" for label in self.scores)]
        layers, heads = self.shape
        for layer in range(layers):
            for head in range(heads):
                lines.append(f"{layer:>5} {head:>4}" + "".join(
                    f" {_r2(np.asarray(values)[layer, head]):>{width}}" for values in self.scores.values()))
        return "\n".join([*lines, *self.notes])

    def plot(self, fig=None):
        """One heatmap (layers x heads) per score, two to a row so that they fit a notebook column. Returns the axes."""
        import matplotlib.pyplot as plt  # a report is meant for display, so pyplot is wanted here

        layers, heads = self.shape
        rows = (len(self.scores) + 1) // 2
        if fig is None:
            fig = plt.figure(figsize=(9.0, rows * (0.9 * layers + 1.4)), layout="constrained")
        axes = np.atleast_1d(fig.subplots(rows, 2)).ravel()
        for ax in axes[len(self.scores):]:
            ax.set_visible(False)
        for ax, (label, values) in zip(axes, self.scores.items()):
            values = np.asarray(values, dtype=float)
            _heatmap_panel(fig, ax, values, label, "Blues", 0, max(0.05, float(values.max())))
        return axes[:len(self.scores)]
