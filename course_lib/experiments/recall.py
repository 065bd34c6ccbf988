"""A task whose answer lies far back: recall the one key seen near the start. Lesson 10.

    recall_task(n, length, seed)           n sequences of ``length`` tokens and the key each one must recall
    recall_loss(model, batch)              the cross-entropy of the last position's scores against the key
    recall_accuracy(model, ids, answers)   the share of sequences whose best-scored token at the end is the key
    recall_baselines(answers)              what rules that never read the key score: chance, the best fixed guess
    recall_batches(length, batch_size)     a make_batch for fit: new sequences at every step

A sequence is ``length - 1`` tokens and a question mark. Every token is a filler (ids 0..15) but one, the
key (ids 16..23), placed at random among the first quarter of the positions; the last token is ``QUERY``
(id 24). The answer is the key. Nothing after the first quarter says which key it was, so a model can only
answer by carrying the key over at least three quarters of the sequence (a GRU, in its state) or by looking
back at it (a transformer, with attention).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.validation import require_int, require_tensor, require_token_ids, shape_str

N_FILLERS = 16  # ids 0..15: noise, drawn uniformly at every position but two
N_KEYS = 8  # ids 16..23: the token to recall; one per sequence
QUERY = N_FILLERS + N_KEYS  # id 24: the last token of every sequence, "which key was it?"
VOCAB_SIZE = QUERY + 1  # 25
KEY_ZONE = 4  # the key sits among the first length // KEY_ZONE positions (at least position 0)


def recall_task(n: int, length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids (n, length) long, answers (n,) long)``: ``n`` sequences drawn from ``seed`` and the key each ends
    by asking for. The key is at a random position among the first ``length // 4`` (position 0 when that is
    0), so at least ``length - length // 4`` tokens separate it from the question at the end."""
    n = require_int(n, "n", minimum=1)
    length = require_int(length, "length", minimum=2)
    seed = require_int(seed, "seed")
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, N_FILLERS, (n, length), generator=generator)  # (n, length): fillers everywhere
    keys = N_FILLERS + torch.randint(0, N_KEYS, (n,), generator=generator)  # (n,): ids 16..23
    positions = torch.randint(0, max(1, length // KEY_ZONE), (n,), generator=generator)  # (n,): where each key is
    ids[torch.arange(n), positions] = keys
    ids[:, -1] = QUERY  # the question; the answer is the key far back
    return ids, keys


def _checked_batch(ids, answers, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    ids = require_token_ids(ids, "ids", getattr(model, "vocab_size", VOCAB_SIZE), getattr(model, "max_len", None))
    answers = require_tensor(answers, "answers")
    if answers.dim() != 1 or answers.shape[0] != ids.shape[0]:
        raise ValueError(f"answers must have shape (batch,) = ({ids.shape[0]},), one key per sequence, "
                         f"got {shape_str(answers.shape)}")
    return ids, answers.long()


def recall_loss(model: nn.Module, batch: tuple) -> torch.Tensor:
    """The training loss of ``batch = (ids (B, T), answers (B,))``: cross-entropy of the scores ``model``
    gives at the last position (the question) against the key. A loss function for ``fit``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise TypeError("batch must be a tuple (ids, answers), as recall_task returns it")
    ids, answers = _checked_batch(*batch, model)
    return F.cross_entropy(model(ids)[:, -1], answers)  # model(ids): (B, T, vocab); the question's scores: (B, vocab)


@torch.no_grad()
def recall_accuracy(model: nn.Module, ids: torch.Tensor, answers: torch.Tensor, batch_size: int = 250) -> float:
    """The share of sequences for which ``model``'s best-scored token at the last position is the key.
    ``model`` is put in eval mode."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    ids, answers = _checked_batch(ids, answers, model)
    batch_size = require_int(batch_size, "batch_size", minimum=1)
    model.eval()
    right = 0
    for start in range(0, ids.shape[0], batch_size):
        guesses = model(ids[start:start + batch_size])[:, -1].argmax(-1)  # (b,): the best-scored token
        right += int((guesses == answers[start:start + batch_size]).sum())
    return right / ids.shape[0]


def recall_baselines(answers: torch.Tensor) -> dict:
    """What rules that never read the key score on sequences whose keys are ``answers`` (n,): ``{"chance": 1 / 8,
    "best_fixed_guess": the share of the most common key}``. With the key unread every sequence looks alike, so
    one fixed guess is the best such a rule can do; picking it by peeking at ``answers`` makes it the strongest
    such baseline, not a fair one."""
    answers = require_tensor(answers, "answers")
    if answers.dim() != 1 or answers.numel() == 0:
        raise ValueError(f"answers must have shape (n,) with n >= 1, got {shape_str(answers.shape)}")
    counts = torch.bincount(answers.long() - N_FILLERS, minlength=N_KEYS)  # (8,): how often each key is the answer
    return {"chance": 1 / N_KEYS, "best_fixed_guess": int(counts.max()) / answers.numel()}


def recall_batches(length: int, batch_size: int, seed: int = 0):
    """A ``make_batch`` for ``fit``: step ``s`` gets ``batch_size`` new sequences of ``length`` tokens, drawn
    from ``seed`` and ``s`` (so every step reads sequences no step read before, and a run repeats exactly)."""
    length = require_int(length, "length", minimum=2)
    batch_size = require_int(batch_size, "batch_size", minimum=1)
    seed = require_int(seed, "seed", minimum=0)

    def make_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return recall_task(batch_size, length, seed=seed * 1_000_003 + require_int(step, "step", minimum=0))

    return make_batch
