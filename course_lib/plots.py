"""The course's pictures: attention heatmaps, masks, loss curves, positional encodings, timing charts, and a
diagram of multi-head attention; and the one figure style every lesson uses.

Each function draws on ``ax`` (a new figure if None) and returns the Axes; every axis is labelled and every
figure has a title.

**The style** (applied when this module is imported; ``use_course_style()`` applies it again):

- ``PALETTE``: Okabe and Ito's eight colours, safe for the common forms of colour blindness (no red against
  green); ``COLOURS`` names them. The colour cycle pairs each colour with its own line style (``LINE_STYLES``),
  so compared lines differ in more than colour.
- Figures at most ``MAX_WIDTH_INCHES`` wide at ``DPI``: 960 pixels, a notebook column at 100 % beside the
  file browser, so that JupyterLab never shrinks them and their 10-point text stays readable.
- Heatmaps of weights share one scale, 0 to 1, so that two panels can be compared by eye.
- ``label_bars(ax, bars)`` writes each bar's value on it (a bar of 0 is still read); ``legend_outside(ax)``
  puts the legend beside the data, never on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_lib.threads import apply_thread_policy
from course_lib.validation import shape_str

apply_thread_policy()  # the course's thread count, once (see course_lib.threads)

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision deficiency.
COLOURS = {"blue": "#0072B2", "orange": "#E69F00", "green": "#009E73", "vermillion": "#D55E00",
           "sky": "#56B4E9", "purple": "#CC79A7", "yellow": "#F0E442", "black": "#000000"}
PALETTE = list(COLOURS.values())
LINE_STYLES = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 3)), (0, (8, 3))]
DPI = 100
MAX_WIDTH_INCHES = 9.6  # x DPI = 960 pixels


def use_course_style() -> None:
    """Set matplotlib's defaults to the course's style (see the module's docstring)."""
    from cycler import cycler

    plt.rcParams.update({
        "axes.prop_cycle": cycler(color=PALETTE) + cycler(linestyle=LINE_STYLES),
        "figure.dpi": DPI, "savefig.dpi": DPI, "figure.figsize": (6.4, 3.6),
        "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
        "xtick.labelsize": 9, "ytick.labelsize": 9, "image.cmap": "viridis",
    })


use_course_style()


def label_bars(ax, bars, fmt: str = "{:.2f}", inside: bool = False):
    """Write each bar's value at its end (``inside``: within the bar), so that a bar of 0 is read as 0.
    ``bars``: what ``ax.bar`` or ``ax.barh`` returned."""
    return ax.bar_label(bars, labels=[fmt.format(value) for value in bars.datavalues],
                        label_type="center" if inside else "edge", padding=2, fontsize=8)


def legend_outside(ax, **kwargs):
    """The legend beside the axes, on their right, never over the data (``kwargs`` go to ``ax.legend``)."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kwargs)


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=float)


def _grid_key_tokens(grid: np.ndarray, query_tokens, key_tokens, name: str) -> list:
    """The key tokens (the query tokens when None), once ``grid`` is checked to be ``(query, key)``."""
    key_tokens = list(query_tokens if key_tokens is None else key_tokens)
    if grid.ndim != 2 or grid.shape != (len(query_tokens), len(key_tokens)):
        raise ValueError(f"{name} must have shape (query, key) = ({len(query_tokens)}, {len(key_tokens)}) "
                         f"to match the tokens, got {shape_str(grid.shape)}")
    return key_tokens


def plot_attention(weights, query_tokens: Sequence[str], key_tokens: Sequence[str] | None = None,
                   ax=None, title: str = "attention weights", show_values: bool | None = None, vmax: float | None = 1.0):
    """Heatmap of ``weights (query, key)``: row i shows how query token i spreads its attention. The colour
    scale runs from 0 to ``vmax`` (1: every weight; two such heatmaps can be compared by eye); ``vmax=None``
    stretches it to the largest weight shown."""
    w = _as_numpy(weights)
    key_tokens = _grid_key_tokens(w, query_tokens, key_tokens, "weights")
    if ax is None:
        side = max(3.0, 0.45 * max(w.shape) + 1.5)
        _, ax = plt.subplots(figsize=(side + 1, side))
    # nanmax: a row of NaN (a query blocked from every key) is drawn empty and does not break the scale
    top = vmax if vmax is not None else max(1e-9, float(np.nanmax(w))) if np.isfinite(w).any() else 1.0
    image = ax.imshow(w, cmap="Blues", vmin=0, vmax=top)
    ax.set_xticks(range(len(key_tokens)), key_tokens, rotation=60, ha="right")
    ax.set_yticks(range(len(query_tokens)), query_tokens)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(title)
    if show_values if show_values is not None else max(w.shape) <= 10:
        for i in range(w.shape[0]):
            for j in range(w.shape[1]):
                ax.text(j, i, f"{w[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if w[i, j] > 0.6 * top else "black")
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="weight")
    return ax


def plot_mask(mask, query_tokens: Sequence[str], key_tokens: Sequence[str] | None = None, ax=None,
              title: str = "mask"):
    """Heatmap of a bool ``mask (query, key)``: dark where the query may attend (True), light where blocked."""
    m = _as_numpy(mask)
    key_tokens = _grid_key_tokens(m, query_tokens, key_tokens, "mask")
    if ax is None:
        side = max(2.5, 0.4 * max(m.shape) + 1.2)
        _, ax = plt.subplots(figsize=(side, side))
    ax.imshow(m, cmap="Greys", vmin=-0.4, vmax=1.2)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, "✓" if m[i, j] else "·", ha="center", va="center", fontsize=9,
                    color="white" if m[i, j] else "grey")
    ax.set_xticks(range(len(key_tokens)), key_tokens, rotation=60, ha="right")
    ax.set_yticks(range(len(query_tokens)), query_tokens)
    ax.set_xlabel("key (may be attended to?)")
    ax.set_ylabel("query")
    ax.set_title(title)
    return ax


def plot_heads_diagram(n_heads: int = 2, ax=None, title: str = "multi-head attention: one layer"):
    """A diagram of one multi-head attention layer, drawn with boxes and arrows: the input x is projected to
    queries, keys and values; each is cut into ``n_heads`` slices; every head attends in its own slice; the
    heads' outputs are concatenated and mixed by the output projection."""
    if not isinstance(n_heads, int) or not 1 <= n_heads <= 4:
        raise ValueError(f"n_heads must be a whole number from 1 to 4 (the diagram has room for 4), got {n_heads!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(MAX_WIDTH_INCHES, 1.6 + 1.1 * n_heads))
    colours = [COLOURS["sky"], COLOURS["orange"], COLOURS["green"], COLOURS["purple"]]
    height = 1.0 + 1.1 * n_heads

    def box(x, y, w, h, text, colour="0.85", size=9):
        ax.add_patch(plt.Rectangle((x, y), w, h, facecolor=colour, edgecolor="0.3", alpha=0.8))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size)

    def arrow(x0, y0, x1, y1):
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops={"arrowstyle": "->", "color": "0.3"})

    middle = height / 2
    box(0.0, middle - 0.5, 1.3, 1.0, "x\n(time,\nd_model)")
    for r, (name, role) in enumerate([("Q", "what I look for"), ("K", "what I offer"), ("V", "what I hand over")]):
        y = middle + 0.9 - 0.9 * r
        box(1.7, y - 0.3, 1.5, 0.6, f"{name} = x W_{name}\n{role}", size=8)
        arrow(1.3, middle, 1.7, y)
    for h in range(n_heads):
        y = 0.5 + 1.1 * (n_heads - 1 - h)  # head 0 on top
        box(3.9, y, 3.0, 0.8, f"head {h}: softmax(Q{h} K{h}ᵀ / √d_head) V{h}\non features {h}·d_head … "
            f"{h + 1}·d_head − 1", colour=colours[h], size=8)
        for r in range(3):
            arrow(3.2, middle + 0.9 - 0.9 * r, 3.9, y + 0.4)
        arrow(6.9, y + 0.4, 7.4, middle)
    box(7.4, middle - 0.5, 1.3, 1.0, "concatenate\nthe heads")
    box(9.1, middle - 0.5, 1.5, 1.0, "output\nprojection\nd_model →\nd_model", size=8)
    arrow(8.7, middle, 9.1, middle)
    ax.set_xlim(-0.1, 10.7)
    ax.set_ylim(0, height + 0.4)
    ax.set_axis_off()
    ax.set_title(title)
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
        legend_outside(ax)
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
    bars = ax.barh(names, [timings[n] for n in names], color=COLOURS["blue"])
    label_bars(ax, bars, fmt="{:.3g}")
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
    side = min(2.4, MAX_WIDTH_INCHES / H)  # however many heads, the grid fits the column
    fig, axes = plt.subplots(L, H, figsize=(side * H, side * L), squeeze=False)
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


