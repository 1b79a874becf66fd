"""Two reference server nodes on one Redis, over loopback, behave as one server.

Each node runs with its own RedisBroker (own connections, own bus reader) in its own
thread and event loop; the clients are real WebSocket and HTTP clients. The fault tests give
each test its own redis-server, which they stop and start again on the same port.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import aiohttp
import pytest

from reference_server.auth import mint_token
from reference_server.broker.base import BrokerUnavailable
from reference_server.broker.redis import RedisBroker
from reference_server.config import ServerConfig, parse_config
from reference_server.testing import RunningServer, running_server
from tests.reference_server import redis_fixture
from tests.reference_server.netclient import Client, connect
from tests.reference_server.redis_fixture import RedisProcess, free_port
from tests.reference_server.test_sse import RawSseReader

pytestmark = pytest.mark.network

redis_server = redis_fixture.redis_server
own_redis_server = redis_fixture.own_redis_server

CONFIG = {
    "streams": [{"id": "prices", "buffer_size": 50, "retention_ms": 600_000}],
    "rate_limit": {"window_ms": 60_000, "max_messages": 500},
}
RECOVERY_DEADLINE_S = 20.0
# Longer than production's 2 s: on a busy machine a node's loop may stall past that, and a
# timed-out command is answered internal_error. An outage is still seen at once (refused).
COMMAND_TIMEOUT_S = 10.0


@contextmanager
def two_nodes(url: str, config: ServerConfig) -> Iterator[tuple[RunningServer, RunningServer]]:
    """Nodes A and B: one secret, one Redis namespace, each its own broker."""
    namespace, secret = f"cluster-{uuid.uuid4().hex[:12]}", secrets.token_urlsafe(32)
    with ExitStack() as stack:
        nodes = tuple(
            stack.enter_context(
                running_server(
                    config,
                    secret=secret,
                    broker=RedisBroker(
                        url,
                        namespace=namespace,
                        node_id=f"node-{name}",
                        command_timeout=COMMAND_TIMEOUT_S,
                    ),
                )
            )
            for name in "ab"
        )
        yield nodes[0], nodes[1]


@pytest.fixture
def cluster(redis_server: RedisProcess) -> Iterator[tuple[RunningServer, RunningServer]]:
    with two_nodes(redis_server.url, parse_config(CONFIG)) as nodes:
        yield nodes


async def _join(client: Client, room: str) -> dict[str, Any]:
    await client.send("room_join", {"roomId": room})
    return await client.recv_type("room_join_response")


def _members(response: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(m["userId"], m["clientId"], m["status"]) for m in response["payload"]["members"]]


async def _publish(server: RunningServer, stream: str, body: dict[str, Any]) -> str:
    headers = {"Authorization": f"Bearer {mint_token(server.secret, 'producer', ('admin',))}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.http_url}/streams/{stream}/events", json=body, headers=headers) as r,
    ):
        assert r.status == 201, await r.text()
        event_id: str = (await r.json())["id"]
        return event_id


async def _close(*clients: Client) -> None:
    for client in clients:
        await client.ws.close()


# ----------------------------------------------------------------------------- one server
async def test_chat_from_node_b_reaches_node_a_exactly_once(
    cluster: tuple[RunningServer, RunningServer],
) -> None:
    node_a, node_b = cluster
    ann, bob = await connect(node_a, "ann"), await connect(node_b, "bob")
    await _join(ann, "lobby")
    await _join(bob, "lobby")
    assert (await ann.recv_type("user_join"))["payload"]["userId"] == "bob"
    chat_id = await bob.send("chat_message", {"roomId": "lobby", "content": "hello from B"})
    for client in (ann, bob):
        copy = await client.recv_type("chat_message")
        assert copy["payload"]["content"] == "hello from B"
        assert copy["metadata"]["correlation_id"] == chat_id
        assert copy["metadata"]["sender"]["clientId"] == bob.welcome["payload"]["clientId"]
    assert await ann.silent(0.3) and await bob.silent(0.1)  # exactly once
    await bob.ws.close()
    leave = await ann.recv_type("user_leave")
    assert leave["payload"]["userId"] == "bob" and leave["payload"]["reason"] == "disconnected"
    await ann.ws.close()


async def test_presence_lists_agree_across_nodes(
    cluster: tuple[RunningServer, RunningServer],
) -> None:
    node_a, node_b = cluster
    a1, b1 = await connect(node_a, "a1"), await connect(node_b, "b1")
    a2, b2 = await connect(node_a, "a2"), await connect(node_b, "b2")
    await _join(a1, "ops")
    await _join(b1, "ops")
    await b1.send("status_update", {"status": "busy"})
    assert (await b1.recv_type("status_update"))["payload"]["status"] == "busy"
    assert (await a1.recv_type("user_join"))["payload"]["userId"] == "b1"
    seen_on_a = await a1.recv_type("status_update")  # presence crosses nodes too
    assert seen_on_a["metadata"]["sender"]["userId"] == "b1"
    on_a = _members(await _join(a2, "ops"))
    on_b = _members(await _join(b2, "ops"))
    ids = {client: client.welcome["payload"]["clientId"] for client in (a1, b1, a2, b2)}
    assert on_a == [("a1", ids[a1], "online"), ("b1", ids[b1], "busy"), ("a2", ids[a2], "online")]
    assert on_b == [*on_a, ("b2", ids[b2], "online")]
    async with aiohttp.ClientSession() as http:
        stats = [await (await http.get(f"{n.http_url}/stats")).json() for n in cluster]
    assert stats[0] == stats[1] and stats[0]["connections"] == 4 and stats[0]["rooms"] == 1
    await _close(a1, b1, a2, b2)


async def test_rate_limit_is_shared_by_the_nodes(redis_server: RedisProcess) -> None:
    config = parse_config({**CONFIG, "rate_limit": {"window_ms": 60_000, "max_messages": 6}})
    with two_nodes(redis_server.url, config) as (node_a, node_b):
        on_a, on_b = await connect(node_a, "rita"), await connect(node_b, "rita")
        for _ in range(3):
            for client in (on_a, on_b):
                await client.send("ping", {})
                await client.recv_type("pong")
        for client in (on_a, on_b):  # the 7th and 8th message of rita, on either node
            refused_id = await client.send("ping", {})
            refused = await client.recv_type("error")
            assert refused["payload"]["code"] == "rate_limited"
            assert refused["metadata"]["correlation_id"] == refused_id
            assert 0 < refused["payload"]["retry_after_ms"] <= 60_000
        other = await connect(node_b, "sam")  # other users are not affected
        await other.send("ping", {})
        await other.recv_type("pong")
        await _close(on_a, on_b, other)


async def test_data_versions_conflict_across_nodes(
    cluster: tuple[RunningServer, RunningServer],
) -> None:
    node_a, node_b = cluster
    writer_a, writer_b = await connect(node_a, "wa"), await connect(node_b, "wb")
    await writer_a.send("data_create", {"collection": "docs", "recordId": "d1", "data": {"v": 1}})
    assert (await writer_a.recv_type("data_create"))["payload"]["version"] == 1
    update = {"collection": "docs", "recordId": "d1", "expectedVersion": 1}
    await writer_a.send("data_update", {**update, "data": {"v": "from A"}})
    assert (await writer_a.recv_type("data_update"))["payload"]["version"] == 2
    await writer_b.send("data_update", {**update, "data": {"v": "from B"}})
    conflict = await writer_b.recv_type("error")
    assert conflict["payload"]["code"] == "conflict"
    await writer_b.send("data_sync", {"collection": "docs"})
    synced = (await writer_b.recv_type("data_sync_response"))["payload"]
    assert synced["revision"] == 2
    assert synced["records"] == [{"recordId": "d1", "version": 2, "data": {"v": "from A"}}]
    # writer_b now follows the collection: a change made on node A reaches it on node B.
    await writer_a.send("data_delete", {"collection": "docs", "recordId": "d1"})
    await writer_a.recv_type("data_delete")
    deleted = await writer_b.recv_type("data_delete")
    assert deleted["payload"]["recordId"] == "d1" and deleted["payload"]["version"] == 2
    await _close(writer_a, writer_b)


async def test_http_event_on_node_b_reaches_node_a_and_replays_alike(
    cluster: tuple[RunningServer, RunningServer],
) -> None:
    node_a, node_b = cluster
    watcher = await connect(node_a, "watcher")
    await watcher.send("stream_subscribe", {"streamId": "prices"})
    assert (await watcher.recv_type("stream_subscribe_response"))["payload"]["replayed"] == 0
    ids = [
        await _publish(node_b, "prices", {"type": "quote", "tags": ["eu"], "data": {"p": n}})
        for n in range(4)
    ]
    for n, event_id in enumerate(ids):
        live = (await watcher.recv_type("stream_event"))["payload"]
        assert live["event"]["id"] == event_id and live["event"]["data"] == {"p": n}
        assert "replay" not in live
    replays = []
    for node in (node_a, node_b):
        late = await connect(node, "late")
        await late.send("stream_subscribe", {"streamId": "prices", "lastEventId": ids[0]})
        response = (await late.recv_type("stream_subscribe_response"))["payload"]
        assert response == {"streamId": "prices", "replayed": 3, "gap": False}
        replays.append([(await late.recv_type("stream_event"))["payload"] for _ in range(3)])
        await late.ws.close()
    assert replays[0] == replays[1]
    assert [event["event"]["id"] for event in replays[0]] == ids[1:]
    assert all(event["replay"] is True for event in replays[0])
    await watcher.ws.close()


async def test_sse_reader_on_a_gets_events_from_b_and_resumes_on_b(
    cluster: tuple[RunningServer, RunningServer],
) -> None:
    """Event ids come from Redis, so an SSE cursor from one node resumes on any other."""
    node_a, node_b = cluster
    token = mint_token(node_a.secret, "reader", ("user",))
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{node_a.sse_url}?channels=prices", headers=headers) as response:
            reader = RawSseReader(response)
            await reader.block()  # the retry hint
            assert (await reader.event()).get("event") == "connection"
            first = await _publish(node_b, "prices", {"type": "quote", "data": 1})
            event = await reader.event()
            assert event.envelope["payload"]["event"]["id"] == first
            cursor = event.get("id") or ""
        missed = [await _publish(node_a, "prices", {"type": "quote", "data": n}) for n in (2, 3)]
        resume = {**headers, "Last-Event-ID": cursor}
        async with http.get(f"{node_b.sse_url}?channels=prices", headers=resume) as response:
            reader = RawSseReader(response)
            await reader.block()
            assert (await reader.event()).get("id") == cursor
            resumed = [(await reader.event()).envelope["payload"]["event"] for _ in missed]
            assert [e["id"] for e in resumed] == missed and [e["data"] for e in resumed] == [2, 3]


async def test_unreachable_redis_fails_the_start(caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with (
        pytest.raises(BrokerUnavailable, match=f"cannot reach Redis at {url}"),
        running_server(ServerConfig(), broker=RedisBroker(url, node_id="lonely")),
    ):
        pytest.fail("the server must not start without its Redis")


# ----------------------------------------------------------------------------- faults
@contextmanager
def _fault_cluster(redis: RedisProcess) -> Iterator[tuple[RunningServer, RunningServer]]:
    with two_nodes(redis.url, parse_config(CONFIG)) as nodes:
        yield nodes


async def _chat_crosses(sender: Client, receiver: Client, room: str) -> bool:
    """One attempt: B's chat either arrives at A, or the attempt counts as not yet."""
    content = f"probe {uuid.uuid4().hex[:8]}"
    await sender.send("chat_message", {"roomId": room, "content": content})
    answer = await sender.recv(5)
    while answer["type"] == "heartbeat":
        answer = await sender.recv(5)
    if answer["type"] == "error":
        assert answer["payload"]["code"] == "internal_error", answer
        return False
    deadline = time.monotonic() + 1.0
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = await receiver.recv(left)
        except TimeoutError:
            return False
        if message["type"] == "chat_message" and message["payload"]["content"] == content:
            return True
    return False


