"""The conformance driver of the reference client: ``python -m rep_client.driver``.

``rep-conformance client`` starts it once per scenario. It connects to the kit's control
channel (``REP_CONTROL_URL``), does with a :class:`RepClient` or :class:`SseClient` what
the kit asks, and reports what the client tells its application. The protocol is in
``conformance/clientkit/control.py``; the client's configuration comes from the
environment the kit sets (REP_SERVER_URL, REP_SSE_URL, REP_TOKEN, REP_RECONNECT_BASE_MS,
REP_RECONNECT_CAP_MS, REP_RECONNECT_MAX_ATTEMPTS, REP_REQUEST_TIMEOUT_MS).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from rep_client.backoff import Backoff
from rep_client.errors import ClientError, RequestFailed, RequestTimeout
from rep_client.sse import SseClient, SseEvent
from rep_client.ws import RepClient


def _backoff() -> Backoff:
    return Backoff(
        base_s=int(os.environ.get("REP_RECONNECT_BASE_MS", "1000")) / 1000,
        cap_s=int(os.environ.get("REP_RECONNECT_CAP_MS", "30000")) / 1000,
        max_attempts=int(os.environ.get("REP_RECONNECT_MAX_ATTEMPTS", "5")),
    )


class Driver:
    def __init__(self, control: ClientConnection) -> None:
        self.control = control
        self.token = os.environ["REP_TOKEN"]
        self.client: RepClient | None = None
        self.sse: SseClient | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def report(self, event: str, **fields: Any) -> None:
        with contextlib.suppress(Exception):
            await self.control.send(json.dumps({"event": event, **fields}, default=str))

    def spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _client(self) -> RepClient:
        client = RepClient(
            os.environ["REP_SERVER_URL"],
            self.token,
            backoff=_backoff(),
            request_timeout_s=int(os.environ.get("REP_REQUEST_TIMEOUT_MS", "30000")) / 1000,
        )

        async def delivered(message: dict[str, Any]) -> None:
            await self.report("delivered", message=message)

        client.on("*", delivered)
        client.on_event("connected", lambda welcome: self.report("connected"))
        client.on_event("disconnected", lambda code, reason: self.report("disconnected", code=code))
        client.on_event(
            "reconnecting", lambda attempt, delay: self.report("reconnecting", attempt=attempt)
        )
        client.on_event("gave_up", lambda reason: self.report("gave_up", reason=reason))
        return client

    async def answer(self, ref: str, work: Any) -> None:
        try:
            message = await work
        except RequestTimeout:
            await self.report("failed", ref=ref, reason="timeout")
        except RequestFailed as exc:
            await self.report("failed", ref=ref, reason="error", code=exc.code)
        except ClientError as exc:
            await self.report("failed", ref=ref, reason="closed", detail=str(exc))
        else:
            await self.report("answer", ref=ref, message=message)

    async def send(self, client: RepClient, type_name: str, payload: dict[str, Any]) -> None:
        try:
            await client.send(type_name, payload)
        except ClientError as exc:
            await self.report("failed", ref="send", reason="closed", detail=str(exc))

    async def handle(self, command: dict[str, Any]) -> None:
        do = command.get("do")
        client = self.client
        if do == "connect":
            self.client = self._client()
            try:
                await self.client.connect()
            except (ClientError, OSError) as exc:
                await self.report("failed", ref="connect", reason="closed", detail=str(exc))
        elif do == "sse":
            self.sse = SseClient(
                os.environ["REP_SSE_URL"], self.token, list(command["channels"]), backoff=_backoff()
            )

            async def on_event(event: SseEvent) -> None:
                await self.report("sse", type=event.type, id=event.id, data=event.data)

            self.sse.on("*", on_event)
            await self.sse.start()
        elif client is None:
            await self.report("unsupported", do=do, detail="not connected")
        elif do == "request":
            work = client.request(
                command["type"], command["payload"], timeout_s=command["timeout_ms"] / 1000
            )
            self.spawn(self.answer(command["ref"], work))
        elif do == "send":
            self.spawn(self.send(client, command["type"], command["payload"]))
        elif do == "join":
            self.spawn(self.answer(command["ref"], client.join(command["room"])))
        elif do == "subscribe":
            self.spawn(self.answer(command["ref"], client.subscribe(command["stream"])))
        elif do == "disconnect":
            await client.close()
        else:
            await self.report("unsupported", do=do)

    async def run(self) -> None:
        await self.report("ready", client="rep_client")
        async for frame in self.control:
            command = json.loads(frame)
            if isinstance(command, dict):
                await self.handle(command)


async def main() -> int:
    async with connect(os.environ["REP_CONTROL_URL"], proxy=None) as control:
        driver = Driver(control)
        try:
            await driver.run()
        finally:
            if driver.client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(driver.client.close(), 5)
            if driver.sse is not None:
                await driver.sse.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
