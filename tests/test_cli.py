"""``python -m course_lib doctor | bench``: their output and exit codes (targets live in bench, not here)."""

import json
import subprocess
import sys

import pytest

from course_lib import bench, doctor
from course_lib.__main__ import main as cli_main


def test_doctor_reports_every_item_and_passes_in_the_course_environment():
    checks = doctor.run_doctor(show=False)
    assert [c.name for c in checks] == ["python", "packages", "widgets extension", "threads", "offline data", "speed"]
    environment = [c for c in checks if c.name != "speed"]  # speed depends on the machine's load
    assert all(c.ok for c in environment), [c.line() for c in environment if not c.ok]


def test_doctor_flags_a_wrong_package_version_with_a_fix(tmp_path, monkeypatch):
    pins = tmp_path / "requirements.txt"
    pins.write_text("torch==0.0.1\nno-such-package-for-the-course==1.0\n")
    monkeypatch.setattr(doctor, "requirements_file", lambda: pins)
    check = doctor.check_packages()
    assert not check.ok
    assert "torch" in check.detail and "need 0.0.1" in check.detail
    assert "no-such-package-for-the-course missing" in check.detail
    assert "fix: pip install -r requirements.txt" in check.line()


def test_doctor_command_exit_code_follows_its_checks(monkeypatch, capsys):
    monkeypatch.setattr(doctor, "check_speed", lambda: doctor.DoctorCheck("speed", False, "slow", "close programs"))
    assert doctor.main([]) == 1
    out = capsys.readouterr().out
    assert "FAIL  speed" in out and "fix: close programs" in out and "1 check(s) failed: speed" in out
    monkeypatch.setattr(doctor, "check_speed", lambda: doctor.DoctorCheck("speed", True, "fast"))
    assert doctor.main([]) == 0


def test_cli_usage_and_unknown_command(capsys):
    assert cli_main(["--help"]) == 0
    assert "doctor" in capsys.readouterr().out
    assert cli_main(["fly"]) == 2
    assert "unknown command 'fly'" in capsys.readouterr().err


def test_bench_json_has_the_documented_keys():
    out = subprocess.run([sys.executable, "-m", "course_lib", "bench", "--json", "--no-reference"],
                         capture_output=True, text=True, timeout=600, check=True).stdout
    results = json.loads(out)
    for key in ("mha_ratio", "block_ratio", "train_step_ratio"):
        assert isinstance(results[key], float) and results[key] > 0
    assert set(results["details_ms"]["mha"]) == {"ours_ms", "theirs_ms"}
    from course_lib.checks import EXERCISES

    assert results["checks"]["count"] == sum(len(names) for names in EXERCISES.values())
    assert results["checks"]["slowest_seconds"] > 0
    table = bench.format_table(results)
    assert "mha" in table and "train_step" in table


@pytest.mark.parametrize("reference, missed", [
    ({"seconds": 12.0, "agreement_accuracy": 1.0, "subject_head_weight": 0.95}, []),
    ({"seconds": 31.0, "agreement_accuracy": 0.97, "subject_head_weight": 0.5},
     ["reference.seconds", "reference.agreement_accuracy", "reference.subject_head_weight"]),
])
def test_bench_reports_missed_targets(reference, missed):
    results = {"mha_ratio": 1.3, "block_ratio": 1.0, "train_step_ratio": 1.1, "reference": reference,
               "checks": {"slowest_seconds": 0.4}}
    found = [line.split(" = ")[0] for line in bench.failures(results)]
    assert found == ["mha_ratio", *missed]


def test_doctor_speed_probe_leaves_the_callers_random_state_alone():
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    doctor.time_tiny_training(steps=2)
    assert torch.equal(torch.rand(3), expected)
