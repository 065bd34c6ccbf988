"""Checks for lesson 13, your own GPT: the model itself, choosing the next token among the k likeliest, one step
of attention with a key-value cache, and cutting a text into training windows."""

from __future__ import annotations

import math
import re

import torch
from torch import nn

from course_lib.apart.session import is_instance
from course_lib.experiments.generation import attend_with_cache, top_k_sample
from course_lib.experiments.text_model import exercise_weights, windows
from course_lib.models.attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention
from course_lib.models.block import MLP
from course_lib.models.language_model import LMConfig, TransformerLM

from .kit import (Fail, Inputs, call, check, check_tensor, close, compare, describe_type, fmt_number, lazy,
                  non_contiguous, seeded_module, shape_str, summary)
from .lesson07_transformer_block import one_thread
from .result import NotImplementedYet

LESSON = "13_your_own_gpt"


# --- gpt ---------------------------------------------------------------------------------------------------------

class _Block(nn.Module):
    """The exercise's pre-LN block, with the names the check loads weights into."""

    def __init__(self, config: LMConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model)
        self.attn = MultiHeadAttention(config.d_model, config.n_heads)
        self.ln2 = nn.LayerNorm(config.d_model)
        self.mlp = MLP(config.d_model, 4 * config.d_model)

    def forward(self, x, mask):
        x = x + self.attn(self.ln1(x), mask)[0]  # (B, T, D)
        return x + self.mlp(self.ln2(x))


class _GPT(nn.Module):
    """A right answer: ``GPT(config)``, ``forward(ids (batch, time)) -> logits (batch, time, vocab)``."""

    def __init__(self, config: LMConfig):
        super().__init__()
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.positions = nn.Embedding(config.max_len, config.d_model)
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size)

    def forward(self, ids):
        T = ids.shape[1]
        x = self.embed(ids) + self.positions.weight[:T]  # (B, T, D)
        mask = causal_mask(T, device=ids.device)
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.ln_f(x))  # (B, T, vocab)


def _random_reference(config: LMConfig, seed: int) -> TransformerLM:
    """The reference GPT with weights far from GPT-2's small initialisation: embeddings and positions of size 1,
    LayerNorm gains and biases far from 1 and 0, each ln its own, sizeable biases. Then every classic mistake
    moves the logits far more than rounding does."""

    def build():
        model = TransformerLM(config)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in ("embed.weight", "positions.table.weight"):
                    p.copy_(torch.randn_like(p))
                elif p.dim() == 2:
                    p.copy_(torch.randn_like(p) / math.sqrt(p.shape[1]))
                elif ".ln" in name and name.endswith("weight") or name.startswith("stack.ln_f.weight"):
                    p.copy_(1.0 + 0.4 * torch.randn_like(p))
                else:
                    p.copy_(0.4 * torch.randn_like(p))
        return model.eval()

    return seeded_module(build, seed=seed)


def _gpt_variant(ref: TransformerLM, ids, mask="causal", order="pre", positions="start", final_norm=True,
                 head="own", residual=True, mlp_reads="ln2", probabilities=False):
    """What ``ref`` computes with the defaults, or the same with one classic mistake."""
    T = ids.shape[1]
    table = ref.positions.table.weight
    x = ref.embed(ids) if head != "shared" else ref.head.weight[ids]  # shared: one table, the head's weights
    if positions == "start":
        x = x + table[:T]
    elif positions == "by id":
        x = x + table[ids]
    attention_mask = causal_mask(T) if mask == "causal" else None
    for block in ref.blocks:
        if order == "post":  # the original transformer's order: the sublayer first, then the LayerNorm
            x = block.ln1(x + block.attn(x, attention_mask, need_weights=False)[0])
            x = block.ln2(x + block.mlp(x))
            continue
        h = block.ln1(x)
        attended = block.attn(h, attention_mask, need_weights=False)[0]
        x = x + attended if residual else attended
        g = h if mlp_reads == "ln1 before" else block.ln1(x) if mlp_reads == "ln1 again" else block.ln2(x)
        x = x + block.mlp(g) if residual else block.mlp(g)
    if positions == "end":
        x = x + table[:T]
    if final_norm:
        x = ref.stack.ln_f(x)
    if head in ("own", "shared"):
        logits = ref.head(x)
    else:
        logits = x @ ref.embed.weight.T + (ref.head.bias if head == "tied, own bias" else 0.0)
    return logits.softmax(-1) if probabilities else logits


BY_TOKEN_ID = ("the positions are looked up with the token ids: position t's vector is row t of the positions table, "
               "whatever the token there")
