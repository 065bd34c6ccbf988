"""The widgets in a real browser: JupyterLab on 127.0.0.1, headless Chromium through Playwright.

Proves what the Python-side tests cannot: the explorer renders offline (no "Error displaying widget"),
a click on its own head button reaches the kernel and redraws the view, and token text stays text; by
keyboard alone, Tab reaches its controls, arrow keys change the focused control and never move the
notebook, the focus ring shows, every control has a name, and the compare view fits the column; and
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


# The reviewer's case: a markdown cell right after the widget, where an arrow key used to move the notebook.
MARKDOWN = "## Below the explorer\n\nArrow keys on the explorer's controls must never land here."
# A 20-token sentence in the compare view, as in the explorer notebook: it must fit a 960 px column.
WIDE_CELL = """\
wide_weights = rng.random((2, 4, 20, 20)) ** 3
sentence = "<bos> near the cats , the old cat that the quiet painters watch that the old cats help sleeps ."
wide = AttentionExplorer(wide_weights / wide_weights.sum(-1, keepdims=True), sentence.split(),
                         view="compare", query=17)
wide"""


def write_notebook(folder: Path, cells=(BUILD_CELL, MARKDOWN, "print(explorer)", WIDE_CELL),
                   name: str = "explorer.ipynb") -> Path:
    """Cells are code, except those that start with "## " (markdown)."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_markdown_cell(source) if source.startswith("## ")
                      else nbformat.v4.new_code_cell(source) for source in cells]
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


