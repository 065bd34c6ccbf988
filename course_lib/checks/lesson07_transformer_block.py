"""Checks for lesson 07, the transformer block: LayerNorm by hand, the pre-LN block's forward pass, and a
test that tells a causal model from one that peeks at later tokens."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.models.attention import causal_mask, padding_mask
from course_lib.models.block import TransformerBlock, TransformerStack
from .kit import (Fail, Inputs, call, check, check_tensor, close, compare, describe_type, lazy, non_contiguous,
                  seeded_module, shape_error_named, shape_str, summary)

LESSON = "07_transformer_block"


@contextlib.contextmanager
def one_thread():
    """Run a check's many tiny tensor operations on one thread, then restore the caller's count. At 2
    threads on a busy 2-core machine they ran 10-15 times slower than at one (measured), near the limit."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# --- layer_norm -------------------------------------------------------------------------------------------------

def _layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    variance = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # biased: divide by d, not d - 1
    return (x - mean) / torch.sqrt(variance + eps) * weight + bias


def _normalise(x, dims, eps, unbiased=False, eps_outside=False, power=0.5, centre=True):
    """``(x - mean) / sqrt(var + eps)`` over ``dims``, or the same with one classic mistake."""
    mean = x.mean(dim=dims, keepdim=True)
    variance = x.var(dim=dims, keepdim=True, unbiased=unbiased)
    centred = x - mean if centre else x
    if eps_outside:
        return centred / (variance.sqrt() + eps)
    return centred / (variance + eps) ** power


def _layer_norm_mistakes(x, weight, bias, eps):
    last = (-1,)
    every = tuple(range(x.dim()))
    mistakes = [
        ("unbiased variance (divides by d − 1): LayerNorm divides by d, x.var(dim=-1, unbiased=False)",
         lambda: _normalise(x, last, eps, unbiased=True) * weight + bias),
        ("eps added outside the square root: divide by torch.sqrt(var + eps), not by std + eps",
         lambda: _normalise(x, last, eps, eps_outside=True) * weight + bias),
        ("x.std() is unbiased and its eps lands outside the square root: use torch.sqrt(biased variance + eps)",
         lambda: (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + eps) * weight + bias),
        ("std instead of variance under the square root: sqrt(std + eps); add eps to the variance, then take "
         "one square root", lambda: (x - x.mean(-1, keepdim=True))
         / torch.sqrt(x.var(-1, keepdim=True, unbiased=False).sqrt() + eps) * weight + bias),
        ("divides by the variance, not by its square root (the standard deviation)",
         lambda: _normalise(x, last, eps, power=1.0) * weight + bias),
        ("eps is missing: divide by torch.sqrt(var + eps), which also keeps a constant row finite",
         lambda: _normalise(x, last, 0.0) * weight + bias),
        ("forgets to subtract the mean: (x - mean) / sqrt(var + eps)",
         lambda: _normalise(x, last, eps, centre=False) * weight + bias),
        ("divides by the root mean square without subtracting the mean (that is RMSNorm): LayerNorm centres "
         "first, (x - mean) / sqrt(var + eps)",
         lambda: x / torch.sqrt((x ** 2).mean(-1, keepdim=True) + eps) * weight + bias),
        ("normalises over all elements at once: each position's features, the last axis (dim=-1), get their "
         "own mean and variance", lambda: _normalise(x, every, eps) * weight + bias),
        ("forgets the gain: multiply by weight, then add bias", lambda: _layer_norm(x, 1.0, bias, eps)),
        ("forgets the bias: add bias after multiplying by weight", lambda: _layer_norm(x, weight, 0.0, eps)),
        ("weight and bias swapped: normalised * weight + bias", lambda: _layer_norm(x, bias, weight, eps)),
        ("applies weight and bias before normalising: normalise first, then * weight + bias",
         lambda: _layer_norm(x * weight + bias, 1.0, 0.0, eps)),
        ("does not normalise at all: subtract the mean and divide by sqrt(var + eps) before * weight + bias",
         lambda: x * weight + bias),
    ]
    for axis in range(x.dim() - 1):
        mistakes.append((f"normalises over the wrong axis (dim={axis}): the features are the last axis, "
                         f"dim=-1", lambda axis=axis: _normalise(x, (axis,), eps) * weight + bias))
    return mistakes


