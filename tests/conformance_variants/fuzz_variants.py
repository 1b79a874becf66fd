"""Broken servers that only a generated or multi-step case reveals.

Each core breaks one rule in a way no fixed single-message check of the kit reaches: a
count limit one past the boundary, a length counted in the wrong unit, a refused message
leaking to the room, a message lost after a quick leave and rejoin, a duplicate after an
SSE resume. Each :class:`FuzzVariant` names the check that must catch it and the
requirement the kit must report.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from reference_server.broker.base import Broker, Publication, StreamRead
from reference_server.config import ServerConfig
from reference_server.core.connection import Connection
from reference_server.core.effects import Effect, Publish, Send, Step, ask
from reference_server.core.server import Refused, ServerCore, room_topic
from rep_spec import MessageValidator, Problem, decode_text_frame
from tests.conformance_variants import cores

Message = dict[str, Any]
MENTION_LIMIT = 10
#: How soon after leaving a rejoin counts as "quick" for the rejoin variant.
QUICK_MS = 1000


def mapped(step: Step[Any], change: Callable[[Effect], Effect]) -> Step[Any]:
    """Run ``step`` with every effect it yields passed through ``change``."""
    answer: Any = None
    while True:
        try:
            effect = step.send(answer)
        except StopIteration as stop:
            return stop.value
        answer = yield change(effect)


class _MentionsUncounted(MessageValidator):
    def check_client_message(self, message: Any) -> Problem | None:
        problem = super().check_client_message(message)
        if problem is None or problem.code != "invalid_payload":
            return problem
        metadata = message.get("payload", {}).get("metadata")
        mentions = metadata.get("mentions") if isinstance(metadata, dict) else None
        if not isinstance(mentions, list) or len(mentions) <= MENTION_LIMIT:
            return problem
        trimmed = {**message["payload"], "metadata": {**metadata, "mentions": mentions[:10]}}
        return super().check_client_message({**message, "payload": trimmed})


class MentionCountNotEnforced(ServerCore):
    """CHAT-007/ERR-009: chat messages with more than 10 mentions are accepted."""

    def __init__(self, config: ServerConfig, **kw: Any) -> None:
        super().__init__(config, validator=_MentionsUncounted(), **kw)


class _Utf16Lengths(MessageValidator):
    def check_client_message(self, message: Any) -> Problem | None:
        problem = super().check_client_message(message)
        if problem is not None or not isinstance(message, dict):
            return problem
        content = message.get("payload", {}).get("content")
        if message.get("type") == "chat_message" and isinstance(content, str):
            units = len(content.encode("utf-16-le")) // 2
            if units > 1000:
                return Problem(
                    "invalid_payload",
                    f"content is {units} characters long",
                    "/payload/content",
                    "CHAT-007",
                    message.get("id"),
                )
        return None


class ContentCountedInUtf16(ServerCore):
    """ENV-009: chat content is measured in UTF-16 code units, as JavaScript's length does,
    so 1000 characters outside the Basic Multilingual Plane are refused."""

    def __init__(self, config: ServerConfig, **kw: Any) -> None:
        super().__init__(config, validator=_Utf16Lengths(), **kw)


class RefusedChatLeaksToRoom(ServerCore):
    """ERR-006: a chat message refused for its content is still shown to the other members."""

    def receive_text(self, client_id: str, data: str | bytes, now_ms: int) -> Step[None]:
        yield from super().receive_text(client_id, data, now_ms)
        connection = self.connections.get(client_id)
        message, problem = decode_text_frame(data)
        if connection is None or problem is not None or message.get("type") != "chat_message":
            return
        refused = self.validator.check_client_message(message)
        payload = message.get("payload")
        if (
            refused is None
            or refused.pointer != "/payload/content"
            or not isinstance(payload, dict)
        ):
            return
        room_id = payload.get("roomId")
        content = payload.get("content")
        if room_id not in connection.rooms or not isinstance(content, str):
            return
        copy = self._copy(
            connection, message, {"roomId": room_id, "content": content, "type": "text"}
        )
        yield Publish(
            Publication(room_topic(room_id), copy, exclude=frozenset({connection.client_id}))
        )


class LostAfterQuickRejoin(ServerCore):
    """CHAT-002: a member that leaves a room and joins it again within a second misses the
    next chat message another member sends there."""

    def __init__(self, config: ServerConfig, **kw: Any) -> None:
        super().__init__(config, **kw)
        self._left_at: dict[tuple[str, str], int] = {}
        self._skip: dict[str, set[str]] = {}

    def on_room_leave(self, connection: Connection, message: Message, now_ms: int) -> Step[None]:
        yield from super().on_room_leave(connection, message, now_ms)
        self._left_at[(connection.client_id, message["payload"]["roomId"])] = now_ms

    def on_room_join(self, connection: Connection, message: Message, now_ms: int) -> Step[None]:
        room_id = message["payload"]["roomId"]
        yield from super().on_room_join(connection, message, now_ms)
        left = self._left_at.pop((connection.client_id, room_id), None)
        if left is not None and now_ms - left < QUICK_MS:
            self._skip.setdefault(room_id, set()).add(connection.client_id)

    def on_chat_message(self, connection: Connection, message: Message, now_ms: int) -> Step[None]:
        room_id = message["payload"]["roomId"]
        skipped = self._skip.get(room_id, set()) - {connection.client_id}
        if not skipped or room_id not in connection.rooms:
            yield from super().on_chat_message(connection, message, now_ms)
            return
        self._skip[room_id] -= skipped

        def drop_rejoined(effect: Effect) -> Effect:
            if isinstance(effect, Publish):
                publication = effect.publication
                return Publish(replace(publication, exclude=publication.exclude | skipped))
            return effect

        yield from mapped(super().on_chat_message(connection, message, now_ms), drop_rejoined)


def _buffer_of(
    stream_id: str, retention_ms: int, now_ms: int
) -> Callable[[Broker], Awaitable[StreamRead]]:
    return lambda broker: broker.stream_read(stream_id, None, now_ms, retention_ms)


class DuplicateOnSseResume(ServerCore):
    """SSE-007: resuming with Last-Event-ID replays the event the cursor names once more."""

    def open_event_stream(
        self,
        principal: Any,
        channels: list[str],
        cursor: dict[str, str] | None,
        now_ms: int,
    ) -> tuple[str, Step[dict[str, str]]]:
        client_id, step = super().open_event_stream(principal, channels, cursor, now_ms)
        if not cursor:
            return client_id, step
        return client_id, self._with_repeat(client_id, step, cursor, now_ms)

    def _with_repeat(
        self, client_id: str, step: Step[dict[str, str]], cursor: dict[str, str], now_ms: int
    ) -> Step[dict[str, str]]:
        positions = yield from step
        connection = self.connections[client_id]
        for stream_id, after in cursor.items():
            stream = self.config.stream(stream_id)
            if stream is None or stream_id not in connection.held:
                continue
            read = yield from ask(_buffer_of(stream_id, stream.retention_ms, now_ms))
            repeated = [e for e in read.events if e.id == after]
            if repeated:
                held = connection.held[stream_id]
                held.insert(0, self.stream_event_message(stream_id, repeated[0], True))
        return positions


#: The refused IPv4 ranges as a hand-written table that is too narrow: each holds the
#: well-known address (127.0.0.1, the cloud metadata address, ...) but not the whole range.
NARROW_RANGES = tuple(
    ipaddress.IPv4Network(network)
    for network in (
        "127.0.0.0/24",
        "10.0.0.0/8",
        "172.16.0.0/16",
        "192.168.0.0/24",
        "169.254.169.0/24",
        "0.0.0.0/32",
        "224.0.0.0/24",
        "240.0.0.0/24",
    )
)


#: The refused IPv6 ranges, cut down the same way: each holds the addresses of the fixed
#: list (::1, fe80::1, fd12:3456::1, ::, ff02::1) but not the whole range.
NARROW_V6_RANGES = tuple(
    ipaddress.IPv6Network(network)
    for network in ("::1/128", "::/128", "fe80::/64", "fd00::/8", "ff02::/16")
)


def _narrow_refusal(url: str) -> str | None:
    """The reference's reading of every notation, judged against the narrow table."""
    from reference_server.core.policy import _literal_ip, refused_attachment_host

    host = (urlsplit(url).hostname or "").rstrip(".")
    address = _literal_ip(host)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if isinstance(address, ipaddress.IPv6Address):
        return "internal address" if any(address in n for n in NARROW_V6_RANGES) else None
    if not isinstance(address, ipaddress.IPv4Address):
        return refused_attachment_host(url)
    return "internal address" if any(address in net for net in NARROW_RANGES) else None


