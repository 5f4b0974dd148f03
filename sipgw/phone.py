"""pjsua2 `Account`, `Call` and `AudioMediaPort` subclasses: the SIP side of one phone call.

Everything here runs on the pjsip thread (see `sipgw.endpoint`), except the audio
port's frame callbacks, which pjmedia's clock thread calls every 20 ms. Events go to
asyncio through `PhoneEvents`, whose methods the gateway schedules with
`call_soon_threadsafe`; nothing here blocks or waits for asyncio.

Policy that must be decided before a call is answered lives here too, because it has
to happen on the pjsip thread: the source-address allow-list (403), the call limit
(486), and refusing REFER, replaces and redirects (the gateway is inbound only and
never originates or transfers a call).

Behind Kamailio (`sipgw.kamailio`), every INVITE comes from the edge's address; the
caller's own address is in the edge's `X-Kreis-Source` header, which a backend believes
only in messages from `FRONT_ADDRESS` (or a remote edge's `[sip] edge_address`).
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pjsua2 as pj

from sipgw.audio import FRAME_SAMPLES, CallAudio
from sipgw.config import FRONT_ADDRESS
from sipgw.endpoint import CLOCK_RATE, PTIME_MS, PjsipThread, mask

log = logging.getLogger(__name__)

_URI_USER = re.compile(r"sips?:([^@;>]+)@", re.I)
_TEL = re.compile(r"tel:([^;>]+)", re.I)
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_SOURCE_HEADER = re.compile(r"^X-Kreis-Source[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$", re.I | re.M)
_TLS_HEADER = re.compile(r"^X-Kreis-Tls[ \t]*:[ \t]*1[ \t]*\r?$", re.I | re.M)
_CRYPTO = re.compile(r"^a=crypto:", re.I | re.M)


@dataclass(frozen=True)
class IncomingCall:
    """What the asyncio side learns about a new, answered call."""

    call_key: int
    """The gateway's own id of the call (not the SIP Call-ID)."""
    caller_digits: str
    """Digits of the caller's number, empty when anonymous; never logged."""
    source_ip: str
    """The address the INVITE came from; never logged."""
    called_user: str
    """The user part of the request URI (the dialled number at a trunk); never logged."""
    fingerprint: str = ""
    """What the caller's phone says about itself (User-Agent, From host): with a
    withheld number, part of its lockout key; never logged."""


class PhoneEvents(Protocol):
    """The asyncio side of the calls; every method is called on the event loop."""

    def call_started(self, incoming: IncomingCall, audio: CallAudio) -> None: ...

    def call_ended(self, call_key: int) -> None: ...

    def dtmf(self, call_key: int, digit: str) -> None: ...


def caller_digits(remote_uri: str) -> str:
    """The digits of the caller's number in a From/remote URI ('' when none)."""
    match = _URI_USER.search(remote_uri) or _TEL.search(remote_uri)
    if not match:
        return ""
    return "".join(ch for ch in match.group(1) if ch.isdigit())


def header_values(message: str, *names: str) -> list[str]:
    """The values of the headers `names` (long or compact form) in a SIP message's
    head, continuation lines unfolded."""
    head = re.split(r"\r?\n\r?\n", message, maxsplit=1)[0]
    head = re.sub(r"\r?\n[ \t]+", " ", head)
    wanted = {n.lower() for n in names}
    values = []
    for line in head.splitlines()[1:]:
        name, colon, value = line.partition(":")
        if colon and name.strip().lower() in wanted:
            values.append(value.strip())
    return values


def header_uri(value: str) -> str:
    """The URI of a name-addr or addr-spec header value: the display name (which may
    hold anything, `<` and digits included) is skipped, never read."""
    value = _QUOTED.sub("", value)
    if "<" in value:
        return value[value.find("<") + 1 :].split(">", 1)[0]
    return value.split(";", 1)[0].strip()


