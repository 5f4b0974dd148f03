"""Which aiortc decoders and encoders a test made, and for whose peer connection.

The SFU forwards packets and must never decode or encode. The product does not count
that (sfu/ patches nothing in aiortc at import); the harness does: `codec_watch`
wraps aiortc's decoder and encoder factories for one test. Each call gets the codec
parameters of the transceiver it is for, so the watch looks, at that moment, for the
test client (`sfu_clients.CLIENT_PCS`) whose transceivers hold that very object; a
codec made for no client was made for the router, and `for_router()` lists it. A
test whose clients decode and encode also sees that the watch works.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import aiortc.codecs
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import pytest
from aiortc import RTCPeerConnection
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from sfu_clients import CLIENT_PCS

from sfu.aiortc_private import negotiated_codecs

FACTORIES = ((aiortc.rtcrtpreceiver, "get_decoder"), (aiortc.rtcrtpsender, "get_encoder"))
"""aiortc's receiver and sender import the factories by name: they are wrapped there."""


def _client_of(codec: RTCRtpCodecParameters) -> RTCPeerConnection | None:
    for pc in list(CLIENT_PCS):
        for transceiver in pc.getTransceivers():
            if any(codec is mine for mine in negotiated_codecs(transceiver)):
                return pc
    return None


class CodecWatch:
    """Every decoder and encoder made while the watch ran, with the client it was for."""

    def __init__(self) -> None:
        self.made: list[tuple[str, str, RTCPeerConnection | None]] = []
        """(kind "decoder"/"encoder", MIME type, the client's pc or None: the router's)."""
        self._lock = threading.Lock()  # decoders are made in aiortc's decoder threads

    def _wrap(self, kind: str, factory: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def made(codec: RTCRtpCodecParameters) -> Any:
            owner = _client_of(codec)
            with self._lock:
                self.made.append((kind, codec.mimeType, owner))
            return factory(codec)

        return made

    def for_router(self) -> list[str]:
        """Codecs made for no test client, e.g. ["decoder video/VP8"]: must stay empty."""
        with self._lock:
            return [f"{kind} {mime}" for kind, mime, owner in self.made if owner is None]

    def count(self, kind: str) -> int:
        with self._lock:
            return sum(1 for k, _, _ in self.made if k == kind)


@pytest.fixture
def codec_watch(monkeypatch: pytest.MonkeyPatch) -> Iterator[CodecWatch]:
    watch = CodecWatch()
    for module, name in FACTORIES:
        factory = getattr(aiortc.codecs, name)
        kind = "decoder" if name == "get_decoder" else "encoder"
        monkeypatch.setattr(module, name, watch._wrap(kind, factory))
    yield watch