LOST_AXIS = ("the mean (or the variance) lost its axis: x.mean(dim=-1) of x (..., d) has shape (...,), which lines "
             "up with the features, not with the positions; keep it as (..., 1) with keepdim=True")


def _keepdim_missing(candidate, rng: Inputs) -> bool:
    """Whether ``candidate`` returns, on a square (d, d) input (where the mistake raises nothing), what LayerNorm
    gives when its mean, its variance or both lost their axis."""
    x, weight, bias = rng.randn(5, 5) + 2.0, rng.rand(5) + 0.5, rng.randn(5)
    got = call(candidate, (x, weight, bias), ("x", "weight", "bias"), "a square input, 5 positions of d 5")
    if not isinstance(got, torch.Tensor) or got.shape != x.shape:
        return False
    kept_mean, lost_mean = x.mean(-1, keepdim=True), x.mean(-1)
    kept_var, lost_var = x.var(-1, unbiased=False, keepdim=True), x.var(-1, unbiased=False)
    return any(close(got.detach(), (x - mean) / torch.sqrt(var + 1e-5) * weight + bias)
               for mean, var in ((lost_mean, kept_var), (kept_mean, lost_var), (lost_mean, lost_var)))


@check("layer_norm", lesson=LESSON, reference=_layer_norm,
       builtins=("torch.nn.functional.layer_norm", "torch.layer_norm", "torch.native_layer_norm"),
       pieces="mean and biased variance over dim=-1 with keepdim=True, (x - mean) / torch.sqrt(var + eps), "
              "then * weight + bias")
def check_layer_norm(candidate) -> str:
    """``layer_norm(x (..., d), weight (d,), bias (d,), eps=1e-5) -> (..., d)``, equal to ``F.layer_norm``."""
    with one_thread():  # tiny tensors: a second thread only adds waiting
        return _layer_norm_body(candidate)


def _layer_norm_body(candidate) -> str:
    rng = Inputs()

    def parameters(d):
        return 1.0 + 0.5 * rng.randn(d), 0.5 * rng.randn(d)

    def shifted(*shape, scale=1.0):
        """Values with their own offset per position, so that forgetting the mean shows."""
        return rng.randn(*shape) * scale + 3.0 * rng.randn(*shape[:-1], 1)

    B, T, d = rng.int(2, 3), rng.int(3, 6), rng.int(3, 8)
    N2, d2, d3, T4, d4, T5, d5 = rng.int(3, 6), rng.int(3, 6), rng.int(3, 8), rng.int(2, 4), rng.int(3, 6), \
        rng.int(2, 5), rng.int(3, 6)
    d6 = rng.int(3, 6)
    cases = [  # eps = 0.1 first: with eps = 1e-5 the mistakes about eps look like others
        (f"rows with little spread and eps = 0.1, {N2} rows of d {d2}", shifted(N2, d2, scale=0.3),
         *parameters(d2), 0.1),
        (f"batch {B}, T {T}, d {d}", shifted(B, T, d), *parameters(d), None),
        (f"one vector of d {d3}", shifted(d3), *parameters(d3), None),
        (f"T = 1, batch of 1, d {d6}", shifted(1, 1, d6), *parameters(d6), None),
        (f"(batch, heads, time, d) input, T {T4}, d {d4}", shifted(2, 2, T4, d4), *parameters(d4), 1e-3),
        (f"non-contiguous x, T {T5}, d {d5}", non_contiguous(shifted(2, T5, d5)), *parameters(d5), None),
    ]
    for label, x, weight, bias, eps in cases:
        args = (x, weight, bias) if eps is None else (x, weight, bias, eps)
        try:
            got = call(candidate, args, ("x", "weight", "bias", "eps"), label)
        except Fail as failure:
            raise shape_error_named(failure, label, [(LOST_AXIS, lambda: _keepdim_missing(candidate, rng))]) from None
        eps = 1e-5 if eps is None else eps
        expected = F.layer_norm(x, (x.shape[-1],), weight, bias, eps)
        mistakes = _layer_norm_mistakes(x, weight, bias, eps)
        if x.dim() >= 2 and x.shape[-2] == x.shape[-1]:  # square: a mean that lost its axis raises nothing here
            mean, var = x.mean(-1), x.var(-1, unbiased=False)
            mistakes.append((LOST_AXIS, lambda: (x - mean) / torch.sqrt(var + eps) * weight + bias))
        compare(got, expected, label, mistakes, atol=1e-4)
    return summary(len(cases), ["eps = 0.1", "one vector", "T = 1", "4-D input", "non-contiguous x"],
                   "matches F.layer_norm")


