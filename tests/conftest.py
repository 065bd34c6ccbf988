"""Settings for the whole test run (loaded at start-up: tests/ is one of the configured test paths)."""

from __future__ import annotations

import builtins
import os
import shutil
import tempfile

import pytest

_OWN_CACHE = "_course_test_cache"


def pytest_addoption(parser):
    parser.addoption("--slow-notebooks", action="store_true",
                     help="also re-run the slow notebooks that train at 1, 2 and 4 threads (tests/test_thread_counts.py; "
                          "minutes)")


def pytest_configure(config):
    """Give the run its own, empty model cache (course_lib.experiments.cache): notebooks that train
    save there and the ones that load find it, without touching the learner's own cache. The kernels
    nbval starts, and xdist's workers, inherit the environment; only the first process makes the folder."""
    if hasattr(config, "workerinput") or os.environ.get("COURSE_LIB_CACHE"):
        return
    folder = tempfile.mkdtemp(prefix="course-test-cache-")
    os.environ["COURSE_LIB_CACHE"] = folder
    setattr(config, _OWN_CACHE, folder)


def pytest_unconfigure(config):
    folder = getattr(config, _OWN_CACHE, None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop("COURSE_LIB_CACHE", None)


def _cache_role(path) -> int:
    """0: a notebook that trains a model the cache keeps (lesson 08's reference, lesson 11's digit transformer);
    2: one that loads such a model (and lesson 14's exercises, which load what lesson 14 trained: lesson 14 itself
    stays in the middle, where it has long finished when they start); 1: everything else."""
    if path.suffix != ".ipynb":
        return 1
    text = path.read_text(encoding="utf-8")
    if "train_reference_model(" in text or "train_digit_vit(" in text:
        return 0
    if "load_reference_model(" in text or "load_digit_vit(" in text:
        return 2
    return 2 if "repeats_model_trained(" in text and path.parent.name != "notebooks" else 1


def pytest_collection_modifyitems(session, config, items):
    """Run the notebooks that train a cached model first and those that load one last: then they find it in
    the cache instead of waiting for it or training it again (xdist hands out files in this order)."""
    if not config.getoption("--slow-notebooks"):
        skip = pytest.mark.skip(reason="minutes of training at two more thread counts: run with --slow-notebooks")
        for item in items:
            if "slow_notebooks" in item.keywords:
                item.add_marker(skip)
    roles = {}
    for item in items:
        path = item.path
        if path not in roles:
            roles[path] = _cache_role(path)
    items.sort(key=lambda item: roles[item.path])  # stable: each file's cells keep their order


@pytest.fixture
def read_only(monkeypatch):
    """``read_only(folder)``: every write under ``folder`` fails with PermissionError, as in a folder without write
    permission. File modes alone would not do: root (as CI runs) may write anywhere. The mode is set too, so
    that a non-root run meets the real thing."""
    folders: list[str] = []
    real_mkdir, real_os_open, real_open = os.mkdir, os.open, builtins.open

    def refuse(path) -> None:
        resolved = os.path.abspath(os.fspath(path)) if isinstance(path, (str, bytes, os.PathLike)) else ""
        if any(resolved == f or resolved.startswith(f + os.sep) for f in folders):
            raise PermissionError(13, "Permission denied", os.fspath(path))

    def mkdir(path, *args, **kwargs):
        refuse(path)
        return real_mkdir(path, *args, **kwargs)

    def os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def open_(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", open_)
    changed = []

    def make(folder) -> None:
        folders.append(os.path.abspath(os.fspath(folder)))
        if os.path.isdir(folder):
            changed.append((folder, os.stat(folder).st_mode))
            os.chmod(folder, 0o555)

    yield make
    for folder, mode in changed:
        os.chmod(folder, mode)


@pytest.fixture
def answers_in_this_process(monkeypatch):
    """Checks run answers in this process, as on a platform without fork (``settings.apart = False``)."""
    from course_lib.checks import settings

    monkeypatch.setattr(settings, "apart", False)