class AttachmentRangesTooNarrow(ServerCore):
    """CHAT-004: every notation is read right, but each refused range is cut down to a /24
    or so around its best-known address; 127.8.9.10, 192.168.200.1 or fc00::5 slip through."""

    def on_chat_message(self, connection: Connection, message: Message, now_ms: int) -> Step[None]:
        payload = message["payload"]
        metadata = payload.get("metadata", {})
        attachments = metadata.get("attachments")
        if not attachments:
            yield from super().on_chat_message(connection, message, now_ms)
            return
        for index, attachment in enumerate(attachments):
            reason = _narrow_refusal(attachment["url"])
            if reason is not None:
                raise Refused("invalid_payload", f"attachment {index}: {reason}", "CHAT-004")
        bare = {**message, "payload": {**payload, "metadata": {**metadata, "attachments": []}}}

        def restore(effect: Effect) -> Effect:
            if isinstance(effect, Publish):
                copy = effect.publication.message["payload"]
                copy["metadata"] = {**copy.get("metadata", {}), "attachments": attachments}
            return effect

        yield from mapped(super().on_chat_message(connection, bare, now_ms), restore)


class RecreatedRecordContinuesItsVersion(ServerCore):
    """DATA-002: a record created again after its delete continues from the version it was
    deleted at (a tombstone that kept its count): the copy says 3 where it must say 1."""

    def __init__(self, config: ServerConfig, **kw: Any) -> None:
        super().__init__(config, **kw)
        self._deleted_at: dict[tuple[str, str], int] = {}

    def _data_change(
        self, connection: Connection, message: Message, outcome: Any, include_data: bool
    ) -> Step[None]:
        if outcome.status == "ok" and outcome.record is not None:
            key = (message["payload"]["collection"], outcome.record.record_id)
            if message["type"] == "data_delete":
                self._deleted_at[key] = outcome.record.version
            elif message["type"] == "data_create" and key in self._deleted_at:
                record = replace(outcome.record, version=self._deleted_at.pop(key) + 1)
                outcome = replace(outcome, record=record)
        yield from super()._data_change(connection, message, outcome, include_data)


