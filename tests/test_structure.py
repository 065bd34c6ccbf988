"""The shape of course_lib: who may import whom, that the import graph has no loop, and that the tools run
where the learner's packages are missing.

The graph is read from the source (every ``import``, at module level or inside a function, and every
``importlib.import_module`` whose target can be read off the code), so a dynamic import counts as much as a
static one.
"""

from __future__ import annotations

import ast
import functools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "course_lib"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The course_lib modules ``module`` imports, by any means the code shows."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    constants = {c.value for c in ast.walk(tree) if isinstance(c, ast.Constant) and isinstance(c.value, str)}
    table_constants = {c.value for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                       for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str)}

    def add(name: str) -> None:
        # "course_lib.models.attention.causal_mask" -> the longest known module it names
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in known or candidate == "course_lib.__main__":
                found.add(candidate)
                return

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            for alias in node.names:
                add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args):
            target = node.args[0]
            if isinstance(target, ast.Constant) and isinstance(target.value, str):
                add(target.value)
            elif isinstance(target, ast.JoinedStr):  # f"course_lib.tools.{name}": each name the module spells out
                prefix = "".join(v.value for v in target.values if isinstance(v, ast.Constant))
                found.update(prefix + word for word in constants if prefix + word in known)
            elif isinstance(target, (ast.Name, ast.Subscript)):  # import_module(TABLE[name]): the table's modules
                found.update(word for word in table_constants if word in known)
            # anything else (a path a check's data names, say) is data, not structure: not followed
    found.discard(module)
    return found


@functools.lru_cache(maxsize=1)
def _read_graph() -> tuple[tuple[str, frozenset[str]], ...]:
    modules = _modules()
    known = set(modules)
    return tuple((name, frozenset(_imports(name, path, known))) for name, path in modules.items())


def _graph() -> dict[str, set[str]]:
    """Module -> the course_lib modules it imports (read once per test run; each caller gets its own copy)."""
    return {name: set(imports) for name, imports in _read_graph()}


def test_the_graph_is_read_from_the_code():
    graph = _graph()
    assert "course_lib.models.attention" in graph["course_lib.models.block"]
    assert "course_lib.tools.bench" in graph["course_lib.tools.cli"]  # the cli's import_module(f"...{module}")
    assert "course_lib.experiments.training" in graph["course_lib"]  # the lazy names of course_lib/__init__.py


def test_no_module_imports_the_command_line_entry_point():
    importers = sorted(name for name, imported in _graph().items() if "course_lib.__main__" in imported)
    assert importers == []
    assert "course_lib.tools.cli" not in {m for name, imported in _graph().items() if name != "course_lib.__main__"
                                          for m in imported}


def find_loop(graph: dict[str, set[str]]) -> list[str] | None:
    """One loop of ``graph`` (a list that starts and ends with the same module), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (loop := visit(nxt)):
                return loop
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (loop := visit(node)):
            return loop
    return None


def test_find_loop_finds_a_loop_through_a_lazy_import():
    assert find_loop({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_loop({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    graph = _graph()
    graph["course_lib.tools.bench"].add("course_lib.tools.cli")  # what bench's old `from .__main__ import main` did
    assert find_loop(graph) is not None


def test_the_import_graph_has_no_loop():
    loop = find_loop(_graph())
    assert loop is None, "import loop: " + " -> ".join(loop)


# What each part may import (besides itself and the standard library / third-party packages).
ALLOWED = {
    "course_lib.models": {"course_lib.validation", "course_lib.threads"},
    "course_lib.experiments": {"course_lib.validation", "course_lib.threads", "course_lib.models"},
    "course_lib.widgets": {"course_lib.validation", "course_lib.threads", "course_lib.models", "course_lib.experiments"},
    "course_lib.plots": {"course_lib.validation", "course_lib.threads"},
    "course_lib.checks": {"course_lib.validation", "course_lib.threads", "course_lib.models", "course_lib.experiments",
                          "course_lib.apart"},
    # The answer's side of a check: it must never hold the checks (their reference solutions) itself.
    "course_lib.apart": set(),
    "course_lib.validation": set(),
    "course_lib.threads": set(),
}


def _part(module: str) -> str:
    return ".".join(module.split(".")[:2])


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_each_part_imports_only_what_lies_below_it(part):
    wrong = sorted(f"{name} imports {imported}" for name, imports in _graph().items() if _part(name) == part
                   for imported in imports if _part(imported) != part and _part(imported) not in ALLOWED[part])
    assert wrong == []


def test_nothing_but_the_tools_and_the_entry_point_imports_the_tools():
    users = sorted(name for name, imports in _graph().items()
                   if not name.startswith("course_lib.tools") and name != "course_lib.__main__"
                   and any(m.startswith("course_lib.tools") for m in imports))
    assert users == []


def _python(code: str, *, block: tuple[str, ...] = (), env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter where the packages in ``block`` cannot be imported, as if missing."""
    blocker = textwrap.dedent(f"""
        import sys
        class _Missing:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {set(block)!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        sys.meta_path.insert(0, _Missing())
    """) if block else ""
    return subprocess.run([sys.executable, "-c", blocker + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})}, cwd=PACKAGE.parent)


def _course_lib_command(*argv: str) -> str:
    return f"""
        import runpy, sys
        sys.argv = ["python -m course_lib", *{list(argv)!r}]
        runpy.run_module("course_lib", run_name="__main__", alter_sys=True)
    """


@pytest.mark.integration
def test_doctor_help_runs_without_torch():
    done = _python(_course_lib_command("doctor", "--help"), block=("torch", "numpy"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m course_lib doctor")


@pytest.mark.integration
def test_doctor_quick_without_torch_names_it_and_prints_the_fix():
    done = _python(_course_lib_command("doctor", "--quick"), block=("torch",))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    lines = done.stdout.splitlines()
    threads = lines.index(next(line for line in lines if line.startswith("FAIL  threads")))
    assert "torch is not installed" in lines[threads]
    assert lines[threads + 1].strip() == f"fix: {sys.executable} -m pip install -r {PACKAGE.parent / 'requirements.txt'}"
    assert lines[0].startswith("OK    python")
    assert "check(s) failed" in lines[-1]


@pytest.mark.integration
def test_a_command_that_needs_torch_says_so_without_a_traceback():
    done = _python(_course_lib_command("bench", "--no-reference"), block=("torch",))
    assert done.returncode == 1
    assert "`bench` needs torch" in done.stderr and "fix:" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.integration
def test_importing_course_lib_imports_nothing_heavy_and_sets_nothing():
    done = _python("""
        import sys
        import course_lib
        print(sorted(m for m in ("torch", "numpy", "matplotlib", "ipywidgets") if m in sys.modules))
        print(len(dir(course_lib)) > 20)
    """)
    assert done.stdout.split() == ["[]", "True"], done.stderr


@pytest.mark.integration
def test_the_thread_policy_applies_once_on_first_use_and_leaves_a_later_choice_alone():
    done = _python("""
        import torch
        torch.set_num_threads(3)
        import course_lib
        print(torch.get_num_threads())        # import course_lib alone: untouched
        course_lib.TransformerLM               # first use of a PyTorch part: the course's count
        print(torch.get_num_threads())
        torch.set_num_threads(2)              # the learner's own choice afterwards
        import course_lib.widgets, course_lib.checks, course_lib.plots
        print(torch.get_num_threads())        # kept
    """, env={"COURSE_LIB_THREADS": "", "OMP_NUM_THREADS": ""})
    assert done.stdout.split() == ["3", "1", "2"], done.stderr
