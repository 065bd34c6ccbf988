"""Checks for lesson 05, multi-head attention: splitting into heads, merging them back, the whole module."""

from __future__ import annotations

import math

import torch
from torch import nn

from course_lib.apart.session import is_instance, type_name
from course_lib.models.attention import MultiHeadAttention, causal_mask, merge_heads, split_heads

from .kit import Fail, Inputs, call, check, compare, describe_type, lazy, non_contiguous, seeded_module, summary, unpack_pair
from .lesson04_self_attention import ATTENTION_MISTAKES, attention_variant

LESSON = "05_multi_head_attention"


@check("split_heads", lesson=LESSON, reference=split_heads, builtins=("course_lib.models.attention.split_heads",),
       pieces="view (batch, time, heads, d_head), then transpose(1, 2)")
def check_split_heads(candidate) -> str:
    """``split_heads(x (batch, time, d_model), n_heads) -> (batch, heads, time, d_head)``;
    head h holds features h*d_head ... (h+1)*d_head - 1."""
    rng = Inputs()
    B, T, H, dh = rng.int(2, 3), rng.int(3, 6), rng.int(2, 4), rng.int(2, 4)
    T = T + 1 if T == H else T
    H2, dh2, H3, dh3, T4, H4, T5, dh5 = (rng.int(2, 4), rng.int(1, 3), rng.int(2, 3), rng.int(1, 3), rng.int(2, 5),
                                        rng.int(2, 5), rng.int(2, 5), rng.int(2, 4))
    T6, H6, dh6 = rng.int(2, 5), rng.int(2, 3), rng.int(2, 3)
    cases = [
        (f"batch {B}, T {T}, d_model {H * dh}, {H} heads", rng.randn(B, T, H * dh), H),
        (f"T = 1, batch of 1, {H2} heads of {dh2}", rng.randn(1, 1, H2 * dh2), H2),
        (f"T equal to the number of heads, {H3}", rng.randn(2, H3, H3 * (dh3 + 1)), H3),
        (f"one feature per head, T {T4}, {H4} heads", rng.randn(2, T4, H4), H4),
        (f"one head, T {T5}, d_model {dh5}", rng.randn(2, T5, dh5), 1),
        (f"non-contiguous x, T {T6}, {H6} heads", non_contiguous(rng.randn(2, T6, H6 * dh6)), H6),
    ]
    for label, x, n_heads in cases:
        got = call(candidate, (x, n_heads), ("x", "n_heads"), label)
        expected = split_heads(x, n_heads)
        B, T, D = x.shape
        d_head = D // n_heads
        mistakes = [
            ("heads split with view but no transpose: view(B, T, heads, d_head), then transpose(1, 2)",
             lambda: x.reshape(B, n_heads, T, d_head)),
            ("heads split with view but no transpose: transpose(1, 2) to get (batch, heads, time, d_head)",
             lambda: x.reshape(B, T, n_heads, d_head)),
            ("heads take interleaved features (h, h + heads, ...): head h must hold the block of features "
             "h*d_head ... (h+1)*d_head - 1", lambda: x.reshape(B, T, d_head, n_heads).permute(0, 3, 1, 2)),
            ("the last two axes are swapped: return (batch, heads, time, d_head)",
             lambda: x.reshape(B, T, n_heads, d_head).permute(0, 2, 3, 1)),
        ]
        compare(got, expected, label, mistakes)
    return summary(len(cases), ["T = 1", "batch of 1", "T = heads", "d_head 1", "one head",
                                "non-contiguous x"])


@check("merge_heads", lesson=LESSON, reference=merge_heads, builtins=("course_lib.models.attention.merge_heads",),
       pieces="transpose(1, 2), then reshape")
