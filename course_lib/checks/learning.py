"""Checks for lesson 02, learning: the loss, one gradient-descent update, one training step."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._core import Fail, Inputs, call, check, close, compare, fmt_number, non_contiguous, summary


@check("cross_entropy")
def check_cross_entropy(candidate) -> str:
    """``cross_entropy(logits (batch, classes), targets (batch,) long) -> ()``: mean of -log softmax at the target."""
    rng = Inputs(4)
    cases = [
        ("batch 4, 3 classes", rng.randn(4, 3), rng.randint(3, 4)),
        ("batch of 1", rng.randn(1, 5), torch.tensor([4])),
        ("2 classes, confident logits", 8 * rng.randn(6, 2), rng.randint(2, 6)),
        ("non-contiguous logits", non_contiguous(rng.randn(5, 4)), rng.randint(4, 5)),
    ]
    for label, logits, targets in cases:
        logits.requires_grad_()
        got = call(candidate, (logits, targets), ("logits", "targets"), label)
        with torch.no_grad():
            expected = F.cross_entropy(logits, targets)
            rows = torch.arange(len(targets))
            mistakes = [
                ("the minus sign is missing: the loss must be -log p(target), a positive number",
                 lambda: -expected),
                ("returns one loss per example: average them into one number with .mean()",
                 lambda: F.cross_entropy(logits, targets, reduction="none")),
                ("summed over the batch instead of averaging (.mean())",
                 lambda: F.cross_entropy(logits, targets, reduction="sum")),
                ("softmax over the batch (dim=0) instead of over the classes (dim=-1)",
                 lambda: -logits.log_softmax(dim=0)[rows, targets].mean()),
                ("the log is missing: average -log(probability of the target), not -probability",
                 lambda: -logits.softmax(dim=-1)[rows, targets].mean()),
                ("took the log of the raw logits: turn them into probabilities first (log_softmax)",
                 lambda: -logits.log()[rows, targets].mean()),
                ("indexed log_probs[:, targets] (every row at every target): pick one entry per row with "
                 "log_probs[torch.arange(batch), targets]",
                 lambda: -logits.log_softmax(dim=-1)[:, targets].mean()),
            ]
        if isinstance(got, float) and abs(got - float(expected)) < 1e-4:
            raise Fail(f"returns a Python float ({label}): return the tensor, so that loss.backward() works")
        compare(got, expected.detach(), label, mistakes, what="the loss")
        if not got.requires_grad:
            raise Fail(f"the loss is cut off from autograd ({label}): avoid .item(), .detach() and "
                       f"torch.tensor(...) inside, so that loss.backward() reaches the logits")
        grad, = torch.autograd.grad(got, logits)
        expected_grad, = torch.autograd.grad(F.cross_entropy(logits, targets), logits)
        if not close(grad, expected_grad):
            raise Fail(f"the value is right but its gradient is not ({label}): compute it from `logits` "
                       f"with differentiable torch operations")
    return summary(len(cases), [c[0] for c in cases[1:]], "value and gradient match F.cross_entropy")


@check("sgd_step")
def check_sgd_step(candidate) -> str:
    """``sgd_step(params: list of tensors with .grad, lr)`` updates each ``p`` to ``p - lr * p.grad`` in place."""
    rng = Inputs(5)
    cases = [("a weight (3, 2) and a bias (2,), lr 0.1", [rng.randn(3, 2), rng.randn(2)], 0.1),
             ("one scalar parameter, lr 0.5", [rng.randn(())], 0.5),
             ("a weight (4, 4), lr 0.01", [rng.randn(4, 4)], 0.01)]
    for label, values, lr in cases:
        params = [v.clone().requires_grad_() for v in values]
        loss = sum(((p * 1.5) ** 2).sum() - p.sum() for p in params)  # gradients 4.5 p - 1: all different
        loss.backward()
        grads = [p.grad.clone() for p in params]
        result = call(candidate, (params, lr), ("params", "lr"), label, inplace_ok=True)
        if result is not None and not isinstance(result, (list, tuple)):
            raise Fail(f"returns a {type(result).__name__} ({label}); sgd_step changes the parameters in place "
                       f"and returns nothing")
        for i, (p, old, g) in enumerate(zip(params, values, grads)):
            name = f"parameter {i}"
            if not isinstance(p, torch.Tensor) or not p.requires_grad:
                raise Fail(f"{name} no longer requires a gradient ({label}): update p in place "
                           f"(p -= lr * p.grad) inside torch.no_grad(), do not replace it")
            mistakes = [
                ("the parameters did not change: `p = p - lr * p.grad` makes a new tensor and leaves the "
                 "parameter alone; write `p -= lr * p.grad` inside `with torch.no_grad():`", lambda: old),
                ("moves up the gradient (+ instead of -): that is gradient ascent, the loss grows",
                 lambda: old + lr * g),
                ("ignores the learning rate: subtract lr * p.grad, not p.grad", lambda: old - g),
                ("multiplies by the learning rate instead of subtracting lr * p.grad", lambda: old * lr),
            ]
            compare(p.detach(), old - lr * g, label, mistakes, what=f"{name} after the step")
            if p.grad is not None and bool(p.grad.abs().sum() > 0):
                raise Fail(f"the gradients were not reset ({label}): after updating, set p.grad = None "
                           f"(or p.grad.zero_()), or the next backward() adds to the old gradients")
    return summary(len(cases), [c[0] for c in cases[1:]], "updates p -= lr * p.grad and resets the gradients")


def _reference_step(model, loss_fn, optimizer, inputs, targets, mistake: str | None = None) -> float:
    if mistake != "no zero_grad":
        optimizer.zero_grad()
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    if mistake != "no step":
        optimizer.step()
    if mistake == "loss after step":
        with torch.no_grad():
            return loss_fn(model(inputs), targets).item()
    return loss.item()


def _setup(kind: str):
    def build():
        if kind == "linear":
            model = nn.Linear(4, 3)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        else:
            model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
            optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        for p in model.parameters():  # what an earlier step's backward() left behind
            p.grad = torch.full_like(p, 0.3)
        return model, optimizer
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(6)
        return build()


@check("training_step")
def check_training_step(candidate) -> str:
    """``training_step(model, loss_fn, optimizer, inputs, targets) -> float``: one full update; returns the loss."""
    rng = Inputs(6)
    cases = [("nn.Linear with SGD, old gradients left over", "linear", 1, rng.randn(6, 4), rng.randint(3, 6)),
             ("a small MLP with Adam, batch of 1", "mlp", 1, rng.randn(1, 4), rng.randint(3, 1)),
             ("three steps in a row", "mlp", 3, rng.randn(5, 4), rng.randint(3, 5))]
    loss_fn = F.cross_entropy
    for label, kind, n_steps, inputs, targets in cases:
        model, optimizer = _setup(kind)
        for _ in range(n_steps):
            got = call(candidate, (model, loss_fn, optimizer, inputs, targets),
                       ("model", "loss_fn", "optimizer", "inputs", "targets"), label)
        ref_model, ref_optimizer = _setup(kind)
        for _ in range(n_steps):
            expected = _reference_step(ref_model, loss_fn, ref_optimizer, inputs, targets)
        if got is None:
            raise Fail(f"returned None ({label}): return the loss as a float, loss.item()")
        if isinstance(got, torch.Tensor):
            raise Fail(f"returns a tensor ({label}): return loss.item(), a float (a tensor keeps the whole "
                       f"computation graph alive)")
        if not isinstance(got, (float, int)):
            raise Fail(f"returns a {type(got).__name__} ({label}); expected the loss as a float, loss.item()")
        params = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        expected_params = torch.cat([p.detach().reshape(-1) for p in ref_model.parameters()])
        if not close(params, expected_params):
            for mistake, diagnosis in (
                ("no zero_grad", "the old gradients were not cleared: call optimizer.zero_grad() before "
                                 "loss.backward(), or each step adds to the previous gradients"),
                ("no step", "the parameters did not change: call optimizer.step() after loss.backward() "
                            "(and zero_grad() before backward(), never between backward() and step())"),
            ):
                wrong_model, wrong_optimizer = _setup(kind)
                for _ in range(n_steps):
                    _reference_step(wrong_model, loss_fn, wrong_optimizer, inputs, targets, mistake)
                wrong = torch.cat([p.detach().reshape(-1) for p in wrong_model.parameters()])
                if close(params, wrong):
                    raise Fail(f"{diagnosis} ({label})")
            raise Fail(f"the parameters after the step differ from one optimizer step on loss_fn(model(inputs), "
                       f"targets) ({label})")
        if abs(float(got) - expected) > 1e-4 * max(1.0, abs(expected)):
            wrong_model, wrong_optimizer = _setup(kind)
            for _ in range(n_steps):
                after = _reference_step(wrong_model, loss_fn, wrong_optimizer, inputs, targets, "loss after step")
            if abs(float(got) - after) <= 1e-4 * max(1.0, abs(after)):
                raise Fail(f"returns the loss after the update ({label}): return this batch's loss from "
                           f"before optimizer.step()")
            raise Fail(f"returned loss {fmt_number(float(got))} ({label}); expected {fmt_number(expected)}")
    return summary(len(cases), [c[0] for c in cases[1:]], "updates the parameters like one optimizer step")
