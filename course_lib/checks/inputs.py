"""Fresh random inputs for a check: every call of a check draws new values and sizes from a new seed, shown
in a failure's message, so that ``check_x(x, seed=81234)`` repeats them and a recorded answer cannot pass.

Nothing here touches the global random state: the learner's own seeds stay intact.
"""

from __future__ import annotations

import contextvars
import functools
import random
from collections.abc import Callable, Sequence

import torch

# The seed of the check running now, set by ``@check`` (running.py) for each call: ``Inputs()`` and
# ``seeded_module`` draw from it; failures print it.
CHECK_SEED: contextvars.ContextVar[int] = contextvars.ContextVar("check_seed", default=0)


def fresh_seed() -> int:
    """A new seed for every call, small enough to read and type: ``check_x(x, seed=81234)`` repeats it."""
    return random.SystemRandom().randrange(1, 100_000)


class Inputs:
    """Random inputs drawn from the running check's seed (a new one on every call) plus ``offset``,
    without touching the global random state (the learner's seeds stay intact)."""

    def __init__(self, offset: int = 0):
        self.seed = CHECK_SEED.get()
        self.generator = torch.Generator().manual_seed(self.seed * 1009 + offset)

    def randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=self.generator)

    def rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=self.generator)

    def randint(self, high: int, *shape: int) -> torch.Tensor:
        return torch.randint(0, high, shape, generator=self.generator)

    def permutation(self, n: int) -> torch.Tensor:
        return torch.randperm(n, generator=self.generator)

    def int(self, low: int, high: int) -> int:
        """A random int from ``low`` to ``high``, both included."""
        return int(torch.randint(low, high + 1, (), generator=self.generator))

    def choice(self, options: Sequence):
        return options[self.int(0, len(options) - 1)]


def non_contiguous(t: torch.Tensor) -> torch.Tensor:
    """The same values in a strided (non-contiguous) view, as slicing or transposing produce."""
    wide = torch.stack([t, torch.zeros_like(t)], dim=-1)  # every value followed by a gap
    return wide[..., 0]


def seeded_module(factory: Callable[[], torch.nn.Module], seed: int | None = None) -> torch.nn.Module:
    """Build a module from ``seed`` (default: the running check's) without disturbing the global random state."""
    seed = CHECK_SEED.get() if seed is None else seed
    with torch.random.fork_rng(devices=[]):
        # The CPU generator only: fork_rng(devices=[]) saves no other, and torch.manual_seed would also
        # queue a seed for CUDA, XPU and MTIA, recording the call stack for each (milliseconds per check).
        torch.default_generator.manual_seed(seed)
        return factory()


def lazy(function: Callable, *args, **kwargs) -> Callable[[], object]:
    """``function(*args, **kwargs)``, computed on first use and remembered: mistakes cost nothing on a right answer."""
    return functools.cache(lambda: function(*args, **kwargs))
