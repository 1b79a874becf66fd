"""One client's outbound side: framed bytes, bounded, written to the socket without a task.

A message is framed when it is pushed and handed to the socket at the end of the current
loop iteration, together with whatever else that iteration produced for the same client
(corking): a fan-out costs one call per member instead of a writer task's wake-up, and the
replies to several frames read at once leave in one send.

The bound (WS-008, SSE-010: never buffer without bound) counts what is really held for the
client: the bytes not yet handed over plus the socket's unsent buffer, and the messages
handed over while that buffer was not empty. A client that stops reading is closed instead
of holding megabytes in the send path.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Any, Protocol, cast

import orjson
from aiohttp import web

from reference_server.transport.framing import websocket_text_frame

log = logging.getLogger("reference_server.transport")
#: How long a close may wait for the client's closing handshake, or for a client that
#: stopped reading to take its backlog, before the connection is cut. Also bounds how long
#: shutdown waits for a client that stopped reading.
CLOSE_GRACE_SECONDS = 2.0


class OutboundChannel(Protocol):
    def push(self, message: dict[str, Any], data: bytes | None = None) -> bool:
        """Queue ``message`` (``data``: its JSON, when the caller encoded it already)."""
        ...

    def close(self, code: int, reason: str) -> None: ...

    async def finish(self, grace_seconds: float = 1.0) -> None: ...


class Corker:
    """Flushes, with one callback at the end of the loop iteration, every outbox written
    during it: a fan-out to a thousand clients schedules one callback, not a thousand."""

    def __init__(self) -> None:
        self._dirty: list[Outbox] = []
        self._handle: asyncio.Handle | None = None

    def mark(self, outbox: Outbox) -> None:
        self._dirty.append(outbox)
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_soon(self.flush_all)

    def flush_all(self) -> None:
        """Now, not at the end of the iteration: before an answer that should follow them."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        dirty, self._dirty = self._dirty, []
        for outbox in dirty:
            outbox.flush()


class Outbox:
    """Bytes waiting for one client, written to its transport once per loop iteration."""

    def __init__(
        self,
        transport: asyncio.BaseTransport | None,
        limit: int,
        limit_bytes: int,
        *,
        corker: Corker | None = None,
        held: bool = False,
        write_through: bool = False,
    ) -> None:
        # Not isinstance(): uvloop's transports have the methods but not the base classes.
        self._transport = cast("asyncio.WriteTransport | None", transport)
        self._limit = limit
        self._limit_bytes = limit_bytes
        self._parts: list[bytes] = []
        self._pending_bytes = 0
        self._backlog = 0  # messages handed over since the socket last had nothing unsent
        self._corker = corker or Corker()
        self._marked = False
        self._held = held
        # Handed over at once when nothing waits before it: for a client that gets one
        # message per event (SSE), waiting for the iteration's end batches nothing, and
        # the first subscriber's copy should not wait for the last one's to be framed.
        self._write_through = write_through

    def unsent_bytes(self) -> int:
        """What the transport has accepted but not yet sent."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return 0
        return transport.get_write_buffer_size()

    def held_bytes(self) -> int:
        return self._pending_bytes + self.unsent_bytes()

    def put(self, data: bytes) -> bool:
        """False when the client already holds too much (it is not reading)."""
        # Once per message per recipient: unsent_bytes() and _append() written out here.
        transport = self._transport
        writable = transport is not None and not transport.is_closing()
        unsent = transport.get_write_buffer_size() if writable else 0  # type: ignore[union-attr]
        parts = self._parts
        if not unsent and not parts:
            self._backlog = 0
        size = len(data)
        if self._backlog >= self._limit or self._pending_bytes + unsent + size > self._limit_bytes:
            return False
        self._backlog += 1
        if self._write_through and not parts and not self._held:
            if writable:  # a closing transport takes nothing more, as in flush()
                transport.write(data)  # type: ignore[union-attr]
            return True
        parts.append(data)
        self._pending_bytes += size
        if not self._marked and not self._held:
            self._marked = True
            self._corker.mark(self)
        return True

    def put_control(self, data: bytes) -> None:
        """A keep-alive: a few bytes, outside the bound (a full outbox is activity enough)."""
        self._append(data)

    def _append(self, data: bytes) -> None:
        self._parts.append(data)
        self._pending_bytes += len(data)
        if not self._marked and not self._held:
            self._marked = True
            self._corker.mark(self)

    def release(self) -> None:
        """Start writing (an outbox made ``held`` waits until what must go first has gone)."""
        self._held = False
        self.flush()

    def flush(self) -> None:
        """Hand everything waiting to the transport now, in one write."""
        self._marked = False
        parts = self._parts
        if not parts or self._held:
            return
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        parts.clear()  # discard(), written out: once per recipient of every publication
        self._pending_bytes = 0
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def discard(self) -> None:
        """Drop what was not handed over yet (the close of a slow consumer goes first)."""
        self._parts.clear()
        self._pending_bytes = 0

    def cut(self) -> None:
        """End the connection now: the client did not take what it was sent in time."""
        self.discard()
        # Even a transport already closing: close() waits for the peer to take the buffer.
        if self._transport is not None:
            self._transport.abort()


_shared_text_frame = functools.lru_cache(maxsize=8)(websocket_text_frame)


class WebSocketChannel:
    """Text frames written in order; a close goes behind what was pushed before it."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.BaseTransport | None,
        limit: int,
        limit_bytes: int,
        corker: Corker | None = None,
    ) -> None:
        self._ws = ws
        self._outbox = Outbox(transport, limit, limit_bytes, corker=corker)
        self._overflowed = False
        self._closing: asyncio.Task[Any] | None = None
        self.sent_close_code: int | None = None

    def push(self, message: dict[str, Any], data: bytes | None = None) -> bool:
        """Frame and queue a message; False when the client holds too much already."""
        if self.sent_close_code is not None:
            return True  # the connection is ending: what comes after the close is dropped
        if data is None:
            framed = websocket_text_frame(orjson.dumps(message))
        else:  # a publication: framed once for every local member, not once each
            framed = _shared_text_frame(data)
        if self._outbox.put(framed):
            return True
        self._overflowed = True
        return False

    def close(self, code: int, reason: str) -> None:
        if self.sent_close_code is not None:
            return
        self.sent_close_code = code
        if self._overflowed:
            # WS-008: a slow consumer's backlog is the problem, so the close frame goes
            # ahead of it, straight behind what the socket already holds.
            self._outbox.discard()
        else:
            self._outbox.flush()
        self._closing = asyncio.create_task(self._ws.close(code=code, message=reason.encode()))
        # A client that stopped reading never answers the close: cut it after the grace.
        asyncio.get_running_loop().call_later(CLOSE_GRACE_SECONDS, self._cut_if_stuck, code)

    def _cut_if_stuck(self, code: int) -> None:
        # Done or not, the close may have left the transport closing gracefully, which
        # waits for a peer that does not read: abort it (a no-op once it is gone).
        if self._closing is not None and not self._closing.done():
            log.info("closing with %s took over %.0f s: connection cut", code, CLOSE_GRACE_SECONDS)
            self._closing.cancel()
        self._outbox.cut()

    async def finish(self, grace_seconds: float = 1.0) -> None:
        """Hand over what is queued; give a close in progress the grace, then cut."""
        self._outbox.flush()
        closing = self._closing
        if closing is None:
            return
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            async with asyncio.timeout(grace_seconds):
                await asyncio.shield(closing)
        if not closing.done():
            closing.cancel()
            self._outbox.cut()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
            await closing