def caller_number(message: str, trust_asserted: bool) -> str:
    """The caller's digits from the parsed INVITE: its P-Asserted-Identity when it came
    from a trusted trunk, else its From URI ('' when withheld). Never from a display
    name, and never from pjsua's `remoteUri`, which a long display name cuts off."""
    if trust_asserted:
        for value in header_values(message, "P-Asserted-Identity"):
            for part in value.split(","):
                digits = caller_digits(header_uri(part))
                if digits:
                    return digits
    for value in header_values(message, "From", "f")[:1]:
        return caller_digits(header_uri(value))
    return ""


def call_fingerprint(message: str) -> str:
    """What the calling phone says about itself, for a withheld caller's lockout key."""
    agent = " ".join(header_values(message, "User-Agent"))[:200]
    sender = next(iter(header_values(message, "From", "f")), "")
    host = header_uri(sender).rsplit("@", 1)[-1]
    return f"{agent}\0{host}"


def source_ip(src_address: str) -> str:
    """`1.2.3.4:5060` or `[::1]:5060` → the bare address."""
    if src_address.startswith("["):
        return src_address[1 : src_address.find("]")]
    return src_address.rsplit(":", 1)[0] if src_address.count(":") == 1 else src_address


def trusted_source(
    packet_source: str, message: str, behind_front: bool, edge_address: str = ""
) -> str:
    """The caller's address: the packet's source, or behind the edge its header.

    A backend (`behind_front`) takes `X-Kreis-Source` from a message sent by
    `FRONT_ADDRESS` (or by `edge_address`, a Kamailio on another machine) only; a
    message from the edge without a valid one yields "" (an address no allow-list
    contains). A lone gateway never reads the header.
    """
    edges = {FRONT_ADDRESS, edge_address} if edge_address else {FRONT_ADDRESS}
    if not (behind_front or edge_address) or packet_source not in edges:
        return packet_source
    head = re.split(r"\r?\n\r?\n", message, maxsplit=1)[0]
    found = _SOURCE_HEADER.findall(head)
    if len(found) != 1:
        return ""
    try:
        return str(ipaddress.ip_address(found[0].strip()))
    except ValueError:
        return ""


def over_tls(packet_source: str, message: str, behind_front: bool, edge_address: str = "") -> bool:
    """True if the edge says the caller's signalling came over TLS (`X-Kreis-Tls`,
    believed from the edge's address only, like `X-Kreis-Source`)."""
    edges = {FRONT_ADDRESS, edge_address} if edge_address else {FRONT_ADDRESS}
    if not (behind_front or edge_address) or packet_source not in edges:
        return False
    head = re.split(r"\r?\n\r?\n", message, maxsplit=1)[0]
    return bool(_TLS_HEADER.search(head))


def offers_srtp(message: str) -> bool:
    """True if the INVITE's SDP offers SDES keys (`a=crypto`) for its media."""
    parts = re.split(r"\r?\n\r?\n", message, maxsplit=1)
    return len(parts) == 2 and bool(_CRYPTO.search(parts[1]))


class CallPort(pj.AudioMediaPort):  # type: ignore[misc]
    """PCM in and out of one call at 16 kHz, mono, 20 ms frames, via `CallAudio`."""

    def __init__(self, audio: CallAudio) -> None:
        super().__init__()
        self.audio = audio

    def create(self, name: str) -> None:
        fmt = pj.MediaFormatAudio()
        fmt.type = pj.PJMEDIA_TYPE_AUDIO
        fmt.clockRate = CLOCK_RATE
        fmt.channelCount = 1
        fmt.bitsPerSample = 16
        fmt.frameTimeUsec = PTIME_MS * 1000
        self.createPort(name, fmt)

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        frame.buf = pj.ByteVector(self.audio.next_frame())
        frame.size = FRAME_SAMPLES * 2

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        if frame.type != pj.PJMEDIA_FRAME_TYPE_AUDIO or frame.size == 0:
            return
        if not self.audio.wants_caller_audio():
            return
        pcm = np.frombuffer(bytes(frame.buf), dtype="<i2")
        self.audio.caller_frame(pcm)


