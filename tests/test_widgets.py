"""course_lib.widgets without a browser: state, redraws, input checks, escaping, reprs, the head report.

Outside a kernel ipywidgets 8 uses a dummy comm, so traits, links and observe callbacks all work here.
"""

import re
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_lib import TransformerLM, agreement_vocabulary, seed_everything
from course_lib.experiments.analysis import capture_attention
from course_lib.widgets import AVERAGE, AttentionExplorer, AttentionPlayground
from course_lib.widgets.keyboard import CSS, ROOT_CLASS, SCRIPT, SUPPORT_HTML
from course_lib.widgets.render import COMPARE_GAP_PX, row_label_px

TOKENS = ["<bos>", "the", "dog", "near", "the", "cats", "runs", "."]
EVIL = ["<script>alert(1)</script>", "<b>x</b>", "a&b", '"quoted"', "$x$", "plain"]


def random_attention(L=2, H=4, T=len(TOKENS), seed=0):
    """(L, H, T, T) rows that sum to 1, different in every head."""
    rng = np.random.default_rng(seed)
    a = rng.random((L, H, T, T)) ** 3
    return a / a.sum(-1, keepdims=True)


def find(root, kind):
    """Every widget of type ``kind`` below ``root`` (depth first), through public ``children``."""
    found = [root] if isinstance(root, kind) else []
    for child in getattr(root, "children", ()):
        found += find(child, kind)
    return found


def view_html(explorer):
    """The HTML of every HTML widget on screen: the caption and the current view."""
    return "".join(w.value for w in find(explorer, widgets.HTML))


def test_numpy_torch_and_list_inputs_agree():
    a = random_attention()
    from_numpy = AttentionExplorer(a, TOKENS)
    from_torch = AttentionExplorer(torch.tensor(a, dtype=torch.float32, requires_grad=True), TOKENS)
    per_layer = AttentionExplorer([torch.tensor(a[i]) for i in range(2)], TOKENS)
    per_layer_batched = AttentionExplorer([torch.tensor(a[i])[None] for i in range(2)], TOKENS)
    captured_shape = AttentionExplorer(a[None], TOKENS)  # (1, L, H, T, T) as capture_attention returns it
    for explorer in (from_torch, per_layer, per_layer_batched, captured_shape):
        assert explorer.attention.shape == (2, 4, 8, 8)
        np.testing.assert_allclose(explorer.attention, a, atol=1e-6)
    for explorer in (from_numpy, from_torch):
        explorer.head = 3
        explorer.query = 2
    np.testing.assert_allclose(from_torch.query_weights, a[0, 3, 2], atol=1e-6)
    np.testing.assert_allclose(from_numpy.weights, a[0, 3])


def test_from_model_matches_capture_attention():
    seed_everything(0)
    vocab = agreement_vocabulary()
    model = TransformerLM(len(vocab), d_model=16, n_heads=2, n_layers=2, max_len=12)
    ids = torch.tensor(vocab.encode(TOKENS))
    explorer = AttentionExplorer.from_model(model, ids, TOKENS, head=1)
    expected = capture_attention(model, ids[None])[0].double().numpy()
    np.testing.assert_allclose(explorer.attention, expected, atol=1e-6)
    assert (explorer.n_layers, explorer.n_heads, explorer.n_tokens, explorer.head) == (2, 2, 8, 1)
    batched = AttentionExplorer.from_model(model, ids[None], TOKENS)
    np.testing.assert_allclose(batched.attention, explorer.attention)
    # a causal model: no query looks at a later key
    assert np.allclose(np.triu(explorer.attention, k=1), 0)
    with pytest.raises(ValueError, match=r"one sentence.*\(2, 8\)"):
        AttentionExplorer.from_model(model, torch.stack([ids, ids]), TOKENS)
    with pytest.raises(ValueError, match="8 positions but 7 tokens"):
        AttentionExplorer.from_model(model, ids, TOKENS[:-1])


