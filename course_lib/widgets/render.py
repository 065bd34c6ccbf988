"""Checks and drawing behind course_lib.widgets: attention in, PNG bytes and escaped HTML out.

Everything here runs in Python; a widget only ships the finished picture to the browser, so the
views work offline and the page never holds the whole ``(layers, heads, query, key)`` tensor.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure

from course_lib.validation import shape_str, to_numpy

ROW_SUM_TOLERANCE = 1e-3
CMAP = "Blues"
COLUMN_PX = 940  # JupyterLab's notebook column is 960 px wide (the reviewer's explorer box: 964 px)
COMPARE_GAP_PX = 24
COMPACT_CELL_PX = 18
MIN_CELL_PX = 10
MONO_CHAR_PX = 7.3  # one character of 12 px monospace


# ---------------------------------------------------------------- inputs

def check_tokens(tokens, name: str = "tokens") -> list[str]:
    """A list of strings, one per position."""
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise TypeError(f"{name} must be a list of strings (one per position), got {type(tokens).__name__}")
    for i, token in enumerate(tokens):
        if not isinstance(token, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(token).__name__} {token!r}")
    if len(tokens) == 0:
        raise ValueError(f"{name} is empty; attention needs at least one token")
    return list(tokens)


def as_attention(attention, tokens, normalize: bool = False) -> tuple[np.ndarray, list[str]]:
    """Check attention against its tokens; return ``(weights (layers, heads, query, key) float64, tokens)``.

    ``attention``: an array/tensor ``(layers, heads, T, T)`` (or ``(1, layers, heads, T, T)`` as
    ``capture_attention`` returns it for one sentence), or a list of per-layer ``(heads, T, T)`` or
    ``(1, heads, T, T)`` arrays/tensors, as ``TransformerLM(..., return_attention=True)`` returns them.
    ``normalize=True`` divides every row by its sum instead of rejecting rows that do not sum to 1.
    """
    layout = "(layers, heads, query, key)"
    if isinstance(attention, (list, tuple)):
        if len(attention) == 0:
            raise ValueError("attention is an empty list; expected one (heads, query, key) array per layer")
        layers = []
        for i, layer in enumerate(attention):
            a = to_numpy(layer, f"attention[{i}]")
            if a.ndim == 4 and a.shape[0] == 1:
                a = a[0]
            if a.ndim != 3:
                raise ValueError(f"attention[{i}] must have shape (heads, query, key) or (1, heads, query, key), "
                                 f"got {shape_str(a.shape)} ({a.ndim} dims)")
            if layers and a.shape != layers[0].shape:
                raise ValueError(f"every layer must have the same (heads, query, key) shape: attention[0] is "
                                 f"{shape_str(layers[0].shape)}, attention[{i}] is {shape_str(a.shape)}")
            layers.append(a)
        a = np.stack(layers)
    else:
        a = to_numpy(attention, "attention")
        if a.ndim == 5:
            if a.shape[0] != 1:
                raise ValueError(f"attention holds a batch of {a.shape[0]} sentences, shape {shape_str(a.shape)}; "
                                 f"explore one sentence at a time: pass attention[i], shape {layout}")
            a = a[0]
        if a.ndim != 4:
            raise ValueError(f"attention must have shape {layout}, got {shape_str(a.shape)} ({a.ndim} dims)")
    if a.shape[-1] != a.shape[-2]:
        raise ValueError(f"attention must be square in its last two axes (query = key = one per token), "
                         f"got shape {shape_str(a.shape)}: {a.shape[-2]} queries but {a.shape[-1]} keys")
    tokens = check_tokens(tokens)
    if a.shape[-1] != len(tokens):
        raise ValueError(f"attention covers {a.shape[-1]} tokens, shape {shape_str(a.shape)}, "
                         f"but {len(tokens)} tokens were given")
    if 0 in a.shape:
        raise ValueError(f"attention has an empty axis: shape {shape_str(a.shape)}")
    if not np.isfinite(a).all():
        raise ValueError("attention contains NaN or infinite values")
    if (a < 0).any():
        raise ValueError(f"attention weights must be >= 0 (they come out of a softmax), got a minimum of "
                         f"{a.min():.3g}; if these are raw scores, apply softmax over the key axis first")
    sums = a.sum(-1)  # (layers, heads, query)
    if normalize:
        if (sums == 0).any():
            layer, head, query = np.argwhere(sums == 0)[0]
            raise ValueError(f"cannot normalize: the row of layer {layer}, head {head}, query {query} is all zeros")
        a = a / sums[..., None]
    elif not np.allclose(sums, 1.0, atol=ROW_SUM_TOLERANCE):
        layer, head, query = np.unravel_index(np.abs(sums - 1).argmax(), sums.shape)
        raise ValueError(f"each row of attention must sum to 1 over the keys (softmax weights); row sums range "
                         f"from {sums.min():.3f} to {sums.max():.3f} (layer {layer}, head {head}, query {query} "
                         f"sums to {sums[layer, head, query]:.3f}). Pass normalize=True to divide every row "
                         f"by its sum")
    return a, tokens


# ---------------------------------------------------------------- text

def escape(text: str) -> str:
    """Token text for HTML: shown as text, never interpreted (``<b>x</b>`` stays visible as typed)."""
    return html.escape(text, quote=True)


# ---------------------------------------------------------------- pictures

def figure_png(fig: Figure, dpi: int = 80) -> bytes:
    """Render a (pyplot-free) Figure to PNG bytes. No pyplot, so nothing leaks into notebook outputs."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def _colours(weights: np.ndarray) -> np.ndarray:
    """Hex colours of weights on a fixed 0..1 scale, so a colour means the same in every head."""
    rgba = colormaps[CMAP](np.clip(weights, 0.0, 1.0))
    rgb = (rgba[..., :3] * 255).round().astype(int)
    return np.vectorize(lambda r, g, b: f"#{r:02x}{g:02x}{b:02x}")(rgb[..., 0], rgb[..., 1], rgb[..., 2])


