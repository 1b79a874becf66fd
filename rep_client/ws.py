"""The WebSocket client: one supervised connection that outlives its transports.

``RepClient`` keeps what the application asked for (rooms, stream subscriptions, a
token) apart from the connection of the moment, so that a reconnect can restore it
(CLIENT-015). A supervisor task owns the connection's life: it reads, watches the
heartbeat, and on a loss applies the close-code table and the backoff schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Origin, Subprotocol

from rep_client.backoff import Backoff
from rep_client.errors import ClientError, NotConnected, RequestFailed, RequestTimeout
from rep_client.messages import (
    IdSource,
    answer_kind,
    correlation_id,
    envelope,
    is_known_type,
    is_retryable,
    reconnect_rule,
)

log = logging.getLogger("rep_client")

TokenMode = Literal["header", "query", "cookie"]
Handler = Callable[[dict[str, Any]], Awaitable[None] | None]
Listener = Callable[..., Awaitable[None] | None]

#: Events a listener can follow with :meth:`RepClient.on_event`.
EVENTS = ("connected", "disconnected", "reconnecting", "gave_up", "token_needed")
SUBPROTOCOL = Subprotocol("rep.v1")
#: How many delivered event ids per stream, and timed-out request ids, are remembered.
MEMORY = 4096


class HandshakeRefused(ClientError):
    """The server refused the handshake (HTTP status) or sent no welcome."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


@dataclass
class _Pending:
    future: asyncio.Future[dict[str, Any]]
    type_name: str


@dataclass
class Subscription:
    """A stream subscription as the application asked for it, and how far it got."""

    stream_id: str
    filter: dict[str, Any] | None
    handler: Handler | None
    last_event_id: str | None = None
    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def first_time(self, event_id: str) -> bool:
        """Record the id; False when it was delivered before (CLIENT-016)."""
        if event_id in self.seen:
            return False
        self.seen[event_id] = None
        while len(self.seen) > MEMORY:
            self.seen.popitem(last=False)
        return True


