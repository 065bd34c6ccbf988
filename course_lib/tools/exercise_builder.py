"""One source per lesson: exercises/NN_<topic>.ipynb is built from solutions/NN_<topic>.ipynb.

    python -m course_lib exercises build            write every exercise notebook (executed)
    python -m course_lib exercises build --check    write nothing; exit 1 naming each notebook and cell
                                                    that differs from what build would write

In a solution notebook, the code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's
markers) becomes one line, ``raise NotImplementedError("Your code here: <hint>")``, indented like the markers;
the hint is the text of a ``# HINT: ...`` comment inside the region. It says what to write (what the code
returns, its shape), never how: the learner sees it first, before any hint cell. Cells tagged
``solution-only`` are left out.
The exercise notebook is then executed top to bottom in exercises/, so its stored outputs are what a
learner sees on a fresh run (checks saying "not implemented yet").

Only what changed is rebuilt, and a learner's work is never lost. Each built notebook stores two
fingerprints in its metadata: ``fingerprint`` (cell types, sources and sanitized outputs, as built) and
``source_fingerprint`` (cell types and sources only: what the solution gives the learner). On build:

- an exercise nobody edited (its content still matches ``fingerprint``) is simply rewritten if what build
  would write differs, else left alone ("up to date");
- an exercise a learner edited is left alone, edits in place, while its ``source_fingerprint`` equals that
  of what build would write now: its solution has not changed since the last build. (A notebook built
  before ``source_fingerprint`` existed is compared by its ``fingerprint`` with the freshly executed build.)
  When the solution did change, build copies the learner's notebook to exercises/backups/, then replaces it;
- a notebook that cannot be read as one (half a file after a merge conflict) is copied as it is to
  exercises/backups/, then replaced.

Backups are created exclusively (never over another backup, even with two builds at once) and exercises
are replaced atomically (a temporary file in exercises/, then ``os.replace``); if the exercise changed on
disk while build ran, that version is backed up too. A read-only exercise is never replaced.

Notebooks run in a kernel of the Python that runs the builder (not whatever "python3" names on a
JupyterHub); the kernel's start-up chatter on stderr is dropped, anything else it prints is passed on.
"""

from __future__ import annotations

import configparser
import copy
import hashlib
import json
import os
import re
import stat
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BEGIN = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION[ \t]*$")
END = re.compile(r"^[ \t]*### END SOLUTION[ \t]*$")
HINT = re.compile(r"^[ \t]*#[ \t]*HINT:[ \t]*(?P<text>.*?)[ \t]*$")
STUB_MESSAGE = "Your code here"  # the stub's message: this, then ": <hint>" when the region has a # HINT: line
SOLUTION_ONLY_TAG = "solution-only"
METADATA_KEY = "course_lib"
NOTEBOOK = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")
# Output data that nbval does not compare either: pictures and widget model ids.
IGNORED_DATA = ("image/", "application/vnd.jupyter.widget-view+json")


class BuildError(Exception):
    """A solution notebook that cannot become an exercise; the message names the notebook and cell."""


# --- turning a solution into an exercise ---------------------------------------------------------------------


def strip_solutions(source: str, where: str = "cell") -> str:
    """Replace each ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` region by ``raise NotImplementedError(message)``."""
    out: list[str] = []
    region: list[str] | None = None
    indent = ""
    for number, line in enumerate(source.split("\n"), start=1):
        begin, end = BEGIN.match(line), END.match(line)
        if region is None:
            if end:
                raise BuildError(f"{where}, line {number}: ### END SOLUTION without ### BEGIN SOLUTION")
            if begin:
                region, indent = [], begin.group("indent")
            else:
                out.append(line)
        elif begin:
            raise BuildError(f"{where}, line {number}: ### BEGIN SOLUTION inside another solution region")
        elif end:
            hints = [m.group("text") for m in map(HINT.match, region) if m and m.group("text")]
            message = f"{STUB_MESSAGE}: {' '.join(hints)}" if hints else f"{STUB_MESSAGE}."
            out.append(f"{indent}raise NotImplementedError({json.dumps(message, ensure_ascii=False)})")
            region = None
        else:
            region.append(line)
    if region is not None:
        raise BuildError(f"{where}: ### BEGIN SOLUTION is never closed by ### END SOLUTION")
    return "\n".join(out)