class GatewayCall(pj.Call):  # type: ignore[misc]
    """One inbound phone call."""

    def __init__(self, account: GatewayAccount, call_id: int, key: int) -> None:
        super().__init__(account, call_id)
        account.pjsip.track(self)
        self.account = account
        self.key = key
        self.audio = CallAudio()
        self.port: CallPort | None = None
        self.audio_index: int | None = None
        """Index of the audio stream once it is up (getInfo() read outside the media
        callback does not tell the media types reliably)."""
        self.ended = False

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED and not self.ended:
            self.ended = True
            self.audio.close()
            self.account.call_ended(self)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        info = self.getInfo()
        for index, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            if media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            try:
                stream = self.getAudioMedia(index)
                if self.port is None:
                    port = CallPort(self.audio)
                    self.account.pjsip.track(port)
                    self.port = port
                    port.create(f"call{self.key}")
                stream.startTransmit(self.port)
                self.port.startTransmit(stream)
                self.audio_index = index
            except pj.Error:
                # No audio path for this call (e.g. bridge full): end it, cleanly.
                log.warning("could not connect a call's audio; hanging up")
                self.account.pjsip.later(lambda: self.hangup_with(503))
            return

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        # Called for RFC 4733 events and for SIP INFO (application/dtmf-relay) alike.
        digit = str(prm.digit)[:1]
        if digit and digit in "0123456789*#ABCD":
            # Capture plain values only: the asyncio side must never hold (and so
            # never free) a pjsua2 object, which would run its destructor off-thread.
            events, key = self.account.events, self.key
            self.account.post(lambda: events.dtmf(key, digit))

    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:
        log.info("refused a REFER (the gateway never transfers calls)")
        prm.statusCode = 603

    def onCallReplaceRequest(self, prm: pj.OnCallReplaceRequestParam) -> None:
        log.info("refused an INVITE with Replaces")
        prm.statusCode = 403

    def onCallRedirected(self, prm: pj.OnCallRedirectedParam) -> int:
        return int(pj.PJSIP_REDIRECT_REJECT)

    def rtp_received(self) -> int | None:
        """RTP packets received on the call's audio stream, None before its audio is
        up or after the call ended (pjsip thread)."""
        if self.ended or self.port is None or self.audio_index is None:
            return None
        try:
            return int(self.getStreamStat(self.audio_index).rtcp.rxStat.pkt)
        except pj.Error:
            return None

    def hangup_with(self, code: int = 200) -> None:
        """Ends the call (or rejects it with `code` before it is answered)."""
        if self.ended or not self.isActive():
            return
        op = pj.CallOpParam()
        op.statusCode = code
        try:
            self.hangup(op)
        except pj.Error:
            log.debug("hangup of an already ended call")


