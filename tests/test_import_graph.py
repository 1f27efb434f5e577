"""The package's import graph has no circle.

Built from the source with :mod:`ast` (nothing is imported): an edge for every import of an
``airflow_provider_musicai`` module, either at module level (run when the module is imported; imports
under ``if TYPE_CHECKING:`` are not) or inside a function (run when it is called). A circle among the
module-level edges makes a module see another half-initialized; a circle closed by a function-level
import (a "lazy" import) is the same tangle, held together by deferring one side.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import airflow_provider_musicai

pytestmark = pytest.mark.airflow_independent

PACKAGE = "airflow_provider_musicai"
ROOT = Path(airflow_provider_musicai.__file__).parent

Graph = dict[str, set[str]]


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = (PACKAGE, *path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _targets(module: str, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``node`` imports (``from pkg import mod`` names the module)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        source = _absolute(module, node, modules[module].name == "__init__.py")
        names = [f"{source}.{alias.name}" for alias in node.names]
        names = [name if name in modules else source for name in names]
    return {name for name in names if name in modules and name != module}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_graphs() -> tuple[Graph, Graph]:
    """(module-level edges, function-level edges) between the package's modules."""
    modules = module_files()
    top: Graph = {name: set() for name in modules}
    lazy: Graph = {name: set() for name in modules}

    for module, path in modules.items():

        def visit(node: ast.AST, in_function: bool, module: str = module) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and _is_type_checking(child):
                    for other in child.orelse:
                        visit_one(other, in_function, module)
                    continue
                visit_one(child, in_function, module)

        def visit_one(child: ast.AST, in_function: bool, module: str) -> None:
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                (lazy if in_function else top)[module] |= _targets(module, child, modules)
            else:
                inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                visit(child, inner, module)

        visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return top, lazy


def find_cycle(graph: Graph) -> list[str] | None:
    """One circle in ``graph`` as the list of its modules (first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := walk(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := walk(start)):
            return found
    return None


def test_no_circle_among_module_level_imports() -> None:
    top, _ = import_graphs()
    assert find_cycle(top) is None, " -> ".join(find_cycle(top) or [])


def test_no_circle_closed_by_a_function_level_import() -> None:
    top, lazy = import_graphs()
    both = {name: top[name] | lazy[name] for name in top}
    assert find_cycle(both) is None, " -> ".join(find_cycle(both) or [])


def test_the_graph_sees_both_kinds_of_import_and_the_finder_finds_circles() -> None:
    top, lazy = import_graphs()
    assert f"{PACKAGE}.jobs" in top[f"{PACKAGE}.status_log"]
    assert f"{PACKAGE}.testing.emulator.audio" in top[f"{PACKAGE}.testing.emulator.workflows"]  # relative
    assert any(lazy.values())
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
