"""The course on JupyterHub with five real students at once, on 127.0.0.1 only.

One test, every step bounded: start JupyterHub with classroom/local/jupyterhub_config.py (shared-password
login, the simple local spawner, homes in a temp folder); through the hub's REST API create 5 students
and start their servers at once; pull the course into each home with nbgitpuller's API; run lesson 05's
code cells in one student's kernel alone, then in all five kernels at once over the kernel websocket;
assert that every student got the same outputs as the student alone, that each kernel imported the
course_lib of its own student's copy, and that each student's files are in their home only. The hub and
every server are stopped at the end, whatever happens. Prints the timings and memory it measured.

Skipped without the instructor packages (requirements-instructor.txt) or git.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

for _module in ("jupyterhub", "nbgitpuller", "configurable_http_proxy"):
    pytest.importorskip(_module, reason="instructor packages not installed: pip install -r requirements-instructor.txt")
psutil = pytest.importorskip("psutil", reason="psutil (installed with JupyterLab) measures the students' memory")
if shutil.which("git") is None:
    pytest.skip("git is needed: nbgitpuller clones the course with it", allow_module_level=True)

from tornado.httpclient import HTTPRequest  # noqa: E402
from tornado.websocket import websocket_connect  # noqa: E402

pytestmark = pytest.mark.integration  # left out of the fast loop (README, "Contributing")

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STUDENTS = [f"student{n}" for n in range(1, 6)]
LESSON = "notebooks/05_multi_head_attention.ipynb"
FOLDER = "transformers-course"
CELL_LIMIT = 120  # seconds for one cell in one kernel, five kernels sharing the cores
PROBE = ("import course_lib, os, torch\n"
         "print(course_lib.__file__)\n"
         "print(torch.get_num_threads(), os.environ.get('OMP_NUM_THREADS'))\n"
         "open(os.path.expanduser('~/my_answer.txt'), 'w').write(os.environ['JUPYTERHUB_USER'])")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def course_repository(where: Path) -> Path:
    """A git repository of this working tree's course (course_lib, the lesson, requirements): what the
    students pull. Built from the working tree, so the test runs the code under test."""
    repo = where / FOLDER
    shutil.copytree(ROOT / "course_lib", repo / "course_lib", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "notebooks").mkdir()
    shutil.copy(ROOT / LESSON, repo / LESSON)
    shutil.copy(ROOT / "requirements.txt", repo / "requirements.txt")
    git = ["git", "-C", str(repo), "-c", "user.name=Instructor", "-c", "user.email=instructor@example.org"]
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "the course"]):
        subprocess.run(git + command, check=True, capture_output=True, timeout=60)
    return repo


class Hub:
    """A running hub and a client for its REST API (service token), every call bounded."""

    def __init__(self, state: Path):
        self.state, self.port, self.token = state, free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, COURSE_HUB_DIR=str(state), COURSE_HUB_PASSWORD=secrets.token_hex(8),
                   COURSE_HUB_PORT=str(self.port), COURSE_HUB_API_PORT=str(free_port()),
                   COURSE_PROXY_API_PORT=str(free_port()), COURSE_HUB_TOKEN=self.token, COURSE_FOLDER=FOLDER,
                   PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        env.pop("COURSE_LIB_THREADS", None)
        env.pop("OMP_NUM_THREADS", None)
        self.log = open(state / "hub.log", "w")
        self.process = subprocess.Popen([str(BIN / "jupyterhub"), "-f", str(ROOT / "classroom/local/jupyterhub_config.py")],
                                        cwd=state, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.server_pids: set[int] = set()

    def api(self, method: str, path: str, body=None, timeout: float = 30):
        request = urllib.request.Request(f"{self.url}/hub/api{path}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode()
        return json.loads(text) if text else None

    def wait_ready(self, limit: float = 90) -> float:
        start = time.monotonic()
        while time.monotonic() - start < limit:
            if self.process.poll() is not None:
                raise AssertionError(f"the hub exited ({self.process.returncode}): {self.tail()}")
            try:
                self.api("GET", "/", timeout=5)
                return time.monotonic() - start
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.25)
        raise AssertionError(f"the hub was not ready in {limit} s: {self.tail()}")

    def start_server(self, user: str, limit: float = 150) -> float:
        start = time.monotonic()
        try:
            self.api("POST", f"/users/{user}/server")
        except urllib.error.HTTPError as error:
            if error.code != 202:
                raise
        while time.monotonic() - start < limit:
            server = self.api("GET", f"/users/{user}").get("servers", {}).get("")
            if server and server.get("state", {}).get("pid"):
                self.server_pids.add(server["state"]["pid"])
            if server and server.get("ready"):
                return time.monotonic() - start
            time.sleep(0.5)
        raise AssertionError(f"{user}'s server did not start in {limit} s: {self.tail()}")

    def user_get(self, user: str, path: str, timeout: float = 120) -> bytes:
        request = urllib.request.Request(f"{self.url}/user/{user}/{path}",
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()

    def pull(self, user: str, repo: Path) -> list[dict]:
        """nbgitpuller's API: the plain /git-pull link only returns a page whose JavaScript pulls."""
        query = urllib.parse.urlencode({"repo": str(repo), "branch": "main", "targetpath": FOLDER})
        events = []
        for line in self.user_get(user, f"git-pull/api?{query}").decode().splitlines():
            if line.startswith("data:"):
                events.append(json.loads(line[len("data:"):]))
        return events

    def tail(self, lines: int = 30) -> str:
        self.log.flush()
        return "\n".join((self.state / "hub.log").read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to the hub (it stops the proxy and the servers), then kill whatever is left."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        for pid in self.server_pids:
            try:
                for child in psutil.Process(pid).children(recursive=True):
                    child.kill()
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # the proxy and anything else the hub started
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)
        self.log.close()


