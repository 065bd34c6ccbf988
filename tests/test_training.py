"""Training is deterministic and improves the loss; analysis finds and silences heads."""

import pytest
import torch

from course_lib import TransformerLM, agreement_vocabulary, fit, seed_everything
from course_lib.experiments.analysis import ablate_heads, ablation_effects, agreement_accuracy, capture_attention, head_scores
from course_lib.experiments.grammar import AgreementGrammar, encode_sentences
from course_lib.experiments.training import AdamW, TrainingHistory, language_model_loss, pick_device, random_batches


def small_training(seed: int, steps: int = 30):
    seed_everything(seed)
    vocab = agreement_vocabulary()
    ids, _ = encode_sentences(AgreementGrammar(seed).sentences(256), vocab)
    model = TransformerLM(len(vocab), d_model=32, n_heads=4, n_layers=2, max_len=24)
    history = fit(model, random_batches(ids, batch_size=32, seed=seed), language_model_loss, steps=steps,
                  lr=3e-3, progress=False)
    return model, history


def test_same_seed_gives_the_same_trained_weights():
    first, _ = small_training(seed=0)
    second, _ = small_training(seed=0)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), f"{name} differs between two runs with the same seed"
    third, _ = small_training(seed=1)
    assert not torch.equal(first.head.weight, third.head.weight)


def test_training_lowers_the_loss_and_records_history():
    _, history = small_training(seed=0, steps=60)
    assert isinstance(history, TrainingHistory) and len(history.losses) == 60
    assert sum(history.losses[-10:]) / 10 < 0.7 * sum(history.losses[:5]) / 5
    assert "60 steps" in repr(history)


def test_fit_runs_evaluation_on_schedule():
    model = torch.nn.Linear(2, 1)
    x, y = torch.randn(64, 2), torch.randn(64, 1)
    history = fit(model, random_batches(x, y, batch_size=8), lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(),
                  steps=25, evaluate=lambda m: {"mse": float(((m(x) - y) ** 2).mean())}, eval_every=10,
                  progress=False)
    assert history.eval_steps == [10, 20, 25] and set(history.evals[0]) == {"mse"}


def test_fit_and_batches_reject_bad_arguments():
    with pytest.raises(ValueError, match="steps must be >= 1"):
        fit(torch.nn.Linear(2, 1), lambda s: (), lambda m, b: None, steps=0)
    with pytest.raises(ValueError, match="same first dimension"):
        random_batches(torch.zeros(4, 2), torch.zeros(5), batch_size=2)


def test_pick_device_prefers_what_is_available():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device().type in ("cuda", "mps", "cpu")


def test_analysis_on_a_small_model():
    model, _ = small_training(seed=0)
    vocab = agreement_vocabulary()
    sentences = AgreementGrammar(5).sentences(40, min_attractors=1)
    ids, _ = encode_sentences(sentences, vocab)
    attention = capture_attention(model, ids)
    assert attention.shape == (40, 2, 4, ids.shape[1], ids.shape[1])
    scores = head_scores(model, sentences, vocab)
    assert scores["previous_token"].shape == (2, 4) and scores["verb_to_subject"].shape == (2, 4)
    assert torch.all((0 <= scores["verb_to_subject"]) & (scores["verb_to_subject"] <= 1))
    accuracy = agreement_accuracy(model, sentences, vocab)
    assert 0 <= accuracy <= 1
    assert ablation_effects(model, sentences, vocab).shape == (2, 4)


def test_ablating_a_head_zeroes_exactly_its_features():
    model, _ = small_training(seed=0, steps=2)
    ids = torch.tensor([[1, 5, 6, 7]])
    seen = {}

    def record(module, inputs):
        seen["x"] = inputs[0].clone()

    out_proj = model.blocks[1].attn.out_proj
    with ablate_heads(model, [(1, 2)]):
        handle = out_proj.register_forward_pre_hook(record)  # runs after the silencing hook
        model(ids)
        handle.remove()
    silenced = seen["x"]
    handle = out_proj.register_forward_pre_hook(record)
    model(ids)
    handle.remove()
    d_head = model.blocks[1].attn.d_head
    assert torch.all(silenced[..., 2 * d_head:3 * d_head] == 0)
    torch.testing.assert_close(silenced[..., :2 * d_head], seen["x"][..., :2 * d_head])
    assert seen["x"][..., 2 * d_head:3 * d_head].abs().sum() > 0, "the hook outlived the with block"
    with pytest.raises(ValueError, match=r"\(layer, head\)=\(2, 0\) is outside this model's 2 layers x 4 heads"):
        with ablate_heads(model, [(2, 0)]):
            pass


def test_agreement_accuracy_leaves_the_model_in_its_mode():
    model, _ = small_training(seed=0, steps=2)
    model.train()
    agreement_accuracy(model, AgreementGrammar(2).sentences(5), agreement_vocabulary())
    assert model.training


