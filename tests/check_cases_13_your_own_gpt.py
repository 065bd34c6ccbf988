"""Lesson 13's exercises (your own GPT): right and wrong learner answers, read by tests/test_checks.py.

Each wrong entry: (id, implementation, words its diagnosis must contain). The tables a case file may
hold (CASES, NAMED_MISTAKES, DELEGATING, HAND_BUILT, REPLAYABLE, CHEATS) are described at the top of
tests/test_checks.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

import course_lib
from course_lib.experiments.generation import attend_with_cache, top_k_sample
from course_lib.experiments.text_model import windows
from course_lib.models.block import MLP, TransformerBlock
from course_lib.models.language_model import LMConfig

# --- gpt -----------------------------------------------------------------------------------------------------------


def make_gpt(mask="causal", order="pre", positions="start", final_norm=True, head="own", residual=True,
             mlp_reads="ln2", probabilities=False, attn_pair=True, mask_buffer=False, position_ids=False):
    """A learner's Block and GPT; the defaults are right, each argument is one mistake (or another right way)."""

    class Block(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.ln1 = nn.LayerNorm(config.d_model)
            self.attn = course_lib.MultiHeadAttention(config.d_model, config.n_heads)
            self.ln2 = nn.LayerNorm(config.d_model)
            self.mlp = MLP(config.d_model, 4 * config.d_model)

        def forward(self, x, attention_mask):
            if order == "post":
                x = self.ln1(x + self.attn(x, attention_mask)[0])
                return self.ln2(x + self.mlp(x))
            h = self.ln1(x)
            attended = self.attn(h, attention_mask) if not attn_pair else self.attn(h, attention_mask)[0]
            x = x + attended if residual else attended
            g = {"ln2": self.ln2, "ln1": self.ln1}[mlp_reads if mlp_reads != "ln1 before" else "ln2"](x)
            g = h if mlp_reads == "ln1 before" else g
            return x + self.mlp(g) if residual else self.mlp(g)

    class GPT(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.embed = nn.Embedding(config.vocab_size, config.d_model)
            self.positions = nn.Embedding(config.max_len, config.d_model)
            self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layers)])
            self.ln_f = nn.LayerNorm(config.d_model)
            self.head = nn.Linear(config.d_model, config.vocab_size)
            if head == "shared":
                self.head.weight = self.embed.weight  # weight tying: one table for both
            if mask_buffer:
                self.register_buffer("mask", torch.ones(config.max_len, config.max_len, dtype=torch.bool).tril())

        def forward(self, ids):
            B, T = ids.shape
            x = self.embed(ids)
            if positions == "start":
                x = x + (self.positions(torch.arange(T)) if position_ids else self.positions.weight[:T])
            elif positions == "by id":
                x = x + self.positions(ids)
            if mask == "causal":
                attention_mask = torch.ones(T, T, dtype=torch.bool).tril()
            elif mask == "max_len":
                attention_mask = self.mask
            elif mask == "course_lib":
                attention_mask = course_lib.causal_mask(T)
            elif mask == "cut buffer":
                attention_mask = self.mask[:T, :T]
            else:
                attention_mask = None
            for block in self.blocks:
                x = block(x, attention_mask)
            if positions == "end":
                x = x + self.positions.weight[:T]
            if final_norm:
                x = self.ln_f(x)
            if head in ("own", "shared"):
                logits = self.head(x)
            elif head == "tied":
                logits = x @ self.embed.weight.T
            else:
                logits = F.linear(x, self.embed.weight, self.head.bias)
            return logits.softmax(-1) if probabilities else logits

    return GPT


class GPTWithLibraryBlocks(nn.Module):
    """Right, but each block is course_lib's TransformerBlock: the block done for the learner."""

    def __init__(self, config):
        super().__init__()
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.positions = nn.Embedding(config.max_len, config.d_model)
        self.blocks = nn.ModuleList([TransformerBlock(config.d_model, config.n_heads) for _ in range(config.n_layers)])
        self.ln_f = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size)

    def forward(self, ids):
        T = ids.shape[1]
        x = self.embed(ids) + self.positions.weight[:T]
        for block in self.blocks:
            x = block(x, course_lib.causal_mask(T))
        return self.head(self.ln_f(x))


