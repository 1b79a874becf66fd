"""Broken server cores: each subclass of the reference core breaks exactly one rule.

They exist to prove that the conformance kit notices; they live in the project's tests,
never in the shipped kit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

from reference_server.auth import Principal
from reference_server.config import ServerConfig
from reference_server.core.connection import Connection
from reference_server.core.effects import Close, Effect, Publish, Send, Step
from reference_server.core.messages import MessageFactory
from reference_server.core.server import ServerCore
from rep_spec import catalog, decode_text_frame

Message = dict[str, Any]


def filtered(step: Step[Any], drop: Callable[[Effect], bool]) -> Step[Any]:
    """Run ``step`` but swallow the effects ``drop`` selects (only Send/Publish, which the
    driver answers with None), passing everything else and every answer through."""
    answer: Any = None
    while True:
        try:
            effect = step.send(answer)
        except StopIteration as stop:
            return stop.value
        answer = None if drop(effect) else (yield effect)


def _sends(message_type: str) -> Callable[[Effect], bool]:
    def drop(effect: Effect) -> bool:
        return isinstance(effect, Send) and effect.message.get("type") == message_type

    return drop


class PongWithoutCorrelation(ServerCore):
    """LIFE-001: the pong does not say which ping it answers."""

    def on_ping(self, connection: Connection, message: Message, now_ms: int) -> Step[None]:
        yield Send(connection.client_id, self.messages.build("pong", {"timestamp": now_ms}))


class JoinerHearsItsOwnJoin(ServerCore):
    """ROOM-004: the joiner is sent the user_join meant for the others."""

    def on_room_join(self, connection: Connection, message: Message, now_ms: int) -> Step[None]:
        yield from super().on_room_join(connection, message, now_ms)
        payload = {
            "roomId": message["payload"]["roomId"],
            "userId": connection.user_id,
            "clientId": connection.client_id,
        }
        yield Send(connection.client_id, self.messages.build("user_join", payload))


class NoRateLimit(ServerCore):
    """RATE-002: every message is admitted, however many."""

    def _admit(self, connection: Connection, now_ms: int, correlation: str | None) -> Step[bool]:
        yield from ()
        return True


class UnknownTypeIgnored(ServerCore):
    """MSG-001: a message of an unregistered type gets no answer at all."""

    def receive_text(self, client_id: str, data: str | bytes, now_ms: int) -> Step[None]:
        message, problem = decode_text_frame(data)
        if problem is None and message.get("type") not in catalog().types:
            connection = self.connections.get(client_id)
            if connection is not None:
                connection.last_received_ms = now_ms
            return
        yield from super().receive_text(client_id, data, now_ms)


class UpdateIgnoresExpectedVersion(ServerCore):
    """DATA-004: optimistic concurrency is not enforced on updates."""

    def on_data_update(self, connection: Connection, message: Message, now_ms: int) -> Step[None]:
        payload = {k: v for k, v in message["payload"].items() if k != "expectedVersion"}
        yield from super().on_data_update(connection, {**message, "payload": payload}, now_ms)


def _factory(kind: type[MessageFactory], kw: dict[str, Any]) -> MessageFactory:
    """A broken message factory keeping the node id the transport chose."""
    given = kw.get("messages")
    return kind(given.node_id if isinstance(given, MessageFactory) else None)


class _NoSender(MessageFactory):
    def build(self, message_type: str, payload: dict[str, Any], **kw: Any) -> Message:
        kw.pop("sender", None)
        return super().build(message_type, payload, **kw)


class CopiesWithoutSender(ServerCore):
    """MSG-005: distributed copies do not say who sent the original."""

    def __init__(self, config: ServerConfig, **kw: Any) -> None:
        super().__init__(config, **{**kw, "messages": _factory(_NoSender, kw)})


class _UncorrelatedErrors(MessageFactory):
    def error(self, code: str, message: str, **kw: Any) -> Message:
        kw.pop("correlation_id", None)
        return super().error(code, message, **kw)


class ErrorsWithoutCorrelation(ServerCore):
    """ERR-003: errors never name the message they refuse."""

    def __init__(self, config: ServerConfig, **kw: Any) -> None:
        super().__init__(config, **{**kw, "messages": _factory(_UncorrelatedErrors, kw)})


class _OtherVersion(MessageFactory):
    def build(self, message_type: str, payload: dict[str, Any], **kw: Any) -> Message:
        built = super().build(message_type, payload, **kw)
        built["metadata"]["version"] = f"{catalog().major_version}.9"
        return built


class VersionDisagreesWithWelcome(ServerCore):
    """ENV-008: messages carry a version other than the one the welcome announces."""

    def __init__(self, config: ServerConfig, **kw: Any) -> None:
        super().__init__(config, **{**kw, "messages": _factory(_OtherVersion, kw)})


class ClosesOnInvalidJson(ServerCore):
    """ERR-005: a frame that is not JSON ends the connection instead of an error."""

    def receive_text(self, client_id: str, data: str | bytes, now_ms: int) -> Step[None]:
        _, problem = decode_text_frame(data)
        if problem is not None and problem.code == "invalid_json":
            yield Close(client_id, 1008, "bad json")
            return
        yield from super().receive_text(client_id, data, now_ms)


class AnyMajorVersion(ServerCore):
    """VER-002: metadata.version is never looked at."""

    def receive_text(self, client_id: str, data: str | bytes, now_ms: int) -> Step[None]:
        message, problem = decode_text_frame(data)
        if problem is None and isinstance(message.get("metadata"), dict):
            message["metadata"].pop("version", None)
            import orjson

            data = orjson.dumps(message).decode()
        yield from super().receive_text(client_id, data, now_ms)


class BinaryIgnored(ServerCore):
    """WS-003: binary frames are dropped silently."""

    def receive_binary(self, client_id: str, now_ms: int) -> Step[None]:
        yield from ()


class StatusToSenderOnly(ServerCore):
    """PRES-001: a status update is only echoed to its sender."""

    def on_status_update(self, connection: Connection, message: Message, now_ms: int) -> Step[None]:
        yield Send(connection.client_id, self._copy(connection, message, message["payload"]))


class BroadcastWithoutPermission(ServerCore):
    """NOTIF-001: anyone may broadcast to everyone."""

    @staticmethod
    def _require(connection: Connection, permission: str, requirement: str) -> None:
        if permission != "message:broadcast":
            ServerCore._require(connection, permission, requirement)


class PermissionsClaimIgnored(ServerCore):
    """AUTHZ-001: only the roles count; the token's permissions claim is ignored."""

    @staticmethod
    def _require(connection: Connection, permission: str, requirement: str) -> None:
        principal = connection.principal
        roles_only = replace(principal, permissions=catalog().permissions_of(principal.roles))
        ServerCore._require(SimpleNamespace(principal=roles_only), permission, requirement)  # type: ignore[arg-type]


