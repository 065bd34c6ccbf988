"""Trained models kept on disk, so that a lesson that needs a model another lesson trained need not train it again.

Lesson 08 trains the reference language model and lesson 11 the digit transformer; the lessons after them, and
the exercises, load what was trained. An entry is keyed by everything that decides the trained numbers: the
settings, the seed, the thread count (a different count rounds floats differently), PyTorch's version and the
source of the course_lib modules that train it. So a changed course never reuses a stale model.

The folder is ``COURSE_LIB_CACHE`` if set, else ``transformer-course`` in your user cache folder (``~/.cache``
on Linux). Deleting it is always safe: whatever is missing is trained again. A cache that cannot be written
(a read-only folder, a file where the folder should be) is skipped, never an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import torch

FORMAT = 1
_PACKAGE = Path(__file__).resolve().parent.parent  # course_lib/


def cache_folder() -> Path:
    """``COURSE_LIB_CACHE`` if set, else ``transformer-course`` in the user's cache folder."""
    chosen = os.environ.get("COURSE_LIB_CACHE", "").strip()
    if chosen:
        return Path(chosen).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "transformer-course"


def entry_path(name: str, sources: Sequence[str], settings: object) -> Path:
    """Where the model ``name`` (e.g. ``"reference-seed0"``) trained with ``settings`` is kept at this thread
    count; ``sources`` are the course_lib files (paths inside course_lib/, e.g. "models/block.py") whose code decides what training produces."""
    key = hashlib.sha256()
    for source in sources:
        key.update((_PACKAGE / source).read_bytes())
    key.update(repr((FORMAT, settings, torch.get_num_threads(), torch.__version__)).encode())
    return cache_folder() / f"{name}-{torch.get_num_threads()}threads-{key.hexdigest()[:16]}.pt"


@contextlib.contextmanager
def lock(name: str) -> Iterator[None]:
    """Hold a lock file for ``name`` at this thread count (POSIX), so that two kernels never train the same
    model at once: the second waits, then loads. Where no lock can be taken (Windows, a read-only folder), none."""
    try:
        import fcntl
        path = cache_folder() / f"{name}-{torch.get_num_threads()}threads.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a")
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        handle.close()  # closing releases the lock


def save(path: Path, content: dict) -> None:
    """Write ``content`` (tensors, lists, numbers) atomically: a temporary file, then a rename. Older entries of
    the same name and thread count (from an older course_lib or PyTorch) are removed: they are never read again."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.stem, suffix=".tmp", delete=False)
    except OSError:
        return
    try:
        with handle:
            torch.save({"format": FORMAT, **content}, handle)
        os.replace(handle.name, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(handle.name)
        return
    prefix = path.name.rsplit("-", 1)[0]
    for old in path.parent.glob(f"{prefix}-*.pt"):
        if old != path:
            with contextlib.suppress(OSError):
                old.unlink()


def load(path: Path) -> dict | None:
    """The saved content, or None when missing or unreadable (then the model is trained again)."""
    try:
        saved = torch.load(path, weights_only=True)
    except Exception:  # missing, half-written by a killed process, or from another format: train again
        return None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        return None
    return saved
