"""Looking inside a model (capture), and the head scores pinned on hand-made attention."""

import pytest
import torch
from torch import nn

from course_lib import MultiHeadAttention, TransformerLM, agreement_corpus, agreement_vocabulary, causal_mask
from course_lib.experiments import analysis
from course_lib.experiments.analysis import (ablate_heads, agreement_accuracy, attention_modules, capture, capture_attention,
                                 head_scores)
from course_lib.experiments import evaluation
from course_lib.experiments.head_report import head_report
from course_lib.experiments.grammar import AgreementGrammar, encode_sentences, subject_baselines, verb_ids


@pytest.fixture(scope="module")
def model_and_ids():
    torch.manual_seed(0)
    vocab = agreement_vocabulary()
    model = TransformerLM(len(vocab), d_model=16, n_heads=4, n_layers=2, max_len=32).eval()
    ids, _ = encode_sentences(AgreementGrammar(1).sentences(3), vocab)
    return model, ids


# ---------------------------------------------------------------- capture

def test_capture_records_what_return_attention_returns_and_changes_no_output(model_and_ids):
    model, ids = model_and_ids
    with torch.no_grad():
        plain = model(ids)
        expected_logits, per_layer = model(ids, return_attention=True)
        with capture(model, head_outputs=True, hidden=True) as record:
            logits = model(ids)
    assert torch.equal(logits, plain) and torch.equal(logits, expected_logits)
    B, T = ids.shape
    assert record.attention.shape == (B, 2, 4, T, T)
    assert torch.equal(record.attention, torch.stack(per_layer, dim=1))
    assert record.head_outputs.shape == (B, 2, 4, T, 4)
    assert record.hidden.shape == (B, 3, T, 16)


def test_hidden_states_are_the_embedding_then_each_layer_output(model_and_ids):
    model, ids = model_and_ids
    with torch.no_grad(), capture(model, attention=False, hidden=True) as record:
        logits = model(ids)
        embedded = model.positions(model.embed(ids))
        after_first = model.blocks[0](embedded, causal_mask(ids.shape[1]))
    assert torch.equal(record.hidden[:, 0], embedded)
    assert torch.equal(record.hidden[:, 1], after_first)
    assert torch.allclose(model.head(model.stack.ln_f(record.hidden[:, 2])), logits, atol=1e-6)


def test_head_outputs_through_the_output_projection_give_the_layer_output(model_and_ids):
    model, ids = model_and_ids
    attention = model.blocks[0].attn
    with torch.no_grad(), capture(model, head_outputs=True) as record:
        model(ids)
        x = model.blocks[0].ln1(model.positions(model.embed(ids)))
        out, _ = attention(x, causal_mask(ids.shape[1]))
    heads = record.head_outputs[:, 0]  # (B, H, T, d_head)
    merged = heads.transpose(1, 2).reshape(ids.shape[0], ids.shape[1], -1)
    assert torch.allclose(attention.out_proj(merged), out, atol=1e-6)


def test_a_partial_forward_pass_is_reported(model_and_ids):
    model, ids = model_and_ids
    with torch.no_grad(), capture(model, head_outputs=True) as record:
        model.blocks[0].attn(model.positions(model.embed(ids)))
    with pytest.raises(ValueError, match=r"recorded for layers \[0\] only, expected 2"):
        record.head_outputs


def test_silenced_heads_send_zeros_and_change_the_output(model_and_ids):
    model, ids = model_and_ids
    with torch.no_grad():
        plain = model(ids)
        with capture(model, head_outputs=True, silence=[(1, 2)]) as record:
            silenced = model(ids)
        with ablate_heads(model, [(1, 2)]):
            ablated = model(ids)
        after = model(ids)
    assert torch.count_nonzero(record.head_outputs[:, 1, 2]) == 0
    assert torch.count_nonzero(record.head_outputs[:, 1, 1]) > 0
    assert not torch.equal(silenced, plain) and torch.equal(silenced, ablated)
    assert torch.equal(after, plain)  # hooks are gone after the block


