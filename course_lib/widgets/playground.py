"""One query, one softmax, live: move the query or the scale and watch the weights and the output move.

Lesson 03. Every word offers a key and a value; one query asks. The weights are
``softmax(scale * keys @ query)`` and the output is the weighted average of the values.
"""

from __future__ import annotations

import numbers

import ipywidgets as widgets
import numpy as np
import traitlets

from course_lib.validation import shape_str, to_numpy
from course_lib.widgets.keyboard import ROOT_CLASS, support_widget
from course_lib.widgets.render import check_tokens, escape

# A hand-made example in two dimensions: axis 0 ~ "is a thing", axis 1 ~ "is an action or relation".
EXAMPLE_WORDS = ["the", "cat", "sat", "on", "the", "mat"]
EXAMPLE_KEYS = [[-1.0, -1.0], [2.0, 0.5], [0.5, 2.0], [-0.5, 1.0], [-1.0, -1.0], [1.5, -0.5]]
# What each word looks for: "the" and "sat" look for things, "cat" and "mat" for what happens to them.
EXAMPLE_QUERIES = [[1.5, 0.0], [0.5, 2.0], [2.0, 0.0], [1.5, -0.5], [1.5, 0.0], [0.0, 1.5]]
MAX_DIMS = 8
_BY_HAND = -1  # the Dropdown's value for "no word asks" (None would mean "nothing selected")


def _fmt(values) -> str:
    # + 0.0 turns -0.0 into 0.0, so a tiny negative number never prints as "-0.00"
    return "[" + ", ".join(f"{round(float(v), 2) + 0.0:.2f}" for v in values) + "]"


def softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by the maximum so large scales cannot overflow."""
    shifted = np.exp(scores - scores.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def _matrix(x, name: str, rows: int, cols: int | None = None) -> np.ndarray:
    a = to_numpy(x if not isinstance(x, list) else np.asarray(x, dtype=float), name)
    if a.ndim != 2 or a.shape[0] != rows or (cols is not None and a.shape[1] != cols):
        want = f"({rows}, {'d' if cols is None else cols})"
        raise ValueError(f"{name} must have shape {want}, one row per word, got {shape_str(a.shape)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


class _SliderEchoes:
    """What Python sent to one slider that the browser may still send back, rounded to the slider's step.

    A browser rounds a slider's value to the slider's grid when it draws the slider or receives a new value,
    and sends the rounded value back (2.0 comes back as 2.000000000000001). During Run All such an echo of an
    *old* value can reach the kernel after Python has already moved on: it must not count as the learner's
    move. ``sent`` holds the values sent since the browser last answered with the newest one.
    """

    def __init__(self, slider: widgets.FloatSlider):
        self.slider = slider
        self.sent: list[float] = []

    def send(self, value: float) -> None:
        """Set the slider from Python (the caller suppresses its own observers)."""
        if self.slider.value != value and (not self.sent or self.sent[-1] != value):
            self.sent = (self.sent + [value])[-8:]
        self.slider.value = value

    def _near(self, a: float, b: float) -> bool:
        return abs(a - b) <= self.slider.step / 2 + 1e-9 * max(1.0, abs(b))

    def classify(self, value: float) -> str:
        """"current": the newest sent value, rounded; "stale": an older sent value; "move": the learner's."""
        if self.sent and self._near(value, self.sent[-1]):
            self.sent = self.sent[-1:]
            return "current"
        if any(self._near(value, old) for old in self.sent[:-1]):
            return "stale"
        self.sent = []
        return "move"


class PlaygroundError(traitlets.TraitError, ValueError):
    """An invalid playground state; a ValueError, and a TraitError so traitlets keeps the old value."""


