"""Raw aiohttp baselines: a JSON-envelope echo, a broadcast loop and an SSE fan-out."""

from __future__ import annotations

import asyncio
import contextlib

import orjson
from aiohttp import WSMsgType, web

from bench.baselines.envelopes import Envelopes

SUBPROTOCOL = "rep.v1"
WS_KEY = web.AppKey("ws_clients", set[web.WebSocketResponse])
SSE_KEY = web.AppKey("sse_clients", dict[str, dict[web.StreamResponse, asyncio.Future[None]]])
ENVELOPES_KEY = web.AppKey("envelopes", Envelopes)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def echo_handler(request: web.Request) -> web.WebSocketResponse:
    """Parse each frame and answer a ping with a pong envelope: the transport's ceiling."""
    envelopes = request.app[ENVELOPES_KEY]
    ws = web.WebSocketResponse(protocols=(SUBPROTOCOL,))
    await ws.prepare(request)
    async for frame in ws:
        if frame.type is WSMsgType.TEXT:
            message = orjson.loads(frame.data)
            await ws.send_str(orjson.dumps(envelopes.pong(message)).decode())
    return ws


async def broadcast_handler(request: web.Request) -> web.WebSocketResponse:
    """Every text frame is parsed once and its envelope copy sent to every connection."""
    envelopes = request.app[ENVELOPES_KEY]
    clients = request.app[WS_KEY]
    ws = web.WebSocketResponse(protocols=(SUBPROTOCOL,))
    await ws.prepare(request)
    clients.add(ws)
    try:
        async for frame in ws:
            if frame.type is not WSMsgType.TEXT:
                continue
            message = orjson.loads(frame.data)
            copy = envelopes.build(message["type"], message["payload"], message.get("id"))
            text = orjson.dumps(copy).decode()
            for client in list(clients):
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await client.send_str(text)
    finally:
        clients.discard(ws)
    return ws


async def sse_handler(request: web.Request) -> web.StreamResponse:
    """GET /events?channels=a,b: hold a text/event-stream response until the client leaves."""
    subscribers = request.app[SSE_KEY]
    channels = [c for c in request.query.get("channels", "").split(",") if c]
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    await response.write(b"retry: 3000\n\n")
    gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    for channel in channels:
        subscribers.setdefault(channel, {})[response] = gone
    try:
        await gone  # resolved by the first write that finds the client gone
    finally:
        for channel in channels:
            subscribers.get(channel, {}).pop(response, None)
    return response


async def publish_handler(request: web.Request) -> web.Response:
    """POST /streams/{id}/events: frame the event once and write it to every subscriber."""
    envelopes = request.app[ENVELOPES_KEY]
    stream_id = request.match_info["streamId"]
    body = orjson.loads(await request.read())
    event_id = f"{envelopes.timestamp()}-{id(body)}"
    event = {
        "id": event_id,
        "type": body["type"],
        "tags": body.get("tags", []),
        "data": body["data"],
        "publishedAt": envelopes.timestamp(),
    }
    message = envelopes.build("stream_event", {"streamId": stream_id, "event": event})
    chunk = b"id: %s=%s\nevent: stream_event\ndata: %s\n\n" % (
        stream_id.encode(),
        event_id.encode(),
        orjson.dumps(message),
    )
    for response, gone in list(request.app[SSE_KEY].get(stream_id, {}).items()):
        try:
            await response.write(chunk)
        except (ConnectionError, RuntimeError):
            if not gone.done():
                gone.set_result(None)
    return web.json_response({"id": event_id}, status=201)


def create_app(kind: str) -> web.Application:
    app = web.Application()
    app[ENVELOPES_KEY] = Envelopes()
    app[WS_KEY] = set()
    app[SSE_KEY] = {}
    app.router.add_get("/health", health)
    if kind == "echo":
        app.router.add_get("/ws", echo_handler)
    elif kind == "broadcast":
        app.router.add_get("/ws", broadcast_handler)
    elif kind == "sse":
        app.router.add_get("/events", sse_handler)
        app.router.add_post("/streams/{streamId}/events", publish_handler)
    else:
        raise ValueError(f"unknown aiohttp baseline {kind!r}")
    return app


def serve(kind: str, host: str, port: int) -> None:
    web.run_app(create_app(kind), host=host, port=port, print=None, access_log=None)
