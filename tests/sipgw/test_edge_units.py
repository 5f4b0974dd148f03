"""Unit tests of what remains around the Kamailio edge without running it: the
backend's trust in `X-Kreis-Source`, the `[sip]` keys of several processes and remote
gateways, the dispatcher list, and the masking of Kamailio's own log lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sipgw.config import backend_role, parse_sip, rtp_stride
from sipgw.errors import ConfigError
from sipgw.kamailio import edge_wanted, gateways, masked, render_dispatcher, render_uacreg
from sipgw.phone import offers_srtp, over_tls, trusted_source


def test_backend_believes_the_source_header_only_from_the_edge() -> None:
    msg = "INVITE sip:x SIP/2.0\r\nX-Kreis-Source: 198.51.100.4\r\n\r\nX-Kreis-Source: 1.1.1.1"
    assert trusted_source("127.0.0.1", msg, behind_front=True) == "198.51.100.4"
    assert trusted_source("127.0.0.1", msg, behind_front=False) == "127.0.0.1"
    assert trusted_source("10.0.0.5", msg, behind_front=True) == "10.0.0.5"
    two = msg.replace("\r\n\r\n", "\r\nX-Kreis-Source: 10.0.0.9\r\n\r\n")
    assert trusted_source("127.0.0.1", two, behind_front=True) == ""
    assert trusted_source("127.0.0.1", "INVITE x SIP/2.0\r\n\r\n", behind_front=True) == ""
    bad = "INVITE x SIP/2.0\r\nX-Kreis-Source: not-an-ip\r\n\r\n"
    assert trusted_source("127.0.0.1", bad, behind_front=True) == ""
    # A gateway on another machine believes its edge's address, and only that.
    assert trusted_source("192.0.2.7", msg, False, edge_address="192.0.2.7") == "198.51.100.4"
    assert trusted_source("192.0.2.8", msg, False, edge_address="192.0.2.7") == "192.0.2.8"


def test_config_processes_gateways_and_backend_ranges() -> None:
    sip = parse_sip({"processes": 3, "max_calls": 4, "rtp_port": 30000})
    assert sip.processes == 3 and sip.worker_base_port == 0
    roles = [backend_role(sip, i, 6000 + i) for i in range(3)]
    assert [r.rtp_port for r in roles] == [30000, 30024, 30048] and rtp_stride(sip) == 24
    assert parse_sip({}).processes == 1 and not edge_wanted(parse_sip({}))
    assert edge_wanted(sip)
    remote = parse_sip({"gateways": ["192.0.2.10:5070", "[2001:db8::5]:5080"]})
    assert remote.gateways == (("192.0.2.10", 5070), ("2001:db8::5", 5080))
    assert edge_wanted(remote)
    listed = render_dispatcher(remote, gateways(remote, [6001]))
    assert "1 sip:127.0.0.1:6001 0 0 duid=b0;maxload=4" in listed
    assert "1 sip:192.0.2.10:5070 0 0 duid=r0;maxload=4" in listed
    assert "1 sip:[2001:db8::5]:5080 0 0 duid=r1;maxload=4" in listed
    assert parse_sip({"edge_address": "192.0.2.7"}).edge_address == "192.0.2.7"
    for bad, key in (
        ({"processes": 0}, "processes"),
        ({"processes": True}, "processes"),
        ({"worker_base_port": 70000}, "worker_base_port"),
        ({"processes": 32, "rtp_port": 65000}, "rtp_port"),
        ({"gateways": ["gateway.example:5060"]}, "gateways"),
        ({"gateways": ["192.0.2.1"]}, "gateways"),
        ({"gateways": ["192.0.2.1:0"]}, "gateways"),
        ({"edge_address": "edge.example"}, "edge_address"),
    ):
        with pytest.raises(ConfigError, match=key):
            parse_sip(bad)


def test_kamailio_log_lines_lose_uris_and_call_ids() -> None:
    line = (
        " 3(120) ERROR: dispatcher [dispatch.c:1744]: ds_load_remove(): cannot find load "
        "for (a84b4c76e66710@pc33.example.com) sip:+4930123456@192.0.2.1:5060;transport=tcp"
    )
    out = masked(line)
    assert "a84b4c76e66710" not in out and "4930123456" not in out and "192.0.2.1" not in out
    assert "ds_load_remove()" in out


def test_pjsip_never_does_tls() -> None:
    """The wheel's OpenSSL (1.0.2k) must never carry SIP: with a certificate set, the
    gateway's transports are still UDP and TCP only (TLS is Kamailio's), and no module
    of the gateway mentions a pjsip TLS transport or TLS setting."""
    import pjsua2 as pj

    from sipgw.endpoint import transport_configs

    sip = parse_sip({"tls_cert": "/c.pem", "tls_key": "/k.pem", "tls_port": 5061})
    assert edge_wanted(sip)
    kinds = {kind for kind, _ in transport_configs(sip)}
    assert kinds <= {pj.PJSIP_TRANSPORT_UDP, pj.PJSIP_TRANSPORT_TCP}, kinds
    role = backend_role(sip, 0, 6000)
    assert [kind for kind, _ in transport_configs(sip, role)] == [pj.PJSIP_TRANSPORT_UDP]
    sipgw = Path(__file__).resolve().parents[2] / "sipgw"
    for module in sipgw.glob("*.py"):
        text = module.read_text(encoding="utf-8")
        for word in ("PJSIP_TRANSPORT_TLS", "tlsConfig", "PJSIP_TLSV1"):
            assert word not in text, f"{module.name} uses {word}"


def test_tls_mark_is_believed_from_the_edge_only_and_crypto_is_read_from_the_sdp() -> None:
    head = "INVITE sip:x SIP/2.0\r\nX-Kreis-Tls: 1\r\nContent-Type: application/sdp\r\n\r\n"
    srtp = (
        head + "v=0\r\nm=audio 4000 RTP/SAVP 9\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n"
    )
    plain = head + "v=0\r\nm=audio 4000 RTP/AVP 9\r\n"
    assert over_tls("127.0.0.1", plain, behind_front=True)
    assert not over_tls("127.0.0.1", plain, behind_front=False)
    assert not over_tls("10.0.0.5", plain, behind_front=True)
    assert over_tls("192.0.2.7", plain, False, edge_address="192.0.2.7")
    assert not over_tls("127.0.0.1", "INVITE x SIP/2.0\r\n\r\nX-Kreis-Tls: 1", True)
    assert offers_srtp(srtp) and not offers_srtp(plain)
    assert not offers_srtp("INVITE x SIP/2.0\r\na=crypto:1 in a header\r\n\r\nv=0\r\n")


def test_the_trunk_registration_table_for_uac() -> None:
    sip = parse_sip(
        {"registrar": "sip:192.0.2.20:5080", "user": "kreis-4711", "password": "ge:heim\\nx"}
    )
    assert edge_wanted(sip)
    tables = render_uacreg(sip)
    assert tables["version"].splitlines()[1] == "0:uacreg:5"
    row = tables["uacreg"].splitlines()[1]
    # Colons and newlines escaped for db_text: still 16 fields.
    assert len(re.split(r"(?<!\\):", row)) == 16, row
    assert "192.0.2.20\\:5080" in row and "ge\\:heim" in row
    assert render_uacreg(parse_sip({})) == {}


def test_behind_nat_the_public_address_is_what_callers_are_told() -> None:
    """`public_address`: pjsip's Via/Contact (alone) or Kamailio's advertised sockets
    (edge) name it, and every gateway's SDP names it for RTP; a bad value is refused."""
    from sipgw.config import parse
    from sipgw.endpoint import transport_configs
    from sipgw.gateway import account_configs
    from sipgw.kamailio import render_config

    public = "203.0.113.9"
    gateway = {"secret": "geheimnis-fuer-den-test", "server_url": "ws://127.0.0.1:1/ws"}
    config = parse(
        {"gateway": gateway, "sip": {"listen_address": "10.0.0.5", "public_address": public}}
    )
    sip = config.sip
    assert [tc.publicAddress for _, tc in transport_configs(sip)] == [public, public]
    assert [tc.boundAddress for _, tc in transport_configs(sip)] == ["10.0.0.5"] * 2
    role = backend_role(sip, 0, 6000)
    for acc in [*account_configs(config), *account_configs(config, role)]:
        assert acc.mediaConfig.transportConfig.publicAddress == public
        assert acc.mediaConfig.transportConfig.boundAddress == "10.0.0.5"
    cfg = render_config(sip, 6000, Path("/nonexistent"))
    assert f"listen=udp:10.0.0.5:5060 advertise {public}:5060" in cfg, cfg
    assert f"listen=tcp:10.0.0.5:5060 advertise {public}:5060" in cfg
    assert "listen=udp:127.0.0.1:6000\n" in cfg  # towards the gateways: not advertised
    plain = parse({"gateway": gateway, "sip": {"listen_address": "10.0.0.5"}})
    assert [tc.publicAddress for _, tc in transport_configs(plain.sip)] == ["10.0.0.5"] * 2
    assert "advertise" not in render_config(plain.sip, 6000, Path("/nonexistent"))
    with pytest.raises(ConfigError, match="public_address"):
        parse({"gateway": gateway, "sip": {"public_address": "router.example"}})
