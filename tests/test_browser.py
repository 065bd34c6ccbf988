"""The widgets in a real browser: JupyterLab on 127.0.0.1, headless Chromium through Playwright.

Proves what the Python-side tests cannot: the explorer renders offline (no "Error displaying widget"),
a click on its own head button reaches the kernel and redraws the view, and token text stays text; and
after Run All, the playground keeps the state Python set, whatever its sliders echo back.
Screenshots land in test-artifacts/ at the repository root (git-ignored).
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.integration  # left out of the fast loop (README, "Contributing")

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKENS = ["<bos>", "the", "<script>alert(1)</script>", "dogs", "run", "<b>x</b>"]

BUILD_CELL = f"""\
import numpy as np
from course_lib.widgets import AttentionExplorer

rng = np.random.default_rng(0)
weights = rng.random((2, 4, 6, 6)) ** 3  # (layers, heads, query, key)
tokens = {TOKENS!r}
explorer = AttentionExplorer(weights / weights.sum(-1, keepdims=True), tokens)
explorer"""


# The notebook's kernel is connected and idle (the indicator alone can say idle before a kernel exists).
KERNEL_IDLE = """() => {
    const kernel = window.jupyterapp?.shell?.currentWidget?.sessionContext?.session?.kernel;
    return !!kernel && kernel.status === 'idle' && kernel.connectionStatus === 'connected';
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_notebook(folder: Path, cells=(BUILD_CELL, "print(explorer)"), name: str = "explorer.ipynb") -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    path = folder / name
    nbformat.write(notebook, path)
    return path


def quiet_settings(config: Path) -> None:
    """Turn off JupyterLab's news and update checks: offline they fail, and their toast covers the page."""
    folder = config / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    folder.mkdir(parents=True)
    (folder / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))


