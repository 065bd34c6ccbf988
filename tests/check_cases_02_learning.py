"""Lesson 02's new exercise, right and wrong: imported by tests/test_checks.py (CASES, NAMED_MISTAKES).

The first three exercises of lesson 02 keep their cases in tests/test_checks.py. Each wrong entry:
(id, implementation, words its diagnosis must contain).
"""

from __future__ import annotations

import itertools

import torch


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

CASES = {"numerical_gradient": (GRADIENT_RIGHT, GRADIENT_WRONG)}

NAMED_MISTAKES = [
    ("numerical_gradient", gradient_divided_by_eps, "2 * eps apart"),
    ("numerical_gradient", gradient_all_at_once, "nudge one entry at a time"),
]
