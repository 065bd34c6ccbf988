"""Every check must reject the mistakes learners really make, naming the mistake where it can, and
accept every valid way to write the answer (built-ins, einsum, loops, other formulations)."""

from __future__ import annotations

import dataclasses
import importlib
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import course_lib
from course_lib import checks
from course_lib.checks import registry
from course_lib.checks import (
    CheckResult, check_add_positions, check_attend, check_attention_weights, check_causal_mask,
    check_cross_entropy, check_embed_tokens, check_image_to_patches, check_is_permutation_equivariant,
    check_merge_heads, check_multi_head_attention, check_one_hot, check_position_similarity,
    check_scaled_dot_product_attention, check_sgd_step, check_sinusoidal_positions, check_softmax,
    check_split_heads, check_training_step,
)


# ---------------------------------------------------------------------------------------------------------------
# Learner code, right and wrong. Each wrong entry: (id, implementation, words its diagnosis must contain).
# ---------------------------------------------------------------------------------------------------------------

# Lesson 01 ------------------------------------------------------------------------------------------------------

def embed_loop(ids, table):
    rows = [table[i] for i in ids.reshape(-1).tolist()]
    return torch.stack(rows).reshape(*ids.shape, table.shape[1])


EMBED_RIGHT = [
    ("index", lambda ids, table: table[ids]),
    ("F.embedding", lambda ids, table: F.embedding(ids, table)),
    ("one-hot matmul", lambda ids, table: F.one_hot(ids, table.shape[0]).to(table.dtype) @ table),
    ("index_select", lambda ids, table: table.index_select(0, ids.reshape(-1)).reshape(*ids.shape, -1)),
    ("loop", embed_loop),
]
EMBED_WRONG = [
    ("off by one", lambda ids, table: table[ids - 1], "off by one"),
    ("fresh nn.Embedding", lambda ids, table: nn.Embedding(*table.shape)(ids), "new nn.Embedding"),
    (".long() rows", lambda ids, table: table[ids].long(), "returns integers"),
    ("one-hot only", lambda ids, table: F.one_hot(ids, table.shape[0]).float(), "one-hot vectors"),
    ("columns", lambda ids, table: table.T[ids], ("IndexError", "columns of the table")),
    ("summed features", lambda ids, table: table[ids].sum(-1), "the output has shape ("),
]

ONE_HOT_RIGHT = [
    ("F.one_hot", lambda ids, V: F.one_hot(ids, V).float()),
    ("eye rows", lambda ids, V: torch.eye(V)[ids]),
    ("comparison", lambda ids, V: (ids[..., None] == torch.arange(V)).float()),
    ("scatter", lambda ids, V: torch.zeros(*ids.shape, V).scatter_(-1, ids[..., None], 1.0)),
]
ONE_HOT_WRONG = [
    ("long dtype", lambda ids, V: F.one_hot(ids, V), "returns integers"),
    ("vocab axis first", lambda ids, V: F.one_hot(ids, V).float().permute(2, 0, 1), "vocabulary axis comes first"),
    ("vocab size from the data", lambda ids, V: F.one_hot(ids).float(), "shape"),
]


def patches_unfold(images, p):
    B, C = images.shape[:2]
    grid = images.unfold(2, p, p).unfold(3, p, p)  # (B, C, rows, cols, p, p)
    return grid.permute(0, 2, 3, 1, 4, 5).reshape(B, -1, C * p * p)


def patches_loop(images, p):
    B, C, H, W = images.shape
    out = [images[:, :, r:r + p, c:c + p].reshape(B, -1) for r in range(0, H, p) for c in range(0, W, p)]
    return torch.stack(out, dim=1)


