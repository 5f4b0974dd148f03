"""Every use of pjproject's C functions that pjsua2 does not wrap, in one place.

The pjsua2-python wheel (2.15.1) exports the whole of pjproject from its extension
module, so a C function that pjsua2 leaves out can be called through ctypes. Each one
used here is named in `NEEDED`; `tests/sipgw/test_units.py` fails by name when a new
wheel drops one.

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

NEEDED = ("pjmedia_codec_g722_set_pcm_shift",)


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