def wait_for_server(url: str, process: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"JupyterLab did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen, url: str) -> None:
    """Stop the server we started: ask it to shut down with its kernels, then signal it if it lingers."""
    try:
        request = urllib.request.Request(f"{url}/api/shutdown", method="POST")
        urllib.request.urlopen(request, timeout=5).close()
        process.wait(timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        pass
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def run_command(page, command: str) -> None:
    """Start a JupyterLab command without awaiting it: its promise may outlive the run; we wait on the page."""
    page.evaluate(f"() => {{ window.jupyterapp.commands.execute({command!r}); }}")


def screenshot(page, locator, name: str) -> bytes:
    # An element screenshot can hang; a page screenshot clipped to the element does not.
    box = locator.bounding_box(timeout=10_000)
    assert box is not None, "the explorer has no box on the page"
    image = page.screenshot(clip=box, timeout=15_000)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / name).write_bytes(image)
    return image


def require_browser():
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium); "
                    f"the real-browser test needs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    pytest.importorskip("jupyterlab", reason="JupyterLab is not installed")
    return sync_api


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One JupyterLab serving a fresh folder and one headless Chromium, shared by this file's tests (each
    test opens its own notebook in its own page and workspace); both stopped at the end."""
    sync_api = require_browser()
    root = tmp_path_factory.mktemp("lab")
    config, runtime = root / ".config", root / ".runtime"
    quiet_settings(config)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(config), JUPYTER_RUNTIME_DIR=str(runtime),
               JUPYTER_DATA_DIR=str(root / ".data"), IPYTHONDIR=str(root / ".ipython"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = root / "jupyterlab.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
               f"--port={port}", "--IdentityProvider.token=", "--ServerApp.disable_check_xsrf=True",
               "--LabApp.expose_app_in_browser=True", f"--ServerApp.root_dir={root}"]
    with open(log, "w") as log_file:
        server = subprocess.Popen(command, cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        wait_for_server(url, server, log)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                                 headless=True, timeout=30_000)
            try:
                yield root, url, browser
            finally:
                browser.close()
    finally:
        stop(server, url)


@contextlib.contextmanager
def notebook_page(lab, notebook: Path, failure_picture: str, dialogs: list):
    """A page of the shared JupyterLab showing ``notebook`` (in ``lab``'s folder) with an idle kernel, in a
    workspace of its own; closed afterwards with its kernel. On an error, a screenshot goes to test-artifacts/."""
    _, url, browser = lab
    page = browser.new_page(viewport={"width": 1300, "height": 1100})
    try:
        page.set_default_timeout(20_000)
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(f"{url}/lab/workspaces/{notebook.stem}/tree/{notebook.name}", wait_until="domcontentloaded",
                  timeout=30_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=40_000)
        page.wait_for_function(KERNEL_IDLE, timeout=40_000)
        yield page
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / failure_picture, timeout=10_000)
        raise
    finally:
        page.close()
        with contextlib.suppress(OSError):  # the kernel is this test's: stop it, so the next test has the cores
            request = urllib.request.Request(f"{url}/api/sessions", method="GET")
            with urllib.request.urlopen(request, timeout=5) as response:
                sessions = json.loads(response.read())
            for session in sessions:
                if session.get("path", "").endswith(notebook.name):
                    urllib.request.urlopen(urllib.request.Request(
                        f"{url}/api/sessions/{session['id']}", method="DELETE"), timeout=10).close()


def test_explorer_renders_and_reacts_in_jupyterlab(lab):
    notebook = write_notebook(lab[0])
    dialogs = []
    with notebook_page(lab, notebook, "attention_explorer_failure.png", dialogs) as page:
        run_command(page, "notebook:run-all-cells")

        explorer = page.locator(".course-attention-explorer").first
        # The kernel imports torch first: slow on a busy laptop.
        explorer.wait_for(state="visible", timeout=60_000)
        cells = page.locator(".jp-Notebook .jp-CodeCell")
        state = cells.nth(1).locator(".jp-OutputArea-output").first
        state.wait_for(timeout=20_000)
        assert "head=0" in state.inner_text()
        assert page.get_by_text("Error displaying widget").count() == 0
        # The heatmap: one head, 6 x 6 numbers, labels as typed.
        explorer.locator("table.course-attention-heatmap").wait_for(timeout=10_000)
        assert explorer.locator("table.course-attention-heatmap td").count() == 36
        assert "“<b>x</b>”" in explorer.inner_text()  # the selected query's token, as text
        assert explorer.get_by_text("<script>alert(1)</script>").count() >= 1
        assert explorer.locator("script").count() == 0
        before = screenshot(page, explorer, "attention_explorer_head0.png")

        explorer.locator("button.widget-toggle-button", has_text="head 2").click()
        page.wait_for_function(
            "() => document.querySelector('.course-attention-explorer').innerText.includes('head 2 · query')",
            timeout=15_000)
        after = screenshot(page, explorer, "attention_explorer_head2.png")
        assert after != before, "the picture did not change after clicking 'head 2'"

        # The click reached the kernel: print the explorer's state again.
        cells.nth(1).locator(".jp-InputArea-editor").click()
        run_command(page, "notebook:run-cell")
        page.wait_for_function(
            "() => document.querySelectorAll('.jp-Notebook .jp-CodeCell')[1].innerText.includes('head=2')",
            timeout=20_000)
        assert state.inner_text().strip() == (
            "AttentionExplorer(layers=2, heads=4, tokens=6, layer=0, head=2, query=5, view='heatmap')")
        assert dialogs == [], f"a token ran as code: {dialogs}"


PLAYGROUND_CELLS = (
    "from course_lib.widgets import AttentionPlayground\nplayground = AttentionPlayground()\nplayground",
    'playground.scale = 3.0\nplayground.query_word = "cat"\nprint(playground)',
    # The kernel stays busy while the browser draws the sliders: their echoes queue up behind this cell.
    "import time\ntime.sleep(3)",
    "print(playground)",
)
CAT = ("AttentionPlayground(words=6, query_word='cat', query=[0.50, 2.00], scale=3.00, "
       "weights=[0.00, 0.00, 1.00, 0.00, 0.00, 0.00])")


def test_playground_keeps_python_state_after_run_all(lab):
    """Run All, then read the kernel's state: the browser's slider echoes must not undo what Python set
    (they did, in 5 of 5 runs: query=[2.00, 2.00], the word dropped)."""
    notebook = write_notebook(lab[0], PLAYGROUND_CELLS, "playground.ipynb")
    dialogs = []
    with notebook_page(lab, notebook, "attention_playground_failure.png", dialogs) as page:
        run_command(page, "notebook:run-all-cells")
        playground = page.locator(".course-attention-playground").first
        playground.wait_for(state="visible", timeout=60_000)
        cells = page.locator(".jp-Notebook .jp-CodeCell")
        last = cells.nth(3).locator(".jp-OutputArea-output").first
        last.wait_for(timeout=40_000)
        page.wait_for_function(KERNEL_IDLE, timeout=20_000)
        assert page.get_by_text("Error displaying widget").count() == 0
        time.sleep(2)  # let every echo the browser sent reach the kernel
        # Read the kernel's state now, after every message of the run has been handled.
        cells.nth(3).locator(".jp-InputArea-editor").click()
        run_command(page, "notebook:run-cell")
        page.wait_for_function(
            "() => { const c = document.querySelectorAll('.jp-Notebook .jp-CodeCell')[3];"
            " return c.querySelector('.jp-InputArea-prompt').innerText.includes('[5]'); }", timeout=20_000)
        assert cells.nth(1).locator(".jp-OutputArea-output").first.inner_text().strip() == CAT
        assert last.inner_text().strip() == CAT
        # The page shows the same state: the caption names the word and its query.
        page.wait_for_function(
            "() => document.querySelector('.course-attention-playground').innerText.includes('“cat” (position 1)')",
            timeout=10_000)
        assert "[0.50, 2.00]" in playground.inner_text()
