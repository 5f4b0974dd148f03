"""Fails loudly when aiortc/aioice internals the SFU relies on change.

sfu/aiortc_private.py lists every private name it touches; this test checks each by
name on the real classes and on the objects of a real connected pair of peers, checks
the parameter names the codec counter reads, and proves the counter attributes real
decoders and encoders to the right owner (so the zeros in the other tests mean something).
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import aioice
import aiortc
import aiortc.codecs
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from codec_watch import FACTORIES, CodecWatch
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


def test_importing_changes_nothing_in_aiortc() -> None:
    """sfu.aiortc_private patches nothing at import (it used to wrap the codec
    factories); hooks apply to one object when called."""
    code = (
        "import aiortc.codecs, aiortc.rtcrtpreceiver as r, aiortc.rtcrtpsender as s\n"
        "before = (r.get_decoder, s.get_encoder, vars(r.RTCRtpReceiver).copy(),"
        " vars(s.RTCRtpSender).copy())\n"
        "import sfu\n"
        "after = (r.get_decoder, s.get_encoder, vars(r.RTCRtpReceiver).copy(),"
        " vars(s.RTCRtpSender).copy())\n"
        "assert before == after, 'aiortc changed at import'\n"
        "assert r.get_decoder is aiortc.codecs.get_decoder\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("module", "name"), FACTORIES, ids=[n for _, n in FACTORIES])
def test_codec_factories_the_harness_wraps_exist(module: object, name: str) -> None:
    """tests/sfu/codec_watch.py proves "no decoder, no encoder" through these."""
    assert getattr(module, name) is getattr(aiortc.codecs, name)


@pytest.mark.parametrize(("function", "names"), private.PRIVATE_PARAMETERS)
def test_private_parameters(function: object, names: tuple[str, ...]) -> None:
    params = tuple(inspect.signature(function).parameters)  # type: ignore[arg-type]
    assert params[: len(names)] == names


async def test_instance_attributes_and_codec_attribution(codec_watch: CodecWatch) -> None:
    sender_pc, receiver_pc = client_pc(), client_pc()
    try:
        sender_pc.addTransceiver(ToneTrack(), direction="sendonly")
        await set_local(sender_pc, await sender_pc.createOffer())
        await receiver_pc.setRemoteDescription(sender_pc.localDescription)
        await set_local(receiver_pc, await receiver_pc.createAnswer())
        await sender_pc.setRemoteDescription(
            RTCSessionDescription(sdp=receiver_pc.localDescription.sdp, type="answer")
        )
        await wait_for(lambda: receiver_pc.connectionState == "connected", 10)
        # The harness's attribution: each side's codec is made for its own transceiver.
        await wait_for(lambda: len(codec_watch.made) == 2, 10)
        assert sorted((kind, owner is sender_pc) for kind, _, owner in codec_watch.made) == [
            ("decoder", False),
            ("encoder", True),
        ]
        assert [
            owner is receiver_pc for kind, _, owner in codec_watch.made if kind == "decoder"
        ] == [True]

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