GPT_MISTAKES = (
    ("no causal mask: every position also sees the later tokens, the very token it must predict among them; a "
     "position may attend only to itself and the positions before it", {"mask": None}),
    ("post-LN order: the LayerNorms come after each residual addition; in this pre-LN GPT each sublayer reads a "
     "normalised copy (ln1 before the attention, ln2 before the MLP), and the stream itself is normalised only by "
     "ln_f at the end", {"order": "post"}),
    ("the positions are added after the blocks: each position's vector joins its token's embedding before the "
     "first block, so that attention can tell the order of the tokens", {"positions": "end"}),
    ("no positions: each position's vector (row t of the positions table) must be added to the token embeddings "
     "before the first block", {"positions": "none"}),
    (BY_TOKEN_ID, {"positions": "by id"}),
    ("no final LayerNorm: the output layer reads ln_f of the last block's output", {"final_norm": False}),
    ("the output layer is tied to the token embedding: this GPT has an output layer of its own, head, whose "
     "weights and bias make the logits", {"head": "tied"}),
    ("the output layer is tied to the token embedding: this GPT has an output layer of its own, head, whose "
     "weights and bias make the logits", {"head": "tied, own bias"}),
    ("the output layer shares its weights with the token embedding: this GPT's head and embed are two tables, "
     "each with weights of its own", {"head": "shared"}),
    ("a block without residuals: each block adds the attention's output, then the MLP's, to the stream it "
     "reads, instead of replacing the stream", {"residual": False}),
    ("ln2 is unused, the MLP reads ln1's output: in each block the MLP reads ln2 of the stream after the "
     "attention's addition", {"mlp_reads": "ln1 before"}),
    ("ln2 is unused, the MLP reads ln1's output: in each block the MLP reads ln2 of the stream after the "
     "attention's addition", {"mlp_reads": "ln1 again"}),
    ("returns probabilities (a softmax over the vocabulary): return the logits themselves; the loss and the "
     "sampling take their own softmax", {"probabilities": True}),
)


def _grouped(names: list[str], others: list[str], every: list[str] | None = None) -> list[str]:
    """Names as a message lists them: each by its shortest leading part (``blocks``, ``blocks.0.attn``) that no name
    of ``others`` shares and under which every name of ``every`` (default: ``names``) is among ``names``."""

    def under(name: str, part: str) -> bool:
        return name == part or name.startswith(part + ".")

    shown = []
    for name in names:
        pieces = name.split(".")
        for end in range(1, len(pieces) + 1):
            part = ".".join(pieces[:end])
            if not any(under(other, part) for other in others) and all(
                    other in names for other in (every or names) if under(other, part)):
                break
        if part not in shown:
            shown.append(part)
    return shown


