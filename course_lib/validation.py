"""Input checks shared by course_lib's public functions.

One policy, the same at every level: a **TypeError** for the wrong kind of value (a float, a bool or a str
where an int is wanted, a list where a tensor is), a **ValueError** for a value of the right kind that is out
of range or not one of the choices. Every message names what was expected and what came, so a learner can
fix the call.
"""

from __future__ import annotations

import dataclasses
import inspect
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
    """``x`` if it is a ``torch.Tensor``; a TypeError naming ``name`` otherwise (a list or numpy array too)."""
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
    """Raise a TypeError unless ``x`` holds floating-point numbers (integer token ids cannot be attended over)."""
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")


# The method that converts a tensor or a model to a dtype: x.float(), model.double(), ...
_CONVERTER = {torch.float32: "float", torch.float64: "double", torch.float16: "half", torch.bfloat16: "bfloat16"}


def _converted(name: str, dtype: torch.dtype) -> str:
    method = _CONVERTER.get(dtype)
    return f"{name}.{method}()" if method else f"{name}.to({dtype})"


def weights_dtype(model: torch.nn.Module) -> torch.dtype | None:
    """The dtype of ``model``'s first floating-point parameter, None where it has none."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), None)


def require_weights_dtype(x: torch.Tensor, name: str, dtype: torch.dtype | None) -> None:
    """Raise a TypeError unless the float tensor ``x`` has ``dtype``, the dtype of the model's weights (None: no
    check); the message names both dtypes and both fixes (``x.float()`` or ``model.double()``).

    It reads the dtypes only, never a value (no device sync). Under ``torch.autocast`` the autocast dtype passes
    too: autocast converts it by itself.
    """
    if dtype is None or x.dtype == dtype:
        return
    try:
        if torch.is_autocast_enabled(x.device.type) and x.dtype == torch.get_autocast_dtype(x.device.type):
            return
    except RuntimeError:  # a device autocast does not know (meta): no autocast there
        pass
    raise TypeError(f"{name} has dtype {x.dtype} but the model's weights are {dtype}; convert the input with "
                    f"{_converted(name, dtype)} or the model with {_converted('model', x.dtype)}")


def require_nonempty(x: torch.Tensor, name: str, dim: int, what: str) -> None:
    """Raise a ValueError if axis ``dim`` of ``x`` (the ``what`` axis, e.g. "time") is empty."""
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


def require_flag(value, name: str) -> bool:
    """``value`` if it is True or False; a TypeError naming ``name`` otherwise (1 or "yes" are refused)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def require_choice(value, name: str, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of the strings ``choices``: a TypeError for a non-string, a ValueError for another
    string (``mask must be "causal", "all" or "self", got 'none'``)."""
    quoted = [f'"{choice}"' for choice in choices]
    words = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    if not isinstance(value, str):
        raise TypeError(f"{name} must be {words}, got {type(value).__name__} {value!r}")
    if value not in choices:
        raise ValueError(f"{name} must be {words}, got {value!r}")
    return value


def require_sequence(x, name: str, d_model: int) -> None:
    """Raise a clear error unless ``x`` is a float ``(batch, time, d_model)`` tensor with at least one position."""
    require_rank(x, name, 3, "(batch, time, d_model)", max_rank=3)
    require_floating(x, name)
    require_nonempty(x, name, 1, "time")
    if x.shape[-1] != d_model:
        raise ValueError(f"{name} must have shape (batch, time, d_model={d_model}), got {shape_str(x.shape)}")


def config_from(config_class, args: tuple, kwargs: dict, build=None):
    """The settings a model was built with, as one ``config_class`` (a dataclass that checks itself).

    ``Model(config)`` gives a checked copy of ``config`` (so changing yours later changes nothing here);
    ``Model(*args, **kwargs)`` gives ``build(*args, **kwargs)``, by default ``config_class(*args, **kwargs)``:
    the config's fields, in order, are the model's arguments. Giving both is a TypeError.
    """
    if args and dataclasses.is_dataclass(args[0]) and not isinstance(args[0], type):
        if not isinstance(args[0], config_class):
            raise TypeError(f"expected the settings as {config_class.__name__}, got {type(args[0]).__name__}")
        if len(args) > 1 or kwargs:
            raise TypeError(f"give the settings as {config_class.__name__} alone, or one by one, not both")
        return dataclasses.replace(args[0])  # a copy, checked again by its __post_init__
    return (build or config_class)(*args, **kwargs)


def settings_signature(build) -> "_ClassSignature":
    """What a model built by ``config_from`` shows in ``help()`` and Jupyter's tooltips: ``build``'s own arguments
    (a config dataclass's fields, or a function's), so that ``Model(*args, **kwargs)`` still reads as
    ``Model(vocab_size, d_model, ...)``. Set it as the class's ``__signature__``; a model itself (an instance)
    keeps the signature of its ``forward``."""
    return _ClassSignature(inspect.signature(build).replace(return_annotation=inspect.Signature.empty))


class _ClassSignature:
    """``__signature__`` for the class only: ``inspect.signature(Model)`` reads it, ``inspect.signature(model)``
    gets None here and falls back to ``forward``'s."""

    def __init__(self, signature: inspect.Signature):
        self.signature = signature

    def __get__(self, instance, owner):
        return self.signature if instance is None else None
