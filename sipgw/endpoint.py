"""The pjsua2 Endpoint and the one thread that owns it.

pjsip is not thread-safe in the way asyncio code would like, so the gateway gives it
one dedicated thread: the Endpoint is created there with `threadCnt=0` and
`mainThreadOnly=True`, and that thread pumps `libHandleEvents`. Every call into pjsua2
from asyncio goes through `PjsipThread.run()`, which queues the function for the pjsip
thread; every pjsip callback goes back to asyncio with `call_soon_threadsafe`.

pjsip's own log goes into Python logging through `PjLogWriter`, which masks addresses,
SIP URIs, display names, DTMF digits and digit runs so that no phone number, caller
name, PIN or IP address reaches a log file (at any `--pjsip-log-level`).
The pjsua2 configuration is translated from `SipConfig` in `endpoint_config()` only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import itertools
import logging
import queue
import re
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import pjsua2 as pj

from sipgw.config import FRONT_ADDRESS, MAX_CALL_SLOTS, BackendRole, SipConfig
from sipgw.errors import SipStartError
from sipgw.pjmedia_private import allow_only, set_g722_pcm_shift

log = logging.getLogger(__name__)
pjlog = logging.getLogger("sipgw.pjsip")

T = TypeVar("T")

CLOCK_RATE = 16000
"""The conference bridge runs at 16 kHz: G.722 natively, G.711 resampled by pjmedia."""
PTIME_MS = 20
PJSUA_MAX_CALLS = MAX_CALL_SLOTS
"""One gateway process carries at most 4 calls at once (see `config.MAX_CALL_SLOTS`);
more need more processes or a pjsip built with a larger PJSUA_MAX_CALLS."""

_MASKS = (
    # Display names before a SIP or tel URI, quoted or not: `"Erika M." <sip:…>`.
    (re.compile(r'"(?:[^"\\\r\n]|\\.)*"(?=[ \t]*<)'), '"***"'),
    (
        re.compile(r"(?<=[:,])([ \t]*)[^\s<>\",;:][^<>\"\r\n,;:]*?(?=[ \t]*<(?:sips?|tel):)", re.I),
        r"\1***",
    ),
    # DTMF digits: pjsip logs them one per line (and SIP INFO carries `Signal=5`),
    # and together they spell the caller's PIN.
    (re.compile(r"\b(digit|signal)([ \t]*[=:]?[ \t]*)[0-9A-D*#](?!\w)", re.I), r"\1\2?"),
    (re.compile(r"\bsips?:[^\s;>\"]*", re.I), "sip:***"),
    (re.compile(r"\btel:[^\s;>\"]*", re.I), "tel:***"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\[?[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}\]?(?::\d+)?", re.I), "<ip>"),
    (re.compile(r"\d{3,}"), "<n>"),
)


def mask(text: str) -> str:
    """`text` with display names, DTMF digits, SIP URIs, IP addresses and digit runs
    (numbers, PINs) replaced."""
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


class PjLogWriter(pj.LogWriter):  # type: ignore[misc]
    """Sends pjsip's log lines into Python logging, masked."""

    _LEVELS: ClassVar[dict[int, int]] = {
        0: logging.CRITICAL,
        1: logging.ERROR,
        2: logging.WARNING,
        3: logging.INFO,
    }

    def write(self, entry: pj.LogEntry) -> None:
        level = self._LEVELS.get(int(entry.level), logging.DEBUG)
        if pjlog.isEnabledFor(level):
            pjlog.log(level, "%s", mask(str(entry.msg).rstrip()))


