"""A hand-driven WebSocket peer for the client's unit tests: it welcomes, then does only
what the test tells it to."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

WELCOME_PAYLOAD = {
    "status": "connected",
    "clientId": "c-1",
    "userId": "alice",
    "protocolVersion": "1.0",
    "heartbeatIntervalMs": 30000,
    "limits": {"maxMessageBytes": 65536, "rateLimit": {"windowMs": 60000, "maxMessages": 100}},
    "features": [],
}


def server_message(
    type_name: str, payload: dict[str, Any], correlation: str | None = None, **extra: Any
) -> str:
    metadata: dict[str, Any] = {"version": "1.0", "source": "server", **extra}
    if correlation is not None:
        metadata["correlation_id"] = correlation
    return json.dumps(
        {
            "id": f"s-{type_name}-{correlation}",
            "type": type_name,
            "timestamp": "2026-01-01T00:00:00Z",
            "payload": payload,
            "metadata": metadata,
        }
    )


class FakePeer:
    """Each accepted connection is welcomed and queued for the test."""

    def __init__(self, heartbeat_ms: int) -> None:
        self.connections: asyncio.Queue[ServerConnection] = asyncio.Queue()
        self.port = 0
        self.welcome = {**WELCOME_PAYLOAD, "heartbeatIntervalMs": heartbeat_ms}

    async def handler(self, ws: ServerConnection) -> None:
        await ws.send(server_message("auth", self.welcome))
        await self.connections.put(ws)
        await ws.wait_closed()


@asynccontextmanager
async def fake_peer(heartbeat_ms: int = 30000) -> AsyncIterator[FakePeer]:
    """A peer that never sends a heartbeat of its own."""
    peer = FakePeer(heartbeat_ms)
    async with serve(peer.handler, "127.0.0.1", 0) as server:
        peer.port = next(iter(server.sockets)).getsockname()[1]
        yield peer


async def next_message(ws: ServerConnection) -> dict[str, Any]:
    """The next client message (pings included), within five seconds."""
    raw = await asyncio.wait_for(ws.recv(), 5.0)
    message: dict[str, Any] = json.loads(raw)
    return message
