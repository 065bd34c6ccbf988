"""JupyterHub for the course on one machine, every student a folder: try the course for a class on your
own computer, and what tests/test_hub.py runs (5 students at once).

    COURSE_HUB_DIR=/tmp/course-hub COURSE_HUB_PASSWORD=choose-a-long-one \
        .venv/bin/jupyterhub -f classroom/local/jupyterhub_config.py

then open http://127.0.0.1:8000, log in with any name and that password, and give students the links of
`python -m course_lib links --hub http://127.0.0.1:8000 --repo <the course's git URL>`.

Everything runs as *your* Unix user (the "simple" spawner): students are separated by folders, not by
the operating system, so this is for a trusted group or a test. For a real class use The Littlest
JupyterHub (classroom/tljh/) or Kubernetes (classroom/z2jh/), where each student is their own user.

Settings (environment variables):

- COURSE_HUB_DIR        the hub's state: database, cookie secret, and homes/<student>/ (required)
- COURSE_HUB_PASSWORD   the shared password, at least 8 characters (required)
- COURSE_HUB_PORT       the port students open (default 8000); everything listens on 127.0.0.1 only
- COURSE_HUB_API_PORT   the hub's own port (default 8081); COURSE_PROXY_API_PORT the proxy's (default 8001)
- COURSE_FOLDER         the folder nbgitpuller clones the course into, in each home: the repository's
                        name (default transformers-course)
- COURSE_HUB_TOKEN      optional: an API token for a service "course-admin" that may create users,
                        start servers and use them (the test drives the hub with it)
"""

import os
import sys
from pathlib import Path

state = Path(os.environ["COURSE_HUB_DIR"]).resolve()
homes = state / "homes"
homes.mkdir(parents=True, exist_ok=True)
bin_dir = Path(sys.executable).parent  # the environment JupyterHub runs in also serves the students
COURSE_FOLDER = os.environ.get("COURSE_FOLDER", "transformers-course")

c = get_config()  # noqa: F821 - JupyterHub provides it

# --- network: loopback only ---------------------------------------------------------------------------------
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = int(os.environ.get("COURSE_HUB_PORT", "8000"))
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ.get("COURSE_HUB_API_PORT", "8081"))
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ.get('COURSE_PROXY_API_PORT', '8001')}"
# The PyPI package configurable-http-proxy: a Python proxy, no Node.js needed.
c.ConfigurableHTTPProxy.command = [str(bin_dir / "configurable-http-proxy")]

# --- state --------------------------------------------------------------------------------------------------
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every student's server

# --- who may log in: any name, one shared password ----------------------------------------------------------
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = os.environ["COURSE_HUB_PASSWORD"]
c.Authenticator.allow_all = True

# --- each student's server: a process of this user, in homes/<student> -------------------------------------
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = str(homes / "{username}")
c.Spawner.cmd = [str(bin_dir / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
if os.geteuid() == 0:  # a container or CI running as root
    c.Spawner.args = ["--ServerApp.allow_root=True"]
# Measured on 2 cores: five servers starting at once take 10-14 s each; leave room on a busy machine.
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120


def course_pythonpath(spawner):
    """The student's own copy of the course, first on each kernel's import path: `import course_lib` finds
    *their* course_lib, not an editable install of the instructor's clone in the shared environment
    (measured: without it, every student's kernel imported the instructor's)."""
    return str(Path(spawner.home_dir_template.format(username=spawner.user.name)) / COURSE_FOLDER)


c.Spawner.environment = {
    "PYTHONPATH": course_pythonpath,
    # One thread per kernel, the course's default: five students on 2 cores ran lesson 05 1.7x faster
    # than with every kernel taking every core. `python -m course_lib doctor` says "set by OMP_NUM_THREADS".
    "OMP_NUM_THREADS": "1",
    "COURSE_FOLDER": COURSE_FOLDER,
}

# --- an API token for scripts (the test): users, servers, and access to the servers ------------------------
if os.environ.get("COURSE_HUB_TOKEN"):
    c.JupyterHub.services = [{"name": "course-admin", "api_token": os.environ["COURSE_HUB_TOKEN"]}]
    c.JupyterHub.load_roles = [{
        "name": "course-admin-role",
        "scopes": ["admin:users", "admin:servers", "admin:server_state", "access:servers"],
        "services": ["course-admin"],
    }]