class SecondSyncSubscribesAgain(ServerCore):
    """DATA-008: a connection that syncs a collection it already follows is subscribed once
    more, and receives every later change of it twice."""

    def __init__(self, config: ServerConfig, **kw: Any) -> None:
        super().__init__(config, **kw)
        self._again: set[tuple[str, str]] = set()

    def on_data_sync(self, connection: Connection, message: Message, now_ms: int) -> Step[None]:
        collection = message["payload"]["collection"]
        if collection in connection.collections:
            self._again.add((connection.client_id, collection))
        yield from super().on_data_sync(connection, message, now_ms)

    def _data_change(
        self, connection: Connection, message: Message, outcome: Any, include_data: bool
    ) -> Step[None]:
        copies: list[Message] = []

        def keep(effect: Effect) -> Effect:
            if isinstance(effect, Publish):
                copies.append(effect.publication.message)
            return effect

        yield from mapped(super()._data_change(connection, message, outcome, include_data), keep)
        collection = message["payload"]["collection"]
        for client_id, followed in sorted(self._again):
            if copies and followed == collection and client_id in self.connections:
                again = self._copy(connection, message, dict(copies[0]["payload"]))
                yield Send(client_id, again)


def _kept_empty(room_id: str) -> Callable[[Broker], Awaitable[None]]:
    async def keep(broker: Broker) -> None:
        rooms = getattr(broker, "_rooms", None)
        if isinstance(rooms, dict):
            rooms.setdefault(room_id, {})

    return keep


class EmptyRoomsKept(ServerCore):
    """ROOM-009: a room stays behind, empty, after its last member leaves or disconnects
    (the ``empty-rooms-kept`` patch as a core: it changes only this server's broker, so it
    can run beside other variants in one process)."""

    def on_room_leave(self, connection: Connection, message: Message, now_ms: int) -> Step[None]:
        room_id = message["payload"]["roomId"]
        member = room_id in connection.rooms
        yield from super().on_room_leave(connection, message, now_ms)
        if member:
            yield from ask(_kept_empty(room_id))

    def _leave_rooms(self, connection: Connection) -> Step[None]:
        rooms = sorted(connection.rooms)
        yield from super()._leave_rooms(connection)
        for room_id in rooms:
            yield from ask(_kept_empty(room_id))


