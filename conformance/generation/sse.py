"""A recording Server-Sent Events reader for the multi-step checks (GET /events).

Like :class:`conformance.client.Client` it reads on its own thread, timestamps each event
into the check's transcript, judges every envelope with the frame checker, and lets the
check wait (bounded) for what it expects. Event ``id`` fields are kept: the last one is
the cursor a reconnect sends as ``Last-Event-ID``.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from conformance.frames import server_message_violations
from conformance.transcript import Transcript, clip

Message = dict[str, Any]


@dataclass
class SseEvent:
    at: float
    event: str
    data: str
    id: str | None
    message: Message | None
    consumed: bool = False


class SseError(ConnectionError):
    """The request was refused or the response is not an event stream."""

    def __init__(self, status: int, body: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


class SseStream:
    """One open ``GET /events`` response and everything it delivered.

    ``channels`` None leaves the query parameter out; ``token`` None sends no token, and
    ``via`` places it in the Authorization header, the ``token`` query parameter or the
    ``token`` cookie. Response headers (lower-case names) are kept in ``headers``; the
    names of the first lines of the stream (``:`` for a comment) in ``opening``; the
    arrival time of every comment line in ``comments``.
    """

    def __init__(
        self,
        url: str,
        *,
        channels: Sequence[str] | None,
        token: str | None,
        transcript: Transcript,
        label: str,
        last_event_id: str | None = None,
        timeout: float = 5.0,
        via: str = "header",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.label = label
        self.transcript = transcript
        self.events: list[SseEvent] = []
        self.problems: list[tuple[tuple[str, ...], str]] = []
        self.last_id: str | None = None
        self.ended = False
        self.opening: list[str] = []
        self.comments: list[float] = []
        self._cond = threading.Condition()
        parts = urlsplit(url)
        query = {} if channels is None else {"channels": ",".join(channels)}
        if token is not None and via == "query":
            query["token"] = token
        path = (parts.path or "/events") + ("?" + urlencode(query) if query else "")
        send = {"Accept": "text/event-stream", **(headers or {})}
        if token is not None and via == "header":
            send["Authorization"] = f"Bearer {token}"
        elif token is not None and via == "cookie":
            send["Cookie"] = f"token={token}"
        if last_event_id is not None:
            send["Last-Event-ID"] = last_event_id
        shown = f"GET {path}" + (f" (Last-Event-ID {last_event_id})" if last_event_id else "")
        extra = [name for name in send if name not in ("Accept", "Last-Event-ID")]
        if extra:
            shown += f" with {', '.join(extra)}" + (f" (token via {via})" if token else "")
        transcript.add(label, "sent", "request", shown)
        factory = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        self._connection = factory(parts.netloc, timeout=timeout)
        self._connection.request("GET", path, headers=send)
        response = self._connection.getresponse()
        self.status = response.status
        self.headers = {k.lower(): v for k, v in response.getheaders()}
        content_type = response.getheader("Content-Type", "")
        if response.status != 200 or not content_type.startswith("text/event-stream"):
            body = response.read(2000).decode("utf-8", "replace")
            transcript.add(label, "received", "response", f"HTTP {response.status} {clip(body)}")
            self._connection.close()
            raise SseError(response.status, body, self.headers)
        transcript.add(label, "received", "response", f"HTTP 200 {content_type}")
        if self._connection.sock is not None:
            self._connection.sock.settimeout(None)  # idle streams are normal; close() ends it
        self._response = response
        self._reader = threading.Thread(target=self._read, name=f"rep-{label}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        data: list[str] = []
        try:
            while True:
                raw = self._response.readline()
                if not raw:
                    return
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line == "":
                    # As EventSource does: an id alone sets the cursor; only data dispatches.
                    if data:
                        self._dispatch(fields, "\n".join(data))
                    elif "id" in fields:
                        with self._cond:
                            self.last_id = fields["id"]
                    fields, data = {}, []
                    continue
                if line.startswith(":"):
                    with self._cond:
                        self.comments.append(self.transcript.now())
                        if len(self.opening) < 16:
                            self.opening.append(":")
                    continue
                name, _, value = line.partition(":")
                if len(self.opening) < 16:
                    self.opening.append(name)
                value = value.removeprefix(" ")
                if name == "data":
                    data.append(value)
                elif name in ("event", "id", "retry"):
                    fields[name] = value
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            return  # the stream ended or was closed under the reader (see close)
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()
            self.transcript.add(self.label, "received", "close", "the event stream ended")

    def _dispatch(self, fields: dict[str, str], data: str) -> None:
        at = self.transcript.now()
        event = fields.get("event", "message")
        message: Message | None = None
        problems: list[tuple[tuple[str, ...], str]] = []
        if event != "connection" and data:
            try:
                decoded = orjson.loads(data)
            except orjson.JSONDecodeError:
                decoded = None
            if isinstance(decoded, dict):
                message = decoded
                for violation in server_message_violations(decoded):
                    requirement = violation.requirement or "ENV-013"
                    problems.append(
                        (
                            (requirement, "SSE-004"),
                            f"envelope does not match at {violation.pointer}: {violation.message}",
                        )
                    )
                if decoded.get("type") != event:
                    problems.append(
                        (
                            ("SSE-004",),
                            f"event field {event!r} but envelope type {decoded.get('type')!r}",
                        )
                    )
            else:
                problems.append((("SSE-004",), "data is not one JSON envelope"))
        shown = f"[{event}] id={fields.get('id')!r} {data}"
        self.transcript.add(
            self.label,
            "received",
            "sse",
            shown,
            tuple(f"{', '.join(ids)}: {text}" for ids, text in problems),
            at=at,
        )
        with self._cond:
            if "id" in fields:
                self.last_id = fields["id"]
            self.problems.extend(problems)
            self.events.append(SseEvent(at, event, data, fields.get("id"), message))
            self._cond.notify_all()

    def wait_for(
        self, predicate: Callable[[SseEvent], bool], within: float, consume: bool = True
    ) -> SseEvent | None:
        """The first unconsumed event that matches, waiting up to ``within`` seconds."""
        deadline = time.monotonic() + within
        with self._cond:
            while True:
                for event in self.events:
                    if not event.consumed and predicate(event):
                        event.consumed = consume or event.consumed
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.ended:
                    return None
                self._cond.wait(remaining)

    def unconsumed(self) -> list[SseEvent]:
        with self._cond:
            return [e for e in self.events if not e.consumed]

    def close(self) -> None:
        """End the stream from this side (a client going away)."""
        if not self.ended:
            self.transcript.add(self.label, "sent", "close", "connection closed by the kit")
        sock = self._connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the reader, which sees the end
        self._reader.join(timeout=2.0)
        with contextlib.suppress(OSError):
            self._connection.close()
