"""The course's reference result: a small TransformerLM learns subject-verb agreement; one of its heads
learns to look from the verb back to the subject, found by content wherever the subject stands, and
another looks at the previous word. Lessons 08-09, ``python -m course_lib bench`` and ``doctor``.

``REFERENCE`` is the one configuration; every number about it lives here.

Lesson 08 trains the model with ``train_reference_model``, which also keeps the trained weights in a
cache folder on disk (``course_lib.experiments.cache``); lesson 09 and the explorer call ``load_reference_model``, which takes them from
there when lesson 08 already ran on this machine and trains them (about 30 s) when not. Either way you get the
same model: the cache is keyed by everything that decides the result (the configuration, the seed, the
thread count, PyTorch's version and course_lib's own source), so a changed course never reuses a stale model.
The folder is ``COURSE_LIB_CACHE`` if set, else ``transformer-course`` in your user cache folder
(``~/.cache`` on Linux); deleting it is always safe.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from course_lib.experiments import cache
from course_lib.experiments.analysis import agreement_accuracy, head_scores
from course_lib.experiments.grammar import Sentence, agreement_corpus, agreement_vocabulary, encode_sentences, subject_baselines
from course_lib.models.language_model import TransformerLM
from course_lib.experiments.training import TrainingHistory, fit, language_model_loss, random_batches, seed_everything
from course_lib.experiments.vocab import Vocabulary


@dataclass(frozen=True)
class ReferenceConfig:
    """Model size, data and training of the reference run, and the targets it must meet."""

    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    # The MLP widens to 2 x d_model, not lesson 07's usual 4 x: agreement is attention's work, and the narrower
    # MLP takes about a sixth less time a step (measured back to back: 34-38 ms against 41-46 ms) and learned
    # agreement in all 30 runs of the seed matrix, where the 4 x MLP learned it in 29.
    d_ff: int = 128
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
    # 28-37 s at one thread on the course's 2-core machine (it varies with the machine's load). Fewer steps
    # would be faster, but with 800 some seeds never learned agreement (measured): the result comes first.
    max_seconds: float = 38.0

    def model_kwargs(self) -> dict:
        """The arguments of ``TransformerLM`` besides the vocabulary size."""
        return dict(d_model=self.d_model, n_heads=self.n_heads, n_layers=self.n_layers, d_ff=self.d_ff,
                    max_len=self.max_len, positions=self.positions)


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
    # The weights before training, (name -> tensor): what learning changed is model.state_dict() minus these.
    initial_state: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    from_cache: bool = False  # True when load_reference_model took the trained weights from the cache

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


def _prepare(seed: int, config: ReferenceConfig):
    """The vocabulary, the train and test sentences, the encoded training ids and a freshly initialised model."""
    seed_everything(seed)
    vocab = agreement_vocabulary()
    train, test = agreement_corpus(config.n_train, config.n_test, seed=seed)
    ids, _ = encode_sentences(train, vocab)  # (n_train, T)
    model = TransformerLM(len(vocab), **config.model_kwargs())
    return vocab, train, test, ids, model


def _score(model, vocab, train, test, history, config, initial_state, from_cache) -> ReferenceRun:
    scores = head_scores(model, test, vocab)  # each (layers, heads)
    subject_weight, subject_head = _best(scores["verb_to_subject"])
    neighbour_weight, neighbour_head = _best(scores["neighbour"])
    return ReferenceRun(model, vocab, train, test, history, agreement_accuracy(model, test, vocab),
                        subject_weight, subject_head, neighbour_weight, neighbour_head,
                        subject_baselines(test, reference=train), config, initial_state, from_cache)


def _check_seed(seed) -> int:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    return seed


def train_reference_model(seed: int = 0, config: ReferenceConfig = REFERENCE, progress: bool = True,
                          cache: bool = True, **changes) -> ReferenceRun:
    """Train the reference ``TransformerLM`` on the agreement grammar and score its heads.

    Test sentences are held out and each has at least one attractor between subject and verb.
    ``changes`` override fields of ``config`` (e.g. ``steps=400`` for a quick look). With ``cache`` the
    trained weights are also saved for ``load_reference_model`` (a cache that cannot be written is skipped).
    """
    seed = _check_seed(seed)
    config = replace(config, **changes) if changes else config
    if not cache:
        return _train(seed, config, progress, save=False)
    with _cache_lock(seed, config):
        return _train(seed, config, progress, save=True)


def _train(seed: int, config: ReferenceConfig, progress: bool, save: bool) -> ReferenceRun:
    vocab, train, test, ids, model = _prepare(seed, config)
    initial_state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    history = fit(model, random_batches(ids, batch_size=config.batch_size, seed=seed),
                  lambda m, batch: language_model_loss(m, batch, vocab.pad_id),
                  steps=config.steps, lr=config.lr, warmup=config.warmup, progress=progress)
    if save:
        _save(cache_path(seed, config), model, initial_state, history)
    return _score(model, vocab, train, test, history, config, initial_state, from_cache=False)


def load_reference_model(seed: int = 0, config: ReferenceConfig = REFERENCE, progress: bool = True,
                         **changes) -> ReferenceRun:
    """The trained reference model: from the cache when ``train_reference_model`` already trained it with
    the same settings on this machine (lesson 08), else trained now and cached. ``run.from_cache`` says which."""
    seed = _check_seed(seed)
    config = replace(config, **changes) if changes else config
    path = cache_path(seed, config)
    with _cache_lock(seed, config):  # if another kernel is training this very model, wait for it
        saved = _load(path)
        if saved is None:
            return _train(seed, config, progress, save=True)
    vocab, train, test, _, model = _prepare(seed, config)
    model.load_state_dict(saved["state"])
    model.eval()
    history = TrainingHistory(losses=list(saved["losses"]), seconds=float(saved["seconds"]))
    return _score(model, vocab, train, test, history, config, saved["initial_state"], from_cache=True)


# ---------------------------------------------------------------------------------------------------------
# The cache (course_lib.experiments.cache): one file per (configuration, seed, thread count, PyTorch version, course_lib source).
# ---------------------------------------------------------------------------------------------------------

# The modules whose code decides what training produces.
_SOURCES = ("models/attention.py", "models/block.py", "models/language_model.py", "models/positions.py",
            "experiments/grammar.py", "experiments/reference.py", "experiments/training.py", "experiments/vocab.py")


def cache_path(seed: int, config: ReferenceConfig = REFERENCE) -> Path:
    """Where the trained weights of this seed and configuration are kept, at this thread count."""
    return cache.entry_path(f"reference-seed{seed}", _SOURCES, (config, seed))


def _cache_lock(seed: int, config: ReferenceConfig):
    return cache.lock(f"reference-seed{seed}")


def _save(path: Path, model, initial_state, history) -> None:
    cache.save(path, {"state": model.state_dict(), "initial_state": initial_state,
                      "losses": history.losses, "seconds": history.seconds})


_load = cache.load


# ---------------------------------------------------------------------------------------------------------
# The record: the reference trained for many seeds at 1, 2 and 4 threads (python -m course_lib record
# reference-seeds, about 25 minutes), kept with the course so that lesson 09 can show what many runs did.
# ---------------------------------------------------------------------------------------------------------

RECORDED_SEED_MATRIX = Path(__file__).resolve().parent.parent / "data" / "reference_seed_matrix.json"


def recorded_seed_matrix(path: Path | None = None) -> list[dict]:
    """The recorded runs, one dict per (seed, threads), as ``bench --json`` reports a reference run; each has
    ``heads``: every head's scores and silencing cost, ``(layers, heads)`` nested lists. Raises if the record
    was made with another configuration than ``REFERENCE`` (then re-record it)."""
    path = RECORDED_SEED_MATRIX if path is None else Path(path)
    content = json.loads(path.read_text())
    if content.get("config") != asdict(REFERENCE):
        raise RuntimeError(f"{path.name} was recorded with another configuration than REFERENCE: run "
                           f"`python -m course_lib record reference-seeds` again (about 25 minutes)")
    return content["runs"]
