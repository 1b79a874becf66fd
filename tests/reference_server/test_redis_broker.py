"""The Redis broker against the broker contract: MemoryBroker is the reference semantics.

Every contract test runs on both brokers with the same inputs and expects the same outputs;
a seeded differential test replays random operation sequences on both and compares every
answer. Redis-only tests cover fan-out, races between two nodes, and outages.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from reference_server.broker.base import (
    Broker,
    BrokerUnavailable,
    Member,
    Publication,
    RateDecision,
    Record,
    RecordOutcome,
    StreamRead,
    SyncResult,
    event_position,
)
from reference_server.broker.factory import broker_from_url
from reference_server.broker.liveness import LocalState
from reference_server.broker.memory import MemoryBroker
from reference_server.broker.redis import (
    RedisBroker,
    decode_publication,
    encode_publication,
    redact,
)
from tests.reference_server import redis_fixture
from tests.reference_server.redis_fixture import RedisProcess, free_port

redis_server = redis_fixture.redis_server
own_redis_server = redis_fixture.own_redis_server

T0 = 1_800_000_000_000  # a fixed "now" in ms; Redis never reads the clock for these


def _namespace() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


async def _redis_broker(
    url: str, namespace: str, node_id: str = "n1", **options: float
) -> RedisBroker:
    broker = RedisBroker(url, namespace=namespace, node_id=node_id, **options)
    await broker.connect()
    return broker


@pytest.fixture(params=["memory", "redis"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    """Each contract test runs once per implementation; Redis gets a fresh namespace."""
    if request.param == "memory":
        yield MemoryBroker()
        return
    server: RedisProcess = request.getfixturevalue("redis_server")
    redis = await _redis_broker(server.url, _namespace())
    try:
        yield redis
    finally:
        await redis.close()


async def _eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.05)


# ----------------------------------------------------------------------------- connections
async def test_connections_count_across_users(broker: Broker) -> None:
    await broker.connection_opened("c1", "ann")
    await broker.connection_opened("c2", "ann")
    await broker.connection_opened("c3", "bob")
    assert await broker.connection_count() == 3
    assert await broker.connection_closed("c1", "ann") == 1
    assert await broker.connection_closed("c1", "ann") == 1  # closing twice changes nothing
    assert await broker.connection_closed("c2", "ann") == 0
    assert await broker.connection_count() == 1
    assert await broker.connection_closed("ghost", "bob") == 1


async def test_reopened_client_moves_to_the_new_user(broker: Broker) -> None:
    await broker.connection_opened("c1", "ann")
    await broker.connection_opened("c1", "bob")
    assert await broker.connection_count() == 1
    assert await broker.connection_closed("c9", "ann") == 0
    assert await broker.connection_closed("c1", "bob") == 0
    assert await broker.connection_count() == 0


# ----------------------------------------------------------------------------- rooms
async def test_join_lists_members_in_join_order(broker: Broker) -> None:
    first = await broker.join_room("lobby", Member("ann", "c1"))
    assert first.members == (Member("ann", "c1"),) and not first.already_member
    await broker.join_room("lobby", Member("bob", "c2"))
    again = await broker.join_room("lobby", Member("ann2", "c1"))  # same client, new user
    assert again.already_member
    assert again.members == (Member("ann2", "c1"), Member("bob", "c2"))
    assert await broker.room_members("lobby") == again.members


async def test_leave_reports_membership_and_remaining(broker: Broker) -> None:
    await broker.join_room("lobby", Member("ann", "c1"))
    await broker.join_room("lobby", Member("bob", "c2"))
    await broker.join_room("side", Member("ann", "c1"))
    assert await broker.room_count() == 2
    stranger = await broker.leave_room("lobby", "c9")
    assert not stranger.was_member and len(stranger.remaining) == 2
    left = await broker.leave_room("lobby", "c1")
    assert left.was_member and left.remaining == (Member("bob", "c2"),)
    assert (await broker.leave_room("nowhere", "c1")).remaining == ()


async def test_empty_rooms_disappear(broker: Broker) -> None:
    await broker.join_room("lobby", Member("ann", "c1"))
    await broker.join_room("side", Member("bob", "c2"))
    await broker.leave_room("lobby", "c1")
    assert await broker.room_count() == 1
    assert await broker.room_members("lobby") == ()
    await broker.leave_room("side", "c2")
    assert await broker.room_count() == 0
    rejoin = await broker.join_room("lobby", Member("bob", "c2"))
    assert rejoin.members == (Member("bob", "c2"),) and not rejoin.already_member


async def test_large_room_keeps_join_order(broker: Broker) -> None:
    """Past Redis' small-hash encoding (128 fields) a hash forgets order; the room must not."""
    members = [Member(f"user-{i}", f"client-{(i * 7919) % 1000:03d}-{i}") for i in range(300)]
    for member in members:
        await broker.join_room("hall", member)
    await broker.leave_room("hall", members[10].client_id)
    expected = tuple(m for i, m in enumerate(members) if i != 10)
    assert await broker.room_members("hall") == expected


