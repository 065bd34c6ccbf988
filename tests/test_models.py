"""The course's models: equal to PyTorch's blocks, causal where they should be, clear on bad input."""

import numpy as np
import pytest
import torch
from torch import nn

from course_lib import (ClassifierConfig, GRUConfig, GRULanguageModel, LMConfig, MultiHeadAttention, TransformerBlock,
                        TransformerClassifier, TransformerConfig, TransformerLM, TransformerStack, ViTConfig,
                        VisionTransformer, causal_mask, image_to_patches, make_shapes)
from course_lib.models.block import MLP
from course_lib.models.positions import LearnedPositions, SinusoidalPositions, sinusoidal_positions

ATOL = 1e-5


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def torch_layer(d_model=16, n_heads=4, d_ff=32):
    return nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout=0.0, activation="gelu",
                                      batch_first=True, norm_first=True).eval()


@pytest.mark.parametrize("causal", [False, True])
def test_block_from_torch_matches_transformer_encoder_layer(causal):
    layer = torch_layer()
    block = TransformerBlock.from_torch(layer).eval()
    x = torch.randn(3, 5, 16)
    mask = causal_mask(5) if causal else None
    expected = layer(x, src_mask=None if mask is None else ~mask)
    torch.testing.assert_close(block(x, mask), expected, atol=ATOL, rtol=0)


def test_block_from_torch_matches_in_training_mode_too():
    layer = torch_layer()
    layer.train()
    block = TransformerBlock.from_torch(layer).train()
    x = torch.randn(2, 4, 16, requires_grad=True)
    torch.testing.assert_close(block(x), layer(x), atol=ATOL, rtol=0)


def test_block_from_torch_rejects_post_norm_or_relu():
    with pytest.raises(ValueError, match="norm_first=True"):
        TransformerBlock.from_torch(nn.TransformerEncoderLayer(16, 4, batch_first=True, activation="gelu"))
    with pytest.raises(ValueError, match='activation="gelu"'):
        TransformerBlock.from_torch(nn.TransformerEncoderLayer(16, 4, batch_first=True, norm_first=True))


def test_block_rejects_wrong_shapes_before_any_layer_runs():
    block = TransformerBlock(16, 4)
    with pytest.raises(ValueError, match=r"\(batch, time, d_model=16\), got \(2, 5, 7\)"):
        block(torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match=r"got \(5, 16\)"):
        block(torch.randn(5, 16))
    with pytest.raises(TypeError, match="floating-point"):
        block(torch.ones(1, 2, 16, dtype=torch.long))


def test_block_returns_attention_when_asked_without_changing_output():
    block = TransformerBlock(16, 4).eval()
    x = torch.randn(2, 5, 16)
    y, weights = block(x, causal_mask(5), return_attention=True)
    assert weights.shape == (2, 4, 5, 5)
    assert torch.equal(y, block(x, causal_mask(5)))


def test_language_model_shapes_and_return_attention_leaves_logits_identical():
    model = TransformerLM(vocab_size=20, d_model=16, n_heads=4, n_layers=2, max_len=8).eval()
    ids = torch.randint(0, 20, (3, 7))
    logits = model(ids)
    logits_again, attention = model(ids, return_attention=True)
    assert logits.shape == (3, 7, 20)
    assert len(attention) == 2 and all(a.shape == (3, 4, 7, 7) for a in attention)
    assert torch.equal(logits, logits_again)
    torch.testing.assert_close(attention[0].sum(-1), torch.ones(3, 4, 7), atol=ATOL, rtol=0)


def test_language_model_is_causal():
    model = TransformerLM(vocab_size=20, d_model=16, n_heads=4, n_layers=2, max_len=8).eval()
    ids = torch.randint(0, 20, (2, 8))
    changed = ids.clone()
    changed[:, 5] = (changed[:, 5] + 1) % 20
    before, after = model(ids), model(changed)
    torch.testing.assert_close(before[:, :5], after[:, :5], atol=0, rtol=0)
    assert not torch.allclose(before[:, 5:], after[:, 5:]), "the changed token had no effect at all"