PATCHES_RIGHT = [
    ("F.unfold", lambda images, p: F.unfold(images, p, stride=p).transpose(1, 2)),
    ("Tensor.unfold", patches_unfold),
    ("loop", patches_loop),
    ("course_lib", course_lib.image_to_patches),
]
PATCHES_WRONG = [
    ("channel last", lambda im, p: im.unfold(2, p, p).unfold(3, p, p).permute(0, 2, 3, 4, 5, 1)
     .reshape(im.shape[0], -1, im.shape[1] * p * p), "channel-last"),
    ("column major", lambda im, p: im.unfold(2, p, p).unfold(3, p, p).permute(0, 3, 2, 1, 4, 5)
     .reshape(im.shape[0], -1, im.shape[1] * p * p), "column by column"),
    ("reshape only", lambda im, p: im.reshape(im.shape[0], -1, im.shape[1] * p * p), "without permuting"),
    ("view after permute", lambda im, p: im.view(im.shape[0], im.shape[1], im.shape[2] // p, p, im.shape[3] // p, p)
     .permute(0, 2, 4, 1, 3, 5).view(im.shape[0], -1, im.shape[1] * p * p), ".reshape"),
    ("unfold not transposed", lambda im, p: F.unfold(im, p, stride=p), "swapped"),
]

# Lesson 02 ------------------------------------------------------------------------------------------------------


def _rows(logits):
    return torch.arange(logits.shape[0])


CE_RIGHT = [
    ("F.cross_entropy", lambda logits, t: F.cross_entropy(logits, t)),
    ("nll of log_softmax", lambda logits, t: F.nll_loss(logits.log_softmax(-1), t)),
    ("logsumexp", lambda logits, t: (logits.logsumexp(-1) - logits.gather(1, t[:, None]).squeeze(1)).mean()),
    ("one-hot", lambda logits, t: -(F.one_hot(t, logits.shape[1]) * logits.log_softmax(-1)).sum(-1).mean()),
    ("softmax then log", lambda logits, t: -logits.softmax(-1)[_rows(logits), t].log().mean()),
]
CE_WRONG = [
    ("no minus", lambda logits, t: logits.log_softmax(-1)[_rows(logits), t].mean(), "minus sign"),
    ("sum", lambda logits, t: -logits.log_softmax(-1)[_rows(logits), t].sum(), "summed"),
    ("no mean", lambda logits, t: -logits.log_softmax(-1)[_rows(logits), t], "one loss per example"),
    ("softmax over batch", lambda logits, t: -logits.log_softmax(0)[_rows(logits), t].mean(), "over the batch"),
    ("no log", lambda logits, t: -logits.softmax(-1)[_rows(logits), t].mean(), "log is missing"),
    ("log of logits", lambda logits, t: -logits.log()[_rows(logits), t].mean(), "raw logits"),
    ("all rows at all targets", lambda logits, t: -logits.log_softmax(-1)[:, t].mean(), "every row at every target"),
    (".item()", lambda logits, t: F.cross_entropy(logits, t).item(), "Python float"),
    ("new tensor", lambda logits, t: torch.tensor(F.cross_entropy(logits, t).item()), "cut off from autograd"),
]


def sgd_reference(params, lr):
    with torch.no_grad():
        for p in params:
            p -= lr * p.grad
            p.grad = None


def sgd_data(params, lr):
    for p in params:
        p.data -= lr * p.grad.data
        p.grad.zero_()


def sgd_torch_optimizer(params, lr):
    optimizer = torch.optim.SGD(params, lr=lr)
    optimizer.step()
    optimizer.zero_grad()


def sgd_rebind(params, lr):
    for p in params:
        p = p - lr * p.grad  # noqa: PLW2901 — the mistake under test
        p.grad = None


def sgd_ascent(params, lr):
    with torch.no_grad():
        for p in params:
            p += lr * p.grad
            p.grad = None


def sgd_no_lr(params, lr):
    with torch.no_grad():
        for p in params:
            p -= p.grad
            p.grad = None


def sgd_keeps_grads(params, lr):
    with torch.no_grad():
        for p in params:
            p -= lr * p.grad


def sgd_no_no_grad(params, lr):
    for p in params:
        p -= lr * p.grad


SGD_RIGHT = [("no_grad", sgd_reference), (".data", sgd_data), ("torch.optim.SGD", sgd_torch_optimizer)]
SGD_WRONG = [
    ("rebinding", sgd_rebind, "did not change"),
    ("ascent", sgd_ascent, "gradient ascent"),
    ("lr ignored", sgd_no_lr, "learning rate"),
    ("grads kept", sgd_keeps_grads, "not reset"),
    ("no torch.no_grad", sgd_no_no_grad, "torch.no_grad()"),
]


def step_right(model, loss_fn, optimizer, inputs, targets):
    optimizer.zero_grad()
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss.item()


def step_model_zero_grad(model, loss_fn, optimizer, inputs, targets):
    model.zero_grad(set_to_none=False)
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return float(loss)


def step_no_zero_grad(model, loss_fn, optimizer, inputs, targets):
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss.item()


def step_no_step(model, loss_fn, optimizer, inputs, targets):
    optimizer.zero_grad()
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    return loss.item()


def step_zero_grad_late(model, loss_fn, optimizer, inputs, targets):
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()


def step_returns_tensor(model, loss_fn, optimizer, inputs, targets):
    optimizer.zero_grad()
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss


def step_loss_after(model, loss_fn, optimizer, inputs, targets):
    optimizer.zero_grad()
    loss_fn(model(inputs), targets).backward()
    optimizer.step()
    with torch.no_grad():
        return loss_fn(model(inputs), targets).item()


STEP_RIGHT = [("zero_grad first", step_right), ("model.zero_grad, float()", step_model_zero_grad)]
STEP_WRONG = [
    ("no zero_grad", step_no_zero_grad, "zero_grad() before"),
    ("no step", step_no_step, "did not change"),
    ("zero_grad between backward and step", step_zero_grad_late, "did not change"),
    ("returns the tensor", step_returns_tensor, "returns a tensor"),
    ("loss after the step", step_loss_after, "after the update"),
]

# Lesson 03 ------------------------------------------------------------------------------------------------------


def softmax_stable(x):
    e = (x - x.max(dim=-1, keepdim=True).values).exp()
    return e / e.sum(dim=-1, keepdim=True)


SOFTMAX_RIGHT = [
    ("stable by hand", softmax_stable),
    ("logsumexp", lambda x: torch.exp(x - x.logsumexp(-1, keepdim=True))),
    ("F.softmax", lambda x: F.softmax(x, dim=-1)),
]
SOFTMAX_WRONG = [
    ("no max subtraction", lambda x: x.exp() / x.exp().sum(-1, keepdim=True), "overflows"),
    ("global max", lambda x: (x - x.max()).exp() / (x - x.max()).exp().sum(-1, keepdim=True), "each row's own"),
    ("sum of everything", lambda x: (x - x.max()).exp() / (x - x.max()).exp().sum(), "whole tensor"),
    ("dim 0", lambda x: torch.softmax(x, dim=0), "first axis"),
    ("no exp", lambda x: x / x.sum(-1, keepdim=True), "exp is missing"),
    ("no division", lambda x: x.exp(), "without dividing"),
]

WEIGHTS_RIGHT = [
    ("matmul", lambda q, k: torch.softmax(k @ q, dim=-1)),
    ("einsum", lambda q, k: F.softmax(torch.einsum("d,td->t", q, k), dim=0)),
    ("broadcast sum", lambda q, k: softmax_stable((k * q).sum(-1))),
]
WEIGHTS_WRONG = [
    ("no softmax", lambda q, k: k @ q, "softmax is missing"),
    ("scaled", lambda q, k: torch.softmax(k @ q / math.sqrt(q.shape[0]), dim=-1), "√d"),
    ("keys.T", lambda q, k: torch.softmax(k.T @ q, dim=-1), "keys.T"),
    ("divide by sum", lambda q, k: (k @ q) / (k @ q).sum(), "exp is missing"),
]

ATTEND_RIGHT = [
    ("matmul", lambda q, k, v: torch.softmax(k @ q, -1) @ v),
    ("weighted sum", lambda q, k, v: (torch.softmax(k @ q, -1)[:, None] * v).sum(0)),
    ("einsum", lambda q, k, v: torch.einsum("t,te->e", torch.softmax(torch.einsum("d,td->t", q, k), 0), v)),
    ("F.scaled_dot_product_attention, scale=1",
     lambda q, k, v: F.scaled_dot_product_attention(q[None], k, v, scale=1.0)[0]),
]
ATTEND_WRONG = [
    ("returns weights", lambda q, k, v: torch.softmax(k @ q, -1), "returns the weights"),
    ("averages keys", lambda q, k, v: torch.softmax(k @ q, -1) @ k, "averaged the keys"),
    ("plain mean", lambda q, k, v: v.mean(0), "plain average"),
    ("no sum", lambda q, k, v: torch.softmax(k @ q, -1)[:, None] * v, "without summing"),
    ("argmax", lambda q, k, v: v[(k @ q).argmax()], "best-scoring key"),
    ("scaled", lambda q, k, v: torch.softmax(k @ q / math.sqrt(q.shape[0]), -1) @ v, "√d"),
]

# Lesson 04 ------------------------------------------------------------------------------------------------------


def attention(q, k, v, mask=None, scale=None, softmax_dim=-1, mask_mode="before", swap=False):
    """Learner-style attention with one switchable mistake."""
    scores = q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale is None else scale)
    if mask is not None and mask_mode == "before":
        scores = scores.masked_fill(~mask, float("-inf"))
    if mask is not None and mask_mode == "inverted":
        scores = scores.masked_fill(mask, float("-inf"))
    if mask is not None and mask_mode == "zero":
        scores = scores.masked_fill(~mask, 0.0)
    weights = torch.softmax(scores, dim=softmax_dim)
    if mask is not None and mask_mode == "after":
        weights = weights * mask
    return (weights, weights @ v) if swap else (weights @ v, weights)


def sdpa_einsum(q, k, v, mask=None):
    scores = torch.einsum("...qd,...kd->...qk", q, k) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = torch.where(mask, scores, torch.tensor(float("-inf")))
    weights = scores.softmax(-1)
    return torch.einsum("...qk,...kd->...qd", weights, v), weights


def sdpa_builtin(q, k, v, mask=None):
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = q @ k.mT / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(mask.logical_not(), -1e9)  # a large negative number works as well as -inf
    return out, scores.softmax(-1)


def sdpa_in_place_scale(q, k, v, mask=None):
    q /= math.sqrt(q.shape[-1])
    return attention(q, k, v, mask, scale=1.0)


