"""SseClient against the reference server: resume with Last-Event-ID after a drop."""

from __future__ import annotations

import asyncio
import time

import pytest

from rep_client import Backoff, SseClient, SseEvent
from tests.client.servers import CuttableProxy, RestartableServer
from tests.client.test_ws_client import publish

pytestmark = pytest.mark.network


async def test_a_dropped_stream_resumes_from_its_last_event_id(
    server: RestartableServer, proxy: CuttableProxy
) -> None:
    client = SseClient(
        f"http://127.0.0.1:{proxy.port}/events",
        server.token("alice"),
        ["prices"],
        backoff=Backoff(0.05, 0.2, max_attempts=5),
    )
    seen: list[int] = []
    cursors: list[str] = []
    arrived = asyncio.Event()
    lost: list[float] = []
    back: list[float] = []

    def on_tick(event: SseEvent) -> None:
        seen.append(event.data["payload"]["event"]["data"]["n"])
        cursors.append(event.id)
        arrived.set()

    client.on("stream_event", on_tick)
    client.on_event("disconnected", lambda reason: lost.append(time.monotonic()))
    client.on_event("connected", lambda: back.append(time.monotonic()))

    async def until(count: int) -> None:
        async with asyncio.timeout(15):
            while len(seen) < count:
                arrived.clear()
                await arrived.wait()

    await client.start()
    await publish(server, "prices", 2)
    await until(2)
    proxy.cut()
    await publish(server, "prices", 2, start=2)  # published while the client is away
    await until(4)
    assert seen == [0, 1, 2, 3]
    assert client.last_event_id == cursors[-1]
    # The stream's retry field (3000 ms on the reference server) is the smallest delay.
    assert back[-1] - lost[-1] >= client.retry_s - 0.05
    await client.close()
