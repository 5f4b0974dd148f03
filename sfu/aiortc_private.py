"""Every use of aiortc and aioice private internals, in one place.

aiortc gives us ICE, DTLS, SRTP and SDP, but its receiver decodes and its sender
encodes. To forward packets without either, the SFU taps RTP right after SRTP
decryption, replaces the sender's RTP/RTCP loops, writes packets straight through
the DTLS transport, and gathers ICE host candidates on a configured address and
port range. All of that touches attributes that are not part of aiortc's public API,
so it lives here, with the versions pinned and checked at import;
tests/sfu/test_aiortc_private.py fails loudly when one of these names disappears.
Importing this module changes nothing in aiortc: every hook is applied to one object
by a call. (That the SFU never decodes or encodes is proven by the test harness,
which wraps aiortc's codec factories itself: tests/sfu/codec_watch.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aioice
import aioice.ice
import aiortc
import aiortc.codecs
import aiortc.rtcpeerconnection
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import aiortc.sdp
import pylibsrtp
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import AnyRtcpPacket, RtpPacket

from sfu.errors import PortRangeExhausted

logger = logging.getLogger(__name__)

AIORTC_VERSION = "1.16.0"
AIOICE_VERSION = "0.13.0"

if aiortc.__version__ != AIORTC_VERSION or aioice.__version__ != AIOICE_VERSION:
    raise ImportError(
        f"sfu needs aiortc=={AIORTC_VERSION} and aioice=={AIOICE_VERSION} exactly "
        f"(found aiortc {aiortc.__version__}, aioice {aioice.__version__}): "
        "sfu/aiortc_private.py relies on their private internals; re-check every hook "
        "there and in tests/sfu/test_aiortc_private.py before changing the pin"
    )

#: Class- and module-level private names this module relies on, as (owner, name).
#: tests/sfu/test_aiortc_private.py checks each one by name.
PRIVATE_NAMES: tuple[tuple[Any, str], ...] = (
    (RTCRtpReceiver, "_handle_rtp_packet"),
    (RTCRtpReceiver, "_handle_rtcp_packet"),
    (RTCRtpSender, "_handle_rtcp_packet"),
    (RTCRtpSender, "_run_rtp"),
    (RTCRtpSender, "_run_rtcp"),
    (RTCDtlsTransport, "_handle_rtp_data"),
    (RTCDtlsTransport, "_recv_next"),
    (aioice.ice.Connection, "gather_candidates"),
    (aioice.ice, "StunProtocol"),
    (aiortc.sdp.SessionDescription, "parse"),
    (aiortc.rtcpeerconnection, "find_common_codecs"),
    (aiortc.codecs, "CODECS"),
    (RTCPeerConnection, "_RTCPeerConnection__connect"),
)

#: Instance attributes this module relies on, by the kind of object that holds them.
#: The test builds a real connected pair of peer connections and checks each one.
PRIVATE_INSTANCE_NAMES: dict[str, tuple[str, ...]] = {
    "RTCPeerConnection": ("_RTCPeerConnection__iceTransports",),
    "RTCRtpTransceiver": ("_codecs", "_headerExtensions"),
    "RTCRtpSender": (
        "_ssrc",
        "_stream_id",
        "_track_id",
        "_RTCRtpSender__cname",
        "_RTCRtpSender__rtp_started",
        "_RTCRtpSender__rtp_exited",
        "_RTCRtpSender__rtcp_started",
        "_RTCRtpSender__rtcp_exited",
    ),
    "RTCDtlsTransport": (
        "_rtp_router",
        "_rtp_header_extensions_map",
        "_state",
        "_tx_srtp",
        "_rx_srtp",
    ),
    "RtpRouter": ("route_rtp",),
    "RTCIceTransport": ("_recv", "_connection"),
    "Connection": (
        "_local_candidates",
        "_local_candidates_start",
        "_local_candidates_end",
        "_protocols",
        "_nominated",
    ),
    "CandidatePair": ("protocol", "remote_addr"),
    "StunProtocol": ("transport", "local_candidate"),
}

#: Parameter names the hooks depend on.
PRIVATE_PARAMETERS: tuple[tuple[Any, tuple[str, ...]], ...] = (
    (RTCDtlsTransport._handle_rtp_data, ("self", "data", "arrival_time_ms")),
    (RTCRtpReceiver._handle_rtp_packet, ("self", "packet", "arrival_time_ms")),
    (RTCRtpSender._handle_rtcp_packet, ("self", "packet")),
)

# --- ICE on a configured address and port range ---------------------------------


UDP_RECEIVE_BUFFER = 1 << 20


def _bind_udp(bind_address: str, port_min: int, port_max: int) -> socket.socket:
    ports = list(range(port_min, port_max + 1))
    start = random.randrange(len(ports))
    for port in ports[start:] + ports[:start]:
        sock = socket.socket(
            socket.AF_INET6 if ":" in bind_address else socket.AF_INET, socket.SOCK_DGRAM
        )
        try:
            sock.bind((bind_address, port))
        except OSError:
            sock.close()
            continue
        # Like aioice's own host sockets: room for a keyframe burst from many peers.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
        sock.setblocking(False)
        return sock
    raise PortRangeExhausted(port_min, port_max)


def configure_ice(
    pc: RTCPeerConnection,
    bind_address: str,
    advertised_address: str,
    port_min: int,
    port_max: int,
) -> None:
    """Makes pc gather one host candidate on bind_address, advertised as given.

    aioice gathers on every interface except loopback and picks ephemeral ports; a
    server behind a firewall or 1:1 NAT needs a fixed address and port range instead.
    Call before every setLocalDescription (new ICE transports are patched once).
    """
    for ice_transport in pc._RTCPeerConnection__iceTransports:  # type: ignore[attr-defined]
        connection = ice_transport.iceGatherer._connection
        if getattr(connection, "_kreis_ice", False):
            continue
        connection._kreis_ice = True
        connection.gather_candidates = _gather_host(
            connection, bind_address, advertised_address, port_min, port_max
        )


def _gather_host(
    connection: aioice.ice.Connection,
    bind_address: str,
    advertised_address: str,
    port_min: int,
    port_max: int,
) -> Callable[[], Awaitable[None]]:
    async def gather_candidates() -> None:
        if connection._local_candidates_start:
            return
        connection._local_candidates_start = True
        loop = asyncio.get_running_loop()
        sock = _bind_udp(bind_address, port_min, port_max)
        _, protocol = await loop.create_datagram_endpoint(
            lambda: aioice.ice.StunProtocol(connection), sock=sock
        )
        port = sock.getsockname()[1]
        protocol.local_candidate = Candidate(
            foundation=candidate_foundation("host", "udp", advertised_address),
            component=1,
            transport="udp",
            priority=candidate_priority(1, "host"),
            host=advertised_address,
            port=port,
            type="host",
        )
        connection._protocols.append(protocol)
        connection._local_candidates.append(protocol.local_candidate)
        connection._local_candidates_end = True
        logger.debug("ICE host candidate bound on port %d", port)

    return gather_candidates


# --- codecs and header extensions of a transceiver -------------------------------


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """The codecs (with payload types) negotiated for transceiver."""
    return list(transceiver._codecs)


def negotiated_extensions(transceiver: RTCRtpTransceiver) -> dict[int, str]:
    """Negotiated RTP header extensions of transceiver, id → URI."""
    return {ext.id: ext.uri for ext in transceiver._headerExtensions}


def restrict_codecs(transceiver: RTCRtpTransceiver, allowed: Callable[[Any], bool]) -> None:
    """Keeps only allowed codecs in an answering transceiver (before createAnswer).

    setCodecPreferences cannot be used for transceivers that setRemoteDescription
    creates: the preferences are applied while the offer is parsed.
    """
    transceiver._codecs = [c for c in transceiver._codecs if allowed(c)]


def set_stream_ids(sender: RTCRtpSender, stream_id: str, track_id: str) -> None:
    """msid of a down transceiver: one stream per publisher keeps its audio and video
    in lip sync in the browser, without syncing different publishers to each other."""
    sender._stream_id = stream_id
    sender._track_id = track_id


def sender_ssrc(sender: RTCRtpSender) -> int:
    return int(sender._ssrc)


def sender_cname(sender: RTCRtpSender) -> str | None:
    cname = sender._RTCRtpSender__cname  # type: ignore[attr-defined]
    return str(cname) if cname is not None else None


# --- sending without the sender's loops -----------------------------------------


def silence_sender(
    sender: RTCRtpSender, on_started: Callable[[], None], on_rtcp: Callable[[AnyRtcpPacket], None]
) -> None:
    """Turns a track-less sender into a pure SSRC holder.

    Its RTP loop would poll for a track every 20 ms and its RTCP loop would send
    sender reports with zero timestamps; both are replaced by a coroutine that only
    keeps stop() working. RTCP from the subscriber goes to on_rtcp instead.
    """

    async def idle(*_args: Any) -> None:
        started = sender._RTCRtpSender__rtp_started  # type: ignore[attr-defined]
        first = not started.is_set()
        started.set()
        sender._RTCRtpSender__rtcp_started.set()  # type: ignore[attr-defined]
        if first:
            on_started()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.get_running_loop().create_future()
        sender._RTCRtpSender__rtp_exited.set()  # type: ignore[attr-defined]
        sender._RTCRtpSender__rtcp_exited.set()  # type: ignore[attr-defined]

    async def idle_rtcp() -> None:
        # stop() cancels both tasks; the RTP one already signals both events.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.get_running_loop().create_future()

    async def handle_rtcp(packet: AnyRtcpPacket) -> None:
        on_rtcp(packet)

    sender._run_rtp = idle  # type: ignore[method-assign, assignment]
    sender._run_rtcp = idle_rtcp  # type: ignore[method-assign]
    sender._handle_rtcp_packet = handle_rtcp  # type: ignore[method-assign]


class RtpWriter:
    """Writes RTP/RTCP through a DTLS transport synchronously (no await per packet)."""

    __slots__ = ("_addr", "_dtls", "_pair", "_sendto")

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self._dtls = dtls
        self._pair: Any = None
        self._addr: Any = None
        self._sendto: Any = None

    def write_rtp(self, data: bytes) -> bool:
        dtls = self._dtls
        if dtls._state is not State.CONNECTED:
            return False
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None:
            return False
        if pair is not self._pair:
            # aioice's remote_addr builds a tuple on every call: once per nominated pair.
            self._pair = pair
            self._addr = pair.remote_addr
            self._sendto = pair.protocol.transport.sendto
        self._sendto(dtls._tx_srtp.protect(data), self._addr)
        return True

    def write_rtcp(self, data: bytes) -> bool:
        dtls = self._dtls
        if dtls._state is not State.CONNECTED:
            return False
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None:
            return False
        pair.protocol.transport.sendto(dtls._tx_srtp.protect_rtcp(data), pair.remote_addr)
        return True


# --- receiving without the receiver's jitter buffer and decoder -----------------


RtpSink = Callable[[bytes], None]


def tap_rtp(
    dtls: RTCDtlsTransport,
    route: Callable[[Any], RtpSink | None],
) -> Callable[[], None]:
    """Hands every decrypted RTP packet on dtls to a sink, bypassing aiortc's parse.

    The sink for a new SSRC is found once through aiortc's own RTP router (which
    knows the SSRCs and payload types of the SDP) and then cached by SSRC.
    Returns a function that empties the cache (call it when sinks go away).
    """
    sinks: dict[int, RtpSink] = {}

    def deliver(data: bytes) -> None:
        if len(data) < 12:
            return
        ssrc = int.from_bytes(data[8:12], "big")
        sink = sinks.get(ssrc)
        if sink is None:
            try:
                packet = RtpPacket.parse(data, dtls._rtp_header_extensions_map)
            except ValueError:
                return
            receiver = dtls._rtp_router.route_rtp(packet)
            if receiver is None:
                return
            sink = route(receiver)
            if sink is None:
                return
            sinks[ssrc] = sink
        sink(data)

    async def handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
        deliver(data)

    dtls._handle_rtp_data = handle_rtp_data  # type: ignore[method-assign]
    receive_directly(dtls, deliver)
    return sinks.clear


def receive_directly(dtls: RTCDtlsTransport, deliver: RtpSink) -> None:
    """Decrypts SRTP in the socket's datagram callback and hands it to deliver.

    aiortc queues every datagram in aioice's connection and takes each out again
    through a chain of awaits (RTCDtlsTransport.__run, _recv_next, recv, recvfrom,
    Queue.get). That costs per packet, and under load the socket callbacks outrun
    the loop: the unbounded queue grows and packets wait for seconds. RTP now goes
    straight through here; DTLS, STUN and RTCP still take aiortc's way. When a test
    hook replaced the ICE transport's _recv (simulate_inbound_loss), RTP keeps
    aiortc's way too, so the hook still sees every packet.
    """
    ice = dtls.transport
    connection = ice._connection
    plain_recv = ice._recv
    queued = connection.data_received

    def data_received(data: bytes, component: int) -> None:
        srtp = dtls._rx_srtp
        if (
            srtp is None
            or ice._recv is not plain_recv
            or len(data) < 12
            or not 127 < data[0] < 192
            or 191 < data[1] < 224  # RTCP
        ):
            queued(data, component)
            return
        try:
            deliver(srtp.unprotect(data))
        except pylibsrtp.Error:
            return
        except Exception:
            logger.exception("forwarding an RTP packet failed")

    connection.data_received = data_received  # type: ignore[method-assign]


def simulate_inbound_loss(dtls: RTCDtlsTransport, rate: float, on_drop: Callable[[], None]) -> None:
    """Test hook: drops a fraction of incoming SRTP (not SRTCP) datagrams before
    decryption, like a lossy network. Dropping after decryption would be wrong: SRTP
    replay protection would then reject the publisher's retransmissions."""
    ice = dtls.transport
    recv = ice._recv

    async def lossy_recv() -> bytes:
        while True:
            data: bytes = await recv()
            if (
                len(data) > 1
                and 127 < data[0] < 192
                and not 192 <= data[1] <= 223
                and random.random() < rate
            ):
                on_drop()
                continue
            return data

    ice._recv = lossy_recv


