"""The picows JSON-envelope echo: the fastest Python WebSocket server, for information."""

from __future__ import annotations

import asyncio

import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from bench.baselines.envelopes import Envelopes


class EchoListener(WSListener):
    def __init__(self, envelopes: Envelopes) -> None:
        self._envelopes = envelopes

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            message = orjson.loads(frame.get_payload_as_bytes())
            transport.send(WSMsgType.TEXT, orjson.dumps(self._envelopes.pong(message)))
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


async def _main(host: str, port: int) -> None:
    envelopes = Envelopes()

    def factory(request: WSUpgradeRequest) -> WSListener:
        return EchoListener(envelopes)

    server = await ws_create_server(factory, host, port)
    async with server:
        await server.serve_forever()


def serve(host: str, port: int) -> None:
    asyncio.run(_main(host, port))
