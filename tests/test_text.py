"""Lesson 13's real text: PyTorch's own torch/nn source, the same bytes on every machine with the pinned torch,
split by file; characters as tokens."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.experiments import text


@pytest.fixture(scope="module")
def corpus():
    return text.load_corpus()


def test_the_corpus_is_the_pinned_torch_nn_source(corpus):
    assert torch.__version__.split("+")[0] == text.CORPUS_TORCH
    assert text.corpus_checksum(text.corpus_files()) == text.CORPUS_SHA256
    assert len(corpus.train) + len(corpus.validation) > 1_000_000  # at least 1 MB of real text
    assert "class Linear(Module):" in corpus.train + corpus.validation


def test_training_and_validation_are_split_by_file(corpus):
    assert not set(corpus.train_files) & set(corpus.validation_files)
    assert len(corpus.validation_files) == len(text.corpus_files()) // text.VALIDATION_EVERY
    share = len(corpus.validation) / (len(corpus.train) + len(corpus.validation))
    assert 0.03 < share < 0.25, share
    assert "Corpus(train:" in repr(corpus)


def test_other_files_are_refused_unless_asked(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    with pytest.raises(ValueError, match="differs from the course's.*pins 2.13.0"):
        text.load_corpus(root=tmp_path)
    mine = text.load_corpus(verify=False, root=tmp_path)
    assert mine.train == "x = 1\n" and mine.validation == ""


def test_characters_round_trip_and_an_unseen_one_is_unknown(corpus):
    tokenizer = text.CharTokenizer(corpus.train)
    sample = corpus.validation[:2000]
    ids = tokenizer.encode(sample)
    assert ids.dtype == torch.long and ids.shape == (len(sample),)
    assert tokenizer.unknown_share(corpus.validation) < 0.001
    assert tokenizer.decode(tokenizer.encode("def forward(self, x):")) == "def forward(self, x):"
    assert tokenizer.encode("\u4e2d").tolist() == [0] and tokenizer.decode([0]) == text.CharTokenizer.UNKNOWN
    assert 60 < tokenizer.vocab_size < 120


def test_bad_input_gets_a_clear_error():
    tokenizer = text.CharTokenizer("abc")
    with pytest.raises(ValueError, match="non-empty str"):
        text.CharTokenizer("")
    with pytest.raises(TypeError, match="encode takes a str"):
        tokenizer.encode(["a"])
    with pytest.raises(ValueError, match="out of range: this tokenizer has 4 ids"):
        tokenizer.decode([7])


def test_bpe_merges_the_most_frequent_pair_first_and_breaks_ties_by_order():
    assert text.train_bpe("aaab aaab", 1) == [("a", "a")]
    assert text.train_bpe("ab cd", 1) == [("a", "b")]  # a tie: the pair first in code-point order
    assert text.train_bpe("ab ab", 5) == [("a", "b")]  # nothing left to merge: it stops
    assert text.train_bpe("x.y", 3) == []  # merges never cross a chunk (x | . | y)


def test_bpe_on_the_corpus_round_trips_and_shortens_the_text(corpus):
    merges = text.train_bpe(corpus.train[:200_000], 60)
    assert len(merges) == 60 and merges == text.train_bpe(corpus.train[:200_000], 60)
    tokenizer = text.BPETokenizer(text.CharTokenizer(corpus.train), merges)
    sample = corpus.validation[:20_000]
    ids = tokenizer.encode(sample)
    assert tokenizer.decode(ids) == sample
    assert len(ids) / len(sample) < 0.8  # fewer tokens than characters
    assert tokenizer.vocab_size == text.CharTokenizer(corpus.train).vocab_size + 60
    assert "60 merges" in repr(tokenizer)


def test_bpe_bad_input_gets_a_clear_error():
    with pytest.raises(ValueError, match="non-empty str"):
        text.train_bpe("", 3)
    with pytest.raises(ValueError, match="n_merges"):
        text.train_bpe("abc", -1)
    tokenizer = text.BPETokenizer(text.CharTokenizer("abc"), [("a", "b")])
    with pytest.raises(ValueError, match="out of range: this tokenizer has 5 ids"):
        tokenizer.decode([9])


def test_ngram_baselines_in_bits_per_character(corpus):
    tokenizer = text.CharTokenizer(corpus.train)
    train, valid = tokenizer.encode(corpus.train), tokenizer.encode(corpus.validation)
    unigram = text.ngram_bits_per_character(train, valid, tokenizer.vocab_size, 1)
    bigram = text.ngram_bits_per_character(train, valid, tokenizer.vocab_size, 2)
    assert 4.3 < unigram < 4.8 and 3.3 < bigram < 3.8 and bigram < unigram  # measured: 4.56 and 3.56
    # a text that repeats one character: the unigram needs (almost) no bits
    same = torch.zeros(1000, dtype=torch.long)
    assert text.ngram_bits_per_character(same, same, 2, 1) < 0.01
    with pytest.raises(ValueError, match="order must be 1"):
        text.ngram_bits_per_character(train, valid, tokenizer.vocab_size, 3)
    with pytest.raises(ValueError, match="outside"):
        text.ngram_bits_per_character(train, valid, 5, 1)


# --- lesson 13's model on the text (course_lib.experiments.text_model) ------------------------------------------------

def test_windows_are_consecutive_tokens_from_each_start():
    from course_lib.experiments.text_model import text_batches, windows
    ids = torch.arange(100, 130)
    got = windows(ids, torch.tensor([0, 5, 26]), 3)
    assert got.tolist() == [[100, 101, 102, 103], [105, 106, 107, 108], [126, 127, 128, 129]]
    first = text_batches(ids, 4, 6, seed=1)
    again = text_batches(ids, 4, 6, seed=1)
    for step in range(3):
        batch, same = first(step)[0], again(step)[0]
        assert batch.shape == (6, 5) and torch.equal(batch, same)
        assert torch.equal(batch[:, 1:] - batch[:, :-1], torch.ones(6, 4, dtype=torch.long))  # consecutive
    with pytest.raises(ValueError, match="more than context"):
        text_batches(ids[:5], 4, 2)


def test_bits_per_character_counts_the_characters_the_tokens_cover(corpus):
    from course_lib.experiments.text_model import bits_per_character, covered_characters, text_model
    chars = text.CharTokenizer(corpus.train)
    bpe = text.BPETokenizer(chars, text.train_bpe(corpus.validation[:20_000], 30))
    sample = corpus.validation[:4_000]
    ids = bpe.encode(sample)
    covered = covered_characters(bpe, ids, 16)
    assert len(ids) // 2 < covered <= len(sample)  # byte pairs: more characters than tokens
    model = text_model(bpe.vocab_size, {"d_model": 16, "n_heads": 2, "n_layers": 1, "context": 16}, seed=0)
    per_token = bits_per_character(model, ids, (len(ids) - 1) // 16 * 16)  # "characters" = tokens: bits per token
    per_character = bits_per_character(model, ids, covered)
    assert per_character == pytest.approx(per_token * ((len(ids) - 1) // 16 * 16) / covered)
    assert abs(per_token - math.log2(bpe.vocab_size)) < 0.1  # untrained: a uniform guess
    with pytest.raises(ValueError, match="more than context"):
        bits_per_character(model, ids[:10], 10)
