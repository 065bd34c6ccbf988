"""TransformerBlock / TransformerStack's ablation switches (lesson 07): ``residual`` and ``norm``.

The defaults must compute exactly what the block computed before the switches existed: the reference
model's training depends on it, bit for bit.
"""

import pytest
import torch
from torch import nn

from course_lib import TransformerBlock, TransformerLM, TransformerStack, causal_mask
from course_lib.models.block import init_weights


def pre_ln(block, x, mask=None):
    """The pre-LN block written out, as before the switches existed."""
    attended, _ = block.attn(block.ln1(x), mask, need_weights=False)
    x = x + block.drop(attended)
    return x + block.mlp(block.ln2(x))


def test_defaults_are_the_pre_ln_block_bit_for_bit():
    torch.manual_seed(0)
    block = TransformerBlock(16, 2).eval()
    x = torch.randn(3, 5, 16)
    assert block.residual and block.norm
    assert isinstance(block.ln1, nn.LayerNorm) and isinstance(block.ln2, nn.LayerNorm)
    for mask in (None, causal_mask(5)):
        assert torch.equal(block(x, mask), pre_ln(block, x, mask))
    assert "residual" not in repr(block) and "norm=False" not in repr(block)


def test_defaults_build_the_same_parameters_from_the_same_seed():
    torch.manual_seed(1)
    old_style = TransformerStack(16, 2, 2)
    torch.manual_seed(1)
    explicit = TransformerStack(16, 2, 2, residual=True, norm=True)
    assert list(old_style.state_dict()) == list(explicit.state_dict())
    for (name, a), b in zip(old_style.state_dict().items(), explicit.state_dict().values()):
        assert torch.equal(a, b), name


def test_without_residuals_each_sublayer_replaces_x():
    torch.manual_seed(2)
    block = TransformerBlock(8, 2, residual=False).eval()
    x = torch.randn(2, 4, 8)
    attended, _ = block.attn(block.ln1(x), None, need_weights=False)
    assert torch.equal(block(x), block.mlp(block.ln2(attended)))
    assert "residual=False" in repr(block)


def test_without_norm_every_layer_norm_is_an_identity():
    torch.manual_seed(3)
    stack = TransformerStack(8, 2, 3, norm=False)
    assert not any(isinstance(m, nn.LayerNorm) for m in stack.modules())
    assert isinstance(stack.ln_f, nn.Identity)
    assert all(isinstance(b.ln1, nn.Identity) and isinstance(b.ln2, nn.Identity) for b in stack.blocks)
    x = torch.randn(2, 4, 8)
    expected = x
    for block in stack.blocks:
        expected = expected + block.attn(expected, None, need_weights=False)[0]
        expected = expected + block.mlp(expected)
    assert torch.allclose(stack(x), expected, atol=1e-6)
    # no LayerNorm parameters: 2 x d_model fewer per LayerNorm (2 per block and the final one)
    with_norm = TransformerStack(8, 2, 3)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(with_norm) - count(stack) == (2 * 3 + 1) * 2 * 8


def test_switches_reach_every_block_and_return_attention_still_works():
    stack = TransformerStack(8, 2, 2, residual=False, norm=False)
    assert all(not b.residual and not b.norm for b in stack.blocks)
    out, weights = stack(torch.randn(1, 3, 8), causal_mask(3), return_attention=True)
    assert out.shape == (1, 3, 8) and len(weights) == 2 and weights[0].shape == (1, 2, 3, 3)


def test_an_ablated_stack_drops_into_a_language_model():
    torch.manual_seed(4)
    model = TransformerLM(20, d_model=16, n_heads=2, n_layers=2, max_len=8)
    model.stack = TransformerStack(16, 2, 2, residual=False)
    model.apply(init_weights)
    ids = torch.randint(0, 20, (2, 6))
    assert model(ids).shape == (2, 6, 20)
    changed = ids.clone()
    changed[:, 4:] = (changed[:, 4:] + 1) % 20
    assert torch.allclose(model(changed)[:, :4], model(ids)[:, :4])  # still causal


@pytest.mark.parametrize("cls, args", [(TransformerBlock, (8, 2)), (TransformerStack, (8, 2, 2))])
@pytest.mark.parametrize("option", ["residual", "norm"])
@pytest.mark.parametrize("value", [1, "yes", None])
def test_switches_must_be_bools(cls, args, option, value):
    with pytest.raises(TypeError, match=f"{option} must be True or False, got"):
        cls(*args, **{option: value})


def test_stack_still_names_the_expected_shape():
    with pytest.raises(ValueError, match=r"d_model=8"):
        TransformerStack(8, 2, 1, norm=False)(torch.randn(1, 3, 6))
