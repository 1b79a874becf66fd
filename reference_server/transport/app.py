"""The aiohttp application: /ws, /events, /health, /stats, POST /streams/{streamId}/events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from reference_server.auth import AuthRejected
from reference_server.broker.base import Broker, BrokerUnavailable
from reference_server.broker.memory import MemoryBroker
from reference_server.config import ServerConfig
from reference_server.core.messages import MessageFactory
from reference_server.core.server import CORE_FEATURES, Refused, ServerCore
from reference_server.transport.channel import CLOSE_GRACE_SECONDS, WebSocketChannel
from reference_server.transport.node import (
    NODE_KEY,
    Node,
    authenticate_request,
    error_response,
    now_ms,
)
from reference_server.transport.sse import events_handler, preflight_handler

log = logging.getLogger("reference_server.transport")
CoreFactory = Callable[..., ServerCore]
SUBPROTOCOL = "rep.v1"
TRANSPORT_FEATURES = ("sse", "publish")


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE_KEY]
    try:
        principal = authenticate_request(request, node)
    except AuthRejected as rejected:
        log.info("handshake refused: %s %s", rejected.status, rejected.reason)
        return error_response(rejected.code, rejected.reason)
    ws = web.WebSocketResponse(
        protocols=(SUBPROTOCOL,),
        max_msg_size=node.config.max_message_bytes + 1,  # aiohttp's bound is exclusive
        autoping=True,
        # WS-011: permessage-deflate is declined. It costs ~100 kB of memory per connection
        # (zlib windows both ways) for JSON envelopes that are mostly small.
        compress=False,
        timeout=CLOSE_GRACE_SECONDS / 2,  # for the client's closing handshake
    )
    await ws.prepare(request)
    client_id, welcome = node.core.connect(principal, now_ms())
    channel = WebSocketChannel(
        ws,
        request.transport,
        node.config.outbound_queue_limit,
        node.config.outbound_buffer_bytes,
        node.corker,
    )
    node.channels[client_id] = channel
    log.info("client %s connected as %s", client_id, principal.user_id)
    try:
        await node.execute(welcome)
        async for frame in ws:
            if frame.type is WSMsgType.TEXT:
                await node.execute(node.core.receive_text(client_id, frame.data, now_ms()))
            elif frame.type is WSMsgType.BINARY:
                await node.execute(node.core.receive_binary(client_id, now_ms()))
            elif frame.type is WSMsgType.ERROR:
                log.info("client %s: %s", client_id, ws.exception())
                break
    finally:
        try:
            await node.execute(node.core.disconnected(client_id))
        finally:  # whatever the cleanup did, the socket's own resources go
            await channel.finish()
            node.channels.pop(client_id, None)
        log.info(
            "client %s gone (close code sent %s, received %s)",
            client_id,
            channel.sent_close_code,
            ws.close_code,
        )
    return ws


async def health_handler(request: web.Request) -> web.Response:
    """HTTP-001 / HTTP-006: ok only while a new connection would be served."""
    node = request.app[NODE_KEY]
    if node.stopping:
        return _unavailable("shutting down")
    try:
        await node.broker.check()
    except BrokerUnavailable as exc:
        log.warning("health: unavailable: %s", exc)
        return _unavailable("shared state unreachable")
    return web.json_response({"status": "ok"})


def _unavailable(reason: str) -> web.Response:
    return web.json_response({"status": "unavailable", "reason": reason}, status=503)


async def stats_handler(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    try:
        connections = await node.broker.connection_count()
        rooms = await node.broker.room_count()
    except BrokerUnavailable as exc:  # HTTP-007: the spec's JSON error, not a bare 500
        log.warning("stats: %s", exc)
        return error_response("internal_error", "shared state unreachable; try again later")
    return web.json_response(
        {"connections": connections, "rooms": rooms, "streams": len(node.config.streams)}
    )


async def publish_handler(request: web.Request) -> web.Response:
    """HTTP-003/004: a server-side producer appends an event to a stream."""
    node = request.app[NODE_KEY]
    try:
        authenticate_request(request, node, "stream:publish")
    except AuthRejected as rejected:
        return error_response(rejected.code, rejected.reason)
    if (request.content_length or 0) > node.config.max_message_bytes:
        return error_response("message_too_large", "body exceeds maxMessageBytes")
    raw = await request.content.read(node.config.max_message_bytes + 1)
    if len(raw) > node.config.max_message_bytes:
        return error_response("message_too_large", "body exceeds maxMessageBytes")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return error_response("invalid_json", f"body is not JSON: {exc}")
    violation = node.core.validator.check_http_body("publish-request", body)
    if violation is not None:
        return error_response("invalid_payload", f"{violation.pointer}: {violation.message}")
    try:
        event = await node.execute(
            node.core.publish_event(
                request.match_info["streamId"],
                body["type"],
                body.get("tags", []),
                body["data"],
                now_ms(),
            )
        )
    except Refused as refusal:
        return error_response(refusal.code, refusal.message)
    # The local subscribers' copies go to their sockets now, not corked behind whatever the
    # producer sends next: batching a busy producer's events tripled their latency.
    node.corker.flush_all()
    return web.json_response({"id": event.id}, status=201)


async def _ticker(node: Node) -> None:
    period = node.core.tick_period_ms / 1000
    while True:
        await asyncio.sleep(period)
        try:
            await node.execute(node.core.tick(now_ms()))
        except Exception:  # the ticker must outlive any one bad tick
            log.exception("tick failed")


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    node = app[NODE_KEY]
    await node.broker.start()  # a broker that cannot reach its store fails the start-up
    ticker = asyncio.create_task(_ticker(node))
    yield
    ticker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await ticker
    await node.broker.close()


async def _shutdown(app: web.Application) -> None:
    """LIFE-007: disconnect + 1001 to everyone before aiohttp tears the sockets down."""
    node = app[NODE_KEY]
    node.stopping = True  # /health says so first, so balancers stop routing here
    await node.execute(node.core.shutdown())
    await asyncio.gather(*(channel.finish() for channel in list(node.channels.values())))


def create_app(
    config: ServerConfig,
    secret: str,
    *,
    broker: Broker | None = None,
    core_factory: CoreFactory = ServerCore,
    extra_features: tuple[str, ...] = (),
    node_id: str | None = None,
) -> web.Application:
    """Build the application; nothing is configured at import time.

    ``node_id`` prefixes every id the node makes, so ids stay unique across a cluster.
    """
    core_options: dict[str, Any] = {}
    if node_id is not None:
        core_options["messages"] = MessageFactory(node_id)
    core = core_factory(
        config, features=(*CORE_FEATURES, *TRANSPORT_FEATURES, *extra_features), **core_options
    )
    node = Node(config, secret, broker or MemoryBroker(), core)
    app = web.Application(client_max_size=config.max_message_bytes + 1024)
    app[NODE_KEY] = node
    app.router.add_get("/ws", websocket_handler)
    app.router.add_get("/health", health_handler)
    app.router.add_get("/stats", stats_handler)
    app.router.add_post("/streams/{streamId}/events", publish_handler)
    app.router.add_get("/events", events_handler)
    app.router.add_route("OPTIONS", "/events", preflight_handler)
    app.router.add_route("OPTIONS", "/streams/{streamId}/events", preflight_handler)
    app.cleanup_ctx.append(_lifecycle)
    app.on_shutdown.append(_shutdown)
    return app
