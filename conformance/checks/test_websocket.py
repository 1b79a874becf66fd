"""WebSocket binding: subprotocol, text frames, binary frames, message size limits."""

from __future__ import annotations

import orjson
import pytest

from conformance import spec
from conformance.client import SUBPROTOCOL, Client, json_text
from conformance.harness import Attempt, Harness

UNSUPPORTED_FRAME = spec.error_code("unsupported_frame")
MESSAGE_TOO_BIG = spec.close_code("message_too_big")
#: Messages larger than this are not sent by the kit (WS-005 with a huge advertised limit).
MAX_PROBE_BYTES = 16 * 1024 * 1024


def padded_ping(client: Client, size: int) -> str:
    """A valid ping envelope of exactly ``size`` UTF-8 bytes (padding in a metadata extension)."""
    envelope = client.envelope("ping")
    envelope["metadata"]["padding"] = ""
    base = len(orjson.dumps(envelope))
    if size < base:
        raise ValueError(f"a ping needs at least {base} bytes")
    envelope["metadata"]["padding"] = "p" * (size - base)
    text = orjson.dumps(envelope).decode()
    if len(text.encode()) != size:
        raise RuntimeError("kit error: padding arithmetic")
    return text


def advertised_limit(rep: Harness, client: Client) -> int:
    limit = client.welcome.get("payload", {}).get("limits", {}).get("maxMessageBytes")
    if not isinstance(limit, int):
        raise rep.fail(
            "AUTH-010",
            expected="the welcome to advertise limits.maxMessageBytes",
            received=f"maxMessageBytes = {json_text(limit)}",
        )
    return limit


def offered(rep: Harness, offer: list[str], requirement: str, expected: str) -> Attempt:
    """A handshake with a valid token offering ``offer``; one the client must fail (e.g. an
    unoffered subprotocol in the answer: RFC 6455) fails ``requirement``."""
    user = rep.user()
    try:
        return rep.attempt(rep.token(user), subprotocols=offer, label="client", user=user)
    except ConnectionError as exc:
        raise rep.fail(
            requirement,
            sent=f"a handshake with a valid token offering {json_text(offer)}",
            expected=expected,
            received=f"a handshake the client must fail: {exc}",
        ) from exc


@pytest.mark.requirements("WS-001")
@pytest.mark.parametrize(
    "offer", [[SUBPROTOCOL], ["chat.v2", SUBPROTOCOL]], ids=["only", "among-others"]
)
def test_the_rep_subprotocol_is_selected_when_offered(rep: Harness, offer: list[str]) -> None:
    """Offering rep.v1 (alone or with others) gets rep.v1 selected in the handshake."""
    attempt = offered(rep, offer, "WS-001", f"HTTP 101 with Sec-WebSocket-Protocol: {SUBPROTOCOL}")
    if attempt.client is None:
        raise rep.fail(
            "WS-001",
            sent=f"a handshake with a valid token offering {json_text(offer)}",
            expected="HTTP 101 for a valid token",
            received=f"HTTP {attempt.status} {attempt.body[:200]}",
        )
    selected = attempt.client.ws.subprotocol
    if selected != SUBPROTOCOL:
        raise rep.fail(
            "WS-001",
            sent=f"a handshake offering {offer}",
            expected=f"Sec-WebSocket-Protocol: {SUBPROTOCOL}",
            received=f"subprotocol {json_text(selected)}",
        )


@pytest.mark.requirements("WS-002")
def test_a_fragmented_text_message_is_one_message(rep: Harness) -> None:
    """A ping sent in three fragments is one message: one pong, in text frames."""
    client = rep.connect()
    envelope = client.envelope("ping")
    client.send_raw(orjson.dumps(envelope).decode(), fragments=3)
    client.expect("pong", correlation_id=envelope["id"])
    client.sync()
    client.expect_none("error", within=0.0, description="error about the fragments")
    for entry in rep.transcript.entries():
        if entry.direction == "received" and entry.kind == "binary":
            raise rep.fail(
                "WS-002",
                expected="every REP message in a text frame",
                received=f"a binary frame at {entry.at:.3f} s",
            )


@pytest.mark.requirements("WS-003", "ERR-005")
def test_a_binary_frame_is_answered_with_unsupported_frame(rep: Harness) -> None:
    """Binary data, even a valid ping, gets unsupported_frame without correlation_id."""
    client = rep.connect()
    envelope = client.envelope("ping")
    client.send_raw(orjson.dumps(envelope))
    error = client.expect_refusal(UNSUPPORTED_FRAME, of=None, requirement="WS-003")
    correlation = error.get("metadata", {}).get("correlation_id")
    if correlation is not None:
        raise rep.fail(
            "WS-003",
            expected="an unsupported_frame error without correlation_id",
            received=f"correlation_id = {json_text(correlation)}",
        )
    client.expect_none("pong", within=0.0, description="pong for the binary ping")


@pytest.mark.requirements("WS-004")
def test_a_message_over_the_advertised_maximum_is_closed_with_1009(rep: Harness) -> None:
    """One byte over maxMessageBytes: the server closes with 1009."""
    client = rep.connect()
    limit = advertised_limit(rep, client)
    if limit + 1 > MAX_PROBE_BYTES:
        pytest.skip(f"the advertised maxMessageBytes ({limit}) is too large to probe")
    client.send_raw(padded_ping(client, limit + 1))
    client.expect_close(MESSAGE_TOO_BIG, sent=f"a {limit + 1}-byte ping")


@pytest.mark.requirements("WS-005")
def test_a_message_of_exactly_the_advertised_maximum_is_processed(rep: Harness) -> None:
    """maxMessageBytes is at least the spec's minimum, and a message that size is answered."""
    client = rep.connect()
    limit = advertised_limit(rep, client)
    if limit < spec.MIN_MAX_MESSAGE_BYTES:
        raise rep.fail(
            "WS-005",
            expected=f"maxMessageBytes >= {spec.MIN_MAX_MESSAGE_BYTES}",
            received=f"maxMessageBytes = {limit}",
        )
    if limit > MAX_PROBE_BYTES:
        pytest.skip(f"the advertised maxMessageBytes ({limit}) is too large to probe")
    text = padded_ping(client, limit)
    client.send_raw(text)
    client.expect("pong", correlation_id=orjson.loads(text)["id"])


@pytest.mark.requirements("WS-010")
@pytest.mark.parametrize("offer", [[], ["chat.v2"]], ids=["none", "another"])
def test_a_handshake_without_rep_v1_is_served_without_a_subprotocol(
    rep: Harness, offer: list[str]
) -> None:
    """Offering no subprotocol, or only another one: accepted, no subprotocol selected,
    and the connection answers a ping."""
    attempt = offered(
        rep,
        offer,
        "WS-010",
        "HTTP 101 without Sec-WebSocket-Protocol (RFC 6455: only an offered one)",
    )
    if attempt.client is None:
        raise rep.fail(
            "WS-010",
            sent=f"a handshake with a valid token offering {json_text(offer)}",
            expected="HTTP 101 and a welcome",
            received=f"HTTP {attempt.status} {attempt.body[:200]}",
        )
    selected = attempt.client.ws.subprotocol
    if selected is not None:
        raise rep.fail(
            "WS-010",
            sent=f"a handshake offering {json_text(offer)}",
            expected="no Sec-WebSocket-Protocol in the answer (RFC 6455: only an offered one)",
            received=f"subprotocol {json_text(selected)}",
        )
    attempt.client.expect_open(requirement="WS-010")
