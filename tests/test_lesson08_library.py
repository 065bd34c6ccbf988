"""Lesson 08's additions to course_lib: TransformerLM's mask modes, the grammar's parser, and
course_lib.experiments.evaluation (the bigram baseline and the measures that never let a prediction see ahead)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.experiments.analysis import agreement_accuracy
from course_lib.models.attention import causal_mask
from course_lib.experiments.evaluation import BigramLM, agreement_by, held_out_loss, prefix_agreement_accuracy
from course_lib.experiments.grammar import (ADJECTIVES, AgreementGrammar, NOUNS, PREPOSITION_NOUNS, SUBJECT_VERB, Sentence,
                                agreement_corpus, agreement_vocabulary, encode_sentences, is_grammatical, parse)
from course_lib.models.language_model import TransformerLM
from course_lib.experiments.training import language_model_loss

VOCAB = agreement_vocabulary()


def small_lm(mask="causal", seed=0, **kwargs):
    torch.manual_seed(seed)
    options = dict(d_model=16, n_heads=2, n_layers=2, max_len=32, positions="sinusoidal") | kwargs
    return TransformerLM(len(VOCAB), **options, mask=mask).eval()


# --- TransformerLM(mask=...) -------------------------------------------------------------------------------------

def test_default_mask_is_causal_and_unchanged():
    torch.manual_seed(0)
    default = TransformerLM(len(VOCAB), d_model=16, n_heads=2, n_layers=2, max_len=32).eval()
    explicit = small_lm("causal", positions="learned")
    assert default.mask == "causal" and repr(default) == repr(explicit)
    for (name, a), (_, b) in zip(default.state_dict().items(), explicit.state_dict().items()):
        assert torch.equal(a, b), name  # the option draws no random numbers and adds no parameters
    ids = torch.randint(0, len(VOCAB), (3, 9))
    with torch.no_grad():
        by_hand = default.head(default.stack(default.positions(default.embed(ids)), causal_mask(9)))
        assert torch.equal(default(ids), by_hand)


@pytest.mark.parametrize("mask, sees", [("causal", lambda q, k: k <= q), ("all", lambda q, k: True),
                                        ("self", lambda q, k: k == q)])
def test_each_mask_mode_decides_what_a_position_sees(mask, sees):
    model = small_lm(mask)
    ids = torch.randint(3, len(VOCAB), (2, 8))
    with torch.no_grad():
        logits, attention = model(ids, return_attention=True)
        for key in range(8):
            changed = ids.clone()
            changed[:, key] = (changed[:, key] + 1 - 3) % (len(VOCAB) - 3) + 3
            moved = (model(changed) - logits).abs().amax(dim=(0, 2)) > 1e-6  # (time,): which positions changed
            for query in range(8):
                assert bool(moved[query]) == bool(sees(query, key)), (mask, query, key)
    allowed = torch.tensor([[sees(q, k) for k in range(8)] for q in range(8)])
    for weights in attention:  # (batch, heads, query, key)
        assert torch.all(weights[..., ~allowed] == 0)


def test_attention_mask_shapes_and_bad_mode():
    assert torch.equal(small_lm("causal").attention_mask(4), causal_mask(4))
    assert torch.equal(small_lm("self").attention_mask(3), torch.eye(3, dtype=torch.bool))
    assert small_lm("all").attention_mask(5) is None
    assert "mask='all'" in repr(small_lm("all")) and "mask=" not in repr(small_lm("causal"))
    with pytest.raises(ValueError, match='mask must be "causal", "all" or "self", got \'none\''):
        TransformerLM(len(VOCAB), 16, 2, 1, 32, mask="none")


def test_generate_works_for_every_mask():
    for mask in TransformerLM.MASKS:
        out = small_lm(mask).generate(torch.full((2, 1), VOCAB.bos_id), 5, temperature=1.0,
                                      generator=torch.Generator().manual_seed(0))
        assert out.shape == (2, 6)


# --- the parser ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("max_modifiers", [0, 1, 2, 3])
def test_parse_accepts_every_generated_sentence_with_its_annotations(max_modifiers):
    for seed in range(2):
        grammar = AgreementGrammar(seed, max_modifiers=max_modifiers)
        for sentence in grammar.sentences(800):
            assert parse(sentence.tokens, max_modifiers) == sentence
            assert parse(sentence.text, max_modifiers) == sentence  # a text, without <bos>
            assert parse(list(sentence.tokens[1:]), max_modifiers) == sentence
            assert is_grammatical(sentence, max_modifiers)


def test_parse_accepts_sentences_with_few_openers_too():
    for sentence in AgreementGrammar(5, adverb_rate=0, intro_rate=0, adjective_rate=1).sentences(500):
        assert parse(sentence.tokens, 2) == sentence


def swap_verb_number(s: Sentence) -> list[str]:
    words = list(s.tokens)
    words[s.verb] = s.wrong_verb
    return words


def test_parse_rejects_broken_sentences():
    corpus = AgreementGrammar(7).sentences(400)
    for s in corpus:
        assert parse(swap_verb_number(s)) is None  # agreement error
        assert parse(s.tokens[:-1]) is None  # no full stop
        assert parse(s.tokens[:s.verb]) is None  # cut before the verb
        assert parse([*s.tokens, "the"]) is None  # something after the full stop
        assert parse([*s.tokens[:-1], ".", "."]) is None
    rejected = [
        "the dog sleeps .",  # not the dog's own verb
        "the dogs runs .", "the dog run .",  # agreement
        "the dog near the nurse runs .",  # "nurse" is not one of "near"'s nouns
        "near the nurse , the dog runs .",
        "the dog that the cats sees runs .",  # the relative clause's verb disagrees with its noun
        "the dog that the cat runs runs .",  # an intransitive verb in a relative clause
        "the farmer sees .",  # a transitive verb without its object
        "the dog runs the cat .",  # an intransitive verb with one
        "dog runs .", "the old old dog runs .", "the runs .", "the dog , runs .",
        "often the dog runs .",  # the adverb's comma is missing
        "near the dog the cat sleeps .",  # the introduction's comma is missing
        "the near dog runs .", "the dog near cats runs .",
        "the dog <unk> runs .", "<bos> <bos> the dog runs .", "", ".",
    ]
    for text in rejected:
        assert parse(text) is None, text
    assert parse("the dog runs .") is not None and parse("the dogs near the cat run .") is not None


def test_parse_counts_modifiers():
    three = "the dog near the cat with the bird behind the child runs ."
    assert parse(three) is not None and parse(three, max_modifiers=3) is not None
    assert parse(three, max_modifiers=2) is None
    assert parse("the dog near the cat runs .", max_modifiers=0) is None


def test_parse_annotations_by_hand():
    s = parse("later , near the cats , the old dog that the child sees runs .")
    words = list(s.tokens)
    assert words[0] == "<bos>" and words[s.subject] == "dog" and words[s.verb] == "runs"
    assert [words[i] for i in s.attractors] == [] and [words[i] for i in s.early_attractors] == ["cats"]
    assert [words[i] for i in s.nouns] == ["cats", "dog", "child"]
    assert s.neighbours == ((4, 3),) and s.number == "singular" and s.wrong_verb == "run"


def test_parse_checks_its_inputs():
    with pytest.raises(TypeError, match="decode ids"):
        parse([1, 5, 3])
    with pytest.raises(TypeError, match="a text or a sequence of words"):
        parse(42)
    with pytest.raises(ValueError, match="max_modifiers"):
        parse("the dog runs .", max_modifiers=4)


def test_grammar_tables_used_by_the_parser_are_consistent():
    singular = {s for s, _ in NOUNS}
    assert set(SUBJECT_VERB) == singular
    assert all(set(nouns) <= singular for nouns in PREPOSITION_NOUNS.values())
    assert not set(ADJECTIVES) & singular


# --- evaluation --------------------------------------------------------------------------------------------------

def test_bigram_counts_pairs_and_predicts_from_the_current_word():
    ids = torch.tensor([[1, 5, 6, 5, 6], [1, 5, 7, 0, 0]])  # <bos> a b a b ; <bos> a c <pad> <pad>
    bigram = BigramLM(ids, vocab_size=8, pad_id=0, smoothing=0.5)
    assert bigram.counts[5, 6] == 2 and bigram.counts[5, 7] == 1 and bigram.counts[6, 5] == 1
    assert bigram.counts[:, 0].sum() == 0 and bigram.counts[0].sum() == 0  # pairs with padding are skipped
    assert int(bigram.counts.sum()) == 6
    log_probs = bigram(torch.tensor([[5, 6]]))  # (1, 2, 8)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(1, 2))
    assert math.isclose(float(log_probs[0, 0, 6].exp()), (2 + 0.5) / (3 + 8 * 0.5), rel_tol=1e-6)
    assert math.isclose(float(log_probs[0, 0, 7].exp()), (1 + 0.5) / (3 + 8 * 0.5), rel_tol=1e-6)
    assert torch.allclose(bigram(torch.tensor([[3]])).exp(), torch.full((1, 1, 8), 1 / 8))  # never seen: uniform


def test_bigram_checks_its_inputs():
    with pytest.raises(ValueError, match="smoothing must be > 0"):
        BigramLM(torch.zeros(1, 2, dtype=torch.long), 4, smoothing=0)
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 4\)"):
        BigramLM(torch.tensor([[1, 9]]), 4)
    with pytest.raises(TypeError, match="integer token ids"):
        BigramLM(torch.zeros(2, 3), 4)


@pytest.fixture(scope="module")
def corpus():
    return agreement_corpus(300, 60, seed=3)


def test_held_out_loss_of_a_causal_model_is_the_usual_loss(corpus):
    _, test = corpus
    model = small_lm("causal")
    ids, _ = encode_sentences(test, VOCAB)
    with torch.no_grad():
        usual = language_model_loss(model, (ids,), VOCAB.pad_id).item()
    assert math.isclose(held_out_loss(model, test, VOCAB), usual, rel_tol=1e-5)


def test_held_out_loss_of_the_bigram_is_its_mean_negative_log_probability(corpus):
    train, test = corpus
    bigram = BigramLM(encode_sentences(train, VOCAB)[0], len(VOCAB), VOCAB.pad_id)
    total = count = 0
    for s in test:
        ids = VOCAB.encode(s.tokens)
        for a, b in zip(ids, ids[1:]):
            total -= float(bigram.log_probs[a, b])
            count += 1
    assert math.isclose(held_out_loss(bigram, test, VOCAB), total / count, rel_tol=1e-5)


def test_measures_without_peeking_agree_with_the_usual_ones_for_a_causal_model_only(corpus):
    _, test = corpus
    causal = small_lm("causal")
    assert prefix_agreement_accuracy(causal, test, VOCAB) == agreement_accuracy(causal, test, VOCAB)


class Cheater(torch.nn.Module):
    """Scores the token that stands one position later: perfect when it can see it."""

    def forward(self, ids):
        following = torch.cat([ids[:, 1:], ids[:, -1:]], dim=1)
        return 10 * F.one_hot(following, len(VOCAB)).float()


def test_held_out_loss_never_shows_the_next_word(corpus):
    _, test = corpus
    ids, _ = encode_sentences(test, VOCAB)
    with torch.no_grad():
        whole = language_model_loss(Cheater(), (ids,), VOCAB.pad_id).item()
    assert whole < 0.1 < 5 < held_out_loss(Cheater(), test, VOCAB)


def test_prefix_agreement_never_shows_the_verb():
    test = AgreementGrammar(2).sentences(50, min_attractors=1)
    assert agreement_accuracy(Cheater(), test, VOCAB) == 1.0
    assert prefix_agreement_accuracy(Cheater(), test, VOCAB) == 0.0  # right and wrong verb score the same: a tie


def test_agreement_by_groups_and_weights(corpus):
    _, test = corpus
    model = small_lm("causal")
    table = agreement_by(model, test, VOCAB, key=lambda s: len(s.attractors))
    assert list(table) == sorted(table) and sum(n for _, n in table.values()) == len(test)
    overall = sum(a * n for a, n in table.values()) / len(test)
    assert math.isclose(overall, agreement_accuracy(model, test, VOCAB), abs_tol=1e-9)
    with pytest.raises(TypeError, match="key must be a function"):
        agreement_by(model, test, VOCAB, key="attractors")
    with pytest.raises(ValueError, match="at least one sentence"):
        held_out_loss(model, [], VOCAB)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        prefix_agreement_accuracy(lambda ids: ids, test, VOCAB)
