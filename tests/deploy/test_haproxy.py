"""deploy/haproxy/haproxy.cfg in front of two rep-server nodes on one Redis, for real.

A private redis-server, two ``rep-server serve --broker`` subprocesses with one secret,
and HAProxy running the documented configuration with its addresses rendered from the
environment, all on free loopback ports. The tests see the deployment as clients do,
through the balancer; they ask HAProxy's admin socket where it sent each connection and
when it marked a node down. Skips without redis-server or haproxy (fails instead under
REP_REQUIRE_ALL=1, as in CI).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets
import yaml

from conformance.reference import fixtures, server_config
from reference_server.auth import mint_token
from rep_spec.requirements import requirements
from tests.deploy import haproxy_fixture
from tests.deploy.haproxy_fixture import Balancer, ServerState
from tests.deploy.nodes import NodeProcess
from tests.reference_server import redis_fixture
from tests.reference_server.netclient import Client
from tests.reference_server.redis_fixture import RedisProcess, free_port
from tests.reference_server.test_sse import RawSseReader

pytestmark = pytest.mark.network

# Long enough that clients which only listen are not closed for silence (LIFE-003) while
# a test waits for HAProxy; the kit's cluster checks do not depend on it.
HEARTBEAT_INTERVAL_MS = 10_000
EXPECTED_WITHIN_S = 10.0
DOWN_WITHIN_S = 20.0  # inter 1s x fall 2, plus a loaded machine's scheduling
KIT_TIMEOUT_S = 240


@dataclass
class Deployment:
    redis: RedisProcess
    nodes: dict[str, NodeProcess]  # by HAProxy server name: node1, node2
    balancer: Balancer
    secret: str
    fixtures: dict[str, Any]

    @property
    def stream(self) -> str:
        return str(self.fixtures["stream"])

    def token(self, user: str, *roles: str) -> str:
        return mint_token(self.secret, user, roles or ("user",))


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """Redis, node1 and node2 on it, HAProxy in front; every process stopped afterwards."""
    haproxy = haproxy_fixture.haproxy_executable()
    redis = RedisProcess(redis_fixture.redis_executable(), tmp_path)
    found = fixtures(secrets.token_hex(3))
    config = tmp_path / "rooms.yaml"
    settings = {**server_config(found), "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS}
    config.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    secret = secrets.token_urlsafe(48)
    with ExitStack() as stack:
        redis.start()
        stack.callback(redis.stop)
        nodes = {}
        for name in haproxy_fixture.SERVERS:
            node = NodeProcess(name, tmp_path, config, redis.url, secret)
            stack.callback(node.stop)
            node.start()
            nodes[name] = node
        addresses = (nodes["node1"].address, nodes["node2"].address)
        balancer = Balancer(haproxy, tmp_path, free_port(), free_port(), addresses)
        stack.callback(balancer.stop)
        balancer.start()
        yield Deployment(redis, nodes, balancer, secret, found)


# ----------------------------------------------------------------------------- clients
async def states(deployment: Deployment) -> dict[str, ServerState]:
    return await asyncio.to_thread(deployment.balancer.states)


async def wait_for_states(
    deployment: Deployment, condition: Callable[[Mapping[str, ServerState]], bool], within: float
) -> dict[str, ServerState]:
    return await asyncio.to_thread(deployment.balancer.wait_until, condition, within)


def placed(before: Mapping[str, ServerState], after: Mapping[str, ServerState]) -> str:
    """The one server whose session total grew: where HAProxy sent the last connection."""
    grown = [name for name in after if after[name].total > before[name].total]
    assert len(grown) == 1, (before, after)
    return grown[0]


async def connect(deployment: Deployment, user: str) -> tuple[Client, str]:
    """A WebSocket through the balancer: the client, and the node HAProxy chose."""
    before = await states(deployment)
    ws = await websockets.connect(
        deployment.balancer.ws_url,
        additional_headers={"Authorization": f"Bearer {deployment.token(user)}"},
        subprotocols=[websockets.Subprotocol("rep.v1")],
        open_timeout=EXPECTED_WITHIN_S,
    )
    client = Client(ws)
    client.welcome = await client.recv()
    assert client.welcome["type"] == "auth", client.welcome
    return client, placed(before, await states(deployment))


async def next_of(
    client: Client,
    kind: str,
    where: Callable[[dict[str, Any]], bool] = lambda _: True,
    within: float = EXPECTED_WITHIN_S,
) -> dict[str, Any]:
    """The next message of type ``kind`` (matching ``where``), skipping any others."""
    deadline = time.monotonic() + within
    seen: list[str] = []
    for _ in range(1000):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            message = await client.recv(left)
        except TimeoutError:
            break
        if message["type"] == kind and where(message):
            return message
        seen.append(message["type"])
    raise AssertionError(f"no {kind} within {within:g} s; received {seen}")


def client_id(client: Client) -> str:
    return str(client.welcome["payload"]["clientId"])


async def join(client: Client, room: str) -> set[tuple[str, str]]:
    """Join; the (userId, clientId) pairs the room_join_response lists."""
    await client.send("room_join", {"roomId": room})
    response = await next_of(client, "room_join_response")
    return {(m["userId"], m["clientId"]) for m in response["payload"]["members"]}


def about(client: Client) -> Callable[[dict[str, Any]], bool]:
    """Matches a notice whose payload names this client's connection."""
    return lambda message: message["payload"].get("clientId") == client_id(client)


