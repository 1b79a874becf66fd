"""Heartbeat and lifecycle: ping/pong, heartbeats, the silent-client timeout, disconnect."""

from __future__ import annotations

import time

import pytest

from conformance import spec, steps
from conformance.checks._timing import Watch, judge_heartbeats, pooled
from conformance.client import Client, SilentPeer, json_text
from conformance.harness import Harness

HEARTBEAT_TIMEOUT = spec.close_code("heartbeat_timeout")
NORMAL_CLOSURE = spec.close_code("normal_closure")


def heartbeat_interval(rep: Harness, client: Client) -> float:
    """The interval (s) this connection's welcome advertises; skip if over budget."""
    interval_ms = client.welcome.get("payload", {}).get("heartbeatIntervalMs")
    if not isinstance(interval_ms, int) or interval_ms <= 0:
        raise rep.fail(
            "AUTH-010",
            expected="the welcome to advertise heartbeatIntervalMs",
            received=f"heartbeatIntervalMs = {json_text(interval_ms)}",
        )
    interval = interval_ms / 1000
    budget = rep.target.budgets.max_heartbeat_wait
    if interval > budget:
        pytest.skip(
            f"the advertised heartbeat interval ({interval:g} s) exceeds the target's "
            f"budgets.max_heartbeat_wait ({budget:g} s)"
        )
    return interval


@pytest.mark.requirements("LIFE-001")
@pytest.mark.parametrize("with_timestamp", [True, False], ids=["timestamp", "empty"])
def test_ping_is_answered_by_a_correlated_pong(rep: Harness, with_timestamp: bool) -> None:
    """A ping, with or without its optional timestamp, gets a pong correlated to it."""
    client = rep.connect()
    payload = {"timestamp": int(time.time() * 1000)} if with_timestamp else {}
    ping = client.send("ping", payload)
    client.expect("pong", correlation_id=ping)


#: Heartbeat intervals watched: enough gaps for a median that shows a systematic delay.
WATCHED_INTERVALS = 6


@pytest.mark.requirements("LIFE-002", "LIFE-010")
@pytest.mark.background
def test_heartbeats_arrive_at_least_once_per_advertised_interval(rep: Harness) -> None:
    """Watch six intervals (pinging to stay alive). The median gap between heartbeats
    meets the interval (plus 2 %): a server late by a few percent on every beat fails even
    though no single gap exceeds the tolerance. No gap exceeds the interval by more than
    the tolerance."""
    client = rep.connect()
    interval = heartbeat_interval(rep, client)
    opened = client.received()[0][0]
    end = opened + WATCHED_INTERVALS * interval
    client.keepalive(interval / 2, until=end)
    client.sync()
    beats = [at for at, m in client.received() if m.get("type") == "heartbeat" and at <= end]
    watch = Watch(opened, tuple(beats), end)
    found = pooled([watch])
    rep.record("heartbeat max gap (s)", None if found.worst is None else round(found.worst, 3))
    rep.record("heartbeat median gap (s)", None if found.median is None else round(found.median, 3))
    judge_heartbeats(
        rep,
        [watch],
        interval,
        watched=f"{len(beats)} heartbeat(s) in {WATCHED_INTERVALS * interval:g} s",
    )


@pytest.mark.requirements("LIFE-003", "LIFE-010")
@pytest.mark.background
def test_a_silent_client_is_closed_with_4000_after_two_intervals(rep: Harness) -> None:
    """Say nothing after the handshake: close 4000 after two intervals (by the third)."""
    client = rep.connect()
    interval = heartbeat_interval(rep, client)
    tolerance = rep.timeouts.heartbeat_tolerance
    opened = client.received()[0][0]
    closed = client.expect_close(
        HEARTBEAT_TIMEOUT,
        within=3 * interval + tolerance,
        sent="nothing after the handshake",
    )
    silent_for = closed.at - opened
    rep.record("silent-client close after (s)", round(silent_for, 3))
    if silent_for < 2 * interval - tolerance:
        raise rep.fail(
            "LIFE-003",
            expected=f"the close only after two silent intervals ({2 * interval:g} s)",
            received=f"the server closed after {silent_for:.3f} s",
        )


@pytest.mark.requirements("LIFE-004")
@pytest.mark.background
def test_invalid_messages_count_as_activity(rep: Harness) -> None:
    """Only invalid frames, every 0.7 intervals for 3.2 intervals: the connection lives."""
    client = rep.connect()
    interval = heartbeat_interval(rep, client)
    opened = client.received()[0][0]
    for step in range(1, 5):
        pause = opened + step * 0.7 * interval - rep.transcript.now()
        time.sleep(max(0.0, pause))
        if client.closed is not None:
            break
        client.send_raw("{this is not json")
    time.sleep(max(0.0, opened + 3.2 * interval - rep.transcript.now()))
    if client.closed is not None:
        raise rep.fail(
            "LIFE-004",
            sent="an invalid frame every 0.7 heartbeat intervals",
            expected="the connection to stay open (every message counts as activity)",
            received=client.closed.describe(),
        )
    client.expect_open()


