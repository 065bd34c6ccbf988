"""The course on The Littlest JupyterHub (TLJH): one machine, each student a Unix user (jupyter-<name>).

Copy this file to /opt/tljh/config/jupyterhub_config.d/course.py, then `sudo tljh-config reload hub`.
TLJH reads every .py file of that folder after its own configuration. See classroom/README.md for the
whole set-up (installing the course's packages into /opt/tljh/user, limits, links).

What it sets, for every student's server and so for every kernel:

- PYTHONPATH=/home/jupyter-<name>/<COURSE_FOLDER>: `import course_lib` finds the student's own copy,
  pulled by nbgitpuller, not a copy installed in the shared environment (measured: with an editable
  install of the instructor's clone in the shared environment, every kernel imported the instructor's).
  Install the course's requirements into /opt/tljh/user *without* its last line `-e .`.
- OMP_NUM_THREADS=1: one thread per kernel, the course's default (measured on 2 cores: five students at
  once ran lesson 05 1.7x faster than with every kernel taking every core). `python -m course_lib doctor`
  reports it as "set by OMP_NUM_THREADS".
"""

import os

# The folder nbgitpuller clones into: the course repository's name (the links of `python -m course_lib links`
# open notebooks inside it). Change it if your fork has another name.
COURSE_FOLDER = os.environ.get("COURSE_FOLDER", "transformers-course")


def course_pythonpath(spawner):
    """The student's own copy of the course: TLJH's home of user <name> is /home/jupyter-<name>."""
    return f"/home/jupyter-{spawner.user.name}/{COURSE_FOLDER}"


c = get_config()  # noqa: F821 - JupyterHub provides it
c.Spawner.environment.update({
    "PYTHONPATH": course_pythonpath,
    "OMP_NUM_THREADS": "1",
    "COURSE_FOLDER": COURSE_FOLDER,
})
c.Spawner.default_url = "/lab"
# A class starting at once: servers queue for the cores; do not give up on a slow start.
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