class GatewayAccount(pj.Account):  # type: ignore[misc]
    """The gateway's SIP identity; answers allowed INVITEs and rejects the rest."""

    def __init__(
        self,
        pjsip: PjsipThread,
        events: PhoneEvents,
        post: Callable[[Callable[[], None]], None],
        max_calls: int,
    ) -> None:
        super().__init__()
        pjsip.track(self)
        self.pjsip = pjsip
        self.events = events
        self.post = post
        """Schedules a callable on the asyncio loop (`loop.call_soon_threadsafe`)."""
        self.max_calls = max_calls
        self.calls: dict[int, GatewayCall] = {}

    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        # pjsip's own line about it is masked down to "status=<n>", which cannot tell a
        # wrong password (401/403) from a trunk that is down (5xx): say it plainly here.
        code = int(prm.code)
        if 200 <= code < 300 and int(prm.expiration) > 0:
            log.info("trunk registration ok (%d, expires in %d s)", code, prm.expiration)
        elif 200 <= code < 300:
            log.info("trunk registration ended (%d)", code)
        else:
            log.warning("trunk registration failed: %d %s", code, mask(str(prm.reason)))

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        key = self.pjsip.next_call_key()
        call = GatewayCall(self, prm.callId, key)
        try:
            self._take(call, key, prm)
        except Exception:
            # An exception must not drop the object inside this callback (see
            # `_reject`), nor leave a half-taken call holding a slot.
            log.exception("an incoming call could not be taken (500)")
            self.calls.pop(key, None)
            if not call.ended:
                self._reject(call, 500)

    def _take(self, call: GatewayCall, key: int, prm: pj.OnIncomingCallParam) -> None:
        invite = str(prm.rdata.wholeMsg)
        src = trusted_source(
            source_ip(str(prm.rdata.srcAddress)),
            invite,
            self.pjsip.role is not None,
            self.pjsip.config.edge_address,
        )
        if not self.pjsip.config.allows(src):
            log.warning("rejected a call from an address outside allow_from (403)")
            self._reject(call, 403)
            return
        packet_source = source_ip(str(prm.rdata.srcAddress))
        behind = self.pjsip.role is not None
        edge = self.pjsip.config.edge_address
        if over_tls(packet_source, invite, behind, edge) and not offers_srtp(invite):
            # Signalling over TLS but the voice in clear: refused (SDES keys or nothing).
            log.warning("rejected a TLS call without SRTP keys in its offer (488)")
            self._reject(call, 488)
            return
        if len(self.calls) >= self.max_calls:
            log.warning("rejected a call: %d calls already (486)", len(self.calls))
            self._reject(call, 486)
            return
        info = call.getInfo()
        called = _URI_USER.search(str(info.localUri))
        incoming = IncomingCall(
            call_key=key,
            caller_digits=caller_number(invite, self.pjsip.config.asserts_identity(src)),
            source_ip=src,
            called_user=called.group(1) if called else "",
            fingerprint=call_fingerprint(invite),
        )
        self.calls[key] = call
        # Ringing while the server's lockout decides: `answer(200)` for a caller who
        # may try, `answer(183)` (early media: why not) and a 403 for a locked one.
        op = pj.CallOpParam()
        op.statusCode = 180
        try:
            call.answer(op)
        except pj.Error:
            # Dropping the object here would hang up from inside the callback (see
            # `_reject`): end the call on the next turn like any refused one.
            log.warning("ringing a call failed")
            self.calls.pop(key, None)
            self._reject(call, 500)
            return
        events, audio = self.events, call.audio
        self.post(lambda: events.call_started(incoming, audio))

    def _reject(self, call: GatewayCall, code: int) -> None:
        # Not inside onIncomingCall: pjsua still holds the cloned INVITE there, and a
        # hangup from the callback can free it twice (an assertion in pjsip under
        # floods). Reject on the next turn of the pjsip thread instead.
        call.ended = True
        self.pjsip.keep.append(call)
        self.pjsip.later(lambda: self._send_reject(call, code))

    def _send_reject(self, call: GatewayCall, code: int) -> None:
        op = pj.CallOpParam()
        op.statusCode = code
        try:
            call.hangup(op)
        except pj.Error:
            log.debug("reject failed")
        # Keep the object until pjsip is done with it.
        self.pjsip.retire(call, 5.0)
        self.pjsip.keep.remove(call)

    def hangup(self, key: int, code: int = 200) -> None:
        """Ends the call `key` if it is still up (on the pjsip thread); an unanswered
        one gets `code` as its final answer."""
        call = self.calls.get(key)
        if call is not None:
            call.hangup_with(code)

    def answer(self, key: int, code: int = 200) -> None:
        """Answers the ringing call `key`: 200, or 183 for early media (pjsip thread)."""
        call = self.calls.get(key)
        if call is None or call.ended:
            return
        op = pj.CallOpParam()
        op.statusCode = code
        try:
            call.answer(op)
        except pj.Error:
            log.warning("answering a call failed")

    def call_ended(self, call: GatewayCall) -> None:
        key, events = call.key, self.events
        self.post(lambda: events.call_ended(key))
        # pjsua2 objects must not be freed inside their own callback: drop it next turn.
        self.pjsip.later(lambda: self._forget(key))

    def _forget(self, key: int) -> None:
        call = self.calls.pop(key, None)
        if call is None:
            return
        if call.port is not None:
            # The bridge may still pull a frame from it: free the port only later.
            self.pjsip.retire(call.port)
            call.port = None
        self.pjsip.drop_call(call)