def test_capture_works_on_your_own_module_calling_attention_positionally():
    class TwoLayers(nn.Module):
        def __init__(self):
            super().__init__()
            self.first = MultiHeadAttention(8, 2)
            self.second = MultiHeadAttention(8, 2)

        def forward(self, x):
            x = x + self.first(x, None, False)[0]  # need_weights=False, passed positionally
            return x + self.second(x)[0]

    torch.manual_seed(1)
    model, x = TwoLayers(), torch.randn(2, 5, 8)
    with torch.no_grad(), capture(model) as record:
        model(x)
    assert record.attention.shape == (2, 2, 2, 5, 5)
    assert torch.allclose(record.attention.sum(-1), torch.ones(2, 2, 2, 5))
    with pytest.raises(ValueError, match="hidden was not recorded"):
        record.hidden


def test_capture_explains_bad_requests(model_and_ids):
    model, ids = model_and_ids
    with pytest.raises(ValueError, match=r"\(layer, head\)=\(2, 0\) is outside this model's 2 layers x 4 heads"):
        with capture(model, silence=[(2, 0)]):
            pass
    with pytest.raises(ValueError, match="Linear has no attention module"):
        with capture(nn.Linear(3, 3)):
            pass
    with capture(model) as record:
        pass
    with pytest.raises(ValueError, match="nothing recorded yet"):
        record.attention
    with pytest.raises(TypeError, match=r"\(layer, head\) pairs"):
        with capture(model, silence=[1]):
            pass


def test_capture_attention_needs_no_return_attention_argument():
    class NoFlag(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = MultiHeadAttention(8, 2)

        def forward(self, x):
            return self.attn(x)[0]

    model = NoFlag()
    assert capture_attention(model, torch.randn(1, 4, 8)).shape == (1, 1, 2, 4, 4)
    assert model.training  # restored


# ---------------------------------------------------------------- scores pinned on known attention

@pytest.fixture(scope="module")
def sentences():
    _, test = agreement_corpus(100, 30, seed=3)
    return test


def hand_made_attention(sentences, T):
    """(B, 1, 4, T, T): head 0 on the previous word, head 1 from verb-1 to the subject (elsewhere on <bos>),
    head 2 on itself, head 3 from verb-1 to the word after the subject."""
    B = len(sentences)
    a = torch.zeros(B, 1, 4, T, T)
    query = torch.arange(T)
    a[:, 0, 0, query[1:], query[1:] - 1] = 1.0
    a[:, 0, 0, 0, 0] = 1.0
    a[:, 0, 2, query, query] = 1.0
    a[:, 0, 1, :, 0] = 1.0
    a[:, 0, 3, :, 0] = 1.0
    for b, s in enumerate(sentences):
        a[b, 0, 1, s.verb - 1] = 0
        a[b, 0, 1, s.verb - 1, s.subject] = 1.0
        a[b, 0, 3, s.verb - 1] = 0
        a[b, 0, 3, s.verb - 1, s.subject + 1] = 1.0
    return a


def test_head_scores_on_hand_made_attention(monkeypatch, sentences):
    vocab = agreement_vocabulary()
    ids, _ = encode_sentences(sentences, vocab)
    fake = hand_made_attention(sentences, ids.shape[1])
    monkeypatch.setattr(analysis, "capture_attention", lambda model, inputs: fake)
    scores = head_scores(None, sentences, vocab)
    assert scores["verb_to_subject"].tolist() == [[0.0, 1.0, 0.0, 0.0]]
    assert scores["neighbour"].tolist() == [[1.0, 0.0, 0.0, 0.0]]
    assert scores["previous_token"][0, 0] == 1.0 and scores["previous_token"][0, 2] == 0.0
    assert float(scores["previous_token"][0, 1]) < 0.2


class VerbOracle(nn.Module):
    """Prefers the right verb form in the first ``n_right`` sentences and the wrong one after."""

    def __init__(self, sentences, vocab, n_right):
        super().__init__()
        self.sentences, self.vocab, self.n_right = sentences, vocab, n_right
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, ids):
        logits = torch.zeros(*ids.shape, len(self.vocab))
        right, wrong = verb_ids(self.sentences[:len(ids)], self.vocab)
        for row, s in enumerate(self.sentences[:len(ids)]):
            logits[row, s.verb - 1, right[row] if row < self.n_right else wrong[row]] = 1.0
        return logits


