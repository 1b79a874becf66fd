"""Building blocks checks share: join a room, publish an event, change a record.

A step that only sets the scene attributes a failure to the requirement the scene relies
on (a join that gets no ``room_join_response`` breaks MSG-003), not to the requirement
the check is about, so a report never blames chat for a broken room join.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from conformance import spec
from conformance.client import Client, Message, json_text, summarize
from conformance.harness import Harness
from conformance.http import HttpClient
from rep_spec import catalog

RESPONSE = "MSG-003"
COPY = "MSG-004"

ADMIN = ("admin",)
PUBLISH = spec.permission("stream:publish")


def answer_type(request_type: str) -> str:
    found = catalog().types[request_type].answer_type
    return found if found is not None else request_type


def request(
    client: Client,
    type_: str,
    payload: dict[str, Any],
    *,
    requirement: str | Sequence[str] = RESPONSE,
) -> Message:
    """Send a request type and return its response (correlated, MSG-003)."""
    sent = client.send(type_, payload)
    return client.expect(answer_type(type_), correlation_id=sent, requirement=requirement)


def join(
    client: Client,
    room_id: str,
    *,
    password: str | None = None,
    requirement: str | Sequence[str] = RESPONSE,
) -> Message:
    payload: dict[str, Any] = {"roomId": room_id}
    if password is not None:
        payload["password"] = password
    return request(client, "room_join", payload, requirement=requirement)


def names_client(client: Client) -> Callable[[Message], bool]:
    """Matches notices (user_join, user_leave) whose payload names this connection."""
    return lambda message: message.get("payload", {}).get("clientId") == client.client_id


def members_of(response: Message) -> list[dict[str, Any]]:
    members = response.get("payload", {}).get("members")
    return [m for m in members if isinstance(m, dict)] if isinstance(members, list) else []


def populated_room(rep: Harness, *clients: Client, label: str = "room") -> str:
    """A new public room joined by ``clients`` in order; their user_join notices consumed."""
    room_id = rep.slug(label)
    for index, client in enumerate(clients):
        join(client, room_id)
        for earlier in clients[:index]:
            earlier.expect(
                "user_join",
                where=names_client(client),
                requirement="ROOM-004",
                description=f"a user_join for {client.label} in {room_id}",
            )
    return room_id


def copy_of(client: Client, type_: str, sent_id: str, *, requirement: str = COPY) -> Message:
    """The server's distributed copy of a message this client sent (MSG-004)."""
    return client.expect(type_, correlation_id=sent_id, requirement=requirement)


def delivered(
    client: Client, type_: str, sent_id: str, *, requirement: str | Sequence[str]
) -> Message:
    """Another client's copy of a message: same type, correlated to the original id."""
    return client.expect(type_, correlation_id=sent_id, requirement=requirement)


def check_sender(rep: Harness, copy: Message, original: Client) -> None:
    """MSG-005: a distributed copy names who sent the original."""
    sender = copy.get("metadata", {}).get("sender")
    wanted = {"userId": original.user_id, "clientId": original.client_id}
    if not isinstance(sender, dict) or {k: sender.get(k) for k in wanted} != wanted:
        raise rep.fail(
            "MSG-005",
            expected=f"metadata.sender = {wanted}",
            received=f"metadata.sender = {json_text(sender)} in {summarize(copy)}",
        )


def admin_token(rep: Harness) -> str:
    return rep.token(rep.user("publisher"), ADMIN, (PUBLISH,))


def publish(
    rep: Harness,
    stream_id: str,
    event_type: str,
    *,
    tags: Sequence[str] = (),
    data: Any = None,
    token: str | None = None,
    http: HttpClient | None = None,
) -> str:
    """POST an event to a stream; returns the stored event id (HTTP-003)."""
    body = {"type": event_type, "tags": list(tags), "data": data if data is not None else {}}
    response = (http or rep.http).post(
        f"/streams/{stream_id}/events", json=body, token=token or admin_token(rep)
    )
    event_id = response.json().get("id") if isinstance(response.json(), dict) else None
    if response.status != 201 or not isinstance(event_id, str):
        raise rep.fail(
            "HTTP-003",
            sent=f"POST /streams/{stream_id}/events with a token that has stream:publish",
            expected="HTTP 201 with the stored event's id",
            received=f"HTTP {response.status} {response.text[:300]}",
        )
    return event_id


def require_stream(rep: Harness) -> str:
    stream = rep.target.fixtures.stream
    if stream is None:
        import pytest

        pytest.skip("the target file names no fixtures.stream")
    return stream


def record_change(
    client: Client, type_: str, payload: dict[str, Any], *, requirement: str | Sequence[str]
) -> Message:
    """A data change and the sender's copy of it (MSG-004)."""
    sent = client.send(type_, payload)
    return client.expect(type_, correlation_id=sent, requirement=requirement)


def stats(rep: Harness, *, requirement: str = "HTTP-002") -> dict[str, Any]:
    """GET /stats as a JSON object (HTTP-002 when it is not one)."""
    response = rep.http.get("/stats")
    body = response.json() if response.status == 200 else None
    if not isinstance(body, dict):
        raise rep.fail(
            requirement,
            sent="GET /stats",
            expected="HTTP 200 with a JSON object of counts",
            received=f"HTTP {response.status} {response.text[:200]}",
        )
    return body


#: How often a /stats difference is measured before it counts: other checks running in
#: the background open and close connections, so one reading may include theirs.
STATS_ATTEMPTS = 3


def stats_change(
    rep: Harness, key: str, action: Callable[[], Any], want: int, *, requirement: str
) -> None:
    """``action`` must change /stats ``key`` by exactly ``want``; measured up to
    :data:`STATS_ATTEMPTS` times (each with a fresh action), failing only when no attempt
    shows the wanted difference."""
    seen: list[str] = []
    for _ in range(STATS_ATTEMPTS):
        before = stats(rep).get(key)
        action()
        after = stats(rep).get(key)
        if isinstance(before, int) and isinstance(after, int) and after - before == want:
            return
        seen.append(f"{json_text(before)} -> {json_text(after)}")
    raise rep.fail(
        requirement,
        sent=f"GET /stats before and after, {STATS_ATTEMPTS} times",
        expected=f"{key} to change by {want:+d}",
        received=f"{key} went {', '.join(seen)}",
    )
