"""Run a reference server in a background thread, for tests that talk to it over loopback."""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from reference_server.broker.base import Broker
from reference_server.config import ServerConfig
from reference_server.core.server import ServerCore
from reference_server.transport.app import create_app
from reference_server.transport.runner import ReferenceAppRunner

CLEANUP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class RunningServer:
    host: str
    port: int
    secret: str
    app: web.Application
    loop: asyncio.AbstractEventLoop

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    @property
    def sse_url(self) -> str:
        return f"http://{self.host}:{self.port}/events"

    def call(self, coroutine: Any, timeout: float = 10) -> Any:
        """Run a coroutine on the server's loop (e.g. to inspect or stop it) and wait."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)


@contextmanager
def running_server(
    config: ServerConfig | None = None,
    core_class: type[ServerCore] = ServerCore,
    *,
    secret: str | None = None,
    broker: Broker | None = None,
    host: str = "127.0.0.1",
) -> Iterator[RunningServer]:
    """Start on a free port; on exit, shut down as ``rep-server`` does (LIFE-007)."""
    config = config or ServerConfig()
    secret = secret or secrets.token_urlsafe(32)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="rep-server", daemon=True)
    thread.start()

    async def start() -> tuple[web.AppRunner, int]:
        app = create_app(config, secret, broker=broker, core_factory=core_class)
        runner = ReferenceAppRunner(app, handle_signals=False, shutdown_timeout=2)
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        server = site._server
        assert server is not None and isinstance(server, asyncio.base_events.Server)
        return runner, server.sockets[0].getsockname()[1]

    try:
        runner, port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    except BaseException:  # e.g. BrokerUnavailable: stop the loop thread, then report it
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        raise
    try:
        yield RunningServer(host, port, secret, runner.app, loop)
    finally:
        _stop(runner, loop, thread)


def _stop(runner: web.AppRunner, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    """Shut down; if that hangs, cancel whatever still runs, so no thread outlives the test.

    A server thread left running keeps logging into streams the test runner has closed
    (``ValueError: I/O operation on closed file``) and keeps its sockets open.
    """
    try:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(CLEANUP_TIMEOUT_S)
    finally:

        async def cancel_everything() -> None:
            leftovers = asyncio.all_tasks(loop) - {asyncio.current_task(loop)}
            for task in leftovers:
                task.cancel()
            if leftovers:  # let the cancelled tasks unwind, within bounds
                await asyncio.wait(leftovers, timeout=CLEANUP_TIMEOUT_S)
            loop.stop()

        asyncio.run_coroutine_threadsafe(cancel_everything(), loop)
        thread.join(CLEANUP_TIMEOUT_S)
        if not thread.is_alive():
            loop.close()
