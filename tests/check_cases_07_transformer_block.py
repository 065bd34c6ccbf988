"""Lesson 07's exercises, right and wrong: imported by tests/test_checks.py (CASES, NAMED_MISTAKES).

Each wrong entry: (id, implementation, words its diagnosis must contain).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# --- layer_norm -------------------------------------------------------------------------------------------------


def layer_norm_by_hand(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    variance = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(variance + eps) * weight + bias


def layer_norm_var_mean(x, weight, bias, eps=1e-5):
    variance, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=0)
    return (x - mean) * torch.rsqrt(variance + eps) * weight + bias


def layer_norm_module(x, weight, bias, eps=1e-5):
    norm = nn.LayerNorm(x.shape[-1], eps=eps)
    with torch.no_grad():
        norm.weight.copy_(weight)
        norm.bias.copy_(bias)
    return norm(x)


def _centred(x):
    return x - x.mean(-1, keepdim=True)


def _biased_var(x):
    return x.var(-1, keepdim=True, unbiased=False)


LAYER_NORM_RIGHT = [
    ("by hand", layer_norm_by_hand),
    ("var_mean and rsqrt", layer_norm_var_mean),
    ("var(unbiased=False)", lambda x, w, b, eps=1e-5: _centred(x) / (_biased_var(x) + eps).sqrt() * w + b),
    ("F.layer_norm", lambda x, w, b, eps=1e-5: F.layer_norm(x, (x.shape[-1],), w, b, eps)),
    ("nn.LayerNorm", layer_norm_module),
]
LAYER_NORM_WRONG = [
    ("unbiased variance", lambda x, w, b, eps=1e-5: _centred(x) / (x.var(-1, keepdim=True) + eps).sqrt() * w + b,
     "unbiased variance"),
    ("eps outside the sqrt", lambda x, w, b, eps=1e-5: _centred(x) / (_biased_var(x).sqrt() + eps) * w + b,
     "eps added outside the square root"),
    ("x.std() + eps", lambda x, w, b, eps=1e-5: _centred(x) / (x.std(-1, keepdim=True) + eps) * w + b,
     "x.std() is unbiased"),
    ("sqrt of std", lambda x, w, b, eps=1e-5: _centred(x) / (_biased_var(x).sqrt() + eps).sqrt() * w + b,
     "std instead of variance"),
    ("divides by the variance", lambda x, w, b, eps=1e-5: _centred(x) / (_biased_var(x) + eps) * w + b,
     "divides by the variance"),
    ("no eps", lambda x, w, b, eps=1e-5: _centred(x) / _biased_var(x).sqrt() * w + b, "eps is missing"),
    ("mean not subtracted", lambda x, w, b, eps=1e-5: x / (_biased_var(x) + eps).sqrt() * w + b,
     "forgets to subtract the mean"),
    ("RMSNorm", lambda x, w, b, eps=1e-5: x / ((x ** 2).mean(-1, keepdim=True) + eps).sqrt() * w + b, "RMSNorm"),
    ("first axis", lambda x, w, b, eps=1e-5: (x - x.mean(0, keepdim=True))
     / (x.var(0, keepdim=True, unbiased=False) + eps).sqrt() * w + b, "wrong axis (dim=0)"),
    ("all elements", lambda x, w, b, eps=1e-5: (x - x.mean()) / (x.var(unbiased=False) + eps).sqrt() * w + b,
     "over all elements"),
    ("no gain", lambda x, w, b, eps=1e-5: layer_norm_by_hand(x, 1.0, b, eps), "forgets the gain"),
    ("no bias", lambda x, w, b, eps=1e-5: layer_norm_by_hand(x, w, 0.0, eps), "forgets the bias"),
    ("gain and bias swapped", lambda x, w, b, eps=1e-5: layer_norm_by_hand(x, b, w, eps), "swapped"),
    ("affine first", lambda x, w, b, eps=1e-5: layer_norm_by_hand(x * w + b, 1.0, 0.0, eps), "before normalising"),
    ("in place", lambda x, w, b, eps=1e-5: x.sub_(x.mean(-1, keepdim=True)).div_(
        (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()).mul(w).add(b), "changes its input `x` in place"),
    ("default eps 1e-3", lambda x, w, b, eps=1e-3: layer_norm_by_hand(x, w, b, eps), "the output is wrong"),
    ("mean and variance without keepdim",
     lambda x, w, b, eps=1e-5: (x - x.mean(-1)) / torch.sqrt(x.var(-1, unbiased=False) + eps) * w + b, "lost its axis"),
]

# --- block_without_residuals -----------------------------------------------------------------------------------


def no_residuals_by_hand(block, x, mask=None):
    h = block.ln1(x)
    attended, _ = block.attn(h, mask, need_weights=False)
    return block.mlp(block.ln2(attended))


def no_residuals_with_weights(block, x, mask=None):
    x = block.attn(block.ln1(x), mask)[0]  # need_weights left on: the same output
    x = block.mlp(block.ln2(x))
    return x


def no_residuals_mlp_by_parts(block, x, mask=None):
    x = block.attn(block.ln1(x), mask=mask, need_weights=False)[0]
    mlp = block.mlp
    return mlp.proj(mlp.act(mlp.fc(block.ln2(x))))


def no_residuals_switch(block, x, mask=None):
    """The block's own switch: residual=False for one call, then put back."""
    before = block.residual
    block.residual = False
    try:
        return block(x, mask)
    finally:
        block.residual = before


