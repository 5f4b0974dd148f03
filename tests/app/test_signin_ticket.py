"""Sign-in tickets (app/signin_ticket.py): a leader signs in again with the ticket from
its last `login_ok` instead of the password; a ticket that is wrong, for another group,
from before a password change or expired is refused like a wrong password, and counts
like one."""

from __future__ import annotations

from typing import Any

from protocol_steps import Connect

from app.signin_ticket import TTL_SECONDS, SigninTickets

KEY = b"k" * 32
HASH = "scrypt$15$8$1$c2FsdA$aGFzaA"


def test_a_ticket_signs_in_to_its_group_only_until_it_expires() -> None:
    desk = SigninTickets(KEY)
    ticket = desk.issue("funkclub", HASH, 1000.0)
    assert "funkclub" not in ticket and HASH not in ticket
    assert desk.check(ticket, "funkclub", HASH, 1000.0 + TTL_SECONDS - 1)
    assert not desk.check(ticket, "funkclub", HASH, 1000.0 + TTL_SECONDS)  # expired
    assert not desk.check(ticket, "chor", HASH, 1001.0)  # another group
    assert not desk.check(ticket, "funkclub", HASH + "x", 1001.0)  # a new password
    assert not SigninTickets(b"o" * 32).check(ticket, "funkclub", HASH, 1001.0)  # other key
    flipped = ticket[:-2] + ("A" if ticket[-2] != "A" else "B") + ticket[-1]
    for bad in (flipped, "t1.", "t1.!!!", "k1." + ticket[3:], ticket + "AAAA", "t1." + "A" * 80):
        assert not desk.check(bad, "funkclub", HASH, 1001.0), bad


async def test_leader_signs_in_again_with_the_ticket(connect: Connect, kreis_server: Any) -> None:
    group, password = kreis_server.group, kreis_server.password
    first = await connect(kind="console")
    ok = await first.request({"type": "login", "group": group, "password": password}, "login_ok")
    assert ok["ticket"].startswith("t1.")
    again = await connect(kind="console")
    back = await again.request(
        {"type": "login", "group": group, "ticket": ok["ticket"]}, "login_ok"
    )
    assert back["group"] == group and back["ticket"].startswith("t1.")
    # signed in for real: a leader's command works
    await again.request({"type": "list_rooms"}, "room_list")


async def test_a_wrong_ticket_counts_like_a_wrong_password(
    connect: Connect, kreis_server: Any
) -> None:
    group = kreis_server.group
    client = await connect(address="198.51.100.9")
    await client.send({"type": "login", "group": group})
    assert (await client.expect("error"))["code"] == "bad_message"  # neither
    both = {"type": "login", "group": group, "password": "x", "ticket": "t1.AAAA"}
    await client.send(both)
    assert (await client.expect("error"))["code"] == "bad_message"
    for _ in range(5):
        await client.send(
            {"type": "login", "group": group, "ticket": "t1.AAAAAAAAAAAAAAAAAAAAAAAAAAA"}
        )
        assert (await client.expect("error"))["code"] == "bad_credentials"
    await client.send({"type": "login", "group": group, "password": kreis_server.password})
    reply = await client.expect("error")
    assert reply["code"] == "rate_limited" and reply["retry_after"] > 0
