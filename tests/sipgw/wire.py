"""What crosses loopback, seen from below: a raw packet capture for the SRTP checks.

`LoopbackCapture` reads every frame on `lo` (an AF_PACKET socket; the tests run as root
in their own network namespace) on a thread and keeps the UDP payloads to or from a
set of ports. `clear_tone` then decodes RTP payloads as the codec they claim (G.722 or
G.711) and measures a known tone in them: clear RTP of a phone sending 440 Hz shows
it plainly, SRTP decodes to noise.
"""

from __future__ import annotations

import socket
import struct
import threading

import av
import numpy as np

from tests.sipgw.phones import tone_level, tone_ratio

ETH_P_ALL = 0x0003
CODECS = {0: ("pcm_mulaw", 8000), 8: ("pcm_alaw", 8000), 9: ("g722", 16000)}


class LoopbackCapture:
    """UDP datagrams on `lo` with a source or destination port in `ports`."""

    def __init__(self, ports: range) -> None:
        self.ports = ports
        self.packets: list[tuple[int, int, bytes]] = []
        """(source port, destination port, UDP payload)."""
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._sock.bind(("lo", 0))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, addr = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            if addr[2] == socket.PACKET_OUTGOING:
                continue  # every loopback frame is seen twice
            ip = frame[14:]
            if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
                continue
            header = (ip[0] & 0x0F) * 4
            sport, dport = struct.unpack("!HH", ip[header : header + 4])
            if sport in self.ports or dport in self.ports:
                self.packets.append((sport, dport, bytes(ip[header + 8 :])))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def rtp_from(self, ports: range) -> list[bytes]:
        return [p for s, _, p in self.packets if s in ports and len(p) > 12 and p[0] >> 6 == 2]

    def rtp_to(self, ports: range) -> list[bytes]:
        return [p for _, d, p in self.packets if d in ports and len(p) > 12 and p[0] >> 6 == 2]


def payload(packet: bytes) -> tuple[int, bytes]:
    """(payload type, payload) of an RTP packet (CSRCs and header extension skipped)."""
    start = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10 and len(packet) >= start + 4:
        start += 4 + 4 * struct.unpack("!H", packet[start + 2 : start + 4])[0]
    return packet[1] & 0x7F, packet[start:]


def clear_tone(packets: list[bytes], hz: float) -> tuple[float, float, int]:
    """Decodes the packets' payloads as their payload type says and measures `hz`:
    (level, ratio, packets decoded)."""
    by_type: dict[int, list[bytes]] = {}
    for packet in packets:
        kind, data = payload(packet)
        if kind in CODECS:
            by_type.setdefault(kind, []).append(data)
    if not by_type:
        return 0.0, 0.0, 0
    kind, datas = max(by_type.items(), key=lambda item: len(item[1]))
    name, rate = CODECS[kind]
    codec = av.CodecContext.create(name, "r")
    codec.sample_rate = rate
    codec.layout = "mono"
    pcm: list[np.ndarray] = []
    for data in datas:
        try:
            for frame in codec.decode(av.Packet(data)):
                pcm.append(frame.to_ndarray().reshape(-1).astype(np.int16))
        except av.error.FFmpegError:
            continue
    if not pcm:  # nothing decodes at all: whatever it is, it is not clear audio
        return 0.0, 0.0, len(datas)
    audio = np.concatenate(pcm)
    return tone_level(audio, hz, rate), tone_ratio(audio, hz, rate), len(datas)