def endpoint_config(config: SipConfig, writer: PjLogWriter, log_level: int) -> pj.EpConfig:
    """The one place where `SipConfig` becomes pjsua2's EpConfig."""
    ep_cfg = pj.EpConfig()
    ep_cfg.uaConfig.threadCnt = 0
    ep_cfg.uaConfig.mainThreadOnly = True
    ep_cfg.uaConfig.maxCalls = PJSUA_MAX_CALLS
    ep_cfg.uaConfig.userAgent = "Kreis dial-in"
    ep_cfg.logConfig.writer = writer
    ep_cfg.logConfig.level = log_level
    ep_cfg.logConfig.consoleLevel = log_level
    ep_cfg.logConfig.decor = 0
    ep_cfg.medConfig.clockRate = CLOCK_RATE
    ep_cfg.medConfig.sndClockRate = CLOCK_RATE
    ep_cfg.medConfig.channelCount = 1
    ep_cfg.medConfig.audioFramePtime = PTIME_MS
    ep_cfg.medConfig.ptime = PTIME_MS
    ep_cfg.medConfig.noVad = True
    ep_cfg.medConfig.ecTailLen = 0
    # Bound the receive jitter buffer: a conversation suffers more from a growing delay
    # (pjmedia's buffer adapts upwards under CPU load) than from a rare lost frame.
    ep_cfg.medConfig.jbMaxPre = 100
    ep_cfg.medConfig.jbMax = 300
    # Ports of ended calls stay in the bridge for a moment (see PjsipThread.retire),
    # so a flood of short calls needs far more slots than live calls.
    ep_cfg.medConfig.maxMediaPorts = 254
    return ep_cfg


def transport_configs(
    config: SipConfig, role: BackendRole | None = None
) -> list[tuple[int, pj.TransportConfig]]:
    """(pjsip transport type, TransportConfig) for UDP and TCP; never TLS.

    A backend behind Kamailio (`role`) listens on UDP at its internal port only.
    """
    ipv6 = ":" in config.listen_address
    out: list[tuple[int, pj.TransportConfig]] = []

    def make(
        port: int, address: str = config.listen_address, public: str = ""
    ) -> pj.TransportConfig:
        tc = pj.TransportConfig()
        tc.port = port
        tc.boundAddress = address
        tc.publicAddress = public or address
        return tc

    if role is not None:  # behind Kamailio, which advertises the public address
        return [(pj.PJSIP_TRANSPORT_UDP, make(role.sip_port, FRONT_ADDRESS))]

    if config.udp_port:
        kind = pj.PJSIP_TRANSPORT_UDP6 if ipv6 else pj.PJSIP_TRANSPORT_UDP
        out.append((kind, make(config.udp_port, public=config.public_address)))
    if config.tcp_port:
        kind = pj.PJSIP_TRANSPORT_TCP6 if ipv6 else pj.PJSIP_TRANSPORT_TCP
        out.append((kind, make(config.tcp_port, public=config.public_address)))
    # Never TLS: the wheel's OpenSSL is 1.0.2k (2017). SIP over TLS ends at Kamailio
    # (`sipgw.kamailio`, Debian's OpenSSL 3), which hands calls on over loopback UDP.
    return out


def release(obj: Any) -> None:
    """Runs a pjsua2 object's C++ destructor now, while Python still holds it (on the
    pjsip thread); afterwards the Python object must only be dropped.

    Left to Python's own deallocation, the destructor runs after the object's count
    reached zero, with the GIL released: pjmedia's clock thread (an AudioMediaPort's
    frame callbacks) or the media thread (a call's DTMF) could still call into the
    dying object, count it up and down again and free it twice. Under an INVITE flood
    that corrupted the heap and crashed the gateway in the clock thread. Called
    explicitly, the destructor unhooks the object (a port takes its lock and stops
    its callbacks) while the object is still alive.

    A `pj.Call`'s destructor also clears the user data of the call *slot* it was
    given and hangs up whatever call is active there. pjsua reuses its few slots at
    once: an ended call's object destroyed after its slot went to a new call hung up
    the stranger's call (603 Decline) and cut that call off from its own object. A
    slot that holds a call object again is not ours any more: then the old object is
    disowned (its C++ part, a few hundred bytes, is never freed) instead.
    """
    if not isinstance(obj, (pj.Call, pj.AudioMediaPort)) or not obj.thisown:
        return
    if isinstance(obj, pj.Call):
        slot = obj.getId()
        if slot != pj.PJSUA_INVALID_ID and pj.Call.lookup(slot) is not None:
            obj.thisown = False
            return
    type(obj).__swig_destroy__(obj)
    obj.thisown = False


