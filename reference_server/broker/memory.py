"""The embedded broker: one process, plain dictionaries, no awaiting anything real."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reference_server.broker.base import (
    Broker,
    DeliveryCallback,
    JoinResult,
    LeaveResult,
    Member,
    Publication,
    RateDecision,
    Record,
    RecordOutcome,
    StreamEvent,
    StreamRead,
    SyncResult,
    event_position,
)


@dataclass
class _Collection:
    revision: int = 0
    records: dict[str, tuple[Record, int]] = field(default_factory=dict)  # id -> (record, rev)
    deleted: dict[str, int] = field(default_factory=dict)  # id -> revision of deletion


@dataclass
class _Stream:
    events: deque[StreamEvent] = field(default_factory=deque)
    last_ms: int = 0
    sequence: int = 0
    dropped: tuple[int, int] = (0, 0)  # position of the newest event no longer buffered


ALLOWED = RateDecision(True)


class MemoryBroker(Broker):
    def __init__(self) -> None:
        self._callbacks: list[DeliveryCallback] = []
        self._connections: dict[str, str] = {}
        self._by_user: dict[str, set[str]] = defaultdict(set)
        self._rooms: dict[str, dict[str, Member]] = {}
        self._statuses: dict[str, str] = {}
        self._windows: dict[str, deque[int]] = defaultdict(deque)
        self._collections: dict[str, _Collection] = defaultdict(_Collection)
        self._streams: dict[str, _Stream] = defaultdict(_Stream)

    async def close(self) -> None:
        self._callbacks.clear()

    def on_publication(self, callback: DeliveryCallback) -> None:
        self._callbacks.append(callback)

    async def publish(self, publication: Publication) -> None:
        for callback in self._callbacks:
            callback(publication)

    async def connection_opened(self, client_id: str, user_id: str) -> None:
        self._forget(client_id)  # a reused client id moves to its new user
        self._connections[client_id] = user_id
        self._by_user[user_id].add(client_id)

    async def connection_closed(self, client_id: str, user_id: str) -> int:
        self._forget(client_id)
        return len(self._by_user.get(user_id, ()))

    def _forget(self, client_id: str) -> None:
        owner = self._connections.pop(client_id, None)
        if owner is not None:
            self._by_user[owner].discard(client_id)
            if not self._by_user[owner]:
                del self._by_user[owner]

    async def connection_count(self) -> int:
        return len(self._connections)

    async def join_room(
        self, room_id: str, member: Member, announce: Publication | None = None
    ) -> JoinResult:
        room = self._rooms.setdefault(room_id, {})
        already = member.client_id in room
        room[member.client_id] = member
        if announce is not None and not already:
            await self.publish(announce)
        return JoinResult(tuple(room.values()), already)

    async def leave_room(
        self, room_id: str, client_id: str, announce: Publication | None = None
    ) -> LeaveResult:
        room = self._rooms.get(room_id)
        if room is None or client_id not in room:
            return LeaveResult(False, tuple(room.values()) if room else ())
        del room[client_id]
        if not room:
            del self._rooms[room_id]
        if announce is not None:
            await self.publish(announce)
        return LeaveResult(True, tuple(room.values()))

    async def room_members(self, room_id: str) -> tuple[Member, ...]:
        return tuple(self._rooms.get(room_id, {}).values())

    async def room_count(self) -> int:
        return len(self._rooms)

    async def set_status(self, user_id: str, status: str) -> None:
        self._statuses[user_id] = status

    async def clear_status(self, user_id: str) -> None:
        self._statuses.pop(user_id, None)

    async def statuses(self, user_ids: Sequence[str]) -> dict[str, str]:
        return {user: self._statuses[user] for user in user_ids if user in self._statuses}

    async def rate_limit_hit(
        self, user_id: str, now_ms: int, window_ms: int, limit: int
    ) -> RateDecision:
        window = self._windows[user_id]
        while window and window[0] <= now_ms - window_ms:
            window.popleft()
        if len(window) >= limit:
            return RateDecision(False, max(1, window[0] + window_ms - now_ms))
        window.append(now_ms)
        return ALLOWED

    async def record_create(
        self, collection: str, record_id: str, data: dict[str, Any]
    ) -> RecordOutcome:
        state = self._collections[collection]
        if record_id in state.records:
            return RecordOutcome("conflict", state.records[record_id][0], state.revision)
        state.revision += 1
        record = Record(record_id, 1, data)
        state.records[record_id] = (record, state.revision)
        state.deleted.pop(record_id, None)
        return RecordOutcome("ok", record, state.revision)

    @staticmethod
    def _refusal(state: _Collection, record_id: str, expected: int | None) -> RecordOutcome | None:
        """The outcome when a change to ``record_id`` may not apply (missing, or stale)."""
        current = state.records.get(record_id)
        if current is None:
            return RecordOutcome("not_found", None, state.revision)
        if expected is not None and expected != current[0].version:
            return RecordOutcome("conflict", current[0], state.revision)
        return None

    async def record_update(
        self, collection: str, record_id: str, data: dict[str, Any], expected: int | None
    ) -> RecordOutcome:
        state = self._collections[collection]
        refusal = self._refusal(state, record_id, expected)
        if refusal is not None:
            return refusal
        state.revision += 1
        record = Record(record_id, state.records[record_id][0].version + 1, data)
        state.records[record_id] = (record, state.revision)
        return RecordOutcome("ok", record, state.revision)

    async def record_delete(
        self, collection: str, record_id: str, expected: int | None
    ) -> RecordOutcome:
        state = self._collections[collection]
        refusal = self._refusal(state, record_id, expected)
        if refusal is not None:
            return refusal
        state.revision += 1
        record, _ = state.records.pop(record_id)
        state.deleted[record_id] = state.revision
        return RecordOutcome("ok", record, state.revision)

    async def record_sync(self, collection: str, since_revision: int | None) -> SyncResult:
        state = self._collections.get(collection) or _Collection()
        since = since_revision if since_revision is not None else -1
        records = tuple(record for record, rev in state.records.values() if rev > since)
        deleted = tuple(
            rid for rid, rev in state.deleted.items() if since_revision is not None and rev > since
        )
        return SyncResult(state.revision, records, deleted)

    async def stream_append(
        self,
        stream_id: str,
        event_type: str,
        tags: Sequence[str],
        data: Any,
        now_ms: int,
        buffer_size: int,
        retention_ms: int,
    ) -> StreamEvent:
        stream = self._streams[stream_id]
        # Ids are <ms>-<seq>, strictly increasing even if the clock stalls or steps back.
        if now_ms > stream.last_ms:
            stream.last_ms, stream.sequence = now_ms, 0
        else:
            stream.sequence += 1
        event = StreamEvent(
            id=f"{stream.last_ms}-{stream.sequence}",
            type=event_type,
            tags=tuple(tags),
            data=data,
            published_at=datetime.fromtimestamp(now_ms / 1000, UTC).isoformat(),
            published_ms=now_ms,
        )
        stream.events.append(event)
        self._trim(stream, now_ms, buffer_size, retention_ms)
        return event

    @staticmethod
    def _trim(stream: _Stream, now_ms: int, buffer_size: int, retention_ms: int) -> None:
        while stream.events and (
            len(stream.events) > buffer_size
            or stream.events[0].published_ms < now_ms - retention_ms
        ):
            gone = stream.events.popleft()
            stream.dropped = max(stream.dropped, event_position(gone.id) or (0, 0))

    async def stream_read(
        self, stream_id: str, after: str | None, now_ms: int, retention_ms: int
    ) -> StreamRead:
        stream = self._streams[stream_id]
        self._trim(stream, now_ms, len(stream.events), retention_ms)
        if after is None:
            return StreamRead(tuple(stream.events), True)
        position = event_position(after)
        newest = (stream.last_ms, stream.sequence) if stream.last_ms else (0, 0)
        if position is None or position < stream.dropped or position > newest:
            return StreamRead((), False)
        return StreamRead(
            tuple(e for e in stream.events if (event_position(e.id) or (0, 0)) > position),
            True,
        )
