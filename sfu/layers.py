"""VP8 temporal layers: less video for a weak link, without decoding anything.

A publisher's browser encodes its camera with three temporal layers (scalabilityMode
L1T3): layer 0 is every fourth frame and depends only on layer 0, layer 1 adds every
other frame, layer 2 the rest. Leaving out layers 2 (and 1) gives a subscriber half (a
quarter) of the frame rate for roughly 60 % (40 %) of the bits, at the same picture
size. The layer of each packet is in the VP8 payload descriptor (RFC 7741), which the
browser writes outside the encoded frame, so it stays in clear under E2EE.

A receiver must not notice frames that were left out: sequence numbers stay
continuous, and so do picture ids (Chromium holds back a frame while an earlier picture
id is missing, which would stop every layer-1 frame). `LayerGate` does this for one
down-track. Fewer layers take effect at the next frame; more layers wait for a keyframe
(a layer-1 frame refers to the previous layer-1 frame, which this receiver never got).
"""

from __future__ import annotations

from sfu.rtpheader import Vp8Info, seq_newer

TOP_LAYER = 2
"""The highest temporal layer id publishers send (L1T3)."""


def vp8_info(payload: bytes | memoryview) -> Vp8Info | None:
    """The VP8 payload descriptor's layer fields; None when it is too short."""
    n = len(payload)
    if n < 1:
        return None
    first = payload[0]
    begins = bool(first & 0x10) and not first & 0x07  # S, partition 0
    tid = pid = -1
    pid_at = mask = 0
    i = 1
    if first & 0x80:  # X
        if n < 2:
            return None
        ext = payload[1]
        i = 2
        if ext & 0x80:  # I: picture id
            if n <= i:
                return None
            if payload[i] & 0x80:
                if n <= i + 1:
                    return None
                pid = ((payload[i] & 0x7F) << 8) | payload[i + 1]
                pid_at, mask = i, 0x7FFF
                i += 2
            else:
                pid = payload[i]
                pid_at, mask = i, 0x7F
                i += 1
        if ext & 0x40:  # L: TL0PICIDX
            i += 1
        if ext & 0x20:  # T: TID (two bits), Y, KEYIDX
            if n <= i:
                return None
            tid = payload[i] >> 6
        if ext & 0x30:
            i += 1
    keyframe = begins and n > i and not payload[i] & 0x01
    return tid, pid, pid_at, mask, begins, keyframe


DROP_HISTORY = 64
"""Places where packets were left out, kept to number late (reordered) packets."""
PID_HISTORY = 64
"""Picture ids recently forwarded, with the id each was given."""


class LayerGate:
    """Which temporal layers one subscriber gets, with continuous numbering."""

    def __init__(self) -> None:
        self.layer = TOP_LAYER
        """Highest layer forwarded now."""
        self.wanted = TOP_LAYER
        """Highest layer the link is judged to carry (reached at a frame or keyframe)."""
        self.seq_shift = 0
        """Packets left out so far: subtract from the sequence numbers that follow."""
        self._top_seq: int | None = None
        self._drops: list[tuple[int, int]] = []
        """(sequence number left out, seq_shift before it), oldest first."""
        self._pid_shift = 0
        self._top_pid: int | None = None
        self._dropped_pid = -1
        self._pids: dict[int, int] = {}

    @property
    def active(self) -> bool:
        """False while nothing was ever left out: packets pass untouched."""
        return self.layer < TOP_LAYER or self.wanted != self.layer or self._pid_shift != 0

    def reset(self) -> None:
        """A new segment (another source, or after a pause): numbering starts afresh."""
        self._top_seq = None
        self._drops.clear()
        self.seq_shift = 0
        self._top_pid = None
        self._pids.clear()

    def admit(self, seq: int, info: Vp8Info) -> bool:
        """False when this packet's layer is left out (its number is then skipped)."""
        tid, pid, _, mask, begins, keyframe = info
        if begins and self.wanted != self.layer and (self.wanted < self.layer or keyframe):
            self.layer = self.wanted
        in_order = self._top_seq is None or seq_newer(seq, self._top_seq)
        if in_order:
            self._top_seq = seq
        if tid <= self.layer:
            return True
        if in_order:
            self._drops = [*self._drops[-(DROP_HISTORY - 1) :], (seq, self.seq_shift)]
            self.seq_shift += 1
            if pid >= 0 and pid != self._dropped_pid:
                if self._top_pid is None or ((pid - self._top_pid) & mask) < (mask + 1) // 2:
                    self._pid_shift += 1
                    self._top_pid = pid
                self._dropped_pid = pid
        return False

    def shift_for(self, seq: int) -> int:
        """How much to subtract from seq: fewer for a late packet from before a drop."""
        shift = self.seq_shift
        for dropped, before in reversed(self._drops):
            if not seq_newer(seq, dropped):
                shift = before
            else:
                break
        return shift

    def picture_id(self, pid: int, mask: int) -> int:
        """The picture id this subscriber sees for pid."""
        out = self._pids.get(pid)
        if out is None:
            out = (pid - self._pid_shift) & mask
            if len(self._pids) >= PID_HISTORY:
                del self._pids[next(iter(self._pids))]
            self._pids[pid] = out
            if self._top_pid is None or ((pid - self._top_pid) & mask) < (mask + 1) // 2:
                self._top_pid = pid
        return out

    def rewrite(self, packet: bytes, payload_offset: int, info: Vp8Info) -> bytes:
        """packet with the picture id this subscriber sees (packet itself if unchanged)."""
        _, pid, pid_at, mask, _, _ = info
        if pid < 0 or not self._pid_shift:
            return packet
        out = self.picture_id(pid, mask)
        if out == pid:
            return packet
        data = bytearray(packet)
        at = payload_offset + pid_at
        if mask == 0x7FFF:
            data[at] = 0x80 | (out >> 8)
            data[at + 1] = out & 0xFF
        else:
            data[at] = out
        return bytes(data)
