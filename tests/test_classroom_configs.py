"""The JupyterHub configs of classroom/ give each student's kernel their own course_lib and one thread.

Fast and without the instructor packages: each config is run with a stand-in for JupyterHub's
`get_config()` and a stand-in spawner. tests/test_hub.py runs the local one for real with 5 students.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from traitlets.config import Config

ROOT = Path(__file__).resolve().parent.parent
CLASSROOM = ROOT / "classroom"


def load(path: Path, **env) -> Config:
    config = Config()
    old = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        exec(compile(path.read_text(), str(path), "exec"), {"get_config": lambda: config, "__file__": str(path)})
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return config


def resolve(value, spawner):
    return value(spawner) if callable(value) else value


def test_local_config_listens_on_loopback_and_points_each_kernel_at_its_students_copy(tmp_path):
    config = load(CLASSROOM / "local" / "jupyterhub_config.py", COURSE_HUB_DIR=str(tmp_path),
                  COURSE_HUB_PASSWORD="a-long-password", COURSE_FOLDER="course")
    assert config.JupyterHub.ip == config.JupyterHub.hub_ip == "127.0.0.1"
    assert config.ConfigurableHTTPProxy.api_url.startswith("http://127.0.0.1:")
    template = config.SimpleLocalProcessSpawner.home_dir_template
    spawner = SimpleNamespace(user=SimpleNamespace(name="alice"), home_dir_template=template)
    environment = {key: resolve(value, spawner) for key, value in config.Spawner.environment.items()}
    assert environment["PYTHONPATH"] == str(tmp_path.resolve() / "homes" / "alice" / "course")
    assert environment["OMP_NUM_THREADS"] == "1"


def test_tljh_snippet_uses_each_unix_users_home():
    config = Config()
    config.Spawner.environment = {"TLJH_OWN": "kept"}
    path = CLASSROOM / "tljh" / "jupyterhub_config.d" / "course.py"
    exec(compile(path.read_text(), str(path), "exec"), {"get_config": lambda: config})
    spawner = SimpleNamespace(user=SimpleNamespace(name="bob"))
    environment = {key: resolve(value, spawner) for key, value in config.Spawner.environment.items()}
    assert environment == {"TLJH_OWN": "kept", "PYTHONPATH": "/home/jupyter-bob/transformers-course",
                           "OMP_NUM_THREADS": "1", "COURSE_FOLDER": "transformers-course"}


def test_z2jh_values_size_each_student_and_set_their_environment():
    yaml = pytest.importorskip("yaml", reason="PyYAML reads the helm values")
    values = yaml.safe_load((CLASSROOM / "z2jh" / "values.yaml").read_text())
    user = values["singleuser"]
    assert user["extraEnv"] == {"OMP_NUM_THREADS": "1", "PYTHONPATH": "/home/jovyan/transformers-course"}
    assert user["memory"] == {"guarantee": "512M", "limit": "1G"}
    assert user["cpu"] == {"guarantee": 0.4, "limit": 1}
    dockerfile = (CLASSROOM / "z2jh" / "Dockerfile").read_text()
    assert "python-3.11" in dockerfile and "grep -v '^-e '" in dockerfile and "nbgitpuller==1.3.0" in dockerfile
