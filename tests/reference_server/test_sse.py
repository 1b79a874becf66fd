"""The SSE binding over loopback: wire format byte by byte, resume, errors, CORS, bounds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp_sse_client.client import EventSource

from reference_server.auth import mint_token
from reference_server.config import parse_config
from reference_server.testing import RunningServer, running_server
from reference_server.transport.sse import CLOSE_GRACE_SECONDS as SSE_CLOSE_GRACE
from reference_server.transport.sse import SseChannel, decode_cursor, encode_cursor, frame
from tests.reference_server.harness import VALIDATOR

pytestmark = pytest.mark.network
ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    config = parse_config(
        {
            "streams": [{"id": "prices"}, {"id": "news"}, {"id": "tiny", "buffer_size": 3}],
            "heartbeat_interval_ms": 400,
            "allowed_origins": [ORIGIN],
        }
    )
    with running_server(config) as running:
        yield running


def auth(
    server: RunningServer, roles: tuple[str, ...] = ("admin",), **extra: str
) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(server.secret, 'sse-user', roles)}", **extra}


@dataclass
class SseEvent:
    fields: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        values = [v for k, v in self.fields if k == name]
        return values[-1] if values else None

    @property
    def envelope(self) -> dict[str, Any]:
        data = self.get("data")
        assert data is not None
        message: dict[str, Any] = orjson.loads(data)
        problem = VALIDATOR.check_server_message(message)
        assert problem is None, f"invalid envelope on SSE: {problem}"
        return message


class RawSseReader:
    """A strict parser of the event-stream format, kept apart from any client library."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.buffer = b""
        self.raw = b""

    async def block(self, within: float = 3.0) -> bytes:
        async with asyncio.timeout(within):
            while b"\n\n" not in self.buffer:
                chunk = await self.response.content.readany()
                assert chunk, "stream ended"
                self.buffer += chunk
                self.raw += chunk
        block, _, self.buffer = self.buffer.partition(b"\n\n")
        return block

    async def event(self, within: float = 3.0) -> SseEvent:
        """The next event, skipping keep-alive comments."""
        while True:
            block = await self.block(within)
            event = SseEvent()
            for line in block.decode().split("\n"):
                assert "\r" not in line
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                event.fields.append((name, value.removeprefix(" ")))
            if event.get("data") is not None:  # a block without data dispatches nothing
                return event


async def publish(
    server: RunningServer, stream: str, event_type: str = "tick", data: Any = None
) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{server.http_url}/streams/{stream}/events",
            json={"type": event_type, "tags": ["t"], "data": data},
            headers=auth(server),
        ) as response,
    ):
        assert response.status == 201
        return str((await response.json())["id"])


async def open_stream(
    server: RunningServer, channels: str, **headers: str
) -> AsyncIterator[tuple[aiohttp.ClientResponse, RawSseReader]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server.sse_url}?channels={channels}", headers=auth(server, **headers)) as r,
    ):
        yield r, RawSseReader(r)


async def test_wire_format_byte_by_byte(server: RunningServer) -> None:
    async for response, reader in open_stream(server, "prices,news"):
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        assert response.headers["Cache-Control"] == "no-cache"
        assert await reader.block() == b"retry: 3000"
        hello = await reader.event()
        assert [name for name, _ in hello.fields] == ["id", "event", "data"]
        assert hello.get("event") == "connection"
        assert set(orjson.loads(hello.get("data") or "{}")) >= {"clientId", "channels"}
        event_id = await publish(server, "news", "story", {"text": "line one\nline two"})
        event = await reader.event()
        assert [name for name, _ in event.fields] == ["id", "event", "data"]
        assert event.get("event") == "stream_event"
        assert decode_cursor(event.get("id") or "")["news"] == event_id
        assert event.envelope["payload"]["event"]["data"] == {"text": "line one\nline two"}


async def test_keep_alive_comments(server: RunningServer) -> None:
    async for _, reader in open_stream(server, "prices"):
        await reader.event()
        comment = await reader.block(within=1.0)
        assert comment.startswith(b":")


