"""The server's wiring is visible: one routing table, and no import circle in `app/`
(subpackages included) nor in `sfu/`, `sipgw/` and `tui/`.

Import circles hide the order things happen in; the last one in `app/` went together
with registration by import side effect. Every import counts: inside functions (a late
import is still a dependency) and under `if TYPE_CHECKING:` (a type a module needs is
a dependency of its design).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app import protocol
from app.routing import ROUTES, Sender

ROOT = Path(__file__).resolve().parents[2]


def test_every_message_type_has_one_route() -> None:
    assert set(ROUTES) == set(protocol.UP_TYPES)


def test_before_admission_only_these_are_open() -> None:
    anyone = {kind for kind, route in ROUTES.items() if route.sender is Sender.ANYONE}
    # `receive` only records what media the connection wants once it is admitted.
    assert anyone == {
        "hello", "ping", "login", "gateway_auth", "join", "dial_in", "dial_in_check", "leave",
        "chat", "receive"
    }  # fmt: skip


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, package: str) -> set[str]:
    """The modules of the project a module imports, anywhere in it, as dotted names:
    `from app.cluster import node` names `app.cluster` and `app.cluster.node`."""
    found: set[str] = set()
    here = _module_name(path).split(".")
    if path.name != "__init__.py":
        here = here[:-1]  # relative imports start at the module's package

    def walk(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = ".".join(here[: len(here) - child.level + 1])
                    module = f"{base}.{child.module}" if child.module else base
                else:
                    module = child.module or ""
                if module == package or module.startswith(package + "."):
                    found.add(module)
                    found.update(f"{module}.{a.name}" for a in child.names)
            elif isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.startswith(package + "."))
            walk(child)

    walk(ast.parse(path.read_text(encoding="utf-8")))
    return found


def import_graph(package: str = "app") -> dict[str, set[str]]:
    """Module -> the modules of the same package (subpackages included) it imports.
    A package's `__init__` is left out: importing `app.cluster.node` runs it, but that
    is Python's doing, not a dependency the code chose."""
    paths = {
        _module_name(p): p
        for p in (ROOT / package).rglob("*.py")
        if p.name != "__init__.py" and "static" not in p.parts
    }
    return {name: (_imports(path, package) & set(paths)) - {name} for name, path in paths.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

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
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_in_app() -> None:
    graph = import_graph("app")
    assert "app.cluster.node" in graph and "app.cluster.relay" in graph  # subpackages too
    assert "app.cluster.relay" in graph["app.cluster.node"], graph["app.cluster.node"]
    assert circles(graph) == []


@pytest.mark.parametrize("package", ["sfu", "sipgw", "tui"])
def test_no_import_circle_in_the_other_packages(package: str) -> None:
    graph = import_graph(package)
    assert len(graph) > 5, graph
    assert circles(graph) == []


def test_the_circle_check_finds_a_circle() -> None:
    graph = {"app.a": {"app.b"}, "app.b": {"app.c"}, "app.c": {"app.a"}, "app.d": set()}
    assert circles(graph) == [["app.a", "app.b", "app.c"]]