def sdpa_dot_T(q, k, v, mask=None):
    weights = torch.softmax(q @ k.T / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ v, weights


def sdpa_mask_multiplied(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores * mask
    weights = scores.softmax(-1)
    return weights @ v, weights


SDPA_RIGHT = [("by hand", attention), ("einsum + torch.where", sdpa_einsum),
              ("F.scaled_dot_product_attention", sdpa_builtin),
              ("course_lib", course_lib.scaled_dot_product_attention)]
SDPA_WRONG = [
    ("softmax over queries", lambda q, k, v, mask=None: attention(q, k, v, mask, softmax_dim=-2),
     "softmax over the queries instead of the keys"),
    ("unscaled", lambda q, k, v, mask=None: attention(q, k, v, mask, scale=1.0), "scores not divided by √d"),
    ("divided by d", lambda q, k, v, mask=None: attention(q, k, v, mask, scale=q.shape[-1]), "by d instead of √d"),
    ("divided by √d_v", lambda q, k, v, mask=None: attention(q, k, v, mask, scale=math.sqrt(v.shape[-1])), "√d_v"),
    ("mask after softmax", lambda q, k, v, mask=None: attention(q, k, v, mask, mask_mode="after"),
     "mask applied after softmax"),
    ("mask inverted", lambda q, k, v, mask=None: attention(q, k, v, mask, mask_mode="inverted"),
     "mask convention inverted"),
    ("mask filled with 0", lambda q, k, v, mask=None: attention(q, k, v, mask, mask_mode="zero"), "0 instead of -inf"),
    ("mask ignored", lambda q, k, v, mask=None: attention(q, k, v), "mask is ignored"),
    ("mask multiplied into the scores", sdpa_mask_multiplied, "0 instead of -inf"),
    ("(weights, output)", lambda q, k, v, mask=None: attention(q, k, v, mask, swap=True), "(weights, output)"),
    ("output only", lambda q, k, v, mask=None: attention(q, k, v, mask)[0], "return both"),
    ("weights transposed", lambda q, k, v, mask=None: (attention(q, k, v, mask)[0],
                                                         attention(q, k, v, mask)[1].transpose(-2, -1)),
     "weights transposed"),
    ("in-place scaling", sdpa_in_place_scale, "in place"),
    ("k.T on batches", sdpa_dot_T, ".transpose(-2, -1)"),
]

CAUSAL_RIGHT = [
    ("tril", lambda T: torch.ones(T, T, dtype=torch.bool).tril()),
    ("comparison", lambda T: torch.arange(T)[:, None] >= torch.arange(T)[None, :]),
    ("not triu(1)", lambda T: ~torch.ones(T, T, dtype=torch.bool).triu(1)),
    ("float tril to bool", lambda T: torch.tril(torch.ones(T, T)).bool()),
    ("course_lib", course_lib.causal_mask),
]
CAUSAL_WRONG = [
    ("True = blocked", lambda T: torch.ones(T, T, dtype=torch.bool).triu(1), "mask convention inverted"),
    ("upper triangle", lambda T: torch.ones(T, T, dtype=torch.bool).triu(), "upper triangle"),
    ("diagonal blocked", lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1), "diagonal is blocked"),
    ("float", lambda T: torch.ones(T, T).tril(), "bool tensor"),
    ("list", lambda T: torch.ones(T, T, dtype=torch.bool).tril().tolist(), "returned a list"),
]


def equivariant_inverse(f, x, perm):
    return torch.allclose(f(x[:, perm])[:, perm.argsort()], f(x), atol=1e-5)


EQUIVARIANT_RIGHT = [
    ("allclose", lambda f, x, perm: torch.allclose(f(x[:, perm]), f(x)[:, perm], atol=1e-5)),
    ("inverse permutation", equivariant_inverse),
    ("max difference, bool", lambda f, x, perm: bool((f(x[:, perm]) - f(x)[:, perm]).abs().max() < 1e-4)),
    ("max difference, 0-dim tensor", lambda f, x, perm: (f(x[:, perm]) - f(x)[:, perm]).abs().max() < 1e-4),
]
EQUIVARIANT_WRONG = [
    ("output not shuffled", lambda f, x, perm: torch.allclose(f(x[:, perm]), f(x), atol=1e-5), "shuffle the output"),
    ("exact equality", lambda f, x, perm: torch.equal(f(x[:, perm]), f(x)[:, perm]), "exactly"),
    ("opposite", lambda f, x, perm: not torch.allclose(f(x[:, perm]), f(x)[:, perm], atol=1e-5), "opposite"),
    ("batch axis", lambda f, x, perm: torch.allclose(f(x[perm]), f(x)[perm], atol=1e-5), "batch axis"),
    ("elementwise", lambda f, x, perm: torch.isclose(f(x[:, perm]), f(x)[:, perm]), "reduce the comparison"),
]

# Lesson 05 ------------------------------------------------------------------------------------------------------

SPLIT_RIGHT = [
    ("view + transpose", lambda x, h: x.view(x.shape[0], x.shape[1], h, -1).transpose(1, 2)),
    ("reshape + permute", lambda x, h: x.reshape(x.shape[0], x.shape[1], h, -1).permute(0, 2, 1, 3)),
    ("chunk + stack", lambda x, h: torch.stack(x.chunk(h, dim=-1), dim=1)),
    ("unflatten", lambda x, h: x.unflatten(-1, (h, x.shape[-1] // h)).transpose(1, 2)),
    ("course_lib", course_lib.split_heads),
]
SPLIT_WRONG = [
    ("view straight to (B, H, T, d_head)", lambda x, h: x.reshape(x.shape[0], h, x.shape[1], -1),
     "heads split with view but no transpose"),
    ("view without transpose", lambda x, h: x.reshape(x.shape[0], x.shape[1], h, -1),
     "heads split with view but no transpose"),
    ("interleaved", lambda x, h: x.reshape(x.shape[0], x.shape[1], -1, h).permute(0, 3, 1, 2), "interleaved"),
    ("last axes swapped", lambda x, h: x.reshape(x.shape[0], x.shape[1], h, -1).permute(0, 2, 3, 1), "last two axes"),
]

MERGE_RIGHT = [
    ("transpose + reshape", lambda x: x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)),
    ("contiguous + view", lambda x: x.transpose(1, 2).contiguous().view(x.shape[0], x.shape[2], -1)),
    ("cat", lambda x: torch.cat(x.unbind(1), dim=-1)),
    ("flatten", lambda x: x.transpose(1, 2).flatten(2)),
    ("course_lib", course_lib.merge_heads),
]
MERGE_WRONG = [
    ("no transpose", lambda x: x.reshape(x.shape[0], x.shape[2], -1), "no transpose"),
    ("view after transpose", lambda x: x.transpose(1, 2).view(x.shape[0], x.shape[2], -1), ".reshape"),
    ("interleaved", lambda x: x.permute(0, 2, 3, 1).reshape(x.shape[0], x.shape[2], -1), "interleaved"),
]


def make_mha(scale="d_head", split_transpose=True, merge_transpose=True, use_out_proj=True, mask_mode="before",
             softmax_dim=-1, average_weights=False, per_head_loop=False, builtin=False, values_from_keys=False):
    """A learner's MultiHeadAttention; the defaults are right, each argument is one mistake."""

    class LearnerMultiHeadAttention(nn.Module):
        def __init__(self, d_model, n_heads):
            super().__init__()
            self.n_heads, self.d_head = n_heads, d_model // n_heads
            self.q_proj = nn.Linear(d_model, d_model)
            self.k_proj = nn.Linear(d_model, d_model)
            self.v_proj = nn.Linear(d_model, d_model)
            self.out_proj = nn.Linear(d_model, d_model)

        def split(self, t):
            B, T, D = t.shape
            if split_transpose:
                return t.view(B, T, self.n_heads, self.d_head).transpose(1, 2)
            return t.view(B, self.n_heads, T, self.d_head)

        def forward(self, x, mask=None):
            B, T, D = x.shape
            q, k, v = self.split(self.q_proj(x)), self.split(self.k_proj(x)), self.split(self.v_proj(x))
            v = k if values_from_keys else v
            if per_head_loop:
                outs, weights = [], []
                for h in range(self.n_heads):
                    o, w = course_lib.scaled_dot_product_attention(q[:, h], k[:, h], v[:, h], mask)
                    outs.append(o)
                    weights.append(w)
                heads, weights = torch.stack(outs, 1), torch.stack(weights, 1)
            elif builtin:
                heads = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                weights = course_lib.scaled_dot_product_attention(q, k, v, mask)[1]
            else:
                divisor = {"d_head": math.sqrt(self.d_head), "d_model": math.sqrt(D), "none": 1.0}[scale]
                heads, weights = attention(q, k, v, mask, scale=divisor, softmax_dim=softmax_dim,
                                           mask_mode=mask_mode)
            merged = heads.transpose(1, 2).reshape(B, T, D) if merge_transpose else heads.reshape(B, T, D)
            out = self.out_proj(merged) if use_out_proj else merged
            return out, (weights.mean(1) if average_weights else weights)

    return LearnerMultiHeadAttention


class FusedQKV(nn.Module):
    """One Linear for q, k and v together: a valid design, but not the interface the exercise asks for."""

    def __init__(self, d_model, n_heads):
        super().__init__()
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(self, x, mask=None):
        raise AssertionError("never reached")


class NoBias(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self, name, nn.Linear(d_model, d_model, bias=False))


MHA_RIGHT = [
    ("by hand", make_mha()),
    ("one head at a time", make_mha(per_head_loop=True)),
    ("F.scaled_dot_product_attention", make_mha(builtin=True)),
    ("course_lib", course_lib.MultiHeadAttention),
]
MHA_WRONG = [
    ("unscaled", make_mha(scale="none"), "scores not divided by √d"),
    ("√d_model", make_mha(scale="d_model"), "√d_model instead of √d_head"),
    ("split without transpose", make_mha(split_transpose=False), "heads split with view but no transpose"),
    ("merge without transpose", make_mha(merge_transpose=False), "merged without transposing back"),
    ("no out_proj", make_mha(use_out_proj=False), "out_proj is not applied"),
    ("mask inverted", make_mha(mask_mode="inverted"), "mask convention inverted"),
    ("mask after softmax", make_mha(mask_mode="after"), "mask applied after softmax"),
    ("softmax over queries", make_mha(softmax_dim=-2), "softmax over the queries instead of the keys"),
    ("weights averaged over heads", make_mha(average_weights=True), "averaged over the heads"),
    ("weights @ keys", make_mha(values_from_keys=True), "the weights average the keys (weights @ k)"),
    ("fused qkv layer", FusedQKV, "needs self.q_proj"),
    ("no bias", NoBias, "self.q_proj has no bias: use nn.Linear(d_model, d_model) with its bias"),
    ("an instance", course_lib.MultiHeadAttention(8, 2), "pass the class itself"),
]

# Lesson 06 ------------------------------------------------------------------------------------------------------


def sinusoidal_exp_log(T, d):
    position = torch.arange(T).unsqueeze(1).float()
    div_term = torch.exp(torch.arange(0, d, 2).float() * (-math.log(10000.0) / d))
    pe = torch.zeros(T, d)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


def sinusoidal_loop(T, d):
    pe = torch.zeros(T, d)
    for t in range(T):
        for i in range(0, d, 2):
            pe[t, i] = math.sin(t / 10000 ** (i / d))
            pe[t, i + 1] = math.cos(t / 10000 ** (i / d))
    return pe


def sinusoidal_stack(T, d):
    angle = torch.arange(T)[:, None] / 10000 ** (torch.arange(0, d, 2) / d)
    return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1).float()


def sinusoidal_mistake(T, d, swap=False, concat=False, exponent="2i/d", start=0, multiply=False, dtype=torch.float32):
    t = torch.arange(start, start + T, dtype=torch.float64)[:, None]
    i = torch.arange(0, d, 2, dtype=torch.float64)  # the even feature indices 2i
    power = (i / 2) / d if exponent == "i/d" else i / d
    angle = t * (10000 ** power if multiply else 10000 ** -power)
    sin, cos = angle.sin(), angle.cos()
    if exponent == "own index":
        cos = (t * 10000 ** -((i + 1) / d)).cos()
    if swap:
        sin, cos = cos, sin
    if concat:
        return torch.cat([sin, cos], dim=-1).to(dtype)
    pe = torch.zeros(T, d, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = sin, cos
    return pe.to(dtype)


SINUSOIDAL_RIGHT = [("exp/log", sinusoidal_exp_log), ("loop", sinusoidal_loop), ("stack", sinusoidal_stack),
                    ("course_lib", course_lib.sinusoidal_positions)]
SINUSOIDAL_WRONG = [
    ("sin and cos swapped", lambda T, d: sinusoidal_mistake(T, d, swap=True), "sin and cos swapped"),
    ("halves", lambda T, d: sinusoidal_mistake(T, d, concat=True), "first half"),
    ("i/d", lambda T, d: sinusoidal_mistake(T, d, exponent="i/d"), "exponent is i/d"),
    ("odd index in the exponent", lambda T, d: sinusoidal_mistake(T, d, exponent="own index"), "own (odd) index"),
    ("positions from 1", lambda T, d: sinusoidal_mistake(T, d, start=1), "count from 1"),
    ("multiplied", lambda T, d: sinusoidal_mistake(T, d, multiply=True), "instead of dividing"),
    ("float64", lambda T, d: sinusoidal_mistake(T, d, dtype=torch.float64), "dtype torch.float64"),
]


def add_in_place(x, table):
    x += table[: x.shape[1]]
    return x


ADD_RIGHT = [
    ("slice", lambda x, table: x + table[: x.shape[1]]),
    ("explicit batch axis", lambda x, table: x + table[None, : x.shape[1], :]),
    ("narrow", lambda x, table: torch.add(x, table.narrow(0, 0, x.shape[1]))),
]
ADD_WRONG = [
    ("in place", add_in_place, "in place"),
    ("concatenated", lambda x, table: torch.cat([x, table[: x.shape[1]].expand_as(x)], -1), "concatenates"),
    ("first row", lambda x, table: x + table[0], "first row"),
    ("last rows", lambda x, table: x + table[-x.shape[1]:], "last T rows"),
    ("multiplied", lambda x, table: x * table[: x.shape[1]], "multiplies"),
    ("whole table", lambda x, table: x + table, "raised RuntimeError"),
]


def cosine_by_hand(p):
    unit = p / p.norm(dim=-1, keepdim=True)
    return unit @ unit.T


SIMILARITY_RIGHT = [
    ("by hand", cosine_by_hand),
    ("F.cosine_similarity", lambda p: F.cosine_similarity(p[:, None], p[None, :], dim=-1)),
    ("einsum", lambda p: torch.einsum("id,jd->ij", F.normalize(p, dim=-1), F.normalize(p, dim=-1))),
]
SIMILARITY_WRONG = [
    ("dot products", lambda p: p @ p.T, "dot products, not cosines"),
    ("columns", lambda p: F.normalize(p, dim=0) @ F.normalize(p, dim=0).T, "columns"),
    ("distances", lambda p: torch.cdist(p, p), "distances"),
]

# ---------------------------------------------------------------------------------------------------------------

# Exercise name -> (right answers, wrong answers). The parametrisation below follows the registry.
CASES = {
    "embed_tokens": (EMBED_RIGHT, EMBED_WRONG),
    "one_hot": (ONE_HOT_RIGHT, ONE_HOT_WRONG),
    "image_to_patches": (PATCHES_RIGHT, PATCHES_WRONG),
    "cross_entropy": (CE_RIGHT, CE_WRONG),
    "sgd_step": (SGD_RIGHT, SGD_WRONG),
    "training_step": (STEP_RIGHT, STEP_WRONG),
    "softmax": (SOFTMAX_RIGHT, SOFTMAX_WRONG),
    "attention_weights": (WEIGHTS_RIGHT, WEIGHTS_WRONG),
    "attend": (ATTEND_RIGHT, ATTEND_WRONG),
    "causal_mask": (CAUSAL_RIGHT, CAUSAL_WRONG),
    "scaled_dot_product_attention": (SDPA_RIGHT, SDPA_WRONG),
    "is_permutation_equivariant": (EQUIVARIANT_RIGHT, EQUIVARIANT_WRONG),
    "split_heads": (SPLIT_RIGHT, SPLIT_WRONG),
    "merge_heads": (MERGE_RIGHT, MERGE_WRONG),
    "multi_head_attention": (MHA_RIGHT, MHA_WRONG),
    "sinusoidal_positions": (SINUSOIDAL_RIGHT, SINUSOIDAL_WRONG),
    "add_positions": (ADD_RIGHT, ADD_WRONG),
    "position_similarity": (SIMILARITY_RIGHT, SIMILARITY_WRONG),
}
# Lessons 07 on keep their cases in tests/check_cases_<lesson>.py: CASES like the above, and NAMED_MISTAKES,
# (exercise name, implementation, words its diagnosis must contain) for the classic mistakes.
LESSON_CASE_MODULES = [importlib.import_module(path.stem)
                       for path in sorted(Path(__file__).parent.glob("check_cases_*.py"))]
for module in LESSON_CASE_MODULES:
    CASES.update(module.CASES)
NAMES = [name for names in checks.EXERCISES.values() for name in names]  # from the registry, lesson order
ALL_CHECKS = [registry.get(name).check for name in NAMES]


def _params(kind):
    out = []
    for name in NAMES:
        check = registry.get(name).check
        right, wrong = CASES.get(name, ((), ()))
        for case in (right if kind == "right" else wrong):
            out.append(pytest.param(check, *case, id=f"{name}-{case[0]}"))
    return out


def test_every_exercise_has_a_check_with_cases():
    assert sorted(NAMES) == sorted(CASES)
    assert all(len(names) >= 3 for names in checks.EXERCISES.values())
    for name, (right, wrong) in CASES.items():
        assert len(right) >= 2 and len(wrong) >= 3, name


@pytest.mark.parametrize("check, label, implementation", _params("right"))
def test_check_accepts_valid_implementation(check, label, implementation):
    result = check(implementation)
    assert result.passed, repr(result)
    assert repr(result).startswith(f"✓ {check.exercise}: ")


@pytest.mark.parametrize("check, label, implementation, diagnosis", _params("wrong"))
def test_check_rejects_mistake_with_diagnosis(check, label, implementation, diagnosis):
    result = check(implementation)
    assert not result.passed and result.implemented, repr(result)
    alternatives = diagnosis if isinstance(diagnosis, tuple) else (diagnosis,)
    assert any(words in result.message for words in alternatives), repr(result)
    assert "the check itself failed" not in result.message
    line = repr(result)
    assert line.startswith(f"✗ {check.exercise}: ") and "\n" not in line


# The named mistakes of the course's issue, each diagnosed by name.
@pytest.mark.parametrize("check, implementation, name", [
    (check_scaled_dot_product_attention, SDPA_WRONG[0][1], "softmax over the queries instead of the keys"),
    (check_scaled_dot_product_attention, SDPA_WRONG[1][1], "scores not divided by √d"),
    (check_scaled_dot_product_attention, SDPA_WRONG[4][1], "mask applied after softmax"),
    (check_scaled_dot_product_attention, SDPA_WRONG[5][1], "mask convention inverted"),
    (check_split_heads, SPLIT_WRONG[0][1], "heads split with view but no transpose"),
    (check_sinusoidal_positions, SINUSOIDAL_WRONG[0][1], "sin and cos swapped"),
])
def test_named_classic_mistakes(check, implementation, name):
    assert name in check(implementation).message


@pytest.mark.parametrize("exercise, implementation, name", [
    pytest.param(*case, id=f"{case[0]}-{case[2]}") for module in LESSON_CASE_MODULES for case in module.NAMED_MISTAKES])
def test_named_classic_mistakes_of_later_lessons(exercise, implementation, name):
    result = registry.get(exercise).check(implementation)
    assert not result.passed and name in result.message, repr(result)


# The diagnoses hold on random sizes: two more seeds (the tests above use seed 0), each mistake still named.
@pytest.mark.parametrize("seed", range(1, 3))
def test_diagnoses_hold_on_random_sizes(seed):
    for name in NAMES:
        check = registry.get(name).check
        for label, implementation, diagnosis in CASES[name][1]:
            result = check(implementation, seed=seed)
            alternatives = diagnosis if isinstance(diagnosis, tuple) else (diagnosis,)
            assert any(words in result.message for words in alternatives), (seed, label, repr(result))
        for label, implementation in CASES[name][0]:
            assert check(implementation, seed=seed).passed, (seed, label)


def _not_implemented(*args):
    raise NotImplementedError("Hint: this is the exercise")


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.exercise)
def test_unimplemented_exercise_reads_not_implemented_yet(check):
    if check is check_multi_head_attention:
        class Unfinished(nn.Module):
            def __init__(self, d_model, n_heads):
                super().__init__()
                raise NotImplementedError("Hint: four nn.Linear layers")
        result = check(Unfinished)
    else:
        result = check(_not_implemented)
    assert not result.passed and not result.implemented
    assert repr(result) == f"✗ {check.exercise}: not implemented yet (replace the `raise NotImplementedError` " \
                           f"line with your code)"


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.exercise)
def test_check_never_raises_and_explains(check):
    def raises_value_error(*args):
        raise ValueError("something is off")

    def returns_none(*args):
        return None

    def returns_text(*args):
        return "attention"

    # sgd_step rightly returns None: doing nothing at all is its mistake.
    none_words = "did not change" if check is check_sgd_step else "None"
    for implementation, words in ((raises_value_error, "ValueError"), (returns_none, none_words),
                                  (returns_text, "str"), (42, "expected your function")):
        result = check(implementation)
        assert isinstance(result, CheckResult) and not result.passed
        assert words in result.message, repr(result)


def test_nan_output_is_reported():
    result = check_softmax(lambda x: torch.full_like(x, float("nan")))
    assert not result.passed and "NaN" in result.message


def test_inf_output_is_reported():
    result = check_add_positions(lambda x, table: x + table[: x.shape[1]] + float("inf"))
    assert not result.passed and "contains inf" in result.message


def test_wrong_dtype_is_reported():
    result = check_softmax(lambda x: x.softmax(-1).double())
    assert not result.passed and "dtype torch.float64" in result.message


def test_wrong_shape_is_reported():
    result = check_attend(lambda q, k, v: (torch.softmax(k @ q, -1) @ v)[None])
    assert not result.passed
    assert re.search(r"shape \(1, (\d+)\) .*expected \(\1,\)", result.message), repr(result)


def test_unrecognised_mistake_shows_expected_and_got():
    result = check_embed_tokens(lambda ids, table: table[ids] + torch.arange(ids.shape[1])[:, None])
    assert not result.passed
    assert "expected [" in result.message and "got [" in result.message and "values differ" in result.message


def test_modified_input_is_reported_by_name():
    def softmax_in_place(scores):
        scores -= scores.max(-1, keepdim=True).values
        return scores.exp() / scores.exp().sum(-1, keepdim=True)

    result = check_softmax(softmax_in_place)
    assert not result.passed and "changes its input `scores` in place" in result.message


def test_a_bug_in_the_check_itself_is_contained(monkeypatch):
    monkeypatch.setattr("course_lib.checks.lesson06_positions.sinusoidal_positions", None)
    result = check_sinusoidal_positions(sinusoidal_exp_log)
    assert not result.passed and "the check itself failed" in result.message


def test_checks_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check_multi_head_attention(course_lib.MultiHeadAttention)
    check_training_step(step_right)
    assert torch.equal(torch.rand(3), expected)


# Speed is the benchmark's business (`python -m course_lib bench` calls checks.time_checks()), not a test's.
@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.exercise)
def test_check_is_deterministic_for_a_seed_and_its_success_line_is_stable(check):
    right = CASES[check.exercise][0][0][1]
    # Fresh inputs on every call, but the success line never changes: notebooks store it (strict nbval).
    assert repr(check(right)) == repr(check(right)) == repr(check(right, seed=7))
    wrong = CASES[check.exercise][1][0][1]
    assert repr(check(wrong, seed=11)) == repr(check(wrong, seed=11))
    assert repr(check(wrong, seed=11)).endswith("; seed 11")