# --- block_without_residuals -----------------------------------------------------------------------------------

def _block_without_residuals(block, x, mask=None):
    attended, _ = block.attn(block.ln1(x), mask, need_weights=False)
    return block.mlp(block.ln2(attended))


def _block_variant(block, x, mask, order="pre", residual_attention=False, residual_mlp=False, residual_from="x",
                   first_norm="ln1", second_norm="ln2", mlp_input="updated", use_mask=True):
    """What ``block`` computes without its residuals (the defaults), or the same with one classic mistake."""
    norms = {"ln1": block.ln1, "ln2": block.ln2, "none": nn.Identity()}
    ln_a, ln_b = norms[first_norm], norms[second_norm]
    mask = mask if use_mask else None
    if order == "post":  # the original transformer's order: the sublayer first, then the LayerNorm
        attended = block.attn(x, mask, need_weights=False)[0]
        h = ln_a(x + attended if residual_attention else attended)
        return ln_b(h + block.mlp(h) if residual_mlp else block.mlp(h))
    h = ln_a(x)
    attended = block.attn(h, mask, need_weights=False)[0]
    base = h if residual_from == "normalised" else x
    updated = base + attended if residual_attention else attended
    mlp_in = updated if mlp_input == "updated" else x
    g = ln_b(mlp_in)
    base = g if residual_from == "normalised" else updated
    return base + block.mlp(g) if residual_mlp else block.mlp(g)


BLOCK_MISTAKES = (
    ("both residuals are still there: this is the block as built; the stream must be replaced by each sublayer's "
     "output, not added to", {"residual_attention": True, "residual_mlp": True}),
    ("the attention's residual is still there: after the attention the stream is the attention's output alone",
     {"residual_attention": True}),
    ("the MLP's residual is still there: return the MLP's output alone, not the stream plus it",
     {"residual_mlp": True}),
    ("the LayerNorms went too: take out only the additions; the attention still reads ln1 of its input and the "
     "MLP ln2 of its input", {"first_norm": "none", "second_norm": "none"}),
    ("the MLP reads x from before the attention: without the residual the stream after the attention is the "
     "attention's output, and the MLP reads ln2 of that", {"mlp_input": "original"}),
    ("post-LN order: in this pre-LN block each sublayer reads a normalised copy (ln1 before the attention, ln2 "
     "before the MLP); normalising the sublayer's output instead is the original transformer's order",
     {"order": "post"}),
    ("a residual adds to the normalised copy (h + sublayer(h)): there is no addition at all without residuals",
     {"residual_attention": True, "residual_mlp": True, "residual_from": "normalised"}),
    ("ln1 is used twice: the MLP's input goes through block.ln2", {"second_norm": "ln1"}),
    ("ln2 is used twice: the attention's input goes through block.ln1", {"first_norm": "ln2"}),
    ("ln1 and ln2 swapped: ln1 before the attention, ln2 before the MLP", {"first_norm": "ln2", "second_norm": "ln1"}),
    ("the mask is ignored: pass it on to block.attn", {"use_mask": False}),
)


def _random_block(rng: Inputs, offset: int) -> tuple[TransformerBlock, str]:
    n_heads = rng.int(1, 3)
    # at least 3 features: LayerNorm maps every 2-feature vector to one of two points, so with d_model 2 the MLP
    # read from x and from x + attention can agree, and two mistakes look the same (seed 99790)
    d_model = n_heads * rng.int(3 if n_heads == 1 else 2, 4)
    d_ff = rng.int(2, 4) * d_model

    def build():
        block = TransformerBlock(d_model, n_heads, d_ff=d_ff)
        with torch.no_grad():  # gains and biases far from 1 and 0, different in ln1 and ln2: mixing them up shows
            for norm in (block.ln1, block.ln2):
                norm.weight.copy_(1.0 + 0.5 * torch.randn(d_model))
                norm.bias.copy_(0.5 * torch.randn(d_model))
        return block.eval()

    block = seeded_module(build, seed=rng.seed + offset)
    return block, f"d_model {d_model}, {n_heads} head{'s' if n_heads > 1 else ''}, d_ff {d_ff}"