@dataclass(frozen=True)
class FuzzVariant:
    name: str
    breaks: str
    check: str
    core: type[ServerCore]


FUZZ_VARIANTS = [
    FuzzVariant(
        "mention-count-not-enforced",
        "ERR-009",
        "test_generated_invalid_messages_are_refused_with_the_documented_code",
        MentionCountNotEnforced,
    ),
    FuzzVariant(
        "refused-chat-leaks-to-the-room",
        "ERR-006",
        "test_generated_invalid_messages_are_refused_with_the_documented_code",
        RefusedChatLeaksToRoom,
    ),
    FuzzVariant(
        "content-counted-in-utf16-units",
        "ENV-009",
        "test_generated_valid_messages_get_an_answer_the_spec_allows",
        ContentCountedInUtf16,
    ),
    FuzzVariant(
        "message-lost-after-a-quick-rejoin",
        "CHAT-002",
        "test_room_programs_deliver_exactly_what_the_model_predicts",
        LostAfterQuickRejoin,
    ),
    FuzzVariant(
        "duplicate-on-sse-resume",
        "SSE-007",
        "test_stream_programs_deliver_each_event_once_over_websocket_and_sse",
        DuplicateOnSseResume,
    ),
    FuzzVariant(
        "member-list-one-entry-per-user-in-programs",
        "ROOM-003",
        "test_room_programs_deliver_exactly_what_the_model_predicts",
        cores.OneEntryPerUser,
    ),
    FuzzVariant(
        "ghost-member-after-a-refused-join-in-programs",
        "ERR-004",
        "test_room_programs_deliver_exactly_what_the_model_predicts",
        cores.GhostMemberOnRefusedJoin,
    ),
    FuzzVariant(
        "beyond-newest-is-no-gap-in-programs",
        "STREAM-005",
        "test_stream_programs_deliver_each_event_once_over_websocket_and_sse",
        cores.BeyondNewestIsNoGap,
    ),
    FuzzVariant(
        "attachment-ranges-too-narrow",
        "CHAT-004",
        "test_generated_internal_attachment_hosts_are_refused",
        AttachmentRangesTooNarrow,
    ),
    FuzzVariant(
        "version-from-collection-revision-in-programs",
        "DATA-002",
        "test_data_programs_keep_versions_revisions_and_syncs_as_the_model_predicts",
        cores.VersionFromCollectionRevision,
    ),
    FuzzVariant(
        "sync-since-inclusive-in-programs",
        "DATA-011",
        "test_data_programs_keep_versions_revisions_and_syncs_as_the_model_predicts",
        cores.SyncSinceInclusive,
    ),
    FuzzVariant(
        "re-created-record-continues-its-version",
        "DATA-002",
        "test_data_programs_keep_versions_revisions_and_syncs_as_the_model_predicts",
        RecreatedRecordContinuesItsVersion,
    ),
    FuzzVariant(
        "second-sync-subscribes-again",
        "DATA-008",
        "test_data_programs_keep_versions_revisions_and_syncs_as_the_model_predicts",
        SecondSyncSubscribesAgain,
    ),
    FuzzVariant(
        "client-ids-from-open-count-in-programs",
        "AUTH-011",
        "test_room_programs_deliver_exactly_what_the_model_predicts",
        cores.ClientIdFromOpenCount,
    ),
    FuzzVariant(
        "empty-rooms-kept-in-programs",
        "ROOM-009",
        "test_room_programs_deliver_exactly_what_the_model_predicts",
        EmptyRoomsKept,
    ),
    FuzzVariant(
        "refused-messages-count-in-programs",
        "RATE-001",
        "test_room_programs_deliver_exactly_what_the_model_predicts",
        cores.RefusedMessagesCount,
    ),
    FuzzVariant(
        "per-connection-rate-window-in-programs",
        "RATE-001",
        "test_room_programs_deliver_exactly_what_the_model_predicts",
        cores.PerConnectionWindow,
    ),
    FuzzVariant(
        "heartbeats-six-percent-late-in-programs",
        "LIFE-002",
        "test_room_programs_deliver_exactly_what_the_model_predicts",
        cores.HeartbeatsSixPercentLate,
    ),
]
