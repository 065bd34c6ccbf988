"""How many CPU threads PyTorch uses in the course: one, unless you choose otherwise.

The course's models are small (a batch of 64 sentences of about 20 words, d_model 64). Measured on the
course's 2-core machine, a second thread makes their training barely faster when the machine is
quiet, and several times slower when another program (a browser, another kernel on a class's hub)
is busy on the same cores: the threads then wait for each other at every step. So the first part of
course_lib that computes with PyTorch to be loaded (``course_lib.models``, ``experiments``, ``widgets``,
``plots``, ``checks``, or a name like ``course_lib.fit``) sets PyTorch to ``DEFAULT_THREADS`` threads, once
per process, unless you chose a number yourself:

- ``COURSE_LIB_THREADS=4`` in the environment (for the course only), or
- ``OMP_NUM_THREADS=4`` in the environment (PyTorch's own setting; the course respects it), or
- ``torch.set_num_threads(4)`` after that first use: the course never sets the count a second time.

``import course_lib`` alone sets nothing (and does not import PyTorch). This is the one place the policy
is written; the README's "Threads" section shows what it is worth.

The reference result (``course_lib.experiments.reference``) holds with 1, 2 and 4 threads: ``python -m course_lib
record reference-seeds`` measures it.
"""

from __future__ import annotations

import os

DEFAULT_THREADS = 1
_SETTINGS = ("COURSE_LIB_THREADS", "OMP_NUM_THREADS")


def _from_environment() -> tuple[int, str] | None:
    for name in _SETTINGS:
        value = os.environ.get(name, "").strip()
        if not value:
            continue
        try:
            threads = int(value)
        except ValueError:
            raise ValueError(f"{name} must be a positive whole number of threads, got {value!r}") from None
        if threads < 1:
            raise ValueError(f"{name} must be a positive whole number of threads, got {value!r}")
        return threads, name
    return None


def thread_source() -> str:
    """Where the thread count comes from: ``"COURSE_LIB_THREADS"``, ``"OMP_NUM_THREADS"`` or ``"course default"``."""
    chosen = _from_environment()
    return chosen[1] if chosen else "course default"


_applied = False


def apply_thread_policy() -> int:
    """Set PyTorch's thread count by the rule above, the first time only, and return the count in use.

    Called when course_lib's PyTorch parts are first loaded; a later call leaves a count you set alone."""
    global _applied
    import torch  # here, not at the top: ``python -m course_lib doctor`` reads thread_source without PyTorch

    if not _applied:
        _applied = True
        chosen = _from_environment()
        threads = chosen[0] if chosen else DEFAULT_THREADS
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    return torch.get_num_threads()