async def run_cells(hub: Hub, user: str, cells: list[str], shut_down: bool = False) -> list[str]:
    """Start a kernel in ``user``'s server (in their copy's notebooks folder), run ``cells`` one by one over
    the kernel websocket as JupyterLab does, and return each cell's text output; an error fails.
    ``shut_down``: stop the kernel afterwards (else it stays, and its memory is counted)."""
    headers = {"Authorization": f"token {hub.token}", "Content-Type": "application/json"}
    loop = asyncio.get_running_loop()

    def post_kernel():
        request = urllib.request.Request(f"{hub.url}/user/{user}/api/kernels", method="POST", headers=headers,
                                         data=json.dumps({"path": f"{FOLDER}/notebooks"}).encode())
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())["id"]

    kernel = await loop.run_in_executor(None, post_kernel)
    ws_url = f"ws://127.0.0.1:{hub.port}/user/{user}/api/kernels/{kernel}/channels"
    # tornado gives up on a handshake after 20 s by default; five kernels starting at once beside the rest of the
    # suite on two cores can take longer than that, so the handshake gets the same two minutes as the kernel start
    request = HTTPRequest(ws_url, headers=headers, connect_timeout=120, request_timeout=120)
    connection = await asyncio.wait_for(websocket_connect(request), 150)
    outputs = []
    try:
        for number, code in enumerate(cells):
            msg_id = uuid.uuid4().hex
            await connection.write_message(json.dumps({
                "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": user, "session": kernel,
                           "version": "5.3", "date": ""},
                "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                            "allow_stdin": False, "stop_on_error": True}}))
            text, deadline = [], time.monotonic() + CELL_LIMIT
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{user}: cell {number} ran past {CELL_LIMIT} s")
                raw = await asyncio.wait_for(connection.read_message(), remaining)
                if raw is None:
                    raise AssertionError(f"{user}: the kernel's websocket closed during cell {number}")
                message = json.loads(raw)
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = message["msg_type"], message["content"]
                if kind == "stream":
                    text.append(content["text"])
                elif kind in ("execute_result", "display_data"):
                    text.append(content["data"].get("text/plain", ""))
                elif kind == "error":
                    raise AssertionError(f"{user}: cell {number} raised {content['ename']}: {content['evalue']}")
                elif kind == "status" and content["execution_state"] == "idle":
                    break
            outputs.append("".join(text))
    finally:
        connection.close()
        if shut_down:
            def delete_kernel():
                request = urllib.request.Request(f"{hub.url}/user/{user}/api/kernels/{kernel}", method="DELETE",
                                                 headers=headers)
                urllib.request.urlopen(request, timeout=60).close()
            await loop.run_in_executor(None, delete_kernel)
    return outputs


def lesson_cells() -> tuple[list[str], list[bool]]:
    """Lesson 05's code cells, and whether each one's output is stable (not marked NBVAL_IGNORE_OUTPUT)."""
    notebook = json.loads((ROOT / LESSON).read_text(encoding="utf-8"))
    cells = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]
    return cells, [not cell.lstrip().startswith("# NBVAL_IGNORE_OUTPUT") for cell in cells]


def memory_mb(pid: int) -> float:
    """Resident memory of a student's server and its kernels, in MB."""
    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 1e6


def test_five_students_at_once_each_with_their_own_course(tmp_path, capsys):
    repo = course_repository(tmp_path / "upstream")
    state = tmp_path / "hub"
    state.mkdir()
    hub = Hub(state)
    try:
        hub_start = hub.wait_ready()
        hub.api("POST", "/users", {"usernames": STUDENTS})
        with ThreadPoolExecutor(len(STUDENTS)) as pool:
            server_starts = dict(zip(STUDENTS, pool.map(hub.start_server, STUDENTS)))
            pulls = dict(zip(STUDENTS, pool.map(lambda user: hub.pull(user, repo), STUDENTS)))
        for user, events in pulls.items():
            assert events and events[-1].get("phase") == "finished", (user, events[-3:])
            assert (state / "homes" / user / FOLDER / LESSON).exists()

        cells, stable = lesson_cells()
        alone_start = time.monotonic()
        alone = asyncio.run(run_cells(hub, STUDENTS[0], [PROBE, *cells], shut_down=True))
        alone_seconds = time.monotonic() - alone_start

        async def everyone():
            return await asyncio.gather(*(run_cells(hub, user, [PROBE, *cells]) for user in STUDENTS))

        together_start = time.monotonic()
        together = dict(zip(STUDENTS, asyncio.run(everyone())))
        together_seconds = time.monotonic() - together_start
        memory = {user: memory_mb(pid) for user, pid in
                  ((user, hub.api("GET", f"/users/{user}")["servers"][""]["state"]["pid"]) for user in STUDENTS)}

        for user, outputs in together.items():
            home = state / "homes" / user
            library, threads = outputs[0].splitlines()[:2]
            # their own copy's course_lib, not the instructor's editable install
            assert Path(library).resolve() == (home / FOLDER / "course_lib" / "__init__.py").resolve(), (user, library)
            assert threads == "1 1", (user, threads)
            for number, (mine, reference, compare) in enumerate(zip(outputs[1:], alone[1:], stable)):
                if compare:
                    assert mine == reference, (user, number, mine[:300], reference[:300])
            # their file is in their home alone, with their name in it
            assert (home / "my_answer.txt").read_text() == user
        homes = sorted(path.parent.name for path in (state / "homes").glob("*/my_answer.txt"))
        assert homes == STUDENTS

        with capsys.disabled():
            print(f"\nhub: ready in {hub_start:.1f} s; servers (5 at once): "
                  + ", ".join(f"{seconds:.1f}" for seconds in server_starts.values()) + " s; "
                  f"lesson 05 ({len(cells)} cells): {alone_seconds:.1f} s alone, {together_seconds:.1f} s five at once; "
                  f"memory per student (server + kernel): "
                  + ", ".join(f"{mb:.0f}" for mb in memory.values()) + f" MB, {sum(memory.values()) / 1000:.2f} GB in all")
    finally:
        hub.stop()
    for pid in hub.server_pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