def test_language_model_rejects_bad_ids():
    model = TransformerLM(vocab_size=20, d_model=16, n_heads=4, n_layers=1, max_len=8)
    with pytest.raises(ValueError, match=r"\[0, 20\).*got values from 0 to 25"):
        model(torch.tensor([[0, 25]]))
    with pytest.raises(ValueError, match=r"max_len=8.*\(1, 9\)"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(TypeError, match="dtype torch.long.*torch.float32"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"\(batch, time\), got \(3,\)"):
        model(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="empty time axis"):
        model(torch.zeros(1, 0, dtype=torch.long))


def test_language_model_generate_extends_sequence():
    model = TransformerLM(vocab_size=20, d_model=16, n_heads=4, n_layers=1, max_len=8).eval()
    out = model.generate(torch.tensor([[1, 2]]), new_tokens=3)
    assert out.shape == (1, 5) and out[0, :2].tolist() == [1, 2]


def test_classifier_ignores_padding():
    model = TransformerClassifier(vocab_size=20, n_classes=3, d_model=16, n_heads=4, n_layers=2, max_len=6).eval()
    ids = torch.tensor([[5, 6, 7, 0, 0]])
    padded_more = torch.tensor([[5, 6, 7, 0, 0, 0]])
    torch.testing.assert_close(model(ids), model(padded_more), atol=ATOL, rtol=0)
    assert model.encode(ids).shape == (1, 16)
    logits, attention = model(ids, return_attention=True)
    assert logits.shape == (1, 3) and attention[0].shape == (1, 4, 5, 5)
    assert torch.all(attention[0][..., 3:] == 0), "a query attended to padding"


def test_classifier_with_cls_pooling():
    model = TransformerClassifier(20, 3, 16, 4, 1, max_len=6, pooling="cls").eval()
    logits, attention = model(torch.tensor([[5, 6, 0]]), return_attention=True)
    assert logits.shape == (1, 3) and attention[0].shape == (1, 4, 4, 4)


def test_vision_transformer_shapes_and_errors():
    images, labels = make_shapes(4, size=16)
    model = VisionTransformer(image_size=16, patch=4, channels=1, n_classes=4, d_model=16, n_heads=4, n_layers=1)
    logits, attention = model(images, return_attention=True)
    assert logits.shape == (4, 4) and attention[0].shape == (4, 4, 17, 17)  # 16 patches + cls
    with pytest.raises(ValueError, match=r"\(batch, 1, 16, 16\), got \(4, 3, 16, 16\)"):
        model(torch.rand(4, 3, 16, 16))


def test_gru_baseline_shapes_and_comparable_size():
    gru = GRULanguageModel(vocab_size=30, d_model=32, n_layers=4)
    lm = TransformerLM(vocab_size=30, d_model=32, n_heads=4, n_layers=2, max_len=16)
    assert gru(torch.randint(0, 30, (2, 9))).shape == (2, 9, 30)
    n_gru = sum(p.numel() for p in gru.parameters())
    n_lm = sum(p.numel() for p in lm.parameters())
    assert 0.7 < n_gru / n_lm < 1.3, (n_gru, n_lm)


def test_sinusoidal_positions_follow_vaswani():
    enc = sinusoidal_positions(6, 8)
    t, i = 3, 1  # position 3, feature pair 1
    angle = t / 10000 ** (2 * i / 8)
    assert enc.shape == (6, 8)
    assert enc[t, 2 * i].item() == pytest.approx(torch.sin(torch.tensor(angle)).item(), abs=1e-6)
    assert enc[t, 2 * i + 1].item() == pytest.approx(torch.cos(torch.tensor(angle)).item(), abs=1e-6)
    assert torch.all(enc[0, 0::2] == 0) and torch.all(enc[0, 1::2] == 1)


def test_position_modules_add_one_vector_per_position():
    x = torch.zeros(2, 5, 8)
    torch.testing.assert_close(SinusoidalPositions(10, 8)(x)[0], sinusoidal_positions(5, 8))
    learned = LearnedPositions(10, 8)
    torch.testing.assert_close(learned(x)[1], learned.table.weight[:5])
    with pytest.raises(ValueError, match=r"time <= 10.*got \(2, 11, 8\)"):
        learned(torch.zeros(2, 11, 8))
    with pytest.raises(ValueError, match="even d"):
        sinusoidal_positions(4, 7)


def test_block_from_torch_rejects_what_it_cannot_reproduce():
    tanh_gelu = nn.TransformerEncoderLayer(16, 4, batch_first=True, norm_first=True,
                                           activation=nn.GELU(approximate="tanh"))
    with pytest.raises(ValueError, match="not the tanh approximation"):
        TransformerBlock.from_torch(tanh_gelu)
    no_bias = nn.TransformerEncoderLayer(16, 4, batch_first=True, norm_first=True, activation="gelu", bias=False)
    with pytest.raises(ValueError, match="bias=True"):
        TransformerBlock.from_torch(no_bias)


def test_language_model_rejects_impossible_sizes():
    with pytest.raises(ValueError, match="vocab_size must be an integer >= 1, got 0"):
        TransformerLM(vocab_size=0, d_model=16, n_heads=4, n_layers=1, max_len=8)


def test_generate_rejects_negative_or_fractional_counts_and_bad_temperatures():
    model = TransformerLM(vocab_size=20, d_model=16, n_heads=4, n_layers=1, max_len=8).eval()
    ids = torch.tensor([[1, 2]])
    with pytest.raises(ValueError, match="new_tokens must be an integer >= 0, got -5"):
        model.generate(ids, -5)
    with pytest.raises(TypeError, match="new_tokens must be an integer, got float 2.5"):
        model.generate(ids, 2.5)
    with pytest.raises(TypeError, match="new_tokens must be an integer, got the bool True"):
        model.generate(ids, True)
    for temperature, words in ((-1.0, "temperature must be >= 0, got -1.0"),
                               (float("nan"), "temperature must be a finite number, got nan"),
                               (float("inf"), "temperature must be a finite number, got inf")):
        with pytest.raises(ValueError, match=words):
            model.generate(ids, 1, temperature=temperature)
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 20\)"):
        model.generate(torch.tensor([[1, 25]]), 0)  # checked even when nothing is generated
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        model.generate(ids, 1, temperature=1.0, generator=0)
    assert model.generate(ids, 0).tolist() == [[1, 2]]