class GPTOtherNames(nn.Module):
    """Right in its computation, but with its own names (pos, layers): the check cannot load its weights."""

    def __init__(self, config):
        super().__init__()
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.pos = nn.Embedding(config.max_len, config.d_model)
        self.layers = nn.ModuleList([TransformerBlock(config.d_model, config.n_heads) for _ in range(config.n_layers)])
        self.ln_f = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size)

    def forward(self, ids):
        raise AssertionError("never reached")


class GPTNarrowMLP(make_gpt()):
    """An MLP of width 2 * d_model: its weights have other shapes than the exercise's."""

    def __init__(self, config):
        super().__init__(config)
        for block in self.blocks:
            block.mlp = MLP(config.d_model, 2 * config.d_model)


def head_without_bias(config):
    model = make_gpt()(config)
    model.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
    return model


GPT_RIGHT = [
    ("by hand", make_gpt()),
    ("positions from an arange, the mask a buffer cut to T", make_gpt(position_ids=True, mask_buffer=True,
                                                                     mask="cut buffer")),
    ("course_lib's causal_mask", make_gpt(mask="course_lib")),
]
GPT_WRONG = [
    ("no causal mask", make_gpt(mask=None), "no causal mask"),
    ("post-LN", make_gpt(order="post"), "post-LN order"),
    ("positions after the blocks", make_gpt(positions="end"), "positions are added after the blocks"),
    ("no positions", make_gpt(positions="none"), "no positions"),
    ("positions by token id", make_gpt(positions="by id"), "positions are looked up with the token ids"),
    ("no final norm", make_gpt(final_norm=False), "no final LayerNorm"),
    ("output tied to the embedding", make_gpt(head="tied"), "tied to the token embedding"),
    ("output tied, head's bias", make_gpt(head="tied, own bias"), "tied to the token embedding"),
    ("weights shared with the embedding", make_gpt(head="shared"), "shares its weights with the token embedding"),
    ("no residuals", make_gpt(residual=False), "a block without residuals"),
    ("MLP reads ln1's output", make_gpt(mlp_reads="ln1 before"), "ln2 is unused"),
    ("MLP reads ln1 again", make_gpt(mlp_reads="ln1"), "ln2 is unused"),
    ("returns probabilities", make_gpt(probabilities=True), "returns probabilities"),
    ("the max_len mask, not cut", make_gpt(mask="max_len", mask_buffer=True), "the causal mask is built for max_len"),
    ("attn's pair as a tensor", make_gpt(attn_pair=False), "uses what attn returns as one tensor"),
    ("other names", GPTOtherNames, "your model has no positions, blocks; it has pos, layers instead"),
    ("head without bias", head_without_bias, "your model has no head.bias: those layers keep their bias"),
    ("MLP of width 2 d_model", GPTNarrowMLP, "blocks.0.mlp.fc.weight has shape"),
    ("an instance", make_gpt()(LMConfig(10, 8, 2, 1, 4)), "pass the class itself"),
]

# --- top_k_sample --------------------------------------------------------------------------------------------------


def sample_by_hand(logits, k=None, temperature=1.0, generator=None):
    if temperature == 0:
        return logits.argmax(dim=-1)
    if k is not None:
        kth = logits.topk(k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1, generator=generator).squeeze(-1)


def sample_among_top_values(logits, k=None, temperature=1.0, generator=None):
    if temperature == 0:
        return logits.argmax(-1)
    values, indices = logits.topk(k if k is not None else logits.shape[-1], dim=-1)
    choice = torch.multinomial((values / temperature).softmax(-1), 1, generator=generator)  # (B, 1)
    return indices.gather(-1, choice)[:, 0]


def sample_gumbel(logits, k=None, temperature=1.0, generator=None):
    if not temperature:
        return logits.argmax(-1)
    scores = logits / temperature
    if k is not None:
        threshold = scores.sort(dim=-1, descending=True).values[:, k - 1:k]
        scores = torch.where(scores >= threshold, scores, torch.full_like(scores, -math.inf))
    uniform = torch.rand(scores.shape, generator=generator).clamp_min(1e-12)
    return (scores - torch.log(-torch.log(uniform))).argmax(-1)


