"""`python -m course_lib links`: one nbgitpuller link per lesson, every query value percent-encoded."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from course_lib.tools import links
from course_lib.tools.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_a_link_opens_the_lesson_in_the_students_copy():
    link = links.pull_link("https://hub.example.org/", "https://github.com/someone/transformers-course.git", "main",
                           "notebooks/03_attention_by_hand.ipynb")
    assert link == ("https://hub.example.org/hub/user-redirect/git-pull?"
                    "repo=https%3A%2F%2Fgithub.com%2Fsomeone%2Ftransformers-course.git&branch=main&"
                    "urlpath=lab%2Ftree%2Ftransformers-course%2Fnotebooks%2F03_attention_by_hand.ipynb")


def test_values_with_their_own_query_and_spaces_cannot_leak():
    repo = "https://git.example.org/a b/course?ref=x&y=z"
    link = links.pull_link("http://127.0.0.1:8000", repo, "fix/week 2", "notebooks/00_start_here.ipynb")
    query = parse_qs(urlsplit(link).query, strict_parsing=True)
    assert query == {"repo": [repo], "branch": ["fix/week 2"],
                     "urlpath": ["lab/tree/course/notebooks/00_start_here.ipynb"]}
    assert " " not in link and link.count("?") == 1


@pytest.mark.parametrize("repo, folder", [("https://github.com/o/course", "course"), ("git@github.com:o/c.git", "c"),
                                          ("/srv/git/course.git/", "course"), ("file:///srv/course", "course")])
def test_the_folder_is_the_repositorys_name(repo, folder):
    assert links.folder_name(repo) == folder


def test_the_command_prints_every_lesson(capsys):
    assert main(["links", "--hub", "https://hub.example.org", "--repo", "https://github.com/o/course",
                 "--branch", "week2"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    lessons = sorted(path.stem for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert [name for name, _ in rows] == lessons and len(lessons) >= 10
    for name, link in rows:
        query = parse_qs(urlsplit(link).query)
        assert query["branch"] == ["week2"] and query["urlpath"] == [f"lab/tree/course/notebooks/{name}.ipynb"]


def test_a_bad_hub_is_refused(capsys):
    assert main(["links", "--hub", "hub.example.org", "--repo", "https://github.com/o/course"]) == 2
    assert "--hub must be the hub's address" in capsys.readouterr().err
    assert main(["links", "--repo", "https://github.com/o/course"]) == 2  # --hub is required: usage


def test_without_repo_it_uses_origin_or_says_what_to_pass(monkeypatch, capsys):
    monkeypatch.setattr(links, "origin_url", lambda root: None)
    assert main(["links", "--hub", "https://h.example.org"]) == 1
    assert "pass --repo URL" in capsys.readouterr().err
    monkeypatch.setattr(links, "origin_url", lambda root: "https://github.com/o/fork.git")
    assert main(["links", "--hub", "https://h.example.org"]) == 0
    assert "repo=https%3A%2F%2Fgithub.com%2Fo%2Ffork.git" in capsys.readouterr().out


def test_origin_url_reads_the_clones_remote(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=60)
    assert links.origin_url(tmp_path) is None
    subprocess.run(["git", "-C", str(tmp_path), "remote", "add", "origin", "https://example.org/c.git"], check=True,
                   timeout=60)
    assert links.origin_url(tmp_path) == "https://example.org/c.git"
