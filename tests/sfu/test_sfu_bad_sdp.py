"""Malformed SDP is refused with BadSdp before aiortc sees it, leaves the connection
as it was, and leaves no traceback in any log; a failure inside aiortc is internal.

The mutations start from a real aiortc offer (and a real answer) and each breaks one
thing the fuzz of issue 13 found or sdpcheck's rules name.
"""

from __future__ import annotations

import gc
import logging
import re
from collections.abc import Callable

import pytest
from sfu_clients import (
    MovingVideoTrack,
    Publisher,
    Subscriber,
    ToneTrack,
    client_pc,
    set_local,
    wait_for,
)

from sfu import BadSdp, Router, SfuError, TrackInfo


async def _ignore(sdp: str, tracks: object) -> None:
    pass


def _sub(pattern: str, repl: str, count: int = 0) -> Callable[[str], str]:
    return lambda sdp: re.sub(pattern, repl, sdp, count=count, flags=re.M)


def _drop_video(sdp: str) -> str:
    return sdp[: sdp.index("m=video")]


def _bundle_only(sdp: str) -> str:
    """The video m-line as Firefox offers it under max-bundle: port 0, `a=bundle-only`."""
    sdp = re.sub(r"^m=video \d+", "m=video 0", sdp, flags=re.M)
    return re.sub(r"^(a=mid:1)(?=\r)", "\\1\r\na=bundle-only", sdp, flags=re.M)


def _duplicate_mid(sdp: str) -> str:
    return re.sub(r"^a=mid:1(?=\r)", "a=mid:0", sdp, flags=re.M)


OFFER_MUTATIONS: dict[str, Callable[[str], str]] = {
    "missing m-line": _drop_video,
    "no fingerprint": _sub(r"^a=fingerprint:.*\r\n", ""),
    "plain RTP/AVP": _sub(r"UDP/TLS/RTP/SAVPF", "RTP/AVP"),
    "port 0": _sub(r"^m=video \d+", "m=video 0"),
    "bundle-only outside BUNDLE": lambda sdp: re.sub(
        r"^a=group:BUNDLE[^\r\n]*\r\n", "", _bundle_only(sdp), flags=re.M
    ),
    "bundle-only as the group's first": lambda sdp: re.sub(
        r"^a=group:BUNDLE 0 1", "a=group:BUNDLE 1 0", _bundle_only(sdp), flags=re.M
    ),
    "no ice-ufrag": _sub(r"^a=ice-ufrag:.*\r\n", ""),
    "no ice-pwd": _sub(r"^a=ice-pwd:.*\r\n", ""),
    "short ice-pwd": _sub(r"^a=ice-pwd:[^\r\n]*", "a=ice-pwd:short"),
    "unknown setup": _sub(r"^a=setup:[^\r\n]*", "a=setup:sideways"),
    "fingerprint of a bad length": _sub(r"^(a=fingerprint:sha-256) ([^\r\n]*)", r"\1 AB:CD"),
    "unknown digests only": _sub(r"^a=fingerprint:sha-\d+", "a=fingerprint:md5"),
    "announced track does not send": _sub(r"^a=sendonly(?=\r)", "a=recvonly"),
    "duplicate mids": _duplicate_mid,
    "no mid": _sub(r"^a=mid:.*\r\n", ""),
    "no rtcp-mux": _sub(r"^a=rtcp-mux\r\n", ""),
    "no codec": _sub(r"^a=rtpmap:\d+ (opus|VP8|H264|PCMU|PCMA|rtx)/", "a=rtpmap:100 x-none/"),
    "data channel m-line": _sub(r"^m=video \d+ \S+", "m=application 9 UDP/DTLS/SCTP"),
    "BUNDLE names a stranger": _sub(r"^a=group:BUNDLE [^\r\n]*", "a=group:BUNDLE 0 1 7"),
    "control character": _sub(r"^s=-", "s=-\x00"),
    "not v=0 first": lambda sdp: "x" + sdp,
    "huge": lambda sdp: sdp + "a=x-pad:" + "A" * 200_000 + "\r\n",
    "no media at all": _sub(r"^m=[\s\S]*", ""),
    "garbage": lambda sdp: "this is not sdp",
}


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    gc.collect()  # an unretrieved task exception is logged when the task is collected
    bad = [
        r
        for r in caplog.records
        if r.exc_info or "never retrieved" in r.getMessage() or r.levelno >= logging.ERROR
    ]
    assert bad == [], [r.getMessage()[:200] for r in bad]


