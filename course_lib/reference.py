"""The course's reference result: a small TransformerLM learns subject-verb agreement; one of its heads
learns to look from the verb back to the subject, found by content wherever the subject stands, and
another looks at the previous word. Lessons 08-09, ``python -m course_lib bench`` and ``doctor``.

``REFERENCE`` is the one configuration; every number about it lives here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .analysis import agreement_accuracy, head_scores
from .grammar import Sentence, agreement_corpus, agreement_vocabulary, encode_sentences, subject_baselines
from .language_model import TransformerLM
from .training import TrainingHistory, fit, language_model_loss, random_batches, seed_everything
from .vocab import Vocabulary


@dataclass(frozen=True)
class ReferenceConfig:
    """Model size, data and training of the reference run, and the targets it must meet."""

    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    max_len: int = 32
    # Sinusoidal positions make "the word before me" the same rotation at every position (lesson 06), so
    # the neighbour head forms everywhere and no head can find the subject by its position alone.
    positions: str = "sinusoidal"
    steps: int = 1000
    batch_size: int = 64
    lr: float = 5e-3
    warmup: int = 50
    n_train: int = 20000
    n_test: int = 1000
    # Targets, checked by bench and by the seed x thread matrix.
    min_accuracy: float = 0.99
    min_subject_weight: float = 0.8
    min_neighbour_weight: float = 0.8
    # 30-42 s at one thread on the course's 2-core machine (it varies with the machine's load). 800 steps
    # would fit in 20 s, but then seed 6 never learned agreement (measured): the result comes first, and
    # the explorer notebook, which trains it, still runs in under a minute.
    max_seconds: float = 45.0

    def model_kwargs(self) -> dict:
        """The arguments of ``TransformerLM`` besides the vocabulary size."""
        return dict(d_model=self.d_model, n_heads=self.n_heads, n_layers=self.n_layers, max_len=self.max_len,
                    positions=self.positions)


REFERENCE = ReferenceConfig()


@dataclass
class ReferenceRun:
    """A trained reference model, its data, and what it scored on the held-out test sentences."""

    model: TransformerLM
    vocab: Vocabulary
    train: list[Sentence]
    test: list[Sentence]
    history: TrainingHistory
    agreement_accuracy: float
    subject_head_weight: float
    subject_head: tuple[int, int]
    neighbour_head_weight: float
    neighbour_head: tuple[int, int]
    baselines: dict[str, float]
    config: ReferenceConfig = REFERENCE

    def meets_targets(self) -> bool:
        c = self.config
        return (self.agreement_accuracy >= c.min_accuracy and self.subject_head_weight >= c.min_subject_weight
                and self.neighbour_head_weight >= c.min_neighbour_weight)

    def __repr__(self) -> str:
        return (f"ReferenceRun(agreement_accuracy={self.agreement_accuracy:.3f}, "
                f"subject_head_weight={self.subject_head_weight:.2f}, subject_head={self.subject_head}, "
                f"neighbour_head_weight={self.neighbour_head_weight:.2f}, neighbour_head={self.neighbour_head})")


def _best(scores: torch.Tensor) -> tuple[float, tuple[int, int]]:
    layer, head = divmod(int(scores.argmax()), scores.shape[1])
    return float(scores.max()), (layer, head)


def train_reference_model(seed: int = 0, config: ReferenceConfig = REFERENCE, progress: bool = True,
                          **changes) -> ReferenceRun:
    """Train the reference ``TransformerLM`` on the agreement grammar and score its heads.

    Test sentences are held out and each has at least one attractor between subject and verb.
    ``changes`` override fields of ``config`` (e.g. ``steps=400`` for a quick look).
    """
    config = replace(config, **changes) if changes else config
    seed_everything(seed)
    vocab = agreement_vocabulary()
    train, test = agreement_corpus(config.n_train, config.n_test, seed=seed)
    ids, _ = encode_sentences(train, vocab)  # (n_train, T)
    model = TransformerLM(len(vocab), **config.model_kwargs())
    history = fit(model, random_batches(ids, batch_size=config.batch_size, seed=seed),
                  lambda m, batch: language_model_loss(m, batch, vocab.pad_id),
                  steps=config.steps, lr=config.lr, warmup=config.warmup, progress=progress)
    scores = head_scores(model, test, vocab)  # each (layers, heads)
    subject_weight, subject_head = _best(scores["verb_to_subject"])
    neighbour_weight, neighbour_head = _best(scores["neighbour"])
    return ReferenceRun(model, vocab, train, test, history, agreement_accuracy(model, test, vocab),
                        subject_weight, subject_head, neighbour_weight, neighbour_head,
                        subject_baselines(test, reference=train), config)
