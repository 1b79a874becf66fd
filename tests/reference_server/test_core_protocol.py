"""ServerCore without a network: envelope handling, errors, lifecycle (sans-I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from reference_server.auth import Principal
from reference_server.broker.base import Broker
from reference_server.core.connection import Event, InvalidTransition, State, transition
from reference_server.core.server import ServerCore
from rep_spec import catalog
from tests.reference_server.harness import Harness


def test_welcome_advertises_what_a_client_needs(h: Harness) -> None:
    principal = Principal("ann", ("user",), catalog().permissions_of(["user"]), None, "header")
    principal_client, step = h.core.connect(principal, h.now)
    h.run(step)
    welcome = h.take_one(principal_client)
    payload = welcome["payload"]
    assert payload["status"] == "connected"
    assert payload["clientId"] == principal_client
    assert payload["userId"] == "ann"
    assert payload["heartbeatIntervalMs"] == 1000
    assert payload["limits"] == {
        "maxMessageBytes": 65536,
        "rateLimit": {"windowMs": 1000, "maxMessages": 20},
    }
    assert set(payload["features"]) >= {"core", "rooms", "chat", "data", "streams"}


def test_client_ids_are_unique(h: Harness) -> None:
    assert len({h.connect("u") for _ in range(50)}) == 50


def test_every_client_sendable_type_has_a_handler() -> None:
    core = ServerCore(Harness().config)
    client_types = {t.name for t in catalog().types_for("client")}
    assert core.handled_types == client_types


def test_ping_gets_correlated_pong(h: Harness) -> None:
    a = h.connect("ann")
    ping_id = h.send(a, "ping", {"timestamp": 42})
    pong = h.take_one(a)
    assert pong["type"] == "pong"
    assert pong["metadata"]["correlation_id"] == ping_id
    assert pong["payload"]["echo"] == 42


def test_server_ids_are_unique_per_connection(h: Harness) -> None:
    a = h.connect("ann")
    for _ in range(10):
        h.send(a, "ping", {})
    ids = [m["id"] for m in h.take(a)]
    assert len(set(ids)) == len(ids) == 10


@pytest.mark.parametrize(
    ("raw", "code", "correlated"),
    [
        ("{nope", "invalid_json", False),
        ("[1]", "invalid_json", False),
        ('{"id": "x1", "type": "ping"}', "invalid_envelope", True),
        (
            '{"id": "x1", "type": "ping", "timestamp": "2026-11-26T12:00:00Z", '
            '"payload": {}, "extra": 1}',
            "invalid_envelope",
            True,
        ),
        (
            '{"id": "x1", "type": "teleport", "timestamp": "2026-11-26T12:00:00Z", "payload": {}}',
            "unknown_type",
            True,
        ),
        (
            '{"id": "x1", "type": "pong", "timestamp": "2026-11-26T12:00:00Z", '
            '"payload": {"timestamp": 1}}',
            "invalid_direction",
            True,
        ),
        (
            '{"id": "x1", "type": "ping", "timestamp": "2026-11-26T12:00:00Z", "payload": {}, '
            '"metadata": {"version": "2.0"}}',
            "unsupported_version",
            True,
        ),
        (
            '{"id": "x1", "type": "room_join", "timestamp": "2026-11-26T12:00:00Z", '
            '"payload": {"roomId": "lobby", "password": "%s"}}' % ("p" * 101),
            "invalid_payload",
            True,
        ),
    ],
)
def test_bad_input_gets_one_error_and_the_connection_survives(
    h: Harness, raw: str, code: str, correlated: bool
) -> None:
    a = h.connect("ann")
    bystander = h.connect("bob")
    h.send(a, "room_join", {"roomId": "lobby"})
    h.send(bystander, "room_join", {"roomId": "lobby"})
    h.take(a), h.take(bystander)
    h.send_raw(a, raw)
    error = h.error_of(a)
    assert error["payload"]["code"] == code
    assert ("correlation_id" in error["metadata"]) is correlated
    if correlated:
        assert error["metadata"]["correlation_id"] == "x1"
    assert h.take(bystander) == []  # ERR-006
    assert h.closes(a) == []  # ERR-005
    h.send(a, "ping", {})
    assert h.take_one(a)["type"] == "pong"


def test_schema_errors_carry_pointer_and_requirement(h: Harness) -> None:
    a = h.connect("ann")
    h.send(a, "chat_message", {"roomId": "lobby", "content": "x" * 1001})
    details = h.error_of(a)["payload"]["details"]
    assert details["pointer"] == "/payload/content"
    assert details["requirement"] == "CHAT-007"


def test_invalid_envelope_message_text(h: Harness) -> None:
    a = h.connect("ann")
    h.send_raw(a, '{"id": "x"}')
    assert h.error_of(a)["payload"]["message"].startswith("Invalid message format")


def test_binary_frames_are_refused_without_correlation(h: Harness) -> None:
    a = h.connect("ann")
    h.run(h.core.receive_binary(a, h.now))
    error = h.error_of(a)
    assert error["payload"]["code"] == "unsupported_frame"
    assert "correlation_id" not in error["metadata"]


def test_minor_version_and_missing_metadata_are_accepted(h: Harness) -> None:
    a = h.connect("ann")
    h.send(a, "ping", {}, metadata={"version": "1.9", "source": "client"})
    h.send(a, "ping", {})
    assert [m["type"] for m in h.take(a)] == ["pong", "pong"]


def test_unimplemented_feature_is_unknown_type() -> None:
    h = Harness(None, features=("core", "rooms"))
    a = h.connect("ann")
    h.send(a, "data_sync", {"collection": "todos"})
    error = h.error_of(a)
    assert error["payload"]["code"] == "unknown_type"
    assert error["payload"]["details"]["requirement"] == "MSG-006"


def test_handler_failure_is_internal_error_and_isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness()
    a = h.connect("ann")

    def explode(*args: Any) -> Any:
        raise RuntimeError("bug")
        yield  # pragma: no cover

    monkeypatch.setattr(h.core, "on_ping", explode)
    h.send(a, "ping", {})
    assert h.error_of(a)["payload"]["code"] == "internal_error"
    h.send(a, "status_update", {"status": "away"})
    assert h.take_one(a)["type"] == "status_update"


# --- lifecycle -------------------------------------------------------------------------


def test_disconnect_is_answered_then_closed_1000(h: Harness) -> None:
    a = h.connect("ann")
    disconnect_id = h.send(a, "disconnect", {"reason": "bye"})
    reply = h.take_one(a)
    assert reply["type"] == "disconnect"
    assert reply["metadata"]["correlation_id"] == disconnect_id
    assert [c.code for c in h.closes(a)] == [1000]
    h.send(a, "ping", {})  # CLOSING: nothing more is processed
    assert h.take(a) == []


def test_heartbeat_is_sent_every_interval(h: Harness) -> None:
    a = h.connect("ann")
    h.tick(500)
    assert h.take(a) == []
    for _ in range(3):
        h.send(a, "ping", {})
        h.take(a)
        h.tick(h.config.heartbeat_interval_ms)
        assert [m["type"] for m in h.take(a)] == ["heartbeat"]


def test_silent_client_is_closed_4000_after_two_intervals(h: Harness) -> None:
    a = h.connect("ann")
    h.tick(1500)
    h.send(a, "ping", {})  # activity at 1500 ms resets the clock
    h.tick(1400)
    assert h.closes(a) == []
    h.tick(700)
    assert [c.code for c in h.closes(a)] == [4000]


def test_expired_token_closes_4001(h: Harness) -> None:
    a = h.connect("ann", expires_at=(h.now + 300) / 1000)
    h.tick(100)
    assert h.closes(a) == []
    h.tick(300)
    assert [c.code for c in h.closes(a)] == [4001]


def test_shutdown_sends_disconnect_then_1001(h: Harness) -> None:
    a, b = h.connect("ann"), h.connect("bob")
    h.run(h.core.shutdown())
    for client in (a, b):
        assert h.take_one(client)["type"] == "disconnect"
        assert [c.code for c in h.closes(client)] == [1001]


def test_transition_table_refuses_impossible_moves(h: Harness) -> None:
    a = h.connect("ann")
    connection = h.core.connections[a]
    assert transition(connection, Event.SHUTDOWN) is State.CLOSING
    with pytest.raises(InvalidTransition):
        transition(connection, Event.HEARTBEAT_TIMEOUT)
    assert transition(connection, Event.TRANSPORT_CLOSED) is State.CLOSED


# --- rate limiting ---------------------------------------------------------------------


def test_rate_limit_refuses_the_excess_and_does_not_process_it(h: Harness) -> None:
    a = h.connect("ann")
    for _ in range(20):
        h.send(a, "ping", {})
    assert len(h.take(a)) == 20
    over = h.send(a, "status_update", {"status": "busy"})
    error = h.error_of(a)
    assert error["payload"]["code"] == "rate_limited"
    assert error["metadata"]["correlation_id"] == over
    assert 0 < error["payload"]["retry_after_ms"] <= 1000
    h.now += error["payload"]["retry_after_ms"]
    h.send(a, "room_join", {"roomId": "lobby"})
    members = h.take_one(a)["payload"]["members"]
    assert members[0]["status"] == "online"  # the refused status_update was not applied


def test_rate_limit_is_per_user_across_connections(h: Harness) -> None:
    first, second = h.connect("ann"), h.connect("ann")
    for _ in range(10):
        h.send(first, "ping", {})
        h.send(second, "ping", {})
    h.send(second, "ping", {})
    assert h.take(second)[-1]["payload"]["code"] == "rate_limited"
    other = h.connect("bob")
    h.send(other, "ping", {})
    assert h.take_one(other)["type"] == "pong"


def test_broker_is_abstract() -> None:
    with pytest.raises(TypeError):
        Broker()  # type: ignore[abstract]


def test_broker_failure_at_welcome_closes_cleanly_with_1011(h: Harness) -> None:
    async def unreachable(client_id: str, user_id: str) -> None:
        raise ConnectionError("shared state down")

    h.broker.connection_opened = unreachable  # type: ignore[method-assign]
    principal = Principal("ann", ("user",), catalog().permissions_of(["user"]), None, "header")
    client, step = h.core.connect(principal, h.now)
    h.run(step)
    assert h.take(client) == []
    assert [c.code for c in h.closes(client)] == [1011]
