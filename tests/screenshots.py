"""Screenshots of every screen of the web client, German and English, desktop
(1280×800) and phone (390×844), into docs/screenshots/, with an index page.

    python -m tests.screenshots            # from the repository root

It starts its own server on loopback (with a help line configured) and walks a leader
and a guest through a meeting in Debian's Chromium (tests/walkthrough.py), so that a
reviewer can look at the client without running a meeting. Fake camera and microphone;
nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chromium_flags import CHROMIUM, CHROMIUM_ARGS
from kreis_server import start_server
from playwright.async_api import Page, async_playwright
from walkthrough import HELP_LINE, VIEWPORTS, set_lang, walk

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
LANGS = ("en", "de")


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.png"):
        old.unlink()
    shots: list[str] = []

    async def visit(name: str, page: Page) -> None:
        for viewport, (width, height) in VIEWPORTS.items():
            await page.set_viewport_size({"width": width, "height": height})
            for lang in LANGS:
                await set_lang(page, lang)
                await page.wait_for_timeout(250)
                path = OUT / f"{name}.{viewport}.{lang}.png"
                await page.screenshot(path=path, animations="disabled")
        await set_lang(page, "en")
        width, height = VIEWPORTS["desktop"]
        await page.set_viewport_size({"width": width, "height": height})
        shots.append(name)

    tmp = Path(tempfile.mkdtemp(prefix="kreis-shots-"))
    server = start_server(tmp, rooms={"help_line": f'"{HELP_LINE}"'})  # type: ignore[dict-item]
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                await walk(browser, server, visit)
            finally:
                await browser.close()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    write_index(shots)
    print(f"{len(list(OUT.glob('*.png')))} screenshots in {OUT}")


def write_index(shots: list[str]) -> None:
    lines = [
        "# Screenshots of the web client",
        "",
        "Every screen of a meeting, in English and German, on a desktop (1280×800) and a",
        "phone (390×844). Made by `python -m tests.screenshots` (tests/walkthrough.py):",
        "do not edit by hand, run it again after changing the client.",
        "",
    ]
    for name in shots:
        lines += [f"## {name}", "", "| | English | Deutsch |", "|---|---|---|"]
        for viewport in VIEWPORTS:
            cells = " | ".join(
                f"![{name} {viewport} {lang}]({name}.{viewport}.{lang}.png)" for lang in LANGS
            )
            lines.append(f"| {viewport} | {cells} |")
        lines.append("")
    (OUT / "README.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
