"""What did the heads learn? Look inside a model, score heads against the grammar's truth, silence heads.

Lessons 09 and 12. ``capture`` is the one way to look inside any model built from course_lib's
``MultiHeadAttention`` or from an attention module of your own (``is_attention_module``): inside a
``with`` block it records, by layer,

    attention      (batch, layers, heads, query, key)   the weights of every head
    head_outputs   (batch, layers, heads, time, d_head)  what each head sends on, before the output projection
    hidden         (batch, layers + 1, time, d_model)    the input to the first layer, then the output of every layer

and it can silence heads (their output set to zero, as if they were never there).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterable

import torch
from torch import nn

from course_lib.models.attention import MultiHeadAttention
from course_lib.experiments.grammar import Sentence, encode_sentences, require_sentences, subject_baselines, verb_ids
from course_lib.experiments.vocab import Vocabulary


def is_attention_module(module: nn.Module) -> bool:
    """True for course_lib's ``MultiHeadAttention`` and for your own attention module, recognised by its shape:
    an ``nn.Module`` with an int ``n_heads`` whose forward returns ``(output, weights (batch, heads, query,
    key))``. Silencing heads, or recording what each sends on, also needs an ``out_proj`` ``nn.Linear`` whose
    input is the heads' outputs side by side (head h owns features h*d_head ... (h+1)*d_head - 1)."""
    if isinstance(module, MultiHeadAttention):
        return True
    heads = getattr(module, "n_heads", None)
    return isinstance(heads, int) and not isinstance(heads, bool) and heads >= 1


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """The model's attention modules (see ``is_attention_module``), in layer order. A module with ``n_heads``
    that holds attention modules (a block, a whole model) is a container, not one of them."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    candidates = [m for m in model.modules() if is_attention_module(m)]
    found = [m for m in candidates
             if isinstance(m, MultiHeadAttention) or not any(is_attention_module(c) for c in m.modules() if c is not m)]
    if not found:
        raise ValueError(f"{type(model).__name__} has no attention module: capture and the head scores look for "
                         f"course_lib's MultiHeadAttention, or a module of yours with an int `n_heads` whose "
                         f"forward returns (output, weights (batch, heads, query, key))")
    return found


def _d_head(module: nn.Module, why: str) -> int:
    projection = getattr(module, "out_proj", None)
    if not isinstance(projection, nn.Linear) or projection.in_features % module.n_heads:
        raise ValueError(f"{why} needs the heads' outputs side by side: {type(module).__name__} must have an "
                         f"`out_proj` nn.Linear whose input has n_heads x d_head features (n_heads = "
                         f"{module.n_heads}); it has none")
    return projection.in_features // module.n_heads


def _weights_argument(module: nn.Module) -> int | None:
    """The position of ``need_weights`` in the module's forward (after ``self``), or None if it has none."""
    if isinstance(module, MultiHeadAttention):
        return 2  # forward(x, mask, need_weights)
    try:
        names = list(inspect.signature(module.forward).parameters)
    except (TypeError, ValueError):
        return None
    return names.index("need_weights") if "need_weights" in names else None


def _layers(model: nn.Module, attention: list[nn.Module]) -> list[nn.Module]:
    """The module that holds each attention module as a direct child: its layer (a TransformerBlock)."""
    parents = {id(child): parent for parent in model.modules() for child in parent.children()}
    layers = [parents.get(id(a)) for a in attention]
    if any(layer is None for layer in layers) or len({id(layer) for layer in layers}) != len(layers):
        raise ValueError("hidden states need one layer module per attention module (e.g. TransformerBlock); "
                         f"{type(model).__name__} nests its attention differently")
    return layers


def _check_heads(heads, modules: list[nn.Module]) -> dict[int, list[int]]:
    by_layer: dict[int, list[int]] = {}
    for pair in heads:
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(i, int) for i in pair)):
            raise TypeError(f"heads must be (layer, head) pairs of ints, got {pair!r}")
        layer, head = pair
        if not 0 <= layer < len(modules) or not 0 <= head < modules[layer].n_heads:
            raise ValueError(f"(layer, head)=({layer}, {head}) is outside this model's "
                             f"{len(modules)} layers x {modules[0].n_heads} heads")
        by_layer.setdefault(layer, []).append(head)
    return by_layer