async def chat_crosses(sender: Client, receiver: Client, room: str) -> None:
    content = f"hello {secrets.token_hex(4)}"
    sent = await sender.send("chat_message", {"roomId": room, "content": content})
    copy = await next_of(receiver, "chat_message", saying(content))
    assert copy["metadata"]["correlation_id"] == sent
    assert copy["metadata"]["sender"]["clientId"] == client_id(sender)


def saying(content: str) -> Callable[[dict[str, Any]], bool]:
    """Matches a chat message with this content."""
    return lambda message: message["payload"].get("content") == content


async def until_chat_crosses(sender: Client, receiver: Client, room: str) -> None:
    """After an outage: chat until one message crosses (the first may be refused)."""
    deadline = time.monotonic() + DOWN_WITHIN_S
    for _ in range(100):
        content = f"probe {secrets.token_hex(4)}"
        await sender.send("chat_message", {"roomId": room, "content": content})
        try:
            await next_of(receiver, "chat_message", saying(content), 2.0)
            return
        except AssertionError:
            assert time.monotonic() < deadline, "chat across the nodes did not resume"
    raise AssertionError("chat across the nodes did not resume")


async def publish(deployment: Deployment, base_url: str, data: Any) -> str:
    headers = {"Authorization": f"Bearer {deployment.token('producer', 'admin')}"}
    url = f"{base_url}/streams/{deployment.stream}/events"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json={"type": "tick", "data": data}, headers=headers) as response,
    ):
        assert response.status == 201, await response.text()
        event_id: str = (await response.json())["id"]
        return event_id


async def stream_event(reader: RawSseReader) -> dict[str, Any]:
    event = await reader.event(EXPECTED_WITHIN_S)
    assert event.get("event") == "stream_event", event.fields
    payload: dict[str, Any] = event.envelope["payload"]
    return payload


async def logged(deployment: Deployment, line: str) -> str:
    """HAProxy's output once it contains ``line`` (sessions are logged as they end)."""
    deadline = time.monotonic() + EXPECTED_WITHIN_S
    for _ in range(1000):
        text = deployment.balancer.log(tail=1_000_000)
        if line in text or time.monotonic() > deadline:
            assert line in text, text
            return text
        await asyncio.sleep(0.05)
    raise AssertionError(f"{line} not logged")


async def ended(reader: RawSseReader) -> None:
    """Read (keep-alive comments, say) until the response ends; fail if it does not."""
    deadline = time.monotonic() + EXPECTED_WITHIN_S
    for _ in range(100):
        try:
            await reader.block(max(0.0, deadline - time.monotonic()))
        except (AssertionError, aiohttp.ClientPayloadError):  # "stream ended", or cut short
            return
    raise AssertionError("the event stream went on after its node was killed")