def _listed(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (and {len(names) - limit} more)" if len(names) > limit else "")


def _load_failure(error: Exception, built: str, expected: list[str]) -> Fail:
    """A short, readable ``Fail`` for PyTorch's multi-line error of a failed ``load_state_dict``."""
    text = " ".join(str(error).split())

    def quoted(after: str) -> list[str]:
        found = re.search(re.escape(after) + r"(.*?)(?:Unexpected key\(s\)|Missing key\(s\)|size mismatch|$)", text)
        return re.findall(r'"([^"]+)"', found[1]) if found else []

    not_in_model = quoted("Unexpected key(s) in state_dict:")  # the exercise's names the model lacks
    extra = quoted("Missing key(s) in state_dict:")  # the model's names the exercise does not give
    sizes = re.findall(r"size mismatch for ([\w.]+): copying a param with shape torch\.Size\(\[([\d, ]*)\]\) from "
                       r"checkpoint, the shape in current model is torch\.Size\(\[([\d, ]*)\]\)", text)
    if not_in_model and all(name.endswith(".bias") for name in not_in_model) and not extra:
        return Fail(f"could not load the weights ({built}): your model has no {_listed(not_in_model)}: those layers "
                    f"keep their bias, as nn.Linear and nn.LayerNorm have by default")
    if not_in_model:
        instead = f"; it has {_listed(_grouped(extra, not_in_model))} instead" if extra else ""
        return Fail(f"could not load the weights ({built}): your model has no "
                    f"{_listed(_grouped(not_in_model, extra, expected))}{instead}; give the layers the names the "
                    f"exercise states (embed, positions, blocks, ln_f, head; in each Block ln1, attn, ln2, mlp)")
    if sizes:
        name, theirs, yours = sizes[0]
        return Fail(f"could not load the weights ({built}): {name} has shape ({yours}) in your model; the exercise's "
                    f"has shape ({theirs}): check that layer's sizes")
    detail = text if len(text) <= 200 else text[:199] + "…"
    return Fail(f"could not load the weights ({built}): {detail}")


def _load(model, state: dict, built: str) -> None:
    """Load ``state`` into the learner's model: every name of the exercise must be there with its shape; names
    of the model's own that the exercise does not give (a registered mask) keep their values."""
    try:
        model.load_state_dict(state)
        return
    except Exception as error:
        failure = _load_failure(error, built, list(state))
        text = " ".join(str(error).split())
        if "Unexpected key(s)" in text or "size mismatch" in text or "Missing key(s)" not in text:
            raise failure from None
    try:  # only names of the model's own are left over: load the exercise's, keep the rest
        model.load_state_dict(state, strict=False)
    except Exception as error:
        raise _load_failure(error, built, list(state)) from None


def _gpt_configs(rng: Inputs) -> list[LMConfig]:
    configs = []
    for n_layers, n_heads in ((1, rng.int(1, 2)), (2, rng.int(2, 3)), (rng.int(2, 3), rng.int(3, 4))):
        d_model = n_heads * rng.int(2, 4) if n_heads > 1 else rng.int(4, 6)
        max_len = rng.int(4, 7)
        vocab = d_model + rng.int(2, 8)  # more tokens than positions and than features
        configs.append(LMConfig(vocab, d_model, n_heads, n_layers, max_len))
    return configs


def _index_failure(model, ref: TransformerLM, small_ids, label: str) -> Fail:
    """What to say when the model raised "index out of range" in an embedding: whether, on token ids that all lie
    below max_len (where that raises nothing), it looks the positions up with the token ids."""
    try:
        got = call(model, (small_ids,), ("ids",), f"{label}, every token id below max_len")
    except Fail:
        got = None
    if isinstance(got, torch.Tensor) and close(got, _gpt_variant(ref, small_ids, positions="by id"), atol=1e-4):
        return Fail(f"{BY_TOKEN_ID} ({label}: an index out of range in an embedding)")
    return Fail(f"an index is out of range in an embedding ({label}): are the positions looked up with the token "
                f"ids? Position t's vector is row t of the positions table, whatever the token")


def _call_model(candidate, args, names, label: str):
    """``call``, where an unfinished ``Block`` (the same exercise as GPT) reads "not implemented yet", not "calls
    `Block.__init__`, which is not implemented yet: finish that exercise first"."""
    try:
        return call(candidate, args, names, label)
    except Fail as failure:
        if re.match(r"calls `Block\.\w+`, which is not implemented yet", failure.message):
            raise NotImplementedYet from None
        raise


def _mask_not_cut(failure: Fail, T: int, max_len: int) -> bool:
    return T < max_len and "mask" in failure.message and f"({max_len}, {max_len})" in failure.message


@check("gpt", lesson=LESSON, reference=_GPT,
       builtins=("course_lib.models.language_model.TransformerLM.forward",
                 "course_lib.models.block.TransformerStack.forward",
                 "course_lib.models.block.TransformerBlock.forward"),
       pieces="nn.Embedding for tokens and positions, Blocks of LayerNorm, course_lib's MultiHeadAttention and MLP "
              "with residuals, a final LayerNorm and an nn.Linear head",
       time_limit=10.0)  # it builds three models and runs a dozen inputs: a loaded laptop can take seconds
def check_gpt(candidate) -> str:
    """``check_gpt(GPT)``: build the learner's ``GPT(config)`` for random small configs, load a seeded reference
    TransformerLM's weights under the exercise's names (embed, positions, blocks, ln_f, head; ln1, attn, ln2, mlp
    in each Block) and compare ``forward(ids (batch, time)) -> logits (batch, time, vocab)``."""
    if is_instance(candidate, nn.Module):
        raise Fail("got an instance: pass the class itself, check_gpt(GPT)", about_inputs=False)
    with one_thread():  # tiny tensors: a second thread only adds waiting
        return _gpt_body(candidate)


def _gpt_body(candidate) -> str:
    rng = Inputs()
    n_cases = 0
    for number, config in enumerate(_gpt_configs(rng)):
        V, D, H, L, M = config.vocab_size, config.d_model, config.n_heads, config.n_layers, config.max_len
        built = (f"GPT(config) with vocab {V}, d_model {D}, {H} head{'s' if H > 1 else ''}, {L} "
                 f"layer{'s' if L > 1 else ''}, max_len {M}")
        model = _call_model(candidate, (config,), ("config",), built)
        if not is_instance(model, nn.Module):
            raise Fail(f"{built} is {describe_type(model)}, not an nn.Module: subclass nn.Module")
        ref = _random_reference(config, rng.seed * 7 + number)
        _load(model, exercise_weights(ref), built)
        model.eval()
        T, T3 = rng.int(2, M - 1), rng.int(2, M)
        cases = [
            (f"{built}, batch 2, T {T}", rng.randint(V, 2, T)),
            (f"{built}, batch 2, T = max_len", rng.randint(V, 2, M)),
            (f"{built}, batch of 1, T {T3}", rng.randint(V, 1, T3)),
            (f"{built}, T = 1", rng.randint(V, 3, 1)),
        ]
        for label, ids in cases:
            with torch.no_grad():
                try:
                    got = _call_model(model, (ids,), ("ids",), label)
                except Fail as failure:
                    if _mask_not_cut(failure, ids.shape[1], M):
                        raise Fail(f"the causal mask is built for max_len positions ({label}): an input of T "
                                   f"positions, shorter than max_len, needs a T by T mask, the top-left corner of the "
                                   f"big one") from None
                    if "tuple" in failure.message and "TypeError" in failure.message:
                        raise Fail(f"uses what attn returns as one tensor ({label}): course_lib's MultiHeadAttention "
                                   f"returns a pair (output, weights); take the output out of the pair") from None
                    if "index out of range" in failure.message and V > M:
                        raise _index_failure(model, ref, ids % M, label) from None
                    raise
                expected = ref(ids)
                mistakes = [(diagnosis, lazy(_gpt_variant, ref, ids, **kw)) for diagnosis, kw in GPT_MISTAKES]
                compare(got, expected, label, mistakes, what="the logits", atol=1e-4)
            n_cases += 1
    return summary(n_cases, ["1 to 3 layers", "1 to 4 heads", "T = 1", "T = max_len", "batch of 1"],
                   "logits match course_lib's TransformerLM with the same weights")


# --- top_k_sample -----------------------------------------------------------------------------------------------

_DRAWS = 3000  # draws per distinct row


def _call_sampler(candidate, logits, k, temperature, seed, label):
    generator = torch.Generator().manual_seed(seed)
    try:
        return call(candidate, (logits, k, temperature, generator), ("logits", "k", "temperature", "generator"), label)
    except Fail as failure:
        text = failure.message
        if "probability tensor contains" in text or "invalid multinomial distribution" in text:
            if temperature == 0:
                raise Fail(f"divides by temperature 0 ({label}): at temperature 0 the answer is the likeliest token "
                           f"of each row, chosen without sampling") from None
            raise Fail(f"the probabilities it samples from contain negative numbers, NaN or inf ({label}): sample "
                       f"from a softmax, over the vocabulary, of the kept logits divided by the temperature") from None
        if k is None and ("NoneType" in text or "None" in text):
            raise Fail(f"fails when k is None ({label}): None means keep every token, a plain sample from the "
                       f"whole softmax") from None
        raise


def _as_token_ids(got, batch: int, vocab: int, label: str) -> torch.Tensor:
    """The answer as a (batch,) long tensor of ids, or ``Fail`` saying what came instead."""
    if got is None:
        raise Fail(f"returned None ({label}): did you forget `return`?")
    if not isinstance(got, torch.Tensor):
        raise Fail(f"returned {describe_type(got)} ({label}); expected a tensor of {batch} token ids, shape ({batch},)")
    check_tensor(got, torch.zeros(batch, dtype=torch.long), label, "the tokens")
    if got.shape == (batch, 1):
        raise Fail(f"returns shape ({batch}, 1) ({label}): one token per row is shape ({batch},), without the "
                   f"sample axis")
    if got.shape == (batch, vocab):
        raise Fail(f"returns a probability or score for every token ({label}): shape ({batch}, {vocab}); return the id "
                   f"of one sampled token per row, shape ({batch},)")
    if got.shape == (vocab,):
        raise Fail(f"returns {vocab} values, one per vocabulary token ({label}): something runs over the batch axis; "
                   f"return one token id per row, shape ({batch},)")
    if got.shape != (batch,):
        raise Fail(f"the tokens have shape {shape_str(got.shape)} ({label}); expected ({batch},), one token id per row")
    if got.dtype != torch.long:
        raise Fail(f"the tokens have dtype {got.dtype} ({label}); expected token ids, dtype torch.long (integers, "
                   f"as the argmax and the sampler give them)")
    if got.numel() and (int(got.min()) < 0 or int(got.max()) >= vocab):
        raise Fail(f"returns ids from {int(got.min())} to {int(got.max())} ({label}); expected ids of the "
                   f"vocabulary, 0 to {vocab - 1}")
    return got


def _kept(base: torch.Tensor, k: int | None, largest: bool = True) -> torch.Tensor:
    """(rows, V) bool: the k largest (or smallest) logits of each row; every one when k is None."""
    if k is None or k >= base.shape[-1]:
        return torch.ones_like(base, dtype=torch.bool)
    kept = torch.zeros_like(base, dtype=torch.bool)
    kept.scatter_(-1, base.topk(k, dim=-1, largest=largest).indices, True)
    return kept


def _softmax_of(base: torch.Tensor, kept: torch.Tensor, divisor: float) -> torch.Tensor:
    return (base / divisor).masked_fill(~kept, float("-inf")).softmax(-1)


def _sampling_mistakes(base: torch.Tensor, k: int | None, temperature: float) -> list[tuple[str, torch.Tensor]]:
    """(diagnosis, the distribution that mistake samples from) for each classic mistake; base (rows, V) float64."""
    kept = _kept(base, k)
    found = []
    if temperature != 1:
        found += [
            ("the temperature is applied the wrong way round: the samples follow the logits multiplied by it; "
             "dividing by a temperature above 1 flattens the distribution, below 1 sharpens it",
             _softmax_of(base, kept, 1 / temperature)),
            ("the temperature is ignored: divide the kept logits by it before the softmax",
             _softmax_of(base, kept, 1.0)),
        ]
    found.append(("always picks the likeliest token: at a temperature above 0, draw one token from the softmax of "
                  "the kept logits", torch.nn.functional.one_hot(base.argmax(-1), base.shape[-1]).double()))
    if k is not None:
        V = base.shape[-1]
        found += [
            ("keeps the k smallest logits: keep the k largest, the likeliest tokens",
             _softmax_of(base, _kept(base, k, largest=False), temperature)),
            ("keeps one token too many, k + 1: keep exactly the k largest logits of each row",
             None if k + 1 > V else _softmax_of(base, _kept(base, k + 1), temperature)),
            ("keeps one token too few, k - 1: keep exactly the k largest logits of each row, the k-th included",
             None if k < 2 else _softmax_of(base, _kept(base, k - 1), temperature)),
            ("samples from every token: only the k largest logits of each row may be drawn", _softmax_of(
                base, _kept(base, None), temperature)),
            ("the other tokens' logits are set to 0: that still gives them some probability; they must get none, "
             "as with a logit of minus infinity", (base.masked_fill(~kept, 0.0) / temperature).softmax(-1)),
        ]
    masked = (base / temperature).masked_fill(~kept, float("-inf"))
    over_batch = masked.softmax(0)  # what a softmax over the batch axis gives; each row then normalised by the draw
    found.append(("softmax over the batch axis: the probabilities of each row must come from that row's own "
                  "logits, a softmax over the vocabulary", over_batch / over_batch.sum(-1, keepdim=True)))
    return [(text, p) for text, p in found if p is not None]


def _frequencies(tokens: torch.Tensor, rows: int, vocab: int) -> torch.Tensor:
    """(rows, vocab): how often each token came out for each distinct row (the batch repeats the rows)."""
    counts = torch.zeros(rows, vocab, dtype=torch.float64)
    which = torch.arange(tokens.shape[0]) % rows
    counts.index_put_((which, tokens), torch.ones(tokens.shape[0], dtype=torch.float64), accumulate=True)
    return counts / counts.sum(-1, keepdim=True)


def _follows(frequencies: torch.Tensor, p: torch.Tensor) -> bool:
    """True if no token of probability 0 came out, every token expected 20 times or more came out, and each
    frequency lies within 6 standard deviations (plus 0.001) of its probability: a right answer fails this about
    once in 10^8 checks."""
    if not bool(torch.isfinite(p).all()) or bool((frequencies[p == 0] > 0).any()) \
            or bool((frequencies[p * _DRAWS >= 20] == 0).any()):
        return False
    allowed = 6 * (p * (1 - p) / _DRAWS).sqrt() + 0.001
    return bool(((frequencies - p).abs() <= allowed).all())


def _spread_rows(rng: Inputs, V: int, k: int | None, temperature: float) -> torch.Tensor:
    """Rows of V distinct logits, evenly spaced apart by about half a temperature, whose k largest together cover
    every token (so that even a softmax over the batch axis gives numbers to sample from)."""
    rows = 2 if k is None else max(2, math.ceil(V / k))
    step = temperature * (0.55 + 0.2 * float(rng.rand(1)))
    ladder = -step * torch.arange(V, dtype=torch.float32)  # the largest first
    order = rng.permutation(V)
    out = torch.empty(rows, V)
    for r in range(rows):
        shift = (r * (k or 1)) % V  # row r's k largest are the tokens order[r*k], order[r*k + 1], ...
        tokens = order.roll(-shift)
        out[r, tokens] = ladder + 0.05 * step * rng.rand(V) + float(rng.randn(1))
    return out


@check("top_k_sample", lesson=LESSON, reference=top_k_sample,
       builtins=("course_lib.experiments.generation.top_k_sample",),
       pieces="topk, masked_fill with -inf, softmax, torch.multinomial with the generator")
def check_top_k_sample(candidate) -> str:
    """``top_k_sample(logits (batch, vocab), k=None, temperature=1.0, generator=None) -> (batch,)`` long: the argmax
    at temperature 0, else one draw per row among its k largest logits, from their softmax divided by the
    temperature. Draws are random, so the check counts them: thousands per row, against the right probabilities."""
    rng = Inputs()
    V1, B1, V2 = rng.int(5, 9), rng.int(2, 5), rng.int(4, 8)
    k1 = rng.int(2, V1 - 1)
    greedy_cases = [
        (f"temperature 0, k {k1}, batch {B1}, vocab {V1 + B1}", rng.randn(B1, V1 + B1), k1, 0),
        (f"temperature 0.0, k = vocab, batch of 1, vocab {V2}", rng.randn(1, V2), V2, 0.0),
    ]
    for label, logits, k, temperature in greedy_cases:
        _expect_argmax(candidate, logits, k, temperature, rng.seed, label, greedy=True)
    V3, V4, V5 = rng.int(8, 10), rng.int(6, 9), rng.int(5, 8)
    k3, k4 = rng.int(3, 5), rng.int(2, V4 - 2)  # k3 <= V3 - 3: k + 1 and every token differ
    sampling_cases = [  # temperature 2 first: there the classic mistakes about it differ the most
        (f"k {k3} of {V3} tokens, temperature 2", V3, k3, 2.0),
        (f"k {k4} of {V4} tokens, temperature 0.5", V4, k4, 0.5),
        (f"k = vocab - 1 = {V5 - 1}, temperature 0.8", V5, V5 - 1, 0.8),
        (f"k None (every token) of {V4} tokens, temperature 1.5", V4, None, 1.5),
    ]
    for number, (label, V, k, temperature) in enumerate(sampling_cases):
        base = _spread_rows(rng, V, k, temperature)
        rows = base.shape[0]
        logits = base.repeat(_DRAWS, 1)  # (rows * draws, V): row i is base[i % rows]
        label = f"{label}, {rows} rows each drawn {_DRAWS} times"
        seed = rng.seed * 13 + number
        first = _as_token_ids(_call_sampler(candidate, logits, k, temperature, seed, label), logits.shape[0], V, label)
        frequencies = _frequencies(first, rows, V)
        expected = _softmax_of(base.double(), _kept(base, k), temperature)
        if not _follows(frequencies, expected):
            for diagnosis, wrong in _sampling_mistakes(base.double(), k, temperature):
                if _follows(frequencies, wrong):
                    raise Fail(f"{diagnosis} ({label})")
            outside = (frequencies > 0) & (expected == 0)
            if bool(outside.any()):
                row, token = (int(i) for i in outside.nonzero()[0])
                raise Fail(f"draws token {token} in row {row}, which is not among that row's k largest logits "
                           f"({label}): only the k likeliest tokens may be drawn")
            worst = int((frequencies - expected).abs().argmax())
            row, token = divmod(worst, V)
            raise Fail(f"the samples do not follow the softmax of the kept logits divided by the temperature "
                       f"({label}): token {token} of row {row} came {fmt_number(float(frequencies[row, token]))} of "
                       f"the time, expected {fmt_number(float(expected[row, token]))}")
        same_seed = _as_token_ids(_call_sampler(candidate, logits, k, temperature, seed, label),
                                  logits.shape[0], V, label)
        if not torch.equal(first, same_seed):
            raise Fail(f"ignores the generator ({label}): two generators with the same seed gave different tokens; "
                       f"every random draw must come from the generator it is given")
        other_seed = _as_token_ids(_call_sampler(candidate, logits, k, temperature, seed + 1, label),
                                   logits.shape[0], V, label)
        if torch.equal(first, other_seed):
            raise Fail(f"ignores the generator ({label}): generators with different seeds gave the same tokens; "
                       f"every random draw must come from the generator it is given")
    B6, V6, V7 = rng.int(2, 5), rng.int(4, 8), rng.int(3, 7)
    top_one_cases = [
        (f"k = 1 at temperature 1.3, non-contiguous logits, batch {B6}, vocab {V6 + B6}",
         non_contiguous(rng.randn(B6, V6 + B6)), 1, 1.3),
        (f"k = 1 at temperature 0.7, batch of 1, vocab {V7}", rng.randn(1, V7), 1, 0.7),
    ]
    for label, logits, k, temperature in top_one_cases:
        _expect_argmax(candidate, logits, k, temperature, rng.seed, label, greedy=False)
    return summary(len(greedy_cases) + len(sampling_cases) + len(top_one_cases),
                   ["temperature 0", "k = 1", "k = vocab - 1", "k None", "temperatures 0.5 to 2", "batch of 1",
                    "non-contiguous logits", "repeatable with a seeded generator"],
                   "greedy at temperature 0, else draws the k likeliest at the right rates")


def _expect_argmax(candidate, logits, k, temperature, seed, label, greedy: bool) -> None:
    got = _call_sampler(candidate, logits, k, temperature, seed, label)
    tokens = _as_token_ids(got, logits.shape[0], logits.shape[1], label)
    expected = logits.argmax(-1)
    if torch.equal(tokens, expected):
        return
    if torch.equal(tokens, logits.argmin(-1)):
        if greedy:
            raise Fail(f"picks the least likely token at temperature 0 ({label}): take the likeliest")
        raise Fail(f"keeps the k smallest logits: with k = 1 that is the least likely token ({label}); keep the k "
                   f"largest, the likeliest tokens")
    if greedy:
        raise Fail(f"at temperature 0 returns {tokens.tolist()} ({label}); expected the likeliest token of each row, "
                   f"{expected.tolist()}, without sampling")
    raise Fail(f"with k = 1 returns {tokens.tolist()} ({label}); expected the likeliest token of each row, "
               f"{expected.tolist()}: with one token kept there is nothing else to draw")


# --- attend_with_cache ------------------------------------------------------------------------------------------

def _cache_variant(q, k, v, k_cache, v_cache, append="end", divisor=None, softmax_dim=-1, values_from_keys=False,
                   old_caches=False):
    """What ``attend_with_cache`` returns, or the same with one classic mistake: the new key and value appended at
    the ``"end"``, at the ``"front"``, appended only ``"after"`` attending, or ``"never"``; the scores divided by
    ``divisor`` (default √d_head); the old caches returned."""
    if append == "front":
        new_k, new_v = torch.cat([k, k_cache], dim=2), torch.cat([v, v_cache], dim=2)
    else:
        new_k, new_v = torch.cat([k_cache, k], dim=2), torch.cat([v_cache, v], dim=2)
    keys, values = (k_cache, v_cache) if append in ("after", "never") else (new_k, new_v)
    divisor = math.sqrt(q.shape[-1]) if divisor is None else divisor
    weights = (q @ keys.transpose(-2, -1) / divisor).softmax(dim=softmax_dim)  # (B, H, 1, keys)
    out = weights @ (keys if values_from_keys else values)
    if old_caches or append == "never":
        return out, k_cache, v_cache
    return out, new_k, new_v


NOT_SEEN = ("the new key is not in the cache it attends to: the new position must attend to itself too, so its key "
            "and value join the caches before the attention")
CACHE_MISTAKES = (
    ("the new key goes at the end: the caches keep the positions in order, oldest first, so the new key and value "
     "come last", {"append": "front"}),
    ("returns the caches unchanged: the caches it returns must hold the new position's key and value too, t + 1 "
     "positions", {"old_caches": True}),
)


def _output_mistakes(q, k_cache):
    """(diagnosis, keywords of ``_cache_variant``) for the mistakes that change the output."""
    d_head, t, heads = q.shape[-1], k_cache.shape[2], q.shape[1]
    found = [(NOT_SEEN, {"append": "after"}), (NOT_SEEN, {"append": "never"})]
    if t > 0:
        found.append(("scores divided by √t, the number of cached positions: divide by √d_head, the size of each "
                      "query and key", {"divisor": math.sqrt(t)}))
    found.append(("scores divided by √(t + 1), the number of keys: divide by √d_head, the size of each query and "
                  "key", {"divisor": math.sqrt(t + 1)}))
    if heads > 1:
        found.append(("scores divided by √d_model: each head's queries and keys have d_head features, so divide by "
                      "√d_head", {"divisor": math.sqrt(d_head * heads)}))
    found += [
        ("scores not divided by √d_head: scale them by the square root of each query's size", {"divisor": 1.0}),
        ("scores divided by d_head instead of √d_head", {"divisor": float(d_head)}),
        ("softmax over the query axis (of size 1 here: every weight is 1): the softmax runs over the keys, the last "
         "axis", {"softmax_dim": -2}),
        ("the weights average the keys: they must average the values", {"values_from_keys": True}),
    ]
    return found


def _as_triple(got, label: str):
    if got is None:
        raise Fail(f"returned None ({label}): return the output and both caches, (output, k_cache, v_cache)")
    if isinstance(got, torch.Tensor):
        raise Fail(f"returns one tensor of shape {shape_str(got.shape)} ({label}): return the output and both "
                   f"caches, (output, k_cache, v_cache)")
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        raise Fail(f"returns {describe_type(got)}{f' of {len(got)}' if isinstance(got, (tuple, list)) else ''} "
                   f"({label}); expected the three tensors (output, k_cache, v_cache)")
    return got


CAT_ERROR = "Sizes of tensors must match except in dimension"


def _cache_cases(rng: Inputs):
    B, H, dh = rng.int(2, 3), rng.int(2, 4), rng.int(3, 6)
    dh += dh == H  # d_head = heads would make d_head and √d_model alike
    t = rng.int(3, 8)
    while t in (dh, H * dh, dh * dh) or t + 1 in (dh, H * dh, dh * dh):
        t += 1  # keep √t, √(t + 1), √d_head, d_head and √d_model apart: each names its own mistake
    H2, dh2, dh3, H4, t4, dh5, t5, H6, dh6, t6 = (rng.int(2, 3), rng.int(3, 5), rng.int(3, 5), rng.int(2, 3),
                                                  rng.int(2, 6), rng.int(3, 6), rng.int(2, 6), rng.int(2, 3),
                                                  rng.int(3, 5), rng.int(2, 6))

    def inputs(B, H, t, dh):
        return (rng.randn(B, H, 1, dh), rng.randn(B, H, 1, dh), rng.randn(B, H, 1, dh), rng.randn(B, H, t, dh),
                rng.randn(B, H, t, dh))

    return [  # many cached positions first: there every classic mistake gives its own answer
        (f"batch {B}, {H} heads, {t} cached positions, d_head {dh}", inputs(B, H, t, dh)),
        (f"t = 1 cached position, {H2} heads, d_head {dh2}", inputs(2, H2, 1, dh2)),
        (f"an empty cache (t = 0), 2 heads, d_head {dh3}", inputs(2, 2, 0, dh3)),
        (f"batch of 1, {H4} heads, t {t4}", inputs(1, H4, t4, dh2)),
        (f"one head, t {t5}, d_head {dh5}", inputs(2, 1, t5, dh5)),
        (f"non-contiguous inputs, {H6} heads, t {t6}, d_head {dh6}",
         tuple(non_contiguous(x) for x in inputs(2, H6, t6, dh6))),
    ]


@check("attend_with_cache", lesson=LESSON, reference=attend_with_cache,
       builtins=("torch.nn.functional.scaled_dot_product_attention",
                 "course_lib.models.attention.scaled_dot_product_attention",
                 "course_lib.experiments.generation.attend_with_cache"),
       pieces="torch.cat, matrix products, softmax")
def check_attend_with_cache(candidate) -> str:
    """``attend_with_cache(q_new, k_new, v_new (batch, heads, 1, d_head), k_cache, v_cache (batch, heads, t, d_head))
    -> (output (batch, heads, 1, d_head), k_cache, v_cache (batch, heads, t + 1, d_head))``; then, fed its own caches
    position by position, it must give causal attention over the whole sequence."""
    with one_thread():  # tiny tensors: a second thread only adds waiting
        return _attend_with_cache_body(candidate)


def _attend_with_cache_body(candidate) -> str:
    rng = Inputs()
    names = ("q_new", "k_new", "v_new", "k_cache", "v_cache")
    cases = _cache_cases(rng)
    for label, args in cases:
        with torch.no_grad():
            try:
                got = call(candidate, args, names, label)
            except Fail as failure:
                if CAT_ERROR in failure.message:
                    raise Fail(f"the cache grows along the wrong axis ({label}): the new key and value join the "
                               f"time axis, the third of (batch, heads, time, d_head)") from None
                raise
            out, k_cache, v_cache = _as_triple(got, label)
            expected = attend_with_cache(*args)
            output_mistakes = [(d, lazy(_cache_variant, *args, **kw)) for d, kw in _output_mistakes(args[0], args[3])]
            cache_mistakes = [(d, lazy(_cache_variant, *args, **kw)) for d, kw in CACHE_MISTAKES]
            compare(out, expected[0], label, [(d, lambda w=w: w()[0]) for d, w in output_mistakes], what="the output")
            for index, what, value in ((1, "the key cache", k_cache), (2, "the value cache", v_cache)):
                if isinstance(value, torch.Tensor) and value.shape != expected[index].shape \
                        and value.numel() == expected[index].numel():
                    raise Fail(f"{what} has shape {shape_str(value.shape)} ({label}); expected "
                               f"{shape_str(expected[index].shape)}: the new entry joins the time axis, the third")
                compare(value, expected[index], label, [(d, lambda w=w, i=index: w()[i]) for d, w in cache_mistakes],
                        what=what)
    # Then one position at a time, each call fed the caches the one before returned: causal attention.
    B, H, T, dh = 2, rng.int(2, 3), rng.int(4, 7), rng.int(3, 5)
    q, k, v = rng.randn(B, H, T, dh), rng.randn(B, H, T, dh), rng.randn(B, H, T, dh)
    label = f"position by position over {T} positions, {H} heads, d_head {dh}, starting from empty caches"
    k_cache, v_cache = k[:, :, :0], v[:, :, :0]
    outputs = []
    with torch.no_grad():
        for t in range(T):
            got = call(candidate, (q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1], k_cache, v_cache), names,
                       f"{label}, position {t}")
            out, k_cache, v_cache = _as_triple(got, f"{label}, position {t}")
            for value, size in ((out, 1), (k_cache, t + 1), (v_cache, t + 1)):
                if not isinstance(value, torch.Tensor) or value.shape != (B, H, size, dh):
                    what = (f"a tensor of shape {shape_str(value.shape)}" if isinstance(value, torch.Tensor)
                            else describe_type(value))
                    raise Fail(f"position by position it does not give causal attention ({label}): at position {t} "
                               f"it returned {what}; expected a tensor of shape {shape_str((B, H, size, dh))}")
                check_tensor(value, k, label)
            outputs.append(out)
        together = torch.cat(outputs, dim=2)
        expected = scaled_dot_product_attention(q, k, v, causal_mask(T))[0]
        if not torch.allclose(together, expected, atol=1e-5, rtol=1e-4):
            wrong = ~torch.isclose(together, expected, atol=1e-5, rtol=1e-4)
            first = int(wrong.any(-1).any(0).any(0).nonzero()[0, 0])
            raise Fail(f"position by position it does not give causal attention ({label}): fed the caches it "
                       f"returned, its output at position {first} differs from that position's row of causal "
                       f"attention over the whole sequence")
    return summary(len(cases) + 1, ["t = 0 and t = 1", "batch of 1", "one head", "non-contiguous inputs",
                                    "position by position"],
                   "output and caches right, causal attention position by position")


