"""The far server: a first REP implementation written from naive Node patterns, on purpose.

It is a fixture for the project's own tests: a server that the conformance kit must find
far from conformant. Every deviation below is deliberate; see ``tests/far_server/__init__``
for the list. It shares no code with ``reference_server`` or ``conformance``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn

import jwt
from aiohttp import WSCloseCode, WSMsgType, web

from tests.far_server import jsjson
from tests.far_server.lifecycle import announce, log, stop_event

PROTOCOL_VERSION = "1.0"
HEARTBEAT_SECONDS = 30.0  # effectively never during a test
MAX_PAYLOAD = 100 * 1024 * 1024  # the `ws` package's default maxPayload
STREAM_BUFFER = 1000

Message = dict[str, Any]


def now_iso() -> str:
    """``new Date().toISOString()``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_ms() -> int:
    """``Date.now()``."""
    return time.time_ns() // 1_000_000


def envelope(
    type_: str,
    payload: Message,
    *,
    correlation_id: str | None = None,
    sender: Message | None = None,
) -> Message:
    """A server envelope; the metadata part is the one thing this server always gets right."""
    metadata: Message = {"version": PROTOCOL_VERSION, "source": "server"}
    if correlation_id is not None:
        metadata["correlation_id"] = correlation_id
    if sender is not None:
        metadata["sender"] = sender
    return {
        "id": str(uuid.uuid4()),
        "type": type_,
        "timestamp": now_iso(),
        "payload": payload,
        "metadata": metadata,
    }


def error(message: str, correlation_id: str | None = None) -> Message:
    """Deviation: an error payload with a message and no ``code``."""
    return envelope("error", {"message": message}, correlation_id=correlation_id)


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """An HTTP JSON body, numbers written the JavaScript way like everything else."""
    return web.Response(
        status=status, text=jsjson.stringify(body), content_type="application/json",
        headers=headers,
    )


@dataclass(eq=False)
class Client:
    """One WebSocket connection."""

    client_id: str
    user_id: str
    ws: web.WebSocketResponse
    streams: set[str] = field(default_factory=set)

    async def send(self, message: Message) -> None:
        if self.ws.closed:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_str(jsjson.stringify(message))


@dataclass(eq=False)
class SseSubscriber:
    """One SSE response; its handler writes what arrives in the queue (None: stop)."""

    channels: list[str]
    positions: dict[str, str]
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)

    def cursor(self) -> str:
        return ";".join(f"{c}={self.positions[c]}" for c in sorted(self.positions))


@dataclass
class State:
    """Everything lives in memory, in one process, as in a first Node prototype."""

    secret: str
    clients: dict[str, Client] = field(default_factory=dict)
    sse: set[SseSubscriber] = field(default_factory=set)
    streams: dict[str, list[Message]] = field(default_factory=dict)
    records: dict[str, dict[str, Message]] = field(default_factory=dict)
    revisions: dict[str, int] = field(default_factory=dict)
    last_ms: int = 0
    seq: int = 0

    def next_event_id(self) -> str:
        ms = now_ms()
        if ms <= self.last_ms:
            ms, self.seq = self.last_ms, self.seq + 1
        else:
            self.last_ms, self.seq = ms, 0
        return f"{ms}-{self.seq}"

    async def broadcast(self, message: Message) -> None:
        """Deviation: to every connected client, whatever room the message names."""
        for client in list(self.clients.values()):
            await client.send(message)


STATE = web.AppKey("far_state", State)


# --- authentication ------------------------------------------------------------------


