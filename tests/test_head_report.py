"""head_report: every head scored against the grammar and silenced in turn, as a table, a plot and numbers."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib import TransformerLM, agreement_corpus, agreement_vocabulary, seed_everything  # noqa: E402
from course_lib.experiments.analysis import ablation_effects, agreement_accuracy, head_scores  # noqa: E402
from course_lib.experiments.grammar import subject_baselines  # noqa: E402
from course_lib.experiments.head_report import HeadReport, head_report  # noqa: E402


@pytest.fixture(scope="module")
def small_model_and_data():
    seed_everything(0)
    vocab = agreement_vocabulary()
    _, test = agreement_corpus(50, 40, seed=0)
    model = TransformerLM(len(vocab), d_model=16, n_heads=2, n_layers=2, max_len=32)
    return model, test, vocab


def test_head_report_numbers_come_from_course_lib_analysis(small_model_and_data):
    model, sentences, vocab = small_model_and_data
    report = head_report(model, sentences, vocab)
    assert isinstance(report, HeadReport) and report.shape == (2, 2)
    scores = head_scores(model, sentences, vocab)
    for name in ("previous_token", "neighbour", "verb_to_subject"):
        np.testing.assert_allclose(getattr(report, name), scores[name].numpy(), atol=1e-6)
    accuracy = agreement_accuracy(model, sentences, vocab)
    ablated = ablation_effects(model, sentences, vocab).numpy()
    assert report.accuracy == accuracy
    np.testing.assert_allclose(report.accuracy_drop, accuracy - ablated, atol=1e-6)
    assert report.baselines == subject_baselines(sentences)
    layer, head = report.best("neighbour")
    assert report.neighbour[layer, head] == report.neighbour.max()
    with pytest.raises(ValueError, match="score must be one of"):
        report.best("subject")


def test_head_report_counts_the_common_subject_position_in_the_reference_sentences(small_model_and_data):
    model, sentences, vocab = small_model_and_data
    train, _ = agreement_corpus(500, 1, seed=4)
    report = head_report(model, sentences, vocab, reference=train)
    assert report.baselines == subject_baselines(sentences, reference=train)


def test_head_report_table_is_stable_text(small_model_and_data):
    report = head_report(*small_model_and_data)
    lines = str(report).splitlines()
    assert repr(report) == str(report) == str(head_report(*small_model_and_data))
    assert lines[0].split() == ["layer", "head", "previous-token", "neighbour", "verb->subject", "accuracy", "drop"]
    assert len(lines) == 2 * 2 + 3
    for row, (layer, head) in zip(lines[1:5], [(0, 0), (0, 1), (1, 0), (1, 1)]):
        cells = row.split()
        assert cells[:2] == [str(layer), str(head)]
        assert cells[2] == f"{report.previous_token[layer, head]:.2f}"
        assert cells[3] == f"{report.neighbour[layer, head]:.2f}"
        assert cells[4] == f"{report.verb_to_subject[layer, head]:.2f}"
        assert float(cells[5]) == pytest.approx(report.accuracy_drop[layer, head], abs=0.005)
        assert not any(cell == "-0.00" for cell in cells)
    assert lines[-2] == f"agreement accuracy with every head: {report.accuracy:.2f} (40 sentences)"
    b = report.baselines
    assert lines[-1] == ("baselines, the fraction of sentences whose subject a rule finds: the noun at the most "
                         f"common subject position {b['most_common_position']:.2f}, the first noun "
                         f"{b['first_noun']:.2f}, the second noun {b['second_noun']:.2f}, the nearest noun before the "
                         f"verb {b['nearest_noun_before_verb']:.2f}, the first noun after the last comma before the verb "
                         f"(else the first noun) {b['after_last_comma']:.2f}")


def test_head_report_plot_and_bad_input(small_model_and_data):
    model, sentences, vocab = small_model_and_data
    report = head_report(model, sentences, vocab)
    axes = report.plot()
    try:
        assert [ax.get_title() for ax in axes] == ["previous-token", "neighbour", "verb->subject", "accuracy drop"]
        assert all(ax.get_xlabel() == "head" and ax.get_ylabel() == "layer" for ax in axes)
        assert len(axes[2].texts) == 4  # one number per head
        axes[0].figure.canvas.draw()
        for ax in axes:  # each colour bar is as tall as its heatmap (it was 2.3 times taller)
            heatmap = ax.get_window_extent().height
            bars = [child.get_window_extent().height for child in ax.child_axes]
            assert len(bars) == 1 and abs(bars[0] - heatmap) <= 0.05 * heatmap, (bars, heatmap)
    finally:
        plt.close("all")
    with pytest.raises(ValueError, match="at least one sentence"):
        head_report(model, [], vocab)
    with pytest.raises(TypeError, match="Sentence objects"):
        head_report(model, ["the dog runs ."], vocab)