def test_agreement_accuracy_counts_the_right_verb_form(sentences):
    vocab = agreement_vocabulary()
    for n_right in (0, 7, len(sentences)):
        model = VerbOracle(sentences, vocab, n_right)
        assert agreement_accuracy(model, sentences, vocab) == n_right / len(sentences)
    with pytest.raises(ValueError, match="at least one sentence"):
        agreement_accuracy(VerbOracle(sentences, vocab, 0), [], vocab)


def test_subject_head_figures_count_where_one_head_looks(model_and_ids):
    model, _ = model_and_ids
    vocab = agreement_vocabulary()
    sentences = AgreementGrammar(seed=6).sentences(40, min_attractors=1)
    ids, _ = encode_sentences(sentences, vocab)
    weights = capture_attention(model, ids)  # (batch, layers, heads, query, key)
    layer, head = weights.shape[1] - 1, weights.shape[2] - 1
    rows = [weights[i, layer, head, s.verb - 1] for i, s in enumerate(sentences)]  # each (key,)
    figures = analysis.subject_head_figures(model, (layer, head), sentences, vocab)
    assert figures["subject_hit_rate"] == round(sum(int(r.argmax()) == s.subject for r, s in zip(rows, sentences)) / 40, 3)
    assert figures["subject_head_weight"] == round(sum(float(r[s.subject]) for r, s in zip(rows, sentences)) / 40, 3)
    assert figures["agreement_accuracy"] == round(agreement_accuracy(model, sentences, vocab), 3)
    assert figures["baselines"] == {k: round(v, 3) for k, v in subject_baselines(sentences).items()}
    with pytest.raises(ValueError, match=r"head \(0, 9\) is not in this model: layers 0\.\.\d, heads 0\.\.\d"):
        analysis.subject_head_figures(model, (0, 9), sentences, vocab)
    with pytest.raises(TypeError, match="head must be a pair"):
        analysis.subject_head_figures(model, 2, sentences, vocab)


# Every public entry that takes the grammar's sentences, called with everything else right.
SENTENCE_ENTRIES = {
    "agreement_accuracy": lambda model, sentences, vocab: agreement_accuracy(model, sentences, vocab),
    "head_scores": lambda model, sentences, vocab: head_scores(model, sentences, vocab),
    "ablation_effects": lambda model, sentences, vocab: analysis.ablation_effects(model, sentences, vocab),
    "held_out_loss": lambda model, sentences, vocab: evaluation.held_out_loss(model, sentences, vocab),
    "prefix_agreement_accuracy": lambda model, sentences, vocab: evaluation.prefix_agreement_accuracy(
        model, sentences, vocab),
    "agreement_by": lambda model, sentences, vocab: evaluation.agreement_by(model, sentences, vocab,
                                                                                 lambda s: len(s.attractors)),
    "encode_sentences": lambda model, sentences, vocab: encode_sentences(sentences, vocab),
    "verb_ids": lambda model, sentences, vocab: verb_ids(sentences, vocab),
    "subject_baselines": lambda model, sentences, vocab: subject_baselines(sentences),
    "subject_head_figures": lambda model, sentences, vocab: analysis.subject_head_figures(model, (0, 0), sentences, vocab),
    "head_report": lambda model, sentences, vocab: __import__(
        "course_lib.experiments.head_report", fromlist=["head_report"]).head_report(model, sentences, vocab),
}


@pytest.mark.parametrize("entry", list(SENTENCE_ENTRIES))
def test_every_entry_taking_sentences_gives_the_same_clear_error(model_and_ids, entry):
    model, _ = model_and_ids
    vocab, call = agreement_vocabulary(), SENTENCE_ENTRIES[entry]
    with pytest.raises(TypeError, match=rf"^{entry} takes Sentence objects, got str 'the dog runs \.'; make them with "
                                        r"AgreementGrammar\(seed\)\.sentences\(n\)"):
        call(model, ["the dog runs ."], vocab)
    with pytest.raises(TypeError, match=rf"^{entry} takes Sentence objects, got list"):
        call(model, [["<bos>", "the", "dog", "runs", "."]], vocab)
    with pytest.raises(ValueError, match=f"^{entry} needs at least one sentence"):
        call(model, [], vocab)
    with pytest.raises(TypeError, match=rf"^{entry} takes a list of Sentence objects, got NoneType"):
        call(model, None, vocab)
    sentences = AgreementGrammar(seed=4).sentences(3)
    one, listed = call(model, sentences[0], vocab), call(model, sentences[:1], vocab)  # one Sentence: a list of one
    assert type(one) is type(listed)
    lazy = call(model, iter(sentences), vocab)  # any iterable, read once
    assert repr(lazy) == repr(call(model, sentences, vocab))