async def test_no_key_is_left_behind_by_an_emptied_room(redis_server: RedisProcess) -> None:
    namespace = _namespace()
    redis = await _redis_broker(redis_server.url, namespace)
    raw = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        await redis.join_room("lobby", Member("ann", "c1"))
        await redis.leave_room("lobby", "c1")
        leftovers = {key async for key in raw.scan_iter(f"{namespace}:room*")}
        assert leftovers == set()
    finally:
        await raw.aclose()
        await redis.close()


# ----------------------------------------------------------------------------- presence
async def test_statuses(broker: Broker) -> None:
    await broker.set_status("ann", "busy")
    await broker.set_status("bob", "away")
    await broker.set_status("ann", "online")
    assert await broker.statuses(["ann", "bob", "carl", "ann"]) == {"ann": "online", "bob": "away"}
    await broker.clear_status("ann")
    await broker.clear_status("nobody")
    assert await broker.statuses(["ann", "bob"]) == {"bob": "away"}
    assert await broker.statuses([]) == {}


# ----------------------------------------------------------------------------- rate limiting
async def test_rate_limit_admits_up_to_the_limit(broker: Broker) -> None:
    decisions = [await broker.rate_limit_hit("ann", T0 + i * 10, 1000, 3) for i in range(3)]
    assert decisions == [RateDecision(True)] * 3
    # The oldest hit (T0) leaves the window at T0 + 1000: 1000 - 50 ms from now.
    assert await broker.rate_limit_hit("ann", T0 + 50, 1000, 3) == RateDecision(False, 950)
    assert await broker.rate_limit_hit("bob", T0 + 50, 1000, 3) == RateDecision(True)


async def test_rate_window_boundary(broker: Broker) -> None:
    await broker.rate_limit_hit("ann", T0, 100, 1)
    assert await broker.rate_limit_hit("ann", T0 + 99, 100, 1) == RateDecision(False, 1)
    assert await broker.rate_limit_hit("ann", T0 + 100, 100, 1) == RateDecision(True)


async def test_refused_hits_are_not_recorded(broker: Broker) -> None:
    await broker.rate_limit_hit("ann", T0, 1000, 2)
    await broker.rate_limit_hit("ann", T0 + 500, 1000, 2)
    for offset in range(600, 1000, 50):
        assert not (await broker.rate_limit_hit("ann", T0 + offset, 1000, 2)).allowed
    # Only the two admitted hits count: the first leaves at T0 + 1000, the second at +1500.
    assert await broker.rate_limit_hit("ann", T0 + 1000, 1000, 2) == RateDecision(True)
    assert await broker.rate_limit_hit("ann", T0 + 1001, 1000, 2) == RateDecision(False, 499)


