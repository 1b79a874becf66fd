"""ServerCore without a network: rooms, chat, presence, notifications, data, streams."""

from __future__ import annotations

from typing import Any

import pytest

from reference_server.broker.base import Publication
from reference_server.core.effects import Step, ask
from reference_server.core.server import stream_topic
from tests.reference_server.harness import Harness


def joined(h: Harness, client: str, room: str, **payload: str) -> dict:
    h.send(client, "room_join", {"roomId": room, **payload})
    return h.take_one(client)


# --- rooms ------------------------------------------------------------------------------


def test_three_clients_join_and_leave(h: Harness) -> None:
    a, b, c = h.connect("ann"), h.connect("bob"), h.connect("cid")
    response = joined(h, a, "lobby")
    assert response["type"] == "room_join_response"
    assert [m["userId"] for m in response["payload"]["members"]] == ["ann"]
    joined(h, b, "lobby")
    assert h.take_one(a)["type"] == "user_join"
    response = joined(h, c, "lobby")
    assert {m["userId"] for m in response["payload"]["members"]} == {"ann", "bob", "cid"}
    assert h.take_one(a)["payload"]["userId"] == "cid"
    assert h.take_one(b)["payload"]["userId"] == "cid"
    leave_id = h.send(b, "room_leave", {"roomId": "lobby"})
    reply = h.take_one(b)
    assert (reply["type"], reply["metadata"]["correlation_id"]) == ("room_leave_response", leave_id)
    for member in (a, c):
        notice = h.take_one(member)
        assert (notice["type"], notice["payload"]["reason"]) == ("user_leave", "left")
    h.disconnect(c)
    notice = h.take_one(a)
    assert (notice["payload"]["userId"], notice["payload"]["reason"]) == ("cid", "disconnected")


def test_rejoin_is_idempotent_and_silent(h: Harness) -> None:
    a, b = h.connect("ann"), h.connect("bob")
    joined(h, a, "lobby")
    joined(h, b, "lobby")
    h.take(a)
    assert joined(h, b, "lobby")["type"] == "room_join_response"
    assert h.take(a) == []


def test_leaving_a_room_one_is_not_in_is_not_found(h: Harness) -> None:
    a = h.connect("ann")
    h.send(a, "room_leave", {"roomId": "lobby"})
    assert h.error_of(a)["payload"]["code"] == "not_found"


def test_empty_rooms_are_removed(h: Harness) -> None:
    a = h.connect("ann")
    joined(h, a, "lobby")
    assert _count(h) == 1
    h.send(a, "room_leave", {"roomId": "lobby"})
    assert _count(h) == 0


def _count(h: Harness) -> int:
    def step() -> Step[int]:
        return (yield from ask(lambda b: b.room_count()))

    return int(h.run(step()))


@pytest.mark.parametrize(
    ("room", "roles", "permissions", "payload", "allowed"),
    [
        ("staff", ("user",), (), {}, False),
        ("staff", ("user",), ("room:join_private",), {}, True),
        ("vault", ("user",), (), {}, False),
        ("vault", ("user",), (), {"password": "wrong"}, False),
        ("vault", ("user",), (), {"password": "open-sesame"}, True),
        ("board", ("user",), (), {}, False),
        ("board", ("admin",), (), {}, True),
        ("lobby", (), ("websocket:connect",), {}, False),
    ],
)
def test_room_access_rules(
    h: Harness,
    room: str,
    roles: tuple[str, ...],
    permissions: tuple[str, ...],
    payload: dict[str, str],
    allowed: bool,
) -> None:
    client = h.connect("ann", roles, permissions)
    reply = joined(h, client, room, **payload)
    if allowed:
        assert reply["type"] == "room_join_response"
    else:
        assert reply["payload"]["code"] == "forbidden"
        assert _count(h) == 0  # ERR-004: nothing joined


def test_invited_user_joins_invite_only_room(h: Harness) -> None:
    carol = h.connect("carol")
    assert joined(h, carol, "board")["type"] == "room_join_response"


# --- chat -------------------------------------------------------------------------------


