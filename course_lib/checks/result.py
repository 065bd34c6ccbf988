"""What a check says: its result, the ``Fail`` that stops it with a diagnosis, and the sentences that
describe what the learner's code returned or raised.

A check's whole output is one ``CheckResult`` whose one line reads ``✓ name: what was verified`` or
``✗ name: the diagnosis``. Everything here is plain text-making; nothing runs the learner's code.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

from course_lib.apart.answering import (INTEGER_DTYPE, AnswerFailed, AnswerNotImplemented,  # noqa: F401
                                       describe_exception, first_line, integer_dtype_error)
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


# What the check's body raises and what the answer's side raises are one exception each, wherever the answer ran.
Fail = AnswerFailed  # Fail(message, about_inputs=False): the message holds on any input, so it names no seed
NotImplementedYet = AnswerNotImplemented  # raised by ``call`` when the exercise itself is unfinished


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