@pytest.mark.parametrize("bad, message", [
    (np.full((2, 4, 8, 7), 1 / 7), r"square.*\(2, 4, 8, 7\).*8 queries but 7 keys"),
    (random_attention(T=6), r"covers 6 tokens.*but 8 tokens were given"),
    (random_attention()[0], r"\(layers, heads, query, key\), got \(4, 8, 8\) \(3 dims\)"),
    (random_attention()[0, 0], r"\(layers, heads, query, key\), got \(8, 8\) \(2 dims\)"),
    (np.stack([random_attention()] * 3), r"batch of 3 sentences"),
    (random_attention() * 2, r"sum to 1.*from 2\.000 to 2\.000.*normalize=True"),
    (-random_attention(), r">= 0.*softmax"),
    (np.where(np.eye(8, dtype=bool), np.nan, random_attention()), r"NaN"),
    ([random_attention()[0], random_attention()[0, :2]], r"same \(heads, query, key\) shape"),
    ([], r"empty list"),
])
def test_bad_attention_raises_clear_value_error(bad, message):
    with pytest.raises(ValueError, match=message):
        AttentionExplorer(bad, TOKENS)


def test_rows_not_summing_to_one_name_the_row_and_normalize_fixes_them():
    a = random_attention()
    a[1, 2, 5] *= 1.5
    with pytest.raises(ValueError, match=r"layer 1, head 2, query 5 sums to 1\.500"):
        AttentionExplorer(a, TOKENS)
    explorer = AttentionExplorer(a, TOKENS, normalize=True)
    np.testing.assert_allclose(explorer.attention.sum(-1), 1.0)
    np.testing.assert_allclose(explorer.attention[1, 2, 5], random_attention()[1, 2, 5])


def test_bad_tokens_raise():
    with pytest.raises(TypeError, match=r"tokens\[2\] must be a str, got int"):
        AttentionExplorer(random_attention(), TOKENS[:2] + [3] + TOKENS[3:])
    with pytest.raises(TypeError, match="list of strings"):
        AttentionExplorer(random_attention(), "the dog runs")
    with pytest.raises(TypeError, match="numpy array or a torch.Tensor"):
        AttentionExplorer("attention", TOKENS)


def test_setting_state_from_code_redraws_exactly_as_clicking():
    a = random_attention()
    by_code, by_click = AttentionExplorer(a, TOKENS), AttentionExplorer(a, TOKENS)
    before = view_html(by_code)
    seen = []
    by_click.observe(lambda change: seen.append((change["name"], change["new"])), names=["head", "layer", "query"])

    by_code.head, by_code.layer, by_code.query = 2, 1, 3
    by_click.controls["head"].value = 2  # what a click on the "head 2" button does to the model
    by_click.controls["layer"].value = 1
    by_click.controls["query"].value = 3

    assert seen == [("head", 2), ("layer", 1), ("query", 3)]
    assert (by_click.head, by_click.layer, by_click.query) == (2, 1, 3)
    assert view_html(by_code) == view_html(by_click) != before
    assert by_code.controls["head"].value == 2  # setting the trait moves the control too
    # the table shows the new head's numbers
    assert f"{a[1, 2, 3, 0]:.2f}</td>" in view_html(by_code)
    assert "layer 1 · head 2 · query 3" in view_html(by_code)


def test_every_view_redraws_when_the_head_changes():
    explorer = AttentionExplorer(random_attention(), TOKENS)
    for view in ("heatmap", "tokens", "compare"):
        explorer.view = view
        before = view_html(explorer)
        explorer.head = (explorer.head + 1) % explorer.n_heads
        assert view_html(explorer) != before, view
    explorer.view = "grid"
    frames = [cell.layout.border for cell in find(explorer._stage, widgets.VBox)]
    explorer.head = 0
    assert [cell.layout.border for cell in find(explorer._stage, widgets.VBox)] != frames


def test_average_of_heads():
    a = random_attention()
    explorer = AttentionExplorer(a, TOKENS, layer=1)
    explorer.head = AVERAGE
    np.testing.assert_allclose(explorer.weights, a[1].mean(0))
    assert "average of heads" in view_html(explorer)
    assert explorer.controls["head"].value == AVERAGE
    explorer.controls["head"].value = 0
    assert explorer.head == 0