class Recording:
    """What ``capture`` saw during the last forward pass inside its ``with`` block.

    Each property stacks the layers: ``attention (batch, layers, heads, query, key)``,
    ``head_outputs (batch, layers, heads, time, d_head)``, ``hidden (batch, layers + 1, time, d_model)``.
    """

    def __init__(self, n_layers: int, wanted: set[str]):
        self.n_layers, self.wanted = n_layers, wanted
        self._parts: dict[str, dict[int, torch.Tensor]] = {name: {} for name in wanted}

    def _store(self, what: str, layer: int, tensor: torch.Tensor) -> None:
        self._parts[what][layer] = tensor.detach()

    def _stacked(self, what: str, expected: int) -> torch.Tensor:
        if what not in self.wanted:
            raise ValueError(f"{what} was not recorded: ask for it, e.g. capture(model, {what}=True)")
        parts = self._parts[what]
        if not parts:
            raise ValueError("nothing recorded yet: run the model inside the `with capture(...)` block")
        if sorted(parts) != list(range(expected)):
            raise ValueError(f"{what} was recorded for layers {sorted(parts)} only, expected {expected}: did the "
                             f"forward pass skip a layer?")
        return torch.stack([parts[i] for i in range(expected)], dim=1)

    @property
    def attention(self) -> torch.Tensor:
        return self._stacked("attention", self.n_layers)

    @property
    def head_outputs(self) -> torch.Tensor:
        return self._stacked("head_outputs", self.n_layers)

    @property
    def hidden(self) -> torch.Tensor:
        return self._stacked("hidden", self.n_layers + 1)

    def __repr__(self) -> str:
        got = {name: tuple(next(iter(parts.values())).shape) for name, parts in self._parts.items() if parts}
        return f"Recording({self.n_layers} layers, recorded {got or 'nothing yet'})"