def test_chat_reaches_every_member_once_and_no_one_else(h: Harness) -> None:
    a, b, outsider = h.connect("ann"), h.connect("bob"), h.connect("eve")
    joined(h, a, "lobby")
    joined(h, b, "lobby")
    h.take(a)
    chat_id = h.send(a, "chat_message", {"roomId": "lobby", "content": "hi"})
    for member in (a, b):
        copy = h.take_one(member)
        assert copy["type"] == "chat_message"
        assert copy["metadata"]["correlation_id"] == chat_id
        assert copy["metadata"]["sender"] == {"userId": "ann", "clientId": a}
        assert copy["payload"]["type"] == "text"
    assert h.take(outsider) == []


def test_chat_content_is_sanitized(h: Harness) -> None:
    a = h.connect("ann")
    joined(h, a, "lobby")
    h.send(
        a,
        "chat_message",
        {
            "roomId": "lobby",
            "content": '<b class="x">bold</b><script>alert(1)</script><img src=x onerror=y>'
            '<em>e</em><a href="javascript:x">link</a><u title="t" lang="en">u</u>',
        },
    )
    assert h.take_one(a)["payload"]["content"] == "<b>bold</b><em>e</em>link<u>u</u>"


def test_escaped_content_still_fits_the_server_schema(h: Harness) -> None:
    a = h.connect("ann")
    joined(h, a, "lobby")
    h.send(a, "chat_message", {"roomId": "lobby", "content": "&" * 1000})
    assert h.take_one(a)["payload"]["content"] == "&amp;" * 1000


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://cdn.example.com/cat.png", True),
        ("http://93.184.216.34/a", True),
        ("http://127.0.0.1/x", False),
        ("http://localhost:8080/x", False),
        ("http://10.1.2.3/", False),
        ("http://192.168.0.1/", False),
        ("http://169.254.169.254/latest/meta-data", False),
        ("http://[::1]/", False),
        ("http://[fe80::1]/", False),
        ("http://[fd12::1]/", False),
        ("http://2130706433/", False),
        ("http://0x7f.0.0.1/", False),
    ],
)
def test_attachment_url_policy(h: Harness, url: str, allowed: bool) -> None:
    a = h.connect("ann")
    joined(h, a, "lobby")
    attachment = {"type": "image", "url": url, "size": 10}
    h.send(
        a,
        "chat_message",
        {"roomId": "lobby", "content": "x", "metadata": {"attachments": [attachment]}},
    )
    reply = h.take_one(a)
    if allowed:
        assert reply["type"] == "chat_message"
    else:
        assert reply["payload"]["code"] == "invalid_payload"
        assert reply["payload"]["details"]["requirement"] == "CHAT-004"


def test_chat_needs_membership_permission_and_moderation(h: Harness) -> None:
    a = h.connect("ann")
    h.send(a, "chat_message", {"roomId": "lobby", "content": "x"})
    assert h.error_of(a)["payload"]["code"] == "forbidden"
    joined(h, a, "stage")
    h.send(a, "chat_message", {"roomId": "stage", "content": "x"})
    assert h.error_of(a)["payload"]["code"] == "forbidden"
    moderator = h.connect("mod", ("moderator",))
    joined(h, moderator, "stage")
    h.take(a)
    h.send(moderator, "chat_message", {"roomId": "stage", "content": "x"})
    assert h.take_one(moderator)["type"] == "chat_message"
    mute = h.connect("mute", (), ("websocket:connect", "room:join"))
    joined(h, mute, "lobby")
    h.send(mute, "chat_message", {"roomId": "lobby", "content": "x"})
    assert h.error_of(mute)["payload"]["code"] == "forbidden"


# --- presence ----------------------------------------------------------------------------


