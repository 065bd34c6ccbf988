"""What a check says: its result, the ``Fail`` that stops it with a diagnosis, and the sentences that
describe what the learner's code returned or raised.

A check's whole output is one ``CheckResult`` whose one line reads ``✓ name: what was verified`` or
``✗ name: the diagnosis``. Everything here is plain text-making; nothing runs the learner's code.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

from course_lib.apart.answering import (INTEGER_DTYPE, describe_exception, first_line,  # noqa: F401 - re-exported
                                       integer_dtype_error)
from course_lib.apart.session import Remote, type_name

NOT_IMPLEMENTED = "not implemented yet (replace the `raise NotImplementedError` line with your code)"


@dataclass(frozen=True, repr=False)
class CheckResult:
    """What a check found: ``passed``, a one-line ``message``, and the exercise's ``name``.

    In a notebook it shows as one line: ``✓ name: what was verified`` or ``✗ name: the diagnosis``.
    ``implemented`` is False when the function still raises NotImplementedError.
    """

    name: str
    passed: bool
    message: str
    implemented: bool = True
    used_reference: bool = False  # the answer called the check's own reference solution (no points when graded)

    def __repr__(self) -> str:
        return f"{'✓' if self.passed else '✗'} {self.name}: {self.message}"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return self.passed


class Fail(Exception):
    """Raised inside a check to stop it with a diagnosis; the decorator turns it into a result."""

    def __init__(self, message: str, about_inputs: bool = True):
        super().__init__(message)
        self.message = message
        self.about_inputs = about_inputs  # False: the same on any input, so the message names no seed


class NotImplementedYet(Exception):
    """Raised by ``call`` when the exercise itself still raises NotImplementedError: reads "not implemented yet"."""


def summary(n_cases: int, kinds: Sequence[str], verified: str = "matches the reference") -> str:
    """The success line: the same on every call (no random sizes), so notebooks can store it."""
    return f"{verified} on {n_cases} random inputs, incl. " + "; ".join(kinds)


def describe_type(value) -> str:
    """"a list", "an int", "a NumPy array", "a generator": what a learner's answer is, with its article."""
    if type(value).__module__ == "numpy" and type(value).__name__ == "ndarray":
        return "a NumPy array (use torch operations, or torch.from_numpy)"
    if inspect.isgenerator(value) or isinstance(value, Remote) and type_name(value) == "generator":
        return "a generator (a `yield`, or a comprehension in round brackets): build the result itself"
    if value is None:
        return "None"
    name = type_name(value) if isinstance(value, Remote) else type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"
