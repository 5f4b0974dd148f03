"""The server's wiring is visible: one routing table, and no import circle in `app/`.

Import circles hide the order things happen in; the last one in `app/` went together
with registration by import side effect. Every import counts: inside functions (a late
import is still a dependency) and under `if TYPE_CHECKING:` (a type a module needs is
a dependency of its design).
"""

from __future__ import annotations

import ast
from pathlib import Path

from app import protocol
from app.routing import ROUTES, Sender

APP = Path(__file__).resolve().parents[2] / "app"


def test_every_message_type_has_one_route() -> None:
    assert set(ROUTES) == set(protocol.UP_TYPES)


def test_before_admission_only_these_are_open() -> None:
    anyone = {kind for kind, route in ROUTES.items() if route.sender is Sender.ANYONE}
    # `receive` only records what media the connection wants once it is admitted.
    assert anyone == {
        "hello", "ping", "login", "gateway_auth", "join", "dial_in", "dial_in_check", "leave",
        "chat", "receive"
    }  # fmt: skip


def _imports(path: Path) -> set[str]:
    """The `app.*` modules a module imports, anywhere in it."""
    found: set[str] = set()

    def walk(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                if child.module == "app":
                    found.update(f"app.{a.name}" for a in child.names)
                elif child.module.startswith("app."):
                    found.add(child.module)
            elif isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.startswith("app."))
            walk(child)

    walk(ast.parse(path.read_text(encoding="utf-8")))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {f"app.{p.stem}": p for p in APP.glob("*.py") if p.stem != "__init__"}
    return {name: _imports(path) & set(modules) for name, path in modules.items()}


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
    assert circles(import_graph()) == []


def test_the_circle_check_finds_a_circle() -> None:
    graph = {"app.a": {"app.b"}, "app.b": {"app.c"}, "app.c": {"app.a"}, "app.d": set()}
    assert circles(graph) == [["app.a", "app.b", "app.c"]]