@pytest.mark.parametrize("make, error, words", [
    (lambda: TransformerBlock(16, 4, d_ff=0), ValueError, "d_ff must be an integer >= 1, got 0"),
    (lambda: TransformerBlock(16, 4, d_ff=32.0), TypeError, "d_ff must be an integer, got float 32.0"),
    (lambda: TransformerBlock(16, 4, dropout=2), ValueError, "dropout must be < 1, got 2.0"),
    (lambda: TransformerLM(20, 16, 4, n_layers=True, max_len=8), TypeError,
     "n_layers must be an integer, got the bool True"),
    (lambda: TransformerLM(20, 16, n_heads=True, n_layers=1, max_len=8), TypeError, "n_heads must be an integer, got the bool"),
])
def test_models_reject_zero_float_and_bool_sizes(make, error, words):
    with pytest.raises(error, match=words):
        make()


# --- numbers pinned on small known cases: sampling, initialisation ----------------------------------------------


def _lm_with_fixed_logits(logits):
    """A TransformerLM whose next-token logits are ``logits`` whatever the input: a zero head, bias = logits."""
    model = TransformerLM(vocab_size=len(logits), d_model=8, n_heads=2, n_layers=1, max_len=4).eval()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor(logits))
    return model


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
def test_generate_samples_from_softmax_of_logits_over_temperature(temperature):
    p = torch.tensor([0.1, 0.2, 0.3, 0.4])
    model = _lm_with_fixed_logits(p.log().tolist())
    n = 20000
    out = model.generate(torch.zeros(n, 1, dtype=torch.long), 1, temperature=temperature,
                         generator=torch.Generator().manual_seed(0))
    frequencies = torch.bincount(out[:, 1], minlength=4).double() / n
    expected = (p.double().log() / temperature).softmax(-1)  # T=1: p; T=2: ∝ sqrt(p); T=0.5: ∝ p²
    torch.testing.assert_close(frequencies, expected, atol=0.015, rtol=0)  # 5 standard errors at n=20000
    again = model.generate(torch.zeros(n, 1, dtype=torch.long), 1, temperature=temperature,
                           generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # a seeded generator repeats the draw


def test_generate_at_temperature_zero_picks_the_likeliest_token_every_time():
    model = _lm_with_fixed_logits([0.0, 3.0, 1.0, 2.0])
    out = model.generate(torch.zeros(5, 1, dtype=torch.long), 3)
    assert out[:, 1:].eq(1).all()


def test_init_weights_gives_linear_and_embedding_weights_std_0_02_and_keeps_biases():
    from course_lib.models.block import init_weights

    torch.manual_seed(0)
    model = TransformerLM(vocab_size=500, d_model=128, n_heads=4, n_layers=2, max_len=16)
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Embedding))]
    assert len(layers) == 2 + 2 * 6 + 1  # token and position embeddings, 6 per block (q, k, v, out, fc, proj), head
    for layer in layers:
        std, mean = float(layer.weight.detach().std()), float(layer.weight.detach().mean())
        assert 0.018 < std < 0.022 and abs(mean) < 0.003, (layer, std, mean)
    for norm in (m for m in model.modules() if isinstance(m, nn.LayerNorm)):
        assert torch.equal(norm.weight, torch.ones_like(norm.weight))  # LayerNorms are left alone

    linear = nn.Linear(256, 256)
    bias = linear.bias.clone()
    assert float(linear.weight.detach().std()) > 0.03  # PyTorch's default: uniform, std 1/sqrt(3 * 256) ≈ 0.036
    linear.apply(init_weights)
    weight = linear.weight.detach()
    assert 0.019 < float(weight.std()) < 0.021 and abs(float(weight.mean())) < 0.001
    assert torch.equal(linear.bias, bias)


