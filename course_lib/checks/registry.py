"""The one list of the course's exercises: which lesson each belongs to, its check, its reference solution,
and which built-ins count as "you called the built-in" for it.

Each lesson module declares its checks with ``@check(name, lesson=..., reference=..., builtins=...)`` (see
``running.check``); that decorator adds an ``Exercise`` here. Everything else is derived from this registry:
``EXERCISES`` (lesson -> exercise names, in notebook order), the reference solutions timed by
``time_checks()``, the ``check_<name>`` names exported by ``course_lib.checks``, and the tests'
parametrisation. A grading tool reads it the same way::

    from course_lib.checks import registry
    for lesson, names in registry.exercises().items():
        entry = registry.get(names[0]); result = entry.check(entry.reference)  # a CheckResult
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Exercise:
    """One exercise: ``check(candidate)`` judges a learner's answer; ``reference`` is a right answer.

    ``builtins`` are dotted paths ("torch.softmax", "course_lib.models.attention.causal_mask") whose use means the
    learner called the ready-made thing instead of building it; ``pieces`` names what to build it from.
    ``time_limit`` is the check's own limit in seconds (``settings.time_limit`` overrides it).
    """

    name: str
    lesson: str
    check: Callable
    reference: Callable
    builtins: tuple[str, ...] = ()
    pieces: str = ""
    time_limit: float = 5.0

    @property
    def check_name(self) -> str:
        return f"check_{self.name}"


# name -> Exercise, in declaration order (the order of a lesson's exercises in its notebook).
REGISTRY: dict[str, Exercise] = {}


def register(entry: Exercise) -> Exercise:
    """Add ``entry``; re-declaring a name from the same module (a reload) replaces it in place."""
    old = REGISTRY.get(entry.name)
    if old is not None and old.check.__module__ != entry.check.__module__:
        raise ValueError(f"exercise {entry.name!r} is already declared by {old.check.__module__}")
    REGISTRY[entry.name] = entry
    return entry


def unregister(name: str) -> Exercise | None:
    """Remove an exercise (a test's fake lesson); returns what was removed, or None."""
    return REGISTRY.pop(name, None)


def get(name: str) -> Exercise:
    """The exercise called ``name`` ("softmax"; "check_softmax" works too). KeyError names the known ones."""
    key = name[len("check_"):] if name.startswith("check_") and name not in REGISTRY else name
    try:
        return REGISTRY[key]
    except KeyError:
        raise KeyError(f"no exercise {name!r}; known: {', '.join(REGISTRY)}") from None


def exercises() -> dict[str, tuple[str, ...]]:
    """Lesson -> its exercises' names: lessons sorted by name ("01_..." first), exercises in declaration order."""
    by_lesson: dict[str, list[str]] = {}
    for entry in REGISTRY.values():
        by_lesson.setdefault(entry.lesson, []).append(entry.name)
    return {lesson: tuple(by_lesson[lesson]) for lesson in sorted(by_lesson)}


def references() -> dict[str, Callable]:
    """Exercise name -> a right answer, in lesson order."""
    return {name: REGISTRY[name].reference for names in exercises().values() for name in names}


def checks() -> dict[str, Callable]:
    """``check_<name>`` -> the check, in lesson order."""
    return {REGISTRY[name].check_name: REGISTRY[name].check for names in exercises().values() for name in names}


class ExercisesView(Mapping):
    """``EXERCISES``: a live, read-only view of ``exercises()`` (a lesson registered later shows up)."""

    def __getitem__(self, lesson: str) -> tuple[str, ...]:
        return exercises()[lesson]

    def __iter__(self) -> Iterator[str]:
        return iter(exercises())

    def __len__(self) -> int:
        return len(exercises())

    def __repr__(self) -> str:
        return repr(exercises())


EXERCISES = ExercisesView()


def discover(package) -> list[str]:
    """Import every module of ``package`` (a package object) so that its ``@check`` declarations register;
    returns the imported module names. Modules whose name starts with "_" are skipped."""
    import importlib
    import pkgutil

    names = []
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}")
            names.append(info.name)
    return names
