"""The SSE client: resume with Last-Event-ID (CLIENT-018), honour ``retry`` (CLIENT-019).

Built on aiohttp-sse-client's ``EventSource`` for the request and the event-stream
parsing. Its own reconnection cannot do what the specification needs, so this module
replaces that part: after a stream ends it doubles the ``retry`` value before the first
reconnect and on every further one, without a cap, without jitter and without a limit of
attempts, and a failed reconnect from inside its iterator ends the iteration with an
exception. Here each ``EventSource`` serves exactly one stream: when the stream ends the
client stops it before it reconnects by itself, then opens the next one on the backoff
schedule, with the ``retry`` value as the smallest delay and the last event id as
``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
from aiohttp_sse_client.client import EventSource

from rep_client.backoff import Backoff
from rep_client.ws import TokenMode

log = logging.getLogger("rep_client.sse")

#: The reconnection time before a stream has sent ``retry`` (the EventSource default).
DEFAULT_RETRY_S = 3.0
EVENTS = ("connected", "disconnected", "reconnecting", "gave_up")


@dataclass(frozen=True)
class SseEvent:
    """One event: its SSE event name, the id (a cursor over the channels), the data as JSON."""

    type: str
    id: str
    data: Any


SseHandler = Callable[[SseEvent], Awaitable[None] | None]


class SseClient:
    """Reads ``GET /events?channels=...`` and keeps reading it across losses."""

    def __init__(
        self,
        url: str,
        token: str,
        channels: list[str],
        *,
        token_mode: TokenMode = "header",
        backoff: Backoff | None = None,
        last_event_id: str | None = None,
        read_timeout_s: float = 60.0,
    ) -> None:
        self.url = url
        self.token = token
        self.channels = list(channels)
        self.token_mode = token_mode
        self.backoff = backoff or Backoff()
        self.last_event_id = last_event_id
        self.retry_s = DEFAULT_RETRY_S
        self.read_timeout_s = read_timeout_s
        self._handlers: dict[str, list[SseHandler]] = {}
        self._listeners: dict[str, list[Callable[..., Any]]] = {}
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def on(self, event_type: str, handler: SseHandler) -> None:
        """Call ``handler(event)`` for events of this name ("*": every event)."""
        self._handlers.setdefault(event_type, []).append(handler)

    def on_event(self, event: str, listener: Callable[..., Any]) -> None:
        """connected(), disconnected(reason), reconnecting(attempt, delay_s), gave_up(reason)."""
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; one of {', '.join(EVENTS)}")
        self._listeners.setdefault(event, []).append(listener)

    async def start(self) -> None:
        """Open the first stream (raises when it fails) and keep reading in the background."""
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_read=self.read_timeout_s)
        )
        try:
            source = await self._open(session)
        except BaseException:
            await session.close()
            raise
        self._task = asyncio.create_task(self._run(session, source))

    async def close(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _target(self) -> tuple[str, dict[str, str]]:
        parts = urlsplit(self.url)
        query: dict[str, str] = {"channels": ",".join(self.channels)}
        headers: dict[str, str] = {}
        if self.token_mode == "header":
            headers["Authorization"] = f"Bearer {self.token}"
        elif self.token_mode == "cookie":
            headers["Cookie"] = f"token={self.token}"
        else:
            query["token"] = self.token
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id  # as received (CLIENT-018)
        url = urlunsplit(parts._replace(query=urlencode(query, safe=",")))
        return url, headers

    async def _open(self, session: aiohttp.ClientSession) -> EventSource:
        url, headers = self._target()
        source = EventSource(
            url,
            session=session,
            headers=headers,
            reconnection_time=timedelta(seconds=self.retry_s),
            max_connect_retry=0,
        )
        await source.connect(0)
        await self._emit("connected")
        return source

    async def _run(self, session: aiohttp.ClientSession, source: EventSource) -> None:
        try:
            while not self._stopping.is_set():
                reason = await self._read(source)
                await source.close()
                await self._emit("disconnected", reason)
                opened = await self._reconnect(session)
                if opened is None:
                    return
                source = opened
        finally:
            await source.close()
            await session.close()

    async def _read(self, source: EventSource) -> str:
        """Deliver events until the stream ends; say why it ended."""
        reader = asyncio.current_task()
        ended = False

        def stream_ended() -> None:
            # Called by EventSource when the stream ends, before it sleeps to reconnect by
            # itself: note the retry value in force, then stop it.
            nonlocal ended
            ended = True
            # EventSource keeps the last retry field only in this attribute.
            retry = getattr(source, "_reconnection_time", None)
            if isinstance(retry, timedelta):
                self.retry_s = retry.total_seconds()
            if reader is not None:
                reader.cancel()

        source._on_error = stream_ended
        try:
            async for message in source:
                self._note_retry(source)
                if message.last_event_id:
                    self.last_event_id = message.last_event_id
                await self._deliver(message.type or "message", message.last_event_id, message.data)
        except asyncio.CancelledError:
            if not ended or self._stopping.is_set():
                raise
            if reader is not None:
                reader.uncancel()
            return "the stream ended"
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            self._note_retry(source)
            return f"the stream failed: {exc!r}"
        return "the stream ended"

    def _note_retry(self, source: EventSource) -> None:
        retry = getattr(source, "_reconnection_time", None)
        if isinstance(retry, timedelta):
            self.retry_s = retry.total_seconds()

    async def _reconnect(self, session: aiohttp.ClientSession) -> EventSource | None:
        failed = 0
        while not self._stopping.is_set():
            attempt = failed + 1
            delay = max(self.retry_s, self.backoff.delay(attempt))  # CLIENT-019
            await self._emit("reconnecting", attempt, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return None
            try:
                return await self._open(session)
            except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
                failed += 1
                log.info("SSE reconnection attempt %d failed: %s", attempt, exc)
                if self.backoff.exhausted(failed):
                    await self._emit("gave_up", f"{failed} consecutive attempts failed")
                    return None
        return None

    async def _deliver(self, event_type: str, event_id: str, data: str) -> None:
        try:
            parsed: Any = json.loads(data)
        except ValueError:
            parsed = data
        event = SseEvent(event_type, event_id, parsed)
        for handler in (*self._handlers.get(event_type, ()), *self._handlers.get("*", ())):
            await self._call(handler, event)

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
