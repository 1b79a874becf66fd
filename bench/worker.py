"""Load generators, one role per process: ``python -m bench.worker ROLE``.

Protocol on stdin/stdout, one JSON object per line: the first line holds the role's
parameters; the worker sets up (connects, authenticates, joins), answers ``{"ready": ...}``,
then answers each ``{"cmd": "run", ...}`` with the figures of one measurement window,
until ``{"cmd": "quit"}`` or end of input. Logs go to stderr. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from bench.procs import raise_nofile_limit
from reference_server.auth import mint_token

SUBPROTOCOL = "rep.v1"
CLIENT_TIMESTAMP = "2026-11-26T12:00:00.000Z"
SETUP_TIMEOUT = 120.0
DRAIN_TIMEOUT = 10.0
JOINS_IN_FLIGHT = 32
SEQ_PATTERN = re.compile(rb'"bench_seq":(\d+)')

Handler = Callable[[str], Awaitable[None]]


async def _ignore(data: str) -> None:
    return None


def percentile_us(samples: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of latencies in seconds, as microseconds."""
    if not samples:
        return None
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index] * 1e6


def auth_headers(
    params: dict[str, Any], user: str, roles: tuple[str, ...] = ("user",)
) -> dict[str, str]:
    """A token per user when the target authenticates; raw baselines ignore the header."""
    secret = params.get("secret")
    if not secret:
        return {}
    return {"Authorization": f"Bearer {mint_token(secret, user, roles)}"}


