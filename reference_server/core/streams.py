"""Event streams over WebSocket and SSE: subscribe, replay without gaps, publish."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reference_server.auth import Principal
from reference_server.broker.base import (
    Publication,
    StreamEvent,
    event_position,
)
from reference_server.core.base import (
    CoreBase,
    Refused,
    stream_topic,
)
from reference_server.core.connection import UNFILTERED, Connection, StreamFilter
from reference_server.core.effects import Publish, Send, Step, ask


@dataclass(frozen=True)
class SubscribeOutcome:
    found: bool
    replayed: int
    newest: str


class StreamHandlers(CoreBase):
    def on_stream_subscribe(
        self, connection: Connection, message: dict[str, Any], now_ms: int
    ) -> Step[None]:
        payload = message["payload"]
        stream_id: str = payload["streamId"]
        self._require(connection, "stream:subscribe", "STREAM-011")
        if self.config.stream(stream_id) is None:
            raise Refused("not_found", f"no stream {stream_id}", "STREAM-002")
        if stream_id in connection.streams:
            raise Refused("conflict", f"already subscribed to {stream_id}", "STREAM-010")
        raw_filter = payload.get("filter", {})
        stream_filter = (
            StreamFilter(
                frozenset(raw_filter["eventTypes"]) if "eventTypes" in raw_filter else None,
                frozenset(raw_filter["tags"]) if "tags" in raw_filter else None,
            )
            if "eventTypes" in raw_filter or "tags" in raw_filter
            else UNFILTERED
        )
        last_event_id = payload.get("lastEventId")
        outcome = yield from self._subscribe_stream(
            connection, stream_id, stream_filter, last_event_id, replay_all=True, now_ms=now_ms
        )
        response: dict[str, Any] = {"streamId": stream_id, "replayed": outcome.replayed}
        if last_event_id is not None:
            response["gap"] = not outcome.found  # STREAM-005
        yield self._respond(connection, message, response)
        yield from self._release(connection, stream_id)

    def _subscribe_stream(
        self,
        connection: Connection,
        stream_id: str,
        stream_filter: StreamFilter,
        after: str | None,
        *,
        replay_all: bool,
        now_ms: int,
    ) -> Step[SubscribeOutcome]:
        """Subscribe, then read the buffer; live events arriving meanwhile are held.

        The replay goes into the held list ahead of those live events, minus any the replay
        already contains, so :meth:`_release` sends each event exactly once, in order.
        """
        stream = self.config.stream(stream_id)
        assert stream is not None
        connection.streams[stream_id] = stream_filter
        connection.held[stream_id] = []
        try:
            read = yield from ask(
                lambda b: b.stream_read(stream_id, after, now_ms, stream.retention_ms)
            )
        except Exception:  # ERR-004: a failed subscribe leaves no subscription behind
            del connection.streams[stream_id]
            del connection.held[stream_id]
            raise
        if after is None and not replay_all:
            replay: list[StreamEvent] = []
            newest = read.events[-1].id if read.events else "0-0"
        else:
            replay = [e for e in read.events if stream_filter.passes(e.type, e.tags)]
            newest = read.events[-1].id if read.events else (after or "0-0")
        if not read.found:  # live delivery starts now: every held event is new to the client
            latest = yield from ask(
                lambda b: b.stream_read(stream_id, None, now_ms, stream.retention_ms)
            )
            newest = latest.events[-1].id if latest.events else "0-0"
        horizon = event_position(newest) if read.found else (0, 0)
        horizon = horizon or (0, 0)
        live = [
            held
            for held in connection.held[stream_id]
            if (event_position(held["payload"]["event"]["id"]) or (0, 0)) > horizon
        ]
        connection.held[stream_id] = [
            self.stream_event_message(stream_id, event, True) for event in replay
        ] + live
        return SubscribeOutcome(read.found, len(replay), newest)

    def _release(self, connection: Connection, stream_id: str) -> Step[None]:
        for held in connection.held.pop(stream_id, []):
            yield Send(connection.client_id, held)

    # ------------------------------------------------------------------ SSE
    def check_event_stream(self, principal: Principal, channels: list[str]) -> None:
        """Refuse an SSE request before its 200 response starts (SSE-001, SSE-006)."""
        if not principal.can("stream:subscribe"):
            raise Refused("forbidden", "this stream needs stream:subscribe", "STREAM-011")
        for stream_id in channels:
            if self.config.stream(stream_id) is None:
                raise Refused("not_found", f"no stream {stream_id}", "SSE-006")

    def open_event_stream(
        self,
        principal: Principal,
        channels: list[str],
        cursor: dict[str, str] | None,
        now_ms: int,
    ) -> tuple[str, Step[dict[str, str]]]:
        """Register an SSE client; the step subscribes and returns the starting cursor.

        Nothing is sent until :meth:`release_event_stream`: the transport writes the
        connection event first. Without a cursor only later events are delivered (SSE-011).
        """
        channels = list(dict.fromkeys(channels))  # SSE-014: a repeated channel counts once
        self.check_event_stream(principal, channels)
        client_id = self._new_client_id("s")
        connection = Connection(client_id, principal, now_ms, now_ms, now_ms, transport="sse")
        self.connections[client_id] = connection
        return client_id, self._open_event_stream(connection, channels, cursor, now_ms)

    def _open_event_stream(
        self,
        connection: Connection,
        channels: list[str],
        cursor: dict[str, str] | None,
        now_ms: int,
    ) -> Step[dict[str, str]]:
        yield from ask(lambda b: b.connection_opened(connection.client_id, connection.user_id))
        positions: dict[str, str] = {}
        for stream_id in channels:
            after = cursor.get(stream_id) if cursor is not None else None
            resuming = cursor is not None
            outcome = yield from self._subscribe_stream(
                connection,
                stream_id,
                UNFILTERED,
                after if resuming else None,
                replay_all=False,
                now_ms=now_ms,
            )
            # The connection event's cursor: where a reconnect must resume from (SSE-011).
            found = resuming and after is not None and outcome.found
            positions[stream_id] = after if found and after is not None else outcome.newest
            if resuming and (after is None or not outcome.found):
                connection.held[stream_id].insert(
                    0,
                    self.messages.error(
                        "replay_unavailable",
                        f"cannot resume {stream_id} without a gap; live events follow",
                        details={"streamId": stream_id, "requirement": "SSE-008"},
                    ),
                )
        return positions

    def release_event_stream(self, client_id: str) -> Step[None]:
        connection = self.connections.get(client_id)
        if connection is None:
            return
        for stream_id in list(connection.held):
            yield from self._release(connection, stream_id)

    def on_stream_unsubscribe(
        self, connection: Connection, message: dict[str, Any], now_ms: int
    ) -> Step[None]:
        stream_id: str = message["payload"]["streamId"]
        if connection.streams.pop(stream_id, None) is None:
            raise Refused("not_found", f"not subscribed to {stream_id}", "STREAM-009")
        yield self._respond(connection, message, {"streamId": stream_id})

    def stream_event_message(
        self, stream_id: str, event: StreamEvent, replay: bool
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"streamId": stream_id, "event": event.as_payload()}
        if replay:
            payload["replay"] = True
        return self.messages.build("stream_event", payload)

    def publish_event(
        self, stream_id: str, event_type: str, tags: list[str], data: Any, now_ms: int
    ) -> Step[StreamEvent]:
        """HTTP-003: store an event from a server-side producer and deliver it live."""
        stream = self.config.stream(stream_id)
        if stream is None:
            raise Refused("not_found", f"no stream {stream_id}", "HTTP-003")
        event = yield from ask(
            lambda b: b.stream_append(
                stream_id, event_type, tags, data, now_ms, stream.buffer_size, stream.retention_ms
            )
        )
        yield Publish(
            Publication(stream_topic(stream_id), self.stream_event_message(stream_id, event, False))
        )
        return event