# --- a learner's own attention module: recognised by its shape, not by its class ------------------------------

class LearnerAttention(nn.Module):
    """Attention written from scratch, the way a learner would: its own names, always returning its weights."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.query, self.key, self.value = (nn.Linear(d_model, d_model) for _ in range(3))
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(self, x, mask=None):
        B, T, D = x.shape
        split = lambda t: t.view(B, T, self.n_heads, self.d_head).transpose(1, 2)  # (B, H, T, d_head)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-2, -1) / self.d_head ** 0.5  # (B, H, T, T)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(-1)
        merged = (weights @ v).transpose(1, 2).reshape(B, T, D)
        return self.out_proj(merged), weights


class LearnerModel(nn.Module):
    """A two-layer causal language model of the learner's own; it also has an ``n_heads`` of its own."""

    def __init__(self, vocab_size: int, d_model: int = 16, n_heads: int = 2):
        super().__init__()
        self.n_heads = n_heads  # a container with n_heads is not mistaken for an attention module
        self.embed = nn.Embedding(vocab_size, d_model)
        self.layers = nn.ModuleList(LearnerAttention(d_model, n_heads) for _ in range(2))
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, ids):
        x = self.embed(ids)
        mask = torch.ones(ids.shape[1], ids.shape[1], dtype=torch.bool).tril()
        for layer in self.layers:
            x = x + layer(x, mask)[0]
        return self.head(x)


def test_capture_records_and_silences_a_learners_own_attention_module():
    torch.manual_seed(0)
    vocab = agreement_vocabulary()
    model = LearnerModel(len(vocab)).eval()
    grammar = AgreementGrammar(seed=1)
    ids, _ = encode_sentences([grammar.sentence() for _ in range(4)], vocab)
    assert attention_modules(model) == list(model.layers)
    with torch.no_grad(), capture(model, head_outputs=True) as record:
        logits = model(ids)
    weights = record.attention  # (batch, layers, heads, query, key)
    assert weights.shape == (4, 2, 2, ids.shape[1], ids.shape[1])
    assert torch.allclose(weights.sum(-1), torch.ones(()))
    assert record.head_outputs.shape == (4, 2, 2, ids.shape[1], 8)
    with torch.no_grad():
        assert torch.equal(model(ids), logits)  # capture changes nothing
        with capture(model, attention=False, silence=[(1, 0), (1, 1)]):
            silenced = model(ids)
        # with both heads of the last layer silenced, only out_proj's bias is left of that layer
        x = model.embed(ids)
        x = x + model.layers[0](x, torch.ones(ids.shape[1], ids.shape[1], dtype=torch.bool).tril())[0]
        expected = model.head(x + model.layers[1].out_proj.bias)
    assert torch.allclose(silenced, expected, atol=1e-6)


def test_head_report_works_on_a_learners_own_model():
    torch.manual_seed(0)
    vocab = agreement_vocabulary()
    model = LearnerModel(len(vocab))
    grammar = AgreementGrammar(seed=2)
    sentences = [grammar.sentence(min_attractors=1) for _ in range(20)]
    report = head_report(model, sentences, vocab)
    assert report.shape == (2, 2) and report.ablated_accuracy.shape == (2, 2)
    assert ((0 <= report.verb_to_subject) & (report.verb_to_subject <= 1)).all()


def test_an_attention_module_with_the_wrong_output_is_explained():
    class NoWeights(nn.Module):
        n_heads = 2

        def forward(self, x):
            return x

    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = NoWeights()

        def forward(self, x):
            return self.attn(x)

    model = Holder()
    with pytest.raises(ValueError, match=r"returned Tensor; expected \(output, weights \(batch, heads=2"):
        with capture(model):
            model(torch.zeros(1, 3, 4))
    with pytest.raises(ValueError, match="silencing a head needs the heads' outputs side by side"):
        with capture(model, silence=[(0, 1)]):
            pass