# --- one policy for settings: the same mistake gives the same error at every level ---------------------------


# Each builder takes the settings under test and fills in the rest with sensible values.
HEADS_BUILDERS = {
    "MultiHeadAttention": lambda d, h: MultiHeadAttention(d, h),
    "TransformerBlock": lambda d, h: TransformerBlock(d, h),
    "TransformerStack": lambda d, h: TransformerStack(d, h, 2),
    "TransformerConfig": lambda d, h: TransformerConfig(d, h),
    "TransformerLM": lambda d, h: TransformerLM(20, d, h, 1, 8),
    "LMConfig": lambda d, h: LMConfig(20, d, h, 1, 8),
    "TransformerClassifier": lambda d, h: TransformerClassifier(20, 3, d, h, 1, 8),
    "VisionTransformer": lambda d, h: VisionTransformer(8, 2, 1, 10, d, h, 1),
}
D_MODEL_BUILDERS = {
    **{name: (lambda d, build=build: build(d, 2)) for name, build in HEADS_BUILDERS.items()},
    "MLP": lambda d: MLP(d, 16),
    "GRULanguageModel": lambda d: GRULanguageModel(20, d, 1),
}
N_LAYERS_BUILDERS = {
    "TransformerStack": lambda n: TransformerStack(8, 2, n),
    "TransformerConfig": lambda n: TransformerConfig(8, 2, n),
    "TransformerLM": lambda n: TransformerLM(20, 8, 2, n, 8),
    "TransformerLM keywords": lambda n: TransformerLM(vocab_size=20, d_model=8, n_heads=2, n_layers=n, max_len=8),
    "LMConfig": lambda n: LMConfig(20, 8, 2, n, 8),
    "TransformerClassifier": lambda n: TransformerClassifier(20, 3, 8, 2, n, 8),
    "VisionTransformer": lambda n: VisionTransformer(8, 2, 1, 10, 8, 2, n),
    "GRULanguageModel": lambda n: GRULanguageModel(20, 8, n),
}


