"""``python -m course_lib links --hub URL``: one nbgitpuller link per lesson, for a class on JupyterHub.

A student who clicks a link logs in to the hub; nbgitpuller clones the course into their home (or
updates their copy, keeping their edits) and JupyterLab opens the lesson:

    https://hub.example.org/hub/user-redirect/git-pull?repo=https%3A%2F%2Fgithub.com%2Fo%2Fcourse
        &branch=main&urlpath=lab%2Ftree%2Fcourse%2Fnotebooks%2F03_attention_by_hand.ipynb

The clone's folder is the repository's name (nbgitpuller's default), so ``urlpath`` starts with it.
Every query value is percent-encoded, ``/`` and ``:`` included: a repository URL with its own query
(``?ref=x&y=z``) cannot leak into the link's.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit

NOTEBOOK = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")


def folder_name(repo: str) -> str:
    """The folder nbgitpuller clones ``repo`` into: its last path part without ``.git``."""
    path = urlsplit(repo).path if "://" in repo else repo
    name = path.rstrip("/").rsplit("/", 1)[-1]
    name = name[:-len(".git")] if name.endswith(".git") else name
    if not name:
        raise ValueError(f"cannot tell the folder name of repository {repo!r}")
    return name


def pull_link(hub: str, repo: str, branch: str, path_in_repo: str, app: str = "lab") -> str:
    """The nbgitpuller link that clones (or updates) ``repo`` at ``branch`` and opens ``path_in_repo``."""
    if not re.match(r"^https?://[^/]+", hub):
        raise ValueError(f"--hub must be the hub's address, like https://hub.example.org, got {hub!r}")
    if not branch:
        raise ValueError("--branch must not be empty")
    urlpath = f"{app}/tree/{folder_name(repo)}/{path_in_repo}"
    query = "&".join(f"{key}={quote(value, safe='')}" for key, value in
                     (("repo", repo), ("branch", branch), ("urlpath", urlpath)))
    return f"{hub.rstrip('/')}/hub/user-redirect/git-pull?{query}"


def lessons(root: Path) -> list[str]:
    """The lesson notebooks, ``notebooks/NN_<topic>.ipynb``, in order."""
    return sorted(path.name for path in (root / "notebooks").glob("*.ipynb") if NOTEBOOK.match(path.name))


def origin_url(root: Path) -> str | None:
    """The clone's ``origin`` remote, or None (no git, no remote)."""
    try:
        out = subprocess.run(["git", "-C", str(root), "remote", "get-url", "origin"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def run(args) -> int:
    root = Path(__file__).resolve().parents[2]
    repo = args.repo or origin_url(root)
    if not repo:
        print("error: no --repo given and this clone has no 'origin' remote; pass --repo URL, the address "
              "students' servers clone from", file=sys.stderr)
        return 1
    names = lessons(root)
    try:
        rows = [(name, pull_link(args.hub, repo, args.branch, f"notebooks/{name}")) for name in names]
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name, link in rows:
        print(f"{name[:-len('.ipynb')]}\t{link}")
    return 0
