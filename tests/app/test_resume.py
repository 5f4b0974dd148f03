"""Resume tokens (app/resume.py): what a token binds, and what it must refuse.

Forged, altered, expired and other-room tokens are refused; nothing a token carries
(name, slug, group, member id) can be read from it; revocation by id, generation and
room instance. The flow over a real server is in tests/app/test_resume_flow.py.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from app.config import config_from_dict, resume_key
from app.passwords import hash_password
from app.resume import FLAG_E2EE, FLAG_LOBBY, PREFIX, ResumeSigner, Revocations

KEY = b"k" * 32
NOW = 1_800_000_000.0


def token_for(signer: ResumeSigner, **extra: object) -> str:
    return signer.issue(
        "dienstag-abend",
        "p_4kq0ZC1eT0dM7H2a",
        "guest",
        "Sonnenblume",
        120,
        NOW,
        group="suchthilfe",
        instance="i_abc",
        **extra,  # type: ignore[arg-type]
    )


def test_a_token_round_trips() -> None:
    signer = ResumeSigner(KEY)
    token = token_for(signer, flags=FLAG_LOBBY | FLAG_E2EE, generation=3, kind="console")
    claim = signer.verify(token, "dienstag-abend", NOW + 119)
    assert claim is not None
    assert (claim.member_id, claim.role, claim.name, claim.group, claim.instance) == (
        "p_4kq0ZC1eT0dM7H2a",
        "guest",
        "Sonnenblume",
        "suchthilfe",
        "i_abc",
    )
    assert (claim.kind, claim.generation, claim.flags, claim.expires) == (
        "console",
        3,
        FLAG_LOBBY | FLAG_E2EE,
        NOW + 120,
    )
    leader = signer.issue("dienstag-abend", "", "leader", None, 60, NOW, group="g")
    claim = signer.verify(leader, "dienstag-abend", NOW)
    assert claim is not None and claim.name is None and claim.role == "leader"


def test_expired_other_room_and_other_key_are_refused() -> None:
    signer = ResumeSigner(KEY)
    token = token_for(signer)
    assert signer.verify(token, "dienstag-abend", NOW + 120) is None
    assert signer.verify(token, "mittwoch-abend", NOW) is None
    assert ResumeSigner(b"x" * 32).verify(token, "dienstag-abend", NOW) is None


def test_every_altered_byte_is_refused() -> None:
    signer = ResumeSigner(KEY)
    token = token_for(signer)
    raw = base64.urlsafe_b64decode(token[len(PREFIX) :] + "==")
    for i in range(len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 0x01
        forged = PREFIX + base64.urlsafe_b64encode(bytes(bad)).rstrip(b"=").decode()
        assert signer.verify(forged, "dienstag-abend", NOW) is None, i
    cut = (token[:-3], token + "AAAA", "x" * 600)
    for forged in ("", "k1.", "k1.!!!!", "r_old-style-ticket", *cut):
        assert signer.verify(forged, "dienstag-abend", NOW) is None


def test_nothing_is_readable_in_a_token() -> None:
    signer = ResumeSigner(KEY)
    token = token_for(signer)
    raw = base64.urlsafe_b64decode(token[len(PREFIX) :] + "==")
    for secret in ("Sonnenblume", "dienstag", "suchthilfe", "p_4kq0ZC1eT0dM7H2a", "i_abc"):
        assert secret not in token and secret.encode() not in raw
    assert token_for(signer) != token  # a fresh nonce every time


def test_revocations() -> None:
    signer = ResumeSigner(KEY)
    first = signer.verify(token_for(signer, token_id="t1"), "dienstag-abend", NOW)
    second = signer.verify(token_for(signer, token_id="t1", generation=1), "dienstag-abend", NOW)
    other = signer.verify(token_for(signer, token_id="t2"), "dienstag-abend", NOW)
    assert first is not None and second is not None and other is not None
    revoked = Revocations()
    assert revoked.accepts(first)
    revoked.spend("t1", 0, NOW + 120)
    assert not revoked.accepts(first) and revoked.accepts(second) and revoked.accepts(other)
    revoked.revoke("t1", NOW + 120)
    assert not revoked.accepts(second)
    revoked.end_instance("i_abc", NOW + 120)
    assert not revoked.accepts(other)
    revoked.prune(NOW + 121)
    assert revoked.accepts(first) and revoked.accepts(other)


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        ResumeSigner(b"short")


def test_the_key_comes_from_the_config_and_survives_a_restart(tmp_path: Path) -> None:
    hashes = hash_password("gruppenpasswort")
    groups = {"groups": {"leitung": {"password_hash": hashes}}}
    derived = resume_key(config_from_dict(groups, tmp_path))
    assert derived == resume_key(config_from_dict(groups, tmp_path))
    explicit = {"server": {"resume_key": "s" * 32}, **groups}
    assert resume_key(config_from_dict(explicit, tmp_path)) not in (derived, b"s" * 32)
    with pytest.raises(Exception, match="resume_key"):
        config_from_dict({"server": {"resume_key": "short"}}, tmp_path)
