"""Delegation: did the learner call the ready-made function the exercise asks them to build?

While a check runs, ``Delegation`` replaces every binding of each built-in the check names (``@check(...,
builtins=...)``: its own attribute, the same object in torch's and course_lib's modules, names the learner
imported) with a counting wrapper that calls through, and puts every one back afterwards. Such an answer
still passes; its line ends with a note ("— you called the built-in F.softmax; try it with the pieces (...)").
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import sys
from collections.abc import Callable, Sequence

LEARNER_RUNNING = [False]  # True only while ``call`` runs the learner's code: the check's own calls don't count


def _resolve(path: str):
    """``"torch.nn.functional.softmax"`` -> (owner, attribute name, object); None when it does not exist."""
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for part in parts[split:-1]:
                owner = getattr(owner, part)
            return owner, parts[-1], getattr(owner, parts[-1])
        except AttributeError:
            return None
    return None


def builtin_label(path: str) -> str:
    """How a message names a built-in: "F.softmax", "torch.softmax", "course_lib's causal_mask"."""
    if path.startswith("course_lib."):  # course_lib.<part>.<module>.<name>
        return f"course_lib's {'.'.join(path.split('.')[3:]) or path.split('.')[-1]}"
    for long, short in (("torch.nn.functional.", "F."), ("torch.nn.", "nn.")):
        if path.startswith(long):
            return short + path[len(long):]
    return path


def _learner_globals(candidate) -> list[dict]:
    """The global namespaces of the learner's code (a function's module, a class's methods' module)."""
    spaces, seen = [], set()
    for code_owner in _functions_of(candidate):
        space = getattr(code_owner, "__globals__", None)
        if isinstance(space, dict) and id(space) not in seen:
            seen.add(id(space))
            spaces.append(space)
    return spaces


def _functions_of(candidate) -> list:
    target = candidate.func if isinstance(candidate, functools.partial) else candidate
    if inspect.ismethod(target):
        target = target.__func__
    if inspect.isfunction(target):
        return [target]
    cls = target if isinstance(target, type) else type(target)
    found = []
    for klass in getattr(cls, "__mro__", ()):
        if klass.__module__.split(".")[0] in ("torch", "builtins"):
            continue
        for value in vars(klass).values():
            function = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            if inspect.isfunction(function):
                found.append(function)
    return found


# id(namespace) -> (its size, {id(value): [names bound to it]}): torch's and course_lib's module namespaces
# are large and do not change while a course runs, so a check need not read all of them every time.
_NAME_INDEX: dict[int, tuple[int, dict[int, list[str]]]] = {}
_COURSE_MODULES: list = [-1, []]  # [len(sys.modules) when listed, course_lib's module namespaces]


def _keys_bound_to(space: dict, values: list) -> list[str]:
    """The names in ``space`` bound to any of ``values`` (each checked again: the index may be older)."""
    cached = _NAME_INDEX.get(id(space))
    if cached is None or cached[0] != len(space):
        index: dict[int, list[str]] = {}
        for key, value in list(space.items()):
            index.setdefault(id(value), []).append(key)
        cached = _NAME_INDEX[id(space)] = (len(space), index)
    return [key for value in values for key in cached[1].get(id(value), ()) if space.get(key) is value]


def _library_namespaces(scanned: Sequence[str]) -> list[dict]:
    """The namespaces of the ``scanned`` torch modules and of course_lib's modules outside its checks."""
    if _COURSE_MODULES[0] != len(sys.modules):
        _COURSE_MODULES[:] = [len(sys.modules), [
            module for name, module in list(sys.modules.items())
            if (name == "course_lib" or name.startswith("course_lib."))
            and not name.startswith(("course_lib.checks", "course_lib.tools")) and module is not None]]
    return [vars(sys.modules[name]) for name in scanned if name in sys.modules] + [vars(m) for m in _COURSE_MODULES[1]]


