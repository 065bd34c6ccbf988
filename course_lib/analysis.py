"""What did the heads learn? Capture attention, score heads against the grammar's truth, ablate heads.

Lesson 09. Attention is captured as ``(batch, layers, heads, query, key)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch
from torch import nn

from .attention import MultiHeadAttention
from .grammar import Sentence, encode_sentences, verb_ids
from .vocab import Vocabulary


def attention_modules(model: nn.Module) -> list[MultiHeadAttention]:
    """The model's ``MultiHeadAttention`` modules, in layer order."""
    found = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    if not found:
        raise ValueError(f"{type(model).__name__} has no course_lib MultiHeadAttention module")
    return found


@torch.no_grad()
def capture_attention(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Run a course model with ``return_attention=True``: ``(batch, layers, heads, query, key)``."""
    was_training = model.training
    model.eval()
    try:
        _, attention = model(inputs, return_attention=True)
    except TypeError as error:
        raise TypeError(f"{type(model).__name__}.forward does not take return_attention=True; "
                        f"capture_attention works with course_lib models") from error
    finally:
        model.train(was_training)
    return torch.stack(attention, dim=1)


@torch.no_grad()
def agreement_accuracy(model: nn.Module, sentences: list[Sentence], vocab: Vocabulary,
                       batch_size: int = 512) -> float:
    """The fraction of sentences where the model, at the position before the verb, gives the correct
    verb form a higher score than the same verb in the other number."""
    if not sentences:
        raise ValueError("agreement_accuracy needs at least one sentence")
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(sentences), batch_size):
        chunk = sentences[start:start + batch_size]
        ids, _ = encode_sentences(chunk, vocab)
        logits = model(ids)  # (B, T, vocab)
        rows = torch.arange(len(chunk))
        before_verb = torch.tensor([s.verb - 1 for s in chunk])
        right, wrong = verb_ids(chunk, vocab)
        scores = logits[rows, before_verb]  # (B, vocab): the prediction of the verb
        correct += int((scores[rows, right] > scores[rows, wrong]).sum())
    model.train(was_training)
    return correct / len(sentences)


@torch.no_grad()
def head_scores(model: nn.Module, sentences: list[Sentence], vocab: Vocabulary) -> dict[str, torch.Tensor]:
    """Score every head against the grammar's ground truth; each score is ``(layers, heads)``.

    ``previous_token``: mean weight from each position to the one just before it.
    ``verb_to_subject``: mean weight from the position that predicts the verb (verb - 1) to the subject.
    """
    ids, lengths = encode_sentences(sentences, vocab)
    attention = capture_attention(model, ids)  # (B, L, H, T, T)
    B, L, H, T, _ = attention.shape
    rows = torch.arange(B)
    before_verb = torch.tensor([s.verb - 1 for s in sentences])
    subject = torch.tensor([s.subject for s in sentences])
    verb_to_subject = attention[rows, :, :, before_verb, subject].mean(0)  # (L, H)

    query = torch.arange(1, T)
    previous = attention[:, :, :, query, query - 1]  # (B, L, H, T-1)
    real = (query[None, :] < lengths[:, None]).float()  # (B, T-1): skip padding positions
    previous_token = (previous * real[:, None, None]).sum((0, 3)) / real.sum()
    return {"previous_token": previous_token, "verb_to_subject": verb_to_subject}


@contextlib.contextmanager
def ablate_heads(model: nn.Module, heads: Iterable[tuple[int, int]]):
    """Silence heads inside a ``with`` block: ``heads`` is a list of ``(layer, head)`` pairs.

    A silenced head's output is set to zero before the output projection, as if it were never there.
    """
    modules = attention_modules(model)
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        if not 0 <= layer < len(modules) or not 0 <= head < modules[layer].n_heads:
            raise ValueError(f"(layer, head)=({layer}, {head}) is outside this model's "
                             f"{len(modules)} layers x {modules[0].n_heads} heads")
        by_layer.setdefault(layer, []).append(head)

    def silencer(silenced: list[int], d_head: int):
        def hook(module, inputs):
            merged = inputs[0].clone()  # (B, T, H * d_head): head h owns features h*d_head ... (h+1)*d_head-1
            for h in silenced:
                merged[..., h * d_head:(h + 1) * d_head] = 0
            return (merged,)
        return hook

    handles = [modules[layer].out_proj.register_forward_pre_hook(silencer(hs, modules[layer].d_head))
               for layer, hs in by_layer.items()]
    try:
        yield model
    finally:
        for handle in handles:
            handle.remove()


def ablation_effects(model: nn.Module, sentences: list[Sentence], vocab: Vocabulary) -> torch.Tensor:
    """Agreement accuracy with each head silenced in turn: ``(layers, heads)``."""
    modules = attention_modules(model)
    effects = torch.zeros(len(modules), modules[0].n_heads)
    for layer, module in enumerate(modules):
        for head in range(module.n_heads):
            with ablate_heads(model, [(layer, head)]):
                effects[layer, head] = agreement_accuracy(model, sentences, vocab)
    return effects
