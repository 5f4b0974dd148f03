"""The console and the gateway are clients: they import no server code.

ARCHITECTURE.md: `tui/` and `sipgw/` speak the documented protocol through
`app.protocol` and `app.client` only, so they can run on another host. This test
parses every module with `ast` (nothing is imported or executed) and fails on any
import of another `app.*` module or of the SFU.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.tui

ROOT = Path(__file__).resolve().parents[2]
ALLOWED_APP = {"app.protocol", "app.client"}
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
    """True for server modules (any app.* but protocol and client) and the SFU."""
    if module == "sfu" or module.startswith("sfu."):
        return True
    if module.startswith("app."):
        return not any(module == ok or module.startswith(ok + ".") for ok in ALLOWED_APP)
    return False


def python_files() -> list[Path]:
    files: list[Path] = []
    for package in PACKAGES:
        files.extend(sorted((ROOT / package).rglob("*.py")))
    return files


def test_there_is_something_to_check() -> None:
    assert any(p.is_relative_to(ROOT / "tui") for p in python_files())


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_client_packages_import_no_server_code(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = [f"line {line}: {module}" for line, module in imported_modules(tree) if forbidden(module)]
    assert not bad, f"{path.relative_to(ROOT)} imports server code: {', '.join(bad)}"


def test_the_checker_catches_server_imports() -> None:
    tree = ast.parse(
        "import app.rooms\nfrom app import hub\nfrom sfu.router import Router\n"
        "from app.client import KreisClient\nfrom app.protocol import Admit\n"
    )
    assert [m for _, m in imported_modules(tree) if forbidden(m)] == [
        "app.rooms",
        "app.hub",
        "sfu.router",
    ]