@pytest.mark.parametrize("name, value, message", [
    ("head", 4, r"head=4 does not exist: this attention has 4 heads \(0 to 3\)"),
    ("head", "avg", r'"average"'),
    ("layer", -1, r"layer=-1 does not exist"),
    ("query", 8, r"query=8 does not exist: this attention has 8 tokens"),
    ("query", 1.5, r"must be an int"),
    ("view", "3d", r"view must be one of"),
    ("compare_head", 7, r"compare_head=7 does not exist"),
    ("compare_layer", 2, r"compare_layer=2 does not exist"),
])
def test_bad_state_raises_value_error_and_keeps_the_old_state(name, value, message):
    explorer = AttentionExplorer(random_attention(), TOKENS)
    old, html = getattr(explorer, name), view_html(explorer)
    with pytest.raises(ValueError, match=message):
        setattr(explorer, name, value)
    assert getattr(explorer, name) == old
    assert view_html(explorer) == html


def test_numpy_integers_are_accepted_as_state():
    explorer = AttentionExplorer(random_attention(), TOKENS)
    explorer.head = np.int64(3)
    assert explorer.head == 3 and type(explorer.head) is int


def test_grid_thumbnails_select_a_head_on_click():
    explorer = AttentionExplorer(random_attention(), TOKENS, view="grid")
    images = find(explorer, widgets.Image)
    assert len(images) == 4 and all(image.value[:8] == b"\x89PNG\r\n\x1a\n" for image in images)
    assert len({image.value for image in images}) == 4  # one picture per head
    buttons = find(explorer, widgets.Button)
    assert [b.description for b in buttons] == ["✓ head 0", "head 1", "head 2", "head 3"]  # beyond colour
    buttons[2].click()
    assert explorer.head == 2
    assert buttons[2].button_style == "warning" and buttons[0].button_style == ""
    assert [b.description for b in buttons] == ["head 0", "head 1", "✓ head 2", "head 3"]
    first_layer = [image.value for image in images]
    explorer.layer = 1
    assert [image.value for image in images] != first_layer


def test_compare_view_shows_both_heads():
    a = random_attention()
    explorer = AttentionExplorer(a, TOKENS, head=1, view="compare")
    assert explorer.compare_head == 2  # the next head, unless you choose
    html = view_html(explorer)
    assert "layer 0, head 1" in html and "layer 0, head 2" in html
    explorer.controls["compare_head"].value = 3
    assert explorer.compare_head == 3 and "layer 0, head 3" in view_html(explorer)


def test_compare_view_puts_heads_of_two_layers_side_by_side():
    a = random_attention()
    explorer = AttentionExplorer(a, TOKENS, layer=1, head=0, view="compare", compare_layer=0, compare_head=3)
    html = view_html(explorer)
    assert "layer 1, head 0" in html and "layer 0, head 3" in html
    explorer.controls["compare_layer"].value = 1
    assert explorer.compare_layer == 1 and "layer 1, head 3" in view_html(explorer)
    assert AttentionExplorer(a, TOKENS, layer=1).compare_layer == 1  # starts on the selected layer


def compare_width_px(html, tokens):
    """The compare view's two heads side by side, in px: row labels, cells (+1 px border) and the gap."""
    cell = int(re.search(r"width:(\d+)px;min-width", html).group(1))
    return 2 * (row_label_px(tokens) + len(tokens) * (cell + 1)) + COMPARE_GAP_PX, cell


# The notebook's sentence (with <bos>, 20 tokens): the reviewer's compare view was 1010 px in a 964 px box.
SENTENCE = ["<bos>"] + ("near the cats , the old cat that the quiet painters watch that the old cats help "
                        "sleeps .").split()