@contextlib.contextmanager
def capture(model: nn.Module, attention: bool = True, head_outputs: bool = False, hidden: bool = False,
            silence: Iterable[tuple[int, int]] = ()):
    """Record attention, head outputs and hidden states by layer while the model runs; silence heads.

    ::

        with capture(model, hidden=True, silence=[(1, 2)]) as record:
            logits = model(ids)              # layer 1's head 2 contributes nothing in here
        record.attention                     # (batch, layers, heads, query, key)
        record.hidden                        # (batch, layers + 1, time, d_model)

    Works with any model built from course_lib's ``MultiHeadAttention`` or from your own attention module
    (see ``is_attention_module``), whatever the model's ``forward`` takes; the model's outputs are the same
    as without ``capture`` (unless you silence heads).
    Hooks are removed when the block ends, even after an error.
    """
    modules = attention_modules(model)
    silenced = _check_heads(silence, modules)
    wanted = {name for name, on in (("attention", attention), ("head_outputs", head_outputs),
                                    ("hidden", hidden)) if on}
    record = Recording(len(modules), wanted)
    handles = []

    def ask_for_weights(position: int | None):
        def hook(module, args, kwargs):
            if position is None:  # the module always returns its weights
                return args, kwargs
            if len(args) > position:  # need_weights passed positionally
                return (*args[:position], True, *args[position + 1:]), kwargs
            return args, {**kwargs, "need_weights": True}
        return hook

    def keep_weights(layer: int):
        def hook(module, args, output):
            weights = output[1] if isinstance(output, (tuple, list)) and len(output) >= 2 else None
            if not (isinstance(weights, torch.Tensor) and weights.dim() == 4 and weights.shape[1] == module.n_heads):
                got = (f"weights of shape {tuple(weights.shape)}" if isinstance(weights, torch.Tensor)
                       else f"{type(output).__name__}" if weights is None else f"{type(weights).__name__} as weights")
                raise ValueError(f"capture: layer {layer}'s {type(module).__name__} returned {got}; expected "
                                 f"(output, weights (batch, heads={module.n_heads}, query, key))")
            record._store("attention", layer, weights)
        return hook

    def before_out_proj(layer: int, module: nn.Module, d_head: int):
        heads_off = silenced.get(layer, [])

        def hook(proj, args):
            merged = args[0]  # (B, T, H * d_head): head h owns features h*d_head ... (h+1)*d_head-1
            if heads_off:
                merged = merged.clone()
                for h in heads_off:
                    merged[..., h * d_head:(h + 1) * d_head] = 0
            if "head_outputs" in wanted:
                B, T, _ = merged.shape
                record._store("head_outputs", layer, merged.reshape(B, T, module.n_heads, d_head).transpose(1, 2))
            return (merged, *args[1:])
        return hook

    def keep_hidden(index: int, take_input: bool = False):
        def hook(layer_module, args, output=None):
            value = args[0] if take_input else output
            record._store("hidden", index, value[0] if isinstance(value, tuple) else value)
        return hook

    try:
        for layer, module in enumerate(modules):
            if attention:
                handles.append(module.register_forward_pre_hook(ask_for_weights(_weights_argument(module)),
                                                                with_kwargs=True))
                handles.append(module.register_forward_hook(keep_weights(layer)))
            if head_outputs or layer in silenced:
                d_head = _d_head(module, "silencing a head" if layer in silenced else "head_outputs")
                handles.append(module.out_proj.register_forward_pre_hook(before_out_proj(layer, module, d_head)))
        if hidden:
            layers = _layers(model, modules)
            handles.append(layers[0].register_forward_pre_hook(keep_hidden(0, take_input=True)))
            for index, layer_module in enumerate(layers):
                handles.append(layer_module.register_forward_hook(keep_hidden(index + 1)))
        yield record
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def capture_attention(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Run the model once in eval mode and return its attention: ``(batch, layers, heads, query, key)``."""
    was_training = model.training
    model.eval()
    try:
        with capture(model) as record:
            model(inputs)
    finally:
        model.train(was_training)
    return record.attention


def ablate_heads(model: nn.Module, heads: Iterable[tuple[int, int]]):
    """Silence heads inside a ``with`` block: ``heads`` is a list of ``(layer, head)`` pairs.

    The same as ``capture(model, attention=False, silence=heads)``.
    """
    return capture(model, attention=False, silence=list(heads))


@torch.no_grad()
def agreement_accuracy(model: nn.Module, sentences: list[Sentence], vocab: Vocabulary,
                       batch_size: int = 512) -> float:
    """The fraction of sentences where the model, at the position before the verb, gives the correct
    verb form a higher score than the same verb in the other number."""
    sentences = require_sentences(sentences, "agreement_accuracy")
    was_training = model.training
    model.eval()
    correct = 0
    try:
        for start in range(0, len(sentences), batch_size):
            chunk = sentences[start:start + batch_size]
            ids, _ = encode_sentences(chunk, vocab)
            logits = model(ids)  # (B, T, vocab)
            rows = torch.arange(len(chunk))
            before_verb = torch.tensor([s.verb - 1 for s in chunk])
            right, wrong = verb_ids(chunk, vocab)
            scores = logits[rows, before_verb]  # (B, vocab): the prediction of the verb
            correct += int((scores[rows, right] > scores[rows, wrong]).sum())
    finally:
        model.train(was_training)
    return correct / len(sentences)


@torch.no_grad()
def head_scores(model: nn.Module, sentences: list[Sentence], vocab: Vocabulary) -> dict[str, torch.Tensor]:
    """Score every head against the grammar's ground truth; each score is ``(layers, heads)``.

    ``verb_to_subject``: mean weight from the position that predicts the verb (verb - 1) to the subject.
    ``neighbour``: mean weight from each annotated neighbour query (a "the" after a preposition, whose
    next word the preposition decides) to the word just before it. NaN if no sentence has one.
    ``previous_token``: mean weight from every position to the one just before it, over all positions.
    """
    sentences = require_sentences(sentences, "head_scores")
    ids, lengths = encode_sentences(sentences, vocab)
    attention = capture_attention(model, ids)  # (B, L, H, T, T)
    B, L, H, T, _ = attention.shape
    rows = torch.arange(B)
    before_verb = torch.tensor([s.verb - 1 for s in sentences])
    subject = torch.tensor([s.subject for s in sentences])
    verb_to_subject = attention[rows, :, :, before_verb, subject].mean(0)  # (L, H)

    pairs = [(b, query, key) for b, s in enumerate(sentences) for query, key in s.neighbours]
    if pairs:
        b, query, key = (torch.tensor(column) for column in zip(*pairs))
        neighbour = attention[b, :, :, query, key].mean(0)  # (L, H)
    else:
        neighbour = torch.full((L, H), float("nan"))

    query = torch.arange(1, T)
    previous = attention[:, :, :, query, query - 1]  # (B, L, H, T-1)
    real = (query[None, :] < lengths[:, None]).float()  # (B, T-1): skip padding positions
    previous_token = (previous * real[:, None, None]).sum((0, 3)) / real.sum().clamp(min=1)
    return {"previous_token": previous_token, "neighbour": neighbour, "verb_to_subject": verb_to_subject}


@torch.no_grad()
def subject_head_figures(model: nn.Module, head, sentences: list[Sentence], vocab: Vocabulary,
                         reference: list[Sentence] | None = None) -> dict:
    """How one head and the model do at finding the subject in ``sentences`` (lesson 09), as plain numbers:

    ``agreement_accuracy``: as ``agreement_accuracy``;
    ``subject_hit_rate``: how often the head's strongest weight, from the position that predicts the verb,
    lands on the subject; ``subject_head_weight``: its mean weight there;
    ``baselines``: how often each rule of ``subject_baselines`` finds the subject (the most common position
    counted in ``reference``, e.g. the training sentences). ``head`` is ``(layer, head)``, counted from 0.
    """
    sentences = require_sentences(sentences, "subject_head_figures")
    if (not isinstance(head, (tuple, list)) or len(head) != 2
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in head)):
        raise TypeError(f"head must be a pair (layer, head) of ints, got {head!r}")
    ids, _ = encode_sentences(sentences, vocab)
    attention = capture_attention(model, ids)  # (batch, layers, heads, query, key)
    B, L, H = attention.shape[:3]
    layer, index = head
    if not (0 <= layer < L and 0 <= index < H):
        raise ValueError(f"head {tuple(head)!r} is not in this model: layers 0..{L - 1}, heads 0..{H - 1}")
    rows = torch.arange(B)
    before_verb = torch.tensor([s.verb - 1 for s in sentences])
    subject = torch.tensor([s.subject for s in sentences])
    from_verb = attention[rows, layer, index, before_verb]  # (batch, key)
    return {"agreement_accuracy": round(agreement_accuracy(model, sentences, vocab), 3),
            "subject_hit_rate": round(float((from_verb.argmax(-1) == subject).float().mean()), 3),
            "subject_head_weight": round(float(from_verb[rows, subject].mean()), 3),
            "baselines": {name: round(rate, 3) for name, rate in subject_baselines(sentences, reference).items()}}


def ablation_effects(model: nn.Module, sentences: list[Sentence], vocab: Vocabulary) -> torch.Tensor:
    """Agreement accuracy with each head silenced in turn: ``(layers, heads)``."""
    sentences = require_sentences(sentences, "ablation_effects")  # a list: read once per head
    modules = attention_modules(model)
    effects = torch.zeros(len(modules), modules[0].n_heads)
    for layer, module in enumerate(modules):
        for head in range(module.n_heads):
            with ablate_heads(model, [(layer, head)]):
                effects[layer, head] = agreement_accuracy(model, sentences, vocab)
    return effects
