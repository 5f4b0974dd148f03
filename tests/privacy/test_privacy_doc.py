"""docs/privacy.md names the test behind each claim: every name it gives must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_test_named_in_privacy_md_exists() -> None:
    doc = (ROOT / "docs" / "privacy.md").read_text(encoding="utf-8")
    named = set(re.findall(r"\btest_\w+", doc))
    assert len(named) > 15
    files = list((ROOT / "tests").rglob("test_*.py"))
    defined = {path.stem for path in files} | {
        match for path in files for match in re.findall(r"def (test_\w+)", path.read_text())
    }
    assert sorted(named - defined) == []