class AttentionPlayground(widgets.VBox):
    """Watch one softmax: a query scores every word's key, the weights average the values.

    ``words``: T strings. ``keys``: ``(T, d)``, what each word offers to be found by (d <= 8, one slider
    each). ``values``: ``(T, d_v)``, what each word hands over (default: the keys). ``queries``: ``(T, d)``,
    what each word asks for when you pick it as the asking word (default: the keys).
    Without arguments you get a two-dimensional example on "the cat sat on the mat".

    State (traits): ``query`` a tuple of d floats; ``asker`` the position of the asking word, or None
    when you set the query by hand; ``scale`` >= 0, multiplies the scores (1 / temperature).
    Results: ``scores (T,)``, ``weights (T,)`` (they sum to 1), ``output (d_v,)`` = ``weights @ values``.
    """

    query = traitlets.Any()
    asker = traitlets.Any(None)
    scale = traitlets.Any(1.0)

    def __init__(self, words=None, keys=None, values=None, queries=None, *, query_word: str | None = None,
                 query=None, scale: float = 1.0):
        if words is None:
            if keys is not None or values is not None or queries is not None:
                raise ValueError("pass words together with keys (and optionally values, queries)")
            words, keys, queries = EXAMPLE_WORDS, EXAMPLE_KEYS, EXAMPLE_QUERIES
            if query_word is None and query is None:
                query_word = "sat"
        elif keys is None:
            raise ValueError("keys are missing: pass keys with shape (T, d), one row per word")
        self.words: list[str] = check_tokens(words, "words")
        T = len(self.words)
        self.key_vectors: np.ndarray = _matrix(keys, "keys", T)  # (T, d)
        d = self.key_vectors.shape[1]
        if not 1 <= d <= MAX_DIMS:
            raise ValueError(f"keys must have between 1 and {MAX_DIMS} dimensions (one slider each), got {d}")
        self.value_vectors: np.ndarray = self.key_vectors if values is None else _matrix(values, "values", T)
        self.query_vectors: np.ndarray = (self.key_vectors if queries is None
                                          else _matrix(queries, "queries", T, d))  # (T, d)
        self._syncing = True
        super().__init__()
        self.add_class("course-attention-playground")
        self.add_class(ROOT_CLASS)  # arrow keys stay on the focused control, focus ring, slider names
        self.set_trait("scale", scale)
        if query_word is not None:
            self.set_trait("asker", self._position(query_word))
            self.set_trait("query", tuple(self.query_vectors[self.asker]))
            if query is not None:
                self.set_trait("query", query)
                self._drop_asker_if_moved()
        else:
            self.set_trait("query", (0.0,) * d if query is None else query)
        self._build_controls()
        self._syncing = False
        self.observe(self._on_state, names=["query", "asker", "scale"])
        self.redraw()

    # ------------------------------------------------------------ state

    def _position(self, word: str) -> int:
        if word not in self.words:
            raise PlaygroundError(f"query_word {word!r} is not in the sentence {self.words}")
        return self.words.index(word)

    @traitlets.validate("query")
    def _valid_query(self, proposal):
        value = proposal["value"]
        d = self.key_vectors.shape[1]
        try:
            vector = np.asarray(value, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            raise PlaygroundError(f"query must be {d} numbers, got {value!r}") from None
        if vector.shape != (d,) or np.ndim(value) != 1:
            raise PlaygroundError(f"query must have shape ({d},) like the keys, got {shape_str(np.shape(value))}")
        if not np.isfinite(vector).all():
            raise PlaygroundError(f"query must be finite, got {value!r}")
        return tuple(float(v) for v in vector)

    @traitlets.validate("asker")
    def _valid_asker(self, proposal):
        value = proposal["value"]
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < len(self.words):
            raise PlaygroundError(f"asker must be None or a position in [0, {len(self.words)}), got {value!r}")
        return int(value)

    @traitlets.validate("scale")
    def _valid_scale(self, proposal):
        value = proposal["value"]
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < float("inf"):
            raise PlaygroundError(f"scale must be a finite number >= 0, got {value!r}")
        return float(value)

    @property
    def query_word(self) -> str | None:
        """The word that asks, or None when the query was set by hand. Set it to a word of the sentence."""
        return None if self.asker is None else self.words[self.asker]

    @query_word.setter
    def query_word(self, word: str | None) -> None:
        self.asker = None if word is None else self._position(word)

    @property
    def scores(self) -> np.ndarray:
        """``(T,)``: ``scale * keys @ query``."""
        return self.scale * (self.key_vectors @ np.asarray(self.query))

    @property
    def weights(self) -> np.ndarray:
        """``(T,)``: the softmax of the scores; non-negative, sums to 1."""
        return softmax(self.scores)

    @property
    def output(self) -> np.ndarray:
        """``(d_v,)``: the weighted average of the values."""
        return self.weights @ self.value_vectors

    @property
    def controls(self) -> dict[str, widgets.Widget]:
        """The widgets you move: "asker" (a dropdown), "query" (a list of sliders), "scale" (a slider)."""
        return {"asker": self._asker_control, "query": list(self._query_controls), "scale": self._scale_control}

    def __repr__(self) -> str:
        return (f"AttentionPlayground(words={len(self.words)}, query_word={self.query_word!r}, "
                f"query={_fmt(self.query)}, scale={self.scale:.2f}, weights={_fmt(self.weights)})")

    def __str__(self) -> str:
        return self.__repr__()

    def _drop_asker_if_moved(self) -> None:
        if self.asker is not None and not np.allclose(self.query, self.query_vectors[self.asker]):
            self.set_trait("asker", None)

    def _on_state(self, change) -> None:
        if self._syncing:
            return
        self._syncing = True  # one redraw per change, however many traits follow it
        try:
            if change["name"] == "asker" and self.asker is not None:
                self.query = tuple(self.query_vectors[self.asker])
            elif change["name"] == "query":
                self._drop_asker_if_moved()
            self._sync_controls()
        finally:
            self._syncing = False
        self.redraw()

    # ------------------------------------------------------------ widgets

    def _build_controls(self) -> None:
        # Dropdown options are set as textContent in the browser: raw words are shown as typed.
        self._asker_control = widgets.Dropdown(
            options=[("(sliders)", _BY_HAND)] + [(f"{i}: {w}", i) for i, w in enumerate(self.words)],
            description="who asks")
        reach = max(3.0, 1.5 * float(np.abs(self.query_vectors).max()), 1.5 * float(np.abs(self.query).max()))
        self._query_controls = [widgets.FloatSlider(min=-reach, max=reach, step=0.05, description=f"query[{i}]",
                                                    continuous_update=True, readout_format=".2f")
                                for i in range(len(self.query))]
        self._scale_control = widgets.FloatSlider(min=0.0, max=max(5.0, 2 * self.scale), step=0.05,
                                                  description="scale", readout_format=".2f")
        self._query_echoes = [_SliderEchoes(slider) for slider in self._query_controls]
        self._scale_echoes = _SliderEchoes(self._scale_control)
        self._sync_controls()
        self._asker_control.observe(
            lambda c: self._from_control("asker", None if c["new"] == _BY_HAND else c["new"]), names="value")
        for i, slider in enumerate(self._query_controls):
            slider.observe(lambda c, i=i: self._from_slider(i, c["new"]), names="value")
        self._scale_control.observe(lambda c: self._from_scale_slider(c["new"]), names="value")
        self._caption = widgets.HTML()
        self._view = widgets.HTML()
        self.children = [support_widget(), self._asker_control, *self._query_controls, self._scale_control,
                         self._caption, self._view]

    def _from_slider(self, i: int, value: float) -> None:
        if self._syncing:
            return
        kind = self._query_echoes[i].classify(value)
        if kind == "stale":  # an old value coming back from the browser: Python's state wins
            self._sync_controls()
        elif kind == "move":
            query = list(self.query)
            query[i] = value
            self.query = tuple(query)
        # "current": the browser rounded the value Python sent; the state keeps Python's exact value

    def _from_scale_slider(self, value: float) -> None:
        if self._syncing:
            return
        kind = self._scale_echoes.classify(value)
        if kind == "stale":
            self._sync_controls()
        elif kind == "move":
            self.scale = value

    def _from_control(self, name: str, value) -> None:
        if not self._syncing:
            setattr(self, name, value)

    def _sync_controls(self) -> None:
        syncing, self._syncing = self._syncing, True
        try:
            self._asker_control.value = _BY_HAND if self.asker is None else self.asker
            for slider, echoes, v in zip(self._query_controls, self._query_echoes, self.query):
                slider.max, slider.min = max(slider.max, abs(v)), min(slider.min, -abs(v))
                echoes.send(v)
            self._scale_control.max = max(self._scale_control.max, self.scale)
            self._scale_echoes.send(self.scale)
        finally:
            self._syncing = syncing

    def redraw(self) -> None:
        """Draw the bar chart of the weights and the output (SVG: fast enough to follow a slider)."""
        who = "your query" if self.asker is None else f"“{escape(self.query_word)}” (position {self.asker})"
        self._caption.value = (f"<span>{who} asks with query {_fmt(self.query)}, scale {self.scale:.2f} → "
                               f"output {_fmt(self.output)}</span>")
        self._view.value = self._svg()

    def _svg(self) -> str:
        """The bar chart of the weights, and the values with their weighted average, as one SVG."""
        bars = bars_svg(self.weights, self.words, self.asker, "attention weight", "word (key)",
                        f"softmax({self.scale:.2f} · key · query)", top=1.0)
        if self.value_vectors.shape[1] == 2:
            right = plane_svg(self.value_vectors, self.words, self.weights, self.output)
        else:
            right = bars_svg(self.output, [f"{i}" for i in range(len(self.output))], None, "output value",
                             "output dimension", "output = weights @ values", top=None)
        return f'<div style="display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start">{bars}{right}</div>'


def bars_svg(heights: np.ndarray, labels: list[str], chosen: int | None, y_label: str, x_label: str,
             title: str, top: float | None) -> str:
    """A labelled bar chart in SVG: ``heights (n,)``, one bar per label (labels are escaped)."""
    n = len(heights)
    width, plot_h, left, base = max(260, 56 * n + 70), 150, 56, 180
    top = top if top is not None else max(1e-9, float(np.abs(heights).max()))
    zero = base - (plot_h / 2 if (heights < 0).any() else 0)
    scale = (plot_h / 2 if (heights < 0).any() else plot_h) / top
    step = (width - left - 10) / n
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{base + 48}" '
             f'font-family="sans-serif" font-size="12" role="img">',
             f'<text x="{width / 2}" y="14" text-anchor="middle" font-weight="bold">{escape(title)}</text>',
             f'<line x1="{left}" y1="{zero}" x2="{width - 8}" y2="{zero}" stroke="#444"/>',
             f'<line x1="{left}" y1="{base - plot_h}" x2="{left}" y2="{base}" stroke="#444"/>',
             f'<text x="{left - 4}" y="{base - plot_h + 4}" text-anchor="end" font-size="10">{top:.2f}</text>',
             f'<text x="{left - 4}" y="{zero + 4}" text-anchor="end" font-size="10">0</text>',
             f'<text transform="translate(14 {base - plot_h / 2}) rotate(-90)" text-anchor="middle">'
             f'{escape(y_label)}</text>',
             f'<text x="{left + (width - left) / 2}" y="{base + 44}" text-anchor="middle">{escape(x_label)}</text>']
    for i, (h, label) in enumerate(zip(heights, labels)):
        x, bar = left + step * i + step * 0.15, abs(float(h)) * scale
        y = zero - bar if h >= 0 else zero
        colour = "#ff7f0e" if i == chosen else "#1f77b4"
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{step * 0.7:.1f}" height="{bar:.1f}" fill="{colour}"/>')
        parts.append(f'<text x="{x + step * 0.35:.1f}" y="{(y - 3 if h >= 0 else y + bar + 11):.1f}" '
                     f'text-anchor="middle" font-size="10">{round(float(h), 2) + 0.0:.2f}</text>')
        parts.append(f'<text x="{x + step * 0.35:.1f}" y="{base + 16}" text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def plane_svg(values: np.ndarray, words: list[str], weights: np.ndarray, output: np.ndarray) -> str:
    """Two-dimensional ``values (T, 2)`` as dots sized by ``weights (T,)``, and ``output (2,)`` as a star."""
    size, pad = 240, 36
    points = np.vstack([values, output[None]])
    low, high = points.min(0) - 0.5, points.max(0) + 0.5
    span = float((high - low).max())

    def at(p):  # value space -> pixels (y grows downwards on screen)
        return pad + (p[0] - low[0]) / span * size, pad + size - (p[1] - low[1]) / span * size

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size + 2 * pad}" height="{size + 2 * pad}" '
             f'font-family="sans-serif" font-size="12" role="img">',
             '<text x="20" y="14" font-weight="bold">values (dot size = weight), output ★</text>',
             f'<rect x="{pad}" y="{pad}" width="{size}" height="{size}" fill="none" stroke="#bbb"/>',
             f'<text x="{pad + size / 2}" y="{size + 2 * pad - 6}" text-anchor="middle">value[0]</text>',
             f'<text transform="translate(14 {pad + size / 2}) rotate(-90)" text-anchor="middle">value[1]</text>']
    # Words with the same value (the two "the"s) share one dot, sized by their summed weight, and one label.
    points: dict[tuple[float, float], list] = {}
    for value, word, w in zip(values, words, weights):
        entry = points.setdefault((round(float(value[0]), 9), round(float(value[1]), 9)), [value, [], 0.0])
        entry[1].append(word)
        entry[2] += float(w)
    for value, names, w in points.values():
        x, y = at(value)
        label = ", ".join(f"{name} ×{names.count(name)}" if names.count(name) > 1 else name
                          for name in dict.fromkeys(names))
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{3 + 14 * np.sqrt(w):.1f}" fill="#1f77b4" '
                     f'fill-opacity="0.55"/>')
        parts.append(f'<text x="{x + 6:.1f}" y="{y - 6:.1f}" font-size="11">{escape(label)}</text>')
    x, y = at(output)
    parts.append(f'<text x="{x:.1f}" y="{y + 8:.1f}" text-anchor="middle" font-size="24" fill="#d62728">★</text>')
    parts.append("</svg>")
    return "".join(parts)