@pytest.mark.parametrize("where", list(D_MODEL_BUILDERS))
@pytest.mark.parametrize("value, words", [(8.0, "got float 8.0"), ("8", "got str '8'"), (True, "got the bool True")])
def test_d_model_of_the_wrong_kind_is_a_type_error_at_every_level(where, value, words):
    with pytest.raises(TypeError, match=f"d_model must be an integer, {words}"):
        D_MODEL_BUILDERS[where](value)


@pytest.mark.parametrize("where", list(N_LAYERS_BUILDERS))
@pytest.mark.parametrize("value, words", [(2.0, "got float 2.0"), ("2", "got str '2'"), (True, "got the bool True")])
def test_n_layers_of_the_wrong_kind_is_a_type_error_at_every_level(where, value, words):
    with pytest.raises(TypeError, match=f"n_layers must be an integer, {words}"):
        N_LAYERS_BUILDERS[where](value)


@pytest.mark.parametrize("where", list(N_LAYERS_BUILDERS))
def test_zero_layers_is_a_value_error_at_every_level(where):
    with pytest.raises(ValueError, match="n_layers must be an integer >= 1, got 0"):
        N_LAYERS_BUILDERS[where](0)


@pytest.mark.parametrize("where", list(HEADS_BUILDERS))
def test_heads_that_do_not_divide_d_model_are_a_value_error_at_every_level(where):
    with pytest.raises(ValueError, match="d_model=10 must be divisible by n_heads=4"):
        HEADS_BUILDERS[where](10, 4)


@pytest.mark.parametrize("where", sorted(set(D_MODEL_BUILDERS) | set(N_LAYERS_BUILDERS)))
def test_numpy_integers_are_accepted_everywhere_and_build_the_same_model(where):
    build = D_MODEL_BUILDERS.get(where) or N_LAYERS_BUILDERS[where]
    value = 8 if where in D_MODEL_BUILDERS else 2
    torch.manual_seed(0)
    with_int = build(value)
    torch.manual_seed(0)
    with_numpy = build(np.int64(value))
    if isinstance(with_int, nn.Module):
        assert repr(with_int) == repr(with_numpy)
        for (name, a), b in zip(with_int.state_dict().items(), with_numpy.state_dict().values()):
            assert torch.equal(a, b), name
    config = getattr(with_numpy, "config", with_numpy)
    if not isinstance(config, nn.Module):
        assert all(type(v) is not np.int64 for v in vars(config).values()), config  # settled to plain ints


@pytest.mark.parametrize("make, error, words", [
    (lambda: TransformerLM(20, 16, 4, 1, 8, positions="rotary"), ValueError,
     'positions must be "learned" or "sinusoidal", got \'rotary\''),
    (lambda: TransformerLM(20, 16, 4, 1, 8, positions=None), TypeError,
     'positions must be "learned" or "sinusoidal", got NoneType None'),
    (lambda: TransformerLM(20, 16, 4, 1, 8, mask=True), TypeError, 'mask must be "causal", "all" or "self", got bool'),
    (lambda: TransformerLM(20, 16, 4, 1, max_len=8.0), TypeError, "max_len must be an integer, got float 8.0"),
    (lambda: TransformerLM(20.0, 16, 4, 1, 8), TypeError, "vocab_size must be an integer, got float 20.0"),
    (lambda: TransformerLM(20, 16, 4, 1, 8, dropout="0.1"), TypeError, "dropout must be a number, got str"),
    (lambda: TransformerClassifier(20, 3, 16, 4, 1, 8, pooling="max"), ValueError,
     'pooling must be "mean" or "cls", got \'max\''),
    (lambda: TransformerClassifier(20, 3, 16, 4, 1, 8, pad_id=20), ValueError,
     r"pad_id must be a token id in \[0, 20\)"),
    (lambda: TransformerClassifier(20, 3, 16, 4, 1, 8, pad_id=0.0), TypeError, "pad_id must be an integer"),
    (lambda: VisionTransformer(8, 3, 1, 10, 16, 4, 1), ValueError, "patch=3 must divide image_size=8"),
    (lambda: VisionTransformer(8, 2.0, 1, 10, 16, 4, 1), TypeError, "patch must be an integer, got float 2.0"),
    (lambda: VisionTransformer(8, 2, 1, 10, 16, 4, 1, pooling="first"), ValueError, "pooling must be"),
    (lambda: GRULanguageModel(20, 16, 1, max_len=0), ValueError, "max_len must be an integer >= 1, got 0"),
    (lambda: GRULanguageModel(20, 16, 1, hidden_size=2.5), TypeError, "hidden_size must be an integer, got float"),
    (lambda: TransformerStack(8, 2, 1, residual=1), TypeError, "residual must be True or False, got int 1"),
    (lambda: MultiHeadAttention(8, 2, bias="yes"), TypeError, "bias must be True or False, got str 'yes'"),
])
def test_settings_follow_the_one_policy(make, error, words):
    with pytest.raises(error, match=words):
        make()