class Delegation:
    """While active, every binding of each built-in in ``paths`` (its own attribute, the same object in
    torch's and course_lib's modules, names the learner imported into their globals) is a counting
    wrapper that calls through. Only calls made while the learner's code runs count. Restored on exit."""

    _SCANNED = ("torch", "torch.nn.functional", "torch.special", "torch.linalg")

    def __init__(self, paths: Sequence[str], candidate):
        self.paths = tuple(paths)
        self.candidate = candidate
        self.counts = {path: 0 for path in self.paths}
        self._undo: list[Callable[[], None]] = []

    def __enter__(self) -> Delegation:
        if not self.paths:
            return self
        try:
            found_paths = [(path, found) for path in self.paths if (found := _resolve(path)) is not None]
            # Every other name bound to each built-in, looked up before anything is patched.
            originals = [found[2] for _, found in found_paths]
            aliases = [(space, key) for space in _library_namespaces(self._SCANNED)
                       for key in _keys_bound_to(space, originals)]
            aliases += [(space, key) for space in _learner_globals(self.candidate)
                        for key, value in list(space.items()) if any(value is o for o in originals)]
            wrappers = {}
            for path, (owner, attr, original) in found_paths:
                if _is_the(self.candidate, original):
                    self.counts[path] += 1  # the learner passed the built-in itself
                wrapper = self._counting(path, original)
                wrappers[id(original)] = (original, wrapper)
                self._patch(owner, attr, wrapper)
            for space, key in aliases:
                value = space.get(key)
                hit = wrappers.get(id(value))
                if hit is not None and hit[0] is value:  # not already the wrapper (the owner's own name)
                    self._patch_dict(space, key, hit[1])
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        while self._undo:
            self._undo.pop()()

    def _counting(self, path: str, original):
        counts = self.counts

        @functools.wraps(original)
        def counting(*args, **kwargs):
            if LEARNER_RUNNING[0]:
                counts[path] += 1
            return original(*args, **kwargs)

        return counting

    def _patch(self, owner, attr: str, wrapper) -> None:
        had_own = isinstance(owner, type) and attr in vars(owner)
        old = vars(owner)[attr] if isinstance(owner, type) and had_own else getattr(owner, attr)
        setattr(owner, attr, wrapper)
        if isinstance(owner, type) and not had_own:
            self._undo.append(lambda: delattr(owner, attr))
        else:
            self._undo.append(lambda: setattr(owner, attr, old))

    def _patch_dict(self, space: dict, key: str, wrapper) -> None:
        old = space[key]
        space[key] = wrapper
        self._undo.append(lambda: space.__setitem__(key, old))

    def used(self) -> list[str]:
        return [path for path in self.paths if self.counts[path]]

    def note(self, pieces: str) -> str:
        used = self.used()
        if not used:
            return ""
        name = builtin_label(used[0])
        called = f"you called {name}" if name.startswith("course_lib") else f"you called the built-in {name}"
        return f" — {called}" + (f"; try it with the pieces ({pieces})" if pieces else "")


def _is_the(candidate, original) -> bool:
    target = candidate.func if isinstance(candidate, functools.partial) else candidate
    return target is original


class ReferenceGuard:
    """While active, the check's own reference solution of exercise ``name`` counts the calls the learner's
    code makes to it: through the registry (``registry.get(name).reference``), through a check module's
    name for it, or through a name the learner imported. ``used`` says whether it was called; grading gives
    such an answer no points (``course_lib.tools.grading``), a notebook shows a note. Restored on exit."""

    def __init__(self, name: str, candidate):
        self.name, self.candidate, self.calls = name, candidate, 0
        self._undo: list[Callable[[], None]] = []

    @property
    def used(self) -> bool:
        return self.calls > 0

    def note(self) -> str:
        return (" — but it called the check's own reference solution, so this line says nothing about your "
                "answer: write it yourself")

    def __enter__(self) -> ReferenceGuard:
        from . import registry  # the registry imports nothing of this module: no loop

        entry = registry.REGISTRY.get(self.name)
        if entry is None:
            return self
        original = entry.reference
        # A reference that is itself one of the exercise's built-ins (course_lib's own causal_mask) is the
        # built-in's business (``Delegation``: a note); only the registry's way to it counts here.
        library = any((found := _resolve(path)) is not None and original in (found[0], found[2])  # or its class
                      for path in entry.builtins)
        if _is_the(self.candidate, original) and not library:
            self.calls += 1  # the learner passed the reference itself

        @functools.wraps(original)
        def counting(*args, **kwargs):
            if LEARNER_RUNNING[0]:
                self.calls += 1
            return original(*args, **kwargs)

        registry.REGISTRY[self.name] = dataclasses.replace(entry, reference=counting)
        self._undo.append(lambda: registry.REGISTRY.__setitem__(self.name, entry))
        checks = [vars(m) for n, m in list(sys.modules.items()) if n.startswith("course_lib.checks.") and m]
        for space in ([] if library else checks + _learner_globals(self.candidate)):
            for key, value in list(space.items()):
                if value is original and key != self.name:  # not the learner's own function of that name
                    space[key] = counting
                    self._undo.append(lambda space=space, key=key: space.__setitem__(key, original))
        return self

    def __exit__(self, *exc) -> None:
        while self._undo:
            self._undo.pop()()