def test_compare_view_fits_a_960_px_column_and_writes_its_numbers():
    explorer = AttentionExplorer(random_attention(2, 4, len(SENTENCE)), SENTENCE, view="compare", query=17)
    assert explorer.controls["compare_layer"].style.description_width == "initial"  # not cut to "compare …"
    html = explorer._compare.value
    width, cell = compare_width_px(html, SENTENCE)
    assert width <= 960 and cell >= 10, (width, cell)  # side by side in the column, cells still visible
    assert html.count("<table") == 2 and "flex-wrap:wrap" in html and "nowrap" not in html
    assert "max-width:940px" in html
    # Numbers without hover: the selected query's three strongest weights under each head, as text.
    assert html.count('class="course-top-weights"') == 2
    for weights in (explorer.weights, explorer.head_weights(explorer.compare_layer, explorer.compare_head)):
        j = int(weights[17].argmax())
        assert f"<li>{j}: “{SENTENCE[j]}” {weights[17, j]:.2f}</li>" in html
    assert html.count('title="') == 2 * len(SENTENCE) ** 2 and "hover a cell" in html  # hover still works
    small = AttentionExplorer(random_attention(), TOKENS, view="compare")._compare.value
    assert "title=" not in small and small.count("<td") == 2 * len(TOKENS) ** 2  # short sentences keep numbers
    # A sentence too long for two heads even at the smallest cells: the second head wraps below.
    long = [f"w{i}" for i in range(48)]
    html = AttentionExplorer(random_attention(1, 2, 48), long, view="compare")._compare.value
    width, cell = compare_width_px(html, long)
    assert cell == 10 and width > 960 and "flex-wrap:wrap" in html


def test_every_control_has_a_name_and_the_keyboard_support_is_on_screen():
    explorer = AttentionExplorer(random_attention(), TOKENS)
    for name, control in explorer.controls.items():
        assert control.description, f"{name} has no accessible name"
    assert all(b.description for b in find(explorer, widgets.Button))
    playground = AttentionPlayground()
    sliders = find(playground, widgets.FloatSlider)
    assert [s.description for s in sliders] == ["query[0]", "query[1]", "scale"]  # aria-label in the browser
    assert playground.controls["asker"].description == "who asks"
    for widget in (explorer, playground):
        assert ROOT_CLASS in widget._dom_classes
        support = [w for w in find(widget, widgets.HTML) if w.value == SUPPORT_HTML]
        assert len(support) == 1 and support[0].layout.display == "none"
    # The script: arrow keys stop at the widget, toggle groups move by arrows, pressed state and names.
    for part in ("stopPropagation", "'ArrowDown'", "aria-pressed", "aria-label", "next.click()"):
        assert part in SCRIPT
    assert '"' not in SCRIPT and "<" not in SCRIPT  # it lives in an HTML attribute
    assert "outline: 3px solid #0b57d0" in CSS and 'content: "✓ "' in CSS


def test_heatmap_cells_leave_room_around_their_numbers():
    html = view_html(AttentionExplorer(random_attention(1, 1, 16), [f"w{i}" for i in range(16)]))
    assert "min-width:4.8ch" in html and "padding:0 3px" in html  # "0.00" is 4ch: numbers never touch


def test_only_the_current_view_is_sent():
    L, H, T = 2, 4, 8
    explorer = AttentionExplorer(random_attention(L, H, T), TOKENS)
    stage = explorer.children[-1]
    assert len(stage.children) == 1
    html = stage.children[0].value
    assert html.count("<td") == T * T  # one head, not L * H * T * T numbers
    assert find(explorer, widgets.Image) == []  # the grid's pictures are not on screen
    assert explorer._tokens_view.value == ""  # never drawn until you open it
    explorer.view = "tokens"
    assert explorer._tokens_view.value.count("<line") == np.count_nonzero(explorer.query_weights >= 0.005)


def test_no_matplotlib_figure_leaks():
    plt.close("all")
    explorer = AttentionExplorer(random_attention(), TOKENS)
    for view in ("heatmap", "tokens", "grid", "compare"):
        explorer.view = view
    AttentionPlayground().scale = 2.0
    assert plt.get_fignums() == []


