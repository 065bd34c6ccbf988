"""Lesson 14's measurements (course_lib.experiments.text_heads): the scores, the ground truth, the repeating text, the
attention-only model and the record. No training here: the notebooks train, and the record holds what 30 runs did."""

from __future__ import annotations

import pytest
import torch

from course_lib.experiments import text_heads as th
from course_lib.experiments.generation import generate
from course_lib.experiments.head_report import HeadScores
from course_lib.models.language_model import TransformerLM


def one_hot_attention(keys: torch.Tensor, T: int) -> torch.Tensor:
    """(batch, 1, 1, T, T) attention that puts all weight on keys[b, t] (a valid causal key)."""
    return torch.nn.functional.one_hot(keys, T).float()[:, None, None]


def uniform_attention(batch: int, T: int) -> torch.Tensor:
    causal = torch.ones(T, T).tril()
    return (causal / causal.sum(-1, keepdim=True)).expand(batch, 1, 1, T, T)


def test_repeating_windows_repeat_their_piece():
    ids = torch.arange(100)
    got = th.repeating_windows(ids, torch.tensor([3, 50]), 10, torch.tensor([4, 11]))
    assert got.tolist() == [[3, 4, 5, 6, 3, 4, 5, 6, 3, 4, 5], [50 + i for i in range(11)]]


def test_repeating_batches_repeat_the_share_asked_and_repeat_themselves():
    ids = torch.randint(0, 50, (5000,), generator=torch.Generator().manual_seed(0))
    settings = {**th.HEADS_GPT, "context": 16, "batch_size": 8, "repeat_share": 0.5, "shortest_piece": 3}
    batch = th.repeating_batches(ids, settings, seed=3)(0)[0]
    again = th.repeating_batches(ids, settings, seed=3)(0)[0]
    assert batch.shape == (8, 17) and torch.equal(batch, again)

    def period(row):  # the shortest p with row[t] == row[t - p] everywhere, or None
        return next((p for p in range(1, 9) if torch.equal(row[p:], row[:-p])), None)

    periods = [period(row) for row in batch]
    assert all(p is not None and 3 <= p <= 8 for p in periods[:4]), periods
    assert torch.equal(batch[4:], th.text_batches(ids, 16, 8, 3)(0)[0][4:])  # the rest is plain text


def test_random_repeats_have_the_period():
    tokens = torch.tensor([5, 7, 9, 11])
    seqs = th.random_repeats(tokens, 3, 5, 13, seed=1)
    assert seqs.shape == (3, 13) and torch.equal(seqs[:, 5:10], seqs[:, :5]) and torch.equal(seqs[:, 10:], seqs[:, :3])
    assert set(seqs.unique().tolist()) <= {5, 7, 9, 11}


def test_scores_are_one_on_their_own_key_and_uniform_on_uniform_attention():
    T, period = 12, 4
    t = torch.arange(T)
    assert th.previous_token_score(one_hot_attention((t - 1).clamp(min=0)[None], T)).item() == 1.0
    induction_keys = torch.where(t >= period, t - period + 1, t)
    assert th.induction_score(one_hot_attention(induction_keys[None], T), period).item() == 1.0
    assert th.induction_score(one_hot_attention((t - period).clamp(min=0)[None], T), period).item() == 0.0
    assert th.induction_score(uniform_attention(2, T), period).item() == pytest.approx(th.uniform_score(period, T))
    assert th.previous_token_score(uniform_attention(1, T)).item() == pytest.approx(th.uniform_score(1, T))


def test_relation_score_counts_only_queries_with_a_target_all_together():
    T = 6
    keys = torch.tensor([[0, 0, 1, 1, 2, 2], [0, 1, 2, 3, 4, 5]])
    weights = one_hot_attention(keys, T)  # row 0 looks one back on odd queries; row 1 at itself
    targets = torch.tensor([[-1, 0, 1, 2, 3, 4],  # 5 counted: queries 1 and 2 hit, 3, 4 and 5 miss
                            [-1, -1, -1, -1, -1, 5]])  # 1 counted, on its own key: a hit
    hits, counted = 2 + 1, 5 + 1
    assert th.relation_score(weights, targets).item() == pytest.approx(hits / counted)


def test_relation_targets_come_from_pythons_tokenizer():
    text = 'f(a, "(", [b])  # )\ns = \'q\'\n'
    found = th._relation_targets_of_file(text)
    bracket = found["bracket"]
    assert bracket[0] == -1 and bracket[1] == 1 and bracket[5] == 1  # inside f( ... the "(" in a string is no bracket
    assert bracket[10] == 10 and bracket[11] == 10 and bracket[12] == 1 and bracket[13] == -1
    assert all(b == -1 for b in bracket[14:])  # the ")" in the comment closes nothing
    assert found["closes_bracket"][12] == 1 and found["closes_bracket"][13] == 1 and sum(found["closes_bracket"]) == 2
    assert found["quote"][6] == 5 and found["quote"][5] == -1 and found["quote"][7] == -1
    q = text.index("'")
    assert found["quote"][q + 1] == q and found["closes_quote"][q + 2] == 1 and found["closes_quote"][7] == 1