# --- windows ----------------------------------------------------------------------------------------------------

def _windows_mistakes(ids, starts, context):
    B = starts.shape[0]
    offsets = torch.arange(context + 1)
    return [
        ("one token short: each window holds context + 1 tokens, the context's inputs plus one more, so that the "
         "last input has its target", lambda: ids[starts[:, None] + torch.arange(context)]),
        ("one token too many: each window holds context + 1 tokens",
         lambda: ids[starts[:, None] + torch.arange(context + 2)]),
        ("the windows start one token late: a window begins at its start itself",
         lambda: ids[starts[:, None] + 1 + offsets]),
        ("the windows start one token early: a window begins at its start itself",
         lambda: ids[starts[:, None] - 1 + offsets]),
        ("returns (context + 1, batch), the windows as columns: each window is a row, shape (batch, context + 1)",
         lambda: ids[starts[:, None] + offsets].T),
        ("every row is the same window: each start gets its own window",
         lambda: ids[starts[0] + offsets].expand(B, -1)),
        ("the windows start at 0, 1, 2, ...: each window starts at its own entry of starts",
         lambda: ids[torch.arange(B)[:, None] + offsets]),
    ]


@check("windows", lesson=LESSON, reference=windows, builtins=("course_lib.experiments.text_model.windows",),
       pieces="torch.arange, broadcasting and indexing")