def _tiny_lm_task(seed=0):
    torch.manual_seed(seed)
    model = TransformerLM(vocab_size=12, d_model=16, n_heads=2, n_layers=1, max_len=8)
    ids = torch.randint(1, 12, (32, 8), generator=torch.Generator().manual_seed(seed))
    return model, random_batches(ids, batch_size=8, seed=seed)


def test_fit_stops_when_the_loss_diverges_naming_the_step_and_loss():
    from course_lib.experiments.training import TrainingDiverged

    model, make_batch = _tiny_lm_task()
    with pytest.raises(FloatingPointError, match=r"the loss became (nan|inf|-inf) at step \d+ of 50 \(lr=1e\+06\).*"
                                                 r"smaller learning rate, e.g. lr=100000") as error:
        fit(model, make_batch, language_model_loss, steps=50, lr=1e6, progress=False)
    assert isinstance(error.value, TrainingDiverged)


@pytest.mark.parametrize("kwargs, error, words", [
    ({"lr": float("inf")}, ValueError, "lr must be a finite number, got inf"),
    ({"lr": float("nan")}, ValueError, "lr must be a finite number, got nan"),
    ({"lr": 0}, ValueError, "lr must be > 0, got 0"),
    ({"lr": -1e-3}, ValueError, "lr must be > 0, got -0.001"),
    ({"lr": "1e-3"}, TypeError, "lr must be a number, got str"),
    ({"steps": 2.5}, TypeError, "steps must be an integer, got float 2.5"),
    ({"steps": True}, TypeError, "steps must be an integer, got the bool True"),
    ({"warmup": -1}, ValueError, "warmup must be an integer >= 0, got -1"),
    ({"clip": float("inf")}, ValueError, "clip must be a finite number"),
    ({"clip": -1.0}, ValueError, "clip must be >= 0, got -1.0"),
    ({"weight_decay": -0.1}, ValueError, "weight_decay must be >= 0, got -0.1"),
    ({"eval_every": 2.0}, TypeError, "eval_every must be an integer, got float 2.0"),
])
def test_fit_rejects_bad_hyperparameters_before_touching_the_weights(kwargs, error, words):
    model, make_batch = _tiny_lm_task()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(error, match=words):
        fit(model, make_batch, language_model_loss, **{"steps": 3, "progress": False, **kwargs})
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_random_batches_rejects_float_and_bool_sizes():
    with pytest.raises(TypeError, match="batch_size must be an integer, got float 4.5"):
        random_batches(torch.zeros(4, 2), batch_size=4.5)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        random_batches(torch.zeros(4, 2), batch_size=0)
    with pytest.raises(ValueError, match="at least one row"):
        random_batches(torch.zeros(0, 2), batch_size=2)


# --- numbers pinned on small known cases: the schedule, clipping ------------------------------------------------


class _Scalar(torch.nn.Module):
    """One float64 weight, so that each step of AdamW is visible in it exactly."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))


def _expected_lr(step, steps, warmup, lr):
    """fit's documented schedule: linear warmup over ``warmup`` steps, then a cosine from lr down to 10 % of it."""
    import math

    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup))))


def test_fit_follows_the_warmup_and_cosine_schedule_step_by_step():
    # loss = w: a constant gradient 1, so AdamW's update m_hat / (sqrt(v_hat) + eps) is 1 at every step and
    # each step moves w down by exactly that step's learning rate.
    model, seen = _Scalar(), []

    def loss_fn(m, batch):
        seen.append(m.w.item())
        return m.w.sum()

    steps, warmup, lr = 10, 3, 0.1
    fit(model, lambda step: (), loss_fn, steps=steps, lr=lr, warmup=warmup, clip=None, progress=False)
    seen.append(model.w.item())
    used = [before - after for before, after in zip(seen, seen[1:])]
    expected = [_expected_lr(s, steps, warmup, lr) for s in range(steps)]
    assert used == pytest.approx(expected, rel=1e-6)
    # The same numbers written out: warmup 1/3, 2/3, 1, then the cosine from 1 down towards 0.1 (x lr).
    assert used == pytest.approx([0.0333333, 0.0666667, 0.1, 0.1, 0.0955436, 0.0830570, 0.0650134, 0.0449866,
                                  0.0269430, 0.0144564], rel=1e-5)


