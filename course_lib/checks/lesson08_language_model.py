"""Checks for lesson 08, training a language model: the next-token loss, sampling the next token, and a
training step with its bugs fixed."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from course_lib.apart.stand_ins import SGD, CausalAverage, PositionWise

from .kit import (Fail, Inputs, call, check, check_tensor, close, compare, describe_type, fmt_number,
                  name_by_value_and_gradient, non_contiguous, seeded_module, summary)

LESSON = "08_training_a_language_model"


# --- the next-token loss -----------------------------------------------------------------------------------------

def _next_token_loss(logits, ids, pad_id):
    vocab = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, vocab), ids[:, 1:].reshape(-1), ignore_index=pad_id)


def _padded_ids(rng: Inputs, batch: int, time: int, vocab: int, pad_id: int, lengths=None) -> torch.Tensor:
    """Random real tokens (never pad_id) in rows of random lengths >= 2, padded with pad_id at the end;
    row 0 is full length, so the batch is as long as its longest sentence."""
    tokens = rng.randint(vocab - 1, batch, time)
    tokens = tokens + (tokens >= pad_id).long()  # skip the padding id
    if lengths is None:
        lengths = [time] + [rng.int(2, time) for _ in range(batch - 1)]
    for row, length in enumerate(lengths):
        tokens[row, length:] = pad_id
    return tokens


def _with_token_zero(ids: torch.Tensor) -> torch.Tensor:
    """ids whose first row has the token 0 as a real target (for a pad_id that is not 0)."""
    ids[0, 1] = 0
    return ids


def _masked_mean(losses, mask):
    return (losses * mask).sum() / mask.sum()


def _loss_mistakes(logits, ids, pad_id):
    """(diagnosis, what that mistake returns) for the classic mistakes of the next-token loss."""
    V = logits.shape[-1]
    predictions, targets = logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1)
    per_position = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")  # (B, T-1)
    real_target, real_input = ids[:, 1:] != pad_id, ids[:, :-1] != pad_id
    pad_zero = [] if pad_id == 0 else [  # with pad_id 0 this "mistake" is the right answer
        (f"ignores the token id 0 instead of pad_id ({pad_id} here): the padding id is the argument pad_id",
         lambda: F.cross_entropy(predictions, targets, ignore_index=0))]
    return pad_zero + [
        ("no shift: position t predicts the token after it, so compare logits[:, :-1] with ids[:, 1:] (yours "
         "compares each position with its own token)",
         lambda: F.cross_entropy(logits.reshape(-1, V), ids.reshape(-1), ignore_index=pad_id)),
        ("no shift, and padding counted: compare logits[:, :-1] with ids[:, 1:], and ignore targets equal to pad_id",
         lambda: F.cross_entropy(logits.reshape(-1, V), ids.reshape(-1))),
        ("shifted the wrong way: logits[:, t] predicts ids[:, t + 1], so pair logits[:, :-1] with ids[:, 1:], "
         "not logits[:, 1:] with ids[:, :-1]",
         lambda: F.cross_entropy(logits[:, 1:].reshape(-1, V), ids[:, :-1].reshape(-1), ignore_index=pad_id)),
        ("padding not ignored: targets equal to pad_id are not words; skip them (ignore_index=pad_id)",
         lambda: F.cross_entropy(predictions, targets)),
        ("ignores the positions whose *input* is padding; ignore those whose *target* is padding "
         "(ids[:, 1:] == pad_id): the last real token's prediction of <pad> is counted",
         lambda: _masked_mean(per_position, real_input)),
        ("summed instead of averaged: divide by the number of real targets (the mean)",
         lambda: F.cross_entropy(predictions, targets, ignore_index=pad_id, reduction="sum")),
        ("averaged each sentence, then the sentences: average over all real targets at once, so that every "
         "target counts the same, whatever its sentence's length",
         lambda: (_masked_mean_rows(per_position, real_target)).mean()),
        ("divided by every position, padding included: divide by the number of real targets",
         lambda: (per_position * real_target).sum() / real_target.numel()),
        ("applied softmax before F.cross_entropy, which applies log_softmax itself: pass the raw logits",
         lambda: F.cross_entropy(predictions.softmax(-1), targets, ignore_index=pad_id)),
        ("returns one loss per position: average them into one number",
         lambda: F.cross_entropy(predictions, targets, ignore_index=pad_id, reduction="none")),
    ]


def _masked_mean_rows(per_position, mask):
    return (per_position * mask).sum(1) / mask.sum(1)


@check("next_token_loss", lesson=LESSON, reference=_next_token_loss)
def check_next_token_loss(candidate) -> str:
    """``next_token_loss(logits (batch, time, vocab), ids (batch, time), pad_id) -> ()``: the mean cross-entropy of
    predicting ``ids[:, t + 1]`` from ``logits[:, t]``, skipping positions whose target is padding."""
    rng = Inputs()
    B, T, V = rng.int(3, 5), rng.int(5, 8), rng.int(6, 10)
    V2, T2 = rng.int(5, 9), rng.int(4, 7)
    pad2 = rng.int(1, V2 - 1)
    B3, V3 = rng.int(2, 4), rng.int(4, 8)
    B4, T4, V4 = rng.int(2, 4), rng.int(4, 7), rng.int(5, 9)
    cases = [
        (f"batch {B}, time {T}, vocab {V}, rows of different lengths, pad_id 0",
         rng.randn(B, T, V), _padded_ids(rng, B, T, V, 0, [T, 2] + [rng.int(2, T) for _ in range(B - 2)]), 0),
        (f"pad_id {pad2} (not 0), batch 3, time {T2}, vocab {V2}",
         rng.randn(3, T2, V2), _with_token_zero(_padded_ids(rng, 3, T2, V2, pad2, [T2, 2, T2 - 1])), pad2),
        (f"time 2 (one prediction per sentence), batch {B3}, no padding",
         rng.randn(B3, 2, V3), _padded_ids(rng, B3, 2, V3, 0, [2] * B3), 0),
        (f"batch of 1, time {T4}, vocab {V4}, no padding", rng.randn(1, T4, V4), _padded_ids(rng, 1, T4, V4, 0), 0),
        (f"non-contiguous logits, batch {B4}, time {T4}, pad_id 1",
         non_contiguous(2 * rng.randn(B4, T4, V4)), _padded_ids(rng, B4, T4, V4, 1, [T4, 2] + [T4 - 1] * (B4 - 2)), 1),
    ]
    for label, logits, ids, pad_id in cases:
        logits.requires_grad_()
        got = call(candidate, (logits, ids, pad_id), ("logits", "ids", "pad_id"), label)
        with torch.no_grad():
            expected = _next_token_loss(logits, ids, pad_id)
        if isinstance(got, float) and abs(got - float(expected)) < 1e-4:
            raise Fail(f"returns a Python float ({label}): return the tensor, so that loss.backward() works")
        mistakes = _loss_mistakes(logits, ids, pad_id)
        if isinstance(got, torch.Tensor) and got.dim() == 0 and got.grad_fn is not None:
            grad, = torch.autograd.grad(got, logits, retain_graph=True, allow_unused=True)
            expected_grad, = torch.autograd.grad(_next_token_loss(logits, ids, pad_id), logits)
            if close(got, expected) and grad is not None and close(grad, expected_grad):
                continue
            name_by_value_and_gradient(got, grad, logits, mistakes, label)
        compare(got, expected, label, mistakes, what="the loss")
        if not got.requires_grad:
            raise Fail(f"the loss is cut off from autograd ({label}): avoid .item(), .detach() and torch.tensor(...) "
                       f"inside, so that loss.backward() reaches the logits")
        raise Fail(f"the value is right but its gradient is not ({label}): compute it from `logits` with "
                   f"differentiable torch operations")
    return summary(len(cases), ["pad_id not 0", "time 2", "batch of 1", "non-contiguous logits"],
                   "value and gradient match the shifted cross-entropy without padded targets")


# --- sampling the next token -------------------------------------------------------------------------------------

def _sample_next_token(logits, temperature, generator):
    if temperature == 0:
        return logits.argmax(dim=-1)
    probabilities = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probabilities, 1, generator=generator).squeeze(-1)


_DRAWS = 2000  # samples per distinct row: 6 standard deviations are at most 0.067


def _call_sampler(candidate, logits, temperature, seed, label):
    generator = torch.Generator().manual_seed(seed)
    try:
        return call(candidate, (logits, temperature, generator), ("logits", "temperature", "generator"), label)
    except Fail as failure:
        text = failure.message
        if "probability tensor contains" in text or "invalid multinomial distribution" in text:
            if temperature == 0:
                raise Fail(f"divides by temperature 0 ({label}): at temperature 0 take the likeliest token, "
                           f"logits.argmax(dim=-1), without sampling") from None
            raise Fail(f"sampled from the raw logits ({label}): torch.multinomial needs probabilities, "
                       f"softmax(logits / temperature, dim=-1)") from None
        raise


def _as_token_ids(got, batch: int, vocab: int, label: str) -> torch.Tensor:
    if got is None:
        raise Fail(f"returned None ({label}): did you forget `return`?")
    if not isinstance(got, torch.Tensor):
        raise Fail(f"returned {describe_type(got)} ({label}); expected a tensor of {batch} token ids, shape ({batch},)")
    check_tensor(got, torch.zeros(batch, dtype=torch.long), label, "the tokens")
    if got.shape == (batch, 1):
        raise Fail(f"returns shape ({batch}, 1) ({label}): one token per row is shape ({batch},); "
                   f"drop the last axis with .squeeze(-1)")
    if got.shape == (vocab,) and batch != vocab:
        raise Fail(f"returns {vocab} values, one per vocabulary word ({label}): the argmax or the sampling runs "
                   f"over the batch axis; use dim=-1, the vocabulary axis")
    if got.shape == (batch, vocab):
        raise Fail(f"returns shape ({batch}, {vocab}), a score or probability per word ({label}): return one "
                   f"token id per row, shape ({batch},)")
    if got.shape != (batch,):
        raise Fail(f"the tokens have shape {tuple(got.shape)} ({label}); expected ({batch},), one token id per row")
    if got.is_floating_point() or got.dtype == torch.bool:
        raise Fail(f"the tokens have dtype {got.dtype} ({label}); expected token ids, dtype torch.long")
    if got.numel() and (int(got.min()) < 0 or int(got.max()) >= vocab):
        raise Fail(f"returns ids from {int(got.min())} to {int(got.max())} ({label}); expected ids of the "
                   f"vocabulary, 0 to {vocab - 1}")
    return got.long()


def _frequencies(tokens: torch.Tensor, rows: int, vocab: int) -> torch.Tensor:
    """(rows, vocab): how often each token came out for each distinct row (the batch repeats the rows)."""
    counts = torch.zeros(rows, vocab, dtype=torch.float64)
    which = torch.arange(tokens.shape[0]) % rows
    counts.index_put_((which, tokens), torch.ones(tokens.shape[0], dtype=torch.float64), accumulate=True)
    return counts / counts.sum(-1, keepdim=True)


def _within(frequencies: torch.Tensor, probabilities: torch.Tensor) -> bool:
    """True if each observed frequency lies within 6 standard deviations (plus 0.005) of its probability."""
    p = probabilities.to(torch.float64)
    allowed = 6 * (p * (1 - p) / _DRAWS).sqrt() + 0.005
    return bool(((frequencies - p).abs() <= allowed).all())


def _sampling_mistakes(base: torch.Tensor, temperature: float):
    scaled = base / temperature
    candidates = [
        ("multiplies the logits by the temperature: divide them by it, softmax(logits / temperature)",
         (base * temperature).softmax(-1)),
        ("ignores the temperature: sample from softmax(logits / temperature)", base.softmax(-1)),
        ("always picks the likeliest token: at a temperature > 0, sample from softmax(logits / temperature) "
         "with torch.multinomial", F.one_hot(base.argmax(-1), base.shape[-1]).double()),
        ("softmax over the batch axis (dim=0): the probabilities of each row must sum to 1, dim=-1",
         None if base.shape[0] < 2 else scaled.softmax(0) / scaled.softmax(0).sum(-1, keepdim=True)),
    ]
    if bool((base > 0).all()):
        candidates.append(("samples in proportion to the logits themselves: turn them into probabilities first, "
                           "softmax(logits / temperature)", base / base.sum(-1, keepdim=True)))
    return [(text, p) for text, p in candidates if p is not None]


@check("sample_next_token", lesson=LESSON, reference=_sample_next_token)
def check_sample_next_token(candidate) -> str:
    """``sample_next_token(logits (batch, vocab), temperature, generator) -> (batch,)`` long: the argmax at
    temperature 0, else one draw per row from ``softmax(logits / temperature)`` using ``generator``."""
    rng = Inputs()
    V1, B1 = rng.int(4, 9), rng.int(2, 6)
    V2, V3, V4 = rng.int(4, 7), rng.int(3, 6), rng.int(5, 8)
    spread = lambda rows, V: torch.stack([torch.linspace(-2.5, 2.5, V)[rng.permutation(V)] for _ in range(rows)])
    greedy_cases = [
        (f"temperature 0, batch {B1}, vocab {V1 + B1}", rng.randn(B1, V1 + B1), 0),
        ("temperature 0.0, batch of 1", rng.randn(1, V3), 0.0),
        (f"temperature 0, non-contiguous logits, batch {B1 + 1}", non_contiguous(rng.randn(B1 + 1, V1)), 0),
    ]
    for label, logits, temperature in greedy_cases:
        got = _call_sampler(candidate, logits, temperature, rng.seed, label)
        tokens = _as_token_ids(got, logits.shape[0], logits.shape[1], label)
        expected = logits.argmax(-1)
        if not torch.equal(tokens, expected):
            if torch.equal(tokens, logits.argmin(-1)):
                raise Fail(f"picks the least likely token at temperature 0 ({label}): take the argmax")
            raise Fail(f"at temperature 0 returns {tokens.tolist()} ({label}); expected the likeliest token of each "
                       f"row, {expected.tolist()} (greedy: logits.argmax(dim=-1))")
    sampling_cases = [
        (f"temperature 0.5, {3} rows of {V2} words", spread(3, V2), 0.5),
        (f"temperature 2, {2} rows of {V4} words", spread(2, V4), 2.0),
        (f"temperature 0.7, positive logits, 2 rows of {V3} words", 0.5 + 3 * rng.rand(2, V3), 0.7),
        (f"temperature 1.5, one row of 2 words", torch.tensor([[1.0, -1.0]]), 1.5),
    ]
    for label, base, temperature in sampling_cases:
        rows, V = base.shape
        logits = base.repeat(_DRAWS, 1)  # (rows * draws, V): row i is base[i % rows]
        label = f"{label}, each drawn {_DRAWS} times"
        first = _as_token_ids(_call_sampler(candidate, logits, temperature, rng.seed, label), logits.shape[0], V, label)
        frequencies = _frequencies(first, rows, V)
        expected = (base.double() / temperature).softmax(-1)
        if not _within(frequencies, expected):
            for diagnosis, wrong in _sampling_mistakes(base.double(), temperature):
                if _within(frequencies, wrong):
                    raise Fail(f"{diagnosis} ({label})")
            worst = int((frequencies - expected).abs().argmax())
            row, token = divmod(worst, V)
            raise Fail(f"the samples do not follow softmax(logits / temperature) ({label}): token {token} of row "
                       f"{row} came {fmt_number(float(frequencies[row, token]))} of the time, expected "
                       f"{fmt_number(float(expected[row, token]))}")
        same_seed = _as_token_ids(_call_sampler(candidate, logits, temperature, rng.seed, label),
                                  logits.shape[0], V, label)
        if not torch.equal(first, same_seed):
            raise Fail(f"two generators with the same seed gave different tokens ({label}): draw with the "
                       f"generator you are given, torch.multinomial(..., generator=generator)")
        other_seed = _as_token_ids(_call_sampler(candidate, logits, temperature, rng.seed + 1, label),
                                   logits.shape[0], V, label)
        if torch.equal(first, other_seed):
            raise Fail(f"ignores the generator ({label}): generators with different seeds gave the same tokens; "
                       f"pass it on, torch.multinomial(probabilities, 1, generator=generator)")
    return summary(len(greedy_cases) + len(sampling_cases),
                   ["temperature 0", "a batch of 1", "non-contiguous logits", "temperatures 0.5 to 2",
                    "repeatable with a seeded generator"],
                   "greedy at temperature 0, samples from softmax(logits / temperature)")


# --- a training step ---------------------------------------------------------------------------------------------

def _train_step(model, optimizer, ids, pad_id):
    optimizer.zero_grad()
    logits = model(ids[:, :-1])  # (batch, time - 1, vocab)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), ignore_index=pad_id)
    loss.backward()
    optimizer.step()
    return loss.item()


def _setup(kind: str, vocab: int, seed: int):
    def build():
        if kind == "causal":
            model = CausalAverage(vocab, 12)
            optimizer = SGD(model.parameters(), lr=0.5)
        else:
            model = PositionWise(vocab, 8)
            optimizer = SGD(model.parameters(), lr=0.2, momentum=0.9)
        for p in model.parameters():  # what an earlier backward() left behind
            p.grad = torch.full_like(p, 0.3)
        return model, optimizer
    return seeded_module(lambda: build(), seed)


def _step_variant(model, optimizer, ids, pad_id, mistake=None):
    """One training step, right or with one classic mistake."""
    if mistake != "no zero_grad":
        optimizer.zero_grad()
    inputs, targets = (ids, ids) if mistake in ("no shift", "no shift, padding counted") else (ids[:, :-1], ids[:, 1:])
    logits = model(inputs)
    ignore = -100 if mistake in ("padding counted", "no shift, padding counted") else pad_id
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=ignore)
    loss.backward()
    if mistake != "no step":
        optimizer.step()
    return loss.item()


def _flat(parameters) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in parameters])


# The exercise is to find the bugs of a given step: these messages say what the check sees (the symptom), never
# what to change. The exercise notebook stores the first of them, on the buggy step.
_VALUE_MISTAKES = {
    "no shift, padding counted": "the loss is not the next-token loss: it comes out as if each position could see the "
                                 "token it must predict, and it changes when only the padding changes",
    "no shift": "the loss is not the next-token loss: it comes out as if each position could see the token it must "
                "predict",
    "padding counted": "the loss is not the next-token loss: it changes when only the padding changes",
}
_PARAMETER_MISTAKES = {
    "no zero_grad": "the update is not one step on this batch's gradient alone (the model arrived with old gradients)",
    "no step": "the parameters did not change, so the loss cannot fall",
}


@check("train_step", lesson=LESSON, reference=_train_step)
def check_train_step(candidate) -> str:
    """``train_step(model, optimizer, ids (batch, time), pad_id) -> float``: zero_grad, next-token loss (padded targets
    skipped), backward, step; returns the loss before the update. The check builds fresh random models whose
    parameters arrive with old gradients, and keeps its own references to them."""
    rng = Inputs()
    V1, V2, V3 = rng.int(6, 10), rng.int(5, 9), rng.int(6, 10)
    B1, T1, T2, B3, T3 = rng.int(3, 5), rng.int(5, 10), rng.int(4, 8), rng.int(2, 4), rng.int(4, 8)
    pad2 = rng.int(1, V2 - 1)
    cases = [
        # Labels without random sizes: the exercise notebook stores this check's failure on the buggy step.
        ("a small causal model with SGD, a padded batch, old gradients left over", "causal", 1,
         _padded_ids(rng, B1, T1, V1, 0, [T1, 2] + [rng.int(2, T1) for _ in range(B1 - 2)]), V1, 0),
        ("an embedding + linear model with SGD and momentum, a batch of 1, pad_id not 0", "position-wise", 1,
         _padded_ids(rng, 1, T2, V2, pad2), V2, pad2),
        ("three steps in a row, a small causal model, a padded batch", "causal", 3,
         _padded_ids(rng, B3, T3, V3, 0, [T3] + [2] * (B3 - 1)), V3, 0),
    ]
    for label, kind, n_steps, ids, vocab, pad_id in cases:
        setup = (kind, vocab, rng.seed)
        model, optimizer = _setup(*setup)
        tensors = list(model.parameters())  # the check's own references: what the optimizer holds
        for _ in range(n_steps):
            got = call(candidate, (model, optimizer, ids, pad_id), ("model", "optimizer", "ids", "pad_id"), label)
        if got is None:
            raise Fail(f"returned None ({label}); expected this batch's loss as a Python float")
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            value = float(got.detach())
        elif isinstance(got, (int, float)) and not isinstance(got, bool):
            value = float(got)
        else:
            raise Fail(f"returns {describe_type(got)} ({label}); expected this batch's loss as a Python float")

        def run(mistake=None):
            variant_model, variant_optimizer = _setup(*setup)
            for _ in range(n_steps):
                loss = _step_variant(variant_model, variant_optimizer, ids, pad_id, mistake)
            return variant_model, loss

        ref_model, expected = run()
        if not math.isclose(value, expected, rel_tol=1e-4, abs_tol=1e-5):
            # After several steps a wrong update changes the loss too: those mistakes are named here as well.
            # Two mistakes' losses can still agree to 5 digits (about 1 seed in 250): the one whose parameters
            # also match the learner's comes first.
            params = _flat(tensors)
            matches = []
            for mistake, diagnosis in [*_VALUE_MISTAKES.items(), *_PARAMETER_MISTAKES.items()]:
                variant_model, variant_loss = run(mistake)
                if math.isclose(value, variant_loss, rel_tol=1e-5, abs_tol=1e-6):  # tight: no chance match
                    matches.append((not close(params, _flat(variant_model.parameters())), diagnosis))
            if matches:
                raise Fail(f"{min(matches, key=lambda match: match[0])[1]} ({label})")
            after_model, _ = run()
            with torch.no_grad():
                logits = after_model(ids[:, :-1])
                after = float(F.cross_entropy(logits.reshape(-1, vocab), ids[:, 1:].reshape(-1), ignore_index=pad_id))
            if math.isclose(value, after, rel_tol=1e-4, abs_tol=1e-5):
                raise Fail(f"returns the loss after the update ({label}); expected this batch's loss from before "
                           f"the update")
            raise Fail(f"returned loss {fmt_number(value)} ({label}); expected {fmt_number(expected)}, the next-token "
                       f"loss over this batch's real tokens, from before the update")
        now = list(model.parameters())
        for p in now + tensors:
            check_tensor(p.detach(), ids.float(), label, "a parameter after the step")
        if len(now) != len(tensors) or any(a is not b for a, b in zip(now, tensors)):
            raise Fail(f"replaces the model's parameters with new tensors ({label}): the optimizer still holds the "
                       f"old ones; let optimizer.step() update them in place")
        params = _flat(tensors)
        if not close(params, _flat(ref_model.parameters())):
            for mistake, diagnosis in [*_PARAMETER_MISTAKES.items(), *_VALUE_MISTAKES.items()]:
                if close(params, _flat(run(mistake)[0].parameters())):
                    raise Fail(f"{diagnosis} ({label})")
            raise Fail(f"the parameters after the call differ from one optimizer step on the next-token loss "
                       f"({label})")
        if isinstance(got, torch.Tensor):
            raise Fail(f"returns a tensor ({label}); expected a Python float (a tensor keeps the whole computation "
                       f"graph alive)")
    return summary(len(cases), ["old gradients left over", "pad_id not 0", "a batch of 1", "three steps in a row"],
                   "zero_grad, shifted loss without padding, backward, step; returns the loss")