def solution_regions(source: str) -> list[list[str]]:
    """The lines inside each marked region of a solution cell (the code learners must not see)."""
    regions, region = [], None
    for line in source.split("\n"):
        if BEGIN.match(line):
            region = []
        elif END.match(line) and region is not None:
            regions.append(region)
            region = None
        elif region is not None:
            region.append(line)
    return regions


def exercise_from_solution(solution, source_name: str):
    """The unexecuted exercise notebook for a solution notebook (an ``nbformat.NotebookNode``)."""
    import nbformat

    exercise = nbformat.v4.new_notebook()
    exercise.metadata = {key: copy.deepcopy(solution.metadata[key])
                         for key in ("kernelspec", "language_info") if key in solution.metadata}
    exercise.metadata[METADATA_KEY] = {"generated_from": f"solutions/{source_name}"}
    regions = 0
    for index, cell in enumerate(solution.cells):
        where = f"solutions/{source_name}, cell {index + 1}"
        if cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise BuildError(f"{where}: has no valid cell_type (got {cell.get('cell_type')!r})")
        if not isinstance(cell.get("source"), str):
            raise BuildError(f"{where}: has no source (a {cell.cell_type} cell needs a \"source\" field)")
        if SOLUTION_ONLY_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        new = copy.deepcopy(cell)
        new.metadata = {key: value for key, value in cell.get("metadata", {}).items() if key == "tags"}
        if cell.cell_type == "code":
            new.source = strip_solutions(cell.source, where)
            regions += len(solution_regions(cell.source))
            new.outputs, new.execution_count = [], None
        exercise.cells.append(new)
    if not regions:
        raise BuildError(f"solutions/{source_name}: has no ### BEGIN SOLUTION ... ### END SOLUTION region, so its "
                         f"exercise would show the whole answer; mark the answer (or leave it out of solutions/)")
    return exercise


# What an ipykernel prints on its own stderr at every start: log lines below ERROR and debugpy's notes.
KERNEL_NOISE = re.compile(r"^\[IPKernelApp\] (DEBUG|INFO|WARNING) \|"
                          r"|^\d+\.\d+s - (Debugger warning|make the debugger|to python to disable|Note: Debugging)")


def kernel_noise(line: str) -> bool:
    """True for a line a kernel prints at every start (e.g. "running over TCP without encryption")."""
    return bool(KERNEL_NOISE.match(line))


def _kernel_manager_class():
    """A kernel manager that runs ipykernel with this interpreter, whatever "python3" means elsewhere.

    On a JupyterHub the "python3" kernelspec can belong to another environment, without course_lib or
    with other versions: the exercises must run where the builder runs.
    """
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpec

    class CurrentPythonKernelManager(AsyncKernelManager):
        @property
        def kernel_spec(self):
            if self._kernel_spec is None:
                self._kernel_spec = KernelSpec(
                    argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                    display_name="Python 3 (ipykernel)", language="python")
            return self._kernel_spec

    return CurrentPythonKernelManager


def execute(notebook, folder: Path, label: str, timeout: int = 300):
    """Run every cell in a fresh kernel of this Python started in ``folder``; raise BuildError on a cell's error.

    The kernel's own stderr is captured: its start-up chatter is dropped, anything else is passed on.
    """
    import tempfile

    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    # kernel_name only names the kernel (ipykernel, so no history file); the manager picks the interpreter.
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            kernel_manager_class=_kernel_manager_class(), allow_errors=False, record_timing=False,
                            resources={"metadata": {"path": str(folder)}})
    with tempfile.TemporaryFile() as kernel_stderr:
        try:
            client.execute(stderr=kernel_stderr)
        except CellExecutionError as error:
            failing = next((i for i, c in enumerate(notebook.cells)
                            if any(o.get("output_type") == "error" for o in c.get("outputs", []))), None)
            where = f"cell {failing + 1}" if failing is not None else "a cell"
            detail = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            raise BuildError(f"{label}: {where} raised an error when executed: {detail}") from None
        except (CellTimeoutError, DeadKernelError, RuntimeError) as error:
            detail = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            lines = _kernel_messages(kernel_stderr)
            said = f"; the kernel said: {lines[-1]}" if lines else ""
            raise BuildError(f"{label}: the kernel failed ({type(error).__name__}: {detail}){said}") from None
        finally:
            for line in _kernel_messages(kernel_stderr):
                print(line, file=sys.stderr)
    return notebook


