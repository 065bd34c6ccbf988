"""course_lib.models.attention equals PyTorch's own attention, and explains bad input."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import (MultiHeadAttention, TransformerBlock, TransformerClassifier, TransformerLM, TransformerStack,
                        VisionTransformer, causal_mask, merge_heads, padding_mask, scaled_dot_product_attention,
                        split_heads)

ATOL = 1e-5


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def qkv(B=2, H=3, Tq=5, Tk=7, d=8, dv=6):
    return torch.randn(B, H, Tq, d), torch.randn(B, H, Tk, d), torch.randn(B, H, Tk, dv)


def reference_weights(q, k, mask=None):
    """Weights via PyTorch: attention applied to the identity values returns the weight matrix."""
    eye = torch.eye(k.shape[-2]).expand(*k.shape[:-2], -1, -1)
    return F.scaled_dot_product_attention(q, k, eye, attn_mask=mask)


def test_sdpa_matches_pytorch_without_mask():
    q, k, v = qkv()
    out, weights = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), atol=ATOL, rtol=0)
    torch.testing.assert_close(weights, reference_weights(q, k), atol=ATOL, rtol=0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 5), atol=ATOL, rtol=0)


def test_sdpa_matches_pytorch_with_causal_mask():
    q, k, v = qkv(Tq=6, Tk=6)
    mask = causal_mask(6)
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=ATOL, rtol=0)
    assert torch.all(weights[..., ~mask] == 0), "a query gave weight to a later key"


def test_sdpa_matches_pytorch_with_padding_mask():
    q, k, v = qkv(Tq=4, Tk=4)
    mask = padding_mask([4, 2])  # (2, 1, 1, 4)
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=ATOL, rtol=0)
    assert torch.all(weights[1, :, :, 2:] == 0), "padding keys received weight"


def test_sdpa_unbatched_and_d_v_differs():
    q, k, v = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 9)
    out, weights = scaled_dot_product_attention(q, k, v)
    assert out.shape == (3, 9) and weights.shape == (3, 5)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), atol=ATOL, rtol=0)


def test_causal_mask_shape_and_values():
    mask = causal_mask(4)
    assert mask.dtype == torch.bool and mask.shape == (4, 4)
    assert mask.tolist() == [[True, False, False, False], [True, True, False, False],
                             [True, True, True, False], [True, True, True, True]]


def test_padding_mask_from_lengths():
    mask = padding_mask([3, 1], max_len=4)
    assert mask.shape == (2, 1, 1, 4)
    assert mask[:, 0, 0].tolist() == [[True, True, True, False], [True, False, False, False]]


def test_split_and_merge_heads_round_trip_and_feature_layout():
    x = torch.arange(2 * 3 * 8, dtype=torch.float32).reshape(2, 3, 8)
    heads = split_heads(x, 4)
    assert heads.shape == (2, 4, 3, 2)
    torch.testing.assert_close(heads[:, 1], x[:, :, 2:4])  # head 1 holds features 2..3
    torch.testing.assert_close(merge_heads(heads), x)


@pytest.mark.parametrize("use_mask", ["none", "causal", "padding"])
def test_mha_from_torch_matches_nn_multihead_attention(use_mask):
    B, T, D, H = 2, 6, 16, 4
    theirs = nn.MultiheadAttention(D, H, batch_first=True).eval()
    ours = MultiHeadAttention.from_torch(theirs).eval()
    x = torch.randn(B, T, D)
    kwargs, mask = {}, None
    if use_mask == "causal":
        mask = causal_mask(T)
        kwargs["attn_mask"] = ~mask  # PyTorch: True = blocked
    elif use_mask == "padding":
        mask = padding_mask([6, 3])
        kwargs["key_padding_mask"] = ~mask[:, 0, 0]
    expected, expected_weights = theirs(x, x, x, need_weights=True, average_attn_weights=False, **kwargs)
    out, weights = ours(x, mask)
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=0)
    assert weights.shape == (B, H, T, T)
    torch.testing.assert_close(weights, expected_weights, atol=ATOL, rtol=0)
    out_fast, none = ours(x, mask, need_weights=False)
    assert none is None
    assert torch.equal(out_fast, out), "asking for the weights changed the output"


def test_mha_has_the_same_parameter_count_as_pytorch():
    theirs = nn.MultiheadAttention(32, 4, batch_first=True)
    ours = MultiHeadAttention(32, 4)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    assert all(isinstance(getattr(ours, n), nn.Linear) for n in ("q_proj", "k_proj", "v_proj", "out_proj"))


def test_mha_gradients_flow_to_every_projection():
    mha = MultiHeadAttention(8, 2)
    out, _ = mha(torch.randn(1, 3, 8), causal_mask(3))
    out.sum().backward()
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        assert getattr(mha, name).weight.grad.abs().sum() > 0, name


# ---- bad input: each error names what was expected and what came ----

def test_sdpa_rejects_mismatched_d():
    with pytest.raises(ValueError, match=r"q is \(2, 5, 8\).*k is \(2, 5, 4\)"):
        scaled_dot_product_attention(torch.randn(2, 5, 8), torch.randn(2, 5, 4), torch.randn(2, 5, 4))


def test_sdpa_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"q must have shape \(\.\.\., query, d\), got \(8,\)"):
        scaled_dot_product_attention(torch.randn(8), torch.randn(3, 8), torch.randn(3, 8))


def test_sdpa_rejects_key_value_count_mismatch():
    with pytest.raises(ValueError, match=r"same number of keys.*k is \(4, 8\), v is \(5, 8\)"):
        scaled_dot_product_attention(torch.randn(3, 8), torch.randn(4, 8), torch.randn(5, 8))


def test_sdpa_rejects_empty_sequences():
    with pytest.raises(ValueError, match=r"empty query axis: shape \(0, 8\)"):
        scaled_dot_product_attention(torch.randn(0, 8), torch.randn(3, 8), torch.randn(3, 8))
    with pytest.raises(ValueError, match=r"empty key axis"):
        scaled_dot_product_attention(torch.randn(2, 8), torch.randn(0, 8), torch.randn(0, 8))


def test_sdpa_rejects_mask_of_wrong_shape():
    with pytest.raises(ValueError, match=r"broadcastable to \(\.\.\., query, key\) = \(3, 4\), got \(4, 3\)"):
        scaled_dot_product_attention(torch.randn(3, 8), torch.randn(4, 8), torch.randn(4, 8),
                                     torch.ones(4, 3, dtype=torch.bool))


def test_sdpa_rejects_mask_of_wrong_dtype():
    with pytest.raises(TypeError, match=r"bool tensor.*got dtype torch.float32"):
        scaled_dot_product_attention(torch.randn(3, 8), torch.randn(3, 8), torch.randn(3, 8), torch.ones(3, 3))


def test_sdpa_rejects_a_mask_that_blocks_a_whole_row():
    mask = torch.ones(3, 3, dtype=torch.bool)
    mask[1] = False
    with pytest.raises(ValueError, match="blocks every key"):
        scaled_dot_product_attention(torch.randn(3, 8), torch.randn(3, 8), torch.randn(3, 8), mask)


def test_sdpa_rejects_integer_inputs():
    with pytest.raises(TypeError, match="floating-point.*torch.int64"):
        scaled_dot_product_attention(torch.ones(3, 8, dtype=torch.long), torch.randn(3, 8), torch.randn(3, 8))


def test_mha_rejects_d_model_not_divisible_by_heads():
    with pytest.raises(ValueError, match="d_model=10 must be divisible by n_heads=4"):
        MultiHeadAttention(10, 4)


def test_mha_rejects_wrong_input_shapes():
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"\(batch, time, d_model\), got \(3, 8\)"):
        mha(torch.randn(3, 8))
    with pytest.raises(ValueError, match=r"d_model=8\), got \(1, 3, 6\)"):
        mha(torch.randn(1, 3, 6))
    with pytest.raises(ValueError, match=r"empty time axis"):
        mha(torch.randn(1, 0, 8))
    with pytest.raises(ValueError, match=r"\(1, 2, 3, 3\), got \(4, 4\)"):
        mha(torch.randn(1, 3, 8), causal_mask(4))


def test_split_heads_rejects_indivisible_width():
    with pytest.raises(ValueError, match=r"d_model=6 must be divisible by n_heads=4: x is \(1, 2, 6\)"):
        split_heads(torch.randn(1, 2, 6), 4)


def test_from_torch_rejects_other_modules():
    with pytest.raises(TypeError, match="nn.MultiheadAttention, got Linear"):
        MultiHeadAttention.from_torch(nn.Linear(4, 4))


def test_integer_arguments_accept_numpy_and_tensor_integers_and_reject_others():
    import numpy as np

    assert causal_mask(np.int64(3)).shape == (3, 3)
    assert causal_mask(torch.tensor(2)).shape == (2, 2)
    with pytest.raises(TypeError, match="T must be an integer, got float 3.0"):
        causal_mask(3.0)
    with pytest.raises(TypeError, match="n_heads must be an integer, got float 2.0"):
        split_heads(torch.randn(1, 2, 4), 2.0)


def test_sdpa_rejects_mixed_dtypes():
    with pytest.raises(TypeError, match="share one dtype, got torch.float64, torch.float32"):
        scaled_dot_product_attention(torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 4), torch.randn(2, 4))


def test_padding_mask_rejects_no_lengths_and_zero_lengths():
    with pytest.raises(ValueError, match="at least one length, got none"):
        padding_mask([])
    with pytest.raises(ValueError, match=r"every length must be >= 1, got \[2, 0\]"):
        padding_mask([2, 0])


# --- every mask shape the docstrings promise --------------------------------------------------------------------

B, H, T = 2, 2, 4
KEY = torch.tensor([True, True, False, True])  # a key mask: the third key is padding


@pytest.mark.parametrize("name, mask", [
    ("()", torch.tensor(True)),
    ("(key,)", KEY),
    ("(1, key)", KEY[None]),
    ("(query, key)", KEY.expand(T, T)),
    ("(heads, query, key)", KEY.expand(H, T, T)),
    ("(batch, 1, 1, key)", KEY.expand(B, 1, 1, T)),
    ("(batch, heads, query, key)", KEY.expand(B, H, T, T)),
])
def test_mha_accepts_every_broadcastable_mask_and_equals_the_full_mask(name, mask):
    mha = MultiHeadAttention(8, H).eval()
    x = torch.randn(B, T, 8)
    full = mask.expand(B, H, T, T).contiguous()
    expected_out, expected_weights = mha(x, full)
    out, weights = mha(x, mask)
    torch.testing.assert_close(out, expected_out, atol=ATOL, rtol=0)
    torch.testing.assert_close(weights, expected_weights, atol=ATOL, rtol=0)
    out_only, none = mha(x, mask, need_weights=False)
    assert none is None
    torch.testing.assert_close(out_only, expected_out, atol=ATOL, rtol=0)
    if mask.dim() >= 1 and not mask.all():
        assert torch.all(weights[..., 2] == 0), name  # the padded key gets no weight
    q, k, v = qkv(B, H, T, T)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, mask)[0],
                               scaled_dot_product_attention(q, k, v, full)[0], atol=ATOL, rtol=0)


def test_mha_rejects_a_key_mask_of_the_wrong_length_or_blocking_everything():
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"broadcastable to \(\.\.\., query, key\) = \(1, 2, 3, 3\), got \(4,\)"):
        mha(torch.randn(1, 3, 8), torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="blocks every key"):
        mha(torch.randn(1, 3, 8), torch.zeros(3, dtype=torch.bool))


def test_padding_mask_requires_an_integer_max_len_and_integer_lengths():
    with pytest.raises(TypeError, match="max_len must be an integer, got float 4.5"):
        padding_mask([2, 3], max_len=4.5)
    with pytest.raises(TypeError, match="max_len must be an integer, got the bool True"):
        padding_mask([1], max_len=True)
    with pytest.raises(ValueError, match="max_len must be an integer >= 1, got 0"):
        padding_mask([1], max_len=0)
    with pytest.raises(ValueError, match="lengths must be a 1-D sequence of integers"):
        padding_mask([True, True])
    assert padding_mask([2, 3], max_len=4).shape == (2, 1, 1, 4)


@pytest.mark.parametrize("kwargs, error, words", [
    ({"d_model": True, "n_heads": 1}, TypeError, "d_model must be an integer, got the bool True"),
    ({"d_model": 8.0, "n_heads": 2}, TypeError, "d_model must be an integer, got float 8.0"),
    ({"d_model": 8, "n_heads": 0}, ValueError, "n_heads must be an integer >= 1, got 0"),
    ({"d_model": 8, "n_heads": 2, "dropout": 1.5}, ValueError, "dropout must be < 1, got 1.5"),
    ({"d_model": 8, "n_heads": 2, "dropout": -0.1}, ValueError, "dropout must be >= 0, got -0.1"),
])
def test_mha_rejects_bools_floats_and_impossible_sizes(kwargs, error, words):
    with pytest.raises(error, match=words):
        MultiHeadAttention(**kwargs)


def test_broadcast_shape_follows_torchs_rule():
    import random

    from course_lib.validation import broadcast_shape
    rng = random.Random(0)
    for _ in range(500):
        shapes = [tuple(rng.choice([1, 2, 3]) for _ in range(rng.randint(0, 4))) for _ in range(rng.randint(1, 3))]
        try:
            expected = tuple(torch.broadcast_shapes(*shapes))
        except RuntimeError:
            expected = None
        assert broadcast_shape(*shapes) == expected, shapes


# --- checked once, at the public entry: the same error at every level, and one look at the mask per call ----------

LAYERS = {
    "MultiHeadAttention": lambda: MultiHeadAttention(8, 2),
    "TransformerBlock": lambda: TransformerBlock(8, 2),
    "TransformerStack": lambda: TransformerStack(8, 2, 3),
}
ALL_FALSE_ROW = torch.ones(3, 3, dtype=torch.bool).index_fill_(0, torch.tensor([1]), False)


@pytest.mark.parametrize("where", list(LAYERS))
@pytest.mark.parametrize("mask, error, words", [
    (torch.ones(3, 3), TypeError, "mask must be a bool tensor.*got dtype torch.float32"),
    ([[True] * 3] * 3, TypeError, "mask must be a torch.Tensor, got list"),
    (torch.ones(4, 4, dtype=torch.bool), ValueError,
     r"broadcastable to \(\.\.\., query, key\) = \(1, 2, 3, 3\), got \(4, 4\)"),
    (ALL_FALSE_ROW, ValueError, "blocks every key for at least one query"),
])
def test_a_bad_mask_gives_the_same_error_at_every_level(where, mask, error, words):
    with pytest.raises(error, match=words):
        LAYERS[where]()(torch.randn(1, 3, 8), mask)


@pytest.mark.parametrize("where", list(LAYERS))
@pytest.mark.parametrize("x, error, words", [
    (torch.randn(3, 8), ValueError, r"x must have shape \(batch, time, d_model\), got \(3, 8\)"),
    (torch.randn(1, 3, 6), ValueError, r"x must have shape \(batch, time, d_model=8\), got \(1, 3, 6\)"),
    (torch.ones(1, 3, 8, dtype=torch.long), TypeError, "x must be a floating-point tensor"),
    (torch.randn(1, 0, 8), ValueError, "empty time axis"),
    (np.zeros((1, 3, 8), dtype=np.float32), TypeError, "x must be a torch.Tensor, got ndarray"),
])
def test_a_bad_input_gives_the_same_error_at_every_level(where, x, error, words):
    with pytest.raises(error, match=words):
        LAYERS[where]()(x)


@pytest.mark.parametrize("where", list(LAYERS))
@pytest.mark.parametrize("dtype, fix", [(torch.float64, r"x\.float\(\) or the model with model\.double\(\)"),
                                        (torch.bfloat16, r"x\.float\(\) or the model with model\.bfloat16\(\)")],
                         ids=["float64", "bfloat16"])
def test_an_input_of_another_dtype_than_the_weights_gives_the_same_error_at_every_level(where, dtype, fix):
    layer = LAYERS[where]()
    with pytest.raises(TypeError, match=rf"x has dtype {dtype} but the model's weights are torch.float32; "
                                        rf"convert the input with {fix}"):
        layer(torch.randn(2, 3, 8, dtype=dtype))
    x = torch.randn(2, 3, 8)
    out = layer.double()(x.double())  # the fix the message names works
    assert (out[0] if isinstance(out, tuple) else out).dtype == torch.float64


def test_the_dtype_check_reads_no_values_and_lets_autocast_do_its_work():
    """Comparing dtypes reads metadata only (no device sync); under torch.autocast a float32 model takes
    autocast's own dtype, which it converts by itself."""
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(TypeError, match="x has dtype torch.float64"):
        mha(torch.randn(1, 3, 8, dtype=torch.float64, device="meta"))  # a meta tensor has no values to read
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = mha(torch.randn(1, 3, 8, dtype=torch.bfloat16))
        assert out.dtype == torch.bfloat16
        with pytest.raises(TypeError, match="x has dtype torch.float64"):
            mha(torch.randn(1, 3, 8, dtype=torch.float64))  # autocast does not convert float64: still refused


