"""SFU worker processes that answer the memory search, for the test harness only.

`tests/serve_with_hooks.py` has the server's WorkerPool start its workers with
`worker_main_with_hooks` instead of `sfu.worker.worker_main`. Such a worker answers one
more request, `MEMORY_METHOD` with the needles base64-encoded, with what
`tests/memory_probe.search_memory` finds in its own memory: the trace audit
(tests/privacy) then covers the processes that held a room's peer connections. A
production worker has no such request; nothing in the environment switches it on.
"""

from __future__ import annotations

import base64
from multiprocessing.connection import Connection
from typing import Any

from sfu.settings import MediaSettings
from sfu.worker import Worker, worker_main

MEMORY_METHOD = "_test_memory"


def worker_main_with_hooks(
    conn: Connection, settings: MediaSettings, use_uvloop: bool = False
) -> None:
    """`sfu.worker.worker_main`, with the worker also answering `MEMORY_METHOD`."""
    from memory_probe import search_memory

    dispatch = Worker._dispatch

    async def dispatch_with_memory(self: Worker, method: str, args: tuple[Any, ...]) -> Any:
        if method != MEMORY_METHOD:
            return await dispatch(self, method, args)
        (needles_b64,) = args
        needles = [base64.b64decode(item).decode("utf-8") for item in needles_b64]
        result = search_memory(needles)
        needles.clear()
        return result

    Worker._dispatch = dispatch_with_memory  # type: ignore[method-assign]
    worker_main(conn, settings, use_uvloop)
