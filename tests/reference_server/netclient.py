"""A websockets client for loopback tests; every server message it reads is schema-checked."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection

from reference_server.auth import mint_token
from reference_server.testing import RunningServer
from tests.reference_server.harness import VALIDATOR, SchemaViolation

_ids = itertools.count(1)
# How long a test waits for a message it expects: generous, because CI machines are shared
# and busy. Waiting longer costs nothing when the message comes; silence is judged apart.
EXPECTED_WITHIN_S = 10.0


class Client:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.welcome: dict[str, Any] = {}

    async def send(self, message_type: str, payload: Any, **fields: Any) -> str:
        message = {
            "id": fields.pop("id", f"n{next(_ids)}"),
            "type": message_type,
            "timestamp": "2026-11-26T12:00:00Z",
            "payload": payload,
            **fields,
        }
        await self.ws.send(orjson.dumps(message).decode())
        return str(message["id"])

    async def recv(self, within: float = EXPECTED_WITHIN_S) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), within)
        message: dict[str, Any] = orjson.loads(raw)
        problem = VALIDATOR.check_server_message(message)
        if problem is not None:
            raise SchemaViolation(f"server sent an invalid message: {problem}: {message}")
        return message

    async def recv_type(
        self, message_type: str, within: float = EXPECTED_WITHIN_S
    ) -> dict[str, Any]:
        """Skip heartbeats; the next other message must be of ``message_type``."""
        while True:
            message = await self.recv(within)
            if message["type"] != "heartbeat":
                assert message["type"] == message_type, message
                return message

    async def silent(self, seconds: float = 0.2) -> bool:
        try:
            message = await self.recv(seconds)
        except TimeoutError:
            return True
        return message["type"] == "heartbeat" and await self.silent(seconds)


async def connect(
    server: RunningServer,
    user: str,
    roles: tuple[str, ...] = ("user",),
    permissions: tuple[str, ...] = (),
    **connect_kwargs: Any,
) -> Client:
    token = mint_token(server.secret, user, roles, permissions)
    ws = await websockets.connect(
        server.ws_url,
        additional_headers={"Authorization": f"Bearer {token}"},
        subprotocols=[websockets.Subprotocol("rep.v1")],
        **connect_kwargs,
    )
    client = Client(ws)
    client.welcome = await client.recv()
    assert client.welcome["type"] == "auth"
    return client