def alt_text(fig=None) -> str:
    """A one-line description of ``fig`` (the current figure if None) from its titles and axis labels: what a
    screen reader says in place of the picture. JupyterLab gives a plotted image no alt text of its own, so the
    course prints this line with every figure (``describe``)."""
    fig = plt.gcf() if fig is None else fig
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and (ax.axison or ax.get_title())]
    title = fig._suptitle.get_text() if fig._suptitle is not None else ""
    titles = [ax.get_title() for ax in panels if ax.get_title()]
    parts = [title or "; ".join(dict.fromkeys(titles)) or "an untitled figure"]
    if len(panels) > 1:
        parts[0] = f"{len(panels)} panels: " + parts[0] if not title else parts[0] + f" ({len(panels)} panels)"
    labelled = next((ax for ax in panels if ax.get_xlabel() or ax.get_ylabel()), None)
    xlabel = labelled.get_xlabel() if labelled is not None else ""
    ylabel = labelled.get_ylabel() if labelled is not None else ""
    if fig._supxlabel is not None:
        xlabel = fig._supxlabel.get_text()
    if fig._supylabel is not None:
        ylabel = fig._supylabel.get_text()
    axes_text = ", ".join(f"{name} axis: {label}" for name, label in (("horizontal", xlabel), ("vertical", ylabel))
                          if label)
    return f"Figure: {parts[0]}" + (f" ({axes_text})" if axes_text else "") + "."


def describe(fig=None) -> None:
    """Print ``alt_text(fig)``: the picture's description, for readers who cannot see it (call it before
    ``plt.show()``)."""
    print(alt_text(fig))
