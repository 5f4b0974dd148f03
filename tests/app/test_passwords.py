"""Group password hashing: scrypt hashes verify, refuse, and never leak the password."""

from __future__ import annotations

import re

import pytest

from app.passwords import (
    generate_password,
    hash_password,
    is_valid_hash,
    verify_password,
    verify_unknown,
)

FORMAT = re.compile(r"^scrypt\$32768\$8\$1\$[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}$")


@pytest.fixture(scope="module")
def stored() -> str:
    return hash_password("richtiges-passwort")


def test_hash_has_the_documented_format(stored: str) -> None:
    assert FORMAT.match(stored)
    assert is_valid_hash(stored)


def test_right_password_verifies(stored: str) -> None:
    assert verify_password("richtiges-passwort", stored)


@pytest.mark.parametrize(
    "attempt",
    ["falsches-passwort", "", "richtiges-passwort ", "Richtiges-passwort", "\ud800", "ü" * 5000],
)
def test_wrong_password_is_refused(stored: str, attempt: str) -> None:
    assert not verify_password(attempt, stored)


def test_non_string_password_is_refused(stored: str) -> None:
    assert not verify_password(None, stored)  # type: ignore[arg-type]
    assert not verify_password(12345, stored)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "richtiges-passwort",
        "scrypt$32768$8$1$onlysalt",
        "bcrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "scrypt$x$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "scrypt$1000$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "scrypt$1073741824$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "scrypt$32768$8$1$not*base64$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "scrypt$32768$8$1$AAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",
        "scrypt$32768$8$1$ÄÄÄÄAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ],
)
def test_malformed_stored_hash_gives_false_not_an_exception(bad: str) -> None:
    assert not is_valid_hash(bad)
    assert verify_password("richtiges-passwort", bad) is False


def test_non_string_stored_hash_gives_false() -> None:
    assert verify_password("x", None) is False  # type: ignore[arg-type]


def test_hash_does_not_contain_the_password(stored: str) -> None:
    assert "richtiges-passwort" not in stored
    assert "richtiges" not in stored


def test_same_password_gets_different_salts(stored: str) -> None:
    again = hash_password("richtiges-passwort")
    assert again != stored
    assert again.split("$")[4] != stored.split("$")[4]
    assert verify_password("richtiges-passwort", again)


def test_unicode_normalisation_matches_both_forms() -> None:
    composed = "Grüße-aus-Köln"
    decomposed = "Gru\u0308ße-aus-Ko\u0308ln"
    assert composed != decomposed
    assert verify_password(decomposed, hash_password(composed))


def test_unknown_group_check_is_always_false() -> None:
    assert verify_unknown("anything") is False


def test_generated_passwords_are_strong_and_typable() -> None:
    seen = {generate_password() for _ in range(200)}
    assert len(seen) == 200
    for password in seen:
        assert re.fullmatch(r"[a-z2-7]{5}(-[a-z2-7]{5}){3}", password)
    # 20 characters from a 32-letter alphabet: 100 bits, well above 64.
    assert 20 * 5 >= 64


def test_generated_password_round_trips() -> None:
    password = generate_password()
    assert verify_password(password, hash_password(password))