def mute_receiver(receiver: RTCRtpReceiver, on_rtcp: Callable[[AnyRtcpPacket], None]) -> None:
    """Makes sure receiver never feeds its jitter buffer and decoder; RTCP to on_rtcp."""

    async def drop_rtp(packet: RtpPacket, arrival_time_ms: int) -> None:
        return None

    async def handle_rtcp(packet: AnyRtcpPacket) -> None:
        on_rtcp(packet)

    receiver._handle_rtp_packet = drop_rtp  # type: ignore[method-assign]
    receiver._handle_rtcp_packet = handle_rtcp  # type: ignore[method-assign]


def receiver_rtcp_ssrc(transceiver: RTCRtpTransceiver) -> int:
    """The SSRC aiortc's receiver puts in its own RTCP (the transceiver's sender's)."""
    return int(transceiver.sender._ssrc)


def writer_for(transceiver: RTCRtpTransceiver) -> RtpWriter:
    return RtpWriter(transceiver.receiver.transport)


def dtls_of(transceiver: RTCRtpTransceiver) -> RTCDtlsTransport:
    return transceiver.receiver.transport


# --- SDP, checked before aiortc applies it (sfu/sdpcheck.py) ------------------------


def parse_sdp(text: str) -> Any:
    """aiortc's own reading of a session description (an aiortc.sdp.SessionDescription);
    raises whatever its parser raises on text it cannot read."""
    return aiortc.sdp.SessionDescription.parse(text)


