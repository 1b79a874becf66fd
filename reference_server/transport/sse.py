"""The SSE binding: GET /events?channels=a,b as text/event-stream (SSE-001..SSE-011).

Framing only: which events a client gets, and the replay on resume, are the core's
decisions. The ``id:`` of every event is a cursor over all selected channels,
``<streamId>=<eventId>;...``, so one Last-Event-ID resumes every channel at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from aiohttp import web

from reference_server.auth import AuthRejected
from reference_server.core.server import Refused
from reference_server.transport.channel import CLOSE_GRACE_SECONDS, BoundedQueue
from reference_server.transport.node import NODE_KEY, authenticate_request, error_response, now_ms
from rep_spec import catalog

log = logging.getLogger("reference_server.transport.sse")
RETRY_MS = 3000
_Item = dict[str, Any] | bytes | None  # an envelope, a raw comment, or the end


def encode_cursor(positions: dict[str, str]) -> str:
    return ";".join(f"{stream}={event}" for stream, event in sorted(positions.items()))


def decode_cursor(value: str) -> dict[str, str]:
    """An unreadable cursor decodes to {}: every channel then reports replay_unavailable."""
    positions: dict[str, str] = {}
    for part in value.split(";"):
        stream, equals, event = part.strip().partition("=")
        if not equals or not stream or not event:
            return {}
        positions[stream] = event
    return positions


def frame(message: dict[str, Any], cursor: str, data: bytes | None = None) -> bytes:
    """One SSE event; ``data`` is the message already encoded, when the caller has it."""
    if data is None:
        data = orjson.dumps(message)  # one line: orjson never emits raw newlines
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (
        cursor.encode(),
        str(message["type"]).encode(),
        data,
    )


class SseChannel:
    """A bounded queue drained onto one text/event-stream response."""

    def __init__(
        self,
        response: web.StreamResponse,
        transport: asyncio.BaseTransport | None,
        limit: int,
        limit_bytes: int,
    ) -> None:
        self._response = response
        self._queue = BoundedQueue(transport, limit, limit_bytes)
        self.positions: dict[str, str] = {}
        self.done = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write())

    def push(self, message: dict[str, Any]) -> bool:
        # Encoded now, so the bound counts real bytes; the cursor is added when written.
        data = orjson.dumps(message)  # one line: orjson never emits raw newlines
        return self._queue.put((message, data), len(data))

    def keep_alive(self) -> None:
        self._queue.put_control(b": keep-alive\n\n")  # a full queue is activity enough

    def close(self, code: int, reason: str) -> None:
        if not self._queue.put_control(None):  # slow consumer: drop the backlog, end now
            self._abort()
            return
        # A writer stuck on a client that stopped reading must not hold the close forever.
        asyncio.get_running_loop().call_later(CLOSE_GRACE_SECONDS, self._abort)

    def _abort(self) -> None:
        if not self.done.is_set():
            if self._writer is not None:
                self._writer.cancel()
            self._queue.cut()
            self.done.set()

    async def _write(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if item is None:
                    return
                if isinstance(item, bytes):
                    await self._response.write(item)
                    continue
                message, data = item
                if message["type"] == "stream_event":
                    payload = message["payload"]
                    self.positions[payload["streamId"]] = payload["event"]["id"]
                await self._response.write(frame(message, encode_cursor(self.positions), data))
        except (ConnectionError, RuntimeError) as exc:
            log.debug("SSE client went away: %s", exc)
        finally:
            self.done.set()

    async def finish(self, grace_seconds: float = 1.0) -> None:
        if self._writer is None:
            return
        self._queue.put_control(None)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            async with asyncio.timeout(grace_seconds):
                await asyncio.shield(self._writer)
        if not self._writer.done():
            self._writer.cancel()
            self._queue.cut()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer


def cors_headers(request: web.Request, allowed: frozenset[str]) -> dict[str, str]:
    """SSE-009: echo the Origin only when it is on the allow-list."""
    origin = request.headers.get("Origin")
    if origin is None or origin not in allowed:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


async def preflight_handler(request: web.Request) -> web.Response:
    headers = cors_headers(request, request.app[NODE_KEY].config.allowed_origins)
    if headers:
        headers["Access-Control-Allow-Methods"] = "GET, POST"
        headers["Access-Control-Allow-Headers"] = (
            "Authorization, Content-Type, Last-Event-ID, Cache-Control"
        )
    return web.Response(status=204, headers=headers)


async def events_handler(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE_KEY]
    cors = cors_headers(request, node.config.allowed_origins)
    try:
        principal = authenticate_request(request, node)
    except AuthRejected as rejected:
        return error_response(rejected.code, rejected.reason, cors)
    channels = [c for c in request.query.get("channels", "").split(",") if c]
    if not channels:
        return error_response("invalid_payload", "name the streams: ?channels=a,b", cors)
    header = request.headers.get("Last-Event-ID")
    cursor = decode_cursor(header) if header is not None else None
    try:
        client_id, opening = node.core.open_event_stream(principal, channels, cursor, now_ms())
    except Refused as refusal:
        return error_response(refusal.code, refusal.message, cors)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            **cors,
        }
    )
    channel = SseChannel(
        response,
        request.transport,
        node.config.outbound_queue_limit,
        node.config.outbound_buffer_bytes,
    )
    node.channels[client_id] = channel
    try:
        await response.prepare(request)
        positions = await node.execute(opening)
        channel.positions = dict(positions)
        hello = {
            "clientId": client_id,
            "protocolVersion": catalog().protocol_version,
            "channels": channels,
        }
        await response.write(
            b"retry: %d\n\nid: %s\nevent: connection\ndata: %s\n\n"
            % (RETRY_MS, encode_cursor(positions).encode(), orjson.dumps(hello))
        )
        channel.start()
        await node.execute(node.core.release_event_stream(client_id))
        keep_alive = node.config.heartbeat_interval_ms / 1000 / 2
        while not channel.done.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(keep_alive):
                    await channel.done.wait()
            channel.keep_alive()  # SSE-005
    except (ConnectionError, RuntimeError) as exc:
        log.debug("SSE client %s went away: %s", client_id, exc)
    finally:
        try:
            await node.execute(node.core.disconnected(client_id))
        finally:  # whatever the cleanup did, the socket's own resources go
            await channel.finish()
            node.channels.pop(client_id, None)
    return response
