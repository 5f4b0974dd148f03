"""docs/privacy.md and docs/security.md name the test behind each claim: every name they
give must exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("doc", ["privacy.md", "security.md"])
def test_every_test_named_in_the_doc_exists(doc: str) -> None:
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    named = set(re.findall(r"\btest_\w+", text))
    assert len(named) > 15
    files = list((ROOT / "tests").rglob("test_*.py"))
    defined = {path.stem for path in files} | {
        match for path in files for match in re.findall(r"def (test_\w+)", path.read_text())
    }
    assert sorted(named - defined) == []