@pytest.fixture
def mask_checks(monkeypatch):
    """Counts the looks at a mask's values (a device sync on a GPU) while the test runs."""
    from course_lib.models import attention

    calls = []
    original = attention.check_mask

    def counting(*args, **kwargs):
        calls.append(args[1])
        return original(*args, **kwargs)

    monkeypatch.setattr(attention, "check_mask", counting)
    return calls


def test_a_stack_looks_at_its_mask_once_per_call_not_once_per_layer(mask_checks):
    stack = TransformerStack(8, 2, 4).eval()
    x, mask = torch.randn(2, 5, 8), padding_mask([5, 3])
    out, weights = stack(x, mask, return_attention=True)
    assert len(mask_checks) == 1 and len(weights) == 4
    stack(x, mask)
    assert len(mask_checks) == 2
    assert torch.equal(out, stack(x, mask))


def test_models_that_build_their_own_mask_do_not_check_it(mask_checks):
    lm = TransformerLM(20, 8, 2, 3, 8).eval()
    lm(torch.randint(0, 20, (2, 6)), return_attention=True)
    lm.generate(torch.tensor([[1, 2]]), 3)
    VisionTransformer(8, 2, 1, 10, 8, 2, 2)(torch.rand(2, 1, 8, 8), return_attention=True)
    TransformerClassifier(20, 3, 8, 2, 3, 6)(torch.tensor([[5, 6, 0]]), return_attention=True)
    assert mask_checks == []


def test_layers_called_by_a_parent_still_run_their_hooks():
    """A parent calls its layers with check=False through nn.Module.__call__, so forward hooks still see every call
    (course_lib.experiments.analysis.capture relies on them)."""
    stack = TransformerStack(8, 2, 3).eval()
    seen = []
    for block in stack.blocks:
        block.register_forward_hook(lambda module, args, output: seen.append("block"))
        block.attn.register_forward_hook(lambda module, args, output: seen.append("attn"))
    stack(torch.randn(1, 4, 8), causal_mask(4))
    assert seen == ["attn", "block"] * 3


def test_scaled_dot_product_attention_checks_its_mask_once(mask_checks):
    q, k, v = qkv(Tq=4, Tk=4)
    scaled_dot_product_attention(q, k, v, causal_mask(4))
    assert mask_checks == [(2, 3, 4, 4)]