def test_status_update_reaches_room_mates_exactly_once(h: Harness) -> None:
    a, b, outsider = h.connect("ann"), h.connect("bob"), h.connect("eve")
    for room in ("lobby", "garden"):
        h.send(a, "room_join", {"roomId": room})
        h.send(b, "room_join", {"roomId": room})
    h.take(a), h.take(b)
    h.send(a, "status_update", {"status": "busy", "message": "in a call"})
    assert h.take_one(a)["payload"]["status"] == "busy"
    assert h.take_one(b)["metadata"]["sender"]["userId"] == "ann"
    assert h.take(outsider) == []
    members = joined(h, outsider, "lobby")["payload"]["members"]
    assert {m["userId"]: m["status"] for m in members} == {
        "ann": "busy",
        "bob": "online",
        "eve": "online",
    }


def test_status_is_forgotten_with_the_last_connection(h: Harness) -> None:
    a = h.connect("ann")
    h.send(a, "status_update", {"status": "away"})
    h.disconnect(a)
    a = h.connect("ann")
    assert joined(h, a, "lobby")["payload"]["members"][0]["status"] == "online"


# --- notifications -------------------------------------------------------------------------


def test_broadcast_notification_needs_permission_and_reaches_all(h: Harness) -> None:
    user, admin, other = h.connect("ann"), h.connect("root", ("admin",)), h.connect("bob")
    h.send(user, "notification", {"message": "hello all"})
    assert h.error_of(user)["payload"]["code"] == "forbidden"
    h.send(admin, "notification", {"message": "maintenance at 10", "level": "warning"})
    for client in (user, admin, other):
        assert h.take_one(client)["type"] == "notification"


def test_room_notification_needs_announce_and_an_existing_room(h: Harness) -> None:
    admin, member, other = h.connect("root", ("admin",)), h.connect("ann"), h.connect("bob")
    h.send(admin, "notification", {"message": "x", "roomId": "nowhere"})
    assert h.error_of(admin)["payload"]["code"] == "not_found"
    joined(h, member, "lobby")
    h.send(member, "notification", {"message": "x", "roomId": "lobby"})
    assert h.error_of(member)["payload"]["code"] == "forbidden"
    h.send(admin, "notification", {"message": "x", "roomId": "lobby"})
    assert h.take_one(admin)["type"] == "notification"
    assert h.take_one(member)["type"] == "notification"
    assert h.take(other) == []


# --- data ---------------------------------------------------------------------------------


def test_data_lifecycle_with_versions_conflicts_and_sync(h: Harness) -> None:
    a, watcher = h.connect("ann"), h.connect("bob")
    h.send(watcher, "data_sync", {"collection": "todos"})
    empty = h.take_one(watcher)["payload"]
    assert (empty["revision"], empty["records"], empty["deleted"]) == (0, [], [])

    create_id = h.send(
        a, "data_create", {"collection": "todos", "recordId": "t1", "data": {"n": 1}}
    )
    copy = h.take_one(a)
    assert copy["metadata"]["correlation_id"] == create_id
    assert (copy["payload"]["recordId"], copy["payload"]["version"]) == ("t1", 1)
    assert h.take_one(watcher)["payload"]["version"] == 1

    h.send(a, "data_create", {"collection": "todos", "recordId": "t1", "data": {}})
    assert h.error_of(a)["payload"]["code"] == "conflict"

    h.send(a, "data_update", {"collection": "todos", "recordId": "t1", "data": {"n": 2}})
    assert h.take_one(a)["payload"]["version"] == 2
    h.take(watcher)
    h.send(
        a,
        "data_update",
        {"collection": "todos", "recordId": "t1", "data": {"n": 3}, "expectedVersion": 1},
    )
    assert h.error_of(a)["payload"]["code"] == "conflict"
    assert h.take(watcher) == []  # ERR-004: the stale update changed nothing

    h.send(a, "data_delete", {"collection": "todos", "recordId": "nope"})
    assert h.error_of(a)["payload"]["code"] == "not_found"
    h.send(a, "data_create", {"collection": "todos", "data": {"n": 9}})
    generated = h.take_one(a)["payload"]["recordId"]
    h.take(watcher)
    h.send(a, "data_delete", {"collection": "todos", "recordId": "t1", "expectedVersion": 2})
    deleted = h.take_one(a)["payload"]
    assert (deleted["recordId"], deleted["version"]) == ("t1", 2)
    assert "data" not in deleted

    h.send(a, "data_sync", {"collection": "todos", "sinceRevision": 2})
    since = h.take_one(a)["payload"]
    assert since["revision"] == 4
    assert [r["recordId"] for r in since["records"]] == [generated]
    assert since["deleted"] == ["t1"]


