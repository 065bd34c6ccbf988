"""Instant feedback on the course's exercises: ``check_<name>(your_function)`` for every exercise.

Each check runs your function on fresh random inputs on every call (random values and sizes), edge cases
included (T = 1, a batch of 1, non-contiguous tensors, a mask that lets through a single key, d_v ≠ d),
and compares it with course_lib's reference. It returns a ``CheckResult`` that shows as a short first
line, the details wrapped below it:

    ✓ causal_mask: True on and below the diagonal
      on 4 random inputs, incl. T = 1; T = 2; a long sequence
    ✗ scaled_dot_product_attention: scores not divided by √d (batch 2, T 3, d 4)
      seed 81234

A failure names its seed: ``check_scaled_dot_product_attention(f, seed=81234)`` repeats the same inputs.
On Linux your function runs in a copy of the notebook's process, made when the check starts: what it prints
shows as usual, but what it changes there (a global, a list it appends to) stays in the copy, and a copy
that runs past the time limit is stopped, whatever your code catches.
A check never raises: an unfinished exercise (``raise NotImplementedError``) reads "not implemented
yet", and any other error, a missing ``return``, a wrong shape or dtype, NaN, a changed input or an
answer that runs past the time limit (``settings.time_limit``, 5 s by default) is explained there.

The exercises are declared once, in ``registry`` (each lesson module's ``@check(...)``); ``EXERCISES``,
the ``check_*`` names below and ``time_checks()`` (``python -m course_lib bench``) are derived from it.
Writing a new check: README.md in this folder; everything a check is written with comes from ``kit``.
"""

import sys

from course_lib.threads import apply_thread_policy

apply_thread_policy()  # the course's thread count, once (see course_lib.threads)

from . import registry  # noqa: E402
from .running import CheckResult, check, settings  # noqa: E402
from .registry import EXERCISES, REGISTRY  # noqa: E402

# Every lesson module (each declares its checks with @check): a new lesson needs no edit here.
registry.discover(sys.modules[__name__])

from .timing import time_checks  # noqa: E402 — after the lessons' checks are registered

globals().update(registry.checks())


def __getattr__(name: str):
    """``check_<name>`` of an exercise registered after this package was imported."""
    if name.startswith("check_"):
        try:
            return registry.get(name).check
        except KeyError:
            pass
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(registry.checks()))


__all__ = ["CheckResult", "EXERCISES", "REGISTRY", "check", "registry", "settings", "time_checks", *registry.checks()]