def heatmap_html(weights: np.ndarray, tokens: list[str], title: str, query: int | None = None,
                 compact: bool = False, cell_px: int = COMPACT_CELL_PX) -> str:
    """One head as an HTML table: ``weights (query, key)`` with token labels and values.

    A table rather than a figure: it redraws in about a millisecond, its numbers are text, and it
    stays sharp at any zoom. The selected query row is outlined. Every token is escaped. Each cell leaves
    room around its number, so neighbouring numbers never touch. ``compact``: small cells whose number
    shows when you hover (its ``title``), ``cell_px`` wide, so that two heads of a long sentence fit side by side.
    """
    T = len(tokens)
    colours = _colours(weights)
    labels = [escape(t) for t in tokens]
    if compact:
        cell = f"width:{cell_px}px;min-width:{cell_px}px;height:{cell_px}px;padding:0;border:1px solid #fff"
        # the vertical key labels: a line no wider than a cell
        label_style = f"font-size:{min(12, cell_px - 2)}px;line-height:1;padding:2px 0"
    else:  # "0.00" is 4 characters: 4.8 characters of room leaves a gap between neighbours
        cell = "min-width:4.8ch;height:1.7em;text-align:center;padding:0 3px;border:1px solid #fff"
        label_style = "padding:2px"
    head = "".join(f'<th style="writing-mode:vertical-rl;transform:rotate(180deg);text-align:left;'
                   f'font-weight:normal;{label_style}">{label}</th>' for label in labels)
    # The corner names both axes; in compact tables on two lines, no wider than a row label.
    corner = "key →<br>query ↓" if compact else "query ↓ &nbsp; key →"
    rows = []
    for i in range(T):
        chosen = i == query  # the selected query: an orange label and an orange frame around its row
        frame = ";border-top:2px solid #ff9800;border-bottom:2px solid #ff9800" if chosen else ""
        if compact:
            cells = "".join(f'<td style="{cell}{frame};background:{colours[i, j]}" '
                            f'title="{labels[i]} → {labels[j]}: {weights[i, j]:.2f}"></td>' for j in range(T))
        else:
            cells = "".join(f'<td style="{cell}{frame};background:{colours[i, j]};'
                            f'color:{"#fff" if weights[i, j] > 0.6 else "#000"}">{weights[i, j]:.2f}</td>'
                            for j in range(T))
        label_background = "background:#ffcc80;" if chosen else ""
        rows.append(f'<tr><th style="{label_background}text-align:right;font-weight:normal;padding:0 4px">'
                    f'{i}: {labels[i]}</th>{cells}</tr>')
    return (f'<table class="course-attention-heatmap" style="border-collapse:collapse;font:12px monospace">'
            f'<caption style="font-weight:bold;text-align:left">{escape(title)}</caption>'
            f'<tr><th style="font-weight:normal;color:#666;text-align:right;vertical-align:bottom;padding:2px">'
            f'{corner}</th>{head}</tr>{"".join(rows)}</table>')


def compare_cell_px(tokens: list[str], column_px: int = COLUMN_PX) -> int:
    """The compact cell size at which two heads of ``tokens`` sit side by side in ``column_px`` (at least
    ``MIN_CELL_PX``: narrower than that, the second head wraps below the first instead)."""
    per_head = (column_px - COMPARE_GAP_PX) / 2 - row_label_px(tokens)
    return int(max(MIN_CELL_PX, min(COMPACT_CELL_PX, per_head / len(tokens) - 1)))


def row_label_px(tokens: list[str]) -> float:
    """The width of a compact table's label column in 12 px monospace, with its padding: the widest row
    label ``"i: token"``, or the corner's "query ↓" (7 characters)."""
    return MONO_CHAR_PX * max(7, *(len(f"{i}: {t}") for i, t in enumerate(tokens))) + 10


