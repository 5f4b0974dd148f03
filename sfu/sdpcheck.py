"""What the SFU accepts as a session description, checked before aiortc sees it.

aiortc's parser reads almost any text, and what it does not refuse at
setRemoteDescription it may trip over later, in a background task nobody awaits: an
offer without `a=fingerprint` is answered and then its DTLS start fails; plain
`RTP/AVP` or port 0 likewise. So every up offer and down answer is parsed and checked
here first, and anything the SFU cannot use is a BadSdp (`bad_sdp`) that leaves the
peer connection untouched. Once an SDP has passed, a failure inside aiortc is the
SFU's own fault and is reported as internal, never as `bad_sdp`.

Rules (each a sentence in the BadSdp message, which is logged at debug level only):

- text of at most MAX_SDP_LENGTH characters, `v=0` first, every line `<letter>=...`
  without control characters, parsable by aiortc;
- between 1 and MAX_SECTIONS m-lines (MAX_UP_SECTIONS in an up offer), each
  `audio` or `video` on a non-zero port, with profile UDP/TLS/RTP/SAVPF (or SAVP), at
  least one codec aiortc can negotiate, `a=rtcp-mux`, a unique `a=mid` token, ICE
  credentials of RFC 8839 form, DTLS fingerprints (every one well-formed, of a digest
  aiortc verifies: sha-256, -384 or -512) and a valid `a=setup`
  (`actpass`, `active` or `passive` in an offer; `active` or `passive` in an answer);
- port 0 only in an offer, on an m-line marked `a=bundle-only` inside a BUNDLE group
  whose first m-line has a port (Firefox offers so under bundlePolicy max-bundle,
  RFC 8843 section 7.2.1 / JSEP); aiortc carries it on the group's transport;
- a BUNDLE group names only mids that exist;
- an up offer has an m-line of the announced kind for every announced track, and
  that m-line sends (`sendonly` or `sendrecv`);
- a down answer has the offer's m-lines in the offer's order and only receives
  (`recvonly` or `inactive`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sfu import aiortc_private as private
from sfu.conn import TrackInfo
from sfu.errors import BadSdp

MAX_SDP_LENGTH = 100_000
"""Characters; a browser's offer for three tracks is about 6,000."""
MAX_SECTIONS = 1024
"""m-lines of any SDP (a down connection keeps retired m-lines, so answers grow)."""
MAX_UP_SECTIONS = 16
"""m-lines of an up offer (a browser publishes at most mic, camera and screen)."""
PROFILES = ("UDP/TLS/RTP/SAVPF", "UDP/TLS/RTP/SAVP")
FINGERPRINT_BYTES = {"sha-256": 32, "sha-384": 48, "sha-512": 64}
"""The digests aiortc can verify, and their length."""
OFFER_ROLES = ("auto", "client", "server")
"""aiortc's names for a=setup:actpass, active and passive."""
ANSWER_ROLES = ("client", "server")
SENDING = ("sendonly", "sendrecv")
RECEIVING = ("recvonly", "inactive")

_LINE = re.compile(r"[a-z]=[^\x00-\x08\x0a-\x1f\x7f]*")
_MID = re.compile(r"[A-Za-z0-9_.\-]{1,32}")
_UFRAG = re.compile(r"[A-Za-z0-9+/]{4,256}")
_PWD = re.compile(r"[A-Za-z0-9+/]{22,256}")
_HEX_PAIRS = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2})*")


def check_up_offer(sdp: object, tracks: Sequence[TrackInfo]) -> None:
    """Raises BadSdp unless sdp is an offer the SFU can answer for tracks."""
    description = _parse(sdp)
    sections = description.media
    if len(sections) > MAX_UP_SECTIONS:
        raise BadSdp("too many m-lines in an up offer")
    _check_sections(sections, OFFER_ROLES, _bundle_only(str(sdp), description))
    by_mid = {m.rtp.muxId: m for m in sections}
    for info in tracks:
        section = by_mid.get(info.mid)
        if section is None or section.kind != info.kind:
            raise BadSdp(f"no {info.kind} m-line with an announced mid")
        if (section.direction or "sendrecv") not in SENDING:
            raise BadSdp("an announced track's m-line does not send")


