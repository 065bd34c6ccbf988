"""Measure a language model on held-out sentences, and the baseline to measure it against. Lesson 08.

Every measure here lets each prediction see only the words before it, as when the model generates
text. For a causal model that changes nothing; a model trained without the causal mask (lesson 08's
classic bug) loses the next word it learned to copy, and these measures show what it really knows.

    held_out_loss(model, sentences, vocab)              next-token cross-entropy, word by word
    prefix_agreement_accuracy(model, sentences, vocab)  agreement, seeing only the words before the verb
    agreement_by(model, sentences, vocab, key)          agreement accuracy per group of sentences
    BigramLM(ids, vocab_size, pad_id)                   predicts each word from the one before it, by counting
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.experiments.analysis import agreement_accuracy
from course_lib.experiments.grammar import Sentence, encode_sentences, require_sentences, verb_ids
from course_lib.validation import require_int, require_number, require_token_ids
from course_lib.experiments.vocab import Vocabulary


class BigramLM(nn.Module):
    """The simplest language model: count which word follows which, then predict from the current word alone.

    ``BigramLM(ids (batch, time), vocab_size, pad_id=0, smoothing=0.1)`` counts every pair of neighbouring
    tokens in ``ids`` (pairs with padding are skipped); ``forward(ids (batch, time))`` returns log-probabilities
    ``(batch, time, vocab)``: row t is ``log P(next word | ids[:, t])``, with ``smoothing`` added to every
    count so that no word gets probability 0. It has no trained parameters, only counts, and works wherever
    a course model does (``agreement_accuracy``, ``held_out_loss``).
    """

    def __init__(self, ids: torch.Tensor, vocab_size: int, pad_id: int = 0, smoothing: float = 0.1):
        super().__init__()
        vocab_size = require_int(vocab_size, "vocab_size", minimum=1)
        pad_id = require_int(pad_id, "pad_id", minimum=0)
        smoothing = require_number(smoothing, "smoothing", above=0)
        ids = require_token_ids(ids, "ids", vocab_size)
        current, following = ids[:, :-1].reshape(-1), ids[:, 1:].reshape(-1)
        real = (current != pad_id) & (following != pad_id)
        counts = torch.zeros(vocab_size, vocab_size, dtype=torch.float64)
        counts.index_put_((current[real], following[real]), torch.ones(int(real.sum()), dtype=torch.float64),
                          accumulate=True)
        self.vocab_size, self.pad_id, self.smoothing = vocab_size, pad_id, smoothing
        self.register_buffer("counts", counts)  # (current word, next word)
        smoothed = counts + smoothing
        self.register_buffer("log_probs", (smoothed / smoothed.sum(-1, keepdim=True)).log().float())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = require_token_ids(ids, "ids", self.vocab_size)
        return self.log_probs[ids]  # (batch, time, vocab)

    def extra_repr(self) -> str:
        return f"vocab_size={self.vocab_size}, pairs counted={int(self.counts.sum())}, smoothing={self.smoothing:g}"


def _check_model(model, caller: str) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{caller} needs a torch.nn.Module that maps ids (batch, time) to logits "
                        f"(batch, time, vocab), got {type(model).__name__}")
    return model


@torch.no_grad()
def held_out_loss(model: nn.Module, sentences: list[Sentence], vocab: Vocabulary) -> float:
    """Mean next-token cross-entropy over every word of ``sentences`` after ``<bos>``, each predicted from
    the words before it only.

    The model runs once per prefix length, on the prefixes alone, so no prediction can see a later word
    (as when generating). For a causal model this equals ``language_model_loss`` on the same sentences.
    """
    _check_model(model, "held_out_loss")
    sentences = require_sentences(sentences, "held_out_loss")
    ids, lengths = encode_sentences(sentences, vocab)  # (B, T), (B,)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for t in range(1, ids.shape[1]):
            rows = lengths > t  # sentences that have a word at position t
            logits = model(ids[rows, :t])[:, -1]  # (rows, vocab): the prediction made at position t - 1
            total += float(F.cross_entropy(logits.double(), ids[rows, t], reduction="sum"))
            count += int(rows.sum())
    finally:
        model.train(was_training)
    return total / count


@torch.no_grad()
def prefix_agreement_accuracy(model: nn.Module, sentences: list[Sentence], vocab: Vocabulary) -> float:
    """Like ``analysis.agreement_accuracy`` (the right verb form scores above the wrong one), but the model
    sees only the words before the verb: each sentence is cut just before its verb. For a causal model the
    two are equal; a model that can look ahead loses the verb it would otherwise copy."""
    _check_model(model, "prefix_agreement_accuracy")
    sentences = require_sentences(sentences, "prefix_agreement_accuracy")
    by_length: dict[int, list[Sentence]] = {}
    for s in sentences:
        by_length.setdefault(s.verb, []).append(s)  # same prefix length: a batch without padding
    was_training = model.training
    model.eval()
    correct = 0
    try:
        for verb, group in by_length.items():
            ids = torch.tensor([vocab.encode(s.tokens[:verb]) for s in group])  # (group, verb)
            scores = model(ids)[:, -1]  # (group, vocab): the prediction of the verb
            right, wrong = verb_ids(group, vocab)
            rows = torch.arange(len(group))
            correct += int((scores[rows, right] > scores[rows, wrong]).sum())
    finally:
        model.train(was_training)
    return correct / len(sentences)


def agreement_by(model: nn.Module, sentences: list[Sentence], vocab: Vocabulary,
                 key: Callable[[Sentence], Hashable]) -> dict:
    """Agreement accuracy per group: ``{key(sentence): (accuracy, number of sentences)}``, keys sorted.

    E.g. ``key=lambda s: len(s.attractors)`` or ``key=lambda s: s.distance``. Each group is scored with
    ``analysis.agreement_accuracy``, so the groups' accuracies average (weighted by size) to the overall one.
    """
    _check_model(model, "agreement_by")
    sentences = require_sentences(sentences, "agreement_by")
    if not callable(key):
        raise TypeError(f"key must be a function of a sentence, e.g. lambda s: len(s.attractors), "
                        f"got {type(key).__name__}")
    groups: dict = {}
    for s in sentences:
        groups.setdefault(key(s), []).append(s)
    return {k: (agreement_accuracy(model, groups[k], vocab), len(groups[k])) for k in sorted(groups)}
