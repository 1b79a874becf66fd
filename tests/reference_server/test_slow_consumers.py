"""Clients that stop reading are closed, whatever holds their backlog (WS-008, SSE-010).

The bound counts the bytes queued for a client and the bytes its socket has not sent yet;
a client that stops reading fills both, is closed with 4002 (its stream ended, for SSE),
and is cut if the close itself cannot get through. Shutdown does not wait on it either.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
import websockets

from reference_server.auth import mint_token
from reference_server.config import parse_config
from reference_server.testing import RunningServer, running_server
from reference_server.transport.channel import CLOSE_GRACE_SECONDS, Corker, Outbox
from reference_server.transport.node import NODE_KEY
from rep_spec.schema_files import load_json
from tests.reference_server.netclient import connect

pytestmark = pytest.mark.network

BUFFER_BYTES = 256 * 1024
CONTENT = "x" * load_json("payloads/chat_message.schema.json")["properties"]["content"]["maxLength"]
# At most this many copies of CONTENT: far more than the bound, the kernel's socket buffers
# (several MB on loopback) and the client's read buffer hold; the flood stops at the close.
FLOOD_MESSAGES = 50_000
GONE_WITHIN_S = 30.0


class FakeTransport(asyncio.WriteTransport):
    def __init__(self, buffered: int) -> None:
        super().__init__()
        self.buffered = buffered
        self.aborted = False
        self.writes: list[bytes] = []

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))


async def test_the_bound_counts_the_transport_buffer() -> None:
    transport = FakeTransport(buffered=900)
    outbox = Outbox(transport, limit=100, limit_bytes=1000)
    assert outbox.put(b"a" * 50)
    assert not outbox.put(b"b" * 60), "900 buffered + 50 queued + 60 exceeds 1000"
    transport.buffered = 0
    assert outbox.put(b"b" * 60)
    assert outbox.held_bytes() == 110


async def test_what_one_iteration_queues_leaves_in_one_write_in_order() -> None:
    transport = FakeTransport(buffered=0)
    outbox = Outbox(transport, limit=100, limit_bytes=1000)
    for part in (b"one", b"two", b"three"):
        assert outbox.put(part)
    assert transport.writes == [], "nothing is written before the loop iteration ends"
    await asyncio.sleep(0)
    assert transport.writes == [b"onetwothree"]
    assert outbox.held_bytes() == 0


async def test_messages_handed_over_while_the_socket_is_backed_up_count_against_the_limit() -> None:
    transport = FakeTransport(buffered=0)
    outbox = Outbox(transport, limit=2, limit_bytes=10_000)
    assert outbox.put(b"x") and outbox.put(b"y")
    assert not outbox.put(b"z"), "two messages wait already"
    outbox.flush()
    transport.buffered = 2  # the kernel took nothing: the backlog stands
    assert not outbox.put(b"z")
    transport.buffered = 0  # the client read everything: a new backlog starts
    assert outbox.put(b"z")
    outbox.put_control(b"keep-alive")  # outside the bound
    assert outbox.held_bytes() == len(b"zkeep-alive")


async def test_one_callback_flushes_every_outbox_written_in_an_iteration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    corker = Corker()
    transports = [FakeTransport(buffered=0) for _ in range(3)]
    outboxes = [Outbox(t, limit=10, limit_bytes=1000, corker=corker) for t in transports]
    loop = asyncio.get_running_loop()
    scheduled: list[object] = []
    real_call_soon = loop.call_soon

    def counting_call_soon(callback: Any, *args: Any, **kwargs: Any) -> asyncio.Handle:
        scheduled.append(callback)
        return real_call_soon(callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_soon", counting_call_soon)
    for outbox in outboxes:
        outbox.put(b"a")
        outbox.put(b"b")
    monkeypatch.undo()
    assert len(scheduled) == 1, "one callback for all"
    await asyncio.sleep(0)
    assert [t.writes for t in transports] == [[b"ab"]] * 3


async def test_a_held_outbox_writes_nothing_until_released() -> None:
    transport = FakeTransport(buffered=0)
    outbox = Outbox(transport, limit=10, limit_bytes=1000, held=True)
    assert outbox.put(b"event")
    await asyncio.sleep(0)
    assert transport.writes == []
    outbox.release()
    assert transport.writes == [b"event"]


def test_cut_aborts_the_transport_and_drops_the_backlog() -> None:
    transport = FakeTransport(buffered=0)
    outbox = Outbox(transport, limit=1, limit_bytes=1000, held=True)
    outbox.put(b"never sent")
    outbox.cut()
    assert transport.aborted and outbox.held_bytes() == 0


@pytest.fixture
def server() -> Iterator[RunningServer]:
    config = parse_config(
        {
            "outbound_buffer_bytes": BUFFER_BYTES,
            "rate_limit": {"window_ms": 60_000, "max_messages": 100_000},
            "streams": [{"id": "ticks", "buffer_size": 10}],
        }
    )
    with running_server(config) as running:
        yield running


def _channels(server: RunningServer) -> int:
    async def count() -> int:
        return len(server.app[NODE_KEY].channels)

    return int(server.call(count()))


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GONE_WITHIN_S
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {GONE_WITHIN_S} s"
        await asyncio.sleep(0.05)


async def test_a_websocket_client_that_stops_reading_is_closed_with_4002(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="reference_server.transport")
    token = mint_token(server.secret, "stalled")
    stalled = await websockets.connect(
        server.ws_url,
        additional_headers={"Authorization": f"Bearer {token}"},
        subprotocols=[websockets.Subprotocol("rep.v1")],
        max_queue=1,  # the client library stops reading from the socket once one frame waits
        close_timeout=1,
    )
    await stalled.recv()  # the welcome
    await stalled.send(
        '{"id":"j","type":"room_join","timestamp":"2026-12-01T00:00:00Z",'
        '"payload":{"roomId":"flood"}}'
    )
    sender = await connect(server, "sender")
    await sender.send("room_join", {"roomId": "flood"})
    await sender.recv_type("room_join_response")

    async def drain() -> None:  # the sender reads its own copies: only one client stalls
        async for _ in sender.ws:
            pass

    draining = asyncio.create_task(drain())
    sent = 0
    while _channels(server) == 2 and sent < FLOOD_MESSAGES:
        for _ in range(100):
            await sender.send("chat_message", {"roomId": "flood", "content": CONTENT})
        sent += 100
        await asyncio.sleep(0)  # the sender's own copies are read later; its queue is ample
    await _until(lambda: _channels(server) == 1, "the stalled client was not closed")
    gone = [r.getMessage() for r in caplog.records if "gone" in r.getMessage()]
    assert any("close code sent 4002" in line for line in gone), gone
    await sender.ws.close()
    await draining
    await stalled.close()


async def test_shutdown_does_not_wait_on_a_client_that_stopped_reading() -> None:
    config = parse_config({"rate_limit": {"window_ms": 60_000, "max_messages": 100_000}})
    with running_server(config) as server:
        token = mint_token(server.secret, "stalled")
        stalled = await websockets.connect(
            server.ws_url,
            additional_headers={"Authorization": f"Bearer {token}"},
            subprotocols=[websockets.Subprotocol("rep.v1")],
            max_queue=1,
            close_timeout=1,
        )
        await stalled.recv()

        async def fill() -> None:  # a backlog the socket cannot take, below the bounds
            node = server.app[NODE_KEY]
            (channel,) = node.channels.values()
            for _ in range(200):
                channel.push({"type": "heartbeat", "padding": CONTENT * 3})

        server.call(fill())
        started = time.monotonic()
    took = time.monotonic() - started
    # shutdown: each channel gets its grace, then is cut; aiohttp's own 2 s timeout follows.
    assert took < 2 * CLOSE_GRACE_SECONDS + 4, f"shutdown took {took:.1f} s"
    await stalled.close()


async def test_an_sse_client_that_stops_reading_loses_its_stream(server: RunningServer) -> None:
    token = mint_token(server.secret, "reader")
    producer = mint_token(server.secret, "producer", ("admin",))
    headers = {"Authorization": f"Bearer {token}"}
    body: dict[str, Any] = {"type": "tick", "data": {"padding": CONTENT}}
    async with aiohttp.ClientSession(read_bufsize=2**14) as http:
        response = await http.get(f"{server.sse_url}?channels=ticks", headers=headers)
        assert response.status == 200  # and never read from again
        await _until(lambda: _channels(server) == 1, "the SSE client was not registered")
        async with aiohttp.ClientSession() as publisher:
            url = f"{server.http_url}/streams/ticks/events"
            auth = {"Authorization": f"Bearer {producer}"}
            sent = 0
            while _channels(server) == 1 and sent < FLOOD_MESSAGES:
                for _ in range(50):
                    async with publisher.post(url, json=body, headers=auth) as published:
                        assert published.status == 201
                sent += 50
        await _until(lambda: _channels(server) == 0, "the stalled SSE client was not dropped")
        response.close()