def _attention(block, h, mask):
    return block.attn(h, mask, need_weights=False)[0]


def block_as_built(block, x, mask=None):
    x = x + _attention(block, block.ln1(x), mask)
    return x + block.mlp(block.ln2(x))


def attention_residual_kept(block, x, mask=None):
    x = x + _attention(block, block.ln1(x), mask)
    return block.mlp(block.ln2(x))


def mlp_residual_kept(block, x, mask=None):
    x = _attention(block, block.ln1(x), mask)
    return x + block.mlp(block.ln2(x))


def norms_dropped(block, x, mask=None):
    return block.mlp(_attention(block, x, mask))


def mlp_reads_original(block, x, mask=None):
    _attention(block, block.ln1(x), mask)
    return block.mlp(block.ln2(x))


def post_ln_no_residuals(block, x, mask=None):
    h = block.ln1(_attention(block, x, mask))
    return block.ln2(block.mlp(h))


def ln1_twice(block, x, mask=None):
    return block.mlp(block.ln1(_attention(block, block.ln1(x), mask)))


def mask_ignored(block, x, mask=None):
    return block.mlp(block.ln2(_attention(block, block.ln1(x), None)))


def tuple_as_tensor(block, x, mask=None):
    return block.mlp(block.ln2(block.attn(block.ln1(x), mask)))


def returns_pair(block, x, mask=None):
    return block.mlp(block.ln2(_attention(block, block.ln1(x), mask))), None


BLOCK_RIGHT = [
    ("by hand", no_residuals_by_hand),
    ("weights computed", no_residuals_with_weights),
    ("MLP by its parts", no_residuals_mlp_by_parts),
    ("the block's residual switch", no_residuals_switch),
]
BLOCK_WRONG = [
    ("the block as built", block_as_built, "both residuals are still there"),
    ("attention residual kept", attention_residual_kept, "the attention's residual is still there"),
    ("MLP residual kept", mlp_residual_kept, "the MLP's residual is still there"),
    ("LayerNorms dropped", norms_dropped, "the LayerNorms went too"),
    ("MLP on the original x", mlp_reads_original, "the MLP reads x from before the attention"),
    ("post-LN order", post_ln_no_residuals, "post-LN order"),
    ("ln1 twice", ln1_twice, "ln1 is used twice"),
    ("mask ignored", mask_ignored, "the mask is ignored"),
    ("attention's pair used as a tensor", tuple_as_tensor, "it returns the pair (output, weights)"),
    ("returns (output, None)", returns_pair, "return the output tensor alone"),
]

# --- is_causal --------------------------------------------------------------------------------------------------


def is_causal_loop(model, ids, vocab_size):
    with torch.no_grad():
        reference = model(ids)
        for t in range(ids.shape[1] - 1):
            changed = ids.clone()
            changed[:, t + 1:] = (changed[:, t + 1:] + 1) % vocab_size
            if not torch.allclose(model(changed)[:, :t + 1], reference[:, :t + 1], atol=1e-5):
                return False
    return True


def is_causal_random_tokens(model, ids, vocab_size):
    reference = model(ids).detach()
    T = ids.shape[1]
    for t in range(T - 1):
        changed = ids.clone()
        # a random *different* token at every later position
        changed[:, t + 1:] = (ids[:, t + 1:] + torch.randint(1, vocab_size, (ids.shape[0], T - t - 1))) % vocab_size
        difference = (model(changed)[:, :t + 1].detach() - reference[:, :t + 1]).abs().max()
        if difference > 1e-4:
            return False
    return True


def is_causal_batched(model, ids, vocab_size):
    """Every cut in one batch: copy c changes the tokens after position c."""
    B, T = ids.shape
    copies = ids.repeat(T - 1, 1)  # ((T-1)*B, T)
    cut = torch.arange(T - 1).repeat_interleave(B)[:, None]  # ((T-1)*B, 1)
    later = torch.arange(T)[None, :] > cut
    changed = torch.where(later, (copies + 1) % vocab_size, copies)
    out, reference = model(changed), model(ids).repeat(T - 1, 1, 1)
    earlier = ~later  # positions 0..cut, which must not move
    return bool(torch.allclose(out[earlier], reference[earlier], atol=1e-5))


def _cut_variant(first_changed=1, compare_all=False, cuts="all", exact=False):
    def is_causal(model, ids, vocab_size):
        T = ids.shape[1]
        reference = model(ids)
        for t in {"all": range(T - 1), "last": [T - 2], "first": [0]}[cuts]:
            changed = ids.clone()
            changed[:, t + first_changed:] = (changed[:, t + first_changed:] + 1) % vocab_size
            upto = T if compare_all else t + 1
            a, b = model(changed)[:, :upto], reference[:, :upto]
            if not (torch.equal(a, b) if exact else torch.allclose(a, b, atol=1e-5)):
                return False
        return True
    return is_causal