@pytest.mark.requirements("LIFE-006", "MSG-003")
def test_disconnect_is_answered_then_closed_with_1000(rep: Harness) -> None:
    """A client's disconnect gets the server's correlated disconnect, then close 1000."""
    client = rep.connect()
    sent = client.send("disconnect", {"reason": "conformance check done"})
    client.expect("disconnect", correlation_id=sent, requirement="LIFE-006")
    client.expect_close(
        NORMAL_CLOSURE, requirement="LIFE-006", sent=f"disconnect id={json_text(sent)}"
    )
    client.expect_none("disconnect", requirement="MSG-003", within=0)


@pytest.mark.requirements("LIFE-008", "LIFE-009", "ROOM-006")
@pytest.mark.features("rooms")
@pytest.mark.parametrize("how", ["drop", "close", "disconnect"])
def test_ending_a_connection_removes_the_client_from_every_room(rep: Harness, how: str) -> None:
    """However a connection ends, each room's remaining members get user_leave (disconnected)."""
    leaver = rep.connect(label="leaver")
    watchers = [rep.connect(label="watcher"), rep.connect(label="watcher")]
    rooms = [steps.populated_room(rep, watcher, leaver) for watcher in watchers]
    if how == "drop":
        leaver.drop()
    elif how == "close":
        leaver.close()
    else:
        sent = leaver.send("disconnect")
        leaver.expect("disconnect", correlation_id=sent, requirement="LIFE-006")
    for watcher, room in zip(watchers, rooms, strict=True):
        notice = watcher.expect(
            "user_leave",
            where=lambda m: m.get("payload", {}).get("clientId") == leaver.client_id,
            requirement=("LIFE-008", "ROOM-006"),
            description=f"a user_leave for {leaver.label} in {room}",
        )
        reason = notice["payload"].get("reason")
        if reason != spec.LEAVE_REASON_DISCONNECTED or notice["payload"].get("roomId") != room:
            raise rep.fail(
                "ROOM-006",
                expected=f"user_leave with roomId {json_text(room)} and reason "
                f"{json_text(spec.LEAVE_REASON_DISCONNECTED)}",
                received=f"roomId {json_text(notice['payload'].get('roomId'))}, "
                f"reason {json_text(reason)}",
            )
    newcomer = rep.connect(label="newcomer")
    listed = steps.join(newcomer, rooms[0])
    if any(m.get("clientId") == leaver.client_id for m in steps.members_of(listed)):
        raise rep.fail(
            "LIFE-008",
            expected=f"{leaver.label} ({leaver.client_id}) gone from {rooms[0]}'s members",
            received=f"room_join_response still lists it: {steps.members_of(listed)}",
        )


@pytest.mark.requirements("LIFE-009", "ROOM-006")
@pytest.mark.features("rooms")
def test_cleanup_does_not_wait_for_the_peers_closing_handshake(rep: Harness) -> None:
    """The leaver asks to disconnect and never answers the server's close frame: the
    room is told within the answer timeout all the same."""
    watcher = rep.connect(label="watcher")
    room = steps.populated_room(rep, watcher)
    user = rep.user("silent")
    peer = SilentPeer(
        rep.target.node.ws_url,
        rep.token(user),
        label="silent",
        transcript=rep.transcript,
        protocol_version=rep.profile.protocol_version,
    )
    try:
        answer = rep.timeouts.answer
        welcome = peer.expect(lambda m: m.get("type") == "auth", answer)
        client_id = (welcome or {}).get("payload", {}).get("clientId")
        if not isinstance(client_id, str):
            raise rep.fail(
                "AUTH-010",
                sent="a handshake with a valid token",
                expected="an auth welcome carrying the clientId",
                received=json_text(welcome) if welcome else "nothing",
            )
        joined = peer.send("room_join", {"roomId": room})
        if (
            peer.expect(lambda m: m.get("metadata", {}).get("correlation_id") == joined, answer)
            is None
        ):
            raise rep.fail(
                "ROOM-001",
                sent=f"room_join {room} from a second connection",
                expected="a room_join_response",
                received="nothing",
            )
        watcher.expect(
            "user_join",
            where=lambda m: m.get("payload", {}).get("clientId") == client_id,
            requirement="ROOM-004",
            description=f"a user_join for {client_id} in {room}",
        )
        peer.send("disconnect", {})
        watcher.expect(
            "user_leave",
            where=lambda m: m.get("payload", {}).get("clientId") == client_id,
            requirement="LIFE-009",
            description=f"a user_leave for {client_id}, whose peer has not answered the "
            "server's close frame (the cleanup must not wait for it)",
        )
    finally:
        peer.drop()
