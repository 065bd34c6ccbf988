"""Checks for lesson 02, learning: the loss, one gradient-descent update, one training step, a measured gradient."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .kit import (Fail, Inputs, call, check, check_tensor, close, compare, describe_type, fmt_number,
                  name_by_value_and_gradient, non_contiguous, shape_error_named, summary)

LESSON = "02_learning"


def _cross_entropy(logits, targets):
    return F.cross_entropy(logits, targets)


def _sgd_step(params, lr):
    with torch.no_grad():
        for p in params:
            p -= lr * p.grad
            p.grad = None


LOST_AXIS = ("the sum over the classes lost its axis: .sum(dim=-1) of logits (batch, classes) has shape (batch,), "
             "which lines up with the classes, not with the rows; keep it as (batch, 1) with keepdim=True (or use "
             "logits.logsumexp(dim=-1, keepdim=True))")


def _loses_its_axis(candidate, rng: Inputs) -> bool:
    """Whether ``candidate`` returns, on square logits (where the mistake raises nothing), what a log-softmax
    whose sum over the classes lost its axis gives: each column shifted by another row's log-sum-exp."""
    n = rng.int(3, 6)
    logits, targets = rng.randn(n, n), rng.randint(n, n)
    got = call(candidate, (logits, targets), ("logits", "targets"), f"square logits ({n}, {n})")
    wrong = logits - logits.exp().sum(dim=-1).log()  # (n, n) - (n,): row i minus the log-sum-exp of row j
    mistaken = -wrong[torch.arange(n), targets].mean()
    return isinstance(got, torch.Tensor) and got.numel() == 1 and close(got.detach().reshape(()), mistaken)


@check("cross_entropy", lesson=LESSON, reference=_cross_entropy,
       builtins=("torch.nn.functional.cross_entropy", "torch.nn.functional.nll_loss"),
       pieces="log_softmax, pick each row's target, minus the mean")
def check_cross_entropy(candidate) -> str:
    """``cross_entropy(logits (batch, classes), targets (batch,) long) -> ()``: mean of -log softmax at the target."""
    rng = Inputs()
    B, C = rng.int(3, 8), rng.int(3, 7)
    targets = rng.randint(C, B)
    targets[1] = (targets[0] + 1) % C  # not all the same target
    C1, B2, C3, B3 = rng.int(2, 6), rng.int(3, 8), rng.int(3, 6), rng.int(2, 6)
    cases = [
        (f"batch {B}, {C} classes", rng.randn(B, C), targets),
        (f"batch of 1, {C1} classes", rng.randn(1, C1), torch.tensor([C1 - 1])),
        (f"2 classes, confident logits, batch {B2}", 8 * rng.randn(B2, 2), rng.randint(2, B2)),
        (f"non-contiguous logits, batch {B3}, {C3} classes", non_contiguous(rng.randn(B3, C3)), rng.randint(C3, B3)),
    ]
    for label, logits, targets in cases:
        logits.requires_grad_()
        try:
            got = call(candidate, (logits, targets), ("logits", "targets"), label)
        except Fail as failure:
            raise shape_error_named(failure, label, [(LOST_AXIS, lambda: _loses_its_axis(candidate, rng))]) from None
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
            if logits.shape[0] == logits.shape[1]:  # square: a sum that lost its axis raises nothing here
                mistakes.append((LOST_AXIS, lambda: -(logits - logits.exp().sum(dim=-1).log())[rows, targets].mean()))
        if isinstance(got, float) and abs(got - float(expected)) < 1e-4:
            raise Fail(f"returns a Python float ({label}): return the tensor, so that loss.backward() works")
        if isinstance(got, torch.Tensor) and got.dim() == 0 and got.grad_fn is not None:
            # A mistake's value can land within tolerance of another's, or of the right one, on a few seeds in a
            # thousand (e.g. every row at every target); its gradient still tells them apart.
            grad, = torch.autograd.grad(got, logits, retain_graph=True, allow_unused=True)
            right_grad, = torch.autograd.grad(F.cross_entropy(logits, targets), logits)
            if not (close(got, expected) and grad is not None and close(grad, right_grad)):  # e.g. sum = mean at batch 1
                name_by_value_and_gradient(got, grad, logits, mistakes, label)
        compare(got, expected.detach(), label, mistakes, what="the loss")
        if not got.requires_grad:
            raise Fail(f"the loss is cut off from autograd ({label}): avoid .item(), .detach() and "
                       f"torch.tensor(...) inside, so that loss.backward() reaches the logits")
        grad, = torch.autograd.grad(got, logits, allow_unused=True)
        if grad is None:
            raise Fail(f"the value is right, but the loss is a new tensor not computed from `logits` ({label}), "
                       f"so loss.backward() never reaches them: no torch.tensor(loss.item(), requires_grad=True); "
                       f"return the tensor your torch operations computed")
        expected_grad, = torch.autograd.grad(F.cross_entropy(logits, targets), logits)
        if not close(grad, expected_grad):
            raise Fail(f"the value is right but its gradient is not ({label}): compute it from `logits` "
                       f"with differentiable torch operations")
    return summary(len(cases), ["batch of 1", "2 classes, confident logits", "non-contiguous logits"],
                   "value and gradient match F.cross_entropy")


