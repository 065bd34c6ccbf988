"""Lesson 02's exercises (learning): right and wrong learner answers, read by tests/test_checks.py.

Each wrong entry: (id, implementation, words its diagnosis must contain). The tables a case file may
hold (CASES, NAMED_MISTAKES, DELEGATING, HAND_BUILT, REPLAYABLE, CHEATS) are described at the top of
tests/test_checks.py.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

# --- cross_entropy, sgd_step, training_step -----------------------------------------------------------------------


def _rows(logits):
    return torch.arange(logits.shape[0])


def ce_new_leaf(logits, targets):
    loss = F.cross_entropy(logits, targets)
    return torch.tensor(loss.item(), requires_grad=True)


CE_RIGHT = [
    ("F.cross_entropy", lambda logits, t: F.cross_entropy(logits, t)),
    ("nll of log_softmax", lambda logits, t: F.nll_loss(logits.log_softmax(-1), t)),
    ("logsumexp", lambda logits, t: (logits.logsumexp(-1) - logits.gather(1, t[:, None]).squeeze(1)).mean()),
    ("one-hot", lambda logits, t: -(F.one_hot(t, logits.shape[1]) * logits.log_softmax(-1)).sum(-1).mean()),
    ("softmax then log", lambda logits, t: -logits.softmax(-1)[_rows(logits), t].log().mean()),
]
def ce_sum_lost_its_axis(logits, targets):
    """A first attempt: the log-sum-exp without keepdim=True."""
    log_probs = logits - torch.log(torch.exp(logits).sum(dim=-1))
    return -log_probs[torch.arange(len(targets)), targets].mean()


CE_WRONG = [
    ("the sum lost its axis", ce_sum_lost_its_axis, "lost its axis"),
    ("no minus", lambda logits, t: logits.log_softmax(-1)[_rows(logits), t].mean(), "minus sign"),
    ("sum", lambda logits, t: -logits.log_softmax(-1)[_rows(logits), t].sum(), "summed"),
    ("no mean", lambda logits, t: -logits.log_softmax(-1)[_rows(logits), t], "one loss per example"),
    ("softmax over batch", lambda logits, t: -logits.log_softmax(0)[_rows(logits), t].mean(), "over the batch"),
    ("no log", lambda logits, t: -logits.softmax(-1)[_rows(logits), t].mean(), "log is missing"),
    ("log of logits", lambda logits, t: -logits.log()[_rows(logits), t].mean(), "raw logits"),
    ("all rows at all targets", lambda logits, t: -logits.log_softmax(-1)[:, t].mean(), "every row at every target"),
    (".item()", lambda logits, t: F.cross_entropy(logits, t).item(), "Python float"),
    ("new tensor", lambda logits, t: torch.tensor(F.cross_entropy(logits, t).item()), "cut off from autograd"),
    ("new tensor that requires grad", ce_new_leaf, "not computed from `logits`"),
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


# The tensors must change, not the list that holds them.
def sgd_rebinds_list_entries(params, lr):
    for i in range(len(params)):
        params[i] = params[i] - lr * params[i].grad


def sgd_clears_the_list(params, lr):
    params.clear()


def sgd_rebinds_then_resets(params, lr):
    with torch.no_grad():
        for i in range(len(params)):
            params[i] = (params[i] - lr * params[i].grad).requires_grad_()


def sgd_builtin(params, lr):
    sgd_torch_optimizer(params, lr)


SGD_RIGHT = [("no_grad", sgd_reference), (".data", sgd_data), ("torch.optim.SGD", sgd_torch_optimizer)]
SGD_WRONG = [
    ("rebinding", sgd_rebind, "did not change"),
    ("ascent", sgd_ascent, "gradient ascent"),
    ("lr ignored", sgd_no_lr, "learning rate"),
    ("grads kept", sgd_keeps_grads, "not reset"),
    ("no torch.no_grad", sgd_no_no_grad, "torch.no_grad()"),
    ("list entries rebound", sgd_rebinds_list_entries, "replaces params[0] with a new tensor"),
    ("list entries rebound, then made leaves", sgd_rebinds_then_resets, "replaces params[0] with a new tensor"),
    ("list cleared", sgd_clears_the_list, "changes the list `params` itself"),
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


# The optimizer's tensors must change, not the model's attributes.
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


STEP_RIGHT = [("zero_grad first", step_right), ("model.zero_grad, float()", step_model_zero_grad)]
STEP_WRONG = [
    ("no zero_grad", step_no_zero_grad, "zero_grad() before"),
    ("no step", step_no_step, "did not change"),
    ("zero_grad between backward and step", step_zero_grad_late, "did not change"),
    ("returns the tensor", step_returns_tensor, "returns a tensor"),
    ("loss after the step", step_loss_after, "after the update"),
    ("parameters replaced", step_replacing_parameters, "replaces the model's parameters with new tensors"),
]

# --- numerical_gradient -------------------------------------------------------------------------------------------


def gradient_central(f, x, eps=1e-6):
    flat = x.reshape(-1)
    grad = torch.zeros_like(flat)
    for i in range(flat.numel()):
        up, down = flat.clone(), flat.clone()
        up[i] += eps
        down[i] -= eps
        grad[i] = (f(up.reshape(x.shape)) - f(down.reshape(x.shape))) / (2 * eps)
    return grad.reshape(x.shape)


def gradient_by_index(f, x, eps=1e-4):
    grad = torch.zeros_like(x)
    for index in itertools.product(*(range(n) for n in x.shape)):
        nudge = torch.zeros_like(x)
        nudge[index] = eps
        grad[index] = (f(x + nudge) - f(x - nudge)) / (2 * eps)
    return grad


def gradient_forward(f, x, eps=1e-7):
    base = f(x)
    flat = x.reshape(-1)
    values = []
    for i in range(flat.numel()):
        up = flat.clone()
        up[i] += eps
        values.append((f(up.reshape(x.shape)) - base) / eps)
    return torch.stack(values).reshape(x.shape)


def gradient_divided_by_eps(f, x, eps=1e-6):
    return 2 * gradient_central(f, x, eps)


def gradient_one_sided_over_2eps(f, x, eps=1e-6):
    return gradient_forward(f, x, eps) / 2


def gradient_all_at_once(f, x, eps=1e-6):
    return torch.full_like(x, float((f(x + eps) - f(x - eps)) / (2 * eps)))


def gradient_in_place(f, x, eps=1e-6):
    flat, grad = x.view(-1) if x.is_contiguous() else x.reshape(-1), torch.zeros(x.numel(), dtype=x.dtype)
    for i in range(flat.numel()):
        flat[i] += eps
        up = f(x)
        flat[i] -= 2 * eps
        down = f(x)
        flat[i] += eps
        grad[i] = (up - down) / (2 * eps)
    return grad.reshape(x.shape)


def gradient_rows(f, x, eps=1e-6):
    if x.dim() < 2:
        return gradient_central(f, x, eps)
    grad = torch.zeros_like(x)
    for i in range(len(x)):
        up, down = x.clone(), x.clone()
        up[i] += eps
        down[i] -= eps
        grad[i] = (f(up) - f(down)) / (2 * eps)
    return grad


def gradient_autograd(f, x, eps=1e-6):
    x = x.detach().clone().requires_grad_()
    f(x).backward()
    return x.grad


def gradient_float32(f, x, eps=1e-6):
    return gradient_central(f, x, eps).float()


def gradient_flattened(f, x, eps=1e-6):
    return gradient_central(lambda flat: f(flat.reshape(x.shape)), x.reshape(-1), eps)


GRADIENT_RIGHT = [
    ("central, flat copy", gradient_central),
    ("central, every index", gradient_by_index),
    ("forward difference", gradient_forward),
]
GRADIENT_WRONG = [
    ("divided by eps", gradient_divided_by_eps, "twice the gradient"),
    ("one-sided over 2 eps", gradient_one_sided_over_2eps, "half the gradient"),
    ("all entries at once", gradient_all_at_once, "nudged all entries at once"),
    ("changes x in place", gradient_in_place, "changes its input `x` in place"),
    ("whole rows", gradient_rows, "nudged a whole row"),
    ("autograd", gradient_autograd, "used autograd"),
    ("float32", gradient_float32, "float32"),
    ("flattened result", gradient_flattened, "shape"),
]

CASES = {
    "cross_entropy": (CE_RIGHT, CE_WRONG),
    "sgd_step": (SGD_RIGHT, SGD_WRONG),
    "training_step": (STEP_RIGHT, STEP_WRONG),
    "numerical_gradient": (GRADIENT_RIGHT, GRADIENT_WRONG),
}

NAMED_MISTAKES = [
    ("cross_entropy", ce_sum_lost_its_axis, "the sum over the classes lost its axis"),
    ("numerical_gradient", gradient_divided_by_eps, "2 * eps apart"),
    ("numerical_gradient", gradient_all_at_once, "nudge one entry at a time"),
]

DELEGATING = {
    "cross_entropy": [("F.cross_entropy itself", F.cross_entropy, "F.cross_entropy"),
                      ("nn.CrossEntropyLoss", lambda logits, t: nn.CrossEntropyLoss()(logits, t), "F.cross_entropy"),
                      ("nll_loss", CE_RIGHT[1][1], "F.nll_loss")],
    "sgd_step": [("torch.optim.SGD", sgd_builtin, "torch.optim.SGD.step")],
}
HAND_BUILT = {"cross_entropy": "logsumexp", "sgd_step": "no_grad"}

REPLAYABLE = ["cross_entropy"]
