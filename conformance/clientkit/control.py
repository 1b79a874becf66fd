"""The control channel: how the kit asks the driver to act and hears what the client told
its application.

The driver connects to ``/control`` (a WebSocket, JSON text frames) and first sends
``{"event": "ready", "client": NAME}``. The kit then sends commands::

    {"do": "connect"}
    {"do": "request", "ref": R, "type": T, "payload": P, "timeout_ms": N}
    {"do": "send", "type": T, "payload": P}
    {"do": "join", "ref": R, "room": ROOM}
    {"do": "subscribe", "ref": R, "stream": STREAM}
    {"do": "sse", "channels": [STREAM, ...]}
    {"do": "disconnect"}

and the driver reports, whenever they happen::

    {"event": "connected"} {"event": "disconnected", "code": C} {"event": "reconnecting"}
    {"event": "gave_up"}
    {"event": "answer", "ref": R, "message": M}
    {"event": "failed", "ref": R, "reason": "timeout" | "error" | "closed", "code": CODE}
    {"event": "delivered", "message": M}        every server message given to the application
    {"event": "sse", "type": T, "id": I, "data": D}
    {"event": "unsupported", "do": COMMAND}     the client has no such operation
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from conformance.transcript import Transcript

Report = dict[str, Any]


class DriverGone(Exception):
    """The driver never connected, or its control channel closed."""


class Driver:
    """The kit's end of one driver's control channel."""

    def __init__(self, transcript: Transcript) -> None:
        self.transcript = transcript
        self.reports: list[tuple[float, Report]] = []
        self._arrived = asyncio.Event()
        self._ready = asyncio.Event()
        self._ws: web.WebSocketResponse | None = None
        self.client_name = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        if self._ws is not None:
            await ws.close(code=1008, message=b"one driver per scenario")
            return ws
        self._ws = ws
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                continue
            try:
                report = json.loads(frame.data)
            except ValueError:
                continue
            if not isinstance(report, dict):
                continue
            self.transcript.add("driver", "received", "report", frame.data)
            if report.get("event") == "ready":
                self.client_name = str(report.get("client", ""))
                self._ready.set()
            self.reports.append((self.transcript.now(), report))
            self._arrived.set()
        self.transcript.note("the driver's control channel closed", "driver")
        return ws

    async def ready(self, within: float) -> None:
        try:
            await asyncio.wait_for(self._ready.wait(), within)
        except TimeoutError:
            raise DriverGone(
                f"the client's driver did not reach the control channel within {within:g} s"
            ) from None

    async def command(self, do: str, **fields: Any) -> None:
        if self._ws is None or self._ws.closed:
            raise DriverGone("the driver's control channel is closed")
        text = json.dumps({"do": do, **fields})
        self.transcript.add("driver", "sent", "command", text)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self._ws.send_str(text)

    def seen(
        self, match: Callable[[Report], bool], since: float = 0.0
    ) -> list[tuple[float, Report]]:
        return [(at, r) for at, r in self.reports if at >= since and match(r)]

    async def expect(
        self, match: Callable[[Report], bool], within: float, since: float = 0.0
    ) -> tuple[float, Report] | None:
        """The first report at or after ``since`` that ``match`` accepts, within a time."""
        deadline = time.monotonic() + within
        while True:
            found = self.seen(match, since)
            if found:
                return found[0]
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)

    def unsupported(self, do: str) -> bool:
        return bool(self.seen(lambda r: r.get("event") == "unsupported" and r.get("do") == do))


def event(name: str, **fields: Any) -> Callable[[Report], bool]:
    """A matcher: reports of this event whose fields equal the given ones."""

    def match(report: Report) -> bool:
        return report.get("event") == name and all(report.get(k) == v for k, v in fields.items())

    return match
