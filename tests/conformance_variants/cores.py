"""Broken server cores: each subclass of the reference core breaks exactly one rule.

They exist to prove that the conformance kit notices; they live in the project's tests,
never in the shipped kit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from reference_server.auth import Principal
from reference_server.broker.base import Member, event_position
from reference_server.config import ServerConfig
from reference_server.core.base import Refused, leave_room_call
from reference_server.core.connection import Connection
from reference_server.core.effects import Close, Effect, Publish, Send, Step, ask
from reference_server.core.messages import MessageFactory
from reference_server.core.server import ServerCore
from reference_server.core.streams import SubscribeOutcome
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

    def _leave_rooms(self, connection: Connection) -> Step[None]:
        for room_id in sorted(connection.rooms):
            yield from ask(leave_room_call(room_id, connection.client_id))  # no notice
            connection.rooms.discard(room_id)
        yield from super()._leave_rooms(connection)


class CollectionChangesTwice(ServerCore):
    """DATA-008: subscribers receive every change of a collection twice."""

    def deliver(self, publication: Any) -> Iterable[Send]:
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


# -- blind classes: each bug passed the kit before its check existed ------------------


class OneEntryPerUser(ServerCore):
    """ROOM-003: member lists carry one entry per user, not per connection."""

    def on_room_join(self, connection: Connection, message: Message, now_ms: int) -> Step[None]:
        def per_user(effect: Effect) -> Effect:
            if isinstance(effect, Send) and effect.message.get("type") == "room_join_response":
                members = effect.message["payload"]["members"]
                seen: dict[str, Any] = {}
                for member in members:
                    seen.setdefault(member["userId"], member)
                effect.message["payload"]["members"] = list(seen.values())
            return effect

        yield from mapped(super().on_room_join(connection, message, now_ms), per_user)


class StatusClearedByAnyClose(ServerCore):
    """PRES-002: a user's status is forgotten when any one of its connections ends."""

    def _leave_everything(self, connection: Connection) -> Step[None]:
        yield from super()._leave_everything(connection)
        yield from ask(lambda b: b.clear_status(connection.user_id))


class StatusSkipsTheUsersOtherConnections(ServerCore):
    """PRES-001: the sender's other connections in its rooms get no copy of its status."""

    def on_status_update(self, connection: Connection, message: Message, now_ms: int) -> Step[None]:
        def own_user_only_here(effect: Effect) -> Effect:
            if isinstance(effect, Publish) and effect.publication.recipients is not None:
                siblings = {
                    c.client_id
                    for c in self.connections.values()
                    if c.user_id == connection.user_id and c.client_id != connection.client_id
                }
                return Publish(
                    replace(
                        effect.publication,
                        recipients=effect.publication.recipients - siblings,
                    )
                )
            return effect

        yield from mapped(super().on_status_update(connection, message, now_ms), own_user_only_here)


class GhostMemberOnWrongPassword(ServerCore):
    """ERR-004: a join refused for its password still registers the client as a member."""

    def on_room_join(self, connection: Connection, message: Message, now_ms: int) -> Step[None]:
        room_id = message["payload"]["roomId"]
        room = self.config.room(room_id)
        wrong = room is not None and message["payload"].get("password") != room.password
        if room is not None and room.password is not None and wrong:
            member = Member(connection.user_id, connection.client_id)
            yield from ask(lambda b: b.join_room(room_id, member))
        yield from super().on_room_join(connection, message, now_ms)


class RoomsMatchedByPrefix(ServerCore):
    """CHAT-002: room ids are compared up to their first ':', so rooms sharing a prefix
    receive each other's traffic."""

    def deliver(self, publication: Any) -> Iterable[Send]:
        kind, _, name = publication.topic.partition(":")
        if kind != "room":
            return super().deliver(publication)
        prefix = name.split(":")[0]
        return [
            Send(c.client_id, publication.message)
            for c in self.connections.values()
            if c.is_open
            and c.client_id not in publication.exclude
            and any(r.split(":")[0] == prefix for r in c.rooms)
        ]


class VersionFromCollectionRevision(ServerCore):
    """DATA-004: a change's copy carries the collection's revision as the record version."""

    def _data_change(
        self, connection: Connection, message: Message, outcome: Any, include_data: bool
    ) -> Step[None]:
        if outcome.record is not None and outcome.status == "ok":
            record = replace(outcome.record, version=outcome.revision)
            outcome = replace(outcome, record=record)
        yield from super()._data_change(connection, message, outcome, include_data)


class SyncSinceInclusive(ServerCore):
    """DATA-011: sinceRevision is treated as inclusive (changes at it are listed again)."""

    def on_data_sync(self, connection: Connection, message: Message, now_ms: int) -> Step[None]:
        payload = message["payload"]
        if payload.get("sinceRevision"):
            payload = {**payload, "sinceRevision": payload["sinceRevision"] - 1}
        yield from super().on_data_sync(connection, {**message, "payload": payload}, now_ms)