class PjsipThread:
    """Owns the pjsua2 Endpoint on its own thread; runs functions there on request.

    `setup` is called on the pjsip thread after `libStart` (to create accounts); its
    return value is kept so the objects it made live as long as the Endpoint.
    """

    def __init__(
        self,
        config: SipConfig,
        setup: Callable[[pj.Endpoint], Any],
        log_level: int = 2,
        role: BackendRole | None = None,
    ) -> None:
        self.config = config
        self.role = role
        """Set when this process is a backend behind Kamailio."""
        self._setup = setup
        self._log_level = log_level
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]]
        self._jobs = queue.SimpleQueue()
        self._jobs_lock = threading.Lock()
        self._jobs_closed = False
        """Set (under the lock) once the thread takes no more jobs; see `_close_jobs`."""
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._start_error: BaseException | None = None
        self.endpoint: pj.Endpoint | None = None
        self._writer: PjLogWriter | None = None
        self.keep: list[Any] = []
        """References to pjsua2 objects that must outlive their Python callers."""
        self.setup_result: Any = None
        self._objects: weakref.WeakSet[Any] = weakref.WeakSet()
        self._retired: list[tuple[float, Any]] = []
        self._keys = itertools.count(1)

    def track(self, obj: Any) -> None:
        """Registers a pjsua2 object so that shutdown can disown it after libDestroy."""
        self._objects.add(obj)

    def retire(self, obj: Any, seconds: float = 1.0) -> None:
        """Keeps `obj` alive a while longer, then frees it on this thread.

        pjmedia removes a port from the conference bridge asynchronously (since 2.14):
        the bridge may still ask an already "removed" port for one more frame, so an
        AudioMediaPort freed at once can be called after its memory is gone.
        """
        self._retired.append((time.monotonic() + seconds, obj))

    def drop_call(self, call: Any) -> None:
        """Lets go of an ended call's pjsua2 object (see `release`)."""
        release(call)

    def next_call_key(self) -> int:
        """A gateway-wide call number (never reused while the process runs)."""
        return next(self._keys)

    # ------------------------------------------------------------------ control

    def start(self, timeout: float = 15) -> None:
        """Starts the thread and waits until pjsip listens (raises SipStartError)."""
        self._thread = threading.Thread(target=self._main, name="pjsip", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise SipStartError("pjsip did not start in time")
        if self._start_error is not None:
            raise SipStartError(str(self._start_error)) from self._start_error

    def stop(self, timeout: float = 10) -> None:
        """Hangs up every call, destroys the Endpoint and joins the thread."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("pjsip thread did not stop in time")

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Queues `fn` for the pjsip thread; the future holds its result."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._jobs_lock:
            if self._stopping.is_set() or self._jobs_closed:
                future.set_exception(SipStartError("the pjsip thread is stopping"))
                return future
            self._jobs.put((fn, future))
        return future

    async def run(self, fn: Callable[[], T]) -> T:
        """Runs `fn` on the pjsip thread and awaits its result from asyncio."""
        return await asyncio.wrap_future(self.submit(fn))

    def later(self, fn: Callable[[], Any]) -> None:
        """Queues `fn` for the pjsip thread from inside a pjsip callback (fire and forget)."""
        with self._jobs_lock:
            if not self._jobs_closed:
                self._jobs.put((fn, concurrent.futures.Future()))

    # ------------------------------------------------------------------ thread

    def _main(self) -> None:
        ep = pj.Endpoint()
        self.endpoint = ep
        writer = PjLogWriter()
        # pjsua2 logs through the writer until libDestroy returns (and may delete it
        # there): it must outlive libDestroy and is then disowned, never freed twice.
        self._writer = writer
        try:
            ep.libCreate()
            ep.libInit(endpoint_config(self.config, writer, self._log_level))
            ep.audDevManager().setNullDev()
            for kind, tc in transport_configs(self.config, self.role):
                ep.transportCreate(kind, tc)
            ep.libStart()
            self._prefer_codecs(ep)
            set_g722_pcm_shift(1)  # G.722 as spandsp levels it (sipgw/pjmedia_private.py)
            log.debug("Allow: %s", ", ".join(allow_only()))  # only what is handled
            self.setup_result = self._setup(ep)
        except pj.Error as exc:
            self._start_error = RuntimeError(mask(str(exc.info())))
        except Exception as exc:
            self._start_error = exc
        finally:
            self._ready.set()
        if self._start_error is None:
            log.info("SIP gateway listening")
            self._pump(ep)
        self._close_jobs()
        self._destroy(ep)
        del ep
        gc.collect()

    def _close_jobs(self) -> None:
        """Takes no more jobs and fails those queued after the pump's last drain, so an
        `await run(...)` racing the shutdown gets SipStartError instead of hanging."""
        with self._jobs_lock:
            self._jobs_closed = True
        while True:
            try:
                _fn, future = self._jobs.get_nowait()
            except queue.Empty:
                return
            if future.set_running_or_notify_cancel():
                future.set_exception(SipStartError("the pjsip thread stopped"))

    def _prefer_codecs(self, ep: pj.Endpoint) -> None:
        # Telephone codecs only: G.722 first (wideband), then G.711; the rest off.
        for info in ep.codecEnum2():
            name = str(info.codecId)
            if name.startswith("G722"):
                prio = 255
            elif name.startswith(("PCMA", "PCMU")):
                prio = 200
            else:
                prio = 0
            ep.codecSetPriority(name, prio)

    def _pump(self, ep: pj.Endpoint) -> None:
        while not self._stopping.is_set():
            ep.libHandleEvents(10)
            self._drain()
            if self._retired and self._retired[0][0] < time.monotonic():
                now = time.monotonic()
                due = [obj for t, obj in self._retired if t < now]
                self._retired = [(t, obj) for t, obj in self._retired if t >= now]
                for obj in due:
                    release(obj)
        try:
            ep.hangupAllCalls()
            for _ in range(30):
                ep.libHandleEvents(10)
                self._drain()
        except pj.Error:
            log.exception("hanging up calls at shutdown failed")

    def _drain(self) -> None:
        while True:
            try:
                fn, future = self._jobs.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except Exception as exc:
                future.set_exception(exc)

    def _destroy(self, ep: pj.Endpoint) -> None:
        # pjsua2 objects must die on this thread and before libDestroy: their C++
        # destructors call into pjsua, which asserts once the library is gone.
        for obj in list(self._objects):
            if isinstance(obj, pj.Account):
                try:
                    obj.shutdown()
                except pj.Error:
                    log.debug("account shutdown failed")
        # Retired ports stay alive through libDestroy (the bridge may still call them)
        # and are disowned afterwards with everything else that is left.
        retired = self._retired
        self._retired = []
        self.setup_result = None
        self.keep.clear()
        gc.collect()
        try:
            ep.libDestroy()
        except pj.Error:
            log.exception("pjsip shutdown failed")
        for _, obj in retired:
            obj.thisown = False
        retired.clear()
        if self._writer is not None:
            self._writer.thisown = False
            self._writer = None
        # Whatever Python still holds now must never run its C++ destructor.
        leftover = list(self._objects)
        for obj in leftover:
            obj.thisown = False
        if leftover:
            log.debug("%d pjsua2 objects outlived the endpoint (disowned)", len(leftover))
        # Endpoint is a singleton: the next PjsipThread in this process can only create
        # its own once this one is gone.
        self.endpoint = None
        log.info("SIP gateway stopped")
