"""binder/ makes mybinder.org build the course: Python 3.11, PyTorch's CPU build, the editable install once.

Fast and structural. The slow check, a fresh virtual environment from binder/requirements.txt without
the CPU index line (a test machine reaches only its package mirror; minutes), runs only with
COURSE_TEST_BINDER_VENV=1.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"
PIN = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)")


def pins(path: Path) -> dict[str, str]:
    return {match.group(1).lower(): match.group(2) for line in path.read_text().splitlines()
            if (match := PIN.match(line))}


def lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_runtime_is_python_311():
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"


def test_torch_comes_from_pytorchs_cpu_index():
    requirements = lines(BINDER / "requirements.txt")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in requirements
    course_torch = pins(ROOT / "requirements.txt")["torch"]
    assert pins(BINDER / "requirements.txt")["torch"] == f"{course_torch}+cpu"


def test_same_pins_as_the_course_and_one_editable_install():
    binder, course = pins(BINDER / "requirements.txt"), pins(ROOT / "requirements.txt")
    assert {name: version for name, version in binder.items() if name != "torch"} == \
        {name: version for name, version in course.items() if name != "torch"}
    assert lines(BINDER / "requirements.txt").count("-e .") == 1
    # repo2docker runs setup.py / `pip install .` only without a binder/ folder, and no build script adds one
    for script in ("postBuild", "start"):
        path = BINDER / script
        assert not path.exists() or "pip install ." not in path.read_text()


def test_the_python_floor_is_the_packages_floor():
    from course_lib.tools import doctor

    assert doctor.MIN_PYTHON == (3, 11)  # numpy 2.4.6, matplotlib 3.11.2, ipykernel 7.4.0, pillow 13.0.0
    assert doctor.check_python().ok


@pytest.mark.skipif(os.environ.get("COURSE_TEST_BINDER_VENV") != "1",
                    reason="minutes: set COURSE_TEST_BINDER_VENV=1 to build a fresh venv from binder/requirements.txt")
def test_a_fresh_environment_from_binders_requirements(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    requirements = tmp_path / "requirements.txt"
    # a test machine reaches only its package mirror: the CPU index line goes (the mirror must hold torch's +cpu wheel)
    text = (BINDER / "requirements.txt").read_text()
    requirements.write_text(text.replace("--extra-index-url https://download.pytorch.org/whl/cpu\n", ""))
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)], cwd=ROOT, check=True,
                   timeout=1800)
    subprocess.run([str(python), "-m", "pip", "check"], check=True, timeout=120)
    done = subprocess.run([str(python), "-m", "course_lib", "doctor", "--quick"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert "OK    python" in done.stdout and "OK    packages" in done.stdout, done.stdout + done.stderr