def test_fit_clips_the_gradient_norm():
    # A huge first gradient (1e6) then a small one (1): clipped to norm 1, both steps look alike to AdamW and
    # the second moves w by exactly its learning rate; unclipped, the first gradient dominates the moments.
    def run(clip):
        model, seen = _Scalar(), []

        def loss_fn(m, batch):
            seen.append(m.w.item())
            return (1e6 if len(seen) == 1 else 1.0) * m.w.sum()

        fit(model, lambda step: (), loss_fn, steps=2, lr=0.1, clip=clip, progress=False)
        seen.append(model.w.item())
        return model, [before - after for before, after in zip(seen, seen[1:])]

    model, used = run(clip=1.0)
    assert float(model.w.grad.norm()) == pytest.approx(1.0, rel=1e-5)  # the last gradient, as AdamW used it
    assert used == pytest.approx([0.1, _expected_lr(1, 2, 0, 0.1)], rel=1e-5)
    model, used = run(clip=None)
    assert float(model.w.grad.norm()) == pytest.approx(1.0)
    assert used[1] < 0.7 * _expected_lr(1, 2, 0, 0.1)

    # With a large loss throughout, the gradient AdamW sees has norm exactly clip.
    big = TransformerLM(vocab_size=12, d_model=16, n_heads=2, n_layers=1, max_len=8)
    ids = torch.randint(1, 12, (8, 8), generator=torch.Generator().manual_seed(0))
    fit(big, random_batches(ids, batch_size=8), lambda m, b: 1e4 * language_model_loss(m, b), steps=2, lr=1e-3,
        clip=0.5, progress=False)
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in big.parameters() if p.grad is not None]))
    assert float(norm) == pytest.approx(0.5, rel=1e-4)


def test_fit_trains_where_gradients_were_switched_off():
    """A lesson that only inspects models switches gradients off; training a model there still works."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    with torch.no_grad():
        history = fit(model, lambda step: (x, y), lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(), steps=30,
                      lr=0.05, progress=False)
        assert not torch.is_grad_enabled()  # the caller's setting is back after training
    assert history.losses[-1] < history.losses[0]


# --- course_lib's AdamW is torch's, bit for bit ------------------------------------------------------------------


def _twin_models(seed):
    torch.manual_seed(seed)
    model = TransformerLM(12, d_model=16, n_heads=2, n_layers=1, max_len=8)
    twin = TransformerLM(12, d_model=16, n_heads=2, n_layers=1, max_len=8)
    twin.load_state_dict(model.state_dict())
    return model, twin


@pytest.mark.parametrize("weight_decay", [0.0, 0.01, 0.3])
def test_adamw_leaves_the_same_weights_as_torchs_bit_for_bit(weight_decay):
    model, twin = _twin_models(seed=3)
    ours = AdamW(model.parameters(), lr=5e-3, weight_decay=weight_decay)
    theirs = torch.optim.AdamW(twin.parameters(), lr=5e-3, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(0)
    for step in range(30):
        ids = torch.randint(0, 12, (4, 8), generator=generator)
        lr = 5e-3 * (0.5 + (step % 7) / 7)  # a learning rate that changes, as fit's schedule does
        ours.lr = lr
        for group in theirs.param_groups:
            group["lr"] = lr
        for net, optimizer in ((model, ours), (twin, theirs)):
            optimizer.zero_grad(set_to_none=True)
            language_model_loss(net, (ids,)).backward()
            if step % 5 == 4:  # a parameter without a gradient this step is left alone by both
                net.head.weight.grad = None
            optimizer.step()
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(a, b), f"{name}: largest difference {(a - b).abs().max().item():.3g}"


def test_fit_trains_exactly_as_with_torchs_adamw_and_lambdalr():
    # fit's loop as it was written with torch.optim.AdamW and torch.optim.lr_scheduler.LambdaLR.
    model, twin = _twin_models(seed=4)
    ids = torch.randint(1, 12, (64, 8), generator=torch.Generator().manual_seed(1))
    make_batch, same_batches = (random_batches(ids, batch_size=8, seed=0) for _ in range(2))
    loss_fn = lambda m, batch: language_model_loss(m, batch, pad_id=0)  # noqa: E731
    steps, warmup, lr = 25, 5, 5e-3
    fit(model, make_batch, loss_fn, steps=steps, lr=lr, warmup=warmup, progress=False)
    optimizer = torch.optim.AdamW(twin.parameters(), lr=lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _expected_lr(s, steps, warmup, 1.0))
    twin.train()
    for step in range(steps):
        loss = loss_fn(twin, same_batches(step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(a, b), f"{name}: largest difference {(a - b).abs().max().item():.3g}"


def test_adamw_rejects_bad_settings_saying_what_it_expected():
    weight = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="non-empty list of tensors"):
        AdamW([])
    with pytest.raises(ValueError, match="betas must be two numbers"):
        AdamW([weight], betas=(0.9, 1.0))
    with pytest.raises((ValueError, TypeError), match="lr"):
        AdamW([weight], lr=-1)


def test_seed_everything_repeats_python_numpy_and_torch_and_refuses_a_bad_seed():
    import random

    import numpy as np

    from course_lib.experiments.training import seed_everything

    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(()))

    seed_everything(7)
    first = draw()
    seed_everything(np.int64(7))  # any integer type, as everywhere in course_lib
    assert draw() == first
    seed_everything(8)
    assert draw() != first
    for bad, error in ((1.5, TypeError), ("7", TypeError), (True, TypeError), (-1, ValueError)):
        with pytest.raises(error, match="seed must be an integer"):
            seed_everything(bad)
