"""HTTP endpoints: /health, /stats, publishing to streams, and HTTP error bodies.

Bodies are checked against ``schemas/http/`` through ``rep_spec``.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance import spec, steps
from conformance.client import json_text
from conformance.frames import check_http_body
from conformance.generation.sse import SseError, SseStream
from conformance.harness import Harness
from conformance.http import HttpResponse
from conformance.jsonvalues import json_difference
from rep_spec import catalog

CONNECT = spec.permission("websocket:connect")


def conforming_body(rep: Harness, requirement: str, schema: str, response: HttpResponse) -> Any:
    body = response.json()
    violation = check_http_body(schema, body)
    if violation is not None:
        raise rep.fail(
            requirement,
            expected=f"a body matching http/{schema}.schema.json",
            received=f"HTTP {response.status} {response.text[:300]}: {violation}",
        )
    return body


@pytest.mark.requirements("HTTP-001")
def test_health_answers_200_status_ok(rep: Harness) -> None:
    """GET /health: 200 with {"status": "ok"}."""
    response = rep.http.get("/health")
    if response.status != 200:
        raise rep.fail("HTTP-001", expected="HTTP 200", received=f"HTTP {response.status}")
    conforming_body(rep, "HTTP-001", "health", response)


@pytest.mark.requirements("HTTP-002")
def test_stats_count_connections_rooms_and_streams(rep: Harness) -> None:
    """GET /stats while this check holds two connections in a room: counts reflect them."""
    first, second = rep.connect(label="first"), rep.connect(label="second")
    if rep.profile.supports("rooms"):
        steps.populated_room(rep, first, second)
    response = rep.http.get("/stats")
    if response.status != 200:
        raise rep.fail("HTTP-002", expected="HTTP 200", received=f"HTTP {response.status}")
    body = conforming_body(rep, "HTTP-002", "stats", response)
    floors = {"connections": 2, "rooms": 1 if rep.profile.supports("rooms") else 0}
    floors["streams"] = 1 if rep.target.fixtures.stream else 0
    for key, floor in floors.items():
        if body.get(key, -1) < floor:
            raise rep.fail(
                "HTTP-002",
                expected=f"{key} >= {floor} (this check alone holds that many)",
                received=json_text(body),
            )


@pytest.mark.requirements("HTTP-002")
def test_stats_change_by_exactly_what_a_client_does(rep: Harness) -> None:
    """One more WebSocket connection is one more connection; one more SSE stream too; a
    room with a member is one more room, and one fewer when its member leaves."""
    steps.stats_change(rep, "connections", lambda: rep.connect(), 1, requirement="HTTP-002")
    stream = rep.target.fixtures.stream
    if rep.profile.supports("sse") and stream is not None:
        opened: list[SseStream] = []

        def open_sse() -> None:
            url = rep.target.node.sse_url or f"{rep.target.node.http_url}/events"
            opened.append(
                SseStream(
                    url,
                    channels=[stream],
                    token=rep.token(rep.user()),
                    transcript=rep.transcript,
                    label=f"sse#{len(opened) + 1}",
                    timeout=rep.timeouts.connect,
                )
            )
            if opened[-1].wait_for(lambda e: True, rep.timeouts.answer, consume=False) is None:
                raise rep.fail("SSE-003", expected="a connection event", received="nothing")

        try:
            steps.stats_change(rep, "connections", open_sse, 1, requirement="HTTP-002")
        except SseError as refused:
            raise rep.fail(
                "SSE-001", expected="HTTP 200", received=f"HTTP {refused.status}"
            ) from refused
        finally:
            for sse in opened:
                sse.close()
    if not rep.profile.supports("rooms"):
        return
    client = rep.connect(label="member")
    rooms: list[str] = []

    def join_one() -> None:
        rooms.append(steps.populated_room(rep, client, label="counted"))

    def leave_one() -> None:
        steps.request(client, "room_leave", {"roomId": rooms.pop()}, requirement="ROOM-005")

    steps.stats_change(rep, "rooms", join_one, 1, requirement="HTTP-002")
    steps.stats_change(rep, "rooms", leave_one, -1, requirement="HTTP-002")


@pytest.mark.requirements("HTTP-003")
@pytest.mark.features("streams")
def test_a_published_event_is_stored_and_delivered_live(rep: Harness) -> None:
    """POST /streams/{id}/events with stream:publish: 201 with the id; subscribers get it."""
    stream = steps.require_stream(rep)
    kind = rep.name("evt")
    client = rep.connect()
    steps.request(
        client, "stream_subscribe", {"streamId": stream, "filter": {"eventTypes": [kind]}}
    )
    response = rep.http.post(
        f"/streams/{stream}/events",
        json={"type": kind, "tags": ["http"], "data": {"answer": 42}},
        token=steps.admin_token(rep),
    )
    if response.status != 201:
        raise rep.fail(
            "HTTP-003",
            expected="HTTP 201",
            received=f"HTTP {response.status} {response.text[:300]}",
        )
    event_id = conforming_body(rep, "HTTP-003", "publish-response", response)["id"]
    event = client.expect(
        "stream_event",
        where=lambda m: m.get("payload", {}).get("event", {}).get("id") == event_id,
        requirement="HTTP-003",
        description=f"the published event {event_id} live",
    )["payload"]["event"]
    difference = json_difference({"answer": 42}, event.get("data"), "/data")
    if event.get("type") != kind or difference is not None:
        raise rep.fail(
            "HTTP-003",
            expected="the event as published",
            received=json_text(event) + (f" ({difference})" if difference else ""),
        )


def _failures(rep: Harness, stream: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """Failing requests, each with the error code the registry says it earns."""
    admin = steps.admin_token(rep)
    plain = rep.token(rep.user())
    body = {"type": "evt", "data": {}}
    return {
        "no-token": ("unauthorized", {"json": body}),
        "bad-token": ("unauthorized", {"json": body, "token": "not-a-token"}),
        "no-publish-permission": ("forbidden", {"json": body, "token": plain}),
        "unknown-stream": ("not_found", {"json": body, "token": admin, "path": rep.name("nope")}),
        "not-json": ("invalid_json", {"body": "{nope", "token": admin}),
        "missing-type": ("invalid_payload", {"json": {"data": {}}, "token": admin}),
    }


CASES = [
    "no-token",
    "bad-token",
    "no-publish-permission",
    "unknown-stream",
    "not-json",
    "missing-type",
]


@pytest.mark.requirements("HTTP-004")
@pytest.mark.features("publish")
@pytest.mark.parametrize("case", CASES)
def test_failed_requests_get_the_registry_status_and_an_error_body(rep: Harness, case: str) -> None:
    """Each failure: the HTTP status the registry gives its code, and {error: {code, message}}."""
    stream = steps.require_stream(rep)
    code, request = _failures(rep, stream)[case]
    path = request.pop("path", stream)
    headers = {"Content-Type": "application/json"} if "body" in request else None
    response = rep.http.post(f"/streams/{path}/events", headers=headers, **request)
    status = catalog().error_code(spec.error_code(code)).http_status
    if response.status != status:
        raise rep.fail(
            "HTTP-004",
            sent=f"POST /streams/{path}/events ({case})",
            expected=f"HTTP {status} (the registry's status for {code})",
            received=f"HTTP {response.status} {response.text[:300]}",
        )
    body = conforming_body(rep, "HTTP-004", "error-response", response)
    if body["error"].get("code") != code:
        raise rep.fail(
            "HTTP-004", expected=f"error.code = {json_text(code)}", received=json_text(body)
        )


@pytest.mark.requirements("HTTP-005")
@pytest.mark.features("publish")
@pytest.mark.parametrize("case", ["token", "permission", "size", "json", "schema", "not-a-slug"])
def test_publish_refusals_follow_the_order_of_checks(rep: Harness, case: str) -> None:
    """Each request breaks its named check and every later one (the stream never exists):
    the status of the named check is the answer."""
    missing = rep.slug("no-stream", "defs.schema.json#/$defs/streamId")
    admin = steps.admin_token(rep)
    limit = rep.profile.max_message_bytes or spec.MIN_MAX_MESSAGE_BYTES
    oversized = "{" + "x" * limit
    cases: dict[str, tuple[str, dict[str, Any]]] = {
        "token": ("unauthorized", {"body": oversized}),
        "permission": ("forbidden", {"body": oversized, "token": rep.token(rep.user())}),
        "size": ("message_too_large", {"body": oversized, "token": admin}),
        "json": ("invalid_json", {"body": "{nope", "token": admin}),
        "schema": ("invalid_payload", {"json": {"data": {}}, "token": admin}),
        "not-a-slug": ("not_found", {"json": {"type": "evt", "data": {}}, "token": admin}),
    }
    code, request = cases[case]
    path = "-not.a.slug!" if case == "not-a-slug" else missing
    headers = {"Content-Type": "application/json"} if "body" in request else None
    response = rep.http.post(f"/streams/{path}/events", headers=headers, **request)
    status = catalog().error_code(spec.error_code(code)).http_status
    body = response.json()
    got = body.get("error", {}).get("code") if isinstance(body, dict) else None
    if response.status != status or got != code:
        raise rep.fail(
            "HTTP-005",
            sent=f"POST /streams/{path}/events failing the {case} check and every later one",
            expected=f"HTTP {status} {code} (the first failing check decides)",
            received=f"HTTP {response.status} {response.text[:200]}",
        )
