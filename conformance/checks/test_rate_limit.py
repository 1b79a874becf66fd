"""Rate limiting: per user, across connections, every message counts, excess not processed.

The limit comes from the welcome (``limits.rateLimit``). Each check exhausts a user of its
own, so no other check is slowed down.
"""

from __future__ import annotations

import time

import pytest

from conformance import spec, steps
from conformance.client import Client, Message, json_text, summarize
from conformance.harness import Harness

RATE_LIMITED = spec.error_code("rate_limited")
#: The allowance for network and scheduling delay LIFE-010 grants every timer (seconds).
TIMING_ALLOWANCE = int(spec.quoted("LIFE-010", "250")) / 1000
INVALID_JSON = spec.error_code("invalid_json")


def rate_limit(rep: Harness) -> tuple[int, float]:
    """(maxMessages, window seconds) from the welcome; skip if over the kit's budget."""
    count, window_ms = rep.profile.rate_max_messages, rep.profile.rate_window_ms
    if count is None or window_ms is None:
        raise rep.fail(
            "AUTH-010",
            expected="the welcome to advertise limits.rateLimit",
            received="limits.rateLimit = "
            + json_text((rep.profile.payload.get("limits") or {}).get("rateLimit")),
        )
    budget = rep.target.budgets.max_rate_messages
    if count > budget:
        pytest.skip(f"maxMessages {count} exceeds budgets.max_rate_messages {budget}")
    return count, window_ms / 1000


def exhaust(rep: Harness, clients: list[Client], count: int, window: float) -> None:
    """Send exactly ``count`` messages round-robin (pings and two invalid frames) and see
    each answered: pongs for pings, invalid_json for the rest (RATE-004, RATE-001)."""
    started = time.monotonic()
    pings: list[tuple[Client, str]] = []
    invalid: list[Client] = []
    for index in range(count):
        client = clients[index % len(clients)]
        if index in (1, count - 2):
            client.send_raw("{not json")
            invalid.append(client)
        else:
            pings.append((client, client.send("ping")))
    for client, ping in pings:
        client.expect("pong", correlation_id=ping, requirement="RATE-004")
    for client in invalid:
        client.expect_refusal(INVALID_JSON, of=None, requirement="RATE-004", exactly_one=False)
    if time.monotonic() - started > window / 2:
        pytest.skip(f"sending {count} messages took over half the {window:g} s window")


def refused_as_limited(
    rep: Harness, client: Client, sent: str | None, *, requirement: str
) -> Message:
    """The rate_limited refusal of ``sent``. A message that is not refused breaks the
    calling check's ``requirement`` (RATE-001 when the window is the user's, RATE-002 when
    the excess message is at stake); a missing or non-positive retry_after_ms RATE-003."""
    error = client.expect_refusal(RATE_LIMITED, of=sent, requirement=requirement, exactly_one=False)
    retry = error["payload"].get("retry_after_ms")
    if not isinstance(retry, int) or retry <= 0:
        raise rep.fail(
            "RATE-003",
            expected="retry_after_ms, a positive number of milliseconds",
            received=summarize(error),
        )
    return error


@pytest.mark.requirements("RATE-001", "RATE-002", "RATE-004", "ERR-011")
def test_the_limit_counts_every_message_of_a_user_across_connections(rep: Harness) -> None:
    """maxMessages messages over two connections (invalid ones too) are all processed; the
    next one, even invalid JSON, is refused with rate_limited."""
    count, window = rate_limit(rep)
    user = rep.user("busy")
    clients = [rep.connect(user, label="busy"), rep.connect(user, label="busy")]
    exhaust(rep, clients, count, window)
    ping = clients[0].send("ping")
    refused_as_limited(rep, clients[0], ping, requirement="RATE-001")
    clients[0].expect_none("pong", correlation_id=ping, within=0.0, requirement="RATE-002")
    clients[1].send_raw("{not json")
    refused_as_limited(rep, clients[1], None, requirement="RATE-001")


@pytest.mark.requirements("RATE-002")
@pytest.mark.features("rooms")
def test_a_message_over_the_limit_is_not_processed(rep: Harness) -> None:
    """The excess message is a room_join: refused, and the room's member hears nothing."""
    count, window = rate_limit(rep)
    member = rep.connect(label="member")
    room = steps.populated_room(rep, member)
    client = rep.connect(label="busy")
    exhaust(rep, [client], count, window)
    sent = client.send("room_join", {"roomId": room})
    refused_as_limited(rep, client, sent, requirement="RATE-002")
    member.expect_none(
        "user_join",
        where=steps.names_client(client),
        requirement="RATE-002",
        description="user_join for it",
    )


@pytest.mark.requirements("RATE-001", "RATE-004")
def test_one_users_limit_does_not_slow_another(rep: Harness) -> None:
    """While one user is limited, another user's messages are processed as usual."""
    count, window = rate_limit(rep)
    busy, calm = rep.connect(label="busy"), rep.connect(label="calm")
    exhaust(rep, [busy], count, window)
    refused_as_limited(rep, busy, busy.send("ping"), requirement="RATE-002")
    calm.expect_open(requirement="RATE-004")


@pytest.mark.requirements("RATE-003", "RATE-001", "LIFE-010")
@pytest.mark.background
def test_the_window_admits_messages_again_after_retry_after_ms(rep: Harness) -> None:
    """retry_after_ms is positive; a window's worth of messages sent while limited are
    refused and do not count; once retry_after_ms (plus the timing allowance) has passed
    since the first refusal, the user is served again.

    The wait is silent (a keep-alive ping would itself be limited), so the user comes back
    on a new connection: the window is the user's, not the connection's.
    """
    count, window = rate_limit(rep)
    user = rep.user("busy")
    client = rep.connect(user, label="busy")
    exhaust(rep, [client], count, window)
    error = refused_as_limited(rep, client, client.send("ping"), requirement="RATE-002")
    refused_at = time.monotonic()
    retry = error["payload"]["retry_after_ms"] / 1000
    budget = rep.target.budgets.max_rate_wait
    if retry > budget:
        pytest.skip(f"retry_after_ms {retry:g} s exceeds budgets.max_rate_wait {budget:g} s")
    # Halfway through the wait, a full window's worth of messages: refused, and (if they
    # counted) enough to keep the user limited long after retry_after_ms.
    time.sleep(max(0.0, refused_at + retry / 2 - time.monotonic()))
    for _ in range(count):
        refused_as_limited(rep, client, client.send("ping"), requirement="RATE-002")
    time.sleep(max(0.0, refused_at + retry + TIMING_ALLOWANCE - time.monotonic()))
    back = rep.connect(user, label="back")
    ping = back.send("ping")
    answer = back.expect(
        lambda m: m.get("type") in ("pong", "error"),
        correlation_id=ping,
        requirement="RATE-003",
        description="the pong of a ping sent after retry_after_ms",
    )
    if answer.get("type") != "pong":
        raise rep.fail(
            "RATE-001",
            sent=f"{count} more messages while limited, then, "
            f"{retry + TIMING_ALLOWANCE:.3f} s after the first refusal (retry_after_ms "
            f"{retry * 1000:g} ms plus the allowance of LIFE-010), a ping",
            expected="a pong: messages refused by the limit do not count toward it",
            received=summarize(answer),
        )
