"""Kamailio as the SIP edge of `kreis dial-in`: its config, and Kamailio as a child process.

One pjsua2 process holds at most 4 calls (`config.MAX_CALL_SLOTS`). With more gateway
processes, Debian's Kamailio (5.6) listens on the public ports and spreads calls over
the gateways, each a `kreis dial-in` backend listening on loopback UDP only:

- `dispatcher` algorithm 10 (call load, `maxload` = `max_calls` per gateway), OPTIONS
  probing every `PROBE_INTERVAL` s (one missed answer marks a gateway inactive: it gets
  no new calls), a failure route that tries the next gateway on timeout, 5xx or 486,
  and 486 Busy Here when every gateway is full;
- `tm`, `sl`, `rr` (record-routing), `maxfwd`, `sanity`: transactions and dialogs as
  a proxy keeps them, so an in-dialog request from another address redirects nothing;
- `allow_from` applied at the edge (403 for anyone else);
- `nathelper`'s contact alias, so a gateway's BYE reaches a TCP or TLS caller over the
  caller's own connection;
- `uac` registering at the trunk (`[sip] registrar`, `user`, `password`; the one row
  of its table in db_text files in the private run dir);
- `tls` with Debian's OpenSSL 3 for SIP over TLS (pjsip never does TLS), and
  `X-Kreis-Tls` on such calls, so the gateway insists on SRTP for their media;
- the caller's address in `X-Kreis-Source` (set here, stripped from anything that
  comes from outside), which a backend believes only from `FRONT_ADDRESS`.

`render_config` and `render_dispatcher` write the two files from Kreis's own `[sip]`
config (an operator may run them under systemd, see docs/operations.md); `Kamailio`
runs them as a supervised child in a private temp dir that is deleted on exit.
Kamailio's own log lines go through the process's masking (`app.logsetup`), with SIP
URIs masked first; no `xlog` in the script, so no number or address is ever printed by
the routing logic itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import re
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sipgw.config import FRONT_ADDRESS, SipConfig
from sipgw.errors import SipStartError
from sipgw.signals import end_process

log = logging.getLogger(__name__)
kamlog = logging.getLogger("sipgw.kamailio.process")

MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
PROBE_INTERVAL = 2
"""Seconds between OPTIONS probes of each gateway (one unanswered probe marks it dead)."""
GATEWAY_SET = 1
"""The dispatcher set holding the gateways."""
SOURCE_HEADER = "X-Kreis-Source"
TLS_HEADER = "X-Kreis-Tls"
"""Set by the edge on an INVITE that came over TLS (stripped from anything from
outside): the gateway then requires SRTP on the media leg."""
RESTART_PAUSE = 1.0

_URI = re.compile(r"\bsips?:[^\s;>\"',)]*", re.I)
_CALL_ID = re.compile(r"\(([^()\s]{6,})\)")


@dataclass(frozen=True)
class Gateway:
    """One destination of the dispatcher: a gateway process reachable over UDP."""

    host: str
    port: int
    duid: str
    """The unique id dispatcher's call-load tracking needs."""

    @property
    def uri(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"sip:{host}:{self.port}"


def edge_wanted(sip: SipConfig) -> bool:
    """True when `kreis dial-in` needs Kamailio in front: several gateway processes,
    gateways on other machines, SIP over TLS (pjsip never does TLS: the wheel's
    OpenSSL is from 2017) or a trunk registration (Kamailio's `uac` registers). One
    process with none of these listens itself (the default for a small group)."""
    return sip.processes > 1 or bool(sip.gateways) or tls_wanted(sip) or bool(sip.registrar)


def tls_wanted(sip: SipConfig) -> bool:
    return bool(sip.tls_cert and sip.tls_key and sip.tls_port)


def gateways(sip: SipConfig, local_ports: list[int]) -> list[Gateway]:
    """The local backends (`FRONT_ADDRESS`:port) and the configured remote gateways."""
    out = [Gateway(FRONT_ADDRESS, port, f"b{i}") for i, port in enumerate(local_ports)]
    for i, (host, port) in enumerate(sip.gateways):
        out.append(Gateway(host, port, f"r{i}"))
    return out


def render_dispatcher(sip: SipConfig, destinations: list[Gateway]) -> str:
    """dispatcher.list: one line per gateway, `maxload` its call slots."""
    lines = ["# setid destination flags priority attrs (written by kreis dial-in)"]
    for gw in destinations:
        lines.append(f"{GATEWAY_SET} {gw.uri} 0 0 duid={gw.duid};maxload={sip.max_calls}")
    return "\n".join(lines) + "\n"


def _socket(proto: str, host: str, port: int, public: str = "") -> str:
    host = f"[{host}]" if ":" in host else host
    if not public:
        return f"{proto}:{host}:{port}"
    shown = f"[{public}]" if ":" in public else public
    return f"{proto}:{host}:{port} advertise {shown}:{port}"


def _allow_test(sip: SipConfig) -> str:
    """A script condition true for sources inside `allow_from`."""
    parts = []
    for net in sip.allow_from:
        if net.version == 6:
            parts.append(f"src_ip == [{net.network_address}]/{net.prefixlen}")
        else:
            parts.append(f"src_ip == {net.network_address}/{net.prefixlen}")
    return " || ".join(parts) if parts else "0"


KAMAILIO_LEVELS = {"DEBUG": 2, "INFO": 0, "WARNING": 0, "ERROR": -1}
"""Python log level → Kamailio `debug` (2 = info; 3 would dump whole messages)."""


def render_config(
    sip: SipConfig,
    internal_port: int,
    run_dir: Path,
    log_level: str = "INFO",
) -> str:
    """kamailio.cfg for the edge; `internal_port` is Kamailio's own UDP port on
    `FRONT_ADDRESS` towards the local gateways, `run_dir` holds the dispatcher list and
    the control socket."""
    listens = []
    if sip.udp_port:
        listens.append(_socket("udp", sip.listen_address, sip.udp_port, sip.public_address))
    if sip.tcp_port:
        listens.append(_socket("tcp", sip.listen_address, sip.tcp_port, sip.public_address))
    tls_module = tls_params = ""
    if tls_wanted(sip):
        listens.append(_socket("tls", sip.listen_address, sip.tls_port, sip.public_address))
        tls_module = 'loadmodule "tls.so"\n'
        # Debian's OpenSSL 3 (kamailio-tls-modules); callers need no certificate.
        tls_params = (
            f'modparam("tls", "certificate", "{sip.tls_cert}")\n'
            f'modparam("tls", "private_key", "{sip.tls_key}")\n'
            'modparam("tls", "tls_method", "TLSv1.2+")\n'
            'modparam("tls", "verify_certificate", 0)\n'
            'modparam("tls", "require_certificate", 0)\n'
        )
    uac_modules = uac_params = ""
    if sip.registrar:
        uac_modules = 'loadmodule "db_text.so"\nloadmodule "uac.so"\n'
        contact_port = sip.udp_port or sip.tcp_port
        contact = sip.public_address or sip.listen_address
        host = f"[{contact}]" if ":" in contact else contact
        uac_params = (
            f'modparam("uac", "reg_db_url", "text://{run_dir}/db")\n'
            f'modparam("uac", "reg_contact_addr", "{host}:{contact_port}")\n'
            'modparam("uac", "reg_timer_interval", 5)\n'
            'modparam("uac", "reg_retry_interval", 30)\n'
        )
    internal = _socket("udp", FRONT_ADDRESS, internal_port)
    listen_lines = "\n".join(f"listen={s}" for s in [*listens, internal])
    if tls_module:
        listen_lines = "enable_tls=yes\n" + listen_lines
    return f"""#!KAMAILIO
# Written by kreis dial-in from the [sip] config; regenerate rather than edit.
debug={KAMAILIO_LEVELS.get(log_level, 0)}
log_stderror=yes
log_prefix=""
memdbg=5
memlog=5
children=2
tcp_children=2
auto_aliases=no
dns=no
rev_dns=no
dns_try_ipv6=no
use_dns_cache=off
sip_warning=0
server_header="Server: Kreis dial-in"
user_agent_header="User-Agent: Kreis dial-in"
tcp_accept_no_cl=yes
tcp_connection_lifetime=3605
{listen_lines}

mpath="{MODULES}/"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "sanity.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "nathelper.so"
loadmodule "dispatcher.so"
loadmodule "ctl.so"
{tls_module}{uac_modules}
{tls_params}{uac_params}modparam("ctl", "binrpc", "unix:{run_dir}/ctl.sock")
modparam("tm", "fr_timer", 2000)
modparam("tm", "fr_inv_timer", 60000)
modparam("rr", "enable_full_lr", 1)
modparam("nathelper", "received_avp", "$avp(nat_received)")
modparam("dispatcher", "list_file", "{run_dir}/dispatcher.list")
modparam("dispatcher", "flags", 2)
modparam("dispatcher", "reload_delta", 0)
modparam("dispatcher", "ds_hash_size", 9)
modparam("dispatcher", "ds_ping_interval", {PROBE_INTERVAL})
modparam("dispatcher", "ds_ping_from", "sip:kreis-edge@{FRONT_ADDRESS}")
modparam("dispatcher", "ds_probing_mode", 1)
modparam("dispatcher", "ds_probing_threshold", 1)
modparam("dispatcher", "ds_inactive_threshold", 1)
modparam("dispatcher", "ds_ping_reply_codes", "class=2")
modparam("dispatcher", "ds_default_socket", "{internal}")

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (!sanity_check("17895", "7")) {{
        exit;
    }}
    if (!ds_is_from_list("{GATEWAY_SET}")) {{
        route(FROM_OUTSIDE);
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            ds_load_update();
            route(RELAY);
        }}
        exit;
    }}
    if (!is_method("ACK")) {{
        if (t_precheck_trans()) {{
            t_check_trans();
            exit;
        }}
        t_check_trans();
    }}
    if (has_totag()) {{
        route(IN_DIALOG);
        exit;
    }}
    if (ds_is_from_list("{GATEWAY_SET}")) {{
        # A gateway never starts a dialog or a transaction of its own outwards.
        sl_send_reply("403", "Forbidden");
        exit;
    }}
    if (is_method("ACK")) {{
        exit;
    }}
    if (!is_method("INVITE")) {{
        sl_send_reply("405", "Method Not Allowed");
        exit;
    }}
    remove_hf("Route");
    record_route();
    add_contact_alias();
    append_hf("{SOURCE_HEADER}: $si\\r\\n");
    if (proto == TLS) {{
        append_hf("{TLS_HEADER}: 1\\r\\n");
    }}
    if (!ds_select_dst("{GATEWAY_SET}", "10")) {{
        sl_send_reply("486", "Busy Here");
        exit;
    }}
    t_on_failure("NEXT_GATEWAY");
    t_on_reply("GATEWAY_REPLY");
    route(RELAY);
}}

route[FROM_OUTSIDE] {{
    # What only Kamailio may say to a gateway, nobody outside may say.
    remove_hf("{SOURCE_HEADER}");
    remove_hf("{TLS_HEADER}");
    force_rport();
    if (is_method("OPTIONS") && !has_totag()) {{
        sl_send_reply("200", "OK");
        exit;
    }}
    if (!({_allow_test(sip)})) {{
        sl_send_reply("403", "Forbidden");
        exit;
    }}
}}

route[IN_DIALOG] {{
    if (!loose_route()) {{
        # A caller that ignores the route set (SIPp's built-in scenarios) may still
        # reach a gateway's Contact through here, but nothing else.
        if (!ds_is_from_list("{GATEWAY_SET}") && ds_is_from_list("{GATEWAY_SET}", "2", "$ru")) {{
            if (is_method("BYE")) {{
                ds_load_update();
            }}
            route(RELAY);
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                route(RELAY);
            }}
            exit;
        }}
        sl_send_reply("404", "Not Here");
        exit;
    }}
    if (is_method("BYE")) {{
        ds_load_update();
    }}
    if (ds_is_from_list("{GATEWAY_SET}")) {{
        # Towards the caller: over the connection and address the INVITE came from.
        handle_ruri_alias();
    }} else {{
        # From a caller, only towards a gateway (never an open relay into loopback).
        if (!ds_is_from_list("{GATEWAY_SET}", "2", "$ru")) {{
            sl_send_reply("403", "Forbidden");
            exit;
        }}
        if (is_method("INVITE|UPDATE")) {{
            add_contact_alias();
        }}
    }}
    route(RELAY);
}}

route[RELAY] {{
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}

onreply_route[GATEWAY_REPLY] {{
    if (status =~ "^2[0-9][0-9]") {{
        ds_load_update();
    }}
}}

failure_route[NEXT_GATEWAY] {{
    if (t_is_canceled()) {{
        exit;
    }}
    if (t_branch_timeout() || t_check_status("408|486|5[0-9][0-9]")) {{
        if (t_branch_timeout() && !t_branch_replied()) {{
            ds_mark_dst("ip");
        }}
        if (ds_next_dst()) {{
            t_on_failure("NEXT_GATEWAY");
            t_on_reply("GATEWAY_REPLY");
            t_relay();
            exit;
        }}
        ds_load_unset();
        if (t_check_status("486")) {{
            t_reply("486", "Busy Here");
        }}
        exit;
    }}
    ds_load_unset();
}}
"""


def die_with_parent() -> None:
    """In a child before exec (Linux): SIGTERM when the supervisor dies, even by SIGKILL."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


TRUNK_ID = "kreis"
"""The registration's `l_uuid` in uac's table."""


def _dbtext(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("\n", "\\n")


def render_uacreg(sip: SipConfig) -> dict[str, str]:
    """The db_text tables (file name → text) holding the one trunk registration for
    uac; empty without `registrar`. They hold the trunk password, like the TOML, and
    live in the private run dir only."""
    if not sip.registrar:
        return {}
    host = sip.registrar.split(":", 1)[1].split(";", 1)[0]
    user = sip.user or "kreis"
    row = [
        "1",
        TRUNK_ID,
        user,
        host,
        user,
        host,
        "",
        sip.user or user,
        sip.password or "",
        "",
        f"sip:{host}",
        "300",
        "0",
        "0",
        "",
        "",
    ]
    columns = (
        "id(int,auto) l_uuid(string) l_username(string) l_domain(string) "
        "r_username(string) r_domain(string) realm(string,null) auth_username(string) "
        "auth_password(string) auth_ha1(string,null) auth_proxy(string) expires(int) "
        "flags(int) reg_delay(int) contact_addr(string,null) socket(string,null) "
    )
    return {
        "version": "id(int,auto) table_name(string) table_version(int) \n0:uacreg:5\n",
        "uacreg": columns + "\n" + ":".join(_dbtext(v) for v in row) + "\n",
    }


_REG_FAILED = re.compile(r"got sip response (\d{3}) while registering")


def masked(line: str) -> str:
    """A Kamailio log line without SIP URIs or Call-IDs (the logging filter then masks
    addresses and numbers)."""
    return _CALL_ID.sub("(***)", _URI.sub("sip:***", line))


class Kamailio:
    """Kamailio as a supervised child: writes its files into a private temp dir, starts
    it in the foreground, starts it again if it dies, stops it and deletes the dir."""

    def __init__(
        self,
        sip: SipConfig,
        local_ports: list[int],
        internal_port: int,
        log_level: str = "INFO",
        executable: str = "kamailio",
    ) -> None:
        self.sip = sip
        self.destinations = gateways(sip, local_ports)
        self.internal_port = internal_port
        self.log_level = log_level
        self.executable = executable
        self.dir: Path | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.generation: dict[int, int] = {}
        """Restarts per local gateway port (part of its dispatcher `duid`)."""
        self.stopping = False
        self.registered = False
        """True while Kamailio holds the trunk registration (`uac`)."""
        self._task: asyncio.Task[None] | None = None
        self._reg_watch: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    @property
    def config_path(self) -> Path:
        assert self.dir is not None
        return self.dir / "kamailio.cfg"

    def write(self) -> None:
        """Writes kamailio.cfg and dispatcher.list into a fresh private dir."""
        self.dir = Path(tempfile.mkdtemp(prefix="kreis-kamailio-"))
        (self.dir / "dispatcher.list").write_text(
            render_dispatcher(self.sip, self.destinations), encoding="utf-8"
        )
        self.config_path.write_text(
            render_config(self.sip, self.internal_port, self.dir, self.log_level),
            encoding="utf-8",
        )
        tables = render_uacreg(self.sip)
        if tables:
            db = self.dir / "db"
            db.mkdir(mode=0o700)
            for name, text in tables.items():
                (db / name).write_text(text, encoding="utf-8")

    def command(self) -> list[str]:
        assert self.dir is not None
        exe = shutil.which(self.executable) or self.executable
        # -DD: stay in the foreground; -E: log to stderr; -Y: our own runtime dir.
        return [exe, "-f", str(self.config_path), "-DD", "-E", "-Y", str(self.dir)]

    async def check(self) -> None:
        """Kamailio's own check of the written config (raises SipStartError)."""
        proc = await asyncio.create_subprocess_exec(
            *self.command(),
            "-c",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            lines = [masked(x) for x in out.decode(errors="replace").splitlines()]
            for line in lines[-15:]:
                kamlog.error("%s", line)
            raise SipStartError("the Kamailio config does not pass `kamailio -c`")

    async def start(self) -> None:
        """Writes and checks the config and starts Kamailio (SipStartError if it cannot)."""
        if shutil.which(self.executable) is None:
            raise SipStartError("Kamailio is not installed (apt install kamailio)")
        self.write()
        await self.check()
        self._task = asyncio.create_task(self._run())
        await self.wait_listening()
        if self.sip.registrar:
            self._reg_watch = asyncio.create_task(self._watch_registration())

    async def _watch_registration(self) -> None:
        """Says once in the log when the trunk registration holds (uac's ONLINE flag);
        failures come from Kamailio's own line (see `_read_log`)."""
        while not self.stopping:
            try:
                out = await self.rpc("uac.reg_info", "l_uuid", TRUNK_ID)
            except (OSError, TimeoutError):
                out = ""
            flags = re.search(r"flags:\s*(\d+)", out)
            expires = re.search(r"\bexpires:\s*(\d+)", out)
            online = bool(flags and int(flags.group(1)) & 4)
            if online and not self.registered:
                seconds = int(expires.group(1)) if expires else 0
                log.info("trunk registration ok (expires in %d s)", seconds)
            self.registered = online
            await asyncio.sleep(0.5)

    async def wait_listening(self, timeout: float = 15) -> None:
        try:
            await asyncio.wait_for(self._listening.wait(), timeout)
        except TimeoutError:
            raise SipStartError("Kamailio did not start listening in time") from None

    async def _run(self) -> None:
        quick = 0
        while not self.stopping:
            started = time.monotonic()
            try:
                await self._run_once()
            except OSError:
                log.exception("Kamailio could not be started")
            if self.stopping:
                return
            quick = quick + 1 if time.monotonic() - started < 30 else 0
            pause = min(RESTART_PAUSE * 2 ** max(quick - 1, 0), 30)
            log.warning("Kamailio ended; starting it again in %.0f s", pause)
            await asyncio.sleep(pause)

    async def _run_once(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.command(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=die_with_parent,
        )
        self.starts += 1
        log.info("Kamailio started (pid %d)", self.process.pid)
        assert self.process.stderr is not None
        reader = asyncio.create_task(self._read_log(self.process.stderr))
        # Listening once the control socket is there (after the listeners are bound).
        watcher = asyncio.create_task(self._watch_ready())
        code = await self.process.wait()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(reader, 2)
        if not self.stopping:
            log.warning("Kamailio exited with code %s", code)

    async def _watch_ready(self) -> None:
        assert self.dir is not None
        sock = self.dir / "ctl.sock"
        while not sock.exists():
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        log.info("Kamailio is listening")
        self._listening.set()

    async def _read_log(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = masked(line.decode(errors="replace").rstrip())
            if not text:
                continue
            failed = _REG_FAILED.search(text)
            if failed:
                self.registered = False
                log.warning("trunk registration failed: %s", failed.group(1))
            level = logging.INFO
            if self.stopping:
                level = logging.DEBUG  # its children's complaints while it shuts down
            elif "ERROR" in text or "CRITICAL" in text or "ALERT" in text:
                level = logging.ERROR
            elif "WARNING" in text:
                level = logging.WARNING
            elif "DEBUG" in text:
                level = logging.DEBUG
            kamlog.log(level, "%s", text)

    async def rpc(self, *args: str) -> str:
        """One `kamcmd` command over the control socket; its output."""
        assert self.dir is not None
        exe = shutil.which("kamcmd") or "kamcmd"
        proc = await asyncio.create_subprocess_exec(
            exe,
            "-s",
            f"unix:{self.dir / 'ctl.sock'}",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
        return out.decode(errors="replace")

    def _local(self, port: int) -> Gateway:
        return next(g for g in self.destinations if g.port == port and g.host == FRONT_ADDRESS)

    async def gateway_died(self, port: int) -> None:
        """A local gateway process is gone: no new calls for it from now on (without
        waiting for the probes, which are there for gateways that hang or sit on
        another machine)."""
        try:
            out = await self.rpc(
                "dispatcher.set_state", "ip", str(GATEWAY_SET), self._local(port).uri
            )
        except (OSError, TimeoutError):
            out = "no answer"
        if "error" in out.lower():
            log.warning("Kamailio could not be told that a gateway is gone")

    async def gateway_restarted(self, port: int) -> None:
        """A local gateway came back after dying: its calls died with it, so its call
        load starts again at zero (the others' loads are kept)."""
        gw = self._local(port)
        # A new unique id too: a late BYE of a call that died with the old process
        # must not take load off the new one's calls.
        self.generation[port] = self.generation.get(port, 0) + 1
        attrs = f"duid={gw.duid}g{self.generation[port]};maxload={self.sip.max_calls}"
        try:
            await self.rpc("dispatcher.remove", str(GATEWAY_SET), gw.uri)
            # `s:` keeps kamcmd from reading `duid=...` as a struct member.
            out = await self.rpc("dispatcher.add", str(GATEWAY_SET), gw.uri, "0", "0", f"s:{attrs}")
        except (OSError, TimeoutError):
            out = "no answer"
        if "added" not in out:
            log.error("a restarted gateway could not be put back into Kamailio's list")

    async def stop(self, timeout: float = 10) -> None:
        """Stops Kamailio (SIGTERM, then SIGKILL) and deletes its private dir."""
        self.stopping = True
        await end_process(self.process, timeout, "Kamailio")
        for task in (self._task, self._reg_watch):
            if task is None:
                continue
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m sipgw.kamailio`: writes kamailio.cfg and dispatcher.list for running
    Kamailio as a systemd unit of its own (see docs/operations.md)."""
    import argparse

    from sipgw import config as config_module
    from sipgw.errors import GatewayError

    parser = argparse.ArgumentParser(
        prog="python -m sipgw.kamailio",
        description="Kamailio-Konfiguration schreiben / write the Kamailio config",
    )
    parser.add_argument("--config", type=Path, required=True, help="kreis TOML with [sip]")
    parser.add_argument("--out", type=Path, required=True, help="directory (kept; writable)")
    parser.add_argument(
        "--backend-ports",
        default="",
        help="UDP ports of gateways on 127.0.0.1 in backend mode (none for systemd units)",
    )
    parser.add_argument(
        "--edge-port", type=int, default=5069, help="Kamailio's own UDP port on 127.0.0.1"
    )
    args = parser.parse_args(argv)
    try:
        sip = config_module.load(args.config).sip
        ports = [int(p) for p in args.backend_ports.split(",") if p.strip()]
    except (GatewayError, ValueError) as exc:
        print(f"python -m sipgw.kamailio: {exc}")
        return 2
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "dispatcher.list").write_text(
        render_dispatcher(sip, gateways(sip, ports)), encoding="utf-8"
    )
    (out / "kamailio.cfg").write_text(render_config(sip, args.edge_port, out), encoding="utf-8")
    print(f"{out / 'kamailio.cfg'}\n{out / 'dispatcher.list'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