def test_time_checks_times_every_exercise_on_a_right_answer():
    seconds = checks.time_checks()
    assert list(seconds) == [name for names in checks.EXERCISES.values() for name in names]
    assert all(isinstance(s, float) and s >= 0 for s in seconds.values())


@pytest.mark.parametrize("name", NAMES)
def test_reference_solutions_pass(name):
    entry = registry.get(name)
    result = entry.check(entry.reference)
    assert result.passed, repr(result)


def test_time_checks_refuses_to_time_a_failing_run(monkeypatch):
    wrong = dataclasses.replace(registry.get("softmax"), reference=lambda x: x.exp())
    monkeypatch.setitem(registry.REGISTRY, "softmax", wrong)
    with pytest.raises(RuntimeError, match="check_softmax rejects a right answer"):
        checks.time_checks()


def test_result_displays_as_one_line():
    result = check_causal_mask(course_lib.causal_mask)
    assert str(result) == repr(result) == f"✓ causal_mask: {result.message}"
    assert "\n" not in repr(result) and bool(result) is True
    assert bool(check_causal_mask(CAUSAL_WRONG[0][1])) is False


# --- NotImplementedError that is not this exercise's own `raise NotImplementedError` -----------------------------

@pytest.mark.parametrize("check, implementation, pytorch", [
    (check_softmax, lambda x: torch.softmax(x.long(), dim=-1), "not implemented for 'Long'"),
    (check_cross_entropy, lambda logits, t: F.cross_entropy(t, logits), "not implemented for 'Long'"),
    (check_attention_weights, lambda q, k: torch.softmax((k @ q) > 0, dim=-1), "not implemented for 'Bool'"),
    (check_position_similarity, lambda p: F.normalize(p.long(), dim=-1), "Got Long"),
])
def test_integer_tensor_where_a_float_is_needed(check, implementation, pytorch):
    result = check(implementation)
    assert not result.passed and result.implemented, repr(result)
    assert "uses an integer (or bool) tensor where a float is needed" in result.message, repr(result)
    assert "(PyTorch: " in result.message and pytorch in result.message
    assert "not implemented yet" not in result.message


