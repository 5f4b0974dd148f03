"""Real SIP peers for the gateway tests: baresip as a scripted phone, SIPp scenarios.

`BaresipPhone` runs Debian's baresip with its own config directory: the microphone is
a WAV file (`aufile`), the loudspeaker is nowhere (`aubridge`), and the `sndfile`
filter dumps what the phone sends and hears to WAV files that the tests analyse with
an FFT. Commands go in on stdin (`/dial`, digits typed during a call go out as RFC 4733
events, `/hangup`, `/quit`). Every process has a timeout and is killed in `stop()`.
Also here: SIPp runs and floods, scanners, and the FFT checks of what a side hears.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np

from tests.sipgw.sipp_scenarios import flood_call, write

RATE = 16000


def free_sip_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def write_tone(
    path: Path, hz: float, seconds: float = 60, level: float = 0.3, burst: float = 0.0
) -> Path:
    """A sine tone; with `burst`, only the first `burst` seconds of every second sound."""
    t = np.arange(int(seconds * RATE)) / RATE
    pcm = (np.sin(2 * np.pi * hz * t) * level * 32767).astype("<i2") if hz else np.zeros_like(t)
    if burst:
        pcm = np.where((t % 1.0) < burst, pcm, 0).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.asarray(pcm, dtype="<i2").tobytes())
    return path


def read_dump(path: Path) -> np.ndarray:
    """Samples of a baresip `sndfile` dump (tolerates a header not yet finalised)."""
    data = path.read_bytes()
    start = data.find(b"data")
    if start < 0:
        return np.zeros(0, dtype=np.int16)
    raw = data[start + 8 :]
    return np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.int16)


def tone_level(pcm: np.ndarray, hz: float, rate: int = RATE, width: float = 15.0) -> float:
    """RMS amplitude of `pcm` within ±`width` Hz of `hz` (from the FFT)."""
    if len(pcm) == 0:
        return 0.0
    x = pcm.astype(np.float64) * np.hanning(len(pcm))
    spectrum = np.abs(np.fft.rfft(x)) / (np.sum(np.hanning(len(pcm))) / 2)
    freqs = np.fft.rfftfreq(len(pcm), 1 / rate)
    band = (freqs > hz - width) & (freqs < hz + width)
    return float(np.sqrt(np.sum(spectrum[band] ** 2) / 2))


def prompt_match(heard: np.ndarray, prompt: np.ndarray) -> float:
    """How closely some stretch of `heard` matches `prompt`: the peak of their
    normalised cross-correlation (1.0 for the same samples; a codec round trip keeps a
    recorded prompt well above 0.5, another prompt or speech stays far below)."""
    x, t = heard.astype(np.float64), prompt.astype(np.float64)
    if len(x) < len(t) or not np.any(t):
        return 0.0
    n = 1 << int(np.ceil(np.log2(len(x) + len(t))))
    corr = np.fft.irfft(np.fft.rfft(x, n) * np.conj(np.fft.rfft(t, n)), n)[: len(x) - len(t) + 1]
    energy = np.concatenate([[0.0], np.cumsum(x**2)])
    window = np.sqrt(np.maximum(energy[len(t) :] - energy[: -len(t)], 1e-9))
    return float(np.max(corr / (window * np.linalg.norm(t))))


def tone_ratio(pcm: np.ndarray, hz: float, rate: int = RATE) -> float:
    """How much `hz` stands out of its neighbourhood: >10 for a steady tone, ~1 for speech."""
    near = tone_level(pcm, hz, rate, 10)
    around = np.sqrt(
        (tone_level(pcm, hz - 55, rate, 25) ** 2 + tone_level(pcm, hz + 55, rate, 25) ** 2) / 2
    )
    return near / max(around, 1.0)


class BaresipPhone:
    """One scripted baresip phone on 127.0.0.1."""

    def __init__(
        self,
        workdir: Path,
        number: str = "0301234547",
        tone_hz: float = 440,
        burst: float = 0.0,
        display_name: str = "",
        extra_config: str = "",
        account_params: str = "",
    ) -> None:
        """`display_name` goes into the From header; `extra_config` lines (e.g.
        `sip_cafile` for TLS) are appended to the phone's baresip config;
        `account_params` (e.g. `;mediaenc=srtp-mand`) to its account line."""
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rec = self.dir / "rec"
        self.rec.mkdir(exist_ok=True)
        self.port = free_sip_port()
        self.tone = write_tone(self.dir / "mic.wav", tone_hz, burst=burst)
        # Even: baresip (libre's rtp_listen) rounds its random pick down to an even
        # port, so an odd start would put RTP one below the range (1 call in 10) and
        # leave only RTCP where `rtp_ports` says.
        rtp = 10000 + (self.port % 20000) // 2 * 2
        self.rtp_ports = range(rtp, rtp + 11)
        """Where this phone's media comes from and goes to."""
        self._extra_config = extra_config
        display = f'"{display_name}" ' if display_name else ""
        self._account = (f"{display}<sip:{number}@127.0.0.1:", f">;regint=0{account_params}\n")
        self._write_config()
        self.log = self.dir / "baresip.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> None:
        """baresip's config and account, for the SIP port `self.port`."""
        (self.dir / "config").write_text(
            f"""poll_method poll
sip_listen 127.0.0.1:{self.port}
audio_player aubridge,nowhere
audio_source aufile,{self.tone}
audio_alert aubridge,nowhere
ausrc_srate 16000
auplay_srate 16000
ausrc_channels 1
auplay_channels 1
rtp_ports {self.rtp_ports[0]}-{self.rtp_ports[-1]}
module_path /usr/lib/baresip/modules
module stdio.so
module g722.so
module g711.so
module aufile.so
module aubridge.so
module sndfile.so
module srtp.so
module_app account.so
module_app menu.so
snd_path {self.rec}
{self._extra_config}
""",
            encoding="utf-8",
        )
        head, tail = self._account
        (self.dir / "accounts").write_text(f"{head}{self.port}{tail}", encoding="utf-8")

    def start(self) -> BaresipPhone:
        """Starts baresip and waits until it is ready. A SIP port taken by another
        process between choosing and binding it (a busy loopback) means another port."""
        exe = shutil.which("baresip")
        assert exe, "baresip is not installed"
        for attempt in range(3):
            if attempt:
                self.port = free_sip_port()
                self._write_config()
            self.proc = subprocess.Popen(
                [exe, "-4", "-f", str(self.dir), "-t", "120"],
                stdin=subprocess.PIPE,
                stdout=self.log.open("wb"),
                stderr=subprocess.STDOUT,
            )
            if self.wait_for("baresip is ready", 10) and self.proc.poll() is None:
                return self
            self.stop()
        raise AssertionError("baresip did not start:\n" + self.output()[-2000:])

    def send(self, text: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def dial(self, uri: str) -> None:
        self.send(f"/dial {uri}\n")

    def digits(self, digits: str, gap: float = 0.25) -> None:
        """Types digits during the call; baresip sends each as an RFC 4733 event."""
        for digit in digits:
            self.send(digit)
            time.sleep(gap)

    def hangup(self) -> None:
        self.send("/hangup\n")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for(self, text: str, timeout: float, after: int = 0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output()[after:]:
                return True
            if self.proc is not None and self.proc.poll() is not None:
                return text in self.output()[after:]
            time.sleep(0.05)
        return False

    def rtp_peer_port(self) -> int | None:
        """The port the call's RTP arrives from (which gateway process serves the call)."""
        found = re.findall(r"receiving from [0-9.]+:(\d+)", self.output())
        return int(found[-1]) if found else None

    def heard(self) -> np.ndarray:
        """Everything the phone received (decoded), from the sndfile dump."""
        files = sorted(self.rec.glob("dump-*-dec.wav"))
        return np.concatenate([read_dump(f) for f in files]) if files else np.zeros(0, np.int16)

    def sent(self) -> np.ndarray:
        """Everything the phone sent (before encoding), from the sndfile dump."""
        files = sorted(self.rec.glob("dump-*-enc.wav"))
        return np.concatenate([read_dump(f) for f in files]) if files else np.zeros(0, np.int16)

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(Exception):
            self.send("/quit\n")
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        if self.proc.stdin is not None:
            with contextlib.suppress(Exception):
                self.proc.stdin.close()


def run_sipp(
    scenario: Path, target: str, workdir: Path, timeout: float = 30, extra: list[str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Runs one SIPp client scenario against `target` (host:port), bounded in time."""
    exe = shutil.which("sipp")
    assert exe, "sipp is not installed"
    port = free_sip_port()
    cmd = [
        exe,
        target,
        "-sf",
        str(scenario),
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-m",
        "1",
        "-timeout",
        f"{int(timeout)}s",
        "-timeout_error",
        "-trace_err",
        "-trace_msg",
        "-nostdin",
        *(extra or []),
    ]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, timeout=timeout + 10)


def start_sipp_server(
    scenario: Path, port: int, workdir: Path, timeout: float = 30
) -> subprocess.Popen[bytes]:
    """Starts one SIPp server (UAS) scenario on 127.0.0.1:`port` for a single dialog.

    SIPp exits by itself after that dialog (or `timeout`); its exit code is 0 only when
    the scenario ran to its end. Output goes to `workdir/sipp.out`.
    """
    exe = shutil.which("sipp")
    assert exe, "sipp is not installed"
    cmd = [exe, "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(port), "-m", "1"]
    cmd += ["-timeout", f"{int(timeout)}s", "-timeout_error", "-trace_err", "-nostdin"]
    return subprocess.Popen(
        cmd,
        cwd=workdir,
        stdout=(workdir / "sipp.out").open("wb"),
        stderr=subprocess.STDOUT,
    )


def run_tool(cmd: list[str], cwd: Path, timeout: float) -> str:
    """Runs a scanner with a hard timeout; returns its output (killed if it hangs)."""
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"") + (exc.stderr or b"")
        return out.decode(errors="replace")
    return (done.stdout + done.stderr).decode(errors="replace")


def sipp_flood(target: str, cwd: Path, open_calls: int, hold_ms: int) -> str:
    """A SIPp INVITE flood against `target`: 120 calls at 40 a second, at most
    `open_calls` open at once, each held `hold_ms`; returns SIPp's output."""
    scenario = write(cwd / f"flood-{hold_ms}.xml", flood_call(hold_ms))
    cmd = ["sipp", target, "-sf", str(scenario), "-r", "40", "-m", "120"]
    cmd += ["-l", str(open_calls), "-i", "127.0.0.1", "-p", str(free_sip_port())]
    cmd += ["-timeout", "40s", "-nostdin", "-trace_err"]
    return run_tool(cmd, cwd, 60)


def flood_answered(flood: str) -> int:
    """How many calls of a `sipp_flood` were answered (SIPp's "Successful call")."""
    found = re.search(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", flood)
    return int(found.group(1)) if found else 0


def flood_refusals(flood: str) -> set[str]:
    """The status codes a `sipp_flood` got other than the ones it expected."""
    return set(re.findall(r"received 'SIP/2.0 (\d+)", flood))


class DialTarget:
    """Something phones dial at 127.0.0.1:`port` (a gateway, or Kamailio in front of several)."""

    port: int

    @property
    def uri(self) -> str:
        return f"sip:kreis@127.0.0.1:{self.port}"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


LOOPBACK_ICE = """
import aioice.ice

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
"""
"""aioice leaves loopback out of its candidates and the test namespace has nothing
else: every process of a `kreis dial-in` tree (backends too) loads this patch, the same
as the `loopback_ice` fixture, through a sitecustomize of its own."""


class DialInCommand(DialTarget):
    """`kreis dial-in` run as a real command, its output in one file."""

    def __init__(
        self,
        workdir: Path,
        server_ws: str,
        *,
        secret: str,
        rtp_port: int,
        sip_extra: str = "",
        args: tuple[str, ...] = (),
        site_extra: str = "",
    ) -> None:
        """`site_extra`: Python run at start-up in every process of the tree, after the
        loopback patch (a benchmark uses it to give the gateway an older behaviour)."""
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_sip_port()
        self.rtp_port = rtp_port
        config = workdir / "dial-in.toml"
        config.write_text(
            f"""[gateway]
secret = "{secret}"
server_url = "{server_ws}"

[sip]
listen_address = "127.0.0.1"
udp_port = {self.port}
tcp_port = {self.port}
rtp_port = {rtp_port}
{sip_extra}
""",
            encoding="utf-8",
        )
        site = workdir / "site"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(LOOPBACK_ICE + site_extra, encoding="utf-8")
        path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=path)
        self.output = workdir / "dial-in.out"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "dial-in", "--config", str(config), *args],
            cwd=Path(__file__).resolve().parents[2],
            env=env,
            stdout=self.output.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def count(self, text: str) -> int:
        return self.log().count(text)

    async def wait_log(self, text: str, times: int = 1, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.count(text) < times:
            assert self.proc.poll() is None, self.log()[-3000:]
            assert time.monotonic() < deadline, f"no {text!r} x{times}:\n" + self.log()[-3000:]
            await asyncio.sleep(0.1)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return int(self.proc.returncode)


def hears(pcm: np.ndarray, own: float, other: float, what: str) -> dict[str, float]:
    """`pcm` has a steady `own` tone and (next to) nothing at `other`."""
    levels = {
        "own": tone_level(pcm, own),
        "other": tone_level(pcm, other),
        "own_ratio": tone_ratio(pcm, own),
        "other_ratio": tone_ratio(pcm, other),
    }
    print(f"{what}: {len(pcm) / RATE:.1f} s, {own:g} Hz / {other:g} Hz: {levels}")
    assert len(pcm) > 2 * RATE, f"{what}: too little audio"
    assert levels["own"] > 1000, f"{what}: {own:g} Hz missing"
    assert levels["own_ratio"] > 8, f"{what}: {own:g} Hz not a steady tone"
    # The phones also hear the gateway's spoken prompt: broadband, ~100 at any frequency,
    # while a leaked tone of the other room would be about as loud as `own` (and stand out).
    assert levels["other"] < 0.1 * levels["own"], f"{what}: hears {other:g} Hz of the other room"
    assert levels["other_ratio"] < 4, f"{what}: {other:g} Hz stands out"
    return levels