class OldIdsReplayTheBuffer(ServerCore):
    """STREAM-005: an id older than the buffer replays what is left, claiming no gap."""

    def _subscribe_stream(
        self,
        connection: Connection,
        stream_id: str,
        stream_filter: Any,
        after: str | None,
        *,
        replay_all: bool,
        now_ms: int,
    ) -> Step[SubscribeOutcome]:
        outcome: SubscribeOutcome = yield from super()._subscribe_stream(
            connection, stream_id, stream_filter, after, replay_all=replay_all, now_ms=now_ms
        )
        given = event_position(after) if after is not None else None
        newest = event_position(outcome.newest) or (0, 0)
        if outcome.found or given is None or given > newest:
            return outcome
        again: SubscribeOutcome = yield from super()._subscribe_stream(
            connection, stream_id, stream_filter, None, replay_all=True, now_ms=now_ms
        )
        return SubscribeOutcome(True, again.replayed, again.newest)


class RefusedMessagesCount(ServerCore):
    """RATE-001: messages refused by the limit count toward the window, so a client that
    keeps sending while limited stays locked out."""

    def _admit(self, connection: Connection, now_ms: int, correlation: str | None) -> Step[bool]:
        allowed: bool = yield from super()._admit(connection, now_ms, correlation)
        if not allowed:
            rate = self.config.rate_limit
            yield from ask(
                lambda b: b.rate_limit_hit(connection.user_id, now_ms, rate.window_ms, 10**9)
            )
        return allowed


class PerConnectionWindow(ServerCore):
    """RATE-001: the rate window is kept per connection instead of per user."""

    def _admit(self, connection: Connection, now_ms: int, correlation: str | None) -> Step[bool]:
        alone = Connection(
            connection.client_id,
            replace(connection.principal, user_id=f"{connection.user_id}/{connection.client_id}"),
            connection.opened_ms,
            connection.last_received_ms,
            connection.last_heartbeat_ms,
        )
        allowed: bool = yield from super()._admit(alone, now_ms, correlation)
        return allowed


class HeartbeatsSixPercentLate(ServerCore):
    """LIFE-002: every heartbeat comes 6 % after the interval; no single gap exceeds the
    kit's tolerance, but every one is late."""

    def tick(self, now_ms: int) -> Step[None]:
        late = int(self.config.heartbeat_interval_ms * 1.06)
        before = {c.client_id: c.last_heartbeat_ms for c in self.connections.values()}

        def too_early(effect: Effect) -> bool:
            if not (isinstance(effect, Send) and effect.message.get("type") == "heartbeat"):
                return False
            connection = self.connections.get(effect.client_id)
            last = before.get(effect.client_id)
            if connection is None or last is None or now_ms >= last + late:
                return False
            connection.last_heartbeat_ms = last  # try again at the next tick
            return True

        yield from filtered(super().tick(now_ms), too_early)


class ClientIdFromOpenCount(ServerCore):
    """AUTH-011: clientIds number the open connections, so an id in use comes back after
    an earlier connection closes."""

    def _new_client_id(self, kind: str) -> str:
        return f"{self.messages.node_id}-{kind}{len(self.connections) + 1}"


class PrivateRoomsHiddenAsNotFound(ServerCore):
    """ROOM-015: a join the room's rules refuse is answered not_found."""

    def _error(self, connection: Connection, refusal: Any, correlation: str | None) -> Send:
        if refusal.code == "forbidden" and refusal.requirement in ("ROOM-010", "ROOM-011"):
            refusal = type(refusal)("not_found", refusal.message, refusal.requirement)
        return super()._error(connection, refusal, correlation)


class ChatToMissingRoomNotFound(ServerCore):
    """CHAT-001: a chat_message to a room without members is answered not_found."""

    def on_chat_message(self, connection: Connection, message: Message, now_ms: int) -> Step[None]:
        room_id = message["payload"]["roomId"]
        members = yield from ask(lambda b: b.room_members(room_id))
        if not members and self.config.room(room_id) is None:
            raise Refused("not_found", f"no room {room_id}", "CHAT-001")
        yield from super().on_chat_message(connection, message, now_ms)


class AnnouncementRoomCheckedFirst(ServerCore):
    """NOTIF-004: the room is looked up before message:announce is checked."""

    def on_notification(self, connection: Connection, message: Message, now_ms: int) -> Step[None]:
        room_id = message["payload"].get("roomId")
        if room_id is not None:
            members = yield from ask(lambda b: b.room_members(room_id))
            if not members and self.config.room(room_id) is None:
                raise Refused("not_found", f"no room {room_id}", "NOTIF-003")
        yield from super().on_notification(connection, message, now_ms)


