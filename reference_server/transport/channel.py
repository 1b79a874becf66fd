"""One client's outbound side: a bounded queue drained by a writer task.

WebSocket and SSE clients differ only in how a message is framed; the queue, its bound
and the close-behind-backlog rule are shared (SSE-010: never buffer without bound).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiohttp import web

log = logging.getLogger("reference_server.transport")
CLOSE_GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class _CloseRequest:
    code: int
    reason: str


class OutboundChannel(Protocol):
    def push(self, message: dict[str, Any]) -> bool: ...

    def close(self, code: int, reason: str) -> None: ...

    async def finish(self, grace_seconds: float = 1.0) -> None: ...


class WebSocketChannel:
    """Messages are written in order; a close is queued behind what was sent before it."""

    def __init__(self, ws: web.WebSocketResponse, limit: int) -> None:
        self._ws = ws
        self._queue: asyncio.Queue[dict[str, Any] | _CloseRequest] = asyncio.Queue(limit)
        self._writer: asyncio.Task[Any] = asyncio.create_task(self._write())

    def push(self, message: dict[str, Any]) -> bool:
        """Queue a message; False when the queue is full (the client is not reading)."""
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            return False
        return True

    def close(self, code: int, reason: str) -> None:
        try:
            self._queue.put_nowait(_CloseRequest(code, reason))
        except asyncio.QueueFull:  # slow consumer: skip the backlog, close now
            self._close_now(code, reason)
            return
        # A writer stuck on a client that stopped reading must not hold the close forever.
        asyncio.get_running_loop().call_later(
            CLOSE_GRACE_SECONDS, self._close_if_stuck, code, reason
        )

    def _close_if_stuck(self, code: int, reason: str) -> None:
        if not self._writer.done():
            self._close_now(code, reason)

    def _close_now(self, code: int, reason: str) -> None:
        self._writer.cancel()
        self._writer = asyncio.create_task(self._ws.close(code=code, message=reason.encode()))

    async def _write(self) -> None:
        while True:
            item = await self._queue.get()
            if isinstance(item, _CloseRequest):
                await self._ws.close(code=item.code, message=item.reason.encode())
                return
            try:
                await self._ws.send_str(orjson.dumps(item).decode())
            except (ConnectionError, RuntimeError) as exc:
                log.debug("dropping message for a closed socket: %s", exc)
                return

    async def finish(self, grace_seconds: float = 1.0) -> None:
        """Let queued messages (and a queued close) go out, within the grace period."""
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            async with asyncio.timeout(grace_seconds):
                await asyncio.shield(self._writer)
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
            await self._writer