def is_causal_in_place(model, ids, vocab_size):
    reference = model(ids)
    for t in range(ids.shape[1] - 1):
        ids[:, t + 1:] = (ids[:, t + 1:] + 1) % vocab_size
        if not torch.allclose(model(ids)[:, :t + 1], reference[:, :t + 1], atol=1e-5):
            return False
    return True


def is_causal_elementwise(model, ids, vocab_size):
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1) % vocab_size
    return torch.isclose(model(changed)[:, :-1], model(ids)[:, :-1])


CAUSAL_RIGHT = [
    ("every cut, allclose", is_causal_loop),
    ("random later tokens, max difference", is_causal_random_tokens),
    ("all cuts in one batch", is_causal_batched),
]
CAUSAL_WRONG = [
    ("changes token t too", _cut_variant(first_changed=0), "changes the token at position t too"),
    ("compares every position", _cut_variant(compare_all=True), "compare only positions 0..t"),
    ("only the last token", _cut_variant(cuts="last"), "changes only the last token"),
    ("only t = 0", _cut_variant(cuts="first"), "only tries t = 0"),
    ("exact comparison", _cut_variant(exact=True), "compares floats exactly"),
    ("opposite", lambda model, ids, V: not is_causal_loop(model, ids, V), "answers the opposite"),
    ("changes ids in place", is_causal_in_place, "changes its input `ids` in place"),
    ("elementwise", is_causal_elementwise, "reduce the comparisons to one True/False"),
    ("always True", lambda model, ids, V: True, "answers True for"),
]

CASES = {
    "layer_norm": (LAYER_NORM_RIGHT, LAYER_NORM_WRONG),
    "block_without_residuals": (BLOCK_RIGHT, BLOCK_WRONG),
    "is_causal": (CAUSAL_RIGHT, CAUSAL_WRONG),
}

# The classic mistakes the lesson's issue names, each diagnosed by name.
NAMED_MISTAKES = [
    ("layer_norm", lambda x, w, b, eps=1e-5: (x - x.mean(-1)) / torch.sqrt(x.var(-1, unbiased=False) + eps) * w + b,
     "the mean (or the variance) lost its axis"),
    ("layer_norm", LAYER_NORM_WRONG[0][1], "unbiased variance"),
    ("layer_norm", LAYER_NORM_WRONG[1][1], "eps added outside the square root"),
    ("layer_norm", LAYER_NORM_WRONG[8][1], "normalises over the wrong axis"),
    ("layer_norm", LAYER_NORM_WRONG[10][1], "forgets the gain"),
    ("layer_norm", LAYER_NORM_WRONG[11][1], "forgets the bias"),
    ("layer_norm", LAYER_NORM_WRONG[3][1], "std instead of variance"),
    ("layer_norm", LAYER_NORM_WRONG[9][1], "normalises over all elements"),
    ("block_without_residuals", block_as_built, "both residuals are still there"),
    ("block_without_residuals", attention_residual_kept, "the attention's residual is still there"),
    ("block_without_residuals", mlp_residual_kept, "the MLP's residual is still there"),
    ("block_without_residuals", norms_dropped, "the LayerNorms went too"),
    ("block_without_residuals", mlp_reads_original, "the MLP reads x from before the attention"),
    ("block_without_residuals", post_ln_no_residuals, "post-LN order"),
    ("block_without_residuals", mask_ignored, "the mask is ignored"),
    ("is_causal", CAUSAL_WRONG[0][1], "changes the token at position t too"),
    ("is_causal", CAUSAL_WRONG[2][1], "changes only the last token"),
    ("is_causal", CAUSAL_WRONG[4][1], "compares floats exactly"),
    ("is_causal", CAUSAL_WRONG[6][1], "changes its input `ids` in place"),
    ("is_causal", CAUSAL_WRONG[1][1], "compare only positions 0..t"),
    ("is_causal", CAUSAL_WRONG[3][1], "only tries t = 0"),
    ("is_causal", CAUSAL_WRONG[5][1], "answers the opposite"),
]

# Built-ins that do an exercise for the learner: the check passes and names them (as test_checks.DELEGATING).
DELEGATING = {
    "layer_norm": [("F.layer_norm", LAYER_NORM_RIGHT[3][1], "F.layer_norm"),
                   ("nn.LayerNorm", layer_norm_module, "F.layer_norm"),
                   ("torch.native_layer_norm", lambda x, w, b, eps=1e-5: torch.native_layer_norm(
                       x, (x.shape[-1],), w, b, eps)[0], "torch.native_layer_norm")],
    "block_without_residuals": [("the block's residual switch", no_residuals_switch,
                                 "course_lib's TransformerBlock.forward")],
}
# A hand-built right answer per exercise with built-ins: it passes without a note.
HAND_BUILT = {"layer_norm": "by hand", "block_without_residuals": "by hand"}