async def test_resume_has_no_gap_and_no_duplicate(server: RunningServer) -> None:
    seen: list[str] = []
    cursor = ""
    async for _, reader in open_stream(server, "prices"):
        cursor = (await reader.event()).get("id") or ""
        for n in range(3):
            await publish(server, "prices", data=n)
            event = await reader.event()
            seen.append(event.envelope["payload"]["event"]["id"])
            cursor = event.get("id") or ""
    missed = [await publish(server, "prices", data=n) for n in range(3, 6)]
    async for _, reader in open_stream(server, "prices", **{"Last-Event-ID": cursor}):
        hello = await reader.event()
        assert hello.get("id") == cursor
        resumed = [(await reader.event()).envelope for _ in missed]
        assert [m["payload"]["event"]["id"] for m in resumed] == missed
        assert all(m["payload"]["replay"] for m in resumed)
        live = await publish(server, "prices", data=6)
        assert (await reader.event()).envelope["payload"]["event"]["id"] == live


async def test_fresh_connection_gets_live_events_only(server: RunningServer) -> None:
    await publish(server, "news", data="before")
    async for _, reader in open_stream(server, "news"):
        await reader.event()
        live = await publish(server, "news", data="after")
        assert (await reader.event()).envelope["payload"]["event"]["id"] == live


async def test_stale_cursor_gets_replay_unavailable_then_live(server: RunningServer) -> None:
    first = await publish(server, "tiny")
    for n in range(4):  # the buffer holds 3: the event after `first` is dropped
        await publish(server, "tiny", data=n)
    async for _, reader in open_stream(
        server, "tiny", **{"Last-Event-ID": encode_cursor({"tiny": first})}
    ):
        await reader.event()
        error = (await reader.event()).envelope
        assert error["type"] == "error"
        assert error["payload"]["code"] == "replay_unavailable"
        assert error["payload"]["details"]["streamId"] == "tiny"
        live = await publish(server, "tiny", data="live")
        assert (await reader.event()).envelope["payload"]["event"]["id"] == live


@pytest.mark.parametrize(
    ("query", "roles", "status", "code"),
    [
        ("?channels=prices", None, 401, "unauthorized"),
        ("?channels=prices", (), 403, "forbidden"),
        ("?channels=prices,ghost", ("admin",), 404, "not_found"),
        ("", ("admin",), 400, "invalid_payload"),
    ],
)
async def test_refusals_come_before_any_event(
    server: RunningServer, query: str, roles: tuple[str, ...] | None, status: int, code: str
) -> None:
    headers = {} if roles is None else auth(server, roles or ("user",))
    if roles == ():
        token = mint_token(server.secret, "no-streams", [], ["websocket:connect"])
        headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.sse_url + query, headers=headers) as r,
    ):
        assert r.status == status
        assert (await r.json())["error"]["code"] == code


@pytest.mark.parametrize(("origin", "echoed"), [(ORIGIN, True), ("https://evil.example", False)])
async def test_cors_allow_list(server: RunningServer, origin: str, echoed: bool) -> None:
    async for response, _ in open_stream(server, "prices", Origin=origin):
        assert (response.headers.get("Access-Control-Allow-Origin") == origin) is echoed


async def test_a_standard_sse_client_library_reads_theopen_stream(server: RunningServer) -> None:
    headers = auth(server)
    received: list[Any] = []
    async with EventSource(
        f"{server.sse_url}?channels=news", headers=headers, timeout=aiohttp.ClientTimeout(10)
    ) as source:
        published: str | None = None
        async with asyncio.timeout(5):
            async for event in source:
                received.append(event)
                if event.type == "connection":
                    published = await publish(server, "news", "story", {"n": 1})
                elif event.type == "stream_event":
                    break
    assert [e.type for e in received] == ["connection", "stream_event"]
    envelope = orjson.loads(received[-1].data)
    assert envelope["payload"]["event"]["id"] == published
    assert decode_cursor(received[-1].last_event_id)["news"] == published