def _first_optimizer_steps() -> None:
    """Take one step of each optimizer a learner may use, so that loading their code is not timed."""
    weight = torch.nn.Parameter(torch.zeros(2))
    for optimizer in (torch.optim.SGD([weight], lr=0.1), torch.optim.Adam([weight]), torch.optim.AdamW([weight])):
        weight.grad = torch.ones(2)
        optimizer.step()


@check("sgd_step", lesson=LESSON, reference=_sgd_step, builtins=("torch.optim.SGD.step",),
       pieces="p -= lr * p.grad inside torch.no_grad(), then p.grad = None", warm_up=_first_optimizer_steps)
def check_sgd_step(candidate) -> str:
    """``sgd_step(params: list of tensors with .grad, lr)`` updates each ``p`` to ``p - lr * p.grad`` in place.

    The check keeps its own references to the tensors: the model holds those, so they must change, and the
    list must still hold them (rebinding ``params[i] = ...`` or emptying the list leaves the model as it was).
    """
    rng = Inputs()
    rows, cols, n = rng.int(2, 5), rng.int(2, 5), rng.int(2, 6)
    lr1, lr2, lr3 = rng.choice((0.1, 0.05, 0.2)), rng.choice((0.5, 0.3)), rng.choice((0.01, 0.02))
    cases = [(f"a weight ({rows}, {cols}) and a bias ({cols},), lr {lr1}", [rng.randn(rows, cols), rng.randn(cols)], lr1),
             (f"one scalar parameter, lr {lr2}", [rng.randn(())], lr2),
             (f"a weight ({n}, {n}), lr {lr3}", [rng.randn(n, n)], lr3)]
    for label, values, lr in cases:
        params = [v.clone().requires_grad_() for v in values]
        loss = sum(((p * 1.5) ** 2).sum() - p.sum() for p in params)  # gradients 4.5 p - 1: all different
        loss.backward()
        grads = [p.grad.clone() for p in params]
        tensors = list(params)  # the check's own references: what the model holds
        result = call(candidate, (params, lr), ("params", "lr"), label, inplace_ok=True)
        if result is not None and not isinstance(result, (list, tuple)):
            raise Fail(f"returns {describe_type(result)} ({label}); sgd_step changes the parameters in place "
                       f"and returns nothing")
        if not isinstance(params, list) or len(params) != len(tensors):
            raise Fail(f"changes the list `params` itself ({label}): it now holds {len(params)} of its "
                       f"{len(tensors)} tensors; update each tensor in place and leave the list as it is")
        for i, (now, p) in enumerate(zip(params, tensors)):
            if now is not p:
                raise Fail(f"replaces params[{i}] with a new tensor ({label}): the model still holds the old one, "
                           f"which did not move; update the tensor itself, `p -= lr * p.grad` inside "
                           f"`with torch.no_grad():`")
        for i, (p, old, g) in enumerate(zip(tensors, values, grads)):
            name = f"parameter {i}"
            if not p.requires_grad:
                raise Fail(f"{name} no longer requires a gradient ({label}): update p in place "
                           f"(p -= lr * p.grad) inside torch.no_grad(), do not replace it")
            check_tensor(p.detach(), old, label, f"{name} after the step")
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
    return summary(len(cases), ["one scalar parameter", "a square weight with a small lr"],
                   "updates p -= lr * p.grad and resets the gradients")


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


def _training_step(model, loss_fn, optimizer, inputs, targets) -> float:
    return _reference_step(model, loss_fn, optimizer, inputs, targets)


def _setup(kind: str, n_in: int, n_out: int, seed: int):
    def build():
        if kind == "linear":
            model = nn.Linear(n_in, n_out)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        else:
            model = nn.Sequential(nn.Linear(n_in, 8), nn.ReLU(), nn.Linear(8, n_out))
            optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        for p in model.parameters():  # what an earlier step's backward() left behind
            p.grad = torch.full_like(p, 0.3)
        return model, optimizer
    with torch.random.fork_rng(devices=[]):
        # The CPU generator only: fork_rng(devices=[]) saves no other, and torch.manual_seed would also
        # queue a seed for CUDA, XPU and MTIA, recording the call stack for each (milliseconds per check).
        torch.default_generator.manual_seed(seed)
        return build()


