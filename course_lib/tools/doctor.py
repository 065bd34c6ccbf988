"""``python -m course_lib doctor``: is this machine ready for the course? One OK/FAIL line per item,
each FAIL with how to fix it. Exits non-zero when anything fails.

It runs with nothing but Python's standard library at the top: every check imports what it needs inside,
and a check whose package is missing (PyTorch, say) fails with the command that installs it, instead of
stopping the whole doctor.
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

# numpy 2.4, matplotlib 3.11, ipykernel 7.4 and pillow 13 (requirements.txt) need Python 3.11 or newer.
MIN_PYTHON = (3, 11)
# Seconds per step of the timing probe on the machine the course's budgets were set on (2 cores, 1 thread).
REFERENCE_SECONDS_PER_STEP = 0.034
# Seconds that lessons 00-06 take together there, run top to bottom (measured under nbval).
REFERENCE_LESSONS_SECONDS = 46


@dataclass
class DoctorCheck:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{'OK  ' if self.ok else 'FAIL'}  {self.name:<20} {self.detail}"
        return text if self.ok else f"{text}\n      fix: {self.fix}"


def requirements_file() -> Path | None:
    """requirements.txt at the repository root (course_lib is installed in editable mode from there)."""
    candidate = Path(__file__).resolve().parents[2] / "requirements.txt"
    return candidate if candidate.exists() else None


def install_command() -> str:
    """The command that installs the course's pinned packages into this very Python."""
    path = requirements_file()
    return f"{sys.executable} -m pip install -r {path if path else 'requirements.txt'}"


def pinned_requirements(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)", line)
        if match:
            pins[match.group(1)] = match.group(2)
    return pins


def check_python() -> DoctorCheck:
    version = ".".join(map(str, sys.version_info[:3]))
    ok = sys.version_info[:2] >= MIN_PYTHON
    return DoctorCheck("python", ok, version,
                       f"install Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer, then recreate the virtual environment")


def check_packages() -> DoctorCheck:
    path = requirements_file()
    if path is None:
        return DoctorCheck("packages", False, "requirements.txt not found next to course_lib",
                           "install course_lib from the course repository: pip install -r requirements.txt")
    wrong = []
    pins = pinned_requirements(path)
    for name, wanted in pins.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{name} missing (need {wanted})")
            continue
        if installed.split("+")[0] != wanted:  # torch reports "2.13.0+cpu"
            wrong.append(f"{name} {installed} (need {wanted})")
    if wrong:
        return DoctorCheck("packages", False, "; ".join(wrong), install_command())
    return DoctorCheck("packages", True, f"{len(pins)} pinned packages match requirements.txt")


def check_widgets_extension() -> DoctorCheck:
    try:
        from jupyter_core.paths import jupyter_path
    except ImportError:
        return DoctorCheck("widgets extension", False, "jupyter_core is not installed", install_command())
    for folder in jupyter_path("labextensions"):
        manager = Path(folder) / "@jupyter-widgets" / "jupyterlab-manager" / "package.json"
        if manager.exists():
            return DoctorCheck("widgets extension", True, "ipywidgets' JupyterLab extension is installed")
    return DoctorCheck("widgets extension", False, "ipywidgets' JupyterLab extension was not found: widgets would "
                       "show as text", f"{install_command()} (it installs jupyterlab_widgets), then "
                       "restart JupyterLab")


def check_threads() -> DoctorCheck:
    from course_lib.threads import apply_thread_policy, thread_source

    # The count a lesson gets: the course's policy, as the first course_lib cell of a notebook applies it.
    threads, cores, source = apply_thread_policy(), os.cpu_count() or 1, thread_source()
    why = ("the course's default: one thread stays fast when a browser or other kernels share the cores"
           if source == "course default" else f"set by {source}")
    return DoctorCheck("threads", threads <= cores, f"PyTorch uses {threads} thread(s) on {cores} core(s) ({why})",
                       f"more threads than cores only wait for each other: unset {source}, or set it to at most {cores}")


def check_offline_data() -> DoctorCheck:
    from course_lib.experiments.images import sample_photo

    try:
        photo = sample_photo(32)
    except Exception as error:  # noqa: BLE001 - any failure here means a broken matplotlib install
        return DoctorCheck("offline data", False, f"the sample photo did not load ({error})",
                           f"{install_command()} --force-reinstall")
    return DoctorCheck("offline data", True, f"sample photo loads, shape {tuple(photo.shape)}; grammar is generated")


