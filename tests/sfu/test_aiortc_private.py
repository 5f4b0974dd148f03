"""Fails loudly when aiortc/aioice internals the SFU relies on change.

sfu/aiortc_private.py lists every private name it touches; this test checks each by
name on the real classes and on the objects of a real connected pair of peers, checks
the parameter names the codec counter reads, and proves the counter attributes real
decoders and encoders to the right owner (so the zeros in the other tests mean something).
"""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
from pathlib import Path

import aioice
import aiortc
import aiortc.codecs
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from sfu_clients import ToneTrack, client_pc, set_local, wait_for

from sfu import aiortc_private as private

ROOT = Path(__file__).resolve().parents[2]


def test_versions_are_the_pinned_ones() -> None:
    assert aiortc.__version__ == private.AIORTC_VERSION == "1.16.0"
    assert aioice.__version__ == private.AIOICE_VERSION == "0.13.0"


def test_other_aiortc_version_is_refused_at_import() -> None:
    code = "import aiortc; aiortc.__version__ = '1.15.0'; import sfu.aiortc_private"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "aiortc==1.16.0" in result.stderr


@pytest.mark.parametrize(
    ("owner", "name"),
    private.PRIVATE_NAMES,
    ids=[f"{getattr(o, '__name__', o)}.{n}" for o, n in private.PRIVATE_NAMES],
)
def test_private_name_exists(owner: object, name: str) -> None:
    assert getattr(owner, name, None) is not None, f"{owner}.{name} is gone"


def test_codec_factories_are_wrapped_not_replaced() -> None:
    wrapped_decoder = aiortc.rtcrtpreceiver.get_decoder
    wrapped_encoder = aiortc.rtcrtpsender.get_encoder
    assert wrapped_decoder.__wrapped__ is aiortc.codecs.get_decoder  # type: ignore[attr-defined]
    assert wrapped_encoder.__wrapped__ is aiortc.codecs.get_encoder  # type: ignore[attr-defined]


@pytest.mark.parametrize(("function", "names"), private.PRIVATE_PARAMETERS)
def test_private_parameters(function: object, names: tuple[str, ...]) -> None:
    params = tuple(inspect.signature(function).parameters)  # type: ignore[arg-type]
    assert params[: len(names)] == names


async def test_instance_attributes_and_codec_attribution() -> None:
    sender_pc, receiver_pc = client_pc(), client_pc()
    try:
        sender_pc.addTransceiver(ToneTrack(), direction="sendonly")
        await set_local(sender_pc, await sender_pc.createOffer())
        await receiver_pc.setRemoteDescription(sender_pc.localDescription)
        await set_local(receiver_pc, await receiver_pc.createAnswer())
        await sender_pc.setRemoteDescription(
            RTCSessionDescription(sdp=receiver_pc.localDescription.sdp, type="answer")
        )
        sending, receiving = private.CodecCounter(), private.CodecCounter()
        private.count_codecs_for(sender_pc, sending)
        private.count_codecs_for(receiver_pc, receiving)
        await wait_for(lambda: receiver_pc.connectionState == "connected", 10)
        await wait_for(lambda: receiving.decoders == 1 and sending.encoders == 1, 10)
        # Each side created exactly its own codec: attribution is per owner.
        assert (sending.decoders, receiving.encoders) == (0, 0)

        t_send = sender_pc.getTransceivers()[0]
        t_recv = receiver_pc.getTransceivers()[0]
        dtls = t_recv.receiver.transport
        ice = dtls.transport
        connection = ice._connection
        pair = connection._nominated[1]
        objects = {
            "RTCPeerConnection": receiver_pc,
            "RTCRtpTransceiver": t_recv,
            "RTCRtpSender": t_send.sender,
            "RemoteStreamTrack": t_recv.receiver.track,
            "RTCDtlsTransport": dtls,
            "RtpRouter": dtls._rtp_router,
            "RTCIceTransport": ice,
            "Connection": connection,
            "CandidatePair": pair,
            "StunProtocol": pair.protocol,
        }
        assert set(objects) == set(private.PRIVATE_INSTANCE_NAMES)
        missing = [
            f"{kind}.{name}"
            for kind, names in private.PRIVATE_INSTANCE_NAMES.items()
            for name in names
            if not hasattr(objects[kind], name)
        ]
        assert not missing, f"aiortc/aioice internals gone: {missing}"
        assert type(objects["RemoteStreamTrack"]).__name__ == "RemoteStreamTrack"
        assert isinstance(t_recv.receiver.track._queue, asyncio.Queue)
    finally:
        await sender_pc.close()
        await receiver_pc.close()


async def test_configure_ice_binds_loopback_in_range() -> None:
    pc = RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("audio", direction="sendonly")
        private.configure_ice(pc, "127.0.0.1", "192.0.2.7", 42950, 42960)
        await pc.setLocalDescription(await pc.createOffer())
        candidates = [
            line for line in pc.localDescription.sdp.splitlines() if "a=candidate" in line
        ]
        assert len(candidates) == 1
        fields = candidates[0].split()
        # advertised address in SDP, port from the range, host type
        assert fields[4] == "192.0.2.7" and 42950 <= int(fields[5]) <= 42960
        assert fields[7] == "host"
    finally:
        await pc.close()