def extract_token(request: web.Request) -> str | None:
    """Authorization Bearer header, else ``token`` query parameter, else ``token`` cookie."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query.get("token") or request.cookies.get("token") or None


def verify(token: str, secret: str) -> str | None:
    """``jwt.verify(token, secret, {algorithms: ['HS256']}).sub``, or None when refused."""
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"])
    except jwt.PyJWTError:
        return None
    sub = claims.get("sub")
    return sub if isinstance(sub, str) and sub else None


def unauthorized() -> web.Response:
    return json_response({"error": {"message": "Unauthorized"}}, status=401)


def crash(reason: str) -> NoReturn:
    """Deviation: die like a Node process on an unhandled exception (exit code 1)."""
    print(f"Uncaught {reason}\n    at WebSocketServer.verifyClient (server.js:42:31)",
          file=sys.stderr, flush=True)
    os._exit(1)


# --- WebSocket -----------------------------------------------------------------------

Handler = Callable[[State, Client, Message, str | None], Awaitable[None]]


def _integral(value: Any) -> int | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        with contextlib.suppress(OverflowError, ValueError):
            if value == int(value):
                return int(value)
    return None


async def on_ping(state: State, client: Client, payload: Message, msg_id: str | None) -> None:
    pong: Message = {"timestamp": now_ms()}
    echo = _integral(payload.get("timestamp"))
    if echo is not None:
        pong["echo"] = echo
    await client.send(envelope("pong", pong, correlation_id=msg_id))


def _sender(client: Client) -> Message:
    return {"userId": client.user_id, "clientId": client.client_id}


async def on_chat(state: State, client: Client, payload: Message, msg_id: str | None) -> None:
    # Deviation: no rooms, no sanitising; the content goes out exactly as sent.
    copy = dict(payload)
    copy.setdefault("type", "text")
    await state.broadcast(
        envelope("chat_message", copy, correlation_id=msg_id, sender=_sender(client))
    )


async def on_data_update(
    state: State, client: Client, payload: Message, msg_id: str | None
) -> None:
    collection, record_id, data = (
        payload.get("collection"), payload.get("recordId"), payload.get("data")
    )
    if not (isinstance(collection, str) and isinstance(record_id, str)
            and isinstance(data, dict)):
        await client.send(error("Invalid data_update payload", msg_id))
        return
    # Naive: no expectedVersion check, no tombstones; last writer wins.
    records = state.records.setdefault(collection, {})
    version = int(records[record_id]["version"]) + 1 if record_id in records else 1
    records[record_id] = {"recordId": record_id, "version": version, "data": data}
    state.revisions[collection] = state.revisions.get(collection, 0) + 1
    copy = {"collection": collection, "recordId": record_id, "version": version, "data": data}
    await state.broadcast(
        envelope("data_update", copy, correlation_id=msg_id, sender=_sender(client))
    )


async def on_data_sync(state: State, client: Client, payload: Message, msg_id: str | None) -> None:
    collection = payload.get("collection")
    if not isinstance(collection, str):
        await client.send(error("Invalid data_sync payload", msg_id))
        return
    answer = {
        "collection": collection,
        "revision": state.revisions.get(collection, 0),
        "records": list(state.records.get(collection, {}).values()),
        "deleted": [],
    }
    await client.send(envelope("data_sync_response", answer, correlation_id=msg_id))


async def on_stream_subscribe(
    state: State, client: Client, payload: Message, msg_id: str | None
) -> None:
    stream_id = payload.get("streamId")
    if not isinstance(stream_id, str):
        await client.send(error("streamId is required", msg_id))
        return
    # Naive: any stream id, filter and lastEventId ignored, nothing replayed.
    client.streams.add(stream_id)
    answer = {"streamId": stream_id, "replayed": 0}
    await client.send(envelope("stream_subscribe_response", answer, correlation_id=msg_id))


async def on_stream_unsubscribe(
    state: State, client: Client, payload: Message, msg_id: str | None
) -> None:
    stream_id = payload.get("streamId")
    if not isinstance(stream_id, str):
        await client.send(error("streamId is required", msg_id))
        return
    client.streams.discard(stream_id)
    answer = {"streamId": stream_id}
    await client.send(envelope("stream_unsubscribe_response", answer, correlation_id=msg_id))


# Deviation: no room_join / room_leave (nor anything else): "Unknown message type: ...".
HANDLERS: dict[str, Handler] = {
    "ping": on_ping,
    "chat_message": on_chat,
    "data_update": on_data_update,
    "data_sync": on_data_sync,
    "stream_subscribe": on_stream_subscribe,
    "stream_unsubscribe": on_stream_unsubscribe,
}


def _js_template(value: Any, present: bool) -> str:
    """What ``${msg.type}`` prints in a JavaScript template string."""
    if not present:
        return "undefined"
    return value if isinstance(value, str) else jsjson.stringify(value)


async def handle_message(state: State, client: Client, text: str) -> None:
    try:
        message = jsjson.parse(text)
    except ValueError:
        await client.send(error("Invalid JSON"))
        return
    if not isinstance(message, dict):
        await client.send(error("Invalid message format"))
        return
    raw_id = message.get("id")
    msg_id = raw_id if isinstance(raw_id, str) and raw_id else None
    type_ = message.get("type")
    payload = message.get("payload")
    if not isinstance(payload, dict):
        payload = {}
    handler = HANDLERS.get(type_) if isinstance(type_, str) else None
    if handler is None:
        name = _js_template(type_, "type" in message)
        await client.send(error(f"Unknown message type: {name}", msg_id))
        return
    try:
        await handler(state, client, payload, msg_id)
    except Exception as exc:  # a try/catch around the switch, as in most Node servers
        log(f"handler {type_} failed: {exc!r}")
        await client.send(error("Internal server error", msg_id))


async def heartbeat_loop(client: Client) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        await client.send(envelope("heartbeat", {"timestamp": now_ms()}))


async def websocket(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    # Like `ws` without handleProtocols: select the first subprotocol the client offers.
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    ws = web.WebSocketResponse(max_msg_size=MAX_PAYLOAD, protocols=[p for p in offered if p][:1])
    if not ws.can_prepare(request).ok:
        return web.Response(status=404, text="Cannot GET /ws")  # Express's answer
    token = extract_token(request)
    if token is None:
        # Deviation: `token.split('.')` on undefined; nothing catches it.
        crash("TypeError: Cannot read properties of undefined (reading 'split')")
    user_id = verify(token, state.secret)
    if user_id is None:
        return unauthorized()
    await ws.prepare(request)
    client = Client(client_id=str(uuid.uuid4()), user_id=user_id, ws=ws)
    # Deviation: no userId, protocolVersion, heartbeatIntervalMs, limits or features.
    welcome = {"status": "connected", "clientId": client.client_id, "user": {"id": user_id}}
    await client.send(envelope("auth", welcome))
    state.clients[client.client_id] = client
    heartbeat = asyncio.create_task(heartbeat_loop(client))
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await handle_message(state, client, msg.data)
            elif msg.type == WSMsgType.BINARY:
                # `ws` hands a Buffer to JSON.parse, which reads it as text.
                await handle_message(state, client, msg.data.decode("utf-8", "replace"))
    finally:
        heartbeat.cancel()
        state.clients.pop(client.client_id, None)
    return ws


# --- SSE and HTTP --------------------------------------------------------------------


def _sse_block(sub: SseSubscriber, message: Message) -> str:
    return f"id: {sub.cursor()}\nevent: {message['type']}\ndata: {jsjson.stringify(message)}\n\n"


async def events(request: web.Request) -> web.StreamResponse:
    """Deviations: no authentication, no ``retry``/``event: connection``, no replay."""
    state = request.app[STATE]
    channels = list(dict.fromkeys(c for c in request.query.get("channels", "").split(",") if c))
    # Last-Event-ID is not even read.
    positions = {
        c: (state.streams[c][-1]["id"] if state.streams.get(c) else "0-0") for c in channels
    }
    sub = SseSubscriber(channels=channels, positions=positions)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    state.sse.add(sub)
    try:
        hello = {"clientId": str(uuid.uuid4()), "protocolVersion": PROTOCOL_VERSION,
                 "channels": channels}
        await response.write(f"data: {jsjson.stringify(hello)}\n\n".encode())
        while True:
            try:
                block = await asyncio.wait_for(sub.queue.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                block = ": keep-alive\n\n"
            if block is None:
                break
            await response.write(block.encode())
    except ConnectionError:
        pass
    finally:
        state.sse.discard(sub)
    return response


async def publish(request: web.Request) -> web.Response:
    """Deviation: any valid token may publish; no permission check."""
    state = request.app[STATE]
    token = extract_token(request)
    if token is None or verify(token, state.secret) is None:
        return unauthorized()
    try:
        body = jsjson.parse(await request.text())
    except ValueError:
        return json_response({"error": {"message": "Invalid JSON"}}, status=400)
    if not isinstance(body, dict) or not isinstance(body.get("type"), str) or not body["type"]:
        return json_response({"error": {"message": "type is required"}}, status=400)
    stream_id = request.match_info["stream_id"]
    tags = body.get("tags")
    event: Message = {
        "id": state.next_event_id(),
        "type": body["type"],
        "tags": tags if isinstance(tags, list) else [],
        "data": body.get("data"),
        "publishedAt": now_iso(),
    }
    buffer = state.streams.setdefault(stream_id, [])
    buffer.append(event)
    del buffer[:-STREAM_BUFFER]
    message = envelope("stream_event", {"streamId": stream_id, "event": event})
    for sub in list(state.sse):
        if stream_id in sub.positions:
            sub.positions[stream_id] = event["id"]
            sub.queue.put_nowait(_sse_block(sub, message))
    for client in list(state.clients.values()):
        if stream_id in client.streams:
            await client.send(message)
    return json_response({"id": event["id"]}, status=201)


async def health(request: web.Request) -> web.Response:
    # The pid header lets tests see that a supervised server was restarted.
    return json_response({"status": "ok"}, headers={"X-Far-Server-Pid": str(os.getpid())})


async def _on_shutdown(app: web.Application) -> None:
    state = app[STATE]
    for sub in list(state.sse):
        sub.queue.put_nowait(None)
    for client in list(state.clients.values()):
        with contextlib.suppress(Exception):
            await client.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


def build_app(secret: str) -> web.Application:
    app = web.Application()
    app[STATE] = State(secret=secret)
    app.router.add_get("/ws", websocket)
    app.router.add_get("/events", events)
    app.router.add_post("/streams/{stream_id}/events", publish)
    app.router.add_get("/health", health)
    app.on_shutdown.append(_on_shutdown)
    return app


async def serve(port: int, secret: str) -> None:
    """Serve on 127.0.0.1:port until stdin closes or SIGTERM; announce once listening."""
    stop = stop_event()
    runner = web.AppRunner(build_app(secret), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        announce(runner.addresses[0][1])
        await stop.wait()
    finally:
        await asyncio.wait_for(runner.cleanup(), 5)