def time_tiny_training(steps: int = 40) -> float:
    """Seconds per training step of a small TransformerLM on the agreement grammar."""
    import torch

    from course_lib.experiments.grammar import AgreementGrammar, agreement_vocabulary, encode_sentences
    from course_lib.models.language_model import TransformerLM
    from course_lib.experiments.reference import REFERENCE
    from course_lib.experiments.training import fit, language_model_loss, random_batches

    with torch.random.fork_rng():  # leave the caller's random state (a lesson's seed) untouched
        torch.manual_seed(0)
        vocab = agreement_vocabulary()
        ids, _ = encode_sentences(AgreementGrammar(0).sentences(512), vocab)
        model = TransformerLM(len(vocab), **REFERENCE.model_kwargs())
        make_batch = random_batches(ids, batch_size=64)
        fit(model, make_batch, language_model_loss, steps=5, progress=False)  # warm-up: first steps are slow
        start = time.perf_counter()
        fit(model, make_batch, language_model_loss, steps=steps, progress=False)
        return (time.perf_counter() - start) / steps


def check_speed() -> DoctorCheck:
    per_step = time_tiny_training()
    factor = per_step / REFERENCE_SECONDS_PER_STEP
    detail = (f"{per_step * 1000:.1f} ms per training step, {factor:.1f}x the course's reference machine: "
              f"lessons 00-06 take about {REFERENCE_LESSONS_SECONDS * factor:.0f} s of computing here "
              f"({REFERENCE_LESSONS_SECONDS} s there)")
    return DoctorCheck("speed", factor <= 3.0, detail,
                       "close other programs; check the threads line; lessons will run, but slowly")


def check_reference() -> DoctorCheck:
    """Train the course's reference model here (seed 0, this machine's threads) and check its targets."""
    import torch

    from course_lib.experiments.reference import REFERENCE, train_reference_model

    with torch.random.fork_rng():  # leave the caller's random state (a lesson's seed) untouched
        start = time.perf_counter()
        run = train_reference_model(seed=0, progress=False, cache=False)
        seconds = time.perf_counter() - start
    c = REFERENCE
    detail = (f"agreement {run.agreement_accuracy:.3f} (>= {c.min_accuracy}), verb->subject head "
              f"{run.subject_head_weight:.2f} (>= {c.min_subject_weight}), neighbour head "
              f"{run.neighbour_head_weight:.2f} (>= {c.min_neighbour_weight}), trained in {seconds:.0f} s "
              f"with {torch.get_num_threads()} thread(s)")
    return DoctorCheck("reference result", run.meets_targets(), detail,
                       "lessons 08-09 will not show what they describe on this machine: please report this line "
                       "and the output of `python -m course_lib bench --json` to the course")


_NAMES = {"check_python": "python", "check_packages": "packages", "check_widgets_extension": "widgets extension",
          "check_threads": "threads", "check_offline_data": "offline data", "check_speed": "speed",
          "check_reference": "reference result"}


def _run_check(check) -> DoctorCheck:
    """``check()``; a package it needs that is missing or broken becomes a FAIL line with the fix."""
    try:
        return check()
    except ImportError as error:
        missing = error.name or str(error)
        return DoctorCheck(_NAMES.get(check.__name__, check.__name__), False,
                           f"cannot run: {missing} is not installed or does not import ({error})", install_command())


def run_doctor(show: bool = True, reference: bool = True) -> list[DoctorCheck]:
    """Run every check; print one line each when ``show``. Returns the checks.

    ``reference=False`` skips training the reference model (``doctor --quick``)."""
    checks = []
    for check in (check_python, check_packages, check_widgets_extension, check_threads, check_offline_data,
                  check_speed, *((check_reference,) if reference else ())):
        result = _run_check(check)
        checks.append(result)
        if show:
            print(result.line(), flush=True)
    if show:
        failed = [c.name for c in checks if not c.ok]
        print("\nall checks passed: you are ready for the course" if not failed
              else f"\n{len(failed)} check(s) failed: {', '.join(failed)}")
    return checks


def run(args=None) -> int:
    """Run every check, print them; 0 when all pass, 1 otherwise."""
    quick = bool(getattr(args, "quick", False))
    return 0 if all(c.ok for c in run_doctor(show=True, reference=not quick)) else 1

