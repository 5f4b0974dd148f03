"""The Firefox tests need Debian's Firefox ESR; without it the folder is skipped."""

from __future__ import annotations

from pathlib import Path

import pytest
from bidi import FIREFOX


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if Path(FIREFOX).exists():
        return
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason=f"{FIREFOX} is not installed (apt-get install firefox-esr)")
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(skip)