@check("block_without_residuals", lesson=LESSON, reference=_block_without_residuals,
       builtins=("course_lib.models.block.TransformerBlock.forward",),
       pieces="block.ln1, block.attn, block.ln2 and block.mlp",
       time_limit=10.0)  # it builds and runs a dozen random blocks: a loaded laptop took over 5 s
def check_block_without_residuals(candidate) -> str:
    """``block_without_residuals(block, x (batch, time, d_model), mask=None) -> (batch, time, d_model)``: the pre-LN
    block with both additions taken out, written with the block's own ln1, attn, ln2 and mlp; compared with the
    block built with ``residual=False``."""
    with one_thread():  # tiny tensors: a second thread only adds waiting
        return _block_without_residuals_body(candidate)


def _block_without_residuals_body(candidate) -> str:
    rng = Inputs()
    cases = []
    for offset in (1, 2):
        block, built = _random_block(rng, offset)
        D = block.attn.d_model
        T, T3, T4, T5 = rng.int(3, 6), rng.int(3, 6), rng.int(3, 6), rng.int(2, 5)
        lengths = [T4, rng.int(1, T4 - 1)]
        cases += [
            (block, f"{built}, batch 2, T {T}", rng.randn(2, T, D), None),
            (block, f"{built}, a causal mask, T {T3}", rng.randn(2, T3, D), causal_mask(T3)),
            (block, f"{built}, a padding mask for lengths {lengths}", rng.randn(2, T4, D), padding_mask(lengths, T4)),
        ]
        if offset == 1:
            cases += [(block, f"{built}, T = 1, batch of 1, causal mask", rng.randn(1, 1, D), causal_mask(1)),
                      (block, f"{built}, non-contiguous x, T {T5}", non_contiguous(rng.randn(2, T5, D)), None)]
    for block, label, x, mask in cases:
        args = (block, x) if mask is None else (block, x, mask)
        with torch.no_grad():
            try:
                got = call(candidate, args, ("block", "x", "mask"), label)
            except Fail as failure:
                if "tuple" in failure.message and "TypeError" in failure.message:
                    raise Fail(f"uses what block.attn returns as one tensor ({label}): it returns the pair "
                               f"(output, weights); take the output out of the pair") from None
                raise
            expected = _block_variant(block, x, mask)
            mistakes = [(diagnosis, lazy(_block_variant, block, x, mask, **kw)) for diagnosis, kw in BLOCK_MISTAKES
                        if mask is not None or "use_mask" not in kw]
            if isinstance(got, tuple) and len(got) == 2 and isinstance(got[0], torch.Tensor) and got[1] is None:
                raise Fail(f"returns a pair (output, None) ({label}): return the output tensor alone")
            compare(got, expected, label, mistakes)
    return summary(len(cases), ["2 random blocks", "causal mask", "padding mask", "T = 1", "batch of 1",
                                "non-contiguous x"], "matches the block without its residuals")


# --- is_causal --------------------------------------------------------------------------------------------------

class _Lookup(nn.Module):
    """Each position's logits from its own token only (a table): causal."""

    def __init__(self, vocab: int):
        super().__init__()
        self.table = nn.Embedding(vocab, vocab)

    def forward(self, ids):
        return self.table(ids)


class _RunningMean(nn.Module):
    """Position t: the mean of the embeddings of tokens 0..t: causal."""

    def __init__(self, vocab: int):
        super().__init__()
        self.table = nn.Embedding(vocab, vocab)

    def forward(self, ids):
        counts = torch.arange(1, ids.shape[1] + 1, dtype=torch.float32)[:, None]  # (T, 1)
        return self.table(ids).cumsum(1) / counts


class _TotalMinusLater(nn.Module):
    """Position t: the sum of tokens 0..t, computed as the total minus the later tokens. Equal to a running
    sum up to rounding, so causal, but the rounding changes with the later tokens: no two runs agree bit for bit."""

    def __init__(self, vocab: int):
        super().__init__()
        self.table = nn.Embedding(vocab, vocab)

    def forward(self, ids):
        e = self.table(ids)  # (B, T, V)
        later = e.flip(1).cumsum(1).flip(1) - e  # sum over s > t
        return e.sum(1, keepdim=True) - later


class _ReversedSum(nn.Module):
    """Position t: the sum of tokens t..T-1: sees every later token."""

    def __init__(self, vocab: int):
        super().__init__()
        self.table = nn.Embedding(vocab, vocab)

    def forward(self, ids):
        return self.table(ids).flip(1).cumsum(1).flip(1)


