"""Input checks shared by course_lib's public functions.

Every message names what was expected and what came, so a learner can fix the call.
"""

from __future__ import annotations

import math
import numbers
import operator

import numpy as np
import torch


def shape_str(shape) -> str:
    """``torch.Size([2, 3])`` -> ``"(2, 3)"``, like a Python tuple."""
    return str(tuple(int(s) for s in shape))


def broadcast_shape(*shapes) -> tuple[int, ...] | None:
    """The shape ``shapes`` broadcast to, or None where they do not broadcast. The same rule as
    ``torch.broadcast_shapes``, which on its first call imports a large part of PyTorch (seconds)."""
    result: list[int] = []
    for shape in shapes:
        shape = tuple(shape)
        if len(shape) > len(result):
            result = [1] * (len(shape) - len(result)) + result
        for i, size in enumerate(shape, start=len(result) - len(shape)):
            if size != result[i] and 1 not in (size, result[i]):
                return None
            result[i] = size if result[i] == 1 else result[i]
    return tuple(result)


def require_tensor(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def require_rank(x: torch.Tensor, name: str, min_rank: int, layout: str, max_rank: int | None = None) -> None:
    """Raise ValueError unless ``min_rank <= x.dim() <= max_rank``; ``layout`` names the axes."""
    require_tensor(x, name)
    too_high = max_rank is not None and x.dim() > max_rank
    if x.dim() < min_rank or too_high:
        raise ValueError(f"{name} must have shape {layout}, got {shape_str(x.shape)} ({x.dim()} dims)")


def require_floating(x: torch.Tensor, name: str) -> None:
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")


def require_nonempty(x: torch.Tensor, name: str, dim: int, what: str) -> None:
    if x.shape[dim] == 0:
        raise ValueError(f"{name} has an empty {what} axis: shape {shape_str(x.shape)}; "
                         f"a sequence needs at least one item")


def require_token_ids(ids, name: str, vocab_size: int, max_len: int | None = None) -> torch.Tensor:
    """Check a (batch, time) tensor of token ids in [0, vocab_size)."""
    require_tensor(ids, name)
    if ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise TypeError(f"{name} must hold integer token ids (dtype torch.long), got dtype {ids.dtype}")
    if ids.dim() != 2:
        raise ValueError(f"{name} must have shape (batch, time), got {shape_str(ids.shape)} ({ids.dim()} dims)")
    require_nonempty(ids, name, 1, "time")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise ValueError(f"{name} must lie in [0, {vocab_size}) for vocab_size={vocab_size}, "
                         f"got values from {int(ids.min())} to {int(ids.max())}")
    if max_len is not None and ids.shape[1] > max_len:
        raise ValueError(f"{name} has {ids.shape[1]} positions but the model was built with "
                         f"max_len={max_len}: shape {shape_str(ids.shape)}")
    return ids.long()


def to_numpy(x, name: str) -> np.ndarray:
    """A tensor or numeric numpy array as a float64 numpy array (a clear TypeError for anything else)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64).numpy()
    if isinstance(x, np.ndarray):
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise TypeError(f"{name} must hold numbers, got a numpy array of dtype {x.dtype}")
        return x.astype(np.float64)
    raise TypeError(f"{name} must be a numpy array or a torch.Tensor, got {type(x).__name__}")


def require_int(value, name: str, minimum: int | None = None) -> int:
    """An int from any integer type (int, numpy integer, 0-d integer tensor); never a bool, a float or a str.

    TypeError ("n must be an integer, got float 3.0") for anything else; ValueError below ``minimum``.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got the bool {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def require_number(value, name: str, minimum: float | None = None, above: float | None = None,
                   below: float | None = None, maximum: float | None = None) -> float:
    """A finite real number (int, float, numpy scalar, 0-d tensor) as a float; never a bool or a str.

    ``minimum``/``maximum`` are inclusive bounds, ``above``/``below`` exclusive ones. TypeError for a
    non-number, ValueError for nan, inf or a number out of bounds ("lr must be > 0, got -1.0").
    """
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.generic, torch.Tensor)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if isinstance(value, torch.Tensor) and (value.dim() != 0 or value.dtype == torch.bool or value.is_complex()):
        raise TypeError(f"{name} must be a number, got a tensor of shape {shape_str(value.shape)} and dtype {value.dtype}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {number}")
    for bound, fails, words in ((minimum, lambda b: number < b, ">="), (above, lambda b: number <= b, ">"),
                                (below, lambda b: number >= b, "<"), (maximum, lambda b: number > b, "<=")):
        if bound is not None and fails(bound):
            raise ValueError(f"{name} must be {words} {bound}, got {number}")
    return number