def check_merge_heads(candidate) -> str:
    """``merge_heads(x (batch, heads, time, d_head)) -> (batch, time, heads * d_head)``: undoes split_heads."""
    rng = Inputs()
    B, H, T, dh = rng.int(2, 3), rng.int(2, 4), rng.int(3, 6), rng.int(2, 5)
    T = T + 1 if T == H else T
    H2, dh2, T3, dh3, H4, T5, H5, dh5 = (rng.int(2, 4), rng.int(1, 4), rng.int(2, 5), rng.int(2, 5), rng.int(2, 4),
                                        rng.int(2, 4), rng.int(2, 4), rng.int(2, 5))
    T5 = T5 + 1 if T5 == H5 else T5
    cases = [
        (f"batch {B}, {H} heads, T {T}, d_head {dh}", rng.randn(B, H, T, dh)),
        (f"T = 1, batch of 1, {H2} heads", rng.randn(1, H2, 1, dh2)),
        (f"one head, T {T3}", rng.randn(2, 1, T3, dh3)),
        (f"T equal to the number of heads, {H4}", rng.randn(2, H4, H4, H4)),
        (f"non-contiguous x (as after a transpose), {H5} heads, T {T5}", rng.randn(2, T5, H5, dh5).transpose(1, 2)),
    ]
    for label, x in cases:
        got = call(candidate, (x,), ("x",), label)
        expected = merge_heads(x)
        B, H, T, d_head = x.shape
        mistakes = [
            ("heads merged with reshape but no transpose: transpose(1, 2) first, so that time comes before heads",
             lambda: x.reshape(B, T, H * d_head)),
            ("features interleaved by head: use transpose(1, 2) (batch, time, heads, d_head), then reshape",
             lambda: x.permute(0, 2, 3, 1).reshape(B, T, H * d_head)),
        ]
        compare(got, expected, label, mistakes)
    return summary(len(cases), ["T = 1", "batch of 1", "one head", "T = heads", "non-contiguous x"],
                   "undoes split_heads")


def _mha_variant(ref: MultiHeadAttention, x, mask, split_mode="ok", merge_mode="ok", out_proj=True, same_projection=False,
                 keys_as_values=False, **attention_kw):
    """What ``ref`` computes, or the same with one classic mistake: (output, weights)."""
    B, T, D = x.shape
    H, d_head = ref.n_heads, ref.d_head

    def split(t):
        return t.reshape(B, H, T, d_head) if split_mode == "no transpose" else split_heads(t, H)

    k_layer, v_layer = (ref.q_proj, ref.q_proj) if same_projection else (ref.k_proj, ref.v_proj)
    v_layer = k_layer if keys_as_values else v_layer
    heads, weights = attention_variant(split(ref.q_proj(x)), split(k_layer(x)), split(v_layer(x)), mask,
                                       **attention_kw)
    merged = heads.reshape(B, T, D) if merge_mode == "no transpose" else merge_heads(heads)
    return (ref.out_proj(merged) if out_proj else merged), weights


def _mha_mistakes(ref: MultiHeadAttention):
    found = [(diagnosis, kw) for diagnosis, kw in ATTENTION_MISTAKES]
    found += [
        ("scores divided by √d_model instead of √d_head: each head's queries have d_head features",
         {"scale": math.sqrt(ref.d_model)}),
        ("heads split with view but no transpose: view(B, T, heads, d_head), then transpose(1, 2)",
         {"split_mode": "no transpose"}),
        ("heads merged without transposing back: transpose(1, 2) before reshaping to (batch, time, d_model)",
         {"merge_mode": "no transpose"}),
        ("out_proj is not applied to the merged heads", {"out_proj": False}),
        ("q_proj is used for the keys and values too: use k_proj and v_proj", {"same_projection": True}),
        ("the weights average the keys (weights @ k): they must average the values, weights @ v "
         "(v from v_proj)", {"keys_as_values": True}),
    ]
    return found


@check("multi_head_attention", lesson=LESSON, reference=MultiHeadAttention,
       builtins=("torch.nn.MultiheadAttention.forward", "torch.nn.functional.multi_head_attention_forward",
                 "course_lib.models.attention.MultiHeadAttention.forward"),
       pieces="four nn.Linear layers, split_heads, scaled_dot_product_attention, merge_heads")
