"""The console and the gateway are clients: they import no server code.

docs/architecture.md ("Packages and what each may import"): `tui/` and `sipgw/` speak
the documented protocol through the client modules `app.protocol`, `app.client` and
`app.participant` only (plus `app.gatewayconfig`, the one reader of `[gateway]`, and
the sentence catalogue `app.i18n` it uses, and `app.logsetup`, the one masking of every
log), so they can run on another host. That holds
only if the client modules themselves stay clear of the server, so the check follows
imports: every module `tui/` or `sipgw/` reaches through `app.*`, directly or not, must
be a client module. Modules are parsed with `ast` (nothing is imported or executed); imports
inside functions count (a late import is still a dependency).
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.tui

ROOT = Path(__file__).resolve().parents[2]
CLIENT_MODULES = {
    "app.protocol",
    "app.client",
    "app.participant",
    "app.gatewayconfig",
    "app.i18n",
    "app.logsetup",
}
PACKAGES = ("tui", "sipgw")


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, dotted module) for every absolute import in a module."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            if node.module == "app":  # `from app import rooms` imports app.rooms
                found.extend((node.lineno, f"app.{alias.name}") for alias in node.names)
    return found


def forbidden(module: str) -> bool:
    """True for server modules (any app.* but the client modules) and the SFU."""
    if module == "sfu" or module.startswith("sfu."):
        return True
    return module.startswith("app.") and module not in CLIENT_MODULES


def _module_imports(module: str) -> list[tuple[int, str]]:
    path = ROOT / (module.replace(".", "/") + ".py")
    return imported_modules(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))


def violations(
    files: list[Path], imports_of: Callable[[str], list[tuple[int, str]]] = _module_imports
) -> list[str]:
    """Every forbidden import reached from `files`, as `file:line: module (via …)`."""
    bad: list[str] = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
        todo = [(line, module, name) for line, module in imported_modules(tree)]
        seen: set[str] = set()
        while todo:
            line, module, via = todo.pop()
            if forbidden(module):
                bad.append(f"{name}:{line}: {module} (via {via})")
            elif module in CLIENT_MODULES and module not in seen:
                seen.add(module)
                todo.extend((line, m, module) for _, m in imports_of(module))
    return bad


def client_files() -> list[Path]:
    files: list[Path] = []
    for package in PACKAGES:
        files.extend(sorted((ROOT / package).rglob("*.py")))
    return files


def test_console_and_gateway_reach_no_server_code() -> None:
    files = client_files()
    assert len(files) > 20 and any(p.is_relative_to(ROOT / "tui") for p in files)
    bad = violations(files)
    assert not bad, "server code reached from a client package:\n" + "\n".join(bad)


def test_the_checker_catches_direct_and_indirect_server_imports(tmp_path: Path) -> None:
    tree = ast.parse(
        "import app.rooms\nfrom app import hub\nfrom sfu.router import Router\n"
        "from app.client import KreisClient\nfrom app.protocol import Admit\n"
    )
    assert [m for _, m in imported_modules(tree) if forbidden(m)] == [
        "app.rooms",
        "app.hub",
        "sfu.router",
    ]
    # A client module that pulled in the server would smuggle it into the console.
    console = tmp_path / "console.py"
    console.write_text("from app.participant import RoomParticipant\n")
    assert violations([console]) == []

    def leaky(module: str) -> list[tuple[int, str]]:
        return [(7, "app.rooms")] if module == "app.client" else _module_imports(module)

    assert violations([console], leaky) == ["console.py:1: app.rooms (via app.client)"]
