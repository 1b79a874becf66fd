"""Errors: one correlated error per refused message, no effect, no close, registered codes."""

from __future__ import annotations

import pytest

from conformance import spec, steps
from conformance.checks._samples import (
    CODE_REQUIREMENT,
    ENVELOPE_DEFECTS,
    PAYLOAD_DEFECTS,
    Sample,
    expected,
    other_major,
)
from conformance.client import Client, json_text, summarize
from conformance.harness import Harness
from rep_spec import catalog, requirements

INVALID_JSON = spec.error_code("invalid_json")
INVALID_PAYLOAD = spec.error_code("invalid_payload")
NOT_FOUND = spec.error_code("not_found")
FORBIDDEN = spec.error_code("forbidden")

NOT_AN_OBJECT = {
    "truncated": '{"id": "x", "type": "ping"',
    "garbage": "{this is not json",
    "array": "[1, 2, 3]",
    "string": '"ping"',
    "number": "42",
    "null": "null",
    "empty": "",
}


def _malformed(client: Client, sample: Sample) -> str:
    """Send the sample built from a ping; returns its id (the sample may have broken it)."""
    message = sample.make(client.envelope("ping"))
    client.send_json(message)
    return str(message.get("id"))


@pytest.mark.requirements("ERR-007", "ERR-001", "ERR-005")
@pytest.mark.parametrize("frame", NOT_AN_OBJECT.values(), ids=NOT_AN_OBJECT.keys())
def test_frames_that_are_not_json_objects_are_answered_with_invalid_json(
    rep: Harness, frame: str
) -> None:
    """Text that is not JSON, or JSON that is not an object: invalid_json, connection open."""
    client = rep.connect()
    client.send_raw(frame)
    client.expect_refusal(INVALID_JSON, of=None, requirement="ERR-007")


@pytest.mark.requirements("ERR-002")
def test_every_error_code_is_in_the_registry(rep: Harness) -> None:
    """Provoke several kinds of refusal; each error's code is a registered one."""
    client = rep.connect()
    client.send_raw("{")
    client.send("no_such_message_type")
    client.send("pong", {})
    client.send("ping", {"bogus": 1})
    errors = [client.expect("error", requirement="ERR-001") for _ in range(4)]
    for error in errors:
        code = error.get("payload", {}).get("code")
        if code not in catalog().error_codes:
            raise rep.fail(
                "ERR-002",
                expected="a code from the error-code registry: " + ", ".join(catalog().error_codes),
                received=summarize(error),
            )


@pytest.mark.requirements("ERR-003")
@pytest.mark.parametrize(
    "sample",
    [s for s in ENVELOPE_DEFECTS if s.name in ("missing-timestamp", "unknown-top-level-member")]
    + PAYLOAD_DEFECTS[:1],
    ids=lambda s: s.name,
)
def test_errors_carry_the_refused_messages_id_as_correlation_id(
    rep: Harness, sample: Sample
) -> None:
    """When the refused message's id is readable, the error correlates to it."""
    client = rep.connect()
    message = sample.make(client.envelope("ping"))
    want = expected(message)
    if want.correlation_id is None:
        raise RuntimeError(f"kit error: sample {sample.name} must keep a readable id")
    client.send_json(message)
    client.expect_refusal(
        want.code, of=want.correlation_id, requirement=CODE_REQUIREMENT[want.code]
    )


@pytest.mark.requirements("ERR-004", "ENV-009")
@pytest.mark.features("rooms")
def test_a_refused_join_joins_nothing(rep: Harness) -> None:
    """A room_join with an unknown payload member is refused: no user_join, not a member."""
    member, intruder = rep.connect(label="member"), rep.connect(label="intruder")
    room = steps.populated_room(rep, member)
    sent = intruder.send("room_join", {"roomId": room, "invitation": "please"})
    intruder.expect_refusal(INVALID_PAYLOAD, of=sent, requirement="ERR-009")
    member.expect_none(
        "user_join",
        where=steps.names_client(intruder),
        requirement="ERR-004",
        description="user_join for it",
    )
    leave = intruder.send("room_leave", {"roomId": room})
    intruder.expect_refusal(NOT_FOUND, of=leave, requirement="ERR-004")