def make_sample(scale="divide", keep="largest", extra=0, generator_mode="given", zero_fill=False, softmax_dim=-1,
                greedy_at_zero=True, keepdim=False, probabilities=False, always_greedy=False):
    """A learner's top_k_sample; the defaults are right, each argument is one mistake."""

    def sample(logits, k=None, temperature=1.0, generator=None):
        if greedy_at_zero and temperature == 0 or always_greedy:
            return logits.argmax(-1, keepdim=keepdim)
        if k is not None and keep != "all":
            kept = logits.topk(min(k + extra, logits.shape[-1]), dim=-1, largest=keep == "largest").indices
            allowed = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, kept, True)
            logits = logits.masked_fill(~allowed, 0.0 if zero_fill else float("-inf"))
        scaled = {"divide": logits / temperature, "multiply": logits * temperature, "ignore": logits}[scale]
        probs = scaled.softmax(dim=softmax_dim)
        if probabilities:
            return probs
        if generator_mode == "global":
            ids = torch.multinomial(probs, 1)
        elif generator_mode == "fresh":
            ids = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(0))
        else:
            ids = torch.multinomial(probs, 1, generator=generator)
        return ids if keepdim else ids.squeeze(-1)

    return sample


TOP_K_RIGHT = [
    ("by hand", sample_by_hand),
    ("sample among the top values, then gather", sample_among_top_values),
    ("Gumbel-max with the generator", sample_gumbel),
    ("masks built with scatter", make_sample()),
]
TOP_K_WRONG = [
    ("multiplied by the temperature", make_sample(scale="multiply"), "the temperature is applied the wrong way"),
    ("temperature ignored", make_sample(scale="ignore"), "the temperature is ignored"),
    ("the k smallest", make_sample(keep="smallest"), "keeps the k smallest"),
    ("k + 1 tokens", make_sample(extra=1), "one token too many"),
    ("k - 1 tokens", make_sample(extra=-1), "one token too few"),
    ("k ignored", make_sample(keep="all"), "samples from every token"),
    ("the global random generator", make_sample(generator_mode="global"), "ignores the generator"),
    ("a new generator inside", make_sample(generator_mode="fresh"), "ignores the generator"),
    ("softmax over the batch axis", make_sample(softmax_dim=0), "softmax over the batch axis"),
    ("the others' logits set to 0", make_sample(zero_fill=True), "set to 0"),
    ("keeps the sample axis", make_sample(keepdim=True), "without the sample axis"),
    ("returns the probabilities", make_sample(probabilities=True), "a probability or score for every token"),
    ("divides by temperature 0", make_sample(greedy_at_zero=False), "divides by temperature 0"),
    ("always greedy", make_sample(always_greedy=True), "always picks the likeliest token"),
    ("float ids", lambda *a: sample_by_hand(*a).float(), "dtype torch.float32"),
]

# --- attend_with_cache ---------------------------------------------------------------------------------------------


def make_attend(append="end", axis=2, scale="d_head", softmax_dim=-1, values_from_keys=False, old_caches=False,
                output_only=False):
    """A learner's attend_with_cache; the defaults are right, each argument is one mistake."""

    def attend(q_new, k_new, v_new, k_cache, v_cache):
        if append == "front":
            new_k, new_v = torch.cat([k_new, k_cache], dim=axis), torch.cat([v_new, v_cache], dim=axis)
        else:
            new_k, new_v = torch.cat([k_cache, k_new], dim=axis), torch.cat([v_cache, v_new], dim=axis)
        keys, values = (k_cache, v_cache) if append in ("after", "never") else (new_k, new_v)
        d_head = q_new.shape[-1]
        divisor = {"d_head": math.sqrt(d_head), "none": 1.0, "t": math.sqrt(k_cache.shape[2]),
                   "d_model": math.sqrt(d_head * q_new.shape[1]), "keys": math.sqrt(keys.shape[2])}[scale]
        weights = torch.softmax(q_new @ keys.transpose(-2, -1) / divisor, dim=softmax_dim)
        out = weights @ (keys if values_from_keys else values)
        if output_only:
            return out
        if old_caches or append == "never":
            return out, k_cache, v_cache
        return out, new_k, new_v

    return attend


