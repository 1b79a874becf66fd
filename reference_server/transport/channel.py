"""One client's outbound side: a bounded queue drained by a writer task.

WebSocket and SSE clients differ only in how a message is framed; the queue, its bounds
and the close-behind-backlog rule are shared (WS-008, SSE-010: never buffer without bound).
The bound counts what is really held for the client: the queued messages' bytes and the
transport's write buffer, so a client that stopped reading is closed instead of holding
megabytes in the send path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiohttp import WSMsgType, web

log = logging.getLogger("reference_server.transport")
#: How long a close may wait behind a backlog, or for the client's closing handshake, before
#: the connection is cut. Also bounds how long shutdown waits for a client that stopped
#: reading.
CLOSE_GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class _CloseRequest:
    code: int
    reason: str


class OutboundChannel(Protocol):
    def push(self, message: dict[str, Any]) -> bool: ...

    def close(self, code: int, reason: str) -> None: ...

    async def finish(self, grace_seconds: float = 1.0) -> None: ...


class BoundedQueue:
    """Encoded messages waiting for one client, bounded in count and in bytes held."""

    def __init__(
        self, transport: asyncio.BaseTransport | None, limit: int, limit_bytes: int
    ) -> None:
        self._transport = transport
        self._items: asyncio.Queue[Any] = asyncio.Queue(limit)
        self._limit_bytes = limit_bytes
        self.queued_bytes = 0

    def held_bytes(self) -> int:
        """Queued bytes plus what the transport has accepted but not yet sent."""
        transport = self._transport
        buffered = 0
        if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
            buffered = transport.get_write_buffer_size()
        return self.queued_bytes + buffered

    def put(self, item: Any, size: int) -> bool:
        """False when the client already holds too much (it is not reading)."""
        if self.held_bytes() + size > self._limit_bytes:
            return False
        try:
            self._items.put_nowait((item, size))
        except asyncio.QueueFull:
            return False
        self.queued_bytes += size
        return True

    def put_control(self, item: Any) -> bool:
        """A close or keep-alive: bounded in count only (it is a few bytes)."""
        try:
            self._items.put_nowait((item, 0))
        except asyncio.QueueFull:
            return False
        return True

    async def get(self) -> Any:
        item, size = await self._items.get()
        self.queued_bytes -= size
        return item

    def cut(self) -> None:
        """End the connection now: the client did not take what it was sent in time."""
        transport = self._transport
        # Even a transport already closing: close() waits for the peer to take the buffer.
        if isinstance(transport, asyncio.WriteTransport):
            transport.abort()


class WebSocketChannel:
    """Messages are written in order; a close is queued behind what was sent before it."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.BaseTransport | None,
        limit: int,
        limit_bytes: int,
    ) -> None:
        self._ws = ws
        self._queue = BoundedQueue(transport, limit, limit_bytes)
        self._writer: asyncio.Task[Any] = asyncio.create_task(self._write())
        self._overflowed = False
        self.sent_close_code: int | None = None

    def push(self, message: dict[str, Any]) -> bool:
        """Queue a message; False when the client holds too much already."""
        data = orjson.dumps(message)
        if not self._queue.put(data, len(data)):
            self._overflowed = True
            return False
        return True

    def close(self, code: int, reason: str) -> None:
        if self.sent_close_code is not None:
            return
        self.sent_close_code = code
        if self._overflowed or not self._queue.put_control(_CloseRequest(code, reason)):
            # A slow consumer: its backlog is the problem, so the close frame goes ahead of
            # it, straight behind what the socket already holds.
            self._close_now(code, reason)
        # A writer stuck on a client that stopped reading must not hold the close forever.
        asyncio.get_running_loop().call_later(CLOSE_GRACE_SECONDS, self._cut_if_stuck, code)

    def _cut_if_stuck(self, code: int) -> None:
        # Done or not, the writer may have left the transport closing gracefully, which
        # waits for a peer that does not read: abort it (a no-op once it is gone).
        if not self._writer.done():
            log.info("closing with %s took over %.0f s: connection cut", code, CLOSE_GRACE_SECONDS)
            self._writer.cancel()
        self._queue.cut()

    def _close_now(self, code: int, reason: str) -> None:
        self._writer.cancel()
        self._writer = asyncio.create_task(self._ws.close(code=code, message=reason.encode()))

    async def _write(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:  # finish(): everything before it has been written
                return
            if isinstance(item, _CloseRequest):
                await self._ws.close(code=item.code, message=item.reason.encode())
                return
            try:
                await self._ws.send_frame(item, WSMsgType.TEXT)
            except (ConnectionError, RuntimeError) as exc:
                log.debug("dropping message for a closed socket: %s", exc)
                return

    async def finish(self, grace_seconds: float = 1.0) -> None:
        """Let queued messages (and a queued close) go out within the grace, then cut."""
        self._queue.put_control(None)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            async with asyncio.timeout(grace_seconds):
                await asyncio.shield(self._writer)
        if not self._writer.done():
            self._writer.cancel()
            self._queue.cut()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
            await self._writer