def check_down_answer(sdp: object, offered: Sequence[tuple[str, str]]) -> None:
    """Raises BadSdp unless sdp answers the down offer whose m-lines were offered,
    as (kind, mid) in order."""
    description = _parse(sdp)
    sections = description.media
    _check_sections(sections, ANSWER_ROLES)
    if [(m.kind, m.rtp.muxId) for m in sections] != list(offered):
        raise BadSdp("the answer's m-lines do not match the offer")
    for section in sections:
        if (section.direction or "sendrecv") not in RECEIVING:
            raise BadSdp("a down answer must only receive")


def _parse(sdp: object) -> Any:
    if not isinstance(sdp, str) or not sdp or len(sdp) > MAX_SDP_LENGTH:
        raise BadSdp("SDP missing or too long")
    lines = sdp.splitlines()
    if not lines or lines[0] != "v=0":
        raise BadSdp("not a session description")
    for line in lines:
        if line and not _LINE.fullmatch(line):
            raise BadSdp("a line is not of the form <letter>=<value>")
    try:
        description = private.parse_sdp(sdp)
    except Exception:  # aiortc's parser fails with asserts, KeyError, ValueError, ...
        raise BadSdp("unreadable session description") from None
    if not description.media:
        raise BadSdp("no m-line")
    if len(description.media) > MAX_SECTIONS:
        raise BadSdp("too many m-lines")
    mids = {m.rtp.muxId for m in description.media}
    for group in description.group:
        if group.semantic == "BUNDLE" and not set(map(str, group.items)) <= mids:
            raise BadSdp("BUNDLE names a mid that is not there")
    return description


def _bundle_only(sdp: str, description: Any) -> frozenset[str]:
    """The mids that may have port 0 in an offer: their section says `a=bundle-only`
    and they are in a BUNDLE group whose first (tagged) m-line has a real port."""
    marked: set[str] = set()
    for section in sdp.split("\nm=")[1:]:
        lines = [line.strip() for line in section.splitlines()]
        if "a=bundle-only" in lines:
            marked.update(line[len("a=mid:") :] for line in lines if line.startswith("a=mid:"))
    ports = {m.rtp.muxId: m.port for m in description.media}
    allowed: set[str] = set()
    for group in description.group:
        items = [str(item) for item in group.items]
        if group.semantic == "BUNDLE" and items and 0 < ports.get(items[0], 0) < 65536:
            allowed |= marked & set(items[1:])
    return frozenset(allowed)


def _check_sections(
    sections: Sequence[Any], roles: Sequence[str], bundle_only: frozenset[str] = frozenset()
) -> None:
    mids: set[str] = set()
    for m in sections:
        if m.kind not in ("audio", "video"):
            raise BadSdp("only audio and video m-lines")
        if m.port == 0 and m.rtp.muxId in bundle_only:
            pass  # carried on the BUNDLE group's transport
        elif not 0 < m.port < 65536:
            raise BadSdp("an m-line with port 0 (rejected) or out of range")
        if m.profile not in PROFILES:
            raise BadSdp("media must be DTLS-SRTP (UDP/TLS/RTP/SAVPF)")
        if not private.can_negotiate(m.kind, m.rtp.codecs):
            raise BadSdp("an m-line without a codec the server knows")
        if not m.rtcp_mux:
            raise BadSdp("an m-line without a=rtcp-mux")
        mid = m.rtp.muxId
        if not isinstance(mid, str) or not _MID.fullmatch(mid):
            raise BadSdp("an m-line without a valid a=mid")
        if mid in mids:
            raise BadSdp("duplicate mid")
        mids.add(mid)
        ice = m.ice
        if not _UFRAG.fullmatch(ice.usernameFragment or "") or not _PWD.fullmatch(
            ice.password or ""
        ):
            raise BadSdp("missing or malformed a=ice-ufrag / a=ice-pwd")
        dtls = m.dtls
        if dtls is None or dtls.role not in roles:
            raise BadSdp("missing or wrong a=setup")
        prints = dtls.fingerprints
        if not prints or not all(_fingerprint_ok(f.algorithm, f.value) for f in prints):
            raise BadSdp("missing or malformed a=fingerprint")


def _fingerprint_ok(algorithm: str, value: str) -> bool:
    size = FINGERPRINT_BYTES.get(str(algorithm).lower())
    return (
        size is not None
        and _HEX_PAIRS.fullmatch(str(value)) is not None
        and len(value) == 3 * size - 1
    )
