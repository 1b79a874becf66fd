"""ServerCore: every REP 1.0 behaviour, as steps that yield effects.

Entry points mirror what a transport can observe: a connection opened, a text or binary
message arrived, time passed, a socket went away, the server is stopping, the broker
delivered a publication. Each returns a :data:`Step`; the transport runs it with
:func:`reference_server.core.driver.run_step`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar

from reference_server.auth import Principal
from reference_server.broker.base import (
    Departure,
    Publication,
    event_position,
)
from reference_server.core.base import (
    BROADCAST_TOPIC,
    CORE_FEATURES,
    DIRECT_TOPIC,
    Handler,
    Refused,
    collection_topic,
    leave_room_call,
    log,
    room_topic,
    stream_topic,
)
from reference_server.core.connection import UNFILTERED, Connection, Event, State, transition
from reference_server.core.data import DataHandlers
from reference_server.core.effects import Close, Publish, Send, Step, ask
from reference_server.core.messaging import MessagingHandlers
from reference_server.core.rooms import RoomHandlers
from reference_server.core.streams import StreamHandlers, SubscribeOutcome
from rep_spec import Problem, catalog, decode_text_frame
from rep_spec.validation import correlation_id_of

__all__ = [
    "BROADCAST_TOPIC",
    "CORE_FEATURES",
    "DIRECT_TOPIC",
    "Refused",
    "ServerCore",
    "SubscribeOutcome",
    "collection_topic",
    "room_topic",
    "stream_topic",
]


class ServerCore(RoomHandlers, MessagingHandlers, DataHandlers, StreamHandlers):
    """Every REP 1.0 behaviour; handler groups live in rooms, messaging, data, streams."""

    # One handler per client-sendable type of the catalogue (a test checks the coverage).
    HANDLERS: ClassVar[dict[str, str]] = {
        "ping": "on_ping",
        "disconnect": "on_disconnect",
        "room_join": "on_room_join",
        "room_leave": "on_room_leave",
        "chat_message": "on_chat_message",
        "status_update": "on_status_update",
        "notification": "on_notification",
        "data_create": "on_data_create",
        "data_update": "on_data_update",
        "data_delete": "on_data_delete",
        "data_sync": "on_data_sync",
        "stream_subscribe": "on_stream_subscribe",
        "stream_unsubscribe": "on_stream_unsubscribe",
    }

    def handler_for(self, message_type: str) -> Handler:
        return self._handlers[message_type]

    @functools.cached_property
    def _handlers(self) -> dict[str, Handler]:
        """Bound once: dispatch is on the path of every message."""
        return {name: getattr(self, method) for name, method in self.HANDLERS.items()}

    @functools.cached_property
    def _feature_set(self) -> frozenset[str]:
        return frozenset(self.features)

    @property
    def handled_types(self) -> frozenset[str]:
        return frozenset(self.HANDLERS)

    @property
    def tick_period_ms(self) -> int:
        """How often the transport must call :meth:`tick` for the heartbeat guarantees."""
        return max(10, self.config.heartbeat_interval_ms // 10)

    # ------------------------------------------------------------------ lifecycle
    def connect(self, principal: Principal, now_ms: int) -> tuple[str, Step[None]]:
        """Register an authenticated connection; the step sends the welcome (AUTH-010)."""
        client_id = self._new_client_id("c")
        connection = Connection(client_id, principal, now_ms, now_ms, now_ms)
        self.connections[client_id] = connection
        return client_id, self._welcome(connection)

    def _welcome(self, connection: Connection) -> Step[None]:
        principal = connection.principal
        try:
            yield from ask(lambda b: b.connection_opened(connection.client_id, principal.user_id))
        except Exception:  # shared state unreachable: refuse this client cleanly, keep serving
            log.exception("cannot register %s", connection.client_id)
            transition(connection, Event.SHUTDOWN)
            yield Close(
                connection.client_id,
                catalog().close_code("internal_error"),
                "shared state unreachable; try again later",
            )
            return
        rate = self.config.rate_limit
        yield Send(
            connection.client_id,
            self.messages.build(
                "auth",
                {
                    "status": "connected",
                    "clientId": connection.client_id,
                    "userId": principal.user_id,
                    "roles": list(principal.roles),
                    "permissions": sorted(principal.permissions),
                    "protocolVersion": catalog().protocol_version,
                    "heartbeatIntervalMs": self.config.heartbeat_interval_ms,
                    "limits": {
                        "maxMessageBytes": self.config.max_message_bytes,
                        "rateLimit": {
                            "windowMs": rate.window_ms,
                            "maxMessages": rate.max_messages,
                        },
                    },
                    "features": list(self.features),
                },
            ),
        )

    def tick(self, now_ms: int) -> Step[None]:
        """Heartbeats (LIFE-002), silent-client timeouts (LIFE-003), token expiry (AUTH-012)."""
        interval = self.config.heartbeat_interval_ms
        for connection in list(self.connections.values()):
            if not connection.is_open:
                continue
            expires = connection.principal.expires_at
            if expires is not None and now_ms >= expires * 1000:
                transition(connection, Event.TOKEN_EXPIRED)
                yield Close(
                    connection.client_id, catalog().close_code("token_expired"), "token expired"
                )
                yield from self._ended(connection)
            elif connection.transport == "sse":
                continue  # SSE clients never speak; the transport sends keep-alive comments
            elif now_ms - connection.last_received_ms >= 2 * interval:
                transition(connection, Event.HEARTBEAT_TIMEOUT)
                yield Close(
                    connection.client_id,
                    catalog().close_code("heartbeat_timeout"),
                    "no message for two heartbeat intervals",
                )
                yield from self._ended(connection)
            elif now_ms - connection.last_heartbeat_ms >= interval - self.tick_period_ms:
                connection.last_heartbeat_ms = now_ms
                yield Send(
                    connection.client_id,
                    self.messages.build("heartbeat", {"timestamp": now_ms}),
                )

    def slow_consumer(self, client_id: str) -> Step[None]:
        connection = self.connections.get(client_id)
        if connection is not None and connection.is_open:
            transition(connection, Event.SLOW_CONSUMER)
            yield Close(client_id, catalog().close_code("slow_consumer"), "outbound queue full")
            yield from self._ended(connection)

    def disconnected(self, client_id: str) -> Step[None]:
        """The socket is gone: leave rooms with notices, drop subscriptions (LIFE-008)."""
        connection = self.connections.pop(client_id, None)
        if connection is None:
            return
        transition(connection, Event.TRANSPORT_CLOSED)
        try:
            yield from self._leave_everything(connection)
        except Exception:  # the socket is gone either way; shared state may lag (logged)
            log.exception("cleanup of %s incomplete", client_id)

    def _ended(self, connection: Connection) -> Step[None]:
        """LIFE-009: the server sent its close frame, so the connection has ended; the others
        are told now, not once the peer has finished the closing handshake."""
        try:
            yield from self._leave_rooms(connection)
        except Exception:  # retried by disconnected(), which finds what is left
            log.exception("cleanup of %s deferred", connection.client_id)

    def _leave_rooms(self, connection: Connection) -> Step[None]:
        client_id = connection.client_id
        for room_id in sorted(connection.rooms):
            notice = self._user_leave(room_id, connection, "disconnected")
            yield from ask(leave_room_call(room_id, client_id, notice))
            connection.rooms.discard(room_id)
            connection.joined_at.pop(room_id, None)
        connection.collections.clear()
        connection.streams.clear()

    def _leave_everything(self, connection: Connection) -> Step[None]:
        client_id = connection.client_id
        yield from self._leave_rooms(connection)
        remaining = yield from ask(lambda b: b.connection_closed(client_id, connection.user_id))
        if remaining == 0:
            yield from ask(lambda b: b.clear_status(connection.user_id))

    def departed(self, departures: Sequence[Departure]) -> Step[None]:
        """CLUSTER-006: members of a node that stopped without closing; their rooms are told."""
        for departure in departures:
            yield Publish(
                Publication(
                    room_topic(departure.room_id),
                    self.messages.build(
                        "user_leave",
                        {
                            "roomId": departure.room_id,
                            "userId": departure.user_id,
                            "clientId": departure.client_id,
                            "reason": "disconnected",
                        },
                    ),
                    exclude=frozenset({departure.client_id}),
                )
            )

    def shutdown(self) -> Step[None]:
        """LIFE-007: every client gets a disconnect, then close 1001."""
        for connection in list(self.connections.values()):
            if connection.is_open:
                transition(connection, Event.SHUTDOWN)
                yield Send(
                    connection.client_id,
                    self.messages.build("disconnect", {"reason": "server shutting down"}),
                )
                yield Close(connection.client_id, catalog().close_code("going_away"), "shutdown")

    # ------------------------------------------------------------------ input
    def receive_text(self, client_id: str, data: str | bytes, now_ms: int) -> Step[None]:
        connection = self.connections.get(client_id)
        if connection is None or not connection.is_open:
            return
        connection.last_received_ms = now_ms  # LIFE-004: any message is activity
        message, problem = decode_text_frame(data)
        correlation = correlation_id_of(message)
        yield from self._guarded(
            connection,
            correlation,
            self._process_text(connection, message, problem, correlation, now_ms),
        )

    def _process_text(
        self,
        connection: Connection,
        message: Any,
        problem: Problem | None,
        correlation: str | None,
        now_ms: int,
    ) -> Step[None]:
        if not (yield from self._admit(connection, now_ms, correlation)):
            return
        if problem is None:
            problem = self.validator.check_client_message(message)
        if problem is not None:
            yield Send(connection.client_id, self.messages.problem(problem))
            return
        message_type = catalog().types[message["type"]]
        if message_type.feature not in self._feature_set:
            raise Refused(
                "unknown_type",
                f"{message_type.name} belongs to feature {message_type.feature!r}, "
                "which this server does not implement",
                "MSG-006",
            )
        yield from self.handler_for(message_type.name)(connection, message, now_ms)

    def receive_binary(self, client_id: str, now_ms: int) -> Step[None]:
        connection = self.connections.get(client_id)
        if connection is None or not connection.is_open:
            return
        connection.last_received_ms = now_ms
        yield from self._guarded(connection, None, self._process_binary(connection, now_ms))

    def _process_binary(self, connection: Connection, now_ms: int) -> Step[None]:
        if (yield from self._admit(connection, now_ms, None)):
            raise Refused("unsupported_frame", "REP uses text frames only", "WS-003")

    def _guarded(
        self, connection: Connection, correlation: str | None, step: Step[None]
    ) -> Step[None]:
        """One error for a refused message; internal_error for any failure (ERR-013)."""
        try:
            yield from step
        except Refused as refusal:
            yield self._error(connection, refusal, correlation)
        except Exception:  # a bug or a broker outage must not cost the connection or others
            log.exception("internal error on %s", connection.client_id)
            yield self._error(
                connection,
                Refused("internal_error", "internal error; nothing was applied"),
                correlation,
            )

    def _admit(self, connection: Connection, now_ms: int, correlation: str | None) -> Step[bool]:
        """RATE-001..003: the first check of ERR-011; a refused message is not processed."""
        rate = self.config.rate_limit
        decision = yield from ask(
            lambda b: b.rate_limit_hit(
                connection.user_id, now_ms, rate.window_ms, rate.max_messages
            )
        )
        if decision.allowed:
            return True
        retry_after_ms = max(1, int(decision.retry_after_ms or 0))  # RATE-003: at least 1 ms
        yield Send(
            connection.client_id,
            self.messages.error(
                "rate_limited",
                f"more than {rate.max_messages} messages in {rate.window_ms} ms",
                correlation_id=correlation,
                details={"requirement": "RATE-002"},
                retry_after_ms=retry_after_ms,
            ),
        )
        return False

    # ------------------------------------------------------------------ delivery
    def deliver(self, publication: Publication) -> Iterable[Send]:
        """Local fan-out of a publication the broker delivered (from any node).

        A stream event's sends come one at a time, so the first subscriber's copy can leave
        while the others are still being found."""
        topic = publication.topic
        kind, _, name = topic.partition(":")
        message = publication.message
        exclude, recipients = publication.exclude, publication.recipients
        if kind == "stream":
            return self._deliver_stream_event(name, message, exclude, recipients)
        wants = self._audience(kind, name, topic, publication.position, message)
        sends = []
        for connection in self.connections.values():
            client_id = connection.client_id
            if connection.state is not _OPEN or client_id in exclude:
                continue
            if recipients is not None and client_id not in recipients:
                continue
            if wants(connection):
                sends.append(Send(client_id, message))
        return sends

    def _deliver_stream_event(
        self,
        stream_id: str,
        message: dict[str, Any],
        exclude: frozenset[str],
        recipients: frozenset[str] | None,
    ) -> Iterator[Send]:
        """The SSE fan-out's loop, once per subscriber: the subscription test written out
        (the shared unfiltered subscription is known by identity), held while its replay
        runs (STREAM-004)."""
        event = message["payload"]["event"]
        event_type, tags = event["type"], tuple(event["tags"])
        narrowed = bool(exclude) or recipients is not None
        for connection in self.connections.values():
            stream_filter = connection.streams.get(stream_id)
            if stream_filter is None or connection.state is not _OPEN:
                continue
            client_id = connection.client_id
            if narrowed and (
                client_id in exclude or (recipients is not None and client_id not in recipients)
            ):
                continue
            if stream_filter is not UNFILTERED and not stream_filter.passes(event_type, tags):
                continue
            held = connection.held.get(stream_id) if connection.held else None
            if held is not None:
                held.append(message)
            else:
                yield Send(client_id, message)

    @staticmethod
    def _audience(
        kind: str, name: str, topic: str, position: str, message: dict[str, Any]
    ) -> Callable[[Connection], bool]:
        """Who among the local connections a publication is for; what the test needs from
        the publication is read once, not once per connection."""
        if kind == "room":
            return lambda c: name in c.rooms and _after(position, c.joined_at.get(name, ""))
        if kind == "collection":
            return lambda c: name in c.collections
        everyone = topic in (BROADCAST_TOPIC, DIRECT_TOPIC)
        return lambda c: everyone

    # ------------------------------------------------------------------ system
    def on_ping(self, connection: Connection, message: dict[str, Any], now_ms: int) -> Step[None]:
        payload: dict[str, Any] = {"timestamp": now_ms}
        if "timestamp" in message["payload"]:
            payload["echo"] = message["payload"]["timestamp"]
        yield self._respond(connection, message, payload)

    def on_disconnect(
        self, connection: Connection, message: dict[str, Any], now_ms: int
    ) -> Step[None]:
        transition(connection, Event.CLIENT_DISCONNECT)
        yield self._respond(connection, message, {"reason": "client requested disconnect"})
        yield Close(connection.client_id, catalog().close_code("normal_closure"), "disconnect")
        yield from self._ended(connection)


#: Read once: an enum member looked up on its class costs more than the rest of the test.
_OPEN = State.OPEN


def _after(position: str, joined: str) -> bool:
    """Was a publication made after the join? Unordered (empty) positions always are."""
    if not position or not joined:
        return True
    return (event_position(position) or (0, 0)) > (event_position(joined) or (0, 0))
