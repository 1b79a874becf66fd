"""A cluster that heals: a node killed mid-conversation, Redis killed and restarted empty.

Real processes, real signals: nodes are ``rep-server`` subprocesses (a SIGKILL leaves no
goodbye and nothing cleaned up), Redis is killed with SIGKILL and restarted without its data.
Every wait is bounded; the bounds are the ones the spec states (CLUSTER-006, CLUSTER-007)
plus the slack a busy machine needs.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest

from reference_server.broker.liveness import BEAT_MS, NODE_TTL_MS
from reference_server.broker.redis import RedisBroker
from reference_server.config import parse_config
from reference_server.testing import RunningServer, running_server
from tests.deploy.nodes import NodeProcess
from tests.reference_server import redis_fixture
from tests.reference_server.netclient import Client, connect
from tests.reference_server.redis_fixture import RedisProcess

pytestmark = pytest.mark.network

own_redis_server = redis_fixture.own_redis_server

# CLUSTER-006: a dead node's members are gone within its key's time to live plus one beat.
REAPED_WITHIN_S = (NODE_TTL_MS + BEAT_MS) / 1000
# CLUSTER-007: a node registers its state again within a beat of Redis answering.
RESTORED_WITHIN_S = 2 * BEAT_MS / 1000
SLACK_S = 10.0  # a busy machine: process start-up, scheduling


@dataclass(frozen=True)
class Address:
    """What netclient.connect needs of a server: where it is and the secret it trusts."""

    ws_url: str
    http_url: str
    secret: str


@pytest.fixture
def two_processes(
    own_redis_server: RedisProcess, tmp_path: Path
) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    config = tmp_path / "cluster.yaml"
    config.write_text("rate_limit: {window_ms: 60000, max_messages: 1000}\n")
    secret = secrets.token_urlsafe(32)
    nodes = tuple(
        NodeProcess(f"node-{name}", tmp_path, config, own_redis_server.url, secret) for name in "ab"
    )
    try:
        for node in nodes:
            node.start()
        yield nodes[0], nodes[1]
    finally:
        for node in nodes:
            node.stop()


def _address(node: NodeProcess) -> RunningServer:
    address = Address(f"ws://{node.address}/ws", node.http_url, node.env["REP_JWT_SECRET"])
    return cast(RunningServer, address)


async def _join(client: Client, room: str) -> list[str]:
    await client.send("room_join", {"roomId": room})
    response = await client.recv_type("room_join_response")
    return sorted(m["userId"] for m in response["payload"]["members"])


async def _stats(http_url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{http_url}/stats") as answer:
        body: dict[str, Any] = await answer.json()
        return body


async def test_a_killed_node_leaves_no_ghost_members(
    two_processes: tuple[NodeProcess, NodeProcess],
) -> None:
    node_a, node_b = two_processes
    ann = await connect(_address(node_a), "ann")
    bob = await connect(_address(node_b), "bob")
    assert await _join(ann, "ops") == ["ann"]
    assert await _join(bob, "ops") == ["ann", "bob"]
    assert (await ann.recv_type("user_join"))["payload"]["userId"] == "bob"

    node_b.kill()
    killed = time.monotonic()
    leave = await ann.recv_type("user_leave", within=REAPED_WITHIN_S + SLACK_S)
    assert leave["payload"]["userId"] == "bob" and leave["payload"]["reason"] == "disconnected"
    took = time.monotonic() - killed
    assert took < REAPED_WITHIN_S + SLACK_S, f"reaped after {took:.1f} s"

    carol = await connect(_address(node_a), "carol")
    assert await _join(carol, "ops") == ["ann", "carol"], "bob is a ghost member"
    assert (await _stats(node_a.http_url))["connections"] == 2
    await ann.ws.close()
    await carol.ws.close()


async def _chat(sender: Client, number: int) -> bool:
    """Send message ``number``; True when accepted (the sender's own copy came back)."""
    await sender.send("chat_message", {"roomId": "ops", "content": f"#{number}"})
    answer = await sender.recv()
    while answer["type"] == "heartbeat":
        answer = await sender.recv()
    if answer["type"] == "error":
        assert answer["payload"]["code"] == "internal_error", answer
        return False
    assert answer["type"] == "chat_message" and answer["payload"]["content"] == f"#{number}"
    return True


async def _received(client: Client, quiet_s: float = 1.0) -> list[int]:
    """Numbers of the chat messages that arrived, until none came for ``quiet_s``."""
    numbers = []
    while True:
        try:
            message = await client.recv(quiet_s)
        except TimeoutError:
            return numbers
        if message["type"] == "chat_message":
            numbers.append(int(message["payload"]["content"][1:]))


async def test_a_redis_crash_loses_nothing_accepted_and_state_comes_back(
    own_redis_server: RedisProcess,
) -> None:
    namespace, secret = f"chaos-{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(32)
    config = parse_config({"rate_limit": {"window_ms": 60_000, "max_messages": 1000}})

    def node(name: str) -> Any:
        broker = RedisBroker(
            own_redis_server.url, namespace=namespace, node_id=name, command_timeout=10
        )
        return running_server(config, secret=secret, broker=broker)

    with node("node-a") as node_a, node("node-b") as node_b:
        ann, bob = await connect(node_a, "ann"), await connect(node_b, "bob")
        await _join(ann, "ops")
        await _join(bob, "ops")
        await ann.recv_type("user_join")
        await bob.send("status_update", {"status": "busy"})
        await bob.recv_type("status_update")
        await ann.recv_type("status_update")

        accepted: list[int] = []
        for number in range(20):  # traffic, then Redis dies
            if await _chat(bob, number):
                accepted.append(number)
        assert accepted == list(range(20))
        assert await _received(ann) == accepted
        own_redis_server.kill()
        for number in range(20, 40):  # during the outage: every one refused, none delivered
            assert not await _chat(bob, number), f"#{number} accepted while Redis was down"

        own_redis_server.start()  # empty
        restarted = time.monotonic()
        for number in range(40, 200):  # traffic as Redis comes back
            if await _chat(bob, number):
                accepted.append(number)
            if len(accepted) >= 40 + 20:
                break
        arrived = await _received(ann)
        assert sorted(arrived) == arrived, "order kept"
        assert len(arrived) == len(set(arrived)), "nothing duplicated"
        assert [n for n in accepted if n >= 40] == arrived, "nothing accepted and lost"

        # CLUSTER-007: the rooms, connections and statuses are registered again.
        deadline = restarted + RESTORED_WITHIN_S + SLACK_S
        while True:
            stats = await _stats(node_a.http_url)
            if stats.get("connections") == 2 and stats.get("rooms") == 1:
                break
            assert time.monotonic() < deadline, f"state not restored: {stats}"
            await asyncio.sleep(0.1)
        carol = await connect(node_a, "carol")
        await carol.send("room_join", {"roomId": "ops"})
        members = (await carol.recv_type("room_join_response"))["payload"]["members"]
        assert {(m["userId"], m["status"]) for m in members} == {
            ("ann", "online"),
            ("bob", "busy"),
            ("carol", "online"),
        }
        for client in (ann, bob, carol):
            await client.ws.close()
