"""Event streams: subscribe, replay then live, filters, gaps, exactly-once, unsubscribe.

Events are published over HTTP (feature ``publish``). Every check uses event types and
tags of its own and filters on them, so events of other checks in the shared fixture
stream never count.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance import spec, steps
from conformance.client import Client, Message, json_text
from conformance.harness import Harness
from conformance.jsonvalues import json_difference

NOT_FOUND = spec.error_code("not_found")
CONFLICT = spec.error_code("conflict")
FORBIDDEN = spec.error_code("forbidden")
CONNECT = spec.permission("websocket:connect")
#: Events published after a resume position to outrun the buffer STREAM-003 asks for (100).
BEYOND_BUFFER = int(spec.quoted("STREAM-003", "100")) + 2


def subscribe(
    client: Client, stream: str, *, requirement: str = "MSG-003", **options: Any
) -> Message:
    return steps.request(
        client, "stream_subscribe", {"streamId": stream, **options}, requirement=requirement
    )


def events_of(client: Client, stream: str, count: int, requirement: str) -> list[Message]:
    """The next ``count`` stream_events of ``stream``, in arrival order."""
    return [
        client.expect(
            "stream_event",
            where=lambda m: m.get("payload", {}).get("streamId") == stream,
            requirement=requirement,
            description=f"stream_event {index + 1} of {count} from {stream}",
        )
        for index in range(count)
    ]


def ids_of(events: list[Message]) -> list[str]:
    return [str(e.get("payload", {}).get("event", {}).get("id")) for e in events]


def expect_ids(
    rep: Harness, requirement: str, got: list[Message], want: list[str], what: str
) -> None:
    if ids_of(got) != want:
        raise rep.fail(requirement, expected=f"{what}: {want}", received=f"{ids_of(got)}")


@pytest.mark.requirements("STREAM-002")
def test_subscribing_to_a_missing_stream_is_not_found(rep: Harness) -> None:
    """stream_subscribe naming a stream the server does not have: not_found."""
    client = rep.connect()
    sent = client.send("stream_subscribe", {"streamId": rep.name("no-stream")})
    client.expect_refusal(NOT_FOUND, of=sent, requirement="STREAM-002")


@pytest.mark.requirements("STREAM-004", "STREAM-008")
@pytest.mark.features("publish")
def test_buffered_events_are_replayed_in_order_then_live_events_follow(rep: Harness) -> None:
    """Two events published before subscribing are replayed after the response, then live."""
    stream = steps.require_stream(rep)
    kind = rep.name("evt")
    published = [steps.publish(rep, stream, kind, data={"n": n}) for n in range(2)]
    client = rep.connect()
    response = subscribe(client, stream, filter={"eventTypes": [kind]})
    if response["payload"].get("replayed") != 2:
        raise rep.fail(
            "STREAM-004",
            expected="replayed = 2",
            received=f"payload {json_text(response['payload'])}",
        )
    replay = events_of(client, stream, 2, "STREAM-004")
    expect_ids(rep, "STREAM-004", replay, published, "the buffered events in publication order")
    live_id = steps.publish(rep, stream, kind, data={"n": 2})
    live = events_of(client, stream, 1, "STREAM-004")
    expect_ids(rep, "STREAM-004", live, [live_id], "the live event")
    if len(set([*published, live_id])) != 3:
        raise rep.fail(
            "STREAM-008", expected="distinct event ids", received=f"{[*published, live_id]}"
        )


@pytest.mark.requirements("STREAM-004")
@pytest.mark.features("publish")
def test_replay_after_last_event_id_starts_after_it(rep: Harness) -> None:
    """With lastEventId, only the buffered events published after it are replayed."""
    stream = steps.require_stream(rep)
    kind = rep.name("evt")
    published = [steps.publish(rep, stream, kind) for _ in range(3)]
    client = rep.connect()
    response = subscribe(client, stream, filter={"eventTypes": [kind]}, lastEventId=published[0])
    if response["payload"].get("gap") is True:
        raise rep.fail("STREAM-004", expected="no gap", received=json_text(response["payload"]))
    replay = events_of(client, stream, 2, "STREAM-004")
    expect_ids(rep, "STREAM-004", replay, published[1:], "the events after lastEventId")
    client.sync()
    client.expect_none("stream_event", within=0.0, description="a further replayed event")


def position(event_id: str) -> tuple[int, int] | None:
    """An event id of STREAM-008 as its pair of numbers, or None."""
    ms, dash, seq = event_id.partition("-")
    return (int(ms), int(seq)) if dash and ms.isdigit() and seq.isdigit() else None


def expect_gap_then_live(
    rep: Harness, client: Client, stream: str, kind: str, response: Message, why: str
) -> None:
    """gap true, nothing replayed, and the next event published arrives live."""
    payload = response["payload"]
    if payload.get("gap") is not True or payload.get("replayed") != 0:
        raise rep.fail(
            "STREAM-005",
            sent=f"stream_subscribe with a lastEventId {why}",
            expected="gap true, replayed 0",
            received=json_text(payload),
        )
    client.sync()
    client.expect_none("stream_event", within=0.0, requirement="STREAM-005", description="replay")
    live = steps.publish(rep, stream, kind)
    expect_ids(rep, "STREAM-005", events_of(client, stream, 1, "STREAM-005"), [live], "live")


@pytest.mark.requirements("STREAM-005")
@pytest.mark.features("publish")
def test_a_last_event_id_beyond_the_stream_is_a_gap_with_live_delivery(rep: Harness) -> None:
    """A well-formed id the stream has not reached (an hour after its newest event): gap
    true, nothing replayed, and live events, whose ids are lower, still arrive."""
    stream = steps.require_stream(rep)
    kind = rep.name("evt")
    newest = position(steps.publish(rep, stream, kind))
    if newest is None:
        raise rep.fail("STREAM-008", expected="an event id <ms>-<seq>", received="another form")
    ahead = f"{newest[0] + 3_600_000}-0"
    client = rep.connect()
    response = subscribe(client, stream, filter={"eventTypes": [kind]}, lastEventId=ahead)
    expect_gap_then_live(rep, client, stream, kind, response, f"{ahead} beyond the newest event")


@pytest.mark.requirements("STREAM-005")
@pytest.mark.features("publish")
def test_a_last_event_id_older_than_the_buffer_is_a_gap_or_a_full_replay(rep: Harness) -> None:
    """More events than the buffer must keep are published after an id: either gap true
    and nothing replayed, or gap false and every one of them replayed; never a partial
    replay that claims to have no gap."""
    stream = steps.require_stream(rep)
    kind = rep.name("evt")
    published = [steps.publish(rep, stream, kind) for _ in range(BEYOND_BUFFER)]
    client = rep.connect()
    response = subscribe(client, stream, filter={"eventTypes": [kind]}, lastEventId=published[0])
    if response["payload"].get("gap") is True:
        expect_gap_then_live(
            rep, client, stream, kind, response, f"{published[0]}, older than the buffer"
        )
        return
    replay = events_of(client, stream, len(published) - 1, "STREAM-005")
    expect_ids(rep, "STREAM-005", replay, published[1:], "gap false, so every later event")


@pytest.mark.requirements("STREAM-013", "STREAM-004")
@pytest.mark.features("publish")
def test_resuming_from_the_newest_event_is_no_gap_and_replays_nothing(rep: Harness) -> None:
    """lastEventId = the newest event: gap false, replayed 0, then the next event live."""
    stream = steps.require_stream(rep)
    kind = rep.name("evt")
    newest = steps.publish(rep, stream, kind)
    client = rep.connect()
    response = subscribe(client, stream, filter={"eventTypes": [kind]}, lastEventId=newest)
    payload = response["payload"]
    if payload.get("gap") is not False or payload.get("replayed") != 0:
        raise rep.fail(
            "STREAM-013",
            sent=f"stream_subscribe with lastEventId {newest}, the stream's newest event",
            expected="gap false, replayed 0",
            received=json_text(payload),
        )
    live = steps.publish(rep, stream, kind)
    expect_ids(rep, "STREAM-004", events_of(client, stream, 1, "STREAM-004"), [live], "live")


#: JSON numbers whose double value a relay must keep (STREAM-012), with their text.
NUMBERS = {"one-point-zero": 1.0, "big": 2**60, "exponent": 1e21, "tiny": 5e-324, "neg": -12.5}


@pytest.mark.requirements("STREAM-012")
@pytest.mark.features("publish")
def test_event_data_arrives_as_the_same_json_value(rep: Harness) -> None:
    """Nested data with numbers that serialisers spell differently arrives as the same
    JSON value (numbers compared as IEEE doubles)."""
    stream = steps.require_stream(rep)
    kind = rep.name("evt")
    client = rep.connect()
    subscribe(client, stream, filter={"eventTypes": [kind]})
    data = {"numbers": NUMBERS, "list": [0, -0.0, "é\u2028", None, True], "empty": {}}
    steps.publish(rep, stream, kind, data=data)
    event = events_of(client, stream, 1, "STREAM-012")[0]["payload"].get("event", {})
    difference = json_difference(data, event.get("data"), "/data")
    if difference is not None:
        raise rep.fail(
            "STREAM-012",
            sent=f"POST an event with data {json_text(data)}",
            expected="the same JSON value in the stream_event",
            received=f"{json_text(event.get('data'))} ({difference})",
        )


@pytest.mark.requirements("STREAM-006")
@pytest.mark.features("publish")
def test_filters_match_on_type_and_any_shared_tag(rep: Harness) -> None:
    """eventTypes and tags both apply; one shared tag is enough."""
    stream = steps.require_stream(rep)
    wanted, other = rep.name("evt"), rep.name("evt")
    red, blue, green = rep.name("red"), rep.name("blue"), rep.name("green")
    client = rep.connect()
    subscribe(client, stream, filter={"eventTypes": [wanted], "tags": [red, blue]})
    cases = [
        (wanted, [red], True),
        (wanted, [green, blue], True),
        (wanted, [green], False),
        (wanted, [], False),
        (other, [red], False),
    ]
    passing = [steps.publish(rep, stream, kind, tags=tags) for kind, tags, ok in cases if ok]
    for kind, tags, ok in cases:
        if not ok:
            steps.publish(rep, stream, kind, tags=tags)
    got = events_of(client, stream, len(passing), "STREAM-006")
    expect_ids(rep, "STREAM-006", got, passing, "only the events passing the filter")
    client.sync()
    client.expect_none(
        "stream_event",
        within=rep.timeouts.silence,
        requirement="STREAM-006",
        description="an event the filter excludes",
    )


@pytest.mark.requirements("STREAM-007")
@pytest.mark.features("publish")
def test_each_subscriber_gets_each_event_once_in_order(rep: Harness) -> None:
    """Two subscribers, five live events: each gets all five, once, in publication order."""
    stream = steps.require_stream(rep)
    kind = rep.name("evt")
    clients = [rep.connect(label="sub"), rep.connect(label="sub")]
    for client in clients:
        subscribe(client, stream, filter={"eventTypes": [kind]})
    published = [steps.publish(rep, stream, kind, data={"n": n}) for n in range(5)]
    for client in clients:
        got = events_of(client, stream, 5, "STREAM-007")
        expect_ids(rep, "STREAM-007", got, published, f"{client.label}: every event once, in order")
    rep.quiet(clients, "stream_event", requirement="STREAM-007", description="a duplicate event")


@pytest.mark.requirements("STREAM-009", "MSG-003")
@pytest.mark.features("publish")
def test_after_unsubscribing_no_event_arrives(rep: Harness) -> None:
    """Unsubscribe is confirmed; later events do not arrive; a second one is not_found."""
    stream = steps.require_stream(rep)
    kind = rep.name("evt")
    client = rep.connect()
    subscribe(client, stream, filter={"eventTypes": [kind]})
    steps.request(client, "stream_unsubscribe", {"streamId": stream}, requirement="STREAM-009")
    steps.publish(rep, stream, kind)
    client.expect_none("stream_event", requirement="STREAM-009", description="an event after it")
    sent = client.send("stream_unsubscribe", {"streamId": stream})
    client.expect_refusal(NOT_FOUND, of=sent, requirement="STREAM-009")


@pytest.mark.requirements("STREAM-010")
def test_subscribing_twice_is_a_conflict(rep: Harness) -> None:
    """A second stream_subscribe to the same stream on one connection: conflict."""
    stream = steps.require_stream(rep)
    client = rep.connect()
    subscribe(client, stream, filter={"eventTypes": [rep.name("evt")]})
    sent = client.send("stream_subscribe", {"streamId": stream})
    client.expect_refusal(CONFLICT, of=sent, requirement="STREAM-010")


@pytest.mark.requirements("STREAM-011", "AUTHZ-002")
def test_subscribing_needs_stream_subscribe(rep: Harness) -> None:
    """A token without stream:subscribe cannot subscribe."""
    stream = steps.require_stream(rep)
    client = rep.connect(roles=(), permissions=(CONNECT,))
    sent = client.send("stream_subscribe", {"streamId": stream})
    client.expect_refusal(FORBIDDEN, of=sent, requirement="STREAM-011")