def _flat(parameters) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in parameters])


@check("training_step", lesson=LESSON, reference=_training_step, warm_up=_first_optimizer_steps)
def check_training_step(candidate) -> str:
    """``training_step(model, loss_fn, optimizer, inputs, targets) -> float``: one full update; returns the loss.

    The check keeps its own references to the model's parameters: those must have moved, and the model
    must still hold them.
    """
    rng = Inputs()
    n_in, n_out = rng.int(3, 6), rng.int(2, 4)
    B1, B3 = rng.int(3, 8), rng.int(2, 6)
    cases = [(f"nn.Linear({n_in}, {n_out}) with SGD, batch {B1}, old gradients left over", "linear", 1,
              rng.randn(B1, n_in), rng.randint(n_out, B1)),
             ("a small MLP with Adam, batch of 1", "mlp", 1, rng.randn(1, n_in), rng.randint(n_out, 1)),
             (f"three steps in a row, batch {B3}", "mlp", 3, rng.randn(B3, n_in), rng.randint(n_out, B3))]
    loss_fn = F.cross_entropy
    for label, kind, n_steps, inputs, targets in cases:
        setup = (kind, n_in, n_out, rng.seed)
        model, optimizer = _setup(*setup)
        tensors = list(model.parameters())  # the check's own references: what the optimizer holds
        for _ in range(n_steps):
            got = call(candidate, (model, loss_fn, optimizer, inputs, targets),
                       ("model", "loss_fn", "optimizer", "inputs", "targets"), label)
        ref_model, ref_optimizer = _setup(*setup)
        for _ in range(n_steps):
            expected = _reference_step(ref_model, loss_fn, ref_optimizer, inputs, targets)
        if got is None:
            raise Fail(f"returned None ({label}): return the loss as a float, loss.item()")
        if isinstance(got, torch.Tensor):
            raise Fail(f"returns a tensor ({label}): return loss.item(), a float (a tensor keeps the whole "
                       f"computation graph alive)")
        if not isinstance(got, (float, int)) or isinstance(got, bool):
            raise Fail(f"returns {describe_type(got)} ({label}); expected the loss as a float, loss.item()")
        now = list(model.parameters())
        for p in now + tensors:
            check_tensor(p.detach(), inputs, label, "a parameter after the step")
        if len(now) != len(tensors) or any(a is not b for a, b in zip(now, tensors)):
            raise Fail(f"replaces the model's parameters with new tensors ({label}): the optimizer still holds "
                       f"the old ones; let optimizer.step() update them in place")
        params, expected_params = _flat(tensors), _flat(ref_model.parameters())
        if not close(params, expected_params):
            for mistake, diagnosis in (
                ("no zero_grad", "the old gradients were not cleared: call optimizer.zero_grad() before "
                                 "loss.backward(), or each step adds to the previous gradients"),
                ("no step", "the parameters did not change: call optimizer.step() after loss.backward() "
                            "(and zero_grad() before backward(), never between backward() and step())"),
            ):
                wrong_model, wrong_optimizer = _setup(*setup)
                for _ in range(n_steps):
                    _reference_step(wrong_model, loss_fn, wrong_optimizer, inputs, targets, mistake)
                if close(params, _flat(wrong_model.parameters())):
                    raise Fail(f"{diagnosis} ({label})")
            raise Fail(f"the parameters after the step differ from one optimizer step on loss_fn(model(inputs), "
                       f"targets) ({label})")
        if abs(float(got) - expected) > 1e-4 * max(1.0, abs(expected)):
            wrong_model, wrong_optimizer = _setup(*setup)
            for _ in range(n_steps):
                after = _reference_step(wrong_model, loss_fn, wrong_optimizer, inputs, targets, "loss after step")
            if abs(float(got) - after) <= 1e-4 * max(1.0, abs(after)):
                raise Fail(f"returns the loss after the update ({label}): return this batch's loss from "
                           f"before optimizer.step()")
            raise Fail(f"returned loss {fmt_number(float(got))} ({label}); expected {fmt_number(expected)}")
    return summary(len(cases), ["a small MLP with Adam, batch of 1", "three steps in a row"],
                   "updates the parameters like one optimizer step")


def _numerical_gradient(f, x, eps=1e-6):
    flat = x.reshape(-1)  # a copy when x is not contiguous: x itself is never written
    grad = torch.zeros_like(flat)
    for i in range(flat.numel()):
        up, down = flat.clone(), flat.clone()
        up[i] += eps
        down[i] -= eps
        grad[i] = (f(up.reshape(x.shape)) - f(down.reshape(x.shape))) / (2 * eps)
    return grad.reshape(x.shape)