def test_subscribed_sender_gets_its_copy_once(h: Harness) -> None:
    a = h.connect("ann")
    h.send(a, "data_sync", {"collection": "todos"})
    h.take(a)
    h.send(a, "data_create", {"collection": "todos", "data": {}})
    assert len(h.take(a)) == 1


def test_data_needs_permissions(h: Harness) -> None:
    reader = h.connect("ann", (), ("websocket:connect", "data:read"))
    h.send(reader, "data_create", {"collection": "todos", "data": {}})
    assert h.error_of(reader)["payload"]["code"] == "forbidden"
    h.send(reader, "data_sync", {"collection": "todos"})
    assert h.take_one(reader)["type"] == "data_sync_response"
    nobody = h.connect("bob", (), ("websocket:connect",))
    h.send(nobody, "data_sync", {"collection": "todos"})
    assert h.error_of(nobody)["payload"]["code"] == "forbidden"


# --- streams ------------------------------------------------------------------------------


def publish(h: Harness, event_type: str, tags: list[str], data: object = None) -> str:
    event = h.run(h.core.publish_event("prices", event_type, tags, data, h.now))
    h.now += 1
    return str(event.id)


def test_subscribe_replays_filtered_buffer_then_goes_live(h: Harness) -> None:
    ids = [
        publish(h, kind, [tag]) for kind, tag in [("tick", "eu"), ("trade", "eu"), ("tick", "us")]
    ]
    a = h.connect("ann")
    h.send(a, "stream_subscribe", {"streamId": "prices", "filter": {"eventTypes": ["tick"]}})
    response, *replay = h.take(a)
    assert response["payload"] == {"streamId": "prices", "replayed": 2}
    assert [m["payload"]["event"]["id"] for m in replay] == [ids[0], ids[2]]
    assert all(m["payload"]["replay"] for m in replay)
    publish(h, "trade", ["eu"])
    assert h.take(a) == []
    live = publish(h, "tick", ["asia"])
    (message,) = h.take(a)
    assert message["payload"]["event"]["id"] == live
    assert "replay" not in message["payload"]


def test_last_event_id_resumes_without_gap_or_duplicate(h: Harness) -> None:
    ids = [publish(h, "tick", []) for _ in range(4)]
    a = h.connect("ann")
    h.send(a, "stream_subscribe", {"streamId": "prices", "lastEventId": ids[1]})
    response, *replay = h.take(a)
    assert response["payload"]["gap"] is False
    assert [m["payload"]["event"]["id"] for m in replay] == ids[2:]


def test_unknown_last_event_id_reports_a_gap(h: Harness) -> None:
    [publish(h, "tick", []) for _ in range(7)]  # buffer holds 5: the first two are gone
    a = h.connect("ann")
    h.send(a, "stream_subscribe", {"streamId": "prices", "lastEventId": "1-0"})
    (response,) = h.take(a)
    assert response["payload"] == {"streamId": "prices", "replayed": 0, "gap": True}


def test_tag_filter_needs_a_shared_tag(h: Harness) -> None:
    a = h.connect("ann")
    h.send(a, "stream_subscribe", {"streamId": "prices", "filter": {"tags": ["eu", "us"]}})
    h.take(a)
    publish(h, "tick", ["asia"])
    publish(h, "tick", ["us", "ca"])
    assert [m["payload"]["event"]["tags"] for m in h.take(a)] == [["us", "ca"]]