def unfinished_attention_weights(query, keys):
    raise NotImplementedError("Hint: softmax(keys @ query)")


def attend_calling_unfinished(query, keys, values):
    return unfinished_attention_weights(query, keys) @ values


def unfinished_split_heads(x, n_heads):
    raise NotImplementedError("Hint: view, then transpose")


class MultiHeadAttentionCallingUnfinished(course_lib.MultiHeadAttention):
    def forward(self, x, mask=None):
        q = unfinished_split_heads(self.q_proj(x), self.n_heads)
        return q, q


class MultiHeadAttentionWithUnfinishedHelper(course_lib.MultiHeadAttention):
    def split(self, t):
        raise NotImplementedError("Hint: your own helper")

    def forward(self, x, mask=None):
        return self.split(x), None


class MultiHeadAttentionWithoutForward(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self, name, nn.Linear(d_model, d_model))


def test_a_finished_function_calling_an_unfinished_exercise_names_it():
    result = check_attend(attend_calling_unfinished)
    assert repr(result) == ("✗ attend: calls `unfinished_attention_weights`, which is not implemented yet: "
                            "finish that exercise first")
    assert result.implemented
    result = check_multi_head_attention(MultiHeadAttentionCallingUnfinished)
    assert repr(result) == ("✗ multi_head_attention: calls `unfinished_split_heads`, which is not implemented "
                            "yet: finish that exercise first")


