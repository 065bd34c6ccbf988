"""What a check says: its result, the ``Fail`` that stops it with a diagnosis, and the sentences that
describe what the learner's code returned or raised.

A check's whole output is one ``CheckResult``. Its ``message`` is one plain line (graders and tests read
it); a notebook shows it as a short first line (``✓ name: what was verified``, ``✗ name: the mistake``) with
the details wrapped below it (``display``). Everything here is plain text-making; nothing runs the
learner's code.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from course_lib.apart.answering import (INTEGER_DTYPE, AnswerFailed, AnswerNotImplemented,  # noqa: F401
                                       describe_exception, first_line, integer_dtype_error)
from course_lib.apart.session import Remote, type_name

NOT_IMPLEMENTED = "not implemented yet (replace the `raise NotImplementedError` line with your code)"


WIDTH = 88  # a notebook's output area: no displayed line is longer, unless one word is
HEAD = 60  # the first line's verdict, at most (the exercise's name comes before it)
_SEED = re.compile(r"; seed (\d+)$")
_SUMMARY = re.compile(r"^(.+?),? (on \d+ random .*)$", re.DOTALL)


def _depth_zero(text: str, separator: str) -> list[int]:
    """Where ``separator`` occurs in ``text`` outside brackets and `code`."""
    found, depth, code = [], 0, False
    for i, char in enumerate(text):
        if char == "`":
            code = not code
        elif not code and char in "([{":
            depth += 1
        elif not code and char in ")]}":
            depth = max(depth - 1, 0)
        if depth == 0 and not code and text.startswith(separator, i):
            found.append(i)
    return found


def _without_trailing_label(head: str) -> tuple[str, str]:
    """``"returns a tensor (batch 2, T 3)"`` -> ``("returns a tensor", "(batch 2, T 3)")``: the inputs' label
    belongs with the details."""
    if head.endswith(")"):
        opens = _depth_zero(head, " (")
        if opens and _depth_zero(head[opens[-1] + 1:], ")") == [len(head) - opens[-1] - 2]:
            return head[:opens[-1]], head[opens[-1] + 1:]
    return head, ""


def split_verdict(message: str, passed: bool, before: int = 0) -> tuple[str, str]:
    """A message as (the verdict in a few words, the details), for a first line that has ``before``
    characters before the verdict: the summary's "what was verified" and "on N random inputs, ...", else
    the part before the first ": " (or "; "), else the first clause, else the words that fit."""
    room = min(HEAD, WIDTH - before)
    if len(message) <= room:
        return message, ""
    if passed and (summary_form := _SUMMARY.match(message)) and len(summary_form[1]) <= WIDTH - before:
        return summary_form[1], summary_form[2]
    colon = min(_depth_zero(message, ": ")[:1] + _depth_zero(message, "; ")[:1], default=len(message))
    for stop, keep in ((colon, 0), (min(_depth_zero(message, ", ")[:1], default=len(message)), 1)):
        head, rest = message[:stop + keep], message[stop + 2:]
        if len(head) > room:  # the inputs' label goes below: "returns a tensor (batch 2, T 3); expected ..."
            head, label = _without_trailing_label(message[:stop])
            rest = label + message[stop:stop + 1] + " " + rest if label and rest else label or rest
        if len(head) <= room:
            return head, rest
    bracket = _depth_zero(message, " (")[:1]
    if bracket and bracket[0] <= room:
        return message[:bracket[0]], message[bracket[0] + 1:]
    lines = textwrap.wrap(message, room, break_long_words=False, break_on_hyphens=False)
    return lines[0], message[len(lines[0]):].lstrip()


def display(name: str, passed: bool, message: str) -> str:
    """How a notebook shows a result: ``✓ name: verdict`` (or ``✗``), then the details wrapped at WIDTH on
    word boundaries, indented two spaces, a passing answer's note (`` — you called ...``) on its own, and a
    failure's seed alone on the last line (``  seed 81234``), so that a page never breaks a word."""
    seed = _SEED.search(message)
    text = message[:seed.start()] if seed else message
    note = ""
    if passed and (dashes := _depth_zero(text, " — ")):
        text, note = text[:dashes[0]], text[dashes[0] + 1:]
    first = f"{'✓' if passed else '✗'} {name}: "
    head, details = split_verdict(text, passed, len(first))
    lines = [first + head]
    for paragraph in (details, note):
        lines += textwrap.wrap(paragraph, WIDTH, initial_indent="  ", subsequent_indent="  ",
                               break_long_words=False, break_on_hyphens=False)
    if seed:
        lines.append(f"  seed {seed[1]}")
    return "\n".join(lines)


@dataclass(frozen=True, repr=False)
class CheckResult:
    """What a check found: ``passed``, a one-line ``message``, and the exercise's ``name``.

    In a notebook (``repr``) it shows as a short first line, ``✓ name: what was verified`` or ``✗ name: the
    mistake``, with the details wrapped below it (``display``); ``str`` is the one plain line
    ``✓ name: message`` (for graders and logs). ``implemented`` is False when the function still raises
    NotImplementedError.
    """

    name: str
    passed: bool
    message: str
    implemented: bool = True
    used_reference: bool = False  # the answer called the check's own reference solution (no points when graded)

    def __repr__(self) -> str:
        return display(self.name, self.passed, self.message)

    def __str__(self) -> str:
        return f"{'✓' if self.passed else '✗'} {self.name}: {self.message}"

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython: the same as repr, whatever its pretty-printer does
        printer.text(repr(self))

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