# ----------------------------------------------------------------------------- the tests
def test_the_configuration_is_valid_as_documented_and_as_rendered(tmp_path: Path) -> None:
    """With its defaults (the guide's recipe) and with the test's addresses."""
    haproxy = haproxy_fixture.haproxy_executable()
    rendered = haproxy_fixture.config_environment(
        "127.0.0.1:1", ("127.0.0.1:2", "127.0.0.1:3"), str(tmp_path / "admin.sock")
    )
    unset = {k: v for k, v in os.environ.items() if not k.startswith(("REP_HAPROXY", "REP_NODE"))}
    for env in (unset, {**unset, **rendered}):
        done = subprocess.run(
            [haproxy, "-c", "-f", str(haproxy_fixture.CONFIG)],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "[WARNING]" not in done.stdout + done.stderr, done.stdout + done.stderr


@pytest.mark.timeout(KIT_TIMEOUT_S + 60)
def test_the_kits_cluster_checks_pass_through_the_balancer(
    deployment: Deployment, tmp_path: Path
) -> None:
    balancer = deployment.balancer
    entry = {
        "ws_url": balancer.ws_url,
        "http_url": balancer.http_url,
        "sse_url": f"{balancer.http_url}/events",
    }
    target = {
        "name": "two rep-server nodes behind deploy/haproxy/haproxy.cfg",
        **entry,
        "nodes": [entry],
        "tokens": {"jwt": {"secret": deployment.secret, "algorithm": "HS256"}},
        "fixtures": deployment.fixtures,
        "timeouts": {"answer": 3.0, "silence": 0.3},
    }
    target_path = tmp_path / "target.yaml"
    target_path.write_text(yaml.safe_dump(target, sort_keys=False), encoding="utf-8")
    reports = tmp_path / "reports"
    before = balancer.states()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance.cli",
            "run",
            "--target",
            str(target_path),
            "--report-dir",
            str(reports),
            "-k",
            "test_cluster",
        ],
        capture_output=True,
        text=True,
        timeout=KIT_TIMEOUT_S,
    )
    report = json.loads((reports / "report.json").read_text(encoding="utf-8"))
    verdicts = {t["id"]: t["verdict"] for t in report["tests"]}
    assert len(verdicts) >= 5 and set(verdicts.values()) == {"pass"}, (
        verdicts,
        done.stdout[-3000:],
        balancer.log(),
    )
    # Every cluster requirement the kit can observe passes; those only a review can show
    # (a crashed node's reaping, say) are reported out of scope, not passed.
    observable = {
        r.id for r in requirements().in_section("cluster") if r.verified_by == "conformance"
    }
    cluster = {r["id"]: r["verdict"] for r in report["requirements"] if r["section"] == "cluster"}
    assert len(observable) >= 5 and observable <= cluster.keys(), cluster
    assert {cluster[rid] for rid in observable} == {"pass"}, cluster
    assert done.returncode == 0, done.stdout[-3000:]
    after = balancer.states()
    # leastconn spread the kit's connections: both nodes served some of them.
    assert all(after[name].total > before[name].total for name in after), (before, after)