def test_unfinished_parts_of_the_exercise_itself_read_not_implemented_yet():
    result = check_multi_head_attention(MultiHeadAttentionWithUnfinishedHelper)
    assert not result.implemented and "not implemented yet (replace" in result.message, repr(result)
    assert not check_attention_weights(unfinished_attention_weights).implemented


def test_a_module_without_forward_is_told_to_define_it():
    result = check_multi_head_attention(MultiHeadAttentionWithoutForward)
    assert not result.passed and "has no forward method" in result.message, repr(result)


# --- messages that read well ---------------------------------------------------------------------------------------

def test_a_wrong_scalar_shows_expected_and_got_once():
    result = check_cross_entropy(lambda logits, t: 1.5 * F.cross_entropy(logits, t))
    assert re.match(r"the loss is wrong \(batch \d+, \d+ classes\): expected \d+\.\d+, got", result.message)
    assert ": ;" not in result.message and result.message.count("expected") == 1, repr(result)


def test_none_as_the_weights_asks_for_the_weights():
    def output_only(q, k, v, mask=None):
        return course_lib.scaled_dot_product_attention(q, k, v, mask)[0], None

    result = check_scaled_dot_product_attention(output_only)
    assert "returns the weights as None" in result.message and "return the weights too" in result.message
    assert "forget `return`" not in result.message


def test_if_mask_is_told_to_compare_with_none():
    def if_mask(q, k, v, mask=None):
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if mask:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(-1)
        return weights @ v, weights

    result = check_scaled_dot_product_attention(if_mask)
    assert not result.passed and "use `if mask is not None:`" in result.message, repr(result)
    assert "ambiguous" not in result.message


@pytest.mark.parametrize("implementation, words", [
    (lambda q, k: torch.softmax(k @ q, -1) + 0.1, "the weights are wrong"),
    (lambda q, k: torch.softmax(k @ q, -1).double(), "the weights have dtype torch.float64"),
    (lambda q, k: torch.full((k.shape[0],), float("nan")), "the weights contain NaN"),
    (lambda q, k: torch.softmax(k @ q, -1)[None], "the weights have shape"),
])
def test_verbs_agree_with_plural_names(implementation, words):
    assert words in check_attention_weights(implementation).message


def test_verbs_agree_with_singular_names():
    assert "the loss has dtype torch.float64" in check_cross_entropy(
        lambda logits, t: F.cross_entropy(logits.double(), t)).message
    assert "the output contains NaN" in check_softmax(lambda x: torch.full_like(x, float("nan"))).message


class LinearWithExtraState(nn.Linear):
    def __init__(self, *args):
        super().__init__(*args)
        self.register_buffer("scale", torch.ones(1))


class MultiHeadAttentionWithExtraState(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self, name, LinearWithExtraState(d_model, d_model))


def test_a_weight_loading_error_keeps_its_detail():
    result = check_multi_head_attention(MultiHeadAttentionWithExtraState)
    assert "could not load weights into self.q_proj" in result.message, repr(result)
    assert 'Missing key(s) in state_dict: "scale"' in result.message and "\n" not in repr(result)


# --- the registry: one declaration per exercise -------------------------------------------------------------------

def test_registry_entries_carry_name_lesson_check_and_reference():
    for lesson, names in checks.EXERCISES.items():
        for name in names:
            entry = registry.get(name)
            assert (entry.name, entry.lesson) == (name, lesson)
            assert entry.check.exercise == name and callable(entry.reference)
            assert getattr(checks, f"check_{name}") is entry.check and f"check_{name}" in checks.__all__
    assert registry.get("check_softmax") is registry.get("softmax")
    with pytest.raises(KeyError, match="no exercise 'nope'"):
        registry.get("nope")


def test_a_check_declared_anywhere_shows_up_in_exercises_without_other_edits():
    def fake_reference(x):
        return x + 1

    try:
        @checks.check("fake_exercise", lesson="99_fake_lesson", reference=fake_reference)
        def check_fake_exercise(candidate):
            got = candidate(torch.ones(2))
            if not torch.equal(got, torch.full((2,), 2.0)):
                raise Exception("wrong")
            return "adds one"

        assert checks.EXERCISES["99_fake_lesson"] == ("fake_exercise",)
        assert list(checks.EXERCISES)[-1] == "99_fake_lesson"
        assert checks.check_fake_exercise is check_fake_exercise
        assert registry.references()["fake_exercise"] is fake_reference
        assert "fake_exercise" in checks.time_checks()
    finally:
        registry.unregister("fake_exercise")
    assert "99_fake_lesson" not in checks.EXERCISES


