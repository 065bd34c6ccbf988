"""Delegation: did the learner call the ready-made function the exercise asks them to build?

While a check runs, ``Delegation`` replaces every binding of each built-in the check names (``@check(...,
builtins=...)``: its own attribute, the same object in torch's and course_lib's modules, names the learner
imported) with a counting wrapper that calls through, and puts every one back afterwards. Such an answer
still passes; its line ends with a note ("— you called the built-in F.softmax; try it with the pieces (...)").
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Callable

from course_lib.apart.answering import (LEARNER_RUNNING, Delegation, builtin_label, is_the,  # noqa: F401
                                       learner_globals, resolve_path)

# Delegation itself runs wherever the answer runs (its own process, usually): see course_lib.apart.answering.
REFERENCE_NOTE = (" — but it called the check's own reference solution, so this line says nothing about your "
                  "answer: write it yourself")


class ReferenceGuard:
    """While active, the check's own reference solution of exercise ``name`` counts the calls the learner's
    code makes to it: through the registry (``registry.get(name).reference``), through a check module's
    name for it, or through a name the learner imported. ``used`` says whether it was called; grading gives
    such an answer no points (``course_lib.tools.autograde``), a notebook shows a note. Restored on exit."""

    def __init__(self, name: str, candidate, in_copy: bool = False):
        self.name, self.candidate, self.calls = name, candidate, 0
        self.in_copy = in_copy  # in the answer's own (throwaway) process: every call of the reference's code counts
        self._undo: list[Callable[[], None]] = []

    @property
    def used(self) -> bool:
        return self.calls > 0

    def note(self) -> str:
        return REFERENCE_NOTE

    def __enter__(self) -> ReferenceGuard:
        from . import registry  # the registry imports nothing of this module: no loop

        entry = registry.REGISTRY.get(self.name)
        if entry is None:
            return self
        original = entry.reference
        # A reference that is itself one of the exercise's built-ins (course_lib's own causal_mask) is the
        # built-in's business (``Delegation``: a note); only the registry's way to it counts here.
        library = any((found := resolve_path(path)) is not None and original in (found[0], found[2])  # or its class
                      for path in entry.builtins)
        if is_the(self.candidate, original) and not library:
            self.calls += 1  # the learner passed the reference itself

        @functools.wraps(original)
        def counting(*args, **kwargs):
            if LEARNER_RUNNING[0]:
                self.calls += 1
            return original(*args, **kwargs)

        registry.REGISTRY[self.name] = dataclasses.replace(entry, reference=counting)
        self._undo.append(lambda: registry.REGISTRY.__setitem__(self.name, entry))
        checks = [vars(m) for n, m in list(sys.modules.items()) if n.startswith("course_lib.checks.") and m]
        for space in ([] if library else checks + learner_globals(self.candidate)):
            for key, value in list(space.items()):
                if value is original and key != self.name:  # not the learner's own function of that name
                    space[key] = counting
                    self._undo.append(lambda space=space, key=key: space.__setitem__(key, original))
        code = getattr(original, "__code__", None)
        if self.in_copy and code is not None and not library:
            # Only the answer runs in its process, so any call of the reference's code is the answer's, however
            # it found the function (a frame, the garbage collector): a profile function sees each call.
            previous = sys.getprofile()

            def profile(frame, event, arg):
                if event == "call" and frame.f_code is code:
                    self.calls += 1

            sys.setprofile(profile)
            self._undo.append(lambda: sys.setprofile(previous))
        return self

    def __exit__(self, *exc) -> None:
        while self._undo:
            self._undo.pop()()
