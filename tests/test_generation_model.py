"""The model of the stateful checks: its predictions, rule by rule, without a server."""

from __future__ import annotations

from conformance.generation.model import DEFAULT_STATUS, Model


def world(*labels: str, budget: int | None = None) -> Model:
    model = Model(budget)
    for label in labels:
        model.add_client(label, f"user-{label}")
        model.connect(label)
    return model


def test_a_join_lists_everyone_and_announces_only_a_new_member() -> None:
    model = world("a", "b")
    assert model.join("a", "r") == (["a"], True)
    assert model.join("b", "r") == (["a", "b"], True)
    assert model.join("b", "r") == (["a", "b"], False)  # ROOM-007: no second notice


def test_chat_reaches_every_member_and_a_non_member_is_refused() -> None:
    model = world("a", "b", "c")
    model.join("a", "r")
    model.join("b", "r")
    assert model.chat_recipients("a", "r") == ["a", "b"]
    assert model.chat_recipients("c", "r") is None


def test_leaving_tells_the_rest_and_leaving_twice_is_not_found() -> None:
    model = world("a", "b")
    model.join("a", "r")
    model.join("b", "r")
    assert model.leave("a", "r") == ["b"]
    assert model.leave("a", "r") is None


def test_a_disconnect_tells_each_room_and_forgets_membership() -> None:
    model = world("a", "b", "c")
    for label in ("a", "b"):
        model.join(label, "r1")
    model.join("a", "r2")
    model.join("c", "r2")
    assert model.disconnect("a") == {"r1": ["b"], "r2": ["c"]}
    assert model.members("r1") == ["b"]
    assert model.clients["a"].rooms == set()


def test_status_reaches_the_sender_and_each_room_member_once() -> None:
    model = world("a", "b", "c")
    for room in ("r1", "r2"):
        model.join("a", room)
        model.join("b", room)
    assert model.set_status("a", "busy") == ["a", "b"]  # b shares two rooms, counted once
    assert model.set_status("c", "away") == ["c"]


def test_statuses_listed_are_the_last_set_or_online() -> None:
    model = world("a")
    assert model.status_options("a") == [DEFAULT_STATUS]
    model.set_status("a", "busy")
    assert model.status_options("a") == ["busy"]
    model.disconnect("a")
    model.connect("a")
    assert model.status_options("a") == ["busy", DEFAULT_STATUS]  # remembered or reset


def test_subscriptions_replay_everything_or_what_followed_the_last_seen_event() -> None:
    model = world("a", "b")
    model.publish("e1")
    assert model.subscribe("a", resume=False) == ["e1"]
    assert model.publish("e2") == (["a"], [])
    model.disconnect("a")
    model.publish("e3")
    model.publish("e4")
    model.connect("a")
    assert model.subscribe("a", resume=True) == ["e3", "e4"]
    assert model.subscribe("b", resume=True) == ["e1", "e2", "e3", "e4"]


def test_sse_streams_get_only_later_events_then_resume_without_gaps() -> None:
    model = world()
    model.add_stream("s", "user-s")
    model.publish("e1")
    assert model.sse_open("s", resume=False) == []  # SSE-011
    assert model.publish("e2") == ([], ["s"])
    model.sse_close("s")
    model.publish("e3")
    assert model.sse_open("s", resume=True) == ["e3"]  # SSE-007
    assert model.streams["s"].resumed


def test_the_message_budget_keeps_one_message_for_the_final_barrier() -> None:
    model = world("a", "b", budget=4)
    assert model.actors(3) == ["a", "b"]
    model.spend("a", 3)
    assert model.actors(1) == ["b"]
    assert not model.can_send("a", 1)
    assert world("a").can_send("a", 10**6)


def test_a_room_lives_while_a_connected_client_is_in_it() -> None:
    """ROOM-009: the last member's leave or disconnect removes the room, and the next join
    finds a new room with only the joiner in it."""
    model = world("a", "b")
    model.join("a", "r1")
    model.join("b", "r1")
    model.join("a", "r2")
    assert model.live_rooms() == {"r1", "r2"}
    model.leave("a", "r1")
    assert model.live_rooms() == {"r1", "r2"}  # b is still there
    model.leave("a", "r2")
    assert model.live_rooms() == {"r1"}
    model.disconnect("b")
    assert model.live_rooms() == set()
    model.connect("b")
    assert model.join("b", "r1") == (["b"], True)
    assert model.live_rooms() == {"r1"}


def test_a_rooms_member_who_is_disconnected_does_not_keep_it_alive() -> None:
    model = world("a", "b")
    model.join("a", "r")
    model.clients["b"].rooms.add("r")  # a stale membership of a closed connection
    model.clients["b"].connected = False
    model.disconnect("a")
    assert model.live_rooms() == set()


def test_a_users_connections_share_one_budget() -> None:
    model = Model(budget=10)
    model.add_client("a", "user-a")
    model.add_client("a2", "user-a")
    model.add_client("b", "user-b")
    for label in ("a", "a2", "b"):
        model.connect(label)
    assert model.connections_of("user-a") == ["a", "a2"]
    model.spend("a", 6)
    assert not model.can_send("a2", 3)  # 6 + 3 + two barriers > 10
    assert model.can_send("a2", 2)
    assert model.can_send("b", 8) and not model.can_send("b", 10)
    model.disconnect("a2")
    assert model.connections_of("user-a") == ["a"]