def test_a_new_lesson_module_is_discovered_without_editing_the_package(tmp_path, monkeypatch):
    package = tmp_path / "more_lessons"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "lesson_07.py").write_text(
        "from course_lib.checks import check\n\n"
        "def _double(x):\n    return 2 * x\n\n"
        "@check('double', lesson='07_doubling', reference=_double)\n"
        "def check_double(candidate):\n    return 'doubles'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    import sys
    try:
        assert registry.discover(importlib.import_module("more_lessons")) == ["lesson_07"]
        assert checks.EXERCISES["07_doubling"] == ("double",)
        assert checks.check_double(lambda x: x).passed
    finally:
        registry.unregister("double")
        for name in ("more_lessons", "more_lessons.lesson_07"):
            sys.modules.pop(name, None)


def test_the_package_lists_no_lesson_by_hand():
    import inspect
    source = inspect.getsource(checks)
    for module in ("inputs", "learning", "attention_by_hand", "self_attention", "multi_head", "positions"):
        assert f".{module}" not in source
    assert not hasattr(checks, "REFERENCE_SOLUTIONS")


def test_no_private_name_is_imported_across_modules():
    import ast
    import pathlib
    for path in pathlib.Path(checks.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                private = [alias.name for alias in node.names if alias.name.startswith("_")
                           and alias.name != "__future__"]
                assert not private, f"{path.name} imports {private} from {node.module}"
    from course_lib.checks._core import unpack_pair  # the shared helper is public now
    assert callable(unpack_pair)


# --- sgd_step and training_step: the objects that must change, not the container ---------------------------------

def sgd_rebinds_list_entries(params, lr):
    for i in range(len(params)):
        params[i] = params[i] - lr * params[i].grad


def sgd_clears_the_list(params, lr):
    params.clear()


def sgd_rebinds_then_resets(params, lr):
    with torch.no_grad():
        for i in range(len(params)):
            params[i] = (params[i] - lr * params[i].grad).requires_grad_()


@pytest.mark.parametrize("implementation, words", [
    (sgd_rebinds_list_entries, "replaces params[0] with a new tensor"),
    (sgd_rebinds_then_resets, "replaces params[0] with a new tensor"),
    (sgd_clears_the_list, "changes the list `params` itself"),
])
def test_sgd_step_is_judged_on_the_tensors_not_the_list(implementation, words):
    result = check_sgd_step(implementation)
    assert not result.passed and words in result.message, repr(result)


def step_replacing_parameters(model, loss_fn, optimizer, inputs, targets):
    loss = loss_fn(model(inputs), targets)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    reference = [p.detach().clone() for p in model.parameters()]
    optimizer.zero_grad()
    for p, g in zip(model.parameters(), grads):
        p.grad = g
    optimizer.step()
    new = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p, old in zip(model.parameters(), reference):
            p.copy_(old)
    for (name, module), in [(list(model.named_modules())[-1:])]:
        pass
    for module in model.modules():
        for pname, p in list(module.named_parameters(recurse=False)):
            setattr(module, pname, nn.Parameter(new.pop(0)))
    return loss.item()


def test_training_step_is_judged_on_the_optimizers_tensors():
    result = check_training_step(step_replacing_parameters)
    assert not result.passed and "replaces the model's parameters with new tensors" in result.message, repr(result)


# --- fresh inputs on every call: a recording cannot pass ----------------------------------------------------------

def _key(value):
    if isinstance(value, torch.Tensor):
        return (tuple(value.shape), tuple(value.detach().reshape(-1).tolist()))
    return value


def _shape(value):
    return tuple(value.shape) if isinstance(value, torch.Tensor) else value


class Replay:
    """A cheat: record the right outputs once, then answer by looking the input up (exactly, or by shape)."""

    def __init__(self, reference):
        self.reference, self.by_input, self.by_shape, self.recording = reference, {}, {}, True

    def __call__(self, *args):
        key, shape = tuple(map(_key, args)), tuple(map(_shape, args))
        if self.recording:
            out = self.reference(*args)
            self.by_input[key] = out
            self.by_shape.setdefault(shape, out)
            return out
        if key in self.by_input:
            return self.by_input[key]
        if shape in self.by_shape:
            return self.by_shape[shape]
        return next(iter(self.by_input.values()))


REPLAYABLE = ["embed_tokens", "one_hot", "image_to_patches", "cross_entropy", "softmax", "attention_weights",
              "attend", "causal_mask", "scaled_dot_product_attention", "split_heads", "merge_heads",
              "sinusoidal_positions", "add_positions", "position_similarity"]


@pytest.mark.parametrize("name", REPLAYABLE)
def test_replaying_recorded_outputs_fails_the_next_call(name):
    entry = registry.get(name)
    cheat = Replay(entry.reference)
    assert entry.check(cheat, seed=1).passed
    cheat.recording = False
    if name != "cross_entropy":  # a replayed loss is cut off from the new logits: it never passes
        assert entry.check(cheat, seed=1).passed  # what fixed inputs allowed
    result = entry.check(cheat, seed=2)
    assert not result.passed and "seed 2" in result.message, repr(result)


def test_a_fixed_sequence_of_answers_fails_the_equivariance_check():
    truths = {"self-attention": True, "with a causal mask": False, "with positions added": False,
              "a per-token MLP": True, "the mean over time": True, "a running sum": False,
              "the sum over time, added in order": True}
    answers = iter(truths.values())

    def in_the_usual_order(f, x, perm):
        return next(answers)

    assert not check_is_permutation_equivariant(in_the_usual_order, seed=3).passed


def test_failures_name_sizes_and_seed_and_the_seed_repeats_them():
    result = check_softmax(lambda x: torch.softmax(x, dim=0), seed=4321)
    assert re.search(r"\(a \(\d+, \d+\) matrix, one softmax per row\); seed 4321$", result.message), repr(result)
    assert repr(check_softmax(lambda x: torch.softmax(x, dim=0), seed=4321)) == repr(result)


@pytest.mark.parametrize("name", ["softmax", "causal_mask", "sinusoidal_positions", "scaled_dot_product_attention"])
def test_inputs_change_between_calls(name):
    entry = registry.get(name)
    seen = []

    def spy(*args):
        seen.append(tuple(_key(a) for a in args))
        return entry.reference(*args)

    entry.check(spy)
    first = list(seen)
    seen.clear()
    entry.check(spy)
    assert first != seen


# --- time limit ------------------------------------------------------------------------------------------------------

def loops_forever(*args):
    while True:
        pass


def loops_forever_and_swallows_exceptions(*args):
    while True:
        try:
            while True:
                pass
        except Exception:
            pass


@pytest.mark.parametrize("implementation", [loops_forever, loops_forever_and_swallows_exceptions])
def test_an_endless_loop_is_stopped_and_explained(monkeypatch, implementation):
    import signal
    import time
    monkeypatch.setattr(checks.settings, "time_limit", 0.3)

    def mine(signum, frame):
        raise AssertionError("the previous handler must not be called by the check")

    previous = signal.signal(signal.SIGALRM, mine)
    try:
        start = time.monotonic()
        result = check_softmax(implementation)
        assert time.monotonic() - start < 5
        assert signal.getsignal(signal.SIGALRM) is mine
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert not result.passed and "took longer than 0.3 s" in result.message
    assert "may loop forever" in result.message and "\n" not in repr(result), repr(result)


def test_every_check_has_a_time_limit_of_a_few_seconds():
    for name in NAMES:
        assert 1 <= registry.get(name).time_limit <= 10


def test_a_checks_own_time_limit_applies_without_the_setting():
    import time

    try:
        @checks.check("slow_fake", lesson="99_fake_lesson", reference=lambda: None, time_limit=0.2)
        def check_slow_fake(candidate):
            candidate()
            return "fine"

        start = time.monotonic()
        result = check_slow_fake(loops_forever)
        assert time.monotonic() - start < 3
        assert "took longer than 0.2 s" in result.message
    finally:
        registry.unregister("slow_fake")


def test_a_warm_up_runs_once_outside_the_time_limit():
    import time

    warm_ups = []
    try:
        @checks.check("warm_fake", lesson="99_fake_lesson", reference=lambda: None, time_limit=0.2,
                      warm_up=lambda: (warm_ups.append(1), time.sleep(0.4)))
        def check_warm_fake(candidate):
            candidate()
            return "fine"

        assert check_warm_fake(lambda: None).passed and check_warm_fake(lambda: None).passed
        assert warm_ups == [1]
    finally:
        registry.unregister("warm_fake")


def test_a_pending_alarm_and_its_handler_survive_a_check():
    import signal
    rang = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: rang.append(signum))
    try:
        signal.setitimer(signal.ITIMER_REAL, 30)
        assert check_softmax(softmax_stable).passed
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < remaining <= 30
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_keyboard_interrupt_is_not_swallowed():
    import signal

    def interrupted(*args):
        raise KeyboardInterrupt

    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(KeyboardInterrupt):
        check_softmax(interrupted)
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0


def test_a_check_in_a_worker_thread_runs_without_a_limit():
    import threading
    results = []
    thread = threading.Thread(target=lambda: results.append(check_softmax(softmax_stable)))
    thread.start()
    thread.join(30)
    assert results and results[0].passed, results


# --- a learner's mistake gets a learner's diagnosis -----------------------------------------------------------------

def ce_new_leaf(logits, targets):
    loss = F.cross_entropy(logits, targets)
    return torch.tensor(loss.item(), requires_grad=True)


def test_a_loss_disconnected_from_the_logits_is_told_so():
    result = check_cross_entropy(ce_new_leaf)
    assert not result.passed and "not computed from `logits`" in result.message, repr(result)
    assert "the check itself failed" not in result.message


def _meta_like(value):
    return torch.empty_like(value, device="meta")


@pytest.mark.parametrize("name, implementation", [
    ("softmax", lambda x: _meta_like(x)),
    ("cross_entropy", lambda logits, t: torch.empty((), device="meta")),
    ("scaled_dot_product_attention", lambda q, k, v, mask=None: tuple(
        _meta_like(t) for t in course_lib.scaled_dot_product_attention(q, k, v, mask))),
    ("causal_mask", lambda T: torch.ones(T, T, dtype=torch.bool, device="meta").tril()),
    ("is_permutation_equivariant", lambda f, x, perm: torch.tensor(True, device="meta")),
])
def test_meta_tensors_are_explained(name, implementation):
    result = registry.get(name).check(implementation)
    assert not result.passed and "device 'meta'" in result.message, repr(result)


def sgd_moves_to_meta(params, lr):
    for p in params:
        p.data = torch.empty_like(p, device="meta")
        p.grad = None


def step_moves_model_to_meta(model, loss_fn, optimizer, inputs, targets):
    loss = step_right(model, loss_fn, optimizer, inputs, targets)
    model.to("meta")
    return loss


def test_parameters_moved_to_meta_are_explained():
    result = check_training_step(step_moves_model_to_meta)
    assert not result.passed and "device 'meta'" in result.message, repr(result)
    result = check_sgd_step(sgd_moves_to_meta)  # PyTorch refuses this one itself: its error is the learner's
    assert not result.passed and "raised RuntimeError" in result.message, repr(result)


@pytest.mark.parametrize("name", NAMES)
def test_right_answers_pass_under_no_grad(name):
    entry = registry.get(name)
    right = CASES[name][0][0][1]
    with torch.no_grad():
        assert entry.check(right).passed
        assert entry.check(entry.reference).passed
    with torch.inference_mode():
        assert entry.check(right).passed


def test_right_answers_pass_with_gradients_switched_off_globally():
    torch.set_grad_enabled(False)
    try:
        for name in ("cross_entropy", "sgd_step", "training_step"):
            result = registry.get(name).check(CASES[name][0][0][1])
            assert result.passed, repr(result)
    finally:
        torch.set_grad_enabled(True)


def test_a_learners_default_dtype_and_device_do_not_change_the_verdict():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert check_sinusoidal_positions(sinusoidal_exp_log).passed
    finally:
        torch.set_default_dtype(previous)
    torch.set_default_device("meta")
    try:
        assert check_causal_mask(CAUSAL_RIGHT[0][1]).passed
    finally:
        torch.set_default_device(None)


def _exits(*args):
    raise SystemExit(1)


def _odd_answers():
    import numpy as np
    return [
        ("a list", lambda *a: [1.0, 2.0]),
        ("a NumPy array", lambda *a: np.zeros(3)),
        ("an int", lambda *a: 3),
        ("a complex tensor", lambda *a: torch.zeros(3, dtype=torch.complex64)),
        ("a float16 tensor", lambda *a: torch.zeros(3, dtype=torch.float16)),
        ("a meta tensor", lambda *a: torch.empty(3, device="meta")),
        ("a generator", lambda *a: (i for i in range(3))),
        ("a sparse tensor", lambda *a: torch.zeros(3, 3).to_sparse()),
        ("SystemExit", _exits),
    ]


def _as_module(answer):
    class Odd(course_lib.MultiHeadAttention):
        def forward(self, x, mask=None):
            return answer(x, mask)
    return Odd


@pytest.mark.parametrize("name", NAMES)
def test_odd_answers_get_a_diagnosis_never_a_check_failure(name):
    check = registry.get(name).check
    for kind, answer in _odd_answers():
        candidate = _as_module(answer) if name == "multi_head_attention" else answer
        result = check(candidate)
        assert not result.passed, (kind, repr(result))
        assert "the check itself failed" not in result.message, (kind, repr(result))
        assert "\n" not in repr(result)
        if kind == "SystemExit":
            assert "sys.exit()" in result.message, repr(result)
    if name == "multi_head_attention":  # and the class itself returning something odd
        for kind, answer in _odd_answers():
            result = check(lambda d_model, n_heads, answer=answer: answer())
            assert not result.passed and "the check itself failed" not in result.message, (kind, repr(result))


@pytest.mark.parametrize("answer, words", [
    (lambda x: x.softmax(-1).numpy(), "a NumPy array"),
    (lambda x: x.shape[-1], "an int"),
    (lambda x: (v for v in x.softmax(-1)), "a generator"),
    (lambda x: x.softmax(-1).to(torch.complex64), "complex"),
])
def test_odd_answer_messages_read_well(answer, words):
    result = check_softmax(answer)
    assert words in result.message and "a int" not in result.message, repr(result)


# --- delegation: calling the built-in passes, and says so -----------------------------------------------------------

def sgd_builtin(params, lr):
    sgd_torch_optimizer(params, lr)


DELEGATING = {
    "embed_tokens": [("F.embedding", lambda ids, table: F.embedding(ids, table), "F.embedding"),
                     ("nn.Embedding", lambda ids, table: nn.Embedding.from_pretrained(table)(ids), "F.embedding")],
    "one_hot": [("F.one_hot", lambda ids, V: F.one_hot(ids, V).float(), "F.one_hot")],
    "image_to_patches": [("F.unfold", PATCHES_RIGHT[0][1], "F.unfold"),
                         ("course_lib itself", course_lib.image_to_patches, "course_lib's image_to_patches")],
    "cross_entropy": [("F.cross_entropy itself", F.cross_entropy, "F.cross_entropy"),
                      ("nn.CrossEntropyLoss", lambda logits, t: nn.CrossEntropyLoss()(logits, t), "F.cross_entropy"),
                      ("nll_loss", CE_RIGHT[1][1], "F.nll_loss")],
    "sgd_step": [("torch.optim.SGD", sgd_builtin, "torch.optim.SGD.step")],
    "softmax": [("torch.softmax", lambda x: torch.softmax(x, dim=-1), "torch.softmax"),
                ("F.softmax", lambda x: F.softmax(x, dim=-1), "F.softmax"),
                ("Tensor.softmax", lambda x: x.softmax(-1), "torch.Tensor.softmax"),
                ("nn.Softmax", nn.Softmax(dim=-1), "F.softmax")],
    "attend": [("F.scaled_dot_product_attention", ATTEND_RIGHT[3][1], "F.scaled_dot_product_attention")],
    "causal_mask": [("course_lib itself", course_lib.causal_mask, "course_lib's causal_mask"),
                    ("course_lib inside", lambda T: course_lib.models.attention.causal_mask(T), "course_lib's causal_mask")],
    "scaled_dot_product_attention": [
        ("F.scaled_dot_product_attention", sdpa_builtin, "F.scaled_dot_product_attention"),
        ("course_lib itself", course_lib.scaled_dot_product_attention, "course_lib's scaled_dot_product_attention")],
    "split_heads": [("course_lib itself", course_lib.split_heads, "course_lib's split_heads")],
    "merge_heads": [("course_lib itself", course_lib.merge_heads, "course_lib's merge_heads")],
    "multi_head_attention": [("course_lib's class", course_lib.MultiHeadAttention,
                              "course_lib's MultiHeadAttention.forward")],
    "sinusoidal_positions": [("course_lib itself", course_lib.sinusoidal_positions,
                              "course_lib's sinusoidal_positions")],
    "position_similarity": [("F.cosine_similarity", SIMILARITY_RIGHT[1][1], "F.cosine_similarity")],
}

HAND_BUILT = {"embed_tokens": "index", "one_hot": "comparison", "image_to_patches": "loop",
              "cross_entropy": "logsumexp", "sgd_step": "no_grad", "softmax": "stable by hand",
              "attend": "matmul", "causal_mask": "tril", "scaled_dot_product_attention": "by hand",
              "split_heads": "view + transpose", "merge_heads": "transpose + reshape",
              "multi_head_attention": "by hand", "sinusoidal_positions": "exp/log",
              "position_similarity": "by hand"}
for module in LESSON_CASE_MODULES:  # later lessons: their own built-ins and hand-built answers
    DELEGATING.update(getattr(module, "DELEGATING", {}))
    HAND_BUILT.update(getattr(module, "HAND_BUILT", {}))


def _delegation_params():
    return [pytest.param(name, *case, id=f"{name}-{case[0]}") for name, cases in DELEGATING.items() for case in cases]


def test_every_exercise_with_builtins_has_a_delegating_case():
    declared = {name for name in NAMES if registry.get(name).builtins}
    assert declared == set(DELEGATING)


@pytest.mark.parametrize("name, label, implementation, builtin", _delegation_params())
def test_calling_the_builtin_passes_and_says_so(name, label, implementation, builtin):
    entry = registry.get(name)
    result = entry.check(implementation)
    assert result.passed, repr(result)
    assert f"— you called {'the built-in ' if not builtin.startswith('course_lib') else ''}{builtin}" \
        in result.message, repr(result)
    assert entry.pieces and f"try it with the pieces ({entry.pieces})" in result.message
    assert "\n" not in repr(result)


@pytest.mark.parametrize("name", sorted(DELEGATING))
def test_a_hand_built_answer_gets_no_note(name):
    hand_built = HAND_BUILT[name]
    implementation = dict(CASES[name][0])[hand_built]
    result = registry.get(name).check(implementation)
    assert result.passed and "you called" not in result.message, repr(result)


def test_the_solution_style_answers_get_no_note():
    # Lesson 03's attention_weights may use torch.softmax: softmax is the previous exercise, not this one.
    assert "you called" not in check_attention_weights(WEIGHTS_RIGHT[0][1]).message
    # Lesson 05's module may use the learner's own split_heads, built on view + transpose.
    assert "you called" not in check_multi_head_attention(make_mha()).message


def test_a_builtin_imported_by_name_into_the_learners_namespace_is_noticed_and_restored():
    namespace = {}
    exec("from torch.nn.functional import softmax as sm\n"
         "def my_softmax(x):\n    return sm(x, dim=-1)\n", namespace)
    result = check_softmax(namespace["my_softmax"])
    assert result.passed and "you called the built-in F.softmax" in result.message, repr(result)
    assert namespace["sm"] is F.softmax


def test_builtins_are_restored_after_every_check_even_a_failing_one():
    originals = (torch.softmax, F.softmax, torch.special.softmax, F.scaled_dot_product_attention,
                 course_lib.models.attention.causal_mask, course_lib.causal_mask, torch.optim.SGD.step,
                 course_lib.MultiHeadAttention.forward, nn.MultiheadAttention.forward)
    assert "softmax" not in vars(torch.Tensor)

    def raises(*args):
        raise ValueError("no")

    for name in NAMES:
        registry.get(name).check(raises)
        registry.get(name).check(CASES[name][0][0][1])
    assert (torch.softmax, F.softmax, torch.special.softmax, F.scaled_dot_product_attention,
            course_lib.models.attention.causal_mask, course_lib.causal_mask, torch.optim.SGD.step,
            course_lib.MultiHeadAttention.forward, nn.MultiheadAttention.forward) == originals
    assert "softmax" not in vars(torch.Tensor)
