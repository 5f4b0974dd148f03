"""Fixtures for the E2EE browser tests: the bench's static server (bench_server.py) and
Debian's Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from bench_server import bench_server
from chromium_flags import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="session")
def bench_url() -> Iterator[str]:
    with bench_server() as url:
        yield url


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def bench(chromium: Any, bench_url: str) -> Iterator[Any]:
    """A fresh bench page; console errors are collected on `page.errors`."""
    context = chromium.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{bench_url}/test/loopback.html")
    page.wait_for_function("document.body.dataset.ready === '1'", timeout=10_000)
    page.errors = errors
    try:
        yield page
    finally:
        context.close()
