"""``AttentionExplorer``: every head of one sentence, as a heatmap, token lines, all heads, or two compared.

Lesson 09 and the explorer notebook. Python draws each view and sends only that picture to the browser.
"""

from __future__ import annotations

import numbers

import ipywidgets as widgets
import numpy as np
import torch
import traitlets

from course_lib.experiments.analysis import capture_attention
from course_lib.widgets.keyboard import CHECK, ROOT_CLASS, support_widget
from course_lib.widgets.render import (as_attention, check_tokens, compare_html, escape, heatmap_html,
                                      thumbnail_png, token_view_html)

__all__ = ["AVERAGE", "AttentionExplorer", "StateError"]

AVERAGE = "average"
VIEWS = ("heatmap", "tokens", "grid", "compare")
_VIEW_LABELS = {"heatmap": "heatmap", "tokens": "token lines", "grid": "all heads", "compare": "compare heads"}
_BUTTONS = {"button_width": "auto", "description_width": "initial"}  # as wide as their labels


class StateError(traitlets.TraitError, ValueError):
    """An invalid widget state (a head that does not exist, ...). A ValueError, and a TraitError so
    traitlets keeps the old value."""


def _integer(value, name: str, size: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise StateError(f"{name} must be an int in [0, {size}), got {type(value).__name__} {value!r}")
    if not 0 <= int(value) < size:
        raise StateError(f"{name}={int(value)} does not exist: this attention has {size} {what} (0 to {size - 1})")
    return int(value)


class AttentionExplorer(widgets.VBox):
    """Inspect the attention weights of one sentence, head by head.

    ``attention``: ``(layers, heads, query, key)`` as a numpy array or torch tensor, or a list of per-layer
    ``(heads, query, key)`` / ``(1, heads, query, key)`` tensors; every row must sum to 1 (or pass
    ``normalize=True``). ``tokens``: one string per position.

    State (traits: read, set and ``observe`` them; setting one redraws exactly as clicking does):
        layer   int in [0, layers)
        head    int in [0, heads), or ``"average"`` for the mean over heads
        query   int in [0, T): the selected token, whose weights the token view draws
        view    ``"heatmap"`` | ``"tokens"`` | ``"grid"`` (all heads of the layer) | ``"compare"``
        compare_head   the head shown beside ``head`` in the compare view (int or ``"average"``)
        compare_layer  the layer of ``compare_head`` (int; starts as ``layer``): compare heads of two layers

    ``weights`` is the ``(query, key)`` matrix on screen and ``query_weights`` its selected row ``(key,)``.
    """

    layer = traitlets.Any(0)
    head = traitlets.Any(0)
    query = traitlets.Any(0)
    view = traitlets.Any("heatmap")
    compare_head = traitlets.Any(1)
    compare_layer = traitlets.Any(0)

    def __init__(self, attention, tokens, *, layer: int = 0, head: int | str = 0, query: int | None = None,
                 view: str = "heatmap", compare_head: int | str | None = None, compare_layer: int | None = None,
                 normalize: bool = False):
        attention, tokens = as_attention(attention, tokens, normalize=normalize)
        self.attention: np.ndarray = attention  # (layers, heads, query, key), float64
        self.tokens: list[str] = tokens
        self.n_layers, self.n_heads, self.n_tokens = attention.shape[0], attention.shape[1], attention.shape[2]
        self._thumbnails: dict[int, list[bytes]] = {}  # layer -> PNG per head; they never change
        self._building = True
        super().__init__()
        self.add_class("course-attention-explorer")
        self.add_class(ROOT_CLASS)  # arrow keys stay on the focused control, focus ring (keyboard.py)
        self.set_trait("layer", layer)
        self.set_trait("head", head)
        if compare_head is None:
            compare_head = 0 if self.head == AVERAGE else (self.head + 1) % self.n_heads
        self.set_trait("query", self.n_tokens - 1 if query is None else query)
        self.set_trait("view", view)
        self.set_trait("compare_head", compare_head)
        self.set_trait("compare_layer", self.layer if compare_layer is None else compare_layer)
        self._build_controls()
        self._building = False
        self.observe(self._on_state, names=["layer", "head", "query", "view", "compare_head", "compare_layer"])
        self.redraw()

    @classmethod
    def from_model(cls, model: torch.nn.Module, ids, tokens, **kwargs) -> "AttentionExplorer":
        """Run a course model (``return_attention=True``) on one sentence: ``ids (T,)`` or ``(1, T)``."""
        ids = torch.as_tensor(ids)
        if ids.dim() == 1:
            ids = ids[None]
        if ids.dim() != 2 or ids.shape[0] != 1:
            raise ValueError(f"ids must be one sentence, shape (T,) or (1, T), got {tuple(ids.shape)}")
        tokens = check_tokens(tokens)
        if len(tokens) != ids.shape[1]:
            raise ValueError(f"ids has {ids.shape[1]} positions but {len(tokens)} tokens were given")
        return cls(capture_attention(model, ids)[0], tokens, **kwargs)

    # ------------------------------------------------------------ state

    @traitlets.validate("layer", "compare_layer")
    def _valid_layer(self, proposal):
        return _integer(proposal["value"], proposal["trait"].name, self.n_layers, "layers")

    @traitlets.validate("head", "compare_head")
    def _valid_head(self, proposal):
        name, value = proposal["trait"].name, proposal["value"]
        if value == AVERAGE and isinstance(value, str):
            return AVERAGE
        if isinstance(value, str):
            raise StateError(f'{name} must be an int in [0, {self.n_heads}) or "{AVERAGE}", got {value!r}')
        return _integer(value, name, self.n_heads, "heads")

    @traitlets.validate("query")
    def _valid_query(self, proposal):
        return _integer(proposal["value"], "query", self.n_tokens, "tokens")

    @traitlets.validate("view")
    def _valid_view(self, proposal):
        if proposal["value"] not in VIEWS:
            raise StateError(f"view must be one of {VIEWS}, got {proposal['value']!r}")
        return proposal["value"]

    def head_weights(self, layer: int, head: int | str) -> np.ndarray:
        """``(query, key)`` weights of one head, or their mean over heads for ``head="average"``."""
        layer = _integer(layer, "layer", self.n_layers, "layers")
        if head == AVERAGE:
            return self.attention[layer].mean(0)
        return self.attention[layer, _integer(head, "head", self.n_heads, "heads")]

    @property
    def weights(self) -> np.ndarray:
        """The selected head's ``(query, key)`` weights."""
        return self.head_weights(self.layer, self.head)

    @property
    def query_weights(self) -> np.ndarray:
        """``(key,)``: how the selected query token spreads its attention."""
        return self.weights[self.query]

    @property
    def controls(self) -> dict[str, widgets.Widget]:
        """The widgets you click, by the trait they drive: layer, head, query, view, compare_head, compare_layer."""
        return {"layer": self._layer_control, "head": self._head_control, "query": self._query_control,
                "view": self._view_control, "compare_head": self._compare_control,
                "compare_layer": self._compare_layer_control}

    def __repr__(self) -> str:
        return (f"AttentionExplorer(layers={self.n_layers}, heads={self.n_heads}, tokens={self.n_tokens}, "
                f"layer={self.layer}, head={self.head!r}, query={self.query}, view={self.view!r})")

    def __str__(self) -> str:
        return self.__repr__()

    # ------------------------------------------------------------ widgets

    def _head_name(self, head) -> str:
        return "average of heads" if head == AVERAGE else f"head {head}"

    def _build_controls(self) -> None:
        # ToggleButtons put their labels into innerHTML: only our own labels go there, never tokens.
        # Dropdown options are set as textContent, so raw token text is safe (and shown as typed) there.
        # Every control has a name (its description, or its label): screen readers say what it sets.
        heads = [(f"head {h}", h) for h in range(self.n_heads)] + [("average", AVERAGE)]
        self._layer_control = widgets.ToggleButtons(options=[(f"layer {i}", i) for i in range(self.n_layers)],
                                                    value=self.layer, description="layer", style=_BUTTONS)
        self._head_control = widgets.ToggleButtons(options=heads, value=self.head, description="head",
                                                   style=_BUTTONS,
                                                   layout={"margin": "0 0 0 16px"})
        self._query_control = widgets.Dropdown(options=[(f"{i}: {t}", i) for i, t in enumerate(self.tokens)],
                                               value=self.query, description="query")
        self._view_control = widgets.ToggleButtons(options=[(_VIEW_LABELS[v], v) for v in VIEWS],
                                                   value=self.view, description="view", style=_BUTTONS)
        self._compare_layer_control = widgets.Dropdown(options=[(f"layer {i}", i) for i in range(self.n_layers)],
                                                       value=self.compare_layer, description="compare with",
                                                       style={"description_width": "initial"})
        self._compare_control = widgets.Dropdown(options=heads, value=self.compare_head, description="head",
                                                 style={"description_width": "initial"})
        for control, name in ((self._layer_control, "layer"), (self._head_control, "head"),
                              (self._query_control, "query"), (self._view_control, "view"),
                              (self._compare_control, "compare_head"), (self._compare_layer_control, "compare_layer")):
            traitlets.link((self, name), (control, "value"))
        self._caption = widgets.HTML()
        self._heatmap = widgets.HTML()
        self._compare = widgets.HTML()
        self._tokens_view = widgets.HTML()
        self._grid_images = [widgets.Image(format="png") for _ in range(self.n_heads)]
        self._grid_buttons = [widgets.Button(description=f"head {h}", layout={"width": "110px"})
                              for h in range(self.n_heads)]
        for h, button in enumerate(self._grid_buttons):
            button.on_click(lambda _, h=h: setattr(self, "head", h))
        self._grid_cells = [widgets.VBox([image, button], layout={"padding": "3px"})
                            for image, button in zip(self._grid_images, self._grid_buttons)]
        self._grid = widgets.GridBox(self._grid_cells, layout={
            "grid_template_columns": f"repeat({min(self.n_heads, 4)}, 125px)"})
        self._stage = widgets.Box()
        self.children = [support_widget(), self._view_control,
                         widgets.HBox([self._layer_control, self._head_control], layout={"flex_flow": "row wrap"}),
                         self._query_control, self._caption, self._stage]

    def _on_state(self, change) -> None:
        if not self._building:
            self.redraw()

    def redraw(self) -> None:
        """Draw the current view (only that one: other views are drawn when you open them)."""
        self._caption.value = self._caption_html()
        draw = {"heatmap": self._draw_heatmap, "tokens": self._draw_tokens, "grid": self._draw_grid,
                "compare": self._draw_compare}[self.view]
        self._stage.children = draw()

    def _caption_html(self) -> str:
        row = self.query_weights
        top = int(row.argmax())
        q, k = escape(self.tokens[self.query]), escape(self.tokens[top])
        return (f"<span>layer {self.layer} · {self._head_name(self.head)} · query {self.query} "
                f"<b>“{q}”</b> attends most to {top} <b>“{k}”</b> ({row[top]:.2f})</span>")

    def _title(self, head, layer: int | None = None) -> str:
        return f"layer {self.layer if layer is None else layer}, {self._head_name(head)}"

    def _draw_heatmap(self):
        self._heatmap.value = heatmap_html(self.weights, self.tokens, self._title(self.head), self.query)
        return (self._heatmap,)

    def _draw_compare(self):
        right = self.head_weights(self.compare_layer, self.compare_head)
        titles = (self._title(self.head), self._title(self.compare_head, self.compare_layer))
        self._compare.value = compare_html(self.weights, right, self.tokens, titles, self.query)
        return (widgets.VBox([widgets.HBox([self._compare_layer_control, self._compare_control]), self._compare]),)

    def _draw_tokens(self):
        self._tokens_view.value = token_view_html(self.weights, self.tokens, self.query)
        return (self._tokens_view,)

    def _draw_grid(self):
        if self.layer not in self._thumbnails:
            self._thumbnails[self.layer] = [thumbnail_png(a) for a in self.attention[self.layer]]
        for h, (image, png) in enumerate(zip(self._grid_images, self._thumbnails[self.layer])):
            image.value = png
            chosen = h == self.head
            self._grid_cells[h].layout.border = "3px solid #ff9800" if chosen else "3px solid transparent"
            self._grid_buttons[h].button_style = "warning" if chosen else ""
            # beyond colour: a check mark names the selected head (a Button has no pressed state)
            self._grid_buttons[h].description = f"{CHECK} head {h}" if chosen else f"head {h}"
        return (self._grid,)
