"""What a check says: its result, the ``Fail`` that stops it with a diagnosis, and the sentences that
describe what the learner's code returned or raised.

A check's whole output is one ``CheckResult`` whose one line reads ``✓ name: what was verified`` or
``✗ name: the diagnosis``. Everything here is plain text-making; nothing runs the learner's code.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from dataclasses import dataclass

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
    if inspect.isgenerator(value):
        return "a generator (a `yield`, or a comprehension in round brackets): build the result itself"
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def first_line(error: BaseException, limit: int = 160) -> str:
    """The first line of ``error``'s message, cut to ``limit`` characters: a result is one line."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# PyTorch's kernels raise NotImplementedError ("... not implemented for 'Long'") or RuntimeError ("...
# Expected a floating point ... Got Long") when they get integers where they need floats.
INTEGER_DTYPE = re.compile(r"not implemented for '(Long|Int|Short|Char|Byte|Bool)'"
                           r"|(floating point|float).*\bGot:? (Long|Int|Short|Char|Byte|Bool)\b")


def integer_dtype_error(error: BaseException, label: str) -> str:
    return (f"uses an integer (or bool) tensor where a float is needed ({label}): convert it with .float(), or "
            f"check the order of the arguments (PyTorch: {first_line(error)})")


def describe_exception(error: Exception, label: str) -> str:
    """A learner-facing sentence for an exception the learner's code raised on the input ``label``."""
    text = str(error)
    if INTEGER_DTYPE.search(text):
        return integer_dtype_error(error, label)
    if "Boolean value of Tensor with more than one" in text:
        return (f"uses a tensor as a True/False condition ({label}), as in `if mask:`; a tensor of several "
                f"values is neither: use `if mask is not None:`")
    if "view size is not compatible" in text:
        return (f"calls .view() on a tensor whose memory is not laid out in that order ({label}): "
                f"use .reshape(...), or .contiguous().view(...)")
    if "leaf Variable that requires grad" in text:
        return ("changes a parameter in place while autograd is recording: "
                "wrap the update in `with torch.no_grad():`")
    return f"raised {type(error).__name__} on {label}: {first_line(error)}"