async def test_hits_in_the_same_millisecond_each_count(broker: Broker) -> None:
    decisions = [await broker.rate_limit_hit("ann", T0, 1000, 3) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert decisions[-1].retry_after_ms == 1000


# ----------------------------------------------------------------------------- records
async def test_record_create_conflict_and_versions(broker: Broker) -> None:
    created = await broker.record_create("docs", "d1", {"v": 1})
    assert created == RecordOutcome("ok", Record("d1", 1, {"v": 1}), 1)
    again = await broker.record_create("docs", "d1", {"v": 99})
    assert again == RecordOutcome("conflict", Record("d1", 1, {"v": 1}), 1)
    updated = await broker.record_update("docs", "d1", {"v": 2}, None)
    assert updated == RecordOutcome("ok", Record("d1", 2, {"v": 2}), 2)
    stale = await broker.record_update("docs", "d1", {"v": 3}, 1)
    assert stale == RecordOutcome("conflict", Record("d1", 2, {"v": 2}), 2)
    matched = await broker.record_update("docs", "d1", {"v": 3}, 2)
    assert matched == RecordOutcome("ok", Record("d1", 3, {"v": 3}), 3)


async def test_record_not_found_and_delete(broker: Broker) -> None:
    assert await broker.record_update("docs", "zz", {}, None) == RecordOutcome("not_found", None, 0)
    assert await broker.record_delete("docs", "zz", None) == RecordOutcome("not_found", None, 0)
    await broker.record_create("docs", "d1", {"v": 1})
    wrong = await broker.record_delete("docs", "d1", 7)
    assert wrong == RecordOutcome("conflict", Record("d1", 1, {"v": 1}), 1)
    deleted = await broker.record_delete("docs", "d1", 1)
    assert deleted == RecordOutcome("ok", Record("d1", 1, {"v": 1}), 2)
    assert await broker.record_delete("docs", "d1", None) == RecordOutcome("not_found", None, 2)
    assert (await broker.record_update("docs", "d1", {}, None)).status == "not_found"
    recreated = await broker.record_create("docs", "d1", {"v": "again"})
    assert recreated == RecordOutcome("ok", Record("d1", 1, {"v": "again"}), 3)


async def test_record_sync_since_with_tombstones(broker: Broker) -> None:
    for name in ("a", "b", "c", "d"):
        await broker.record_create("docs", name, {"name": name})  # revisions 1..4
    await broker.record_update("docs", "a", {"name": "A"}, 1)  # 5
    await broker.record_delete("docs", "b", None)  # 6
    await broker.record_delete("docs", "c", None)  # 7
    await broker.record_create("docs", "c", {"name": "C"})  # 8: back, tombstone gone
    everything = await broker.record_sync("docs", None)
    assert everything == SyncResult(
        8,
        (
            Record("a", 2, {"name": "A"}),
            Record("d", 1, {"name": "d"}),
            Record("c", 1, {"name": "C"}),
        ),
        (),
    )
    since = await broker.record_sync("docs", 4)
    assert since == SyncResult(
        8, (Record("a", 2, {"name": "A"}), Record("c", 1, {"name": "C"})), ("b",)
    )
    assert await broker.record_sync("docs", 8) == SyncResult(8, (), ())
    assert await broker.record_sync("docs", 0) == SyncResult(8, everything.records, ("b",))
    assert await broker.record_sync("empty", 3) == SyncResult(0, (), ())


async def test_record_data_round_trips_exactly(broker: Broker) -> None:
    data = {"list": [], "object": {}, "float": 1.5, "text": "é✓", "none": None, "yes": True}
    await broker.record_create("docs", "d1", data)
    synced = await broker.record_sync("docs", None)
    assert synced.records[0].data == data
    assert (await broker.record_update("docs", "d1", {"n": [1, [2, {}]]}, 1)).record == Record(
        "d1", 2, {"n": [1, [2, {}]]}
    )


async def test_collections_have_their_own_revisions(broker: Broker) -> None:
    await broker.record_create("one", "r", {})
    await broker.record_create("one", "s", {})
    assert (await broker.record_create("two", "r", {})).revision == 1
    assert (await broker.record_sync("one", None)).revision == 2


# ----------------------------------------------------------------------------- streams
async def _append(broker: Broker, now: int, n: int = 0, size: int = 100, keep: int = 60_000) -> str:
    event = await broker.stream_append("s", "tick", ["eu"], {"n": n}, now, size, keep)
    return event.id


async def test_stream_ids_are_monotonic_even_when_the_clock_is_not(broker: Broker) -> None:
    ids = [
        await _append(broker, T0),
        await _append(broker, T0),
        await _append(broker, T0 + 5),
        await _append(broker, T0 + 2),  # the clock stepped back
        await _append(broker, T0 + 6),
    ]
    assert ids == [f"{T0}-0", f"{T0}-1", f"{T0 + 5}-0", f"{T0 + 5}-1", f"{T0 + 6}-0"]


async def test_stream_event_fields(broker: Broker) -> None:
    event = await broker.stream_append("s", "quote", ["eu", "fx"], {"p": [1, 2]}, T0, 10, 1000)
    assert (event.type, event.tags, event.data, event.published_ms) == (
        "quote",
        ("eu", "fx"),
        {"p": [1, 2]},
        T0,
    )
    assert event.published_at == "2027-01-15T08:00:00+00:00"
    assert (await broker.stream_read("s", None, T0, 1000)).events == (event,)


async def test_stream_trims_by_size_exactly(broker: Broker) -> None:
    ids = [await _append(broker, T0 + i, i, size=3) for i in range(7)]
    read = await broker.stream_read("s", None, T0 + 7, 60_000)
    assert [e.id for e in read.events] == ids[4:]
    assert [e.data for e in read.events] == [{"n": 4}, {"n": 5}, {"n": 6}]
    # After a dropped event, something newer was dropped too: a gap. After the newest dropped
    # event, nothing is missing.
    assert await broker.stream_read("s", ids[2], T0 + 7, 60_000) == StreamRead((), False)
    after_dropped = await broker.stream_read("s", ids[3], T0 + 7, 60_000)
    assert after_dropped == StreamRead(read.events, True)
    after_oldest = await broker.stream_read("s", ids[4], T0 + 7, 60_000)
    assert [e.id for e in after_oldest.events] == ids[5:] and after_oldest.found


async def test_stream_trims_by_retention(broker: Broker) -> None:
    oldest = await _append(broker, T0, 0, keep=1000)
    old = await _append(broker, T0 + 100, 1, keep=1000)
    fresh = await _append(broker, T0 + 800, 2, keep=1000)
    read = await broker.stream_read("s", None, T0 + 1500, 1000)
    assert [e.id for e in read.events] == [fresh]
    assert await broker.stream_read("s", oldest, T0 + 1500, 1000) == StreamRead((), False)
    assert await broker.stream_read("s", old, T0 + 1500, 1000) == StreamRead(read.events, True)
    assert await broker.stream_read("s", fresh, T0 + 1500, 1000) == StreamRead((), True)
    # Appending past retention drops old events as well.
    newest = await _append(broker, T0 + 5000, 2, keep=1000)
    assert [e.id for e in (await broker.stream_read("s", None, T0 + 5000, 1000)).events] == [newest]


async def test_stream_read_positions(broker: Broker) -> None:
    assert await broker.stream_read("s", "0-0", T0, 1000) == StreamRead((), True)
    assert await broker.stream_read("s", None, T0, 1000) == StreamRead((), True)
    first = await _append(broker, T0, 0)
    second = await _append(broker, T0, 1)
    everything = await broker.stream_read("s", "0-0", T0, 60_000)
    assert [e.id for e in everything.events] == [first, second] and everything.found
    assert await broker.stream_read("s", second, T0, 60_000) == StreamRead((), True)
    # Unknown ids: beyond the newest event, or not an event id at all.
    assert await broker.stream_read("s", f"{T0}-2", T0, 60_000) == StreamRead((), False)
    assert await broker.stream_read("s", f"{T0 + 1}-0", T0, 60_000) == StreamRead((), False)
    assert await broker.stream_read("s", "yesterday", T0, 60_000) == StreamRead((), False)
    # An id between buffered events is a position: what follows it is gap-free.
    between = await broker.stream_read("s", f"{T0 - 1}-9", T0, 60_000)
    assert [e.id for e in between.events] == [first, second] and between.found


async def test_streams_are_independent(broker: Broker) -> None:
    await broker.stream_append("a", "t", [], 1, T0, 10, 1000)
    event = await broker.stream_append("b", "t", [], 2, T0, 10, 1000)
    assert event.id == f"{T0}-0"
    assert [e.data for e in (await broker.stream_read("b", None, T0, 1000)).events] == [2]


# ----------------------------------------------------------------------------- differential
Operation = Callable[[Broker], Awaitable[Any]]


def _random_operations(seed: int, count: int = 120) -> Iterator[tuple[str, Operation]]:
    """A reproducible mix of every broker method with small pools, so paths collide.

    Lazy: a read picks its position among the ids returned so far, so the caller must run
    each operation before asking for the next.
    """
    rng = random.Random(seed)
    rooms, clients, users = ["r1", "r2", "r3"], [f"c{i}" for i in range(6)], ["ann", "bob", "cy"]
    records, statuses = ["a", "b", "c", "d"], ["online", "away", "busy"]
    size, keep, window, limit = rng.randint(1, 6), rng.choice([50, 400, 5000]), 300, 4
    rate_now, stream_now = [T0], [T0]
    seen_ids: list[str] = ["0-0", "1-0", "garbage", f"{T0 + 99_999}-0"]

    def pick() -> tuple[str, Operation]:
        kind = rng.randrange(14)
        room, client, user = rng.choice(rooms), rng.choice(clients), rng.choice(users)
        record, expected = rng.choice(records), rng.choice([None, None, 1, 2, 3])
        if kind == 0:
            return f"join {room} {client}", lambda b: b.join_room(room, Member(user, client))
        if kind == 1:
            return f"leave {room} {client}", lambda b: b.leave_room(room, client)
        if kind == 2:
            return f"members/count {room}", lambda b: _both(b.room_members(room), b.room_count())
        if kind == 3:
            return f"open {client}", lambda b: b.connection_opened(client, user)
        if kind == 4:
            return f"close {client}", lambda b: _both(
                b.connection_closed(client, user), b.connection_count()
            )
        if kind == 5:
            status = rng.choice(statuses)
            return f"status {user}", lambda b: b.set_status(user, status)
        if kind == 6:
            return f"clear {user}", lambda b: _both(b.clear_status(user), b.statuses(users))
        if kind == 7:
            rate_now[0] += rng.choice([0, 0, 10, 120, 400])
            now = rate_now[0]
            return f"hit {user}@{now}", lambda b: b.rate_limit_hit(user, now, window, limit)
        if kind == 8:
            data = {"n": rng.randrange(100)}
            return f"create {record}", lambda b: b.record_create("col", record, data)
        if kind == 9:
            data = {"n": rng.randrange(100)}
            return f"update {record} {expected}", lambda b: b.record_update(
                "col", record, data, expected
            )
        if kind == 10:
            return f"delete {record} {expected}", lambda b: b.record_delete("col", record, expected)
        if kind == 11:
            since = rng.choice([None, 0, 2, 5, 9])
            return f"sync {since}", lambda b: b.record_sync("col", since)
        if kind == 12:
            stream_now[0] += rng.choice([0, 0, 1, 30, 200, -40])
            now, tags = stream_now[0], rng.sample(["x", "y", "z"], rng.randint(0, 2))
            return f"append @{now}", lambda b: _remember(
                b.stream_append("st", "t", tags, {"at": now}, now, size, keep), seen_ids
            )
        after = rng.choice([None, *seen_ids[-6:], *seen_ids[:4]])
        now = stream_now[0] + rng.choice([0, 0, 100])
        return f"read after {after} @{now}", lambda b: b.stream_read("st", after, now, keep)

    for _ in range(count):
        yield pick()


async def _both(first: Awaitable[Any], second: Awaitable[Any]) -> tuple[Any, Any]:
    return await first, await second


async def _remember(append: Awaitable[Any], seen: list[str]) -> Any:
    event = await append
    if event.id not in seen:
        seen.append(event.id)
    return event


@pytest.mark.parametrize("seed", range(12))
async def test_same_operations_same_answers(redis_server: RedisProcess, seed: int) -> None:
    memory = MemoryBroker()
    redis = await _redis_broker(redis_server.url, _namespace())
    try:
        # Two identical generators: each sees the ids its own broker returned.
        for step, ((label, on_memory), (_, on_redis)) in enumerate(
            zip(_random_operations(seed), _random_operations(seed), strict=True)
        ):
            expected, actual = await on_memory(memory), await on_redis(redis)
            assert actual == expected, f"seed {seed}, step {step}: {label}"
    finally:
        await redis.close()


# ----------------------------------------------------------------------------- fan-out
async def test_every_node_receives_every_publication_once(redis_server: RedisProcess) -> None:
    namespace = _namespace()
    nodes = [await _redis_broker(redis_server.url, namespace, f"n{i}") for i in range(2)]
    received: list[list[Publication]] = [[], []]
    for node, inbox in zip(nodes, received, strict=True):
        node.on_publication(inbox.append)
    sent = [
        Publication(
            f"room:r{i}", {"i": i}, frozenset({"c1"}), frozenset({"c2", "c3"}) if i % 2 else None
        )
        for i in range(40)
    ]
    try:
        for i, publication in enumerate(sent):
            publisher = i % 2
            await nodes[publisher].publish(publication)
            # As with MemoryBroker, the publisher's own clients have it when publish returns.
            assert received[publisher][-1] == publication

        async def all_arrived() -> bool:
            return all(len(inbox) >= len(sent) for inbox in received)

        await _eventually(all_arrived)
        await asyncio.sleep(0.2)  # room for a duplicate to show up
        for inbox in received:
            assert sorted(inbox, key=lambda p: p.message["i"]) == sent  # each exactly once
            for origin in ("n0", "n1"):  # each node's publications keep their order
                own = [p for p in inbox if p.origin == origin]
                assert own == [p for i, p in enumerate(sent) if f"n{i % 2}" == origin]
    finally:
        for node in nodes:
            await node.close()


async def test_namespaces_do_not_hear_each_other(redis_server: RedisProcess) -> None:
    ours = await _redis_broker(redis_server.url, _namespace())
    theirs = _namespace()
    sender, listener = [await _redis_broker(redis_server.url, theirs, f"n{i}") for i in range(2)]
    heard_by_us: list[Publication] = []
    heard_by_them: list[Publication] = []
    ours.on_publication(heard_by_us.append)
    listener.on_publication(heard_by_them.append)
    try:
        await sender.publish(Publication("broadcast", {"from": "theirs"}))
        await _eventually(lambda: _ready(len(heard_by_them) == 1))
        await asyncio.sleep(0.1)
        assert heard_by_us == []
    finally:
        for broker in (ours, sender, listener):
            await broker.close()


async def _ready(value: bool) -> bool:
    return value


async def test_malformed_bus_messages_are_logged_and_skipped(
    redis_server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="reference_server.broker.redis")
    node = await _redis_broker(redis_server.url, _namespace())
    heard: list[Publication] = []
    node.on_publication(heard.append)
    raw = Redis.from_url(redis_server.url)
    try:
        for junk in (b"not json", b"[]", b'{"topic": 1, "message": {}}', b'{"topic": "t"}'):
            await raw.xadd(node.bus_key, {"p": junk})
        await node.publish(Publication("broadcast", {"ok": True}))
        await _eventually(lambda: _ready(len(heard) == 1))
        assert heard[0].message == {"ok": True}
        skipped = [r for r in caplog.records if "malformed" in r.getMessage()]
        assert len(skipped) == 4
    finally:
        await raw.aclose()
        await node.close()


async def test_a_failing_callback_does_not_stop_delivery(
    redis_server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="reference_server.broker.redis")
    node = await _redis_broker(redis_server.url, _namespace())
    heard: list[Publication] = []

    def broken(publication: Publication) -> None:
        raise RuntimeError("delivery bug")

    node.on_publication(broken)
    node.on_publication(heard.append)
    try:
        await node.publish(Publication("broadcast", {"n": 1}))
        await node.publish(Publication("broadcast", {"n": 2}))
        await _eventually(lambda: _ready(len(heard) == 2))
        assert sum("delivery failed" in r.getMessage() for r in caplog.records) == 2
    finally:
        await node.close()


def test_publication_wire_format_round_trips() -> None:
    publication = Publication(
        "direct", {"a": [1]}, frozenset({"y", "x"}), frozenset({"z"}), origin="node-a"
    )
    encoded = encode_publication(publication, "abc123")
    assert encoded == (
        b'{"topic":"direct","message":{"a":[1]},"exclude":["x","y"],'
        b'"recipients":["z"],"origin":"node-a","instance":"abc123"}'
    )
    decoded, instance = decode_publication(encoded)
    assert decoded == publication and decoded.origin == "node-a" and instance == "abc123"
    assert decode_publication(encode_publication(Publication("t", {}), "i"))[0].recipients is None
    with pytest.raises(ValueError, match="lists of client ids"):
        decode_publication(b'{"topic": "t", "message": {}, "exclude": [1]}')


def test_passwords_never_reach_messages() -> None:
    assert redact("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert redact("redis://user:s3cret@host/0") == "redis://user:***@host/0"
    assert redact("redis://host:6379/0") == "redis://host:6379/0"


# ----------------------------------------------------------------------------- lifecycle
@pytest.mark.parametrize(
    ("required", "outcome"), [("1", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_missing_redis_server_skips_unless_required(
    monkeypatch: pytest.MonkeyPatch, required: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("REP_REQUIRE_ALL", required)
    with pytest.raises(outcome, match="redis-server is not on PATH"):
        redis_fixture.redis_executable()


async def test_unreachable_redis_at_start_is_a_clear_error() -> None:
    port = free_port()
    broker = RedisBroker(f"redis://:hunter2@127.0.0.1:{port}/0", node_id="n1")
    started = time.monotonic()
    with pytest.raises(
        BrokerUnavailable, match=rf"cannot reach Redis at redis://:\*\*\*@127\.0\.0\.1:{port}/0"
    ) as caught:
        await broker.start()
    assert "hunter2" not in str(caught.value)
    assert time.monotonic() - started < 5
    await broker.close()


async def test_use_before_connect_says_so() -> None:
    broker = RedisBroker("redis://127.0.0.1:1/0", node_id="n1")
    with pytest.raises(RuntimeError, match="await connect"):
        await broker.room_count()
    with pytest.raises(RuntimeError, match="await connect"):
        await broker.join_room("r", Member("u", "c"))


async def test_connect_is_idempotent_and_close_is_final(redis_server: RedisProcess) -> None:
    broker = await _redis_broker(redis_server.url, _namespace())
    await broker.start()
    assert await broker.room_count() == 0
    await broker.close()
    await broker.close()
    with pytest.raises(RuntimeError):
        await broker.room_count()


def test_broker_from_url() -> None:
    assert isinstance(broker_from_url(None, "n1"), MemoryBroker)
    for url in ("redis://127.0.0.1:6379/0", "rediss://h/1", "unix:///run/redis.sock"):
        chosen = broker_from_url(url, "node-7")
        assert isinstance(chosen, RedisBroker) and chosen.node_id == "node-7"
    with pytest.raises(ValueError, match="unsupported broker URL"):
        broker_from_url("http://127.0.0.1:6379", "n1")


# ----------------------------------------------------------------------------- races
@pytest.fixture
async def two_nodes(redis_server: RedisProcess) -> AsyncIterator[tuple[RedisBroker, RedisBroker]]:
    namespace = _namespace()
    # The races queue hundreds of calls on each pool: on a busy machine a call may wait
    # longer than the production timeout, and a timed-out rate check falls back to the
    # node's own window, which is not what these tests are about (atomicity is).
    first = await _redis_broker(redis_server.url, namespace, "n1", command_timeout=30)
    second = await _redis_broker(redis_server.url, namespace, "n2", command_timeout=30)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_concurrent_hits_never_exceed_the_limit(
    two_nodes: tuple[RedisBroker, RedisBroker],
) -> None:
    hits = [two_nodes[i % 2].rate_limit_hit("flood", T0 + i % 5, 60_000, 50) for i in range(400)]
    decisions = await asyncio.gather(*hits)
    assert sum(d.allowed for d in decisions) == 50
    assert all(d.retry_after_ms > 0 for d in decisions if not d.allowed)


async def test_concurrent_updates_with_one_expected_version(
    two_nodes: tuple[RedisBroker, RedisBroker],
) -> None:
    await two_nodes[0].record_create("docs", "d1", {"v": 0})
    updates = [two_nodes[i % 2].record_update("docs", "d1", {"writer": i}, 1) for i in range(40)]
    outcomes = await asyncio.gather(*updates)
    winners = [o for o in outcomes if o.status == "ok"]
    assert len(winners) == 1 and winners[0].record is not None
    assert {o.status for o in outcomes} == {"ok", "conflict"}
    synced = await two_nodes[1].record_sync("docs", None)
    assert synced.records == (winners[0].record,) and synced.revision == 2


async def test_concurrent_creates_and_deletes(two_nodes: tuple[RedisBroker, RedisBroker]) -> None:
    creates = await asyncio.gather(
        *(two_nodes[i % 2].record_create("docs", "same", {"i": i}) for i in range(30))
    )
    assert [o.status for o in creates].count("ok") == 1
    deletes = await asyncio.gather(
        *(two_nodes[i % 2].record_delete("docs", "same", 1) for i in range(30))
    )
    assert [o.status for o in deletes].count("ok") == 1
    assert (await two_nodes[0].record_sync("docs", 0)).deleted == ("same",)


async def test_concurrent_joins_and_leaves_keep_rooms_consistent(
    two_nodes: tuple[RedisBroker, RedisBroker],
) -> None:
    members = [Member(f"u{i}", f"c{i}") for i in range(60)]
    joins = await asyncio.gather(
        *(two_nodes[i % 2].join_room(f"room{i % 3}", m) for i, m in enumerate(members))
    )
    assert not any(j.already_member for j in joins)
    assert await two_nodes[0].room_count() == 3
    assert sum([len(await two_nodes[1].room_members(f"room{r}")) for r in range(3)]) == 60
    leaves = await asyncio.gather(
        *(two_nodes[i % 2].leave_room(f"room{i % 3}", m.client_id) for i, m in enumerate(members))
    )
    assert all(leave.was_member for leave in leaves)
    assert sorted(len(leave.remaining) for leave in leaves)[:3] == [0, 0, 0]
    assert await two_nodes[1].room_count() == 0


async def test_concurrent_appends_get_unique_ordered_ids(
    two_nodes: tuple[RedisBroker, RedisBroker],
) -> None:
    appends = [
        two_nodes[i % 2].stream_append("s", "t", [], {"i": i}, T0, 25, 60_000) for i in range(40)
    ]
    events = await asyncio.gather(*appends)
    assert len({e.id for e in events}) == 40
    read = await two_nodes[0].stream_read("s", None, T0, 60_000)
    assert [e.id for e in read.events] == [f"{T0}-{seq}" for seq in range(15, 40)]


# ----------------------------------------------------------------------------- outages
async def test_outage_and_recovery(
    own_redis_server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="reference_server.broker.redis")
    namespace = _namespace()
    node, peer = [await _redis_broker(own_redis_server.url, namespace, f"n{i}") for i in (1, 2)]
    heard: list[Publication] = []
    node.on_publication(heard.append)
    try:
        await node.join_room("lobby", Member("ann", "c1"))
        own_redis_server.stop()

        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match="is unavailable \\(join\\)"):
            await node.join_room("lobby", Member("bob", "c2"))
        with pytest.raises(BrokerUnavailable, match="publish"):
            await node.publish(Publication("broadcast", {"lost": True}))
        with pytest.raises(BrokerUnavailable):
            await node.connection_count()
        assert time.monotonic() - started < 5, "operations must fail fast during an outage"
        assert heard == []  # a refused publication reaches nobody, here included
        # The limiter keeps working, per node, so pings still get answers.
        local = [await node.rate_limit_hit("ann", T0, 1000, 2) for _ in range(3)]
        assert [d.allowed for d in local] == [True, True, False]

        await asyncio.sleep(0.5)  # let the readers notice and back off at least once
        own_redis_server.start()

        async def peer_heard_again() -> bool:
            try:
                await peer.publish(Publication("broadcast", {"back": True}))
            except BrokerUnavailable:
                return False
            await asyncio.sleep(0.2)
            return any(p.message == {"back": True} for p in heard)

        await _eventually(peer_heard_again, within=15)
        assert await node.room_count() == 0  # a Redis without persistence comes back empty
        assert (await node.rate_limit_hit("ann", T0, 1000, 2)).allowed  # shared again
        messages = [r.getMessage() for r in caplog.records]
        assert any(
            "node n1: Redis bus" in m and "cross-node delivery paused" in m for m in messages
        )
        assert any("node n1: Redis bus" in m and "delivery resumed" in m for m in messages)
        assert any("rate limits are per node" in m for m in messages)
        assert any("shared through Redis again" in m for m in messages)
    finally:
        await node.close()
        await peer.close()


async def _peer_reaches(peer: RedisBroker, heard: list[Publication], within: float = 10) -> None:
    """Publish from ``peer`` until the listener's callback has one of them."""
    marker = {"probe": uuid.uuid4().hex}

    async def arrived() -> bool:
        await peer.publish(Publication("broadcast", marker))
        await asyncio.sleep(0.1)
        return any(p.message == marker for p in heard)

    await _eventually(arrived, within=within)


async def test_a_killed_subscription_is_replaced(
    two_nodes: tuple[RedisBroker, RedisBroker],
    redis_server: RedisProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="reference_server.broker.redis")
    listener, peer = two_nodes
    heard: list[Publication] = []
    listener.on_publication(heard.append)
    raw = Redis.from_url(redis_server.url)
    try:
        reader_name = f"{listener.namespace}:bus-reader:{listener.node_id}"
        (reader,) = [c for c in await raw.client_list() if c["name"] == reader_name]
        await raw.client_kill_filter(_id=reader["id"])  # Redis itself stays up
        await _peer_reaches(peer, heard)
        assert await listener.room_count() == 0  # state operations were never affected
        messages = [r.getMessage() for r in caplog.records]
        assert any("node n1: Redis bus" in m and "delivery resumed" in m for m in messages)
    finally:
        await raw.aclose()


async def test_publications_made_while_a_reader_reconnects_still_arrive(
    two_nodes: tuple[RedisBroker, RedisBroker], redis_server: RedisProcess
) -> None:
    """CLUSTER-001: what Redis accepted reaches every node, even one that was reconnecting."""
    listener, peer = two_nodes
    heard: list[Publication] = []
    listener.on_publication(heard.append)
    raw = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        reader_name = f"{listener.namespace}:bus-reader:{listener.node_id}"
        (reader,) = [c for c in await raw.client_list() if c["name"] == reader_name]
        await raw.client_kill_filter(_id=reader["id"])
        sent = [Publication("broadcast", {"n": n}) for n in range(20)]
        for publication in sent:  # while the listener's reader is down or backing off
            await peer.publish(publication)
        await _eventually(lambda: _ready(len(heard) >= len(sent)))
        await asyncio.sleep(0.2)  # room for a duplicate to show up
        assert [p.message for p in heard] == [p.message for p in sent]  # all, once, in order
    finally:
        await raw.aclose()


async def test_an_unexpected_reader_error_does_not_end_delivery(
    two_nodes: tuple[RedisBroker, RedisBroker],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="reference_server.broker.redis")
    listener, peer = two_nodes
    heard: list[Publication] = []
    listener.on_publication(heard.append)
    listener_bus = listener._bus
    original = Redis.xread
    failures = [RuntimeError("a bug in the client library")]

    async def flaky(self: Redis, *args: Any, **kwargs: Any) -> Any:
        if failures and self is listener_bus:  # the listener's reader only
            raise failures.pop()
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(Redis, "xread", flaky)
    await _eventually(lambda: _ready(not failures))
    await _peer_reaches(peer, heard)
    logged = [r for r in caplog.records if r.getMessage().startswith("node n1: Redis bus")]
    assert any(r.exc_info and "a bug in the client" in str(r.exc_info[1]) for r in logged)
    assert any("delivery resumed" in r.getMessage() for r in logged)


async def test_a_join_and_its_announcement_are_one_step(
    two_nodes: tuple[RedisBroker, RedisBroker],
) -> None:
    """The announcement is on the bus before any later join, so it is not that joiner's."""
    first, second = two_nodes
    heard: list[Publication] = []
    second.on_publication(heard.append)
    announce = Publication("room:r", {"joined": "ann"})
    await first.join_room("r", Member("ann", "c1"), announce)
    assert (await first.join_room("r", Member("ann", "c1"), announce)).already_member
    joined = await second.join_room("r", Member("bob", "c2"))
    await _eventually(lambda: _ready(len(heard) >= 1))
    await asyncio.sleep(0.2)
    assert [p.message for p in heard] == [{"joined": "ann"}], "one announcement, not two"
    assert event_position(heard[0].position) <= event_position(joined.position)
    left = await first.leave_room("r", "c1", Publication("room:r", {"left": "ann"}))
    assert left.was_member
    assert not (
        await first.leave_room("r", "c1", Publication("room:r", {"left": "again"}))
    ).was_member
    await _eventually(lambda: _ready(len(heard) >= 2))
    await asyncio.sleep(0.2)
    assert [p.message for p in heard][1:] == [{"left": "ann"}]


def test_the_local_state_kept_for_restoring_follows_connections() -> None:
    local = LocalState()
    local.opened("c1", "ann")
    local.opened("c2", "ann")
    local.joined("lobby", "c1")
    local.joined("ops", "c1")
    local.status_set("ann", "busy")
    local.status_set("nobody-here", "away")  # a user of another node: not ours to restore
    assert local.statuses == {"ann": "busy"}
    assert list(local.rooms["c1"]) == ["lobby", "ops"]  # join order kept
    local.closed("c1")
    assert local.statuses == {"ann": "busy"}, "ann still has c2 here"
    assert "c1" not in local.rooms
    local.opened("c2", "bob")  # a reused client id moves to its new user
    assert local.statuses == {} and dict(local.users) == {"bob": 1}
