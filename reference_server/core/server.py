"""ServerCore: every REP 1.0 behaviour, as steps that yield effects.

Entry points mirror what a transport can observe: a connection opened, a text or binary
message arrived, time passed, a socket went away, the server is stopping, the broker
delivered a publication. Each returns a :data:`Step`; the transport runs it with
:func:`reference_server.core.driver.run_step`.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from reference_server.auth import Principal
from reference_server.broker.base import (
    Broker,
    LeaveResult,
    Member,
    Publication,
    RecordOutcome,
    StreamEvent,
    event_position,
)
from reference_server.config import ServerConfig
from reference_server.core.connection import Connection, Event, StreamFilter, transition
from reference_server.core.effects import Close, Publish, Send, Step, ask
from reference_server.core.messages import MessageFactory
from reference_server.core.policy import refused_attachment_host, sanitize_chat_content
from rep_spec import MessageValidator, catalog, decode_text_frame
from rep_spec.validation import correlation_id_of

log = logging.getLogger("reference_server.core")

CORE_FEATURES = ("core", "rooms", "chat", "presence", "notifications", "data", "streams")
BROADCAST_TOPIC = "broadcast"
DIRECT_TOPIC = "direct"


def room_topic(room_id: str) -> str:
    return f"room:{room_id}"


def collection_topic(collection: str) -> str:
    return f"collection:{collection}"


def stream_topic(stream_id: str) -> str:
    return f"stream:{stream_id}"


def _leave_room(room_id: str, client_id: str) -> Callable[[Broker], Awaitable[LeaveResult]]:
    return lambda broker: broker.leave_room(room_id, client_id)


def _room_members(room_id: str) -> Callable[[Broker], Awaitable[tuple[Member, ...]]]:
    return lambda broker: broker.room_members(room_id)


@dataclass(frozen=True)
class SubscribeOutcome:
    found: bool
    replayed: int
    newest: str


class Refused(Exception):
    """A behaviour check failed: answer with one error and change nothing (ERR-004)."""

    def __init__(self, code: str, message: str, requirement: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.requirement = requirement


Handler = Callable[[Connection, dict[str, Any], int], Step[None]]


class ServerCore:
    def __init__(
        self,
        config: ServerConfig,
        *,
        features: Iterable[str] = CORE_FEATURES,
        validator: MessageValidator | None = None,
        messages: MessageFactory | None = None,
    ) -> None:
        self.config = config
        self.features = tuple(dict.fromkeys(features))
        self.validator = validator or MessageValidator()
        self.messages = messages or MessageFactory()
        self.connections: dict[str, Connection] = {}
        self._client_counter = 0
        self._handlers: dict[str, Handler] = {
            "ping": self.on_ping,
            "disconnect": self.on_disconnect,
            "room_join": self.on_room_join,
            "room_leave": self.on_room_leave,
            "chat_message": self.on_chat_message,
            "status_update": self.on_status_update,
            "notification": self.on_notification,
            "data_create": self.on_data_create,
            "data_update": self.on_data_update,
            "data_delete": self.on_data_delete,
            "data_sync": self.on_data_sync,
            "stream_subscribe": self.on_stream_subscribe,
            "stream_unsubscribe": self.on_stream_unsubscribe,
        }

    @property
    def handled_types(self) -> frozenset[str]:
        return frozenset(self._handlers)

    @property
    def tick_period_ms(self) -> int:
        """How often the transport must call :meth:`tick` for the heartbeat guarantees."""
        return max(10, self.config.heartbeat_interval_ms // 10)

    # ------------------------------------------------------------------ lifecycle
    def connect(self, principal: Principal, now_ms: int) -> tuple[str, Step[None]]:
        """Register an authenticated connection; the step sends the welcome (AUTH-010)."""
        self._client_counter += 1
        client_id = f"{self.messages.node_id}-c{self._client_counter}"
        connection = Connection(client_id, principal, now_ms, now_ms, now_ms)
        self.connections[client_id] = connection
        return client_id, self._welcome(connection)

    def _welcome(self, connection: Connection) -> Step[None]:
        principal = connection.principal
        yield from ask(lambda b: b.connection_opened(connection.client_id, principal.user_id))
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
            elif connection.transport == "sse":
                continue  # SSE clients never speak; the transport sends keep-alive comments
            elif now_ms - connection.last_received_ms >= 2 * interval:
                transition(connection, Event.HEARTBEAT_TIMEOUT)
                yield Close(
                    connection.client_id,
                    catalog().close_code("heartbeat_timeout"),
                    "no message for two heartbeat intervals",
                )
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

    def disconnected(self, client_id: str) -> Step[None]:
        """The socket is gone: leave rooms with notices, drop subscriptions (LIFE-008)."""
        connection = self.connections.pop(client_id, None)
        if connection is None:
            return
        transition(connection, Event.TRANSPORT_CLOSED)
        for room_id in sorted(connection.rooms):
            result = yield from ask(_leave_room(room_id, client_id))
            if result.was_member:
                yield self._publish_user_leave(room_id, connection, "disconnected")
        connection.rooms.clear()
        connection.collections.clear()
        connection.streams.clear()
        remaining = yield from ask(lambda b: b.connection_closed(client_id, connection.user_id))
        if remaining == 0:
            yield from ask(lambda b: b.clear_status(connection.user_id))

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
        if not (yield from self._admit(connection, now_ms, correlation)):
            return
        if problem is None:
            problem = self.validator.check_client_message(message)
        if problem is not None:
            yield Send(client_id, self.messages.problem(problem))
            return
        message_type = catalog().types[message["type"]]
        if message_type.feature not in self.features:
            yield self._error(
                connection,
                Refused(
                    "unknown_type",
                    f"{message_type.name} belongs to feature {message_type.feature!r}, "
                    "which this server does not implement",
                    "MSG-006",
                ),
                correlation,
            )
            return
        handler = self._handlers[message_type.name]
        try:
            yield from handler(connection, message, now_ms)
        except Refused as refusal:
            yield self._error(connection, refusal, correlation)
        except Exception:  # ERR-013: a bug here must not cost the connection or others
            log.exception("internal error handling %s", message_type.name)
            yield self._error(
                connection,
                Refused("internal_error", "internal error; nothing was applied"),
                correlation,
            )

    def receive_binary(self, client_id: str, now_ms: int) -> Step[None]:
        connection = self.connections.get(client_id)
        if connection is None or not connection.is_open:
            return
        connection.last_received_ms = now_ms
        if not (yield from self._admit(connection, now_ms, None)):
            return
        yield self._error(
            connection,
            Refused("unsupported_frame", "REP uses text frames only", "WS-003"),
            None,
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
        yield Send(
            connection.client_id,
            self.messages.error(
                "rate_limited",
                f"more than {rate.max_messages} messages in {rate.window_ms} ms",
                correlation_id=correlation,
                details={"requirement": "RATE-002"},
                retry_after_ms=decision.retry_after_ms,
            ),
        )
        return False

    def _error(self, connection: Connection, refusal: Refused, correlation: str | None) -> Send:
        details = {"requirement": refusal.requirement} if refusal.requirement else None
        return Send(
            connection.client_id,
            self.messages.error(
                refusal.code, refusal.message, correlation_id=correlation, details=details
            ),
        )

    # ------------------------------------------------------------------ delivery
    def deliver(self, publication: Publication) -> list[Send]:
        """Local fan-out of a publication the broker delivered (from any node)."""
        topic = publication.topic
        kind, _, name = topic.partition(":")
        sends = []
        for connection in self.connections.values():
            if not connection.is_open or connection.client_id in publication.exclude:
                continue
            if publication.recipients is not None and (
                connection.client_id not in publication.recipients
            ):
                continue
            if kind == "room":
                wanted = name in connection.rooms
            elif kind == "collection":
                wanted = name in connection.collections
            elif kind == "stream":
                wanted = self._stream_wants(connection, name, publication.message)
            else:
                wanted = topic in (BROADCAST_TOPIC, DIRECT_TOPIC)
            if not wanted:
                continue
            if kind == "stream" and name in connection.held:
                connection.held[name].append(publication.message)
            else:
                sends.append(Send(connection.client_id, publication.message))
        return sends

    @staticmethod
    def _stream_wants(connection: Connection, stream_id: str, message: dict[str, Any]) -> bool:
        stream_filter = connection.streams.get(stream_id)
        if stream_filter is None:
            return False
        event = message["payload"]["event"]
        return stream_filter.passes(event["type"], tuple(event["tags"]))

    # ------------------------------------------------------------------ helpers
    def _copy(
        self, connection: Connection, message: dict[str, Any], payload: dict[str, Any]
    ) -> dict[str, Any]:
        """The distributed copy of a client's message (MSG-004, MSG-005)."""
        return self.messages.build(
            message["type"],
            payload,
            correlation_id=message["id"],
            sender={"userId": connection.user_id, "clientId": connection.client_id},
        )

    def _respond(
        self, connection: Connection, message: dict[str, Any], payload: dict[str, Any]
    ) -> Send:
        response_type = catalog().types[message["type"]].answer_type
        assert response_type is not None
        return Send(
            connection.client_id,
            self.messages.build(response_type, payload, correlation_id=message["id"]),
        )

    @staticmethod
    def _require(connection: Connection, permission: str, requirement: str) -> None:
        if not connection.principal.can(permission):
            raise Refused(
                "forbidden", f"this action needs the permission {permission}", requirement
            )

    def _publish_user_leave(self, room_id: str, connection: Connection, reason: str) -> Publish:
        return Publish(
            Publication(
                room_topic(room_id),
                self.messages.build(
                    "user_leave",
                    {
                        "roomId": room_id,
                        "userId": connection.user_id,
                        "clientId": connection.client_id,
                        "reason": reason,
                    },
                ),
                exclude=frozenset({connection.client_id}),
            )
        )

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

    # ------------------------------------------------------------------ rooms
    def on_room_join(
        self, connection: Connection, message: dict[str, Any], now_ms: int
    ) -> Step[None]:
        room_id: str = message["payload"]["roomId"]
        self._require(connection, "room:join", "ROOM-010")
        room = self.config.room(room_id)
        if room is not None:
            if room.private:
                self._require(connection, "room:join_private", "ROOM-010")
            if room.password is not None and not hmac.compare_digest(
                str(message["payload"].get("password", "")).encode(), room.password.encode()
            ):
                raise Refused("forbidden", "wrong or missing room password", "ROOM-011")
            if room.invite_only and not (
                connection.principal.can("room:join_invited") or connection.user_id in room.invited
            ):
                raise Refused("forbidden", "this room is invite-only", "ROOM-012")
        member = Member(connection.user_id, connection.client_id)
        result = yield from ask(lambda b: b.join_room(room_id, member))
        connection.rooms.add(room_id)
        statuses = yield from ask(lambda b: b.statuses([m.user_id for m in result.members]))
        yield self._respond(
            connection,
            message,
            {
                "roomId": room_id,
                "members": [
                    {
                        "userId": m.user_id,
                        "clientId": m.client_id,
                        "status": statuses.get(m.user_id, "online"),
                    }
                    for m in result.members
                ],
                "room": {
                    "private": bool(room and room.private),
                    "moderated": bool(room and room.moderated),
                    "inviteOnly": bool(room and room.invite_only),
                },
            },
        )
        if not result.already_member:  # ROOM-007: a repeated join announces nothing
            yield Publish(
                Publication(
                    room_topic(room_id),
                    self.messages.build(
                        "user_join",
                        {
                            "roomId": room_id,
                            "userId": connection.user_id,
                            "clientId": connection.client_id,
                        },
                    ),
                    exclude=frozenset({connection.client_id}),
                )
            )

    def on_room_leave(
        self, connection: Connection, message: dict[str, Any], now_ms: int
    ) -> Step[None]:
        room_id: str = message["payload"]["roomId"]
        if room_id not in connection.rooms:
            raise Refused("not_found", f"not a member of room {room_id}", "ROOM-008")
        connection.rooms.discard(room_id)
        yield from ask(lambda b: b.leave_room(room_id, connection.client_id))
        yield self._respond(connection, message, {"roomId": room_id})
        yield self._publish_user_leave(room_id, connection, "left")

    # ------------------------------------------------------------------ chat & presence
    def on_chat_message(
        self, connection: Connection, message: dict[str, Any], now_ms: int
    ) -> Step[None]:
        payload = message["payload"]
        for index, attachment in enumerate(payload.get("metadata", {}).get("attachments", ())):
            reason = refused_attachment_host(attachment["url"])
            if reason is not None:
                raise Refused(
                    "invalid_payload",
                    f"attachment {index} URL refused: {reason}",
                    "CHAT-004",
                )
        self._require(connection, "message:send", "CHAT-005")
        room_id: str = payload["roomId"]
        if room_id not in connection.rooms:
            raise Refused("forbidden", f"not a member of room {room_id}", "CHAT-001")
        room = self.config.room(room_id)
        if room is not None and room.moderated:
            self._require(connection, "room:moderate", "CHAT-005")
        copy_payload = {
            **payload,
            "content": sanitize_chat_content(payload["content"]),
            "type": payload.get("type", "text"),
        }
        yield Publish(
            Publication(room_topic(room_id), self._copy(connection, message, copy_payload))
        )

    def on_status_update(
        self, connection: Connection, message: dict[str, Any], now_ms: int
    ) -> Step[None]:
        status: str = message["payload"]["status"]
        yield from ask(lambda b: b.set_status(connection.user_id, status))
        recipients = {connection.client_id}
        for room_id in sorted(connection.rooms):
            members = yield from ask(_room_members(room_id))
            recipients.update(m.client_id for m in members)
        yield Publish(
            Publication(
                DIRECT_TOPIC,
                self._copy(connection, message, message["payload"]),
                recipients=frozenset(recipients),
            )
        )

    def on_notification(
        self, connection: Connection, message: dict[str, Any], now_ms: int
    ) -> Step[None]:
        payload = message["payload"]
        copy = self._copy(connection, message, payload)
        room_id = payload.get("roomId")
        if room_id is None:
            self._require(connection, "message:broadcast", "NOTIF-001")
            yield Publish(Publication(BROADCAST_TOPIC, copy))
            return
        self._require(connection, "message:announce", "NOTIF-002")
        members = yield from ask(lambda b: b.room_members(room_id))
        if not members and self.config.room(room_id) is None:
            raise Refused("not_found", f"no room {room_id}", "NOTIF-003")
        recipients = frozenset({connection.client_id, *(m.client_id for m in members)})
        yield Publish(Publication(DIRECT_TOPIC, copy, recipients=recipients))

    # ------------------------------------------------------------------ data
    def _data_change(
        self,
        connection: Connection,
        message: dict[str, Any],
        outcome: RecordOutcome,
        include_data: bool,
    ) -> Step[None]:
        payload = message["payload"]
        if outcome.status == "not_found":
            raise Refused("not_found", f"no record {payload['recordId']}", "DATA-005")
        if outcome.status == "conflict":
            requirement = {"data_create": "DATA-003", "data_update": "DATA-004"}.get(
                message["type"], "DATA-006"
            )
            raise Refused("conflict", "the record changed since that version", requirement)
        assert outcome.record is not None
        copy_payload: dict[str, Any] = {
            "collection": payload["collection"],
            "recordId": outcome.record.record_id,
            "version": outcome.record.version,
        }
        if include_data:
            copy_payload["data"] = outcome.record.data
        copy = self._copy(connection, message, copy_payload)
        collection = payload["collection"]
        if collection not in connection.collections:  # the sender's copy, exactly once
            yield Send(connection.client_id, copy)
        yield Publish(Publication(collection_topic(collection), copy))

    def on_data_create(
        self, connection: Connection, message: dict[str, Any], now_ms: int
    ) -> Step[None]:
        self._require(connection, "data:write", "DATA-009")
        payload = message["payload"]
        record_id = payload.get("recordId") or uuid.uuid4().hex
        outcome = yield from ask(
            lambda b: b.record_create(payload["collection"], record_id, payload["data"])
        )
        yield from self._data_change(connection, message, outcome, include_data=True)

    def on_data_update(
        self, connection: Connection, message: dict[str, Any], now_ms: int
    ) -> Step[None]:
        self._require(connection, "data:write", "DATA-009")
        payload = message["payload"]
        outcome = yield from ask(
            lambda b: b.record_update(
                payload["collection"],
                payload["recordId"],
                payload["data"],
                payload.get("expectedVersion"),
            )
        )
        yield from self._data_change(connection, message, outcome, include_data=True)

    def on_data_delete(
        self, connection: Connection, message: dict[str, Any], now_ms: int
    ) -> Step[None]:
        self._require(connection, "data:write", "DATA-009")
        payload = message["payload"]
        outcome = yield from ask(
            lambda b: b.record_delete(
                payload["collection"], payload["recordId"], payload.get("expectedVersion")
            )
        )
        yield from self._data_change(connection, message, outcome, include_data=False)

    def on_data_sync(
        self, connection: Connection, message: dict[str, Any], now_ms: int
    ) -> Step[None]:
        self._require(connection, "data:read", "DATA-009")
        payload = message["payload"]
        collection: str = payload["collection"]
        result = yield from ask(lambda b: b.record_sync(collection, payload.get("sinceRevision")))
        connection.collections.add(collection)  # DATA-008
        yield self._respond(
            connection,
            message,
            {
                "collection": collection,
                "revision": result.revision,
                "records": [
                    {"recordId": r.record_id, "version": r.version, "data": r.data}
                    for r in result.records
                ],
                "deleted": list(result.deleted),
            },
        )

    # ------------------------------------------------------------------ streams
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
        stream_filter = StreamFilter(
            frozenset(raw_filter["eventTypes"]) if "eventTypes" in raw_filter else None,
            frozenset(raw_filter["tags"]) if "tags" in raw_filter else None,
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
        read = yield from ask(
            lambda b: b.stream_read(stream_id, after, now_ms, stream.retention_ms)
        )
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
        self.check_event_stream(principal, channels)
        self._client_counter += 1
        client_id = f"{self.messages.node_id}-s{self._client_counter}"
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
                StreamFilter(),
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