def can_negotiate(kind: str, codecs: list[RTCRtpCodecParameters]) -> bool:
    """Whether setRemoteDescription finds a codec in common for an m-line of kind with
    these codecs (it raises OperationError half-way through the SDP otherwise)."""
    local = aiortc.codecs.CODECS.get(kind, [])
    return bool(aiortc.rtcpeerconnection.find_common_codecs(local, codecs))


# --- background tasks aiortc starts and never awaits ---------------------------------

_CONNECT = "RTCPeerConnection.__connect"


async def applying(pc: RTCPeerConnection, call: Awaitable[None]) -> None:
    """Awaits pc.setRemoteDescription / setLocalDescription (call) and adopts the
    connect task aiortc starts inside it (`asyncio.ensure_future(self.__connect())`,
    whose exception nobody retrieves): an ICE or DTLS failure of one client is logged
    as one line, not as "Task exception was never retrieved" with a traceback."""
    before = asyncio.all_tasks()
    try:
        await call
    finally:
        for task in asyncio.all_tasks() - before:
            coro = task.get_coro()
            frame = getattr(coro, "cr_frame", None)
            if (
                getattr(coro, "__qualname__", "") == _CONNECT
                and frame is not None
                and frame.f_locals.get("self") is pc
            ):
                task.add_done_callback(_connect_done)


def _connect_done(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        logger.info("a media connection did not come up: %s", type(exc).__name__)