@pytest.mark.requirements("ERR-004", "ENV-009")
@pytest.mark.features("data")
def test_a_refused_create_stores_nothing(rep: Harness) -> None:
    """A data_create with an unknown payload member is refused and the collection stays empty."""
    client = rep.connect()
    collection = rep.name("col")
    sent = client.send(
        "data_create", {"collection": collection, "recordId": "r1", "data": {}, "owner": "x"}
    )
    client.expect_refusal(INVALID_PAYLOAD, of=sent, requirement="ERR-009")
    synced = steps.request(client, "data_sync", {"collection": collection})
    records = synced["payload"].get("records")
    if records:
        raise rep.fail(
            "ERR-004",
            expected=f"no record in {collection} after the refused data_create",
            received=f"data_sync lists {json_text(records)}",
        )


@pytest.mark.requirements("ERR-005")
def test_the_connection_survives_every_kind_of_refusal(rep: Harness) -> None:
    """Bad JSON, a binary frame, bad envelopes, unknown and misdirected types, bad payloads,
    a bad version: after each, the same connection still answers a ping."""
    rep.needs_messages(len(ENVELOPE_DEFECTS) + len(PAYLOAD_DEFECTS) + 6)
    client = rep.connect()
    client.send_raw("{")
    client.send_raw(b"\x00\x01binary")
    for sample in [*ENVELOPE_DEFECTS, *PAYLOAD_DEFECTS]:
        _malformed(client, sample)
    client.send("no_such_message_type")
    client.send("auth", {})
    client.send("ping", metadata={"version": other_major()})
    client.expect_open(requirement="ERR-005")
    if client.closed is not None:
        raise rep.fail("ERR-005", expected="the connection open", received=client.closed.describe())


@pytest.mark.requirements("ERR-006")
@pytest.mark.features("rooms", "chat")
def test_refused_messages_reach_no_other_client(rep: Harness) -> None:
    """A room member sends malformed chat messages; the other member receives nothing."""
    sender, other = rep.connect(label="sender"), rep.connect(label="other")
    room = steps.populated_room(rep, other, sender)
    since = rep.transcript.now()
    refused = [
        sender.send("chat_message", {"roomId": room, "content": "x", "color": "red"}),
        sender.send("chat_message", {"roomId": room, "content": ""}),
        sender.send("chat_message", {"roomId": room}),
        sender.send("status_update", {"status": "sleeping"}),
    ]
    for sent in refused:
        sender.expect("error", correlation_id=sent, requirement="ERR-001")
    sender.send_raw("{")
    sender.expect("error", requirement="ERR-001")
    other.expect_none(
        lambda m: m.get("type") != "heartbeat",
        requirement="ERR-006",
        description="message caused by the refused ones",
        since=since,
    )


@pytest.mark.requirements("ERR-010")
@pytest.mark.parametrize(
    "sample",
    [s for s in ENVELOPE_DEFECTS if s.name in ("missing-timestamp", "unknown-top-level-member")]
    + PAYLOAD_DEFECTS,
    ids=lambda s: s.name,
)
def test_schema_errors_point_at_the_offending_member(rep: Harness, sample: Sample) -> None:
    """details.pointer is the JSON pointer of the bad member; details.requirement a known id."""
    client = rep.connect()
    message = sample.make(client.envelope("ping"))
    want = expected(message)
    client.send_json(message)
    error = client.expect_refusal(
        want.code, of=want.correlation_id, requirement=CODE_REQUIREMENT[want.code]
    )
    details = error["payload"].get("details")
    details = details if isinstance(details, dict) else {}
    if details.get("pointer") != want.pointer:
        raise rep.fail(
            "ERR-010",
            expected=f"details.pointer = {json_text(want.pointer)}",
            received=f"details = {json_text(details)}",
        )
    if details.get("requirement") not in requirements():
        raise rep.fail(
            "ERR-010",
            expected="details.requirement naming a registered requirement, e.g. "
            + str(want.requirement),
            received=f"details = {json_text(details)}",
        )


def _order_cases() -> dict[str, dict[str, object]]:
    """Messages that fail several checks at once; the schemas compute which comes first."""
    major = other_major()
    return {
        "envelope-before-type": {"type": "no_such_message_type", "priority": 1},
        "type-before-version": {"type": "no_such_message_type", "metadata": {"version": major}},
        "direction-before-version": {"type": "pong", "metadata": {"version": major}},
        "version-before-payload": {
            "type": "ping",
            "metadata": {"version": major},
            "payload": {"bogus": 1},
        },
    }


@pytest.mark.requirements("ERR-011")
@pytest.mark.parametrize("case", list(_order_cases()))
def test_the_first_failing_check_decides_the_code(rep: Harness, case: str) -> None:
    """JSON, envelope, type, direction, version, payload: the first failure is reported."""
    client = rep.connect()
    message = client.envelope("ping")
    overrides = _order_cases()[case]
    for key, value in overrides.items():
        if key == "metadata" and isinstance(value, dict):
            message["metadata"] = {**message["metadata"], **value}
        else:
            message[key] = value
    want = expected(message)
    client.send_json(message)
    client.expect_refusal(want.code, of=want.correlation_id, requirement="ERR-011")


