"""What every handler shares: the Node (core + broker + local channels) and HTTP helpers.

A :class:`Node` joins one :class:`ServerCore` to one :class:`Broker` and the local sockets.
"""

from __future__ import annotations

import asyncio
import time
from typing import TypeVar

import orjson
from aiohttp import web

from reference_server.auth import Principal, TokenVerifier, authenticate
from reference_server.broker.base import Broker, Departure, Publication
from reference_server.config import ServerConfig
from reference_server.core.driver import run_step
from reference_server.core.effects import Close, Send, Step
from reference_server.core.server import ServerCore
from reference_server.transport.channel import Corker, OutboundChannel
from rep_spec import catalog

T = TypeVar("T")


def now_ms() -> int:
    return int(time.time() * 1000)


class Node:
    """Glue: runs core steps against the broker and the local WebSocket and SSE channels."""

    def __init__(self, config: ServerConfig, secret: str, broker: Broker, core: ServerCore) -> None:
        self.config = config
        self.broker = broker
        self.core = core
        self.verifier = TokenVerifier(secret, config.jwt_algorithms)
        self.channels: dict[str, OutboundChannel] = {}
        self.corker = Corker()  # one flush per loop iteration for all of this node's clients
        self._closing: dict[str, asyncio.Task[None]] = {}
        self.stopping = False
        broker.on_publication(self._on_publication)
        broker.on_departures(self._on_departures)
        self._telling: set[asyncio.Task[None]] = set()

    async def execute(self, step: Step[T]) -> T:
        return await run_step(step, self.broker, self._apply_now)

    def _apply_now(self, effect: Send | Close) -> None:
        channel = self.channels.get(effect.client_id)
        if channel is None:
            return
        if isinstance(effect, Close):
            channel.close(effect.code, effect.reason)
        elif not channel.push(effect.message):
            self._slow_consumer(effect.client_id)

    def _slow_consumer(self, client_id: str) -> None:
        """WS-008: a client over its bound is closed by a step of its own (the close and the
        cleanup the core does with the broker); the channel refuses everything meanwhile."""
        if client_id in self._closing:
            return
        task = asyncio.create_task(self.execute(self.core.slow_consumer(client_id)))
        self._closing[client_id] = task
        task.add_done_callback(lambda _: self._closing.pop(client_id, None))

    def _on_departures(self, departures: tuple[Departure, ...]) -> None:
        task = asyncio.create_task(self.execute(self.core.departed(departures)))
        self._telling.add(task)
        task.add_done_callback(self._telling.discard)

    def _on_publication(self, publication: Publication) -> None:
        shared = publication.message
        data: bytes | None = None  # encoded once for every local recipient, not once each
        channels = self.channels
        for send in self.core.deliver(publication):
            channel = channels.get(send.client_id)
            if channel is None:
                continue
            message = send.message
            if message is shared:
                if data is None:
                    data = orjson.dumps(shared)
                pushed = channel.push(message, data)
            else:
                pushed = channel.push(message)
            if not pushed:
                self._slow_consumer(send.client_id)


NODE_KEY = web.AppKey("rep_node", Node)


def error_response(code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """HTTP-004: the registry's status for the code, and a JSON error body."""
    status = catalog().error_code(code).http_status
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


def authenticate_request(
    request: web.Request, node: Node, permission: str | None = None
) -> Principal:
    kwargs = {"required_permission": permission} if permission else {}
    return authenticate(
        node.verifier,
        request.headers,
        request.query,
        request.cookies,
        node.config.allowed_origins,
        **kwargs,
    )