class RepClient:
    """A REP 1.0 WebSocket client with reconnection, resumption and request timeouts.

    ``token_mode`` says where the token goes: the Authorization header (the default, as
    SEC-002 prefers), the ``token`` query parameter, or the ``token`` cookie (browsers;
    the server then checks ``origin``).
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        token_mode: TokenMode = "header",
        origin: str | None = None,
        backoff: Backoff | None = None,
        request_timeout_s: float = 30.0,
        handshake_timeout_s: float = 10.0,
        ping_when_idle: bool = True,
    ) -> None:
        self.url = url
        self._token = token
        self.token_mode = token_mode
        self.origin = origin
        self.backoff = backoff or Backoff()
        self.request_timeout_s = request_timeout_s
        self.handshake_timeout_s = handshake_timeout_s
        self.ping_when_idle = ping_when_idle
        self.welcome: dict[str, Any] | None = None
        self.rooms: dict[str, str | None] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self._ids = IdSource()
        self._handlers: dict[str, list[Handler]] = {}
        self._listeners: dict[str, list[Listener]] = {}
        self._pending: dict[str, _Pending] = {}
        self._expired: OrderedDict[str, str] = OrderedDict()
        self._ws: ClientConnection | None = None
        self._open = asyncio.Event()
        self._stopping = asyncio.Event()
        self._token_changed = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._hold_until = 0.0
        self._last_received = 0.0
        self._last_sent = 0.0
        self._retry_after_s = 0.0
        self._silent_loss = False
        self._supervisor: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # -- the application's side ---------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._open.is_set()

    @property
    def token(self) -> str:
        return self._token

    def set_token(self, token: str) -> None:
        """A new token: used by the next handshake; after 4001 it allows the reconnect."""
        self._token = token
        self._token_changed.set()

    def on(self, type_name: str, handler: Handler) -> None:
        """Call ``handler(message)`` for every server message of this type ("*": any type)."""
        self._handlers.setdefault(type_name, []).append(handler)

    def on_event(self, event: str, listener: Listener) -> None:
        """Follow the connection: connected(welcome), disconnected(code, reason),
        reconnecting(attempt, delay_s), gave_up(reason), token_needed()."""
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; one of {', '.join(EVENTS)}")
        self._listeners.setdefault(event, []).append(listener)

    async def connect(self) -> dict[str, Any]:
        """Open the first connection and return the welcome; later losses reconnect by
        themselves. Raises HandshakeRefused or OSError when the first attempt fails."""
        if self._supervisor is not None:
            raise ClientError("connect() was already called")
        ws, welcome = await self._handshake()
        self._supervisor = asyncio.create_task(self._supervise(ws, welcome))
        opened = asyncio.create_task(self._open.wait())
        await asyncio.wait({opened, self._supervisor}, return_when=asyncio.FIRST_COMPLETED)
        opened.cancel()
        return welcome

    async def send(
        self, type_name: str, payload: dict[str, Any], metadata: dict[str, Any] | None = None
    ) -> str:
        """Send without waiting for the answer; returns the message id."""
        message = envelope(self._ids, type_name, payload, metadata)
        await self._transmit(message)
        return str(message["id"])

    async def request(
        self,
        type_name: str,
        payload: dict[str, Any],
        *,
        timeout_s: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send and wait for the correlated answer (the whole message).

        Raises RequestFailed for an error answer, RequestTimeout when nothing correlated
        arrives in time (CLIENT-002), NotConnected when the connection is lost meanwhile.
        """
        if answer_kind(type_name) is None:
            raise ValueError(f"{type_name} is not answered; use send()")
        message = envelope(self._ids, type_name, payload, metadata)
        message_id = str(message["id"])
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = _Pending(future, type_name)
        timeout = self.request_timeout_s if timeout_s is None else timeout_s
        try:
            await self._transmit(message)
            try:
                return await asyncio.wait_for(future, timeout)
            except TimeoutError:
                self._expire(message_id, type_name)
                raise RequestTimeout(message_id, type_name, timeout) from None
        finally:
            self._pending.pop(message_id, None)

    async def join(self, room_id: str, password: str | None = None) -> dict[str, Any]:
        """Join a room; it is joined again after every reconnect until left."""
        payload: dict[str, Any] = {"roomId": room_id}
        if password is not None:
            payload["password"] = password
        answer = await self.request("room_join", payload)
        self.rooms[room_id] = password
        return answer

    async def leave(self, room_id: str) -> dict[str, Any]:
        self.rooms.pop(room_id, None)
        return await self.request("room_leave", {"roomId": room_id})

    async def subscribe(
        self,
        stream_id: str,
        handler: Handler | None = None,
        *,
        filter: dict[str, Any] | None = None,
        last_event_id: str | None = None,
    ) -> dict[str, Any]:
        """Subscribe to a stream; each event reaches ``handler`` (and ``on("stream_event")``)
        once, and a reconnect resumes after the last one delivered."""
        subscription = Subscription(stream_id, filter, handler, last_event_id)
        # Registered before the request: replayed events follow the response at once.
        self.subscriptions[stream_id] = subscription
        try:
            return await self.request("stream_subscribe", self._subscribe_payload(subscription))
        except ClientError:
            self.subscriptions.pop(stream_id, None)
            raise

    async def unsubscribe(self, stream_id: str) -> dict[str, Any]:
        self.subscriptions.pop(stream_id, None)
        return await self.request("stream_unsubscribe", {"streamId": stream_id})

    async def close(self, reason: str = "client closing") -> None:
        """End the session: disconnect, then no reconnect (CLIENT-013)."""
        self._stopping.set()
        ws = self._ws
        if ws is not None and self.connected:
            with contextlib.suppress(ClientError, ConnectionClosed, OSError):
                await self.request("disconnect", {"reason": reason}, timeout_s=5.0)
            with contextlib.suppress(ConnectionClosed, OSError):
                await ws.close(1000, reason)
        if self._supervisor is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._supervisor, 10.0)
        for task in list(self._background):
            task.cancel()

    # -- connection life ------------------------------------------------------------------

    def _target(self) -> tuple[str, dict[str, str]]:
        headers: dict[str, str] = {}
        url = self.url
        if self.token_mode == "header":
            headers["Authorization"] = f"Bearer {self._token}"
        elif self.token_mode == "cookie":
            headers["Cookie"] = f"token={self._token}"
        else:
            parts = urlsplit(url)
            query = "&".join(q for q in (parts.query, urlencode({"token": self._token})) if q)
            url = urlunsplit(parts._replace(query=query))
        return url, headers

    async def _handshake(self) -> tuple[ClientConnection, dict[str, Any]]:
        url, headers = self._target()
        try:
            ws = await ws_connect(
                url,
                additional_headers=headers,
                origin=Origin(self.origin) if self.origin else None,
                subprotocols=[SUBPROTOCOL],
                open_timeout=self.handshake_timeout_s,
                # REP's own heartbeat and ping judge liveness; WebSocket pings do not
                # count for the server (LIFE-004), so none are sent.
                ping_interval=None,
                close_timeout=2.0,
                max_size=None,
                proxy=None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise HandshakeRefused(f"handshake refused with HTTP {status}", status) from None
        except InvalidHandshake as exc:
            raise HandshakeRefused(f"handshake failed: {exc}") from None
        try:
            first = await asyncio.wait_for(ws.recv(), self.handshake_timeout_s)
            welcome = json.loads(first)
            payload = welcome.get("payload") if isinstance(welcome, dict) else None
            if welcome.get("type") != "auth" or not isinstance(payload, dict):
                raise HandshakeRefused(f"the first message is not a welcome: {first!r:.200}")
        except (TimeoutError, ConnectionClosed, ValueError, AttributeError) as exc:
            await ws.close()
            raise HandshakeRefused(f"no welcome: {exc!r}") from None
        except HandshakeRefused:
            await ws.close()
            raise
        return ws, payload

    async def _supervise(self, ws: ClientConnection, welcome: dict[str, Any]) -> None:
        restore = False
        while True:
            code, reason = await self._session(ws, welcome, restore)
            await self._emit("disconnected", code, reason)
            if self._stopping.is_set():
                return
            rule = "backoff" if self._silent_loss else reconnect_rule(code)
            if rule == "never":
                await self._emit("gave_up", f"closed with code {code}: no reconnect")
                return
            if rule == "new_token" and not await self._new_token():
                return
            opened = await self._reconnect()
            if opened is None:
                return
            ws, welcome = opened
            restore = True

    async def _session(
        self, ws: ClientConnection, welcome: dict[str, Any], restore: bool
    ) -> tuple[int | None, str]:
        """Serve one connection until it ends; return the close code received (None when
        the transport dropped without a close frame) and its reason."""
        self._ws, self.welcome = ws, welcome
        self._hold_until = 0.0
        self._silent_loss = False
        self._last_received = self._last_sent = time.monotonic()
        interval_s = float(welcome.get("heartbeatIntervalMs", 30000)) / 1000
        self._open.set()
        reader = asyncio.create_task(self._read(ws))
        watchdog = asyncio.create_task(self._watch(ws, interval_s))
        try:
            if restore:
                await self._restore()
            if not reader.done():
                await self._emit("connected", welcome)
            return await reader
        finally:
            self._open.clear()
            self._ws = None
            watchdog.cancel()
            for pending in list(self._pending.values()):
                if not pending.future.done():
                    pending.future.set_exception(NotConnected("the connection was lost"))

    async def _new_token(self) -> bool:
        """After 4001: wait until the application gives another token (CLIENT-012)."""
        old = self._token
        self._token_changed.clear()
        await self._emit("token_needed")
        while self._token == old:
            if await self._wait_or_stop(self._token_changed.wait()):
                return False
            self._token_changed.clear()
        return True

    async def _reconnect(self) -> tuple[ClientConnection, dict[str, Any]] | None:
        """Attempts on the backoff schedule until one reaches the welcome, or give up."""
        floor, self._retry_after_s = self._retry_after_s, 0.0
        failed = 0
        while True:
            attempt = failed + 1
            delay = self.backoff.delay(attempt)
            if attempt == 1:
                delay = max(delay, floor)  # CLIENT-014
            await self._emit("reconnecting", attempt, delay)
            if await self._wait_or_stop(asyncio.sleep(delay)):
                return None
            try:
                return await self._handshake()
            except (HandshakeRefused, OSError, TimeoutError) as exc:
                failed += 1
                log.info("reconnection attempt %d failed: %s", attempt, exc)
                if self.backoff.exhausted(failed):
                    await self._emit("gave_up", f"{failed} consecutive attempts failed")
                    return None

    async def _wait_or_stop(self, awaitable: Awaitable[Any]) -> bool:
        """Wait for ``awaitable``; True when close() was called first."""
        stop = asyncio.ensure_future(self._stopping.wait())
        work = asyncio.ensure_future(awaitable)
        await asyncio.wait({stop, work}, return_when=asyncio.FIRST_COMPLETED)
        stopped = stop.done()
        stop.cancel()
        work.cancel()
        return stopped

    async def _restore(self) -> None:
        """Rooms and subscriptions of the lost connection, in the order they were made."""
        for room_id, password in list(self.rooms.items()):
            payload: dict[str, Any] = {"roomId": room_id}
            if password is not None:
                payload["password"] = password
            try:
                await self.request("room_join", payload)
            except ClientError as exc:
                log.warning("could not rejoin room %s: %s", room_id, exc)
        for subscription in list(self.subscriptions.values()):
            try:
                await self.request("stream_subscribe", self._subscribe_payload(subscription))
            except ClientError as exc:
                log.warning("could not resubscribe to %s: %s", subscription.stream_id, exc)

    @staticmethod
    def _subscribe_payload(subscription: Subscription) -> dict[str, Any]:
        payload: dict[str, Any] = {"streamId": subscription.stream_id}
        if subscription.filter:
            payload["filter"] = subscription.filter
        if subscription.last_event_id is not None:
            payload["lastEventId"] = subscription.last_event_id
        return payload

    async def _watch(self, ws: ClientConnection, interval_s: float) -> None:
        """CLIENT-008: two silent intervals mean the server is gone; LIFE-005: ping when idle."""
        tick = max(interval_s / 8, 0.01)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if now - self._last_received > 2 * interval_s:
                self._silent_loss = True
                log.info("no message for %.1f s: the connection is lost", 2 * interval_s)
                with contextlib.suppress(TimeoutError, ConnectionClosed, OSError):
                    await asyncio.wait_for(ws.close(1000, "server silent"), interval_s / 2)
                ws.transport.abort()
                return
            if self.ping_when_idle and now - self._last_sent >= interval_s and not self._holding():
                self._last_sent = now
                self._spawn(self._ping())

    async def _ping(self) -> None:
        with contextlib.suppress(ClientError, ConnectionClosed, OSError):
            await self.request("ping", {"timestamp": int(time.time() * 1000)})

    def _holding(self) -> bool:
        return time.monotonic() < self._hold_until

    # -- traffic ----------------------------------------------------------------------------

    async def _transmit(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            # CLIENT-017: nothing leaves before a rate_limited error's retry_after_ms.
            # The hold only grows while waiting (a later error extends it), so one sleep
            # per extension suffices; bounded by the number of rate_limited errors.
            while (wait := self._hold_until - time.monotonic()) > 0:  # noqa: ASYNC110
                await asyncio.sleep(wait)
            ws = self._ws
            if ws is None or not self.connected:
                raise NotConnected("not connected")
            try:
                await ws.send(json.dumps(message, ensure_ascii=False))
            except ConnectionClosed:
                raise NotConnected("the connection was lost") from None
            self._last_sent = time.monotonic()

    def _expire(self, message_id: str, type_name: str) -> None:
        self._expired[message_id] = type_name
        while len(self._expired) > MEMORY:
            self._expired.popitem(last=False)

    async def _read(self, ws: ClientConnection) -> tuple[int | None, str]:
        try:
            async for raw in ws:
                self._last_received = time.monotonic()
                if not isinstance(raw, str):
                    continue
                try:
                    message = json.loads(raw)
                except ValueError:
                    log.warning("a frame that is not JSON: %.200r", raw)
                    continue
                if isinstance(message, dict):
                    await self._dispatch(message)
        except ConnectionClosed:
            pass
        received = ws.protocol.close_rcvd
        if received is None:
            return None, ""
        return received.code, received.reason

    async def _dispatch(self, message: dict[str, Any]) -> None:
        type_name = message.get("type")
        if not is_known_type(type_name):
            log.info("ignoring a message of unknown type %.64r", type_name)  # CLIENT-005
            return
        payload = message.get("payload")
        payload = payload if isinstance(payload, dict) else {}
        answered = correlation_id(message)
        if type_name == "heartbeat":
            return  # activity only; never answered (CLIENT-007)
        if type_name == "disconnect" and isinstance(payload.get("retryAfterMs"), int):
            self._retry_after_s = payload["retryAfterMs"] / 1000
        if type_name == "error":
            if payload.get("code") == "rate_limited":
                retry_after = payload.get("retry_after_ms")
                if isinstance(retry_after, int | float) and retry_after > 0:
                    self._hold_until = max(self._hold_until, time.monotonic() + retry_after / 1000)
            pending = self._pending.get(answered) if answered else None
            if pending is not None:
                if not pending.future.done():
                    retryable = is_retryable(payload.get("code"))
                    pending.future.set_exception(RequestFailed(answered or "", payload, retryable))
                return
            if answered in self._expired:
                return
        elif answered is not None:
            pending = self._pending.get(answered)
            late = self._expired.get(answered)
            if pending is not None and not pending.future.done():
                pending.future.set_result(message)
            kind = answer_kind(pending.type_name if pending else late or "")
            if (pending is not None or late is not None) and kind == "response":
                return  # a response belongs to its request only; a copy is also news
        if type_name == "stream_event":
            subscription = self.subscriptions.get(str(payload.get("streamId")))
            if subscription is not None:
                if not self._first_delivery(subscription, payload):
                    return
                if subscription.handler is not None:
                    await self._call(subscription.handler, message)
        for handler in (*self._handlers.get(str(type_name), ()), *self._handlers.get("*", ())):
            await self._call(handler, message)

    @staticmethod
    def _first_delivery(subscription: Subscription, payload: dict[str, Any]) -> bool:
        event = payload.get("event")
        event_id = event.get("id") if isinstance(event, dict) else None
        if not isinstance(event_id, str):
            return True
        if not subscription.first_time(event_id):
            return False  # CLIENT-016
        subscription.last_event_id = event_id
        return True

    async def _call(self, handler: Callable[..., Any], *args: Any) -> None:
        try:
            result = handler(*args)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("handler %r failed", handler)

    async def _emit(self, event: str, *args: Any) -> None:
        for listener in self._listeners.get(event, ()):
            await self._call(listener, *args)

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


__all__ = ["EVENTS", "HandshakeRefused", "RepClient", "Subscription", "TokenMode"]