# ipykernel sometimes logs this while it shuts down, after every cell ran: a control message flushes stdout
# through a socket that is already closed. It says nothing about the notebook.
SHUTDOWN_RACE_START = "ERROR:tornado.general:Uncaught exception in ZMQStream callback"
SHUTDOWN_RACE_END = re.compile(r"^zmq\.error\.ZMQError: ")


def without_shutdown_race(lines: list[str]) -> list[str]:
    """``lines`` without the tracebacks of ipykernel's shutdown race (a ZMQStream callback's ZMQError)."""
    kept, index = [], 0
    while index < len(lines):
        if lines[index].startswith(SHUTDOWN_RACE_START):
            end = next((j for j in range(index + 1, len(lines)) if SHUTDOWN_RACE_END.match(lines[j])), None)
            if end is not None and all(line.startswith((" ", "Traceback")) for line in lines[index + 1:end]):
                index = end + 1
                continue
        kept.append(lines[index])
        index += 1
    return kept


def _kernel_messages(stream) -> list[str]:
    """What the kernel wrote to its stderr, start-up chatter and the shutdown race left out."""
    stream.seek(0)
    text = stream.read().decode("utf-8", errors="replace")
    return without_shutdown_race([line for line in text.splitlines() if line.strip() and not kernel_noise(line)])


# --- comparing notebooks the way nbval does ---------------------------------------------------------------------


def load_sanitizers(root: Path) -> list[tuple[re.Pattern, str]]:
    """The regex/replace rules of ``nbval_sanitize.cfg`` (what nbval normalises before comparing)."""
    path = root / "nbval_sanitize.cfg"
    if not path.exists():
        return []
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path, encoding="utf-8")
    return [(re.compile(parser[s]["regex"]), parser[s].get("replace", "")) for s in parser.sections()
            if "regex" in parser[s]]


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _sanitize(text: str, rules) -> str:
    for pattern, replacement in rules:
        text = pattern.sub(replacement, text)
    return text


def normalised_outputs(cell, rules) -> list:
    """A cell's outputs as nbval compares them: streams merged, pictures and metadata dropped, sanitized."""
    result: list = []
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "stream":
            text = _sanitize(_text(output.get("text", "")), rules)
            if result and result[-1][0] == "stream" and result[-1][1] == output.get("name"):
                result[-1] = ("stream", output.get("name"), result[-1][2] + text)
            else:
                result.append(("stream", output.get("name"), text))
        elif kind in ("execute_result", "display_data"):
            data = {mime: _sanitize(_text(value) if not isinstance(value, dict) else json.dumps(value, sort_keys=True),
                                    rules)
                    for mime, value in output.get("data", {}).items() if not mime.startswith(IGNORED_DATA)}
            result.append(("data", sorted(data.items())))
        elif kind == "error":
            result.append(("error", output.get("ename"), _sanitize(output.get("evalue", ""), rules)))
    return [list(item) if not isinstance(item[1], list) else [item[0], [list(p) for p in item[1]]]
            for item in result]


def normalised_cells(notebook, rules) -> list[dict]:
    return [{"cell_type": c.cell_type, "source": c.source,
             "outputs": normalised_outputs(c, rules) if c.cell_type == "code" else []}
            for c in notebook.cells]


def _hash(value) -> str:
    payload = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return "sha256:" + hashlib.sha256(payload.encode("utf-8")).hexdigest()


def fingerprint(notebook, rules) -> str:
    """A hash of what a learner sees and nbval compares: cell types, sources, sanitized outputs."""
    return _hash(normalised_cells(notebook, rules))


def source_fingerprint(notebook) -> str:
    """A hash of the cell types and sources only: what a solution gives its exercise, before any run."""
    return _hash([{"cell_type": c.cell_type, "source": c.source} for c in notebook.cells])


