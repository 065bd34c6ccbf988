"""Generation (lesson 13): top-k sampling, one cached attention step, and generate with and without the cache."""

import math

import pytest
import torch

from course_lib.experiments.generation import attend_with_cache, generate, top_k_sample
from course_lib.models.attention import causal_mask, scaled_dot_product_attention
from course_lib.models.language_model import TransformerLM


def small_lm(max_len=16, seed=0, **kwargs):
    torch.manual_seed(seed)
    return TransformerLM(23, 16, 4, 2, max_len, **kwargs).eval()


# --- top_k_sample ---------------------------------------------------------------------------------------------------

def test_temperature_zero_and_k_one_are_greedy():
    logits = torch.randn(5, 11, generator=torch.Generator().manual_seed(0))
    assert torch.equal(top_k_sample(logits, temperature=0), logits.argmax(-1))
    assert torch.equal(top_k_sample(logits, k=3, temperature=0), logits.argmax(-1))
    assert torch.equal(top_k_sample(logits, k=1, temperature=2.0, generator=torch.Generator().manual_seed(1)),
                       logits.argmax(-1))


def test_draws_stay_among_the_k_likeliest_with_the_right_frequencies():
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, 3.0]])
    draws = top_k_sample(logits.repeat(20_000, 1), k=3, temperature=0.7, generator=torch.Generator().manual_seed(0))
    assert draws.dtype == torch.long and draws.shape == (20_000,)
    assert set(draws.tolist()) <= {5, 0, 1}  # the three largest logits
    kept = torch.tensor([2.0, 1.0, 3.0])
    expected = (kept / 0.7).softmax(-1)
    observed = torch.tensor([(draws == i).float().mean().item() for i in (0, 1, 5)])
    assert torch.allclose(observed, expected, atol=0.015)


def test_the_same_seed_gives_the_same_draws():
    logits = torch.randn(8, 30, generator=torch.Generator().manual_seed(3))
    a = top_k_sample(logits, 10, 1.0, torch.Generator().manual_seed(7))
    b = top_k_sample(logits, 10, 1.0, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


@pytest.mark.parametrize("kwargs, error", [
    ({"logits": torch.randn(4)}, ValueError),  # not (batch, vocab)
    ({"logits": torch.ones(2, 4, dtype=torch.long)}, ValueError),
    ({"logits": torch.randn(2, 4), "k": 0}, ValueError),
    ({"logits": torch.randn(2, 4), "k": 5}, ValueError),
    ({"logits": torch.randn(2, 4), "k": 2.5}, TypeError),
    ({"logits": torch.randn(2, 4), "temperature": -1}, ValueError),
    ({"logits": torch.randn(2, 4), "generator": 3}, TypeError),
])
def test_top_k_sample_refuses_bad_input(kwargs, error):
    with pytest.raises(error):
        top_k_sample(**kwargs)


# --- attend_with_cache ----------------------------------------------------------------------------------------------

def test_position_by_position_with_the_cache_is_causal_attention():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 4, generator=g) for _ in range(3))  # (B, H, T, d_head)
    expected, _ = scaled_dot_product_attention(q, k, v, causal_mask(7))
    k_cache = v_cache = torch.zeros(2, 3, 0, 4)
    outputs = []
    for t in range(7):
        out, k_cache, v_cache = attend_with_cache(q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1], k_cache, v_cache)
        assert out.shape == (2, 3, 1, 4) and k_cache.shape == (2, 3, t + 1, 4)
        outputs.append(out)
    assert torch.allclose(torch.cat(outputs, dim=2), expected, atol=1e-6)
    assert torch.equal(k_cache, k) and torch.equal(v_cache, v)


def test_an_empty_cache_gives_the_new_value():
    v_new = torch.randn(1, 2, 1, 3)
    out, _, _ = attend_with_cache(torch.randn(1, 2, 1, 3), torch.randn(1, 2, 1, 3), v_new, torch.zeros(1, 2, 0, 3),
                                  torch.zeros(1, 2, 0, 3))
    assert torch.allclose(out, v_new)  # one key: all the weight on it


# --- generate -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("temperature, k", [(0.0, None), (1.0, None), (0.8, 5)])
def test_the_cache_gives_the_same_tokens_within_and_past_the_context(temperature, k):
    model = small_lm(max_len=16)
    prompt = torch.randint(0, 23, (3, 4), generator=torch.Generator().manual_seed(1))
    for new_tokens in (1, 12, 30):  # 30: past max_len, where the window slides
        without = generate(model, prompt, new_tokens, temperature, k, torch.Generator().manual_seed(2), cache=False)
        with_cache = generate(model, prompt, new_tokens, temperature, k, torch.Generator().manual_seed(2), cache=True)
        assert without.shape == (3, 4 + new_tokens)
        assert torch.equal(without[:, :4], prompt)
        assert torch.equal(without, with_cache)


def test_greedy_generation_is_the_models_own_argmax():
    model = small_lm()
    prompt = torch.tensor([[1, 2, 3]])
    out = generate(model, prompt, 5, temperature=0)
    for t in range(3, 8):
        with torch.no_grad():
            assert out[0, t] == model(out[:, :t])[0, -1].argmax()


def test_generate_keeps_the_models_mode_and_accepts_zero_tokens():
    model = small_lm().train()
    prompt = torch.tensor([[1, 2]])
    assert torch.equal(generate(model, prompt, 0), prompt)
    assert model.training


@pytest.mark.parametrize("call, error", [
    (lambda m: generate(torch.nn.Linear(2, 2), torch.tensor([[1]]), 3), TypeError),
    (lambda m: generate(m, torch.tensor([[1.0]]), 3), TypeError),
    (lambda m: generate(m, torch.tensor([[99]]), 3), ValueError),
    (lambda m: generate(m, torch.zeros(1, 0, dtype=torch.long), 3), ValueError),
    (lambda m: generate(m, torch.tensor([[1]]), -1), ValueError),
    (lambda m: generate(small_lm(positions="sinusoidal"), torch.tensor([[1]]), 3), ValueError),
])
def test_generate_refuses_bad_input(call, error):
    with pytest.raises(error):
        call(small_lm())


def test_an_untrained_model_scores_about_log_vocab():
    # the uniform guess the lesson checks against: log2 V bits per token
    from course_lib.experiments.text_model import bits_per_character
    model = small_lm(max_len=8)
    ids = torch.randint(0, 23, (401,), generator=torch.Generator().manual_seed(0))
    assert abs(bits_per_character(model, ids, 400) - math.log2(23)) < 0.1
