"""A reference server that tests can stop and start again on the same port, and a TCP
proxy that can cut every connection through it (a dropped transport, no close frame)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from typing import Any

from aiohttp import web

from reference_server.auth import mint_token
from reference_server.config import ServerConfig, parse_config
from reference_server.transport.app import create_app

CONFIG: dict[str, Any] = {
    "heartbeat_interval_ms": 1000,
    "streams": [{"id": "prices", "buffer_size": 100, "retention_ms": 600_000}],
}


class RestartableServer:
    """The reference server in its own thread; ``restart`` shuts it down as rep-server does
    (disconnect + 1001, LIFE-007) and serves again on the same port with fresh state."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or parse_config(CONFIG)
        self.secret = secrets.token_urlsafe(32)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = 0
        self.runner: web.AppRunner | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, user: str, *permissions: str, ttl_seconds: int = 3600) -> str:
        return mint_token(self.secret, user, permissions=permissions, ttl_seconds=ttl_seconds)

    def _call(self, coroutine: Any, timeout: float = 20) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def start(self) -> None:
        async def start() -> int:
            app = create_app(self.config, self.secret)
            runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
            await site.start()
            self.runner = runner
            server = site._server
            assert isinstance(server, asyncio.base_events.Server)
            return int(server.sockets[0].getsockname()[1])

        self.port = self._call(start())

    def stop(self) -> None:
        if self.runner is not None:
            self._call(self.runner.cleanup())
            self.runner = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()


class CuttableProxy:
    """Forwards loopback TCP to ``port``; ``cut()`` aborts every connection at once."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._writers -= {writer, up_writer}

    def cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