class Conn:
    """One WebSocket with a reader task that hands every text frame to ``handler``."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.handler: Handler = _ignore
        self.first: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            if frame.type is aiohttp.WSMsgType.TEXT:
                if not self.first.done():
                    self.first.set_result(frame.data)
                    continue
                await self.handler(frame.data)

    @property
    def open(self) -> bool:
        return not self.ws.closed and not self.reader.done()

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(orjson.dumps(message).decode())


async def connect_all(
    session: aiohttp.ClientSession,
    url: str,
    headers: list[dict[str, str]],
    *,
    welcome: bool,
    concurrency: int = 64,
) -> list[Conn]:
    """Open one connection per header set; with ``welcome``, wait for the server's first
    message (the auth welcome) on each, so setup ends with every client authenticated."""
    gate = asyncio.Semaphore(concurrency)

    async def one(header: dict[str, str]) -> Conn:
        async with gate:
            ws = await session.ws_connect(
                url, headers=header, protocols=(SUBPROTOCOL,), autoping=True, max_msg_size=0
            )
            conn = Conn(ws)
            if welcome:
                await asyncio.wait_for(asyncio.shield(conn.first), SETUP_TIMEOUT)
            else:
                conn.first.set_result("")
            return conn

    async with asyncio.timeout(SETUP_TIMEOUT + len(headers) * 0.05):
        return list(await asyncio.gather(*(one(h) for h in headers)))


def new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=False))


# --------------------------------------------------------------------------- ping/pong


@dataclass
class PingPong:
    """``connections`` clients, each keeping up to ``in_flight`` pings unanswered."""

    params: dict[str, Any]
    conns: list[Conn] = field(default_factory=list)
    session: aiohttp.ClientSession | None = None

    async def setup(self) -> dict[str, Any]:
        self.session = new_session()
        count = int(self.params["connections"])
        headers = [auth_headers(self.params, f"pp-{i}") for i in range(count)]
        self.conns = await connect_all(
            self.session, self.params["url"], headers, welcome=self.params["welcome"]
        )
        return {"ready": True, "connections": len(self.conns)}

    async def run(self, command: dict[str, Any]) -> dict[str, Any]:
        in_flight = int(self.params["in_flight"])
        budget = itertools.count(int(command["max_messages"]), -1)
        deadline = time.perf_counter() + float(command["seconds"])
        latencies: list[float] = []
        ids = itertools.count(1)
        done = [asyncio.get_running_loop().create_future() for _ in self.conns]

        def bind(index: int, conn: Conn) -> Callable[[], Awaitable[None]]:
            pending: dict[str, float] = {}

            async def send() -> None:
                message_id = f"p{index}-{next(ids)}"
                pending[message_id] = time.perf_counter()
                await conn.send(
                    {
                        "id": message_id,
                        "type": "ping",
                        "timestamp": CLIENT_TIMESTAMP,
                        "payload": {"timestamp": int(time.time() * 1000)},
                    }
                )

            async def on_text(data: str) -> None:
                message = orjson.loads(data)
                correlation = (message.get("metadata") or {}).get("correlation_id")
                sent = pending.pop(correlation, None) if isinstance(correlation, str) else None
                if sent is None:
                    return  # a heartbeat or anything else that is not our pong
                now = time.perf_counter()
                latencies.append(now - sent)
                if now < deadline and next(budget) > 0:
                    await send()
                elif not pending and not done[index].done():
                    done[index].set_result(now)

            async def start() -> None:
                for _ in range(in_flight):
                    if next(budget) > 0:
                        await send()
                if not pending:
                    done[index].set_result(time.perf_counter())

            conn.handler = on_text
            return start

        starters = [bind(i, conn) for i, conn in enumerate(self.conns)]
        began = time.perf_counter()
        await asyncio.gather(*(start() for start in starters))
        async with asyncio.timeout(float(command["seconds"]) + DRAIN_TIMEOUT):
            ends = await asyncio.gather(*done)
        elapsed = max(ends) - began
        for conn in self.conns:
            conn.handler = _ignore
        return {
            "messages": len(latencies),
            "elapsed": elapsed,
            "p50_us": percentile_us(latencies, 0.50),
            "p99_us": percentile_us(latencies, 0.99),
        }

    async def close(self) -> None:
        await close_all(self.conns, self.session)


async def close_all(conns: list[Conn], session: aiohttp.ClientSession | None) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(10):
            await asyncio.gather(*(c.ws.close() for c in conns), return_exceptions=True)
    for conn in conns:
        conn.reader.cancel()
    if session is not None:
        await session.close()


# --------------------------------------------------------------------------- fan-out


class Window:
    """Deliveries of numbered messages to ``members`` receivers; at most ``size`` open."""

    def __init__(self, members: int, size: int) -> None:
        self.members = members
        self.gate = asyncio.Semaphore(size)
        self.sent: dict[int, float] = {}
        self.counts: dict[int, int] = {}
        self.latencies: list[float] = []
        self.completed = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def opened(self, seq: int) -> None:
        self.sent[seq] = time.perf_counter()
        self.counts[seq] = 0
        self.idle.clear()

    def delivered(self, seq: int) -> None:
        sent = self.sent.get(seq)
        if sent is None:
            return
        self.latencies.append(time.perf_counter() - sent)
        self.counts[seq] += 1
        if self.counts[seq] == self.members:
            del self.sent[seq], self.counts[seq]
            self.completed += 1
            self.gate.release()
            if not self.sent:
                self.idle.set()

    async def drive(
        self, publish: Callable[[int], Awaitable[None]], seconds: float, limit: int
    ) -> dict[str, Any]:
        """Publish numbered messages for ``seconds`` (or ``limit`` messages), then drain."""
        began = time.perf_counter()
        deadline = began + seconds
        seq = 0
        while time.perf_counter() < deadline and seq < limit:
            async with asyncio.timeout(DRAIN_TIMEOUT):
                await self.gate.acquire()
            seq += 1
            self.opened(seq)
            await publish(seq)
        async with asyncio.timeout(DRAIN_TIMEOUT):
            await self.idle.wait()
        elapsed = time.perf_counter() - began
        return {
            "messages": self.completed,
            "deliveries": self.completed * self.members,
            "elapsed": elapsed,
            "p50_us": percentile_us(self.latencies, 0.50),
            "p99_us": percentile_us(self.latencies, 0.99),
        }


@dataclass
class FanOut:
    """One sender and ``members - 1`` other members of one room; every member, the sender
    included, receives each chat message (REP distributes the copy to the whole room)."""

    params: dict[str, Any]
    conns: list[Conn] = field(default_factory=list)
    session: aiohttp.ClientSession | None = None
    window: Window | None = None

    async def setup(self) -> dict[str, Any]:
        self.session = new_session()
        count = int(self.params["members"])
        headers = [auth_headers(self.params, f"fan-{i}") for i in range(count)]
        welcome = self.params["welcome"]
        sender = await connect_all(self.session, self.params["url"], headers[:1], welcome=welcome)
        member_url = self.params.get("member_url") or self.params["url"]
        others = await connect_all(self.session, member_url, headers[1:], welcome=welcome)
        self.conns = sender + others
        for conn in self.conns:
            conn.handler = self.on_text
        if self.params.get("join"):
            gate = asyncio.Semaphore(JOINS_IN_FLIGHT)
            await asyncio.gather(*(self._join(i, conn, gate) for i, conn in enumerate(self.conns)))
        return {"ready": True, "members": len(self.conns)}

    async def _join(self, index: int, conn: Conn, gate: asyncio.Semaphore) -> None:
        """Join, a few at a time: each join announces itself to everyone already in the room,
        so a member's queue grows by at most the number of joins in flight."""
        async with gate:
            await self._join_one(index, conn)

    async def _join_one(self, index: int, conn: Conn) -> None:
        answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        join_id = f"join-{index}"

        async def on_text(data: str) -> None:
            message = orjson.loads(data)
            if (message.get("metadata") or {}).get("correlation_id") == join_id:
                if message["type"] != "room_join_response":
                    answered.set_exception(RuntimeError(f"join refused: {message}"))
                elif not answered.done():
                    answered.set_result(None)

        conn.handler = on_text
        payload = {"roomId": self.params["room"]}
        await conn.send(
            {"id": join_id, "type": "room_join", "timestamp": CLIENT_TIMESTAMP, "payload": payload}
        )
        await asyncio.wait_for(answered, SETUP_TIMEOUT)
        conn.handler = self.on_text

    async def on_text(self, data: str) -> None:
        window = self.window
        if window is None:
            return  # user_join notices and anything else outside a window
        message = orjson.loads(data)
        correlation = (message.get("metadata") or {}).get("correlation_id") or ""
        if correlation.startswith("fan-"):
            window.delivered(int(correlation[4:]))

    async def run(self, command: dict[str, Any]) -> dict[str, Any]:
        sender = self.conns[0]
        room = self.params["room"]
        self.window = Window(len(self.conns), int(command["window"]))

        async def publish(seq: int) -> None:
            await sender.send(
                {
                    "id": f"fan-{seq}",
                    "type": "chat_message",
                    "timestamp": CLIENT_TIMESTAMP,
                    "payload": {"roomId": room, "content": f"hello <b>room</b> {seq}"},
                }
            )

        try:
            return await self.window.drive(
                publish, float(command["seconds"]), int(command["max_messages"])
            )
        finally:
            self.window = None

    async def close(self) -> None:
        await close_all(self.conns, self.session)