# --- a config object, or the same settings as arguments -------------------------------------------------------


@pytest.mark.parametrize("model_class, config", [
    (TransformerLM, LMConfig(20, 16, 4, 2, 8, d_ff=24, positions="sinusoidal", mask="self")),
    (TransformerStack, TransformerConfig(16, 4, 2, residual=False)),
    (TransformerBlock, TransformerConfig(16, 4, d_ff=24, norm=False)),
    (TransformerClassifier, ClassifierConfig(20, 3, 16, 4, 1, 6, pooling="cls")),
    (VisionTransformer, ViTConfig(8, 2, 1, 10, 16, 4, 1, pooling="mean")),
    (GRULanguageModel, GRUConfig(20, 16, 2, hidden_size=24)),
])
def test_a_config_builds_the_same_model_as_its_settings(model_class, config):
    settings = {name: getattr(config, name) for name in config.__dataclass_fields__}
    if model_class is TransformerBlock:
        del settings["n_layers"]  # one block
    torch.manual_seed(0)
    from_config = model_class(config)
    torch.manual_seed(0)
    from_settings = model_class(**settings)
    assert from_config.config == from_settings.config == config
    assert from_config.config is not config  # a copy: changing yours later changes nothing in the model
    assert repr(from_config) == repr(from_settings)
    for (name, a), b in zip(from_config.state_dict().items(), from_settings.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("setting, value, error, words", [
    ("patch", 0, ValueError, "patch must be an integer >= 1, got 0"),  # was a ZeroDivisionError
    ("patch", -4, ValueError, "patch must be an integer >= 1, got -4"),
    ("channels", 0, ValueError, "channels must be an integer >= 1, got 0"),  # was accepted
    ("n_classes", 0, ValueError, "n_classes must be an integer >= 1, got 0"),  # was accepted
    ("image_size", 8.0, TypeError, "image_size must be an integer, got float 8.0"),  # was a raw torch error
])
@pytest.mark.parametrize("build", ["VisionTransformer", "ViTConfig"])
def test_vision_transformer_settings_follow_the_one_policy(build, setting, value, error, words):
    settings = dict(image_size=8, patch=4, channels=1, n_classes=3, d_model=8, n_heads=2, n_layers=1)
    settings[setting] = value
    with pytest.raises(error, match=words):
        {"VisionTransformer": VisionTransformer, "ViTConfig": ViTConfig}[build](**settings)


def test_a_config_fills_in_its_defaults_and_rejects_mixing():
    assert TransformerConfig(16, 4).d_ff == 64 and LMConfig(20, 16, 4, 1, 8).d_ff == 64
    assert GRUConfig(20, 16, 1).hidden_size == 16
    assert TransformerLM(20, 16, 4, 1, 8).config == LMConfig(20, 16, 4, 1, 8)
    with pytest.raises(TypeError, match="give the settings as LMConfig alone, or one by one, not both"):
        TransformerLM(LMConfig(20, 16, 4, 1, 8), dropout=0.1)
    with pytest.raises(TypeError, match="expected the settings as LMConfig, got TransformerConfig"):
        TransformerLM(TransformerConfig(16, 4))
    config = LMConfig(20, 16, 4, 1, 8)
    config.n_layers = 1.5  # changed by hand after it was checked: the model checks its copy again
    with pytest.raises(TypeError, match="n_layers must be an integer, got float 1.5"):
        TransformerLM(config)


def test_the_block_keeps_its_own_order_of_arguments():
    block = TransformerBlock(16, 4, 24, 0.0, False)  # d_model, n_heads, d_ff, dropout, residual
    assert block.mlp.fc.out_features == 24 and not block.residual and block.norm
    assert block.config == TransformerConfig(16, 4, 1, 24, 0.0, False, True)


# --- bad input to the models, refused at the entry ---------------------------------------------------------------


def test_inputs_of_the_wrong_kind_are_type_errors():
    from course_lib import sinusoidal_positions

    with pytest.raises(TypeError, match="T must be an integer, got float 4.0"):
        sinusoidal_positions(4.0, 8)
    with pytest.raises(TypeError, match="patch must be an integer, got float 2.0"):
        image_to_patches(torch.rand(1, 1, 4, 4), 2.0)
    assert torch.equal(sinusoidal_positions(np.int64(4), np.int32(8)), sinusoidal_positions(4, 8))
    gru = GRULanguageModel(20, 8, 1)
    with pytest.raises(TypeError, match="hidden must be a torch.Tensor, got list"):
        gru(torch.zeros(1, 3, dtype=torch.long), [[0.0] * 8])


@pytest.mark.parametrize("dtype, fix", [(torch.float64, r"images\.float\(\) or the model with model\.double\(\)"),
                                        (torch.float16, r"images\.float\(\) or the model with model\.half\(\)")],
                         ids=["float64", "float16"])
def test_images_of_another_dtype_than_the_weights_are_a_type_error(dtype, fix):
    model = VisionTransformer(8, 4, 1, 3, 8, 2, 1)
    with pytest.raises(TypeError, match=rf"images has dtype {dtype} but the model's weights are torch.float32; "
                                        rf"convert the input with {fix}"):
        model(torch.rand(2, 1, 8, 8, dtype=dtype))
    with pytest.raises(TypeError, match="images has dtype"):
        model(torch.rand(2, 1, 8, 8, dtype=dtype), return_attention=True)
    images = torch.rand(2, 1, 8, 8)
    assert model.double()(images.double()).dtype == torch.float64  # the fix the message names works
    with pytest.raises(TypeError, match=r"float32 but the model's weights are torch.float64; .*images\.double\(\)"):
        model(images)


def test_a_mean_pooling_classifier_refuses_a_sequence_of_padding_only():
    model = TransformerClassifier(20, 3, 16, 4, 1, max_len=6)
    with pytest.raises(ValueError, match=r"padding only \(pad_id=0\)"):
        model(torch.tensor([[5, 6, 0], [0, 0, 0]]))
    cls_model = TransformerClassifier(20, 3, 16, 4, 1, max_len=6, pooling="cls")
    assert cls_model(torch.tensor([[0, 0, 0]])).shape == (1, 3)  # the class vector is always there to read


def test_help_shows_each_models_settings_not_star_args():
    import inspect

    import course_lib

    assert list(inspect.signature(course_lib.TransformerLM).parameters)[:5] == [
        "vocab_size", "d_model", "n_heads", "n_layers", "max_len"]
    assert list(inspect.signature(course_lib.TransformerBlock).parameters)[:3] == ["d_model", "n_heads", "d_ff"]
    assert "n_layers" in inspect.signature(course_lib.TransformerStack).parameters
    for name in ("TransformerClassifier", "VisionTransformer", "GRULanguageModel"):
        assert "args" not in inspect.signature(getattr(course_lib, name)).parameters, name
    model = course_lib.TransformerLM(10, 8, 2, 1, 5)
    assert "vocab_size" not in inspect.signature(model).parameters  # a model is called like its forward