class OthersCopiesUncorrelated(ServerCore):
    """MSG-007: only the sender's copy of a chat message carries correlation_id."""

    def deliver(self, publication: Any) -> Iterable[Send]:
        sends = super().deliver(publication)
        sender = publication.message.get("metadata", {}).get("sender", {}).get("clientId")
        if publication.message.get("type") != "chat_message":
            return sends
        changed = []
        for send in sends:
            if send.client_id != sender:
                message = {**send.message, "metadata": dict(send.message["metadata"])}
                message["metadata"].pop("correlation_id", None)
                send = Send(send.client_id, message)
            changed.append(send)
        return changed


class GapOmittedWhenResumable(ServerCore):
    """STREAM-013: gap is left out of the response when the position was found."""

    def on_stream_subscribe(
        self, connection: Connection, message: Message, now_ms: int
    ) -> Step[None]:
        def drop_false_gap(effect: Effect) -> Effect:
            if (
                isinstance(effect, Send)
                and effect.message.get("type") == "stream_subscribe_response"
            ) and effect.message["payload"].get("gap") is False:
                effect.message["payload"].pop("gap")
            return effect

        yield from mapped(super().on_stream_subscribe(connection, message, now_ms), drop_false_gap)


class WelcomeListsOnlyTheClaim(ServerCore):
    """AUTH-013: the welcome's permissions are the token's permissions claim only."""

    def _welcome(self, connection: Connection) -> Step[None]:
        def claim_only(effect: Effect) -> Effect:
            if isinstance(effect, Send) and effect.message.get("type") == "auth":
                roles = connection.principal.roles
                effective = set(connection.principal.permissions)
                claimed = effective - set(catalog().permissions_of(roles))
                effect.message["payload"]["permissions"] = sorted(claimed)
            return effect

        yield from mapped(super()._welcome(connection), claim_only)


class GhostMemberOnRefusedJoin(ServerCore):
    """ERR-004: a join refused for lack of room:join still registers the client."""

    def on_room_join(self, connection: Connection, message: Message, now_ms: int) -> Step[None]:
        if not connection.principal.can("room:join"):
            member = Member(connection.user_id, connection.client_id)
            room_id = message["payload"]["roomId"]
            yield from ask(lambda b: b.join_room(room_id, member))
        yield from super().on_room_join(connection, message, now_ms)


class BeyondNewestIsNoGap(ServerCore):
    """STREAM-005: a lastEventId beyond the newest event is taken as up to date (gap false)."""

    def on_stream_subscribe(
        self, connection: Connection, message: Message, now_ms: int
    ) -> Step[None]:
        def no_gap(effect: Effect) -> Effect:
            if (
                isinstance(effect, Send)
                and effect.message.get("type") == "stream_subscribe_response"
            ):
                effect.message["payload"]["gap"] = False
            return effect

        yield from mapped(super().on_stream_subscribe(connection, message, now_ms), no_gap)


class SseTokensNeverExpire(ServerCore):
    """SSE-013 (a SHOULD): event streams outlive their token."""

    def tick(self, now_ms: int) -> Step[None]:
        code = catalog().close_code("token_expired")

        def sse_expiry(effect: Effect) -> bool:
            if not (isinstance(effect, Close) and effect.code == code):
                return False
            connection = self.connections.get(effect.client_id)
            if connection is None or connection.transport != "sse":
                return False
            connection.state = type(connection.state).OPEN  # as if nothing had happened
            return True

        yield from filtered(super().tick(now_ms), sse_expiry)


class ErrorsHeldUntilTheNextPong(ServerCore):
    """MSG-008: pings are answered on a fast path; errors wait in a per-connection queue
    that is flushed only after the next pong, so a later ping overtakes earlier refusals."""

    held: dict[str, list[Effect]]

    def receive_text(self, client_id: str, data: str | bytes, now_ms: int) -> Step[None]:
        held = self.__dict__.setdefault("held", {}).setdefault(client_id, [])
        step = super().receive_text(client_id, data, now_ms)
        answer: Any = None
        ponged = False
        while True:
            try:
                effect = step.send(answer)
            except StopIteration:
                break
            if isinstance(effect, Send) and effect.message.get("type") == "error":
                held.append(effect)
                answer = None
                continue
            ponged = ponged or (isinstance(effect, Send) and effect.message.get("type") == "pong")
            answer = yield effect
        if ponged:
            while held:
                yield held.pop(0)