def _excerpt(text: str, limit: int = 70) -> str:
    text = text.replace("\n", "⏎")
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def differences(committed, built, rules, outputs: bool = True) -> list[str]:
    """Where ``committed`` differs from ``built``, one line per differing cell (numbered from 1)."""
    found = []
    old, new = normalised_cells(committed, rules), normalised_cells(built, rules)
    if len(old) != len(new):
        found.append(f"has {len(old)} cells, build would write {len(new)}")
    for number, (a, b) in enumerate(zip(old, new), start=1):
        if a["cell_type"] != b["cell_type"]:
            found.append(f"cell {number} is a {a['cell_type']} cell, build would write a {b['cell_type']} cell")
        elif a["source"] != b["source"]:
            a_lines, b_lines = a["source"].split("\n"), b["source"].split("\n")
            line = next((i for i, (x, y) in enumerate(zip(a_lines, b_lines)) if x != y), min(len(a_lines), len(b_lines)))
            got = a_lines[line] if line < len(a_lines) else ""
            want = b_lines[line] if line < len(b_lines) else ""
            found.append(f"cell {number}, line {line + 1}: source is {_excerpt(got)}, build would write {_excerpt(want)}")
        elif outputs and a["outputs"] != b["outputs"]:
            found.append(f"cell {number}: outputs are {_excerpt(json.dumps(a['outputs'], ensure_ascii=False))}, "
                         f"build would write {_excerpt(json.dumps(b['outputs'], ensure_ascii=False))}")
    return found


# --- the command ----------------------------------------------------------------------------------------------------


@dataclass
class Paths:
    root: Path

    @property
    def solutions(self) -> Path:
        return self.root / "solutions"

    @property
    def exercises(self) -> Path:
        return self.root / "exercises"

    @property
    def backups(self) -> Path:
        return self.root / "exercises" / "backups"

    def show(self, path: Path) -> str:
        """A path relative to the repository, so messages never print machine paths."""
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return path.name


def unexecuted_exercise(solution_path: Path, paths: Paths):
    """The exercise for one solution notebook, not yet executed, with its ``source_fingerprint`` recorded."""
    import nbformat

    label = paths.show(solution_path)
    try:
        solution = nbformat.read(solution_path, as_version=4)
    except Exception as error:
        raise BuildError(f"{label}: cannot be read as a notebook: {error}") from None
    exercise = exercise_from_solution(solution, solution_path.name)
    exercise.metadata[METADATA_KEY]["source_fingerprint"] = source_fingerprint(exercise)
    return exercise


def finish(exercise, solution_path: Path, paths: Paths, rules, run: bool = True):
    """Execute an unexecuted exercise in exercises/ (unless ``run`` is False) and record its ``fingerprint``."""
    if run:
        try:
            paths.exercises.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BuildError(f"{paths.show(paths.exercises)}/: cannot be created ({_reason(error)})") from None
        execute(exercise, paths.exercises,
                f"exercises/{solution_path.name} (built from {paths.show(solution_path)})")
    exercise.metadata[METADATA_KEY]["fingerprint"] = fingerprint(exercise, rules)
    return exercise


def build_notebook(solution_path: Path, paths: Paths, rules, run: bool = True):
    """The exercise notebook build would write for one solution notebook (executed unless ``run`` is False)."""
    return finish(unexecuted_exercise(solution_path, paths), solution_path, paths, rules, run)


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


def _write_synced(fd: int, data: bytes) -> None:
    """Write ``data`` to the open file ``fd``, close it, and make sure it reached the disk."""
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


def backup(data: bytes, name: str, paths: Paths) -> Path:
    """Save ``data`` (a learner's notebook, as it was on disk) as a new file in exercises/backups/.

    The file is created exclusively (O_CREAT | O_EXCL): a name another build just took is skipped, so
    two builds at once never write over each other's backup.
    """
    stem = Path(name).stem
    shown = paths.show(paths.exercises / name)
    try:
        paths.backups.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BuildError(f"{shown}: cannot create {paths.show(paths.backups)}/ for a backup of your edits "
                         f"({_reason(error)}); nothing was changed") from None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for counter in range(10_000):
        target = paths.backups / (f"{stem}.{stamp}.ipynb" if counter == 0 else f"{stem}.{stamp}-{counter}.ipynb")
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        except OSError as error:
            raise BuildError(f"{shown}: cannot save a backup in {paths.show(paths.backups)}/ ({_reason(error)}); "
                             f"nothing was changed") from None
        try:
            _write_synced(fd, data)
        except OSError as error:
            target.unlink(missing_ok=True)
            raise BuildError(f"{shown}: cannot save a backup in {paths.show(paths.backups)}/ ({_reason(error)}); "
                             f"nothing was changed") from None
        return target
    raise BuildError(f"{shown}: no free backup name in {paths.show(paths.backups)}/; nothing was changed")


