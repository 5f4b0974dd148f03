"""The running gateway: the pjsip thread, its accounts, and one session task per call.

`Gateway` is the asyncio half of the bridge. pjsip callbacks (`PhoneEvents`) arrive
here on the event loop; each answered call gets a `CallSession` in its own task, and
a call's end cancels only that task. Nothing a single call does can stop another: a
session's exceptions end in its own task, and the pjsip thread never waits for asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import pjsua2 as pj

from sipgw.announce import Prompts
from sipgw.audio import CallAudio
from sipgw.config import BackendRole, Config
from sipgw.endpoint import PjsipThread
from sipgw.link import CallerLabel, LinkFactory
from sipgw.lockout import caller_keys
from sipgw.phone import GatewayAccount, IncomingCall
from sipgw.session import CallSession, SessionSettings

log = logging.getLogger(__name__)

RTP_TIMEOUT = 20.0
"""Seconds without a single RTP packet after which a call is hung up: a phone that
vanished (no BYE) must not hold a call slot and a place in the room."""
RTP_CHECK_INTERVAL = 2.0
SESSION_EXPIRES = 90
"""RFC 4028 session timer (the smallest Min-SE): a dialog whose refresh fails ends."""


@dataclass
class _Live:
    session: CallSession
    task: asyncio.Task[str]


@dataclass
class GatewayStats:
    """Aggregate counts only (nothing per caller)."""

    calls: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


def account_configs(config: Config, role: BackendRole | None = None) -> list[pj.AccountConfig]:
    """The local account (calls from allowed peers; a trunk registers through Kamailio).

    A backend behind Kamailio (`role`) uses its own RTP range.
    """
    sip = config.sip
    host = f"[{sip.listen_address}]" if ":" in sip.listen_address else sip.listen_address
    local = pj.AccountConfig()
    local.idUri = f"sip:kreis@{host}"
    # The trunk registration is Kamailio's (`sipgw.kamailio`, uac), never pjsip's.
    configs = [local]
    for acc in configs:
        acc.mediaConfig.transportConfig.port = role.rtp_port if role else sip.rtp_port
        acc.mediaConfig.transportConfig.portRange = 2 * sip.max_calls + 16
        acc.mediaConfig.transportConfig.boundAddress = sip.listen_address
        # Behind NAT the SDP names the public address (the router forwards the RTP
        # ports); the media leg goes to the gateway itself, not through Kamailio.
        if sip.public_address:
            acc.mediaConfig.transportConfig.publicAddress = sip.public_address
        if ":" in sip.listen_address:
            acc.mediaConfig.ipv6Use = pj.PJSUA_IPV6_ENABLED_USE_IPV6_ONLY
        # SRTP (SDES) whenever the caller offers keys; a TLS caller must (see
        # `phone.over_tls`). The keys travel over TLS as far as Kamailio and then over
        # loopback only, so pjsip's own leg need not be TLS.
        acc.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_OPTIONAL
        acc.mediaConfig.srtpSecureSignaling = 0
        acc.callConfig.timerUse = pj.PJSUA_SIP_TIMER_OPTIONAL
        acc.callConfig.timerSessExpiresSec = SESSION_EXPIRES
        acc.callConfig.timerMinSESec = SESSION_EXPIRES
    return configs


class Gateway:
    """Owns the pjsip thread and the live calls."""

    def __init__(
        self,
        config: Config,
        link_factory: LinkFactory,
        prompts: Prompts,
        pjsip_log_level: int = 2,
        role: BackendRole | None = None,
    ) -> None:
        self.config = config
        self.link_factory = link_factory
        self.prompts = prompts
        self.role = role
        self.settings = SessionSettings(
            pin_length=config.gateway.pin_length,
            pin_tries=config.sip.pin_tries,
            language=config.sip.language,
        )
        self.stats = GatewayStats()
        self.calls: dict[int, _Live] = {}
        self.pjsip = PjsipThread(config.sip, self._setup, pjsip_log_level, role)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.accounts: list[GatewayAccount] = []
        self._media_watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Starts pjsip (raises SipStartError when it cannot listen)."""
        self._loop = asyncio.get_running_loop()
        await self._loop.run_in_executor(None, self.pjsip.start)
        self._media_watch = self._loop.create_task(self._watch_media())

    async def stop(self) -> None:
        """Ends every call and stops pjsip."""
        if self._media_watch is not None:
            self._media_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._media_watch
        for live in list(self.calls.values()):
            live.task.cancel()
        for live in list(self.calls.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await live.task
        assert self._loop is not None
        await self._loop.run_in_executor(None, self.pjsip.stop)

    def _setup(self, ep: pj.Endpoint) -> list[GatewayAccount]:
        assert self._loop is not None
        loop = self._loop
        for index, acc_cfg in enumerate(account_configs(self.config, self.role)):

            def post(fn: Callable[[], None]) -> None:
                loop.call_soon_threadsafe(fn)

            account = GatewayAccount(self.pjsip, self, post, self.config.sip.max_calls)
            account.create(acc_cfg, index == 0)
            self.accounts.append(account)
        return self.accounts

    async def _watch_media(self) -> None:
        """Hangs up calls that received no RTP for `RTP_TIMEOUT` seconds."""
        seen: dict[int, tuple[int, float]] = {}
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(RTP_CHECK_INTERVAL)
            try:
                counts = await self.pjsip.run(self._rtp_counts)
            except Exception:
                log.exception("reading RTP counters failed")
                continue
            now = loop.time()
            for key in [k for k in seen if k not in counts]:
                del seen[key]
            for key, packets in counts.items():
                before = seen.get(key)
                if before is None or before[0] != packets:
                    seen[key] = (packets, now)
                elif now - before[1] >= RTP_TIMEOUT:
                    log.info("call %d: no RTP for %d s, hanging up", key, RTP_TIMEOUT)
                    del seen[key]
                    await self.pjsip.run(functools.partial(self._hangup, key, 408))

    def _rtp_counts(self) -> dict[int, int]:
        """RTP packets received so far, per call with active audio (pjsip thread)."""
        counts: dict[int, int] = {}
        for account in self.accounts:
            for key, call in account.calls.items():
                packets = call.rtp_received()
                if packets is not None:
                    counts[key] = packets
        return counts

    # ------------------------------------------------------------ PhoneEvents

    def call_started(self, incoming: IncomingCall, audio: CallAudio) -> None:
        self.stats.calls += 1
        label = CallerLabel.from_digits(incoming.caller_digits, self.config.gateway.hide_numbers)
        keys = caller_keys(
            self.config.gateway.secret,
            incoming.caller_digits,
            incoming.source_ip,
            incoming.called_user,
            incoming.fingerprint,
        )

        key = incoming.call_key

        async def hangup(code: int) -> None:
            # By key, on the pjsip thread: asyncio never holds a pjsua2 object.
            await self.pjsip.run(lambda: self._hangup(key, code))

        async def answer(code: int) -> None:
            await self.pjsip.run(lambda: self._answer(key, code))

        session = CallSession(
            audio=audio,
            answer=answer,
            hangup=hangup,
            link=self.link_factory(),
            prompts=self.prompts,
            keys=keys,
            label=label,
            settings=self.settings,
        )
        task = asyncio.get_running_loop().create_task(session.run())
        self.calls[incoming.call_key] = _Live(session, task)
        task.add_done_callback(lambda t: self._finished(incoming.call_key, t))
        log.info("call %d ringing (%d live)", incoming.call_key, len(self.calls))

    def _finished(self, key: int, task: asyncio.Task[str]) -> None:
        live = self.calls.pop(key, None)
        # A call ending while its goodbye is still being hung up keeps its outcome.
        outcome = live.session.outcome if live else "?"
        if outcome == "running":
            outcome = "hung_up"
        self.stats.outcomes[outcome] = self.stats.outcomes.get(outcome, 0) + 1
        log.info("call %d finished: %s (%d live)", key, outcome, len(self.calls))

    def _hangup(self, key: int, code: int = 200) -> None:
        for account in self.accounts:
            account.hangup(key, code)

    def _answer(self, key: int, code: int) -> None:
        for account in self.accounts:
            account.answer(key, code)

    def call_ended(self, call_key: int) -> None:
        live = self.calls.get(call_key)
        if live is not None and not live.task.done():
            live.task.cancel()

    def dtmf(self, call_key: int, digit: str) -> None:
        live = self.calls.get(call_key)
        if live is not None:
            live.session.on_dtmf(digit)