async def _until_chat_crosses(sender: Client, receiver: Client, room: str) -> None:
    deadline = time.monotonic() + RECOVERY_DEADLINE_S
    while not await _chat_crosses(sender, receiver, room):
        assert time.monotonic() < deadline, "cross-node delivery did not resume"
        await asyncio.sleep(0.2)


async def test_nodes_survive_a_redis_restart(
    own_redis_server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="reference_server.broker.redis")
    with _fault_cluster(own_redis_server) as (node_a, node_b):
        ann, bob = await connect(node_a, "ann"), await connect(node_b, "bob")
        await _join(ann, "ops")
        await _join(bob, "ops")
        await ann.recv_type("user_join")
        assert await _chat_crosses(bob, ann, "ops")

        own_redis_server.stop()
        for _ in range(3):  # local service goes on: pings need no Redis
            for client in (ann, bob):
                await client.send("ping", {})
                await client.recv_type("pong")
        async with aiohttp.ClientSession() as http:
            for node in (node_a, node_b):
                # HTTP-006: a balancer must stop routing new clients here.
                async with http.get(f"{node.http_url}/health") as health:
                    assert health.status == 503
                    assert (await health.json())["status"] == "unavailable"
                # HTTP-007: the spec's JSON error, not a plain-text 500.
                async with http.get(f"{node.http_url}/stats") as stats:
                    assert stats.status == 500
                    assert (await stats.json())["error"]["code"] == "internal_error"

        own_redis_server.start()
        restarted = time.monotonic()
        await _until_chat_crosses(bob, ann, "ops")  # B -> A
        await _until_chat_crosses(ann, bob, "ops")  # and A -> B
        assert time.monotonic() - restarted < RECOVERY_DEADLINE_S
        async with aiohttp.ClientSession() as http:
            for node in (node_a, node_b):
                async with http.get(f"{node.http_url}/health") as health:
                    assert health.status == 200

        messages = [record.getMessage() for record in caplog.records]
        for node_id in ("node-a", "node-b"):
            assert any(f"node {node_id}: Redis bus" in m and "lost" in m for m in messages)
            assert any(f"node {node_id}: Redis bus" in m and "resumed" in m for m in messages)
        await _close(ann, bob)


async def test_message_needing_redis_gets_internal_error_during_an_outage(
    own_redis_server: RedisProcess,
) -> None:
    with _fault_cluster(own_redis_server) as (node_a, _):
        ann = await connect(node_a, "ann")
        own_redis_server.stop()
        create_id = await ann.send("data_create", {"collection": "docs", "data": {"v": 1}})
        error = await ann.recv_type("error")
        assert error["payload"]["code"] == "internal_error"
        assert error["metadata"]["correlation_id"] == create_id
        await ann.send("ping", {})  # the connection stays open
        await ann.recv_type("pong")
        await ann.ws.close()
