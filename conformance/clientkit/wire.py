"""The scripted REP server the client under test talks to, on loopback.

One aiohttp application serves ``/ws`` (REP over WebSocket), ``/events`` (SSE),
``/control`` (the driver's channel, :mod:`conformance.clientkit.control`) and, when the
target names a directory, ``/static/`` (a browser client's page). Scenarios decide what
the server does: refuse handshakes, welcome with a given heartbeat interval, answer or
stay silent, close with a code, drop the transport. Every frame and handshake goes into
the scenario's transcript with its time, and every client message is checked against
the client schemas and for a repeated id (CLIENT-001).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from conformance.transcript import Transcript
from rep_spec import MessageValidator, catalog

ENVELOPE_REQUIREMENT = "CLIENT-001"


def timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Handshake:
    """One WebSocket or SSE request of the client, when it arrived and what it presented."""

    at: float
    kind: str  # "ws" or "sse"
    token: str | None
    headers: dict[str, str]
    query: dict[str, str]
    refused: int | None = None


@dataclass
class ClientConn:
    """One accepted WebSocket connection of the client under test."""

    number: int
    handshake: Handshake
    ws: web.WebSocketResponse
    request: web.Request
    server: ScriptedServer
    inbox: asyncio.Queue[tuple[float, dict[str, Any]]] = field(default_factory=asyncio.Queue)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    closed_at: float | None = None
    #: The close code the client sent, None when the transport ended without one.
    client_close_code: int | None = None
    closed_by_kit: bool = False
    ids: set[str] = field(default_factory=set)
    heartbeat_ids: set[str] = field(default_factory=set)
    received: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    auto_pong: bool = True
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def label(self) -> str:
        return f"client#{self.number}"

    async def send(
        self,
        type_name: str,
        payload: dict[str, Any],
        correlation: str | None = None,
        *,
        metadata: dict[str, Any] | None = None,
        raw: dict[str, Any] | None = None,
        deliberate: bool = False,
    ) -> str:
        """Send a server message (``raw`` replaces the whole envelope); return its id.

        A message the server schemas refuse is a mistake of the kit unless it is
        ``deliberate`` (an unknown type or error code); mistakes are collected.
        """
        message = raw or self.server.envelope(type_name, payload, correlation, metadata)
        if not deliberate:
            for violation in self.server.validator.server_message_violations(message):
                self.server.kit_problems.append(
                    f"{message.get('type')} at {violation.pointer}: {violation.message}"
                )
        text = json.dumps(message)
        self.server.transcript.add(self.label, "sent", "text", text)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_str(text)
        return str(message["id"])

    async def close(self, code: int, reason: str = "") -> None:
        self.closed_by_kit = True
        self.server.transcript.add(self.label, "sent", "close", f"{code} {reason}".strip())
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close(code=code, message=reason.encode())

    def drop(self) -> None:
        """End the TCP connection without a close frame (the client sees 1006)."""
        self.closed_by_kit = True
        self.server.transcript.note("transport dropped, no close frame", self.label)
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    def start_heartbeats(self, interval_s: float) -> None:
        """Heartbeats at twice the advertised rate, as a server must (LIFE-002)."""

        async def beat() -> None:
            while not self.closed.is_set():
                await asyncio.sleep(interval_s / 2)
                if self.closed.is_set():
                    return
                beat_id = await self.send("heartbeat", {"timestamp": int(time.time() * 1000)})
                self.heartbeat_ids.add(beat_id)

        task = asyncio.create_task(beat())
        self._tasks.add(task)

    def stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def next(
        self, within: float, match: Callable[[dict[str, Any]], bool] | None = None
    ) -> tuple[float, dict[str, Any]] | None:
        """The next client message (that ``match`` accepts) within ``within`` seconds."""
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            try:
                at, message = await asyncio.wait_for(self.inbox.get(), left)
            except TimeoutError:
                return None
            if match is None or match(message):
                return at, message
        return None

    async def received_at_least(self, count: int, within: float) -> bool:
        """Whether ``count`` client messages (pings included) arrived, waiting up to a time."""
        deadline = time.monotonic() + within
        while len(self.received) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), left)
        return True

    async def wait_closed(self, within: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closed.wait(), within)
        return self.closed.is_set()


SseScript = Callable[[web.StreamResponse, Handshake], Awaitable[None]]


class ScriptedServer:
    """What the client under test sees as its REP server."""

    def __init__(self, transcript: Transcript, static: Path | None, token: str) -> None:
        self.transcript = transcript
        self.static = static
        self.token = token
        self.validator = MessageValidator()
        self.handshakes: list[Handshake] = []
        self.handshake_arrived = asyncio.Event()
        self.connections: asyncio.Queue[ClientConn] = asyncio.Queue()
        self.all_connections: list[ClientConn] = []
        #: Decides each WebSocket handshake: an HTTP status refuses it, None accepts it.
        self.policy: Callable[[Handshake], int | None] = lambda handshake: None
        self.heartbeat_ms = 30000
        self.send_heartbeats = True
        self.sse_script: SseScript | None = None
        self.violations: list[str] = []
        #: Messages of the kit's own that the server schemas refuse (a bug of the kit).
        self.kit_problems: list[str] = []
        self.control_handler: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None
        self._ids = itertools.count(1)
        self._numbers = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- addresses ----------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def sse_url(self) -> str:
        return f"{self.http_url}/events"

    @property
    def control_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/control"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/events", self._sse)
        app.router.add_get("/control", self._control)
        if self.static is not None:
            app.router.add_static("/static/", self.static)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = int(server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for conn in self.all_connections:
            conn.stop_tasks()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- messages -----------------------------------------------------------------------

    def envelope(
        self,
        type_name: str,
        payload: dict[str, Any],
        correlation: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "version": catalog().protocol_version,
            "source": "server",
            **(metadata or {}),
        }
        if correlation is not None:
            meta["correlation_id"] = correlation
        return {
            "id": f"k-{next(self._ids)}",
            "type": type_name,
            "timestamp": timestamp(),
            "payload": payload,
            "metadata": meta,
        }

    def welcome(self, number: int) -> dict[str, Any]:
        return self.envelope(
            "auth",
            {
                "status": "connected",
                "clientId": f"kit-client-{number}",
                "userId": "client-under-test",
                "protocolVersion": catalog().protocol_version,
                "heartbeatIntervalMs": self.heartbeat_ms,
                "limits": {
                    "maxMessageBytes": 65536,
                    "rateLimit": {"windowMs": 60000, "maxMessages": 1000},
                },
                "features": sorted(catalog().features),
            },
        )

    # -- endpoints ----------------------------------------------------------------------

    def _handshake(self, request: web.Request, kind: str) -> Handshake:
        token = None
        authorization = request.headers.get("Authorization", "")
        if authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
        token = token or request.query.get("token") or request.cookies.get("token")
        handshake = Handshake(
            at=self.transcript.now(),
            kind=kind,
            token=token,
            headers=dict(request.headers),
            query=dict(request.query),
        )
        self.handshakes.append(handshake)
        self.handshake_arrived.set()
        last_id = request.headers.get("Last-Event-ID")
        extra = f" Last-Event-ID: {last_id}" if last_id is not None else ""
        self.transcript.add("http", "received", kind, f"GET {request.path_qs}{extra}")
        return handshake

    def handshakes_of(self, kind: str = "ws") -> list[Handshake]:
        return [h for h in self.handshakes if h.kind == kind]

    async def next_handshake(self, after: int, within: float, kind: str = "ws") -> Handshake | None:
        """The first handshake of ``kind`` beyond the first ``after`` ones, within a time."""
        deadline = time.monotonic() + within
        while True:
            found = self.handshakes_of(kind)
            if len(found) > after:
                return found[after]
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.handshake_arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.handshake_arrived.wait(), left)

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        handshake = self._handshake(request, "ws")
        status = self.policy(handshake)
        if status is not None:
            handshake.refused = status
            self.transcript.add("http", "sent", "refused", f"HTTP {status}")
            return web.Response(status=status, text="refused by the scenario")
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        ws = web.WebSocketResponse(
            protocols=["rep.v1"] if "rep.v1" in offered else (), autoping=True, heartbeat=None
        )
        await ws.prepare(request)
        conn = ClientConn(next(self._numbers), handshake, ws, request, self)
        self.all_connections.append(conn)
        await conn.send("auth", {}, raw=self.welcome(conn.number))
        if self.send_heartbeats:
            conn.start_heartbeats(self.heartbeat_ms / 1000)
        await self.connections.put(conn)
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    await self._received(conn, frame.data)
                elif frame.type == WSMsgType.BINARY:
                    self._violation(conn, "sent a binary frame; REP uses text frames (WS-002)")
        except (ConnectionError, RuntimeError):
            pass
        finally:
            conn.closed_at = self.transcript.now()
            code = ws.close_code
            conn.client_close_code = None if conn.closed_by_kit or code == 1006 else code
            self.transcript.add(conn.label, "received", "closed", f"code {code}")
            conn.closed.set()
            conn.stop_tasks()
        return ws

    def _violation(self, conn: ClientConn, text: str) -> None:
        self.violations.append(f"{conn.label}: {text}")
        self.transcript.add(conn.label, "event", "problem", text)

    async def _received(self, conn: ClientConn, text: str) -> None:
        at = self.transcript.now()
        problems: list[str] = []
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            problems.append("not a JSON object")
        else:
            refused = self.validator.check_client_message(message)
            if refused is not None:
                where = f" at {refused.pointer}" if refused.pointer else ""
                problems.append(f"{refused.code}{where}: {refused.message}")
            message_id = message.get("id")
            if isinstance(message_id, str):
                if message_id in conn.ids:
                    problems.append(f"id {message_id!r} was already used on this connection")
                conn.ids.add(message_id)
        self.transcript.add(conn.label, "received", "text", text, tuple(problems), at=at)
        for problem in problems:
            self.violations.append(f"{conn.label}: {problem}; the message: {text[:300]}")
        if not isinstance(message, dict):
            return
        conn.received.append((at, message))
        conn.arrived.set()
        if conn.auto_pong and message.get("type") == "ping" and not problems:
            payload = message.get("payload") or {}
            pong = {"timestamp": int(time.time() * 1000)}
            if isinstance(payload.get("timestamp"), int):
                pong["echo"] = payload["timestamp"]
            await conn.send("pong", pong, str(message.get("id")))
            return
        await conn.inbox.put((at, message))

    async def _sse(self, request: web.Request) -> web.StreamResponse:
        handshake = self._handshake(request, "sse")
        script = self.sse_script
        if script is None:
            return web.Response(status=404, text="no SSE stream in this scenario")
        response = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        with contextlib.suppress(ConnectionError, RuntimeError, asyncio.CancelledError):
            await script(response, handshake)
        return response

    async def _control(self, request: web.Request) -> web.StreamResponse:
        if self.control_handler is None:
            return web.Response(status=503)
        return await self.control_handler(request)
