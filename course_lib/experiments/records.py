"""Reading a record that ``python -m course_lib record`` wrote into ``course_lib/data/`` (lessons 10 and 12).

A record is JSON: the settings and thresholds it was measured with, the torch version, the command that makes
it again, and ``runs``, one per (seed, threads). A lesson reads it only when it was made with the settings and
thresholds the lesson uses now.
"""

from __future__ import annotations

import json
from pathlib import Path


def recorded_runs(path: Path, settings: dict, thresholds: dict) -> list[dict]:
    """The runs of the record at ``path``; a ValueError if it was made with other settings or thresholds (then
    run the command it names again)."""
    path = Path(path)
    content = json.loads(path.read_text())
    if content.get("settings") != settings or content.get("thresholds") != thresholds:
        raise ValueError(f"{path.name} was recorded with other settings or thresholds; run "
                         f"`{content.get('command', 'python -m course_lib record')}` again")
    return content["runs"]
