"""The SSE binding: GET /events?channels=a,b as text/event-stream (SSE-001..SSE-011).

Framing only: which events a client gets, and the replay on resume, are the core's
decisions. The ``id:`` of every event is a cursor over all selected channels,
``<streamId>=<eventId>;...``, so one Last-Event-ID resumes every channel at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Any

import orjson
from aiohttp import HttpVersion11, web

from reference_server.auth import AuthRejected
from reference_server.core.server import Refused
from reference_server.transport.channel import CLOSE_GRACE_SECONDS, Corker, Outbox
from reference_server.transport.framing import http_chunk, sse_event
from reference_server.transport.node import NODE_KEY, authenticate_request, error_response, now_ms
from rep_spec import catalog

log = logging.getLogger("reference_server.transport.sse")
RETRY_MS = 3000


def encode_cursor(positions: dict[str, str]) -> str:
    if len(positions) == 1:  # the usual case, once per event per subscriber
        ((stream, event),) = positions.items()
        return f"{stream}={event}"
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
    return sse_event(cursor, str(message["type"]), data or orjson.dumps(message))


@functools.lru_cache(maxsize=8)
def _shared_frame(cursor: str, event_type: str, data: bytes, chunked: bool) -> bytes:
    """A publication is framed once for every subscriber whose cursor is the same (all of
    them, for the readers of one stream), not once each; ``data`` is its JSON, encoded once
    per publication, so a lookup hashes it once."""
    return _body(sse_event(cursor, event_type, data), chunked)


def _body(data: bytes, chunked: bool) -> bytes:
    """Bytes of the response body: one chunk when the response is chunked."""
    return http_chunk(data) if chunked else data


class SseChannel:
    """Events framed onto one text/event-stream response, bounded like a WebSocket's.

    Nothing is written before :meth:`start`: the response's headers and the ``connection``
    event go first, through aiohttp; then events go straight to the socket, in chunks when
    the response is chunked.
    """

    def __init__(
        self,
        transport: asyncio.BaseTransport | None,
        limit: int,
        limit_bytes: int,
        *,
        chunked: bool,
        corker: Corker | None = None,
    ) -> None:
        self._outbox = Outbox(
            transport, limit, limit_bytes, corker=corker, held=True, write_through=True
        )
        self._chunked = chunked
        self._ending = False
        self._overflowed = False
        self.positions: dict[str, str] = {}
        self.done = asyncio.Event()

    def start(self) -> None:
        self._outbox.release()

    def push(self, message: dict[str, Any], data: bytes | None = None) -> bool:
        if self._ending:
            return True  # the stream is ending: what comes after the close is dropped
        positions = self.positions
        event_type = message["type"]
        if event_type == "stream_event":
            payload = message["payload"]
            positions[payload["streamId"]] = payload["event"]["id"]
        cursor = encode_cursor(positions)
        if data is None:
            framed = _body(frame(message, cursor), self._chunked)
        else:
            framed = _shared_frame(cursor, event_type, data, self._chunked)
        if self._outbox.put(framed):
            return True
        self._overflowed = True
        return False

    def keep_alive(self) -> None:
        if not self._ending:
            self._outbox.put_control(_body(b": keep-alive\n\n", self._chunked))  # SSE-005

    def close(self, code: int, reason: str) -> None:
        """End the stream after what was pushed; a slow consumer's backlog is dropped."""
        if self._ending:
            return
        self._ending = True
        if self._overflowed:  # SSE-010: the backlog is the problem; the end goes ahead of it
            self._outbox.discard()
        else:
            self._outbox.flush()
        self.done.set()
        # A client that stopped reading must not keep the socket and its buffer for ever.
        asyncio.get_running_loop().call_later(CLOSE_GRACE_SECONDS, self._cut_if_stuck)

    def _cut_if_stuck(self) -> None:
        if self._outbox.unsent_bytes():
            log.info("SSE stream end took over %.0f s: connection cut", CLOSE_GRACE_SECONDS)
            self._outbox.cut()

    async def finish(self, grace_seconds: float = 1.0) -> None:
        """Hand over what is queued; nothing may follow, since aiohttp ends the body next."""
        self._ending = True
        self._outbox.flush()


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
    chunked = request.version >= HttpVersion11
    if chunked:
        response.enable_chunked_encoding()  # the channel frames its chunks itself
    channel = SseChannel(
        request.transport,
        node.config.outbound_queue_limit,
        node.config.outbound_buffer_bytes,
        chunked=chunked,
        corker=node.corker,
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
        # Through aiohttp, which sends the headers with the first write.
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