class _OneLeak(nn.Module):
    """Each position sees its own token; position ``to`` also sees the token at position ``source`` (> to)."""

    def __init__(self, vocab: int, to: int, source: int):
        super().__init__()
        self.table = nn.Embedding(vocab, vocab)
        self.to, self.source = to, source

    def forward(self, ids):
        out = self.table(ids)
        to, source = self.to % ids.shape[1], self.source % ids.shape[1]
        leak = torch.zeros_like(out)
        leak[:, to] = self.table(ids[:, source])
        return out + leak


class _Decoder(nn.Module):
    """Embeddings, positions, two blocks and an output layer, with ``mask(T)``: causal_mask for a decoder
    (a TransformerLM), anything else leaks. PyTorch's default initialisation, not GPT-2's small one, so that
    a leak moves the logits by far more than rounding."""

    def __init__(self, vocab: int, mask):
        super().__init__()
        self.embed = nn.Embedding(vocab, 16)
        self.positions = nn.Embedding(16, 16)
        self.stack = TransformerStack(16, 2, 2)
        self.head = nn.Linear(16, vocab)
        self.mask = mask

    def forward(self, ids):
        x = self.embed(ids) + self.positions.weight[: ids.shape[1]]
        return self.head(self.stack(x, self.mask(ids.shape[1])))


class _Model(nn.Module):
    """What the answer is handed: a model to call with ids, the same class for all nine and nothing to read
    but its outputs (no submodules, no class or function names to go by): the answer must test behaviour."""

    def __init__(self, model: nn.Module):
        super().__init__()
        call_it = model.__call__
        object.__setattr__(self, "forward", lambda ids: call_it(ids))


def _no_mask(T):
    return None


def _next_token_mask(T):
    return torch.ones(T, T, dtype=torch.bool).tril(1)


def _causal_models(V: int, seed: int):
    """(name, model, truth): four causal models and five that peek at later tokens."""
    specs = [
        ("a TransformerLM (causal mask)", lambda: _Decoder(V, causal_mask), True),
        ("a running mean of the tokens", lambda: _RunningMean(V), True),
        ("a lookup of each position's own token", lambda: _Lookup(V), True),
        ("a running sum computed as the total minus the later tokens", lambda: _TotalMinusLater(V), True),
        ("the same TransformerLM without a mask (an encoder)", lambda: _Decoder(V, _no_mask), False),
        ("a mask that also lets each position see the next token", lambda: _Decoder(V, _next_token_mask), False),
        ("a sum of each token and all later ones", lambda: _ReversedSum(V), False),
        ("a model whose position 0 also sees token 2", lambda: _OneLeak(V, 0, 2), False),
        ("a model whose second-to-last position also sees the last token", lambda: _OneLeak(V, -2, -1), False),
    ]
    return [(name, seeded_module(factory, seed=seed + i).eval(), truth) for i, (name, factory, truth) in enumerate(specs)]


def _is_causal(model, ids, vocab_size):
    with torch.no_grad():
        reference = model(ids)
        for t in range(ids.shape[1] - 1):
            changed = ids.clone()
            changed[:, t + 1:] = (changed[:, t + 1:] + 1) % vocab_size  # every later token, none before
            if not torch.allclose(model(changed)[:, :t + 1], reference[:, :t + 1], atol=1e-5):
                return False
    return True


def _causal_variant(model, ids, vocab_size, first_changed=1, compare_to=0, cuts="all", exact=False):
    """The answer of a test with one classic mistake: change tokens from ``t + first_changed`` on, compare
    positions up to ``t + compare_to`` (``None``: every position), at cuts ``"all"``, ``"last"`` (only the
    last token changes) or ``"first"`` (only t = 0)."""
    T = ids.shape[1]
    reference = model(ids)
    ts = {"all": range(T - 1), "last": [T - 2], "first": [0]}[cuts]
    for t in ts:
        changed = ids.clone()
        changed[:, t + first_changed:] = (changed[:, t + first_changed:] + 1) % vocab_size
        upto = T if compare_to is None else t + 1 + compare_to
        a, b = model(changed)[:, :upto], reference[:, :upto]
        same = torch.equal(a, b) if exact else torch.allclose(a, b, atol=1e-5)
        if not same:
            return False
    return True