async def test_websocket_and_sse_reach_both_nodes_through_the_balancer(
    deployment: Deployment,
) -> None:
    ann, ann_node = await connect(deployment, "ann")
    bob, bob_node = await connect(deployment, "bob")
    assert {ann_node, bob_node} == set(haproxy_fixture.SERVERS)  # leastconn: one on each
    await join(ann, "lobby")
    assert ("ann", client_id(ann)) in await join(bob, "lobby")
    joined = await next_of(ann, "user_join")
    assert joined["payload"]["userId"] == "bob"
    await chat_crosses(bob, ann, "lobby")
    await chat_crosses(ann, bob, "lobby")

    # As a browser's EventSource does, with the token in the query string.
    token = deployment.token("reader")
    url = f"{deployment.balancer.http_url}/events?channels={deployment.stream}&token={token}"
    async with aiohttp.ClientSession() as http:
        before = await states(deployment)
        async with http.get(url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            reader = RawSseReader(response)
            await reader.block(EXPECTED_WITHIN_S)  # the retry hint
            # Arrives while the response is open: nothing holds the stream back.
            assert (await reader.event(EXPECTED_WITHIN_S)).get("event") == "connection"
            sse_node = placed(before, await states(deployment))
            other = next(n for n in haproxy_fixture.SERVERS if n != sse_node)
            through = await publish(deployment, deployment.balancer.http_url, "via haproxy")
            assert (await stream_event(reader))["event"]["id"] == through
            direct = await publish(deployment, deployment.nodes[other].http_url, "on the other")
            event = (await stream_event(reader))["event"]
            assert (event["id"], event["data"]) == (direct, "on the other")
        async with http.get(f"{deployment.balancer.http_url}/stats") as response:
            assert response.status == 200
            assert (await response.json())["connections"] >= 2
        async with http.get(f"{deployment.balancer.http_url}/not-a-rep-endpoint") as response:
            assert response.status == 404  # only the REP endpoints are forwarded
    await ann.ws.close()
    await bob.ws.close()
    # HAProxy logs each session as it ends: the SSE request by its path, without the token.
    log = await logged(deployment, '"GET /events HTTP/1.1"')
    assert token not in log and "token=" not in log


async def test_the_clients_of_a_killed_node_reconnect_to_the_survivor_and_find_their_room(
    deployment: Deployment,
) -> None:
    room = "ops"
    clients: dict[str, Client] = {}
    placement: dict[str, str] = {}
    for user in ("u1", "u2", "u3", "u4"):
        clients[user], placement[user] = await connect(deployment, user)
        await join(clients[user], room)
    assert sorted(placement.values()) == ["node1", "node1", "node2", "node2"], placement
    events = [await publish(deployment, deployment.balancer.http_url, n) for n in range(3)]

    # An SSE reader too; the node it lands on is the one that dies.
    headers = {"Authorization": f"Bearer {deployment.token('reader')}"}
    url = f"{deployment.balancer.http_url}/events?channels={deployment.stream}"
    async with aiohttp.ClientSession() as http:
        before = await states(deployment)
        async with http.get(url, headers=headers) as response:
            reader = RawSseReader(response)
            await reader.block(EXPECTED_WITHIN_S)
            cursor = (await reader.event(EXPECTED_WITHIN_S)).get("id") or ""
            victim = placed(before, await states(deployment))
            survivor = next(n for n in haproxy_fixture.SERVERS if n != victim)

            deployment.nodes[victim].kill()
            await ended(reader)

        lost = [user for user, node in placement.items() if node == victim]
        kept = [user for user in clients if user not in lost]
        for user in lost:  # closed by HAProxy when the node's side went away
            async with asyncio.timeout(EXPECTED_WITHIN_S):
                await clients[user].ws.wait_closed()
            assert clients[user].ws.close_code == 1006, user  # no close frame: the node died
        for user in kept:
            assert clients[user].ws.close_code is None, user

        down = await wait_for_states(
            deployment,
            lambda s: s[victim].status == "DOWN" and s[survivor].status == "UP",
            DOWN_WITHIN_S,
        )
        assert down[victim].current == 0, down

        missed = await publish(deployment, deployment.balancer.http_url, "while down")
        for user in lost:
            clients[user], placement[user] = await connect(deployment, user)
            assert placement[user] == survivor, (user, placement)
            members = await join(clients[user], room)
            # Everyone still connected is listed, and the client itself on its new id.
            expected = {(u, client_id(clients[u])) for u in (*kept, user)}
            assert expected <= members, (expected, members)
            # Members who stayed see the rejoin.
            for other in kept:
                seen = await next_of(clients[other], "user_join", about(clients[user]))
                assert seen["payload"]["userId"] == user
        for user in lost:
            await chat_crosses(clients[user], clients[kept[0]], room)
            await chat_crosses(clients[kept[0]], clients[user], room)

        # The stream's buffer is in Redis: a rejoined client replays what it missed.
        rejoined = clients[lost[0]]
        await rejoined.send(
            "stream_subscribe", {"streamId": deployment.stream, "lastEventId": events[0]}
        )
        response_payload = (await next_of(rejoined, "stream_subscribe_response"))["payload"]
        assert response_payload["replayed"] == 3 and response_payload["gap"] is False
        replayed = [(await next_of(rejoined, "stream_event"))["payload"] for _ in range(3)]
        assert [p["event"]["id"] for p in replayed] == [*events[1:], missed]
        assert all(p["replay"] is True for p in replayed)

        # The SSE reader resumes through the balancer, on the survivor, from its cursor.
        resume = {**headers, "Last-Event-ID": cursor}
        before = await states(deployment)
        async with http.get(url, headers=resume) as response:
            assert response.status == 200
            reader = RawSseReader(response)
            await reader.block(EXPECTED_WITHIN_S)
            assert (await reader.event(EXPECTED_WITHIN_S)).get("event") == "connection"
            assert placed(before, await states(deployment)) == survivor
            assert (await stream_event(reader))["event"]["id"] == missed
    for client in clients.values():
        await client.ws.close()


async def test_a_drained_node_gets_no_new_clients_and_its_own_move_when_it_stops(
    deployment: Deployment,
) -> None:
    """The guide's maintenance steps: drain on the admin socket, then SIGTERM the node."""
    room = "maintenance"
    staying, staying_node = await connect(deployment, "staying")
    moving, moving_node = await connect(deployment, "moving")
    assert staying_node != moving_node
    await join(staying, room)
    await join(moving, room)
    await next_of(staying, "user_join", about(moving))

    answer = deployment.balancer.command(f"set server rep_nodes/{moving_node} state drain")
    assert answer.strip() == "", answer
    await wait_for_states(deployment, lambda s: s[moving_node].status == "DRAIN", DOWN_WITHIN_S)
    newcomer, newcomer_node = await connect(deployment, "newcomer")
    assert newcomer_node == staying_node  # draining: no new connections

    old_id = client_id(moving)
    deployment.nodes[moving_node].stop()  # SIGTERM: LIFE-007's goodbye, through HAProxy
    goodbye = await next_of(moving, "disconnect")
    assert goodbye["metadata"]["source"] == "server"
    async with asyncio.timeout(EXPECTED_WITHIN_S):
        await moving.ws.wait_closed()
    assert moving.ws.close_code == 1001
    left = await next_of(staying, "user_leave", lambda m: m["payload"]["clientId"] == old_id)
    assert left["payload"]["userId"] == "moving"

    moving, moving_node = await connect(deployment, "moving")
    assert moving_node == staying_node
    assert ("staying", client_id(staying)) in await join(moving, room)
    await chat_crosses(moving, staying, room)
    for client in (staying, moving, newcomer):
        await client.ws.close()


async def test_while_redis_is_down_the_nodes_keep_their_clients_and_haproxy_refuses_new_ones(
    deployment: Deployment,
) -> None:
    """/health says unavailable (HTTP-006): out of rotation, but no connection is closed."""
    room = "outage"
    ann, ann_node = await connect(deployment, "ann")
    bob, bob_node = await connect(deployment, "bob")
    assert ann_node != bob_node
    await join(ann, room)
    await join(bob, room)
    await next_of(ann, "user_join", about(bob))

    deployment.redis.stop()
    down = await wait_for_states(
        deployment, lambda s: all(v.status == "DOWN" for v in s.values()), DOWN_WITHIN_S
    )
    assert all(v.check == "L7STS" for v in down.values()), down  # answered, but not 200
    for client in (ann, bob):  # CLUSTER-007: the connections held are still served
        sent = await client.send("ping", {})
        pong = await next_of(client, "pong")
        assert pong["metadata"]["correlation_id"] == sent
    with pytest.raises(websockets.InvalidStatus) as refused:
        await connect(deployment, "late")
    assert refused.value.response.status_code == 503  # HAProxy's own: no node available

    deployment.redis.start()
    await wait_for_states(
        deployment, lambda s: all(v.status == "UP" for v in s.values()), DOWN_WITHIN_S
    )
    late, _ = await connect(deployment, "late")
    assert ann.ws.close_code is None and bob.ws.close_code is None
    await until_chat_crosses(bob, ann, room)
    await until_chat_crosses(ann, bob, room)
    for client in (ann, bob, late):
        await client.ws.close()