def attend_einsum(q_new, k_new, v_new, k_cache, v_cache):
    keys, values = torch.cat((k_cache, k_new), -2), torch.cat((v_cache, v_new), -2)
    scores = torch.einsum("bhqd,bhkd->bhqk", q_new, keys) * q_new.shape[-1] ** -0.5
    return torch.einsum("bhqk,bhkd->bhqd", scores.softmax(-1), values), keys, values


def attend_builtin(q_new, k_new, v_new, k_cache, v_cache):
    keys, values = torch.cat([k_cache, k_new], dim=2), torch.cat([v_cache, v_new], dim=2)
    return F.scaled_dot_product_attention(q_new, keys, values), keys, values


def attend_course_lib(q_new, k_new, v_new, k_cache, v_cache):
    keys, values = torch.cat([k_cache, k_new], dim=2), torch.cat([v_cache, v_new], dim=2)
    return course_lib.scaled_dot_product_attention(q_new, keys, values)[0], keys, values


ATTEND_RIGHT = [
    ("by hand", make_attend()),
    ("einsum", attend_einsum),
    ("F.scaled_dot_product_attention", attend_builtin),
    ("course_lib's attention", attend_course_lib),
]
ATTEND_WRONG = [
    ("attends before appending", make_attend(append="after"), "the new key is not in the cache"),
    ("never appends", make_attend(append="never"), "the new key is not in the cache"),
    ("appended on the head axis", make_attend(axis=1), "along the wrong axis"),
    ("appended on the feature axis", make_attend(axis=-1), "along the wrong axis"),
    ("the new entries first", make_attend(append="front"), "the new key goes at the end"),
    ("scaled by √t", make_attend(scale="t"), "divided by √t"),
    ("scaled by √(t + 1)", make_attend(scale="keys"), "divided by √(t + 1)"),
    ("scaled by √d_model", make_attend(scale="d_model"), "divided by √d_model"),
    ("not scaled", make_attend(scale="none"), "not divided by √d_head"),
    ("softmax over the query axis", make_attend(softmax_dim=-2), "softmax over the query axis"),
    ("weights @ keys", make_attend(values_from_keys=True), "the weights average the keys"),
    ("caches returned unchanged", make_attend(old_caches=True), "returns the caches unchanged"),
    ("the output only", make_attend(output_only=True), "return the output and both caches"),
]

# --- windows -------------------------------------------------------------------------------------------------------


def windows_loop(ids, starts, context):
    return torch.stack([ids[s:s + context + 1] for s in starts.tolist()])


def windows_unfold(ids, starts, context):
    return ids.unfold(0, context + 1, 1)[starts]


def windows_in_place(ids, starts, context):
    ids += 0 * ids + 1
    ids -= 1
    ids[0] = ids[0] + 1
    return windows(ids, starts, context)


WINDOWS_RIGHT = [
    ("arange and indexing", lambda ids, starts, context: ids[starts[:, None] + torch.arange(context + 1)]),
    ("a loop and torch.stack", windows_loop),
    ("unfold", windows_unfold),
]
WINDOWS_WRONG = [
    ("context tokens", lambda ids, starts, context: ids[starts[:, None] + torch.arange(context)], "one token short"),
    ("one token late", lambda ids, starts, context: ids[starts[:, None] + torch.arange(1, context + 2)],
     "start one token late"),
    ("transposed", lambda ids, starts, context: ids[starts[None, :] + torch.arange(context + 1)[:, None]],
     "returns (context + 1, batch)"),
    ("the same window", lambda ids, starts, context: ids[starts[0] + torch.arange(context + 1)].repeat(
        len(starts), 1), "every row is the same window"),
    ("floats", lambda ids, starts, context: windows_loop(ids, starts, context).float(), "returns floats"),
    ("changes ids in place", windows_in_place, "changes its input `ids` in place"),
    ("starts ignored", lambda ids, starts, context: ids[torch.arange(len(starts))[:, None] + torch.arange(
        context + 1)], "start at 0, 1, 2"),
]