def check_windows(candidate) -> str:
    """``windows(ids (n,), starts (batch,), context) -> (batch, context + 1)`` long: the context + 1 tokens of
    ``ids`` from each start."""
    rng = Inputs()
    V = rng.int(20, 60)

    def text(n):
        return rng.randint(V, n)

    n1, c1, n2, n3, c3, n4, c4, n5, c5 = (rng.int(30, 60), rng.int(3, 8), rng.int(10, 30), rng.int(20, 40),
                                          rng.int(2, 9), rng.int(12, 30), rng.int(2, 6), rng.int(20, 40),
                                          rng.int(2, 7))
    B1 = rng.int(3, 6)
    middle = 1 + rng.randint(n1 - c1 - 3, B1)  # neither the first nor the last start
    last2, last3 = n2 - 2, n3 - c3 - 1
    cases = [
        (f"{B1} starts inside a text of {n1}, context {c1}", text(n1), middle, c1),
        (f"context 1, starts 0 and the last one ({last2}), text of {n2}", text(n2),
         torch.tensor([0, last2, rng.int(1, last2 - 1)]), 1),
        (f"starts 0 and the last one ({last3}), repeated and unsorted, context {c3}, text of {n3}", text(n3),
         torch.tensor([last3, 0, rng.int(1, last3 - 1), last3]), c3),
        (f"one start, context {c4}, text of {n4}", text(n4), torch.tensor([rng.int(0, n4 - c4 - 1)]), c4),
        (f"non-contiguous ids, context {c5}, text of {n5}", non_contiguous(text(n5)),
         rng.randint(n5 - c5, rng.int(2, 5)), c5),
    ]
    for label, ids, starts, context in cases:
        got = call(candidate, (ids, starts, context), ("ids", "starts", "context"), label)
        expected = windows(ids, starts, context)
        if isinstance(got, torch.Tensor) and got.layout == torch.strided and got.is_floating_point() \
                and got.shape == expected.shape and torch.equal(got.detach().double(), expected.double()):
            raise Fail(f"returns floats, dtype {got.dtype} ({label}): token ids are integers, and the embedding and "
                       f"the loss need them as such, dtype torch.long")
        compare(got, expected, label, _windows_mistakes(ids, starts, context), what="the windows")
    return summary(len(cases), ["context 1", "the first and the last start", "repeated starts", "one start",
                                "non-contiguous ids"], "cuts the context + 1 tokens from each start")
