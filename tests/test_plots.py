"""The course's pictures: labelled axes, and clear errors when the data does not fit the labels."""

import base64
import inspect
import json
import struct
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import course_lib  # noqa: E402
from course_lib import plots  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_attention_heatmap_labels_tokens_and_axes():
    weights = torch.softmax(torch.randn(3, 4), dim=-1)
    ax = plots.plot_attention(weights, ["a", "b", "c"], ["w", "x", "y", "z"])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["w", "x", "y", "z"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert ax.get_xlabel() and ax.get_ylabel()
    assert len(ax.texts) == 12, "each weight should be written in its cell"


def test_attention_heatmap_keeps_its_scale_when_a_row_is_nan():
    weights = torch.tensor([[0.0, 1.0], [float("nan"), float("nan")]])  # the last query blocked from every key
    ax = plots.plot_attention(weights, ["a", "b"])
    assert ax.images[0].get_clim() == (0.0, 1.0)


def test_attention_heatmap_rejects_mismatched_tokens():
    with pytest.raises(ValueError, match=r"\(query, key\) = \(2, 2\).*got \(3, 3\)"):
        plots.plot_attention(torch.rand(3, 3), ["a", "b"])


def test_loss_curves_positions_timings_and_head_grid_are_labelled():
    ax = plots.plot_losses({"train": [3.0, 2.0, 1.0], "test": [3.5, 2.5, 2.0]})
    assert ax.get_xlabel() == "training step" and ax.get_ylabel() == "loss" and len(ax.lines) == 2
    ax = plots.plot_positions(course_lib.sinusoidal_positions(10, 8))
    assert ax.get_xlabel() == "feature index" and ax.get_ylabel() == "position"
    ax = plots.plot_timings({"loop": 3.0, "batched": 1.0})
    assert ax.get_xlabel() == "time (ms)" and len(ax.patches) == 2
    axes = plots.plot_head_grid(torch.rand(2, 3, 4, 4), list("abcd"))
    assert axes.shape == (2, 3) and axes[1, 2].get_title() == "layer 1, head 2"
    with pytest.raises(ValueError, match="at least one measurement"):
        plots.plot_timings({})
    with pytest.raises(ValueError, match=r"\(position, feature\), got \(4,\)"):
        plots.plot_positions(torch.rand(4))


def test_mask_heatmap_marks_allowed_pairs_and_labels_axes():
    mask = torch.ones(3, 3, dtype=torch.bool).tril()
    ax = plots.plot_mask(mask, ["a", "b", "c"])
    assert [t.get_text() for t in ax.texts] == ["✓", "·", "·", "✓", "✓", "·", "✓", "✓", "✓"]
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title() == "mask"
    with pytest.raises(ValueError, match=r"\(query, key\) = \(2, 2\).*got \(3, 3\)"):
        plots.plot_mask(mask, ["a", "b"])


def test_heads_diagram_draws_one_box_per_head():
    for n_heads in (1, 2, 4):
        ax = plots.plot_heads_diagram(n_heads)
        head_boxes = [t.get_text() for t in ax.texts if t.get_text().startswith("head ")]
        assert [t.split(":")[0] for t in head_boxes] == [f"head {h}" for h in range(n_heads)]
        assert any("softmax" in t for t in head_boxes) and ax.get_title()
        plt.close("all")
    with pytest.raises(ValueError, match="from 1 to 4"):
        plots.plot_heads_diagram(5)


def public_objects():
    """Every public function and class of the library a learner reads: models, experiments, widgets, plots,
    validation, threads."""
    import importlib
    import pkgutil

    names = ["course_lib.plots", "course_lib.validation", "course_lib.threads"]
    for part in ("models", "experiments", "widgets"):
        package = importlib.import_module(f"course_lib.{part}")
        names += [f"{package.__name__}.{info.name}" for info in pkgutil.iter_modules(package.__path__)]
    assert len(names) > 20, names
    for module_name in names:
        module = importlib.import_module(module_name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                yield f"{module_name.removeprefix('course_lib.')}.{name}", obj


@pytest.mark.parametrize("name, obj", list(public_objects()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_public_function_and_class_has_a_docstring(name, obj):
    assert inspect.getdoc(obj) and len(inspect.getdoc(obj)) > 15, f"{name} has no docstring"


# --- the course's figure style ------------------------------------------------------------------------------

# Deuteranopia as Machado, Oliveira & Fernandes (2009) simulate it (severity 1), on linear RGB.
_DEUTERANOPIA = ((0.367322, 0.860646, -0.227968), (0.280085, 0.672501, 0.047413), (-0.011820, 0.042940, 0.968881))


def _linear(rgb):
    return [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]


def _as_seen_with_deuteranopia(rgb):
    lin = _linear(rgb)
    out = [max(0.0, min(1.0, sum(m * c for m, c in zip(row, lin)))) for row in _DEUTERANOPIA]
    return [1.055 * c ** (1 / 2.4) - 0.055 if c > 0.0031308 else 12.92 * c for c in out]


def _distance(a, b) -> float:
    return 255 * sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5


def red_green_pairs(colours) -> list[tuple]:
    """Pairs of colours that a reader with normal vision tells apart (over 100 RGB units) but a reader with
    deuteranopia hardly can (under 40): the red-green distinctions the course must not rely on."""
    rgbs = sorted({matplotlib.colors.to_rgb(c) for c in colours})
    return [(a, b) for i, a in enumerate(rgbs) for b in rgbs[i + 1:]
            if _distance(a, b) > 100 and _distance(_as_seen_with_deuteranopia(a), _as_seen_with_deuteranopia(b)) < 40]


def figure_colours(fig) -> list:
    """The colours a figure's lines, bars and markers carry (not its images: their colour maps are checked apart)."""
    colours = []
    for ax in fig.axes:
        colours += [line.get_color() for line in ax.lines]
        colours += [patch.get_facecolor() for patch in ax.patches if patch.get_facecolor()[3] > 0]
        for collection in ax.collections:
            colours += [tuple(c) for c in collection.get_facecolors()]
    return colours


def test_the_deuteranopia_check_catches_red_against_green_and_passes_the_palette():
    assert red_green_pairs(["tab:red", "tab:green"])
    assert not red_green_pairs(plots.PALETTE)
    assert not red_green_pairs(["tab:blue", "tab:orange"])


def test_the_course_style_cycles_the_colour_blind_safe_palette_with_line_styles():
    fig, ax = plt.subplots()
    lines = [ax.plot([0, 1], [i, i])[0] for i in range(4)]
    assert [matplotlib.colors.to_hex(line.get_color()) for line in lines] == [c.lower() for c in plots.PALETTE[:4]]
    assert len({str(line.get_linestyle()) for line in lines}) == 4  # compared lines differ in more than colour
    assert plt.rcParams["figure.dpi"] == plots.DPI


FIGURES = {
    "plot_attention": lambda: plots.plot_attention(torch.softmax(torch.randn(6, 6), -1), list("abcdef")).figure,
    "plot_mask": lambda: plots.plot_mask(torch.ones(5, 5, dtype=torch.bool).tril(), list("abcde")).figure,
    "plot_heads_diagram": lambda: plots.plot_heads_diagram(4).figure,
    "plot_losses": lambda: plots.plot_losses({name: [3.0, 2.0, 1.5] for name in "abcdefgh"}).figure,
    "plot_positions": lambda: plots.plot_positions(course_lib.sinusoidal_positions(32, 16)).figure,
    "plot_timings": lambda: plots.plot_timings({"loop": 3.0, "batched": 0.0}).figure,
    "plot_head_grid": lambda: plots.plot_head_grid(torch.rand(2, 8, 5, 5), list("abcde"))[0, 0].figure,
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_every_figure_fits_a_notebook_column_has_a_title_and_no_red_green_pair(name):
    fig = FIGURES[name]()
    fig.canvas.draw()
    width = fig.get_window_extent().width  # pixels at the figure's dpi, as the notebook shows it
    assert width <= 960 + 1, f"{name}: {width:.0f} px wide, over a 960 px column"
    assert fig.get_dpi() == plots.DPI
    titled = [ax for ax in fig.axes if ax.get_title() or fig._suptitle is not None]
    assert titled, f"{name}: no title"
    drawn = [ax for ax in fig.axes if ax.axison and ax.get_label() != "<colorbar>"]
    assert all(ax.get_xlabel() or ax.get_ylabel() or fig._supxlabel is not None for ax in drawn), name
    assert not red_green_pairs(figure_colours(fig)), f"{name}: a red-green pair carries a distinction"


def test_heatmaps_of_weights_share_one_scale_so_panels_compare():
    first = plots.plot_attention(torch.tensor([[0.2, 0.8], [0.5, 0.5]]), ["a", "b"])
    second = plots.plot_attention(torch.tensor([[0.4, 0.6], [0.45, 0.55]]), ["a", "b"])
    assert first.images[0].get_clim() == second.images[0].get_clim() == (0.0, 1.0)


def test_bars_are_labelled_with_their_values_even_at_zero():
    ax = plots.plot_timings({"loop": 3.0, "batched": 0.0})
    assert [t.get_text() for t in ax.texts] == ["3", "0"]


def test_a_legend_outside_sits_beside_the_data():
    fig, ax = plt.subplots()
    for i in range(3):
        ax.plot([0, 1], [i, i + 1], label=f"line {i}")
    legend = plots.legend_outside(ax)
    fig.canvas.draw()
    assert legend.get_window_extent().x0 >= ax.get_window_extent().x1


def _png_widths(path: Path) -> list[int]:
    """The pixel width of every PNG a notebook stores in its outputs (read from the PNG header)."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    widths = []
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {}).get("image/png")
            if data:
                header = base64.b64decode("".join(data) if isinstance(data, list) else data)[:24]
                widths.append(struct.unpack(">I", header[16:20])[0])
    return widths


STORED = sorted([*ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("notebooks/extras/*.ipynb"), *ROOT.glob("solutions/*.ipynb")])


@pytest.mark.parametrize("path", STORED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_stored_figure_fits_a_960_pixel_column(path):
    """JupyterLab shrinks a wider picture to the column, and its text with it: none may be wider."""
    too_wide = [width for width in _png_widths(path) if width > 960]
    assert not too_wide, f"{path.name}: figures {too_wide} px wide (at most 960: course_lib.plots.MAX_WIDTH_INCHES)"


@pytest.mark.parametrize("path", STORED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_notebook_draws_with_red_against_green(path):
    code = "\n".join("".join(cell["source"]) for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]
                     if cell["cell_type"] == "code")
    named = {c for c in ("tab:red", "tab:green", '"red"', '"green"', "'red'", "'green'") if c in code}
    assert not named, f"{path.name} names {sorted(named)}: use course_lib.plots.COLOURS (Okabe-Ito)"


def test_every_figure_can_be_described_in_one_line_for_a_screen_reader(capsys):
    ax = plots.plot_losses({"train": [3.0, 2.0], "test": [3.2, 2.4]}, title="the loss falls")
    assert plots.alt_text(ax.figure) == "Figure: the loss falls (horizontal axis: training step, vertical axis: loss)."
    fig, axes = plt.subplots(1, 2)
    axes[0].set_title("left")
    axes[1].set_title("right")
    fig.supxlabel("position")
    plots.describe(fig)
    assert capsys.readouterr().out == "Figure: 2 panels: left; right (horizontal axis: position).\n"
    assert "\n" not in plots.alt_text(FIGURES["plot_head_grid"]())


@pytest.mark.parametrize("path", sorted(ROOT.glob("notebooks/[0-9][0-9]_*.ipynb")), ids=lambda p: p.name)
def test_every_lesson_figure_is_described_in_words(path):
    """JupyterLab gives a plotted image no alt text: each figure's cell prints its description (describe())."""
    silent = []
    for number, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
        pictures = [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        words = "".join(o.get("text", "") if isinstance(o.get("text", ""), str) else "".join(o["text"])
                        for o in cell.get("outputs", []) if o.get("output_type") == "stream")
        if pictures and "Figure: " not in words:
            silent.append(number)
    assert not silent, f"{path.name}: cells {silent} show a figure without describing it (course_lib.plots.describe)"