def _fifteen_digits(value: Any) -> Any:
    """Numbers kept as 15 significant digits, as a REAL column printed with %.15g keeps them."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(f"{value:.15g}")
    if isinstance(value, list):
        return [_fifteen_digits(item) for item in value]
    if isinstance(value, dict):
        return {key: _fifteen_digits(item) for key, item in value.items()}
    return value


class EventNumbersRoundedToFifteenDigits(ServerCore):
    """STREAM-012: published data is stored with numbers cut to 15 significant digits, so
    2^60 arrives as a different double."""

    def publish_event(
        self, stream_id: str, event_type: str, tags: list[str], data: Any, now_ms: int
    ) -> Step[Any]:
        return super().publish_event(stream_id, event_type, tags, _fifteen_digits(data), now_ms)


class EmptyChatAfterSanitizingRefused(ServerCore):
    """CHAT-008: a message whose content is empty once sanitized is refused instead of
    being distributed with empty content."""

    def on_chat_message(self, connection: Connection, message: Message, now_ms: int) -> Step[None]:
        from reference_server.core.policy import sanitize_chat_content

        if not sanitize_chat_content(message["payload"]["content"]).strip():
            raise Refused("invalid_payload", "content is empty after sanitizing", "CHAT-008")
        yield from super().on_chat_message(connection, message, now_ms)


class LeavingNeedsRoomLeave(ServerCore):
    """ROOM-013: room_leave is refused to a member whose token lacks room:leave."""

    def on_room_leave(self, connection: Connection, message: Message, now_ms: int) -> Step[None]:
        self._require(connection, "room:leave", "ROOM-013")
        yield from super().on_room_leave(connection, message, now_ms)


class RejoinSkipsTheRoomRules(ServerCore):
    """ROOM-014: a member's repeated join is accepted without judging the room's rules
    again (a wrong password passes)."""

    def on_room_join(self, connection: Connection, message: Message, now_ms: int) -> Step[None]:
        room_id = message["payload"]["roomId"]
        room = self.config.room(room_id)
        if room_id in connection.rooms and room is not None and room.password is not None:
            payload = {**message["payload"], "password": room.password}
            message = {**message, "payload": payload}
        yield from super().on_room_join(connection, message, now_ms)


class SseChannelsCheckedBeforeSubscribe(ServerCore):
    """SSE-014: an unknown channel is reported (404) before a missing stream:subscribe."""

    def check_event_stream(self, principal: Principal, channels: list[str]) -> None:
        for stream_id in channels:
            if self.config.stream(stream_id) is None:
                raise Refused("not_found", f"no stream {stream_id}", "SSE-006")
        super().check_event_stream(principal, channels)


class SseRequestsCountTowardTheRateLimit(ServerCore):
    """SSE-015: each SSE request uses a slot of its user's message window."""

    def open_event_stream(
        self,
        principal: Principal,
        channels: list[str],
        cursor: dict[str, str] | None,
        now_ms: int,
    ) -> tuple[str, Step[dict[str, str]]]:
        client_id, opening = super().open_event_stream(principal, channels, cursor, now_ms)
        rate = self.config.rate_limit

        def counted() -> Step[dict[str, str]]:
            yield from ask(
                lambda b: b.rate_limit_hit(
                    principal.user_id, now_ms, rate.window_ms, rate.max_messages
                )
            )
            return (yield from opening)

        return client_id, counted()


class TokensExpireASecondEarly(ServerCore):
    """AUTH-014: exp is read as the last second of validity's start, so connections are
    closed one second before exp."""

    def connect(self, principal: Principal, now_ms: int) -> tuple[str, Step[None]]:
        if principal.expires_at is not None:
            principal = replace(principal, expires_at=principal.expires_at - 1)
        return super().connect(principal, now_ms)


class CleanupAwaitsTheClosingHandshake(ServerCore):
    """LIFE-009: after sending its close frame the server leaves the rooms only once the
    closing handshake is over; for a peer that never answers, that is when its close
    timeout (5 s here; websockets' default is 10 s) runs out."""

    def _ended(self, connection: Connection) -> Step[None]:
        return
        yield

    def disconnected(self, client_id: str) -> Step[None]:
        connection = self.connections.get(client_id)
        if connection is not None and not connection.is_open:  # the server closed it
            yield from ask(lambda b: asyncio.sleep(5))
        yield from super().disconnected(client_id)


class _LocalTimeLabelledUtc(MessageFactory):
    def timestamp(self) -> str:
        local = datetime.now(UTC) + timedelta(hours=2)  # a server clock set to UTC+2
        return local.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


class TimestampsInLocalTimeLabelledUtc(ServerCore):
    """ENV-004: timestamps are the local time (UTC+2) with a Z, two hours off."""

    def __init__(self, config: ServerConfig, **kw: Any) -> None:
        super().__init__(config, **{**kw, "messages": _factory(_LocalTimeLabelledUtc, kw)})
