"""The course's pictures: labelled axes, and clear errors when the data does not fit the labels."""

import inspect

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import course_lib  # noqa: E402
from course_lib import plots  # noqa: E402


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
