"""RepClient against the reference server: requests, rooms, streams, restarts and drops."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from reference_server.config import parse_config
from rep_client import Backoff, InvalidMessage, RepClient, RequestFailed
from tests.client.servers import CONFIG, CuttableProxy, RestartableServer

pytestmark = pytest.mark.network

FAST = Backoff(base_s=0.05, cap_s=0.4, max_attempts=6)


class Recorder:
    """Collects the client's events so tests wait on them, not on sleeps."""

    def __init__(self, client: RepClient) -> None:
        self.events: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue()
        for name in ("connected", "disconnected", "reconnecting", "gave_up", "token_needed"):
            client.on_event(name, self._recorder(name))

    def _recorder(self, name: str) -> Any:
        def record(*args: Any) -> None:
            self.events.put_nowait((name, args))

        return record

    async def until(self, name: str) -> tuple[Any, ...]:
        async with asyncio.timeout(10.0):
            while True:
                event, args = await self.events.get()
                if event == name:
                    return args


async def publish(server: RestartableServer, stream: str, n: int, start: int = 0) -> list[str]:
    token = server.token("producer", "stream:publish")
    ids = []
    async with aiohttp.ClientSession() as session:
        for i in range(start, start + n):
            async with session.post(
                f"{server.http_url}/streams/{stream}/events",
                json={"type": "tick", "data": {"n": i}},
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                assert response.status in (200, 201, 202), await response.text()
                body = await response.json()
                ids.append(body["eventId"] if "eventId" in body else body["id"])
    return ids


@pytest.mark.parametrize("mode", ["header", "query", "cookie"])
async def test_connects_with_the_token_in_each_place(mode: str) -> None:
    config = parse_config({**CONFIG, "allowed_origins": ["http://app.example"]})
    server = RestartableServer(config)
    server.start()
    try:
        client = RepClient(
            server.ws_url,
            server.token("alice"),
            token_mode=mode,  # type: ignore[arg-type]
            origin="http://app.example",
        )
        welcome = await client.connect()
        assert welcome["userId"] == "alice"
        pong = await client.request("ping", {"timestamp": 1})
        assert pong["type"] == "pong" and pong["payload"]["echo"] == 1
        await client.close()
    finally:
        server.close()


async def test_requests_resolve_by_correlation_and_errors_raise(server: RestartableServer) -> None:
    client = RepClient(server.ws_url, server.token("alice"))
    await client.connect()
    joined, pong = await asyncio.gather(
        client.join("lobby"), client.request("ping", {"timestamp": 7})
    )
    assert joined["type"] == "room_join_response" and pong["payload"]["echo"] == 7
    copy = await client.request("chat_message", {"roomId": "lobby", "content": "hi"})
    assert copy["type"] == "chat_message" and copy["payload"]["content"] == "hi"
    with pytest.raises(RequestFailed) as failed:
        await client.request("chat_message", {"roomId": "elsewhere", "content": "hi"})
    assert failed.value.code in ("forbidden", "not_found") and not failed.value.retryable
    await client.close()


async def test_what_the_schemas_refuse_is_never_sent(server: RestartableServer) -> None:
    client = RepClient(server.ws_url, server.token("alice"))
    await client.connect()
    with pytest.raises(InvalidMessage) as refused:
        await client.send("chat_message", {"roomId": "lobby", "content": "x" * 5000})
    assert refused.value.code == "invalid_payload"
    with pytest.raises(InvalidMessage):
        await client.send("pong", {"timestamp": 1, "echo": 1})  # a server-only type
    await client.close()


async def test_a_restart_is_survived_rooms_rejoined(server: RestartableServer) -> None:
    alice = RepClient(server.ws_url, server.token("alice"), backoff=FAST)
    events = Recorder(alice)
    await alice.connect()
    await events.until("connected")
    await alice.join("lobby")
    server.restart()  # disconnect + 1001, then the same port again with no rooms
    code, _ = await events.until("disconnected")
    assert code == 1001
    await events.until("connected")
    bob = RepClient(server.ws_url, server.token("bob"))
    await bob.connect()
    answer = await bob.join("lobby")
    members = answer["payload"]["members"]
    assert "alice" in {m["userId"] if isinstance(m, dict) else m for m in members}
    await bob.close()
    await alice.close()


async def test_a_dropped_transport_resumes_streams_without_gap_or_duplicate(
    server: RestartableServer, proxy: CuttableProxy
) -> None:
    client = RepClient(f"ws://127.0.0.1:{proxy.port}/ws", server.token("alice"), backoff=FAST)
    events = Recorder(client)
    delivered: list[str] = []
    arrived = asyncio.Event()

    def on_event(message: dict[str, Any]) -> None:
        delivered.append(message["payload"]["event"]["id"])
        arrived.set()

    await client.connect()
    await client.subscribe("prices", on_event)
    first = await publish(server, "prices", 3)
    async with asyncio.timeout(10):
        while len(delivered) < 3:
            arrived.clear()
            await arrived.wait()
    proxy.cut()
    code, _ = await events.until("disconnected")
    assert code is None  # no close frame: a dropped transport
    during = await publish(server, "prices", 3)
    await events.until("connected")
    after = await publish(server, "prices", 2)
    async with asyncio.timeout(10):
        while len(delivered) < 8:
            arrived.clear()
            await arrived.wait()
    assert delivered == first + during + after
    await client.close()


async def test_it_gives_up_after_the_configured_attempts(server: RestartableServer) -> None:
    client = RepClient(
        server.ws_url, server.token("alice"), backoff=Backoff(0.02, 0.05, max_attempts=3)
    )
    events = Recorder(client)
    await client.connect()
    server.stop()
    attempts = []
    async with asyncio.timeout(10):
        while True:
            event, args = await events.events.get()
            if event == "reconnecting":
                attempts.append(args[0])
            if event == "gave_up":
                break
    assert attempts == [1, 2, 3]
    await client.close()


async def test_close_ends_the_session_without_reconnecting(server: RestartableServer) -> None:
    client = RepClient(server.ws_url, server.token("alice"), backoff=FAST)
    events = Recorder(client)
    await client.connect()
    await client.close()
    code, _ = await events.until("disconnected")
    assert code == 1000
    assert not client.connected
    assert all(event != "reconnecting" for event, _ in list(events.events._queue))  # type: ignore[attr-defined]