async def test_slow_consumer_queue_is_bounded() -> None:
    class StalledTransport(asyncio.WriteTransport):
        """Takes every write and sends nothing: a client that stopped reading."""

        def __init__(self) -> None:
            super().__init__()
            self.buffered = 0
            self.aborted = asyncio.Event()

        def write(self, data: bytes | bytearray | memoryview) -> None:
            self.buffered += len(data)

        def get_write_buffer_size(self) -> int:
            return self.buffered

        def is_closing(self) -> bool:
            return self.aborted.is_set()

        def abort(self) -> None:
            self.aborted.set()

    transport = StalledTransport()
    channel = SseChannel(transport, limit=1000, limit_bytes=4096, chunked=True)
    channel.start()
    message = {"type": "heartbeat", "payload": {"padding": "x" * 500}}
    accepted = []
    for _ in range(20):
        accepted.append(channel.push(message))
        await asyncio.sleep(0)  # each push is written to the (stalled) socket
    assert 4 <= accepted.count(True) <= 8 and accepted[-1] is False
    channel.close(4002, "slow consumer")
    assert channel.done.is_set()
    async with asyncio.timeout(SSE_CLOSE_GRACE + 5):  # cut: it never took its backlog
        await transport.aborted.wait()


def test_cursor_round_trip() -> None:
    cursor = {"prices": "10-0", "a.b:c": "12-3"}
    assert decode_cursor(encode_cursor(cursor)) == cursor
    assert decode_cursor("garbage") == {}


@pytest.mark.parametrize("version", ["1.0", "1.1"])
async def test_events_are_framed_for_the_request_s_http_version(
    server: RunningServer, version: str
) -> None:
    """HTTP/1.1 bodies are chunked, each chunk holding whole events; HTTP/1.0 bodies are
    the bare event stream. The server writes events to the socket itself, so both count."""
    token = mint_token(server.secret, "raw-reader", ("admin",))
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(
            f"GET /events?channels=news HTTP/{version}\r\nHost: x\r\n"
            f"Authorization: Bearer {token}\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.split(b" ")[1] == b"200", head
        chunked = b"transfer-encoding: chunked" in head.lower()
        assert chunked == (version == "1.1"), head
        published = [await publish(server, "news", data={"n": n}) for n in range(3)]
        body = b""
        async with asyncio.timeout(10):
            while body.count(b"event: stream_event") < 3:
                body += await reader.read(65536)
    finally:
        writer.close()
    if chunked:
        events, rest = b"", body
        while b"\r\n" in rest:
            size, _, rest = rest.partition(b"\r\n")
            length = int(size, 16)
            if len(rest) < length + 2:
                break  # a keep-alive read halfway: the events before it are complete
            chunk, rest = rest[:length], rest[length:]
            assert rest.startswith(b"\r\n"), f"chunk of {length} bytes not ended by CRLF"
            assert chunk.endswith(b"\n\n"), "a chunk ends on an event boundary"
            events, rest = events + chunk, rest[2:]
        body = events
    ids = [
        orjson.loads(line.removeprefix(b"data: "))["payload"]["event"]["id"]
        for line in body.split(b"\n")
        if line.startswith(b"data: ") and b"stream_event" in line
    ]
    assert ids == published


async def test_a_slow_consumer_s_stream_ends_ahead_of_its_backlog() -> None:
    """SSE-010: an event that would overflow the bound is never handed to the socket, not
    even at the close that follows; an ordinary close sends everything pushed before it."""

    class RecordingTransport(asyncio.WriteTransport):
        """A socket whose peer reads nothing (``stalled``): what it takes stays unsent."""

        def __init__(self, stalled: bool) -> None:
            super().__init__()
            self.stalled = stalled
            self.written = b""

        def write(self, data: bytes | bytearray | memoryview) -> None:
            self.written += bytes(data)

        def get_write_buffer_size(self) -> int:
            return len(self.written) if self.stalled else 0

        def is_closing(self) -> bool:
            return False

    message = {"type": "heartbeat", "payload": {"padding": "x" * 500}}
    event = frame(message, "")
    for overflow in (True, False):
        transport = RecordingTransport(stalled=overflow)
        channel = SseChannel(transport, limit=1000, limit_bytes=1500, chunked=False)
        channel.start()
        pushed = [channel.push(message) for _ in range(3)]
        assert pushed == [True, True, not overflow]
        channel.close(4002 if overflow else 1001, "end")
        await asyncio.sleep(0)
        # The third event is the one over the bound: it never reaches the socket.
        assert transport.written == event * (2 if overflow else 3), transport.written[:80]
