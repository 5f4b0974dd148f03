"""The memory search behind `POST /_test/memory`, for the test harness only.

Used in the server process (tests/server_hooks.py) and, when the SFU runs in worker
processes, in each worker (tests/sfu_worker_hooks.py). It imports nothing from `app/`
or `sfu/`, so a worker loads no server code to answer it.
"""

from __future__ import annotations

import gc
import types
from collections import Counter
from typing import Any

ROOM_LIKE = ("Room", "Participant", "Lobby", "Entrant", "Member", "Chat", "Resume", "Waiting")
"""Class-name fragments that mark per-meeting objects in `app.*` and `sfu.*`."""
PER_CONNECTION = ("Connection", "UpConnection", "DownConnection", "RtpUpTrack", "RtpDownTrack")
"""Exact class names of per-connection objects: none may outlive its socket."""
SINGLETON_SUFFIXES = (
    "Store",
    "Config",
    "Registry",
    "Limiter",
    "Settings",
    "Placement",
    "Desk",
    "Signer",
)
"""Long-lived holders (the room store itself, configuration, the resume-token desk and
its signer) are not meeting traces."""


def _reachable_text(skip: set[int]) -> list[tuple[str | bytes, Any]]:
    """Every str/bytes object referenced by a reachable container. Strings are not
    gc-tracked, and neither are dicts or tuples holding only atoms, so untracked
    containers found on the way are walked as well."""
    seen: set[int] = set()
    found: list[tuple[str | bytes, Any]] = []
    pending: list[Any] = gc.get_objects()
    walked: set[int] = set()
    while pending:
        container = pending.pop()
        for ref in gc.get_referents(container):
            if isinstance(ref, (str, bytes, bytearray)):
                if id(ref) not in skip and id(ref) not in seen:
                    seen.add(id(ref))
                    text = bytes(ref) if isinstance(ref, bytearray) else ref
                    found.append((text, container))
            elif not gc.is_tracked(ref) and id(ref) not in walked:
                walked.add(id(ref))
                pending.append(ref)
    return found


def _describe(container: Any) -> str:
    """Where a string was found: the container's type and, one level up, who holds
    the container (for a dict usually the object whose `__dict__` it is)."""
    own = type(container).__qualname__
    above = sorted(
        {
            f"coroutine {r.__qualname__}"
            if isinstance(r, types.CoroutineType)
            else f"{type(r).__module__}.{type(r).__qualname__}"
            for r in gc.get_referrers(container)
            if not isinstance(r, list) or len(r) < 10000
        }
    )[:6]
    return f"{own} <- {', '.join(above)}"


def search_memory(needles: list[str]) -> dict[str, Any]:
    """Which needles occur (as substrings) in reachable strings, and the live room-like
    objects of the server's own modules, after a full collection."""
    gc.collect()
    encoded = [n.encode("utf-8") for n in needles]
    skip = {id(n) for n in needles} | {id(e) for e in encoded} | {id(needles), id(encoded)}
    hits: dict[str, int] = {n: 0 for n in needles}
    holders: dict[str, list[str]] = {n: [] for n in needles}
    for text, container in _reachable_text(skip):
        for needle, raw in zip(needles, encoded, strict=True):
            if (needle in text) if isinstance(text, str) else (raw in text):
                hits[needle] += 1
                if len(holders[needle]) < 5:
                    holders[needle].append(_describe(container))
    objects: Counter[str] = Counter()
    for obj in gc.get_objects():
        cls = type(obj)
        module = getattr(cls, "__module__", "")
        if not isinstance(module, str) or not module.startswith(("app.", "sfu.")):
            continue
        name = cls.__name__
        if name in PER_CONNECTION or (
            any(f in name for f in ROOM_LIKE) and not name.endswith(SINGLETON_SUFFIXES)
        ):
            objects[f"{module}.{cls.__qualname__}"] += 1
    return {
        "found": [hits[n] > 0 for n in needles],
        "counts": [hits[n] for n in needles],
        "holders": [holders[n] for n in needles],
        "objects": dict(objects),
    }
