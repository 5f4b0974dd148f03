"""Every use of pjproject's C functions that pjsua2 does not wrap, in one place.

The pjsua2-python wheel (2.15.1) exports the whole of pjproject from its extension
module, so a C function that pjsua2 leaves out can be called through ctypes. Each one
used here is named in `NEEDED`; `tests/sipgw/test_units.py` fails by name when a new
wheel drops one.

Allow: pjsua registers modules for MESSAGE, SUBSCRIBE, NOTIFY and REFER and lists them
in every Allow header, though the gateway refuses or ignores them. `allow_only` cuts the
endpoint's Allow capability (which every answer copies) down to what is handled, in
place: pjsip has no call to remove a capability. Its layout (pjsip_generic_array_hdr)
is mirrored below and checked by reading the list before it is changed.

G.722 level: pjmedia's G.722 codec divides what it encodes by 4 and multiplies what it
decodes by 4 (`PJMEDIA_G722_DEFAULT_PCM_SHIFT` = 2, for the standard's 14-bit samples).
spandsp's G.722 (in baresip, Asterisk and FreeSWITCH) shifts by 1 bit instead. Against
baresip the phone then heard the room 7.3 dB too quietly and the room heard the phone
4.8 dB too loud (with shift 0: +4.6 and -7.2 dB). With a shift of 1 both ways are
within 1.3 dB (`tests/sipgw/test_room_audio.py` prints and bounds them). G.711 has no
such shift.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import pjsua2 as pj

NEEDED = (
    "pjmedia_codec_g722_set_pcm_shift",
    "pjsua_get_pjsip_endpt",
    "pjsip_endpt_get_capability",
)

PJSIP_H_ALLOW = 4
"""`pjsip_hdr_e`: the Allow header's type (pjsip/sip_msg.h, fixed by pjsip)."""
HANDLED = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "UPDATE", "PRACK")
"""Methods the gateway handles: calls, DTMF by INFO, session timers (UPDATE), 100rel."""


def library() -> ctypes.CDLL:
    """pjsua2's extension module (already loaded: this finds the same handle)."""
    module = pj._pjsua2
    return ctypes.CDLL(str(Path(module.__file__)))


def set_g722_pcm_shift(shift: int) -> None:
    """Sets G.722's level shift for codecs opened from now on (call after libStart)."""
    function = library().pjmedia_codec_g722_set_pcm_shift
    function.argtypes = [ctypes.c_uint]
    function.restype = ctypes.c_int
    status = function(shift)
    if status != 0:
        raise RuntimeError(f"pjmedia_codec_g722_set_pcm_shift failed: {status}")


class _PjStr(ctypes.Structure):
    """pj_str_t: a pointer into pjsip's own memory and a length (no NUL promised)."""

    _fields_ = [("ptr", ctypes.c_void_p), ("slen", ctypes.c_ssize_t)]

    def text(self) -> str:
        return ctypes.string_at(self.ptr, self.slen).decode("ascii") if self.ptr else ""


class _ArrayHeader(ctypes.Structure):
    """pjsip_generic_array_hdr (PJSIP_DECL_HDR_MEMBER, count, values[32])."""

    _fields_ = [
        ("prev", ctypes.c_void_p),
        ("next", ctypes.c_void_p),
        ("type", ctypes.c_int),
        ("name", _PjStr),
        ("sname", _PjStr),
        ("vptr", ctypes.c_void_p),
        ("count", ctypes.c_uint),
        ("values", _PjStr * 32),
    ]


def allowed_methods() -> list[str]:
    """The endpoint's Allow list now (call on the pjsip thread, after libStart)."""
    header = _allow_header()
    return [header.values[i].text() for i in range(header.count)]


def allow_only(methods: tuple[str, ...] = HANDLED) -> list[str]:
    """Leaves only `methods` (those the endpoint lists) in its Allow capability; returns
    the new list (call on the pjsip thread, after libStart, before any call)."""
    header = _allow_header()
    before = allowed_methods()
    if "INVITE" not in before or header.name.text() != "Allow":
        raise RuntimeError(f"pjsip's Allow capability is not as expected: {before}")
    # Only pjsip's own pointers move (the strings stay where pjsip put them).
    kept = [
        (header.values[i].ptr, header.values[i].slen)
        for i in range(header.count)
        if before[i] in methods
    ]
    for i, (ptr, slen) in enumerate(kept):
        header.values[i].ptr = ptr
        header.values[i].slen = slen
    header.count = len(kept)
    return allowed_methods()


def _allow_header() -> _ArrayHeader:
    lib = library()
    endpoint = lib.pjsua_get_pjsip_endpt
    endpoint.restype = ctypes.c_void_p
    endpoint.argtypes = []
    capability = lib.pjsip_endpt_get_capability
    capability.restype = ctypes.POINTER(_ArrayHeader)
    capability.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    found = capability(endpoint(), PJSIP_H_ALLOW, None)
    if not found:
        raise RuntimeError("pjsip has no Allow capability")
    header: _ArrayHeader = found.contents
    if header.type != PJSIP_H_ALLOW or not 0 < header.count <= 32:
        raise RuntimeError("pjsip's Allow capability is not as expected")
    return header