def check_multi_head_attention(candidate) -> str:
    """``check_multi_head_attention(MultiHeadAttention)``: build the learner's class, give its q_proj, k_proj,
    v_proj and out_proj the reference's weights, and compare ``forward(x, mask=None) -> (output, weights)``."""
    if is_instance(candidate, nn.Module):
        raise Fail("got an instance: pass the class itself, check_multi_head_attention(MultiHeadAttention)",
                   about_inputs=False)
    rng = Inputs()
    configs = []
    for n_heads in (rng.int(2, 3), rng.int(3, 4)):
        d_head = rng.int(2, 4)
        d_head += d_head == n_heads  # d_head = n_heads would make √d_model = d_head: two mistakes alike
        configs.append((n_heads * d_head, n_heads))
    n_cases = 0
    for d_model, n_heads in configs:
        built = f"MultiHeadAttention({d_model}, {n_heads})"
        model = call(candidate, (d_model, n_heads), ("d_model", "n_heads"), built)
        if not is_instance(model, nn.Module):
            raise Fail(f"{built} is {describe_type(model)}, not an nn.Module: subclass nn.Module", about_inputs=False)
        ref = seeded_module(lambda: MultiHeadAttention(d_model, n_heads), seed=rng.seed + d_model).eval()
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            layer = getattr(model, name, None)
            if not is_instance(layer, nn.Linear) or (layer.in_features, layer.out_features) != (d_model, d_model):
                raise Fail(f"{built} needs self.{name} = nn.Linear(d_model, d_model); got "
                           f"{type_name(layer) if layer is not None else 'no such attribute'}", about_inputs=False)
            if layer.bias is None:
                raise Fail(f"{built}: self.{name} has no bias: use nn.Linear(d_model, d_model) with its bias "
                           f"(bias=True, the default), as in course_lib's MultiHeadAttention", about_inputs=False)
            try:
                layer.load_state_dict(getattr(ref, name).state_dict())
            except Exception as error:
                # PyTorch's message spans several lines, the first one saying only "Error(s) in ...:".
                detail = " ".join(str(error).split())
                detail = detail if len(detail) <= 200 else detail[:199] + "…"
                raise Fail(f"could not load weights into self.{name}: {detail}", about_inputs=False) from None
        model.eval()
        T, T3, T5 = rng.int(3, 6), rng.int(3, 6), rng.int(2, 5)
        keep_one = torch.zeros(T, T, dtype=torch.bool)
        keep_one[torch.arange(T), rng.permutation(T)] = True
        cases = [
            (f"{built}, batch 2, T {T}", rng.randn(2, T, d_model), None),
            (f"{built}, T = 1", rng.randn(2, 1, d_model), None),
            (f"{built}, batch of 1 with a causal mask, T {T3}", rng.randn(1, T3, d_model), causal_mask(T3)),
            (f"{built}, a mask that blocks all but one key, T {T}", rng.randn(2, T, d_model), keep_one),
            (f"{built}, non-contiguous x, T {T5}", non_contiguous(rng.randn(2, T5, d_model)), None),
        ]
        for label, x, mask in cases:
            with torch.no_grad():
                got = call(model, (x,) if mask is None else (x, mask), ("x", "mask"), label)
                expected_out, expected_weights = ref(x, mask)
                out, weights = unpack_pair(got, label, expected_out, expected_weights)
                variants = [(diagnosis, lazy(_mha_variant, ref, x, mask, **kw)) for diagnosis, kw in _mha_mistakes(ref)
                            if mask is not None or "mask_mode" not in kw]
                weight_mistakes = [(d, lambda w=w: w()[1]) for d, w in variants]
                weight_mistakes.append(("returns the weights averaged over the heads: return one (query, key) "
                                        "matrix per head, (batch, heads, query, key)",
                                        lambda: expected_weights.mean(1)))
                compare(weights, expected_weights, label, weight_mistakes, what="the weights")
                compare(out, expected_out, label, [(d, lambda w=w: w()[0]) for d, w in variants], what="the output")
            n_cases += 1
    return summary(n_cases, ["2 to 4 heads", "T = 1", "batch of 1", "causal mask", "all-but-one-key mask",
                             "non-contiguous x"], "output and weights match course_lib's MultiHeadAttention")