# --------------------------------------------------------------------------- SSE


@dataclass
class SseFanOut:
    """``subscribers`` text/event-stream readers of one stream; a publisher POSTs events."""

    params: dict[str, Any]
    session: aiohttp.ClientSession | None = None
    readers: list[asyncio.Task[None]] = field(default_factory=list)
    window: Window | None = None

    async def setup(self) -> dict[str, Any]:
        self.session = new_session()
        count = int(self.params["subscribers"])
        url = f"{self.params['base_url']}/events?channels={self.params['stream']}"
        opened = [asyncio.get_running_loop().create_future() for _ in range(count)]
        gate = asyncio.Semaphore(64)
        for index in range(count):
            headers = auth_headers(self.params, f"sse-{index}")
            self.readers.append(asyncio.create_task(self._read(url, headers, gate, opened[index])))
        async with asyncio.timeout(SETUP_TIMEOUT):
            await asyncio.gather(*opened)
        return {"ready": True, "subscribers": count}

    async def _read(
        self,
        url: str,
        headers: dict[str, str],
        gate: asyncio.Semaphore,
        opened: asyncio.Future[None],
    ) -> None:
        assert self.session is not None
        try:
            async with gate:
                response = await self.session.get(
                    url, headers=headers, timeout=aiohttp.ClientTimeout(total=None)
                )
                if response.status != 200:
                    raise RuntimeError(f"GET /events answered {response.status}")
                first = await response.content.readuntil(b"\n\n")  # retry: or first event
                if not first:
                    raise RuntimeError("event stream ended at once")
            opened.set_result(None)
            async with response:
                buffer = b""
                while True:
                    chunk = await response.content.readany()
                    if not chunk:
                        return
                    buffer += chunk
                    *events, buffer = buffer.split(b"\n\n")
                    window = self.window
                    if window is None:
                        continue
                    for event in events:
                        found = SEQ_PATTERN.search(event)
                        if found:
                            window.delivered(int(found.group(1)))
        except Exception as exc:
            if not opened.done():
                opened.set_exception(exc)
            raise

    async def run(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.session is not None
        session = self.session
        url = f"{self.params['base_url']}/streams/{self.params['stream']}/events"
        headers = auth_headers(self.params, "publisher", ("admin",))
        self.window = Window(len(self.readers), int(command["window"]))

        async def publish(seq: int) -> None:
            body = {"type": "tick", "tags": ["bench"], "data": {"bench_seq": seq}}
            async with session.post(url, json=body, headers=headers) as answer:
                if answer.status != 201:
                    raise RuntimeError(f"publish answered {answer.status}: {await answer.text()}")

        try:
            return await self.window.drive(
                publish, float(command["seconds"]), int(command["max_messages"])
            )
        finally:
            self.window = None

    async def close(self) -> None:
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        if self.session is not None:
            await self.session.close()


# --------------------------------------------------------------------------- idle


@dataclass
class Idle:
    """``connections`` authenticated WebSockets that, once open, say nothing."""

    params: dict[str, Any]
    conns: list[Conn] = field(default_factory=list)
    session: aiohttp.ClientSession | None = None

    async def setup(self) -> dict[str, Any]:
        raise_nofile_limit()
        self.session = new_session()
        first = int(self.params.get("first_user", 0))
        count = int(self.params["connections"])
        headers = [auth_headers(self.params, f"idle-{first + i}") for i in range(count)]
        self.conns = await connect_all(
            self.session, self.params["url"], headers, welcome=self.params["welcome"]
        )
        return {"ready": True, "connections": len(self.conns)}

    async def run(self, command: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(float(command.get("seconds", 0)))
        return {"open": sum(1 for conn in self.conns if conn.open)}

    async def close(self) -> None:
        await close_all(self.conns, self.session)


ROLES = {"pingpong": PingPong, "fanout": FanOut, "sse": SseFanOut, "idle": Idle}


async def _serve(role: str) -> None:
    loop = asyncio.get_running_loop()

    async def read() -> dict[str, Any] | None:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        return json.loads(line) if line.strip() else None

    def answer(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    params = await read()
    if params is None:
        return
    worker = ROLES[role](params)
    try:
        answer(await worker.setup())
        while (command := await read()) is not None and command.get("cmd") == "run":
            answer(await worker.run(command))
    except Exception as exc:
        answer({"error": f"{type(exc).__name__}: {exc}"})
        raise
    finally:
        await worker.close()


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ROLES:
        print(f"usage: python -m bench.worker {{{','.join(ROLES)}}}", file=sys.stderr)
        return 2
    try:
        import uvloop  # a faster client loop keeps the load generator off the critical path
    except ImportError:
        asyncio.run(_serve(argv[0]))
    else:
        uvloop.run(_serve(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
