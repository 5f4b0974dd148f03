"""Loaded by every Python process started with this folder on PYTHONPATH (tests only).

`tests/sfu/test_worker_no_codec.py` starts `kreis serve` with it, so the server and each
SFU worker process (multiprocessing "spawn" starts a fresh interpreter, which loads
`sitecustomize` too) wrap aiortc's decoder and encoder factories and append one line per
call to the file named by `KREIS_CODEC_LOG`, plus one "installed" line per process, so
the test knows the watch ran in the worker processes and did not just miss them.
"""

from __future__ import annotations

import os
import sys
from typing import Any

_LOG = os.environ.get("KREIS_CODEC_LOG", "")


def _record(what: str) -> None:
    with open(_LOG, "a", encoding="utf-8") as out:
        out.write(f"{os.getpid()} {what} {' '.join(sys.argv[:1])}\n")


def _install() -> None:
    import aiortc.rtcrtpreceiver
    import aiortc.rtcrtpsender

    for module, name in (
        (aiortc.rtcrtpreceiver, "get_decoder"),
        (aiortc.rtcrtpsender, "get_encoder"),
    ):
        original = getattr(module, name)

        def wrapped(*args: Any, _original: Any = original, _name: str = name, **kw: Any) -> Any:
            _record(_name)
            return _original(*args, **kw)

        setattr(module, name, wrapped)
    _record("installed")


if _LOG:
    _install()
