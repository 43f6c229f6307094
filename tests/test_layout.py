"""The package layout: no import cycles (imports inside functions count), metrics without
rendering."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("hotdance_jax", "data_pipeline")


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of PACKAGES (a package is its __init__)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_modules(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules a file imports anywhere in it (top level or inside functions):
    `from a.b import c` is a.b.c when that is a module, else a.b."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules
                     else node.module for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, or of one importing itself."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1 or node in graph[node]:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def project_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imported_modules(path, modules) for name, path in modules.items()}


def test_no_module_imports_one_that_imports_it_back():
    graph = project_graph()
    assert len(graph) > 40
    assert "hotdance_jax.sample" in graph["hotdance_jax.train"]
    assert import_cycles(graph) == []


def test_the_cycle_finder_finds_cycles_through_function_level_imports(tmp_path):
    modules = {"p.a": tmp_path / "a.py", "p.b": tmp_path / "b.py", "p.c": tmp_path / "c.py"}
    modules["p.a"].write_text("from p import b\n")
    modules["p.b"].write_text("def f():\n    from p.c import g\n    return g\n")
    modules["p.c"].write_text("import p.a\n")
    graph = {name: imported_modules(path, modules) for name, path in modules.items()}
    assert graph == {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}}
    assert import_cycles(graph) == [["p.a", "p.b", "p.c"]]
    modules["p.c"].write_text("import numpy\n")
    graph["p.c"] = imported_modules(modules["p.c"], modules)
    assert import_cycles(graph) == []


@pytest.mark.slow  # starts a Python process
def test_loading_the_metrics_loads_no_rendering():
    code = ("import sys, hotdance_jax.metrics, hotdance_jax.evaluate; "
            "print(sorted(m for m in sys.modules if m.startswith(('matplotlib', "
            "'hotdance_jax.render'))))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=300, check=True)
    assert result.stdout.strip() == "[]"