def test_tokens_are_escaped_wherever_they_reach_html():
    a = random_attention(T=len(EVIL))
    explorer = AttentionExplorer(a, EVIL, query=1)
    for view in ("heatmap", "tokens", "compare", "grid"):
        explorer.view = view
        for query in range(len(EVIL)):
            explorer.query = query
            html = view_html(explorer)
            assert "<script" not in html and "<b>x" not in html and '"quoted"' not in html, (view, query)
    explorer.view, explorer.query = "heatmap", 1
    html = view_html(explorer)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert "a&amp;b" in html and "&quot;quoted&quot;" in html
    # Dropdown labels are set as textContent in the browser: they keep the token exactly as typed
    assert explorer.controls["query"].options[1] == ("1: <b>x</b>", 1)


def test_repr_is_short_and_stable():
    explorer = AttentionExplorer(random_attention(), TOKENS, head=1)
    expected = "AttentionExplorer(layers=2, heads=4, tokens=8, layer=0, head=1, query=7, view='heatmap')"
    assert repr(explorer) == expected == str(explorer)
    assert repr(AttentionExplorer(random_attention(seed=1), TOKENS, head=1)) == expected
    explorer.head, explorer.view = AVERAGE, "grid"
    assert repr(explorer).endswith("head='average', query=7, view='grid')")
    bundle = explorer._repr_mimebundle_()
    assert bundle["text/plain"] == repr(explorer) and "0x" not in bundle["text/plain"]


def test_redraw_is_fast():
    rng = np.random.default_rng(0)
    a = rng.random((2, 4, 15, 15))
    explorer = AttentionExplorer(a / a.sum(-1, keepdims=True), [f"word{i}" for i in range(15)])
    for view in ("heatmap", "tokens", "compare"):
        explorer.view = view
        start = time.perf_counter()
        for head in (1, 2, 3, 0):
            explorer.head = head
        assert (time.perf_counter() - start) / 4 < 0.2, view


# ---------------------------------------------------------------- AttentionPlayground

def test_playground_computes_softmax_of_scaled_scores():
    playground = AttentionPlayground()
    assert playground.query_word == "sat"
    keys = torch.tensor(playground.key_vectors)
    query = torch.tensor(playground.query_vectors[2])
    for scale in (0.5, 1.0, 3.0):
        playground.scale = scale
        expected = torch.softmax(scale * keys @ query, dim=0).numpy()
        np.testing.assert_allclose(playground.weights, expected, atol=1e-12)
        np.testing.assert_allclose(playground.output, expected @ playground.value_vectors, atol=1e-12)
    playground.scale = 0.0
    np.testing.assert_allclose(playground.weights, 1 / 6)  # no scale: every word counts the same


def test_playground_state_and_redraws():
    playground = AttentionPlayground()
    seen = []
    playground.observe(lambda change: seen.append(change["name"]), names=["query", "asker", "scale"])
    before = view_html(playground)
    playground.controls["query"][1].value = 1.0  # drag the second slider: the query is now yours
    assert playground.query == (2.0, 1.0) and playground.query_word is None
    assert playground.controls["asker"].value == -1
    assert view_html(playground) != before and "your query" in view_html(playground)
    playground.query_word = "cat"  # pick a word: its query moves the sliders
    assert playground.query == tuple(playground.query_vectors[1])
    assert [s.value for s in playground.controls["query"]] == list(playground.query_vectors[1])
    assert playground.controls["asker"].value == 1
    playground.controls["asker"].value = 5
    assert playground.query_word == "mat"
    playground.controls["scale"].value = 2.5
    assert playground.scale == 2.5 and "2.50" in view_html(playground)
    assert {"query", "asker", "scale"} <= set(seen)


def snapped(slider, value):
    """The value a browser sends back for ``value``: rounded to the slider's grid, as noUiSlider computes it."""
    return slider.min + round((value - slider.min) / slider.step) * slider.step