CASES = {
    "gpt": (GPT_RIGHT, GPT_WRONG),
    "top_k_sample": (TOP_K_RIGHT, TOP_K_WRONG),
    "attend_with_cache": (ATTEND_RIGHT, ATTEND_WRONG),
    "windows": (WINDOWS_RIGHT, WINDOWS_WRONG),
}

NAMED_MISTAKES = [
    ("gpt", make_gpt(mask=None), "no causal mask"),
    ("gpt", make_gpt(order="post"), "post-LN order"),
    ("gpt", make_gpt(positions="end"), "positions are added after the blocks"),
    ("gpt", make_gpt(positions="none"), "no positions"),
    ("gpt", make_gpt(final_norm=False), "no final LayerNorm"),
    ("gpt", make_gpt(head="tied"), "tied to the token embedding"),
    ("gpt", make_gpt(residual=False), "a block without residuals"),
    ("gpt", make_gpt(mlp_reads="ln1 before"), "ln2 is unused"),
    ("gpt", make_gpt(mask="max_len", mask_buffer=True), "the causal mask is built for max_len"),
    ("top_k_sample", make_sample(scale="multiply"), "the temperature is applied the wrong way"),
    ("top_k_sample", make_sample(keep="smallest"), "keeps the k smallest"),
    ("top_k_sample", make_sample(extra=1), "one token too many"),
    ("top_k_sample", make_sample(extra=-1), "one token too few"),
    ("top_k_sample", make_sample(generator_mode="global"), "ignores the generator"),
    ("top_k_sample", make_sample(keep="all"), "samples from every token"),
    ("top_k_sample", make_sample(softmax_dim=0), "softmax over the batch axis"),
    ("top_k_sample", make_sample(keepdim=True), "without the sample axis"),
    ("top_k_sample", make_sample(probabilities=True), "a probability or score for every token"),
    ("attend_with_cache", make_attend(append="after"), "the new key is not in the cache"),
    ("attend_with_cache", make_attend(axis=1), "along the wrong axis"),
    ("attend_with_cache", make_attend(append="front"), "the new key goes at the end"),
    ("attend_with_cache", make_attend(scale="t"), "divided by √t"),
    ("attend_with_cache", make_attend(scale="d_model"), "divided by √d_model"),
    ("attend_with_cache", make_attend(scale="none"), "not divided by √d_head"),
    ("attend_with_cache", make_attend(softmax_dim=-2), "softmax over the query axis"),
    ("attend_with_cache", make_attend(values_from_keys=True), "the weights average the keys"),
    ("attend_with_cache", make_attend(old_caches=True), "returns the caches unchanged"),
    ("windows", WINDOWS_WRONG[0][1], "one token short"),
    ("windows", WINDOWS_WRONG[1][1], "start one token late"),
    ("windows", WINDOWS_WRONG[2][1], "returns (context + 1, batch)"),
    ("windows", WINDOWS_WRONG[3][1], "every row is the same window"),
    ("windows", WINDOWS_WRONG[4][1], "returns floats"),
    ("windows", WINDOWS_WRONG[5][1], "changes its input `ids` in place"),
]

DELEGATING = {
    "gpt": [("course_lib's TransformerBlock as the block", GPTWithLibraryBlocks,
             "course_lib's TransformerBlock.forward")],
    "top_k_sample": [("course_lib itself", top_k_sample, "course_lib's top_k_sample")],
    "attend_with_cache": [
        ("F.scaled_dot_product_attention", attend_builtin, "F.scaled_dot_product_attention"),
        ("course_lib's attention", attend_course_lib, "course_lib's scaled_dot_product_attention"),
        ("course_lib itself", attend_with_cache, "course_lib's attend_with_cache")],
    "windows": [("course_lib itself", windows, "course_lib's windows")],
}
# Block may use course_lib's MultiHeadAttention and MLP, as the exercise says: no note.
HAND_BUILT = {"gpt": "by hand", "top_k_sample": "by hand", "attend_with_cache": "by hand",
              "windows": "arange and indexing"}

REPLAYABLE = ["attend_with_cache", "windows"]
