"""Lesson 05's exercises (multi-head attention): right and wrong learner answers, read by tests/test_checks.py.

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
from check_cases_04_self_attention import attention  # lesson 04's learner-style attention, one mistake at a time

# --- split_heads, merge_heads -------------------------------------------------------------------------------------


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


# --- multi_head_attention -----------------------------------------------------------------------------------------


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


class LinearWithExtraState(nn.Linear):
    def __init__(self, *args):
        super().__init__(*args)
        self.register_buffer("scale", torch.ones(1))


class MultiHeadAttentionWithExtraState(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self, name, LinearWithExtraState(d_model, d_model))


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
    ("a layer with extra state", MultiHeadAttentionWithExtraState,
     'could not load weights into self.q_proj: Error(s) in loading state_dict for LinearWithExtraState: '
     'Missing key(s) in state_dict: "scale"'),
]

CASES = {
    "split_heads": (SPLIT_RIGHT, SPLIT_WRONG),
    "merge_heads": (MERGE_RIGHT, MERGE_WRONG),
    "multi_head_attention": (MHA_RIGHT, MHA_WRONG),
}

NAMED_MISTAKES = [
    ("split_heads", SPLIT_WRONG[0][1], "heads split with view but no transpose"),
]

DELEGATING = {
    "split_heads": [("course_lib itself", course_lib.split_heads, "course_lib's split_heads")],
    "merge_heads": [("course_lib itself", course_lib.merge_heads, "course_lib's merge_heads")],
    "multi_head_attention": [("course_lib's class", course_lib.MultiHeadAttention,
                              "course_lib's MultiHeadAttention.forward")],
}
# The module may use the learner's own split_heads, built on view + transpose: no note.
HAND_BUILT = {"split_heads": "view + transpose", "merge_heads": "transpose + reshape",
              "multi_head_attention": "by hand"}

REPLAYABLE = ["split_heads", "merge_heads"]