def _as_bool(answer, label: str) -> bool:
    if isinstance(answer, torch.Tensor):
        check_tensor(answer, torch.zeros(()), label, "the answer")
        if answer.dim() == 0 and answer.dtype == torch.bool:
            return bool(answer)
        if answer.dim() == 0:
            raise Fail(f"returns a {answer.dtype} tensor ({label}); expected True or False (a bool)")
        raise Fail(f"returns a tensor of shape {shape_str(answer.shape)} ({label}): reduce the comparisons to one "
                   f"True/False, e.g. with torch.allclose(...)")
    if isinstance(answer, (bool, np.bool_)):
        return bool(answer)
    raise Fail(f"returns {describe_type(answer)} ({label}); expected True or False")


class _Recorder(nn.Module):
    """Passes ``ids`` on to ``model`` and remembers every ``ids`` it was called with."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.seen: list[torch.Tensor] = []

    def forward(self, ids):
        if isinstance(ids, torch.Tensor):
            self.seen.append(ids.detach().clone())
        return self.model(ids)


def _changed_first_token(seen: list[torch.Tensor], ids: torch.Tensor) -> bool:
    """Whether any call changed a sequence's first token (no test of causality needs to)."""
    for called in seen:
        if called.shape == ids.shape and bool((called[:, 0] != ids[:, 0]).any()):
            return True
        if called.dim() == 2 and called.shape[1] == ids.shape[1] and called.shape != ids.shape \
                and not set(called[:, 0].tolist()) <= set(ids[:, 0].tolist()):
            return True
    return False


CHANGES_TOKEN_T = ("changes the token at position t too: a causal model's output at t may depend on token t "
                   "itself; change only the tokens after t, and compare positions 0..t")
COMPARES_LATER = ("answers False even for causal models: compare only positions 0..t, which come before the "
                  "change; the positions after it (and position t, if its own token changes) may differ")
CAUSAL_MISTAKES = (
    ("changes only the last token: a model can leak any later token into an earlier position; try every cut "
     "t, changing the tokens after t", {"cuts": "last"}),
    ("only tries t = 0: a leak can reach any position; try every cut t and compare positions 0..t",
     {"cuts": "first"}),
    ("compares floats exactly (== or torch.equal): the same sum computed in another order differs in its last "
     "digits; use torch.allclose", {"exact": True}),
)


@check("is_causal", lesson=LESSON, reference=_is_causal)
def check_is_causal(candidate) -> str:
    """``is_causal(model, ids (batch, time), vocab_size) -> bool``: does the output at every position stay the
    same when only later tokens change?

    Nine models, four causal and five that peek at later tokens in different ways, come in a new order on
    every call, so a fixed list of answers cannot pass.
    """
    with one_thread():  # tiny tensors: a second thread only adds waiting
        return _is_causal_body(candidate)


def _is_causal_body(candidate) -> str:
    rng = Inputs()
    V, T = rng.int(8, 16), rng.int(5, 8)
    ids = rng.randint(V, 2, T)
    models = _causal_models(V, rng.seed)
    order = rng.permutation(len(models)).tolist()
    answers, truths, seen = {}, {}, []
    with torch.no_grad():
        for name, model, truth in (models[i] for i in order):
            label = f"{name}, T {T}"
            recorder = _Recorder(_Model(model))
            answers[name] = _as_bool(call(candidate, (recorder, ids, V), ("model", "ids", "vocab_size"), label),
                                     label)
            truths[name] = truth
            seen += recorder.seen
        if answers == truths:
            return f"right on {len(models)} models: 4 causal, 5 that peek at later tokens in different ways"
        if not any(answers.values()):
            raise Fail(CHANGES_TOKEN_T if _changed_first_token(seen, ids) else COMPARES_LATER)
        for diagnosis, kw in CAUSAL_MISTAKES:
            wrong = {name: _causal_variant(model, ids, V, **kw) for name, model, _ in models}
            if answers == wrong and wrong != truths:
                raise Fail(diagnosis)
    if answers == {name: not truth for name, truth in truths.items()}:
        raise Fail("answers the opposite: True means no position's output changes when later tokens change")
    name, truth = next((name, truth) for name, truth in truths.items() if answers[name] != truth)
    raise Fail(f"answers {not truth} for {name}, T {T}; "
               + ("its output at each position depends only on that token and earlier ones, so expected True"
                  if truth else "a later token changes an earlier position's output there, so expected False"))