def _read_bytes(path: Path, paths: Paths) -> bytes | None:
    """The bytes at ``path``, None when there is no file."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise BuildError(f"{paths.show(path)}: cannot be read ({_reason(error)})") from None


def _parse(data: bytes):
    """The notebook in ``data``, or None if it cannot be read as one (not JSON, not a notebook)."""
    import nbformat

    try:
        notebook = nbformat.reads(data.decode("utf-8"), as_version=4)
    except Exception:  # NotJSONError, a validation or encoding error: all mean the same to the builder
        return None
    if not all(isinstance(c.get("source"), str) and c.get("cell_type") for c in notebook.get("cells", [])):
        return None
    return notebook


def read_notebook(path: Path):
    """The notebook at ``path``, or None if it cannot be read as one (not JSON, not a notebook)."""
    try:
        return _parse(path.read_bytes())
    except OSError:
        return None


def _built_metadata(notebook) -> dict:
    """What build recorded in a notebook's metadata (empty if nothing, or something else, is there)."""
    found = notebook.get("metadata", {}).get(METADATA_KEY)
    return found if isinstance(found, dict) else {}


def is_edited(notebook, rules) -> bool:
    """True when a notebook's content no longer matches the fingerprint build stored in it."""
    stored = _built_metadata(notebook).get("fingerprint")
    return stored != fingerprint(notebook, rules)


def _replace(target: Path, notebook, seen: bytes | None, paths: Paths) -> list[Path]:
    """Write ``notebook`` to ``target`` atomically; returns the backups it had to make on the way.

    ``seen`` is what build read (and judged) before; if the file changed since (a learner saved, another
    build wrote), that version is backed up first, unless it is exactly what is about to be written.
    """
    import nbformat

    shown = paths.show(target)
    try:
        text = nbformat.writes(notebook)
    except OSError as error:
        raise BuildError(f"{shown}: cannot be written ({_reason(error)}); it was left as it was") from None
    if not text.endswith("\n"):
        text += "\n"
    data = text.encode("utf-8")
    saved = []
    mode = _require_writable(target, paths)
    current = _read_bytes(target, paths)
    if current is not None and current != seen and current != data:
        saved.append(backup(current, target.name, paths))
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as error:
        raise BuildError(f"{shown}: cannot write in {paths.show(target.parent)}/ ({_reason(error)}); "
                         f"it was left as it was") from None
    try:
        _write_synced(fd, data)
        os.chmod(temporary, stat.S_IMODE(mode) if mode is not None else 0o666 & ~_umask())
        os.replace(temporary, target)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise BuildError(f"{shown}: cannot be written ({_reason(error)}); it was left as it was") from None
    return saved


def _require_writable(target: Path, paths: Paths) -> int | None:
    """The file's mode (None if there is no file); BuildError if it is read-only (never replace it then)."""
    shown = paths.show(target)
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as error:
        raise BuildError(f"{shown}: cannot be read ({_reason(error)})") from None
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise BuildError(f"{shown}: is read-only, so build will not replace it; make it writable "
                         f"(chmod u+w {shown}) and build again; nothing was changed")
    return mode


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _select(paths: Paths, names: list[str]) -> list[Path]:
    solutions = sorted(p for p in paths.solutions.glob("*.ipynb") if NOTEBOOK.match(p.name))
    if not names:
        return solutions
    chosen = [p for p in solutions if any(p.stem == n or p.stem.startswith(n) or p.name == n for n in names)]
    unknown = [n for n in names if not any(p.stem == n or p.stem.startswith(n) or p.name == n for p in solutions)]
    if unknown:
        raise BuildError(f"no solution notebook matches {', '.join(unknown)} in solutions/")
    return chosen


