"""The E2EE test bench's static server: `app/static` and `tests/e2ee/page` on loopback.

It serves `app/static` under /static/ and the bench in `tests/e2ee/page` under /test/
(never part of the product), with a strict CSP so the engine is proven to run without
inline scripts or eval. Used by the Chromium bench tests (tests/e2ee/conftest.py) and the
Firefox ones (tests/firefox/test_firefox_e2ee.py).
"""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "app" / "static"
BENCH = Path(__file__).resolve().parent / "page"
CSP = (
    "default-src 'self'; script-src 'self'; worker-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'"
)


class BenchHandler(http.server.SimpleHTTPRequestHandler):
    """Maps /static/ → app/static and /test/ → the bench; everything else is 404."""

    extensions_map = {  # noqa: RUF012 - class attribute of the stdlib handler
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
    }

    def do_GET(self) -> None:
        if self.path == "/favicon.ico":  # keeps 404 noise out of the console error check
            self.send_response(204)
            self.end_headers()
            return
        super().do_GET()

    def translate_path(self, path: str) -> str:
        path = path.split("?", 1)[0]
        for prefix, base in (("/static/", STATIC), ("/test/", BENCH)):
            if path.startswith(prefix):
                target = (base / path[len(prefix) :]).resolve()
                if base in target.parents or target == base:
                    return str(target)
        return str(BENCH / "does-not-exist")

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def bench_server() -> Iterator[str]:
    """Serves the bench on 127.0.0.1; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), BenchHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
