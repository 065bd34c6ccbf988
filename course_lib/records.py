"""Records: measured runs kept with the course (many seeds at 1, 2 and 4 threads), which lessons read to say
what holds beyond the one run they show. Lesson 09 reads the reference's seed matrix, lesson 10 its
same-steps comparison; ``python -m course_lib bench ... --record`` writes them.

A record is JSON: the settings it was measured with, the torch version, the command that makes it again,
and ``runs``, one per (seed, threads). Recording one thread count at a time keeps the others.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch


def merged_runs(path: Path, settings: Mapping, runs: Sequence[Mapping]) -> list[dict]:
    """``runs`` together with the runs ``path`` already holds for other (seed, threads), when it was recorded
    with the same ``settings`` (each of its keys compared) and torch version; sorted by seed, then threads."""
    new_keys = {(r["seed"], r["threads"]) for r in runs}
    kept = []
    if path.exists():
        try:
            before = json.loads(path.read_text())
        except (OSError, ValueError):
            before = {}
        if all(before.get(key) == value for key, value in settings.items()) and before.get("torch") == torch.__version__:
            kept = [r for r in before.get("runs", []) if (r["seed"], r["threads"]) not in new_keys]
    return sorted([*kept, *map(dict, runs)], key=lambda r: (r["seed"], r["threads"]))


def write(path: Path, settings: Mapping, command: str, runs: Sequence[Mapping]) -> Path:
    """Save a record: ``settings``' keys, the torch version, the ``command`` that makes it, then the runs."""
    content = {**settings, "torch": torch.__version__, "command": command, "runs": list(runs)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=1) + "\n")
    return path