async def test_malformed_up_offers_get_bad_sdp_and_leave_the_connection_usable(
    router: Router, logs: pytest.LogCaptureFixture
) -> None:
    room = "r-bad-offers"
    sub = Subscriber(router, room, "sub")
    sub.join()
    pub = Publisher(router, room, "pub")
    router.add_participant(room, "pub", _ignore)
    pc = pub.pc
    pc.addTransceiver(ToneTrack(), direction="sendonly")
    pc.addTransceiver(MovingVideoTrack(), direction="sendonly")
    await set_local(pc, await pc.createOffer())
    good = pc.localDescription.sdp
    tracks = [
        TrackInfo(mid="0", kind="audio", source="mic"),
        TrackInfo(mid="1", kind="video", source="camera"),
    ]
    try:
        accepted = []
        for name, mutate in OFFER_MUTATIONS.items():
            broken = mutate(good)
            assert broken != good, name
            try:
                await router.got_up_offer(room, "pub", broken, tracks)
            except BadSdp:
                continue
            accepted.append(name)
        assert accepted == []
        # Announcing a track of the wrong kind for an existing m-line, or a mid the
        # offer does not have, is the "missing m-line" case too.
        for wrong in (TrackInfo("1", "audio", "mic"), TrackInfo("7", "video", "camera")):
            with pytest.raises(BadSdp):
                await router.got_up_offer(room, "pub", good, [wrong])

        # Nothing of the bad offers reached aiortc: the same connection answers the
        # good offer and the subscriber gets the media. The good offer is sent the
        # way Firefox sends it (max-bundle: the video m-line on port 0, bundle-only).
        firefox_like = _bundle_only(good)
        assert "a=bundle-only" in firefox_like and "m=video 0 " in firefox_like
        answer = await router.got_up_offer(room, "pub", firefox_like, tracks)
        await pc.setRemoteDescription(type(pc.localDescription)(sdp=answer, type="answer"))
        await wait_for(lambda: sub.video_frames() > 10 and sub.audio_frames() > 10, 15)
    finally:
        await sub.close()
        await pc.close()
    _no_tracebacks(logs)


ANSWER_MUTATIONS: dict[str, Callable[[str], str]] = {
    "sends instead of receiving": _sub(r"^a=recvonly(?=\r)", "a=sendrecv"),
    "actpass in an answer": _sub(r"^a=setup:[^\r\n]*", "a=setup:actpass"),
    "no fingerprint": _sub(r"^a=fingerprint:.*\r\n", ""),
    "m-lines out of order": _sub(r"^a=mid:0(?=\r)", "a=mid:9"),
    "port 0": _sub(r"^m=(audio|video) \d+", r"m=\1 0", count=1),
}


async def test_malformed_down_answers_get_bad_sdp(
    router: Router, logs: pytest.LogCaptureFixture
) -> None:
    room = "r-bad-answers"
    offers: list[str] = []

    async def keep(sdp: str, tracks: object) -> None:
        offers.append(sdp)

    router.add_participant(room, "sub", keep)
    pub = Publisher(router, room, "pub")
    router.add_participant(room, "pub", _ignore)
    client = client_pc()
    try:
        await pub.publish([(ToneTrack(), "mic")])
        await wait_for(lambda: bool(offers), 5)
        await client.setRemoteDescription(type(pub.pc.localDescription)(offers[-1], "offer"))
        await set_local(client, await client.createAnswer())
        good = client.localDescription.sdp
        for name, mutate in ANSWER_MUTATIONS.items():
            broken = mutate(good)
            assert broken != good, name
            with pytest.raises(BadSdp):
                await router.got_down_answer(room, "sub", broken)
        await router.got_down_answer(room, "sub", good)  # the offer was still open
    finally:
        await client.close()
        await pub.pc.close()
    _no_tracebacks(logs)


async def test_a_failure_inside_aiortc_is_internal_not_bad_sdp(
    router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    room = "r-internal"
    router.add_participant(room, "pub", _ignore)
    pc = client_pc()
    pc.addTransceiver(ToneTrack(), direction="sendonly")
    await set_local(pc, await pc.createOffer())

    async def broken(self: object, description: object) -> None:
        raise RuntimeError("aiortc broke")

    from aiortc import RTCPeerConnection

    monkeypatch.setattr(RTCPeerConnection, "setRemoteDescription", broken)
    try:
        with pytest.raises(Exception) as raised:
            await router.got_up_offer(
                room, "pub", pc.localDescription.sdp, [TrackInfo("0", "audio", "mic")]
            )
        assert not isinstance(raised.value, BadSdp)
        assert isinstance(raised.value, (RuntimeError, SfuError))
    finally:
        monkeypatch.undo()
        await pc.close()