class NoReplay(ServerCore):
    """STREAM-004: buffered events are never replayed to new subscribers."""

    def on_stream_subscribe(
        self, connection: Connection, message: Message, now_ms: int
    ) -> Step[None]:
        yield from filtered(
            super().on_stream_subscribe(connection, message, now_ms), _sends("stream_event")
        )


class PublishNotDelivered(ServerCore):
    """HTTP-003: published events are stored but not delivered live."""

    def publish_event(
        self, stream_id: str, event_type: str, tags: list[str], data: Any, now_ms: int
    ) -> Step[Any]:
        step = super().publish_event(stream_id, event_type, tags, data, now_ms)
        return (yield from filtered(step, lambda effect: isinstance(effect, Publish)))


class NoHeartbeats(ServerCore):
    """LIFE-002: the server never sends heartbeats."""

    def tick(self, now_ms: int) -> Step[None]:
        yield from filtered(super().tick(now_ms), _sends("heartbeat"))


class HidesNotificationsButServesThem(ServerCore):
    """MSG-006: the welcome omits notifications, yet notification messages are processed."""

    def _welcome(self, connection: Connection) -> Step[None]:
        def hide(effect: Effect) -> Effect:
            if isinstance(effect, Send) and effect.message.get("type") == "auth":
                features = effect.message["payload"]["features"]
                effect.message["payload"]["features"] = [
                    f for f in features if f != "notifications"
                ]
            return effect

        step = super()._welcome(connection)
        answer: Any = None
        while True:
            try:
                effect = step.send(answer)
            except StopIteration:
                return
            answer = yield hide(effect)


def mapped(step: Step[Any], change: Callable[[Effect], Effect]) -> Step[Any]:
    """Run ``step`` with each effect replaced by ``change(effect)``; answers pass through."""
    answer: Any = None
    while True:
        try:
            effect = step.send(answer)
        except StopIteration as stop:
            return stop.value
        answer = yield change(effect)