def test_relation_targets_line_up_with_the_validation_text():
    corpus = th.load_corpus()
    targets = th.relation_targets(corpus)
    n = len(corpus.validation)
    assert all(len(t) == n for t in targets.values())
    opened = targets["bracket"][targets["bracket"] >= 0].unique()
    assert all(corpus.validation[i] in th.OPENERS for i in opened.tolist())
    assert all(corpus.validation[i] in th.CLOSERS for i in torch.nonzero(targets["closes_bracket"]).flatten().tolist())
    quotes = targets["quote"][targets["quote"] >= 0].unique()
    assert all(corpus.validation[i] in "'\"" for i in quotes.tolist())


def test_window_targets_are_relative_and_inside_the_window():
    targets = torch.tensor([-1, 0, 0, 2, 2, 2, 5, -1])
    got = th.window_targets(targets, 2, 4)
    assert got.tolist() == [[-1, 0, 0, 2], [-1, -1, 1, -1]]  # window 1 starts at 4: key 2 is outside it, key 5 is 1


def test_relation_baselines():
    targets = torch.tensor([[-1, 0, 1, 1, 3]])  # offsets back: 1, 1, 2, 1
    got = th.relation_baselines(targets)
    assert got["offset"] == 1 and got["best_offset"] == pytest.approx(0.75)
    assert got["uniform"] == pytest.approx((1 / 2 + 1 / 3 + 1 / 4 + 1 / 5) / 4)


def test_formed_at():
    points = [{"induction": v} for v in (0.01, 0.1, 0.25, 0.5)]
    assert th.formed_at(points, 0.2, 100) == 300 and th.formed_at(points[:2], 0.2, 100) is None


def small_lm(mlp=True, seed=0):
    torch.manual_seed(seed)
    model = TransformerLM(20, 16, 2, 2, 12, mlp=mlp)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(20)  # large weights: each head matters
    return model


def test_an_attention_only_model_has_no_mlp_and_generates_the_same_with_the_cache():
    model = small_lm(mlp=False)
    assert not any("mlp" in name or "ln2" in name for name in model.state_dict())
    assert "mlp=False" in repr(model.blocks[0])
    ids = torch.randint(0, 20, (2, 5), generator=torch.Generator().manual_seed(1))
    assert model(ids).shape == (2, 5, 20)
    assert torch.equal(generate(model, ids, 10, cache=True), generate(model, ids, 10, cache=False))
    with pytest.raises(TypeError, match="mlp"):
        TransformerLM(20, 16, 2, 2, 12, mlp="no")


def test_silenced_loss_silences_only_inside_and_leaves_the_model_as_it_was():
    model = small_lm().train()
    ids = torch.randint(0, 20, (3, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        before = model(ids)
    full = th.silenced_loss(model, ids, [])
    logits = before[:, :-1].reshape(-1, 20)
    assert full == pytest.approx(torch.nn.functional.cross_entropy(logits, ids[:, 1:].reshape(-1)).item())
    assert th.silenced_loss(model, ids, [(1, 0)]) != pytest.approx(full)
    assert model.training
    with torch.no_grad():
        assert torch.equal(model(ids), before)


def test_head_scores_table_best_and_plot():
    import matplotlib
    matplotlib.use("Agg")
    report = HeadScores({"previous token": [[0.1, 0.5], [0.2, 0.3]], "bracket": [[0.0, 0.1], [0.4, 0.2]]},
                        ("a note",))
    assert report.shape == (2, 2) and report.best("previous token") == (0, 1) and report.best("bracket", 0) == (0, 1)
    table = report.table()
    assert "previous token" in table and table.endswith("a note") and "0.40" in table
    with pytest.raises(ValueError, match="bracket"):
        report.best("brackets")
    assert len(report.plot()) == 2


def test_the_record_has_30_runs_and_says_which_claims_held():
    runs = th.recorded_heads()
    assert sorted((r["seed"], r["threads"]) for r in runs) == [(s, t) for s in range(10) for t in (1, 2, 4)]
    summary = th.record_summary(runs)
    assert set(summary["claims"]) == set(th.CLAIMS)
    for claim, counted in summary["claims"].items():
        assert counted["held"] + len(counted["missed"]) == 30
    for run in runs:  # the claims were judged by today's heads_claims
        assert run["claims"] == th.heads_claims(run)