def build_one(solution_path: Path, paths: Paths, rules) -> str:
    """Bring one exercise up to date; returns the line to print. See the module docstring for the rule."""
    target = paths.exercises / solution_path.name
    shown = paths.show(target)
    exercise = unexecuted_exercise(solution_path, paths)
    seen = _read_bytes(target, paths)
    existing = _parse(seen) if seen is not None else None
    saved: list[Path] = []
    if seen is not None and existing is None:  # half a file after a merge conflict, say: keep it as it is
        built = finish(exercise, solution_path, paths, rules)
        _require_writable(target, paths)
        saved.append(backup(seen, target.name, paths))
        saved += _replace(target, built, seen, paths)
        return f"{shown}: not a readable notebook; saved it as {paths.show(saved[0])} and wrote a new one" + (
            "".join(f"; it changed meanwhile, saved that as {paths.show(s)}" for s in saved[1:]))
    if existing is not None and is_edited(existing, rules):
        last = _built_metadata(existing)
        new_sources = exercise.metadata[METADATA_KEY]["source_fingerprint"]
        if last.get("source_fingerprint") == new_sources:
            return f"{shown}: kept your edits (its solution has not changed since the last build)"
        built = finish(exercise, solution_path, paths, rules)
        if "source_fingerprint" not in last and last.get("fingerprint") == built.metadata[METADATA_KEY]["fingerprint"]:
            return f"{shown}: kept your edits (its solution has not changed since the last build)"
        _require_writable(target, paths)
        saved.append(backup(seen, target.name, paths))
        saved += _replace(target, built, seen, paths)
        return (f"{shown}: its solution changed and you had edited it; saved your copy as {paths.show(saved[0])} "
                f"and wrote the new exercise" + "".join(f"; it changed meanwhile, saved that as {paths.show(s)}"
                                                        for s in saved[1:]))
    built = finish(exercise, solution_path, paths, rules)
    if existing is not None and _built_metadata(existing) == built.metadata[METADATA_KEY] \
            and fingerprint(existing, rules) == built.metadata[METADATA_KEY]["fingerprint"]:
        return f"{shown}: up to date"
    saved += _replace(target, built, seen, paths)
    return f"{shown}: written" + "".join(f"; it changed meanwhile, saved that as {paths.show(s)}" for s in saved)


def run_build(paths: Paths, names: list[str], rules) -> int:
    for solution_path in _select(paths, names):
        print(build_one(solution_path, paths, rules), flush=True)
    return 0


def run_check(paths: Paths, names: list[str], rules, outputs: bool = True) -> int:
    problems = []
    selected = _select(paths, names)
    for solution_path in selected:
        target = paths.exercises / solution_path.name
        shown = paths.show(target)
        if not target.exists():
            problems.append(f"{shown}: missing; run `python -m course_lib exercises build`")
            continue
        committed = read_notebook(target)
        if committed is None:
            problems.append(f"{shown}: not a readable notebook")
            continue
        built = build_notebook(solution_path, paths, rules, run=outputs)
        problems += [f"{shown}: {line}" for line in differences(committed, built, rules, outputs)]
    if not names:
        sources = {p.name for p in selected}
        problems += [f"{paths.show(p)}: has no source solutions/{p.name}"
                     for p in sorted(paths.exercises.glob("*.ipynb")) if NOTEBOOK.match(p.name) and p.name not in sources]
    for line in problems:
        print(line)
    if problems:
        print("exercises are out of date: run `python -m course_lib exercises build` and commit the result")
        return 1
    what = "sources and outputs" if outputs else "sources"
    print(f"{len(selected)} exercise notebooks match their solutions ({what})")
    return 0


def _default_root() -> Path:
    here = Path(__file__).resolve().parents[2]
    return here if (here / "solutions").is_dir() else Path.cwd()


def run(args) -> int:
    """Run ``exercises build`` as parsed by ``python -m course_lib``."""
    if args.sources_only and not args.check:
        print("--sources-only needs --check: a built exercise notebook is always executed", file=sys.stderr)
        return 2
    paths = Paths((args.root or _default_root()).resolve())
    if not paths.solutions.is_dir():
        print(f"no solutions/ folder in {paths.root.name or 'this folder'}: pass --root", file=sys.stderr)
        return 2
    rules = load_sanitizers(paths.root)
    try:
        if args.check:
            return run_check(paths, args.names, rules, outputs=not args.sources_only)
        return run_build(paths, args.names, rules)
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