def _closes(code_name: str) -> Callable[[Effect], bool]:
    code = catalog().close_code(code_name)
    return lambda effect: isinstance(effect, Close) and effect.code == code


class PongWithoutTimestamp(ServerCore):
    """ENV-013: the pong is correlated but its payload breaks the pong schema."""

    def on_ping(self, connection: Connection, message: Message, now_ms: int) -> Step[None]:
        pong = self.messages.build("pong", {}, correlation_id=message["id"])
        yield Send(connection.client_id, pong)


class SilentClientsLiveForever(ServerCore):
    """LIFE-003: a client that sends nothing is never closed."""

    def tick(self, now_ms: int) -> Step[None]:
        for connection in self.connections.values():
            connection.last_received_ms = now_ms
        yield from super().tick(now_ms)


class TokensNeverExpireOnOpenConnections(ServerCore):
    """AUTH-012 (a SHOULD): connections outlive their token."""

    def tick(self, now_ms: int) -> Step[None]:
        yield from filtered(super().tick(now_ms), _closes("token_expired"))


class _NoDetails(MessageFactory):
    def error(self, code: str, message: str, **kw: Any) -> Message:
        kw.pop("details", None)
        return super().error(code, message, **kw)


class ErrorsWithoutDetails(ServerCore):
    """ERR-010 (a SHOULD): schema errors do not point at the offending member."""

    def __init__(self, config: ServerConfig, **kw: Any) -> None:
        super().__init__(config, **{**kw, "messages": _factory(_NoDetails, kw)})


class NoLeaveNoticeOnDisconnect(ServerCore):
    """ROOM-006: when a member's connection ends, the others are not told."""

    def disconnected(self, client_id: str) -> Step[None]:
        def leave_notice(effect: Effect) -> bool:
            return (
                isinstance(effect, Publish)
                and effect.publication.message.get("type") == "user_leave"
            )

        yield from filtered(super().disconnected(client_id), leave_notice)


class CollectionChangesTwice(ServerCore):
    """DATA-008: subscribers receive every change of a collection twice."""

    def deliver(self, publication: Any) -> list[Send]:
        sends = super().deliver(publication)
        if publication.topic.startswith("collection:"):
            return [send for send in sends for _ in range(2)]
        return sends


class UnsubscribeKeepsDelivering(ServerCore):
    """STREAM-009: unsubscribing is confirmed but events keep coming."""

    def on_stream_unsubscribe(
        self, connection: Connection, message: Message, now_ms: int
    ) -> Step[None]:
        stream_id = message["payload"]["streamId"]
        if stream_id not in connection.streams:
            yield from super().on_stream_unsubscribe(connection, message, now_ms)
            return
        yield self._respond(connection, message, {"streamId": stream_id})


class RetryAfterMissing(ServerCore):
    """RATE-003: rate_limited errors do not say when to try again."""

    def _admit(self, connection: Connection, now_ms: int, correlation: str | None) -> Step[bool]:
        def strip(effect: Effect) -> Effect:
            if isinstance(effect, Send) and effect.message.get("type") == "error":
                effect.message["payload"].pop("retry_after_ms", None)
            return effect

        allowed: bool = yield from mapped(super()._admit(connection, now_ms, correlation), strip)
        return allowed


class StatusesAlwaysOnline(ServerCore):
    """PRES-002: member lists ignore the status members set."""

    def on_room_join(self, connection: Connection, message: Message, now_ms: int) -> Step[None]:
        def online(effect: Effect) -> Effect:
            if isinstance(effect, Send) and effect.message.get("type") == "room_join_response":
                for member in effect.message["payload"]["members"]:
                    member["status"] = "online"
            return effect

        yield from mapped(super().on_room_join(connection, message, now_ms), online)


class IgnoresLastEventId(ServerCore):
    """SSE-008: Last-Event-ID is ignored; every SSE request starts now, without telling a
    channel its position could not be resumed."""

    def open_event_stream(
        self,
        principal: Principal,
        channels: list[str],
        cursor: dict[str, str] | None,
        now_ms: int,
    ) -> tuple[str, Step[dict[str, str]]]:
        return super().open_event_stream(principal, channels, None, now_ms)
