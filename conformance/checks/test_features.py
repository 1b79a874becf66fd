"""Each checked feature answers its first request; a feature that does not is one finding.

These checks run before all others. When a feature's first request is answered with
``unknown_type``, with an error that names no code, with nothing, or (over HTTP) with
404/405/501, the feature is recorded as not implemented: this check fails, and every
later check that needs the feature is ``inconclusive``, blocked by it, instead of forty
failures that all say the same thing.
"""

from __future__ import annotations

import pytest

from conformance import spec, steps
from conformance.client import Client, Message, json_text, summarize
from conformance.failures import ConformanceFailure
from conformance.generation.sse import SseError, SseStream
from conformance.harness import Harness
from rep_spec import catalog

UNKNOWN_TYPE = spec.error_code("unknown_type")
#: HTTP statuses that say "no such endpoint or method", not "refused".
NOT_IMPLEMENTED_STATUSES = frozenset({404, 405, 501})
BROADCAST = spec.permission("message:broadcast")


def _entry(
    rep: Harness, client: Client, feature: str, type_: str, payload: dict[str, object]
) -> Message:
    """Send the feature's request; the answer (response or copy), or a failure that
    records the feature as not implemented when the server does not know the type."""
    requirement = "MSG-003" if catalog().types[type_].answer_kind == "response" else "MSG-004"
    answer = steps.answer_type(type_)
    sent = client.send(type_, payload)
    try:
        found = client.expect(
            lambda m: m.get("type") in (answer, spec.error_type()),
            correlation_id=sent,
            requirement=requirement,
            description=f"a {answer} with metadata.correlation_id = {json_text(sent)}",
        )
    except ConformanceFailure as exc:
        if client.is_open():  # a dropped connection says nothing about the feature
            rep.feature_missing(feature, f"{type_} got no answer: {exc.received}")
        raise
    if found.get("type") != spec.error_type():
        return found
    body = found.get("payload")
    code = body.get("code") if isinstance(body, dict) else None
    if code in (None, UNKNOWN_TYPE):
        rep.feature_missing(feature, f"{type_} was answered with {summarize(found)}")
    raise rep.fail(
        requirement,
        sent=client.describe_sent(sent),
        expected=f"a {answer} (the feature {json_text(feature)} is claimed or advertised)",
        received=f"received {summarize(found)}",
    )


def _rooms(rep: Harness) -> None:
    _entry(rep, rep.connect(), "rooms", "room_join", {"roomId": rep.name("room")})


def _chat(rep: Harness) -> None:
    client = rep.connect()
    room = rep.name("room")
    steps.join(client, room)
    _entry(rep, client, "chat", "chat_message", {"roomId": room, "content": "hello"})


def _presence(rep: Harness) -> None:
    _entry(rep, rep.connect(), "presence", "status_update", {"status": "away"})


def _notifications(rep: Harness) -> None:
    client = rep.connect(roles=steps.ADMIN, permissions=(BROADCAST,))
    payload = {k: v for k, v in spec.valid_client_payload("notification").items() if k != "roomId"}
    _entry(rep, client, "notifications", "notification", payload)


def _data(rep: Harness) -> None:
    _entry(rep, rep.connect(), "data", "data_sync", {"collection": rep.name("col")})


def _streams(rep: Harness) -> None:
    stream = steps.require_stream(rep)
    _entry(rep, rep.connect(), "streams", "stream_subscribe", {"streamId": stream})


def _sse(rep: Harness) -> None:
    url = rep.target.node.sse_url or f"{rep.target.node.http_url}/events"
    channel = rep.target.fixtures.stream or rep.name("channel")
    token = rep.token(rep.user())
    try:
        stream = SseStream(
            url,
            channels=[channel],
            token=token,
            transcript=rep.transcript,
            label="sse#1",
            timeout=rep.timeouts.connect,
        )
    except SseError as exc:
        if exc.status in NOT_IMPLEMENTED_STATUSES:
            rep.feature_missing("sse", f"GET /events answered HTTP {exc.status}")
        raise rep.fail(
            "SSE-002",
            sent=f"GET /events?channels={channel} with a valid token",
            expected="HTTP 200 with Content-Type text/event-stream",
            received=f"HTTP {exc.status} {exc.body[:200]}",
        ) from None
    stream.close()


def _publish(rep: Harness) -> None:
    stream = steps.require_stream(rep)
    response = rep.http.post(
        f"/streams/{stream}/events",
        json={"type": "entry-check", "tags": [], "data": {}},
        token=steps.admin_token(rep),
    )
    if response.status in NOT_IMPLEMENTED_STATUSES:
        rep.feature_missing(
            "publish", f"POST /streams/{stream}/events answered HTTP {response.status}"
        )
    if response.status != 201:
        raise rep.fail(
            "HTTP-003",
            sent=f"POST /streams/{stream}/events with a token that has stream:publish",
            expected="HTTP 201 with the stored event's id",
            received=f"HTTP {response.status} {response.text[:200]}",
        )


@pytest.mark.feature_entry("rooms")
@pytest.mark.features("rooms")
@pytest.mark.requirements("MSG-003")
def test_the_rooms_feature_answers_a_first_join(rep: Harness) -> None:
    """A room_join to a new room gets its room_join_response."""
    _rooms(rep)


@pytest.mark.feature_entry("chat")
@pytest.mark.features("chat", "rooms")
@pytest.mark.requirements("MSG-004")
def test_the_chat_feature_answers_a_first_message(rep: Harness) -> None:
    """A member's chat_message comes back to the sender as its copy."""
    _chat(rep)


@pytest.mark.feature_entry("presence")
@pytest.mark.features("presence")
@pytest.mark.requirements("MSG-004")
def test_the_presence_feature_answers_a_first_status(rep: Harness) -> None:
    """A status_update comes back to the sender as its copy."""
    _presence(rep)


@pytest.mark.feature_entry("notifications")
@pytest.mark.features("notifications")
@pytest.mark.requirements("MSG-004")
def test_the_notifications_feature_answers_a_first_broadcast(rep: Harness) -> None:
    """A broadcast notification from a client with message:broadcast reaches the sender."""
    _notifications(rep)


@pytest.mark.feature_entry("data")
@pytest.mark.features("data")
@pytest.mark.requirements("MSG-003")
def test_the_data_feature_answers_a_first_sync(rep: Harness) -> None:
    """A data_sync of a new collection gets its data_sync_response."""
    _data(rep)


@pytest.mark.feature_entry("streams")
@pytest.mark.features("streams")
@pytest.mark.requirements("MSG-003")
def test_the_streams_feature_answers_a_first_subscription(rep: Harness) -> None:
    """A stream_subscribe to the target's stream gets its stream_subscribe_response."""
    _streams(rep)


@pytest.mark.feature_entry("sse")
@pytest.mark.requirements("SSE-002")
def test_the_sse_feature_opens_a_first_stream(rep: Harness) -> None:
    """GET /events with a valid token opens an event stream."""
    _sse(rep)


@pytest.mark.feature_entry("publish")
@pytest.mark.requirements("HTTP-003")
def test_the_publish_feature_stores_a_first_event(rep: Harness) -> None:
    """POST /streams/{streamId}/events stores the event and answers 201."""
    _publish(rep)