@pytest.mark.requirements("ERR-011")
@pytest.mark.features("rooms")
def test_payload_checks_come_before_behaviour_checks(rep: Harness) -> None:
    """A leave for a room the client is not in, with a bad payload: invalid_payload wins."""
    client = rep.connect()
    sent = client.send("room_leave", {"roomId": rep.name("room"), "force": True})
    client.expect_refusal(INVALID_PAYLOAD, of=sent, requirement="ERR-011")


@pytest.mark.requirements("ERR-012")
def test_invalid_envelope_messages_start_with_invalid_message_format(rep: Harness) -> None:
    """The human-readable message of invalid_envelope keeps the familiar prefix."""
    client = rep.connect()
    message = client.envelope("ping")
    del message["timestamp"]
    want = expected(message)
    client.send_json(message)
    error = client.expect_refusal(want.code, of=want.correlation_id, requirement="ERR-008")
    text = str(error["payload"].get("message", ""))
    if not text.startswith(spec.INVALID_ENVELOPE_PREFIX):
        raise rep.fail(
            "ERR-012",
            expected=f"a message starting with {json_text(spec.INVALID_ENVELOPE_PREFIX)}",
            received=f"message {json_text(text)}",
        )


@pytest.mark.requirements("ERR-001", "ERR-002")
@pytest.mark.features("rooms", "chat")
def test_behaviour_refusals_are_single_registered_errors(rep: Harness) -> None:
    """Refusals that come from behaviour (not found, forbidden) follow the same rules."""
    client = rep.connect()
    leave = client.send("room_leave", {"roomId": rep.name("room")})
    client.expect_refusal(NOT_FOUND, of=leave, requirement="ROOM-008")
    chat = client.send("chat_message", {"roomId": rep.name("room"), "content": "hi"})
    client.expect_refusal(FORBIDDEN, of=chat, requirement="CHAT-001")


SURROGATES = {
    "escaped-lone-high": '{"id": "s-1", "type": "ping", "timestamp": "2025-01-01T00:00:00Z",'
    ' "payload": {}, "metadata": {"note": "\\ud800"}}',
    "escaped-lone-low": '{"id": "s-1", "type": "ping", "timestamp": "2025-01-01T00:00:00Z",'
    ' "payload": {}, "metadata": {"note": "x\\udc00y"}}',
    "reversed-pair": '{"id": "s-1", "type": "ping", "timestamp": "2025-01-01T00:00:00Z",'
    ' "payload": {}, "metadata": {"\\udc00\\ud800": 1}}',
}


@pytest.mark.requirements("ENV-016", "ENV-015", "ERR-007")
@pytest.mark.parametrize("frame", SURROGATES.values(), ids=SURROGATES.keys())
def test_a_lone_surrogate_is_answered_with_invalid_json(rep: Harness, frame: str) -> None:
    """JSON text whose string escapes a lone surrogate is not I-JSON: invalid_json, and
    the error itself is I-JSON (the kit's reader refuses anything else)."""
    client = rep.connect()
    client.send_raw(frame)
    client.expect_refusal(INVALID_JSON, of=None, requirement="ENV-016")
    client.expect_open(requirement="ERR-005")


@pytest.mark.requirements("MSG-008")
def test_answers_come_in_the_order_of_the_messages(rep: Harness) -> None:
    """Invalid JSON, an unknown type, a ping, a refused leave, a ping: the errors and
    pongs arrive in that order."""
    client = rep.connect()
    client.send_raw("{nope")
    unknown = client.send("no_such_type", {})
    first = client.send("ping")
    leave = client.send("room_leave", {"roomId": rep.slug("nowhere")})
    last = client.send("ping")
    want = [None, unknown, first, leave, last]
    client.sync()
    answers = [
        m.get("metadata", {}).get("correlation_id")
        for _, m in client.received()
        if m.get("type") in ("error", "pong")
    ]
    answers = [a for a in answers if a in want]
    if answers[: len(want)] != want:
        raise rep.fail(
            "MSG-008",
            sent=f"invalid JSON, then {json_text(want[1:])} in this order",
            expected=f"their answers correlated in the same order: {json_text(want)}",
            received=f"answers correlated to {json_text(answers)}",
        )
