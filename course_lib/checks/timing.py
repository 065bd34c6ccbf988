"""How long each check takes on a right answer: a learner waits that long after every attempt.

``time_checks()`` runs every registered check on its exercise's reference solution (both declared in
``registry``) and returns the seconds each took; ``python -m course_lib bench`` compares them with its
target. Speed is measured here, not asserted in tests, because a shared or slow machine would make a timed
test fail at random.
"""

from __future__ import annotations

import time

from . import registry


def time_checks() -> dict[str, float]:
    """Seconds each check takes on a right answer, in the order the lessons present them.

    Each check runs once untimed first: one-off costs (the first torch.optim optimizer alone imports
    for about 1.5 s) are paid by the lesson's own cells before a learner runs the check, so the second,
    timed run is what a learner waits. Raises RuntimeError if a check rejects its right answer: the time
    of a failing run would mean nothing.
    """
    seconds: dict[str, float] = {}
    for names in registry.exercises().values():
        for name in names:
            entry = registry.get(name)
            entry.check(entry.reference)
            start = time.perf_counter()
            result = entry.check(entry.reference)
            seconds[name] = time.perf_counter() - start
            if not result.passed:
                raise RuntimeError(f"check_{name} rejects a right answer: {result!r}")
    return seconds