def top_weights_html(weights: np.ndarray, tokens: list[str], query: int, k: int = 3) -> str:
    """The ``k`` strongest weights of the selected query's row of ``weights (query, key)``, as text."""
    row = weights[query]
    top = sorted(range(len(row)), key=lambda j: (-row[j], j))[:k]
    items = "".join(f"<li>{j}: “{escape(tokens[j])}” {row[j]:.2f}</li>" for j in top)
    return (f'<div class="course-top-weights" style="font:12px monospace;margin-top:4px">'
            f'query {query} “{escape(tokens[query])}” looks most at:'
            f'<ol style="margin:2px 0;padding-left:2.2em">{items}</ol></div>')


def compare_html(left: np.ndarray, right: np.ndarray, tokens: list[str], titles: tuple[str, str],
                 query: int | None, column_px: int = COLUMN_PX) -> str:
    """Two heads on one colour scale: ``left``, ``right`` are ``(query, key)``. They fit a notebook column of
    ``column_px`` (960 px in JupyterLab): beyond 8 tokens the cells are compact and shrink until both heads
    sit side by side; a sentence too long even for the smallest cells puts the second head below the
    first (the row wraps, it never scrolls sideways). Under each head its strongest weights for the
    selected query are written out, so no number needs a hover."""
    compact = len(tokens) > 8
    cell_px = compare_cell_px(tokens, column_px) if compact else COMPACT_CELL_PX
    heads = []
    for w, t in zip((left, right), titles):
        numbers = top_weights_html(w, tokens, query) if query is not None else ""
        heads.append(f'<div style="flex:none;max-width:100%;overflow-x:auto">'
                     f'{heatmap_html(w, tokens, t, query, compact, cell_px)}{numbers}</div>')
    hint = ('<div style="color:#555;font-size:12px">small cells, so that both heads fit: the selected '
            'query\'s strongest weights are written under each head; hover a cell for its weight</div>'
            if compact else "")
    return (f'{hint}<div class="course-compare" style="display:flex;flex-wrap:wrap;gap:12px {COMPARE_GAP_PX}px;'
            f'max-width:{column_px}px">{"".join(heads)}</div>')


def thumbnail_png(weights: np.ndarray) -> bytes:
    """A small unlabeled heatmap ``(query, key)`` for the grid of heads."""
    fig = Figure(figsize=(1.5, 1.5))
    ax = fig.add_axes((0.04, 0.04, 0.92, 0.92))
    ax.imshow(weights, cmap=CMAP, vmin=0.0, vmax=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    return figure_png(fig, dpi=72)


def token_view_html(weights: np.ndarray, tokens: list[str], query: int) -> str:
    """bertviz's head view in SVG: lines from the selected query (left) to every key (right).

    ``weights (query, key)``; a line's opacity and width grow with the weight, and each key's
    background is shaded by its weight. Every token is escaped.
    """
    T = len(tokens)
    row, top = 22, 16
    width_left = width_right = 8 * max(len(t) for t in tokens) + 24
    gap = 160
    x_left, x_right = width_left, width_left + gap
    height = top + row * T + 8
    row_weights = weights[query]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{x_right + width_right + 50}" height="{height}" '
             f'font-family="monospace" font-size="13" role="img">',
             f'<text x="{x_left - 6}" y="11" text-anchor="end" fill="#666" font-size="11">query</text>',
             f'<text x="{x_right + 6}" y="11" fill="#666" font-size="11">key</text>']
    for j, w in enumerate(row_weights):
        if w >= 0.005:
            y_q, y_k = top + row * query + row / 2, top + row * j + row / 2
            parts.append(f'<line x1="{x_left + 4}" y1="{y_q:.1f}" x2="{x_right - 4}" y2="{y_k:.1f}" '
                         f'stroke="#1f77b4" stroke-opacity="{0.15 + 0.85 * w:.3f}" stroke-width="{1 + 6 * w:.2f}"/>')
    for i, token in enumerate(tokens):
        y = top + row * i
        text = escape(token)
        if i == query:
            parts.append(f'<rect x="2" y="{y + 1}" width="{x_left - 4}" height="{row - 2}" fill="#ffcc80"/>')
        parts.append(f'<text x="{x_left - 6}" y="{y + 15}" text-anchor="end">{text}</text>')
        w = row_weights[i]
        parts.append(f'<rect x="{x_right + 2}" y="{y + 1}" width="{width_right - 4}" height="{row - 2}" '
                     f'fill="#1f77b4" fill-opacity="{0.85 * w:.3f}"/>')
        parts.append(f'<text x="{x_right + 6}" y="{y + 15}" fill="{"white" if w > 0.6 else "black"}">{text}</text>')
        parts.append(f'<text x="{x_right + width_right + 4}" y="{y + 15}" fill="#444" font-size="11">{w:.2f}</text>')
    parts.append("</svg>")
    return "".join(parts)
