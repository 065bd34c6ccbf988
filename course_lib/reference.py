"""The course's reference result: a small TransformerLM learns subject-verb agreement, and one of its
heads learns to look from the verb back to the subject. Lessons 08-09 and ``python -m course_lib bench``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .analysis import agreement_accuracy, head_scores
from .grammar import Sentence, agreement_corpus, agreement_vocabulary, encode_sentences
from .language_model import TransformerLM
from .training import TrainingHistory, fit, language_model_loss, random_batches, seed_everything
from .vocab import Vocabulary

REFERENCE_CONFIG = dict(d_model=64, n_heads=4, n_layers=2, max_len=24)


@dataclass
class ReferenceRun:
    model: TransformerLM
    vocab: Vocabulary
    train: list[Sentence]
    test: list[Sentence]
    history: TrainingHistory
    agreement_accuracy: float
    subject_head_weight: float
    subject_head: tuple[int, int]

    def __repr__(self) -> str:
        return (f"ReferenceRun(agreement_accuracy={self.agreement_accuracy:.3f}, "
                f"subject_head_weight={self.subject_head_weight:.2f}, subject_head={self.subject_head})")


def train_reference_model(steps: int = 800, batch_size: int = 64, seed: int = 0, n_train: int = 20000,
                          n_test: int = 1000, lr: float = 1e-2, progress: bool = True) -> ReferenceRun:
    """Train the reference ``TransformerLM`` (2 layers, 4 heads, d_model 64) on the agreement grammar.

    Test sentences are held out and each has at least one attractor between subject and verb.
    """
    seed_everything(seed)
    vocab = agreement_vocabulary()
    train, test = agreement_corpus(n_train, n_test, seed=seed)
    ids, _ = encode_sentences(train, vocab)  # (n_train, T)
    model = TransformerLM(len(vocab), **REFERENCE_CONFIG)
    history = fit(model, random_batches(ids, batch_size=batch_size, seed=seed),
                  lambda m, batch: language_model_loss(m, batch, vocab.pad_id),
                  steps=steps, lr=lr, warmup=50, progress=progress)
    accuracy = agreement_accuracy(model, test, vocab)
    scores = head_scores(model, test, vocab)["verb_to_subject"]  # (layers, heads)
    best = int(scores.argmax())
    layer, head = divmod(best, scores.shape[1])
    return ReferenceRun(model, vocab, train, test, history, accuracy, float(scores.max()), (layer, head))