# What has the focus: enough to find a control, check its name, its focus ring and its pressed state.
FOCUSED = """() => {
    const e = document.activeElement;
    if (!e) return null;
    const style = getComputedStyle(e);
    let back = e.parentElement, background = 'rgb(255, 255, 255)';
    for (; back; back = back.parentElement) {
        const b = getComputedStyle(back).backgroundColor;
        if (b && b !== 'transparent' && !b.endsWith(', 0)')) { background = b; break; }
    }
    return {tag: e.tagName, text: (e.innerText || '').trim(), pressed: e.getAttribute('aria-pressed'),
            inExplorer: !!e.closest('.course-attention-explorer'), outlineWidth: parseFloat(style.outlineWidth),
            outlineStyle: style.outlineStyle, outline: style.outlineColor, background: background};
}"""
ACTIVE_CELL = "() => window.jupyterapp.shell.currentWidget.content.activeCellIndex"
# Every control in a widget and its accessible name: aria-label, a <label for=...>, or its own text.
NAMES = """(selector) => Array.from(document.querySelector(selector).querySelectorAll(
        'button, select, input, [role=slider], [contenteditable=true], [tabindex]:not([tabindex="-1"])'))
    .filter(e => e.offsetParent !== null)
    .map(e => [e.tagName + '.' + e.className, (e.getAttribute('aria-label')
        || (e.id && document.querySelector('label[for="' + e.id + '"]')?.textContent) || e.innerText || '').trim()])"""


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two CSS colours 'rgb(r, g, b)'."""
    def luminance(colour):
        channels = [int(float(c)) / 255 for c in colour[colour.index("(") + 1:colour.index(")")].split(",")[:3]]
        r, g, bl = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * r + 0.7152 * g + 0.0722 * bl
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def press_until(page, key: str, wanted, what: str, limit: int = 20) -> dict:
    """Press ``key`` (Tab, Shift+Tab) until the focused element satisfies ``wanted``; return it."""
    seen = []
    for _ in range(limit):
        page.keyboard.press(key)
        focused = page.evaluate(FOCUSED)
        if focused and wanted(focused):
            return focused
        seen.append(focused and (focused["tag"], focused["text"][:20]))
    raise AssertionError(f"{key} x{limit} never reached {what}; focus went through {seen}")


def wait_text(page, text: str, selector: str = ".course-attention-explorer") -> None:
    page.wait_for_function("([s, t]) => document.querySelector(s).innerText.includes(t)", arg=[selector, text],
                           timeout=15_000)


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
    page = browser.new_page(viewport={"width": 1400, "height": 900})  # the reviewer's window
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
        page.locator(".course-attention-explorer").nth(1).wait_for(state="visible", timeout=20_000)
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

        # ---- by keyboard alone: Tab to the controls, arrows change them, the notebook stays put
        explorer.locator(".widget-toggle-buttons .widget-label", has_text="view").click()  # focus starts here
        active_cell = page.evaluate(ACTIVE_CELL)
        assert active_cell == 0
        focused = press_until(page, "Tab", lambda f: f["inExplorer"] and f["text"] == "head 2", "the head buttons")
        assert focused["pressed"] == "true"
        # The focus ring: at least 2 px, at least 3:1 against the background; the pressed state is not colour alone.
        assert focused["outlineStyle"] != "none" and focused["outlineWidth"] >= 2, focused
        assert contrast(focused["outline"], focused["background"]) >= 3, focused
        check = page.evaluate("() => getComputedStyle(document.activeElement, '::before').content")
        assert "✓" in check, check
        page.keyboard.press("ArrowRight")  # the next head, as in a radio group
        wait_text(page, "head 3 · query 5")
        focused = page.evaluate(FOCUSED)
        assert focused["text"] == "head 3" and focused["pressed"] == "true", focused
        assert explorer.locator("button[aria-pressed=true]", has_text="head 2").count() == 0
        assert page.evaluate(ACTIVE_CELL) == active_cell, "ArrowRight on a head button moved the notebook"
        focused = press_until(page, "Tab", lambda f: f["inExplorer"] and f["tag"] == "SELECT", "the query dropdown")
        page.keyboard.press("ArrowUp")  # the query before
        wait_text(page, "head 3 · query 4")
        assert page.evaluate(FOCUSED)["tag"] == "SELECT"
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowUp")
        assert page.evaluate(ACTIVE_CELL) == active_cell, "arrows on the query dropdown moved the notebook"
        press_until(page, "Shift+Tab", lambda f: f["inExplorer"] and f["text"] == "heatmap", "the view buttons")
        page.keyboard.press("End")
        wait_text(page, "looks most at")  # the compare view, its numbers written out
        assert explorer.locator("table.course-attention-heatmap").count() == 2
        assert page.evaluate(FOCUSED)["text"] == "compare heads"
        assert page.evaluate(ACTIVE_CELL) == active_cell
        changed = screenshot(page, explorer, "attention_explorer_keyboard.png")
        assert changed != after

        # Every control has a name; the groups are named groups of pressed / not pressed buttons.
        names = page.evaluate(NAMES, ".course-attention-explorer")
        assert len(names) >= 4 + 2 + 5 + 1 + 2 and all(name for _, name in names), names
        groups = explorer.locator("[role=group]")
        assert sorted(groups.evaluate_all("gs => gs.map(g => g.getAttribute('aria-label'))")) == [
            "head", "layer", "view"]
        assert explorer.locator("button[aria-pressed]").count() == 4 + 2 + 5

        # The keys reached the kernel.
        cells.nth(1).locator(".jp-InputArea-editor").click()
        run_command(page, "notebook:run-cell")
        page.wait_for_function(
            "() => document.querySelectorAll('.jp-Notebook .jp-CodeCell')[1].innerText.includes('head=3')",
            timeout=20_000)
        assert state.inner_text().strip() == (
            "AttentionExplorer(layers=2, heads=4, tokens=6, layer=0, head=3, query=4, view='compare')")

        # A 20-token sentence compared in the reviewer's window: both heads fit the column, none clipped.
        fit = page.evaluate("""() => {
            const wide = document.querySelectorAll('.course-attention-explorer')[1];
            const box = wide.getBoundingClientRect();
            const heads = Array.from(wide.querySelectorAll('.course-compare > div'));
            return {box: box.width, right: box.right, heads: heads.map(h => h.getBoundingClientRect().right),
                    tops: heads.map(h => Math.round(h.getBoundingClientRect().top)),
                    clipped: heads.some(h => h.scrollWidth > h.clientWidth + 1)};
        }""")
        assert fit["box"] <= 980 and max(fit["heads"]) <= fit["right"] + 1 and not fit["clipped"], fit
        assert fit["tops"][0] == fit["tops"][1], f"the two heads did not stay side by side: {fit}"
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
        # Accessible names: the sliders' handles say what they set.
        page.wait_for_function("() => document.querySelectorAll("
                               "'.course-attention-playground .noUi-handle[aria-label]').length === 3",
                               timeout=10_000)
        handles = playground.locator(".noUi-handle").evaluate_all("hs => hs.map(h => h.getAttribute('aria-label'))")
        assert handles == ["query[0]", "query[1]", "scale"]
        names = page.evaluate(NAMES, ".course-attention-playground")
        assert all(name for _, name in names), names