def test_playground_python_state_wins_over_a_late_slider_echo():
    # Run All in a browser: the slider is drawn with the old query 2.0, Python moves on to "cat", and only
    # then does the browser's rounded echo of 2.0 arrive (seen as query=[2.00, 2.00] before the fix).
    playground = AttentionPlayground()
    first, second = playground.controls["query"]
    old_first = 2.000000000000001  # what Chromium sent back for 2.0 (the browser's rounding path differs)
    playground.scale = 3.0
    playground.query_word = "cat"
    first.value = old_first  # the stale echo
    assert playground.query_word == "cat" and playground.query == (0.5, 2.0)
    assert first.value == 0.5  # the slider shows Python's state again
    first.value, second.value = snapped(first, 0.5), snapped(second, 2.0)  # echoes of the current state
    assert playground.query_word == "cat" and playground.query == (0.5, 2.0)
    scale = playground.controls["scale"]
    scale.value = snapped(scale, 1.0)  # a stale echo of the old scale
    assert playground.scale == 3.0 and scale.value == 3.0


def test_playground_learner_moves_still_count_after_echoes():
    playground = AttentionPlayground()
    first = playground.controls["query"][0]
    playground.query_word = "cat"
    first.value = snapped(first, 0.5)  # the echo of the current value
    first.value = snapped(first, 1.25)  # the learner drags
    assert playground.query_word is None and playground.query[0] == snapped(first, 1.25)
    first.value = snapped(first, 2.0)  # and may drag back to a value Python had set long ago
    assert playground.query[0] == snapped(first, 2.0)
    playground.controls["scale"].value = 4.0
    assert playground.scale == 4.0


def test_playground_value_plot_labels_each_point_once():
    playground = AttentionPlayground()  # "the" stands twice, with the same value
    svg = view_html(playground)
    plane = svg[svg.index("values (dot size"):]
    assert plane.count(">the ×2<") == 1 and plane.count(">the<") == 0
    assert plane.count("<circle") == len(set(map(tuple, playground.value_vectors)))


def test_playground_repr_is_stable():
    playground = AttentionPlayground(scale=2.0)
    assert repr(playground) == ("AttentionPlayground(words=6, query_word='sat', query=[2.00, 0.00], scale=2.00, "
                                "weights=[0.00, 0.88, 0.00, 0.00, 0.00, 0.12])")
    assert repr(AttentionPlayground(scale=2.0)) == repr(playground)


def test_playground_custom_inputs_and_escaping():
    words = ["a", "<script>alert(1)</script>", "c"]
    playground = AttentionPlayground(words, keys=np.eye(3), values=torch.eye(3) * 2, query=[0.0, 5.0, 0.0])
    assert int(playground.weights.argmax()) == 1
    np.testing.assert_allclose(playground.output, 2 * playground.weights)
    html = view_html(playground)
    assert "<script" not in html and "&lt;script&gt;" in html


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(words=["a", "b"], keys=np.ones((3, 2))), ValueError, r"keys must have shape \(2, d\).*\(3, 2\)"),
    (dict(words=["a", "b"]), ValueError, "keys are missing"),
    (dict(words=["a", "b"], keys=np.ones((2, 2)), queries=np.ones((2, 3))), ValueError, r"queries.*\(2, 2\)"),
    (dict(words=["a", "b"], keys=np.ones((2, 9))), ValueError, "between 1 and 8"),
    (dict(scale=-1.0), ValueError, r"scale must be a finite number >= 0"),
    (dict(query_word="dog"), ValueError, r"'dog' is not in the sentence"),
    (dict(query=[1.0, 2.0, 3.0]), ValueError, r"query must have shape \(2,\)"),
    (dict(words=["a", 1], keys=np.ones((2, 2))), TypeError, r"words\[1\] must be a str"),
])
def test_playground_bad_inputs(kwargs, error, message):
    with pytest.raises(error, match=message):
        AttentionPlayground(**kwargs)


def test_playground_bad_state_keeps_old_state():
    playground = AttentionPlayground()
    with pytest.raises(ValueError, match="scale"):
        playground.scale = float("nan")
    with pytest.raises(ValueError, match="not in the sentence"):
        playground.query_word = "dog"
    assert playground.scale == 1.0 and playground.query_word == "sat"