def _black_box(loss, shape: tuple[int, ...], name: str):
    """``loss`` as a function autograd cannot see into (its result is detached), refusing other shapes."""

    def f(z):
        if not isinstance(z, torch.Tensor):
            raise TypeError(f"f takes a tensor shaped like x, {tuple(shape)}; got {describe_type(z)}")
        if tuple(z.shape) != tuple(shape):
            raise ValueError(f"f takes a tensor shaped like x, {tuple(shape)}; got {tuple(z.shape)}")
        with torch.no_grad():
            return loss(z.detach().to(torch.float64))

    f.__name__ = f.__qualname__ = name
    return f


@check("numerical_gradient", lesson=LESSON, reference=_numerical_gradient)
def check_numerical_gradient(candidate) -> str:
    """``numerical_gradient(f, x (any shape) float64) -> (shape of x)``: central differences, one entry at a time.

    Each ``f`` is a black box (autograd cannot see into it); the check compares with autograd's gradient of
    the same formula, to 1e-5.
    """
    rng = Inputs()
    n, rows, cols = rng.int(3, 6), rng.int(2, 4), rng.int(2, 4)
    w, v, m = rng.randn(n).double(), rng.randn(cols).double(), rng.randn(cols, cols).double()
    cases = [
        (f"a vector of {n}, f = sum(w * x**3) + sum(x)**2 / 4",
         lambda z: (w * z ** 3).sum() + z.sum() ** 2 / 4, rng.randn(n).double()),
        (f"a ({rows}, {cols}) matrix, f = sum(tanh(x @ m) * v)",
         lambda z: (torch.tanh(z @ m) * v).sum(), rng.randn(rows, cols).double()),
        ("one number (shape ()), f = x * sin(3 x)", lambda z: z * torch.sin(3 * z), rng.randn(()).double()),
        ("a (2, 2, 3) tensor, f = log(1 + sum(x**2))", lambda z: torch.log1p((z ** 2).sum()),
         rng.randn(2, 2, 3).double()),
        (f"non-contiguous ({cols}, {rows}) x, f = sum(x.T @ x * x.T @ x) / 10",
         lambda z: ((z.T @ z) ** 2).sum() / 10, non_contiguous(rng.randn(cols, rows).double())),
    ]
    for index, (label, loss, x) in enumerate(cases):
        f = _black_box(loss, tuple(x.shape), f"f{index}")
        try:
            got = call(candidate, (f, x), ("f", "x"), label)
        except Fail as failure:
            if "does not require grad" in failure.message:
                raise Fail(f"used autograd (backward), which cannot see into f ({label}): that is the point, a "
                           f"black box needs its gradient measured; nudge one entry up and down and compare "
                           f"f's values") from None
            raise
        leaf = x.detach().clone().requires_grad_()
        expected, = torch.autograd.grad(loss(leaf), leaf)
        if isinstance(got, torch.Tensor):
            check_tensor(got, expected, label, "the gradient")
        if isinstance(got, torch.Tensor) and got.dtype == torch.float32 and got.shape == expected.shape \
                and close(got, expected):
            raise Fail(f"the gradient is float32 ({label}): x is float64, and float32 loses the tiny differences "
                       f"f(x + eps) - f(x - eps); make the result like x (torch.zeros_like(x))")
        mistakes = [
            ("twice the gradient: the two nudged points x + eps and x - eps are 2 * eps apart, so divide by "
             "2 * eps", lambda: 2 * expected),
            ("half the gradient: one nudge, f(x + eps) - f(x), is eps away, not 2 * eps", lambda: expected / 2),
            ("the sign is flipped: (f(x + eps) - f(x - eps)) / (2 * eps), the higher point first",
             lambda: -expected),
            ("every entry got the same number: you nudged all entries at once; nudge one entry at a time "
             "(a copy of x with only that entry changed)", lambda: torch.full_like(expected, float(expected.sum()))),
            ("nudged a whole row at once (x[i] of a matrix is a row): nudge single entries, e.g. walk over "
             "x.reshape(-1)", lambda: expected.sum(dim=-1, keepdim=True).expand_as(expected)
             if expected.dim() >= 2 else None),
            ("all zeros: did each difference get stored in the result (grad[i] = ...)?",
             lambda: torch.zeros_like(expected)),
        ]
        compare(got, expected, label, mistakes, what="the gradient")
    return summary(len(cases), ["a matrix", "one number (shape ())", "a 3-d tensor", "non-contiguous x"],
                   "matches autograd's gradient to 1e-5")