def test_stream_errors(h: Harness) -> None:
    a = h.connect("ann")
    h.send(a, "stream_subscribe", {"streamId": "nope"})
    assert h.error_of(a)["payload"]["code"] == "not_found"
    h.send(a, "stream_unsubscribe", {"streamId": "prices"})
    assert h.error_of(a)["payload"]["code"] == "not_found"
    h.send(a, "stream_subscribe", {"streamId": "prices"})
    h.take(a)
    h.send(a, "stream_subscribe", {"streamId": "prices"})
    assert h.error_of(a)["payload"]["code"] == "conflict"
    h.send(a, "stream_unsubscribe", {"streamId": "prices"})
    assert h.take_one(a)["type"] == "stream_unsubscribe_response"
    publish(h, "tick", [])
    assert h.take(a) == []
    blocked = h.connect("bob", (), ("websocket:connect",))
    h.send(blocked, "stream_subscribe", {"streamId": "prices"})
    assert h.error_of(blocked)["payload"]["code"] == "forbidden"


def test_event_ids_increase_even_within_one_millisecond(h: Harness) -> None:
    events = [h.run(h.core.publish_event("prices", "t", [], i, h.now)) for i in range(3)]
    assert [e.id for e in events] == [f"{h.now}-0", f"{h.now}-1", f"{h.now}-2"]


def test_live_events_racing_the_replay_arrive_once_and_in_order(h: Harness) -> None:
    """A node that reads the buffer while another node publishes must not lose or repeat."""
    first = publish(h, "tick", [])
    original_read = h.broker.stream_read

    async def racing_read(stream_id: str, after: str | None, now_ms: int, retention: int) -> Any:
        result = await original_read(stream_id, after, now_ms, retention)
        duplicate = result.events[-1]  # already in the replay, and also delivered live
        await h.broker.publish(
            Publication(
                stream_topic(stream_id), h.core.stream_event_message(stream_id, duplicate, False)
            )
        )
        late = await h.broker.stream_append(stream_id, "tick", [], None, now_ms + 5, 100, 60_000)
        await h.broker.publish(
            Publication(
                stream_topic(stream_id), h.core.stream_event_message(stream_id, late, False)
            )
        )
        return result

    h.broker.stream_read = racing_read  # type: ignore[method-assign]
    a = h.connect("ann")
    h.send(a, "stream_subscribe", {"streamId": "prices"})
    response, *events = h.take(a)
    assert response["payload"]["replayed"] == 1
    ids = [m["payload"]["event"]["id"] for m in events]
    assert ids[0] == first and len(ids) == len(set(ids)) == 2


def test_sse_resume_reports_unknown_channels_and_keeps_order(h: Harness) -> None:
    from reference_server.auth import Principal
    from rep_spec import catalog

    principal = Principal("ann", ("user",), catalog().permissions_of(["user"]), None, "query")
    earlier = publish(h, "tick", [])
    later = publish(h, "tick", [])
    client, opening = h.core.open_event_stream(principal, ["prices"], {"prices": earlier}, h.now)
    positions = h.run(opening)
    assert positions == {"prices": earlier}  # a reconnect before the replay resumes here
    assert h.take(client) == []  # nothing is sent before the transport's connection event
    h.run(h.core.release_event_stream(client))
    assert [m["payload"]["event"]["id"] for m in h.take(client)] == [later]
    other, opening = h.core.open_event_stream(principal, ["prices"], {}, h.now)
    h.run(opening)
    h.run(h.core.release_event_stream(other))
    (error,) = h.take(other)
    assert error["payload"]["code"] == "replay_unavailable"


def test_failed_subscribe_leaves_no_subscription(h: Harness) -> None:
    async def unreachable(*args: Any) -> Any:
        raise ConnectionError("shared state down")

    original = h.broker.stream_read
    h.broker.stream_read = unreachable  # type: ignore[method-assign]
    a = h.connect("ann")
    h.send(a, "stream_subscribe", {"streamId": "prices"})
    assert h.error_of(a)["payload"]["code"] == "internal_error"
    h.broker.stream_read = original  # type: ignore[method-assign]
    publish(h, "tick", [])
    assert h.take(a) == []  # neither subscribed nor holding events
    h.send(a, "stream_subscribe", {"streamId": "prices"})
    assert h.take(a)[0]["type"] == "stream_subscribe_response"
