"""The broker interface: everything the nodes of a cluster must share.

Every method is a single atomic operation, so a Redis implementation can map each one to
one command, transaction or script. The core never holds a lock across two calls.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal


class BrokerUnavailable(Exception):
    """The store shared by the nodes cannot be reached: at start, or during an outage."""


@dataclass(frozen=True)
class Member:
    user_id: str
    client_id: str


@dataclass(frozen=True)
class JoinResult:
    members: tuple[Member, ...]
    already_member: bool
    #: Where publication order stood at the join (a cluster bus position; "" if ordering is
    #: immediate): the member gets what was published after it, nothing from before.
    position: str = field(default="", compare=False)


@dataclass(frozen=True)
class LeaveResult:
    was_member: bool
    remaining: tuple[Member, ...]


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_ms: int = 0


@dataclass(frozen=True)
class Record:
    record_id: str
    version: int
    data: dict[str, Any]


@dataclass(frozen=True)
class RecordOutcome:
    status: Literal["ok", "conflict", "not_found"]
    record: Record | None = None
    revision: int = 0


@dataclass(frozen=True)
class SyncResult:
    revision: int
    records: tuple[Record, ...]
    deleted: tuple[str, ...]


@dataclass(frozen=True)
class StreamEvent:
    id: str
    type: str
    tags: tuple[str, ...]
    data: Any
    published_at: str
    published_ms: int

    def as_payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "tags": list(self.tags),
            "data": self.data,
            "publishedAt": self.published_at,
        }


def event_position(event_id: str) -> tuple[int, int] | None:
    """Event ids are ``<ms>-<seq>`` (STREAM-008): their order is the order of these pairs."""
    ms, dash, seq = event_id.partition("-")
    # ASCII digits only: str.isdigit() and int() also take other scripts' digits ("١٢"),
    # which would let a cursor in another spelling resume, and be echoed back as sent.
    if not dash or not (ms + seq).isascii() or not ms.isdigit() or not seq.isdigit():
        return None
    return int(ms), int(seq)


@dataclass(frozen=True)
class StreamRead:
    events: tuple[StreamEvent, ...]
    found: bool


@dataclass(frozen=True)
class Publication:
    """A message for every node to deliver to its local clients on ``topic``.

    ``recipients`` narrows delivery to named clients (presence goes to a computed set);
    ``exclude`` drops clients (the joiner does not get its own user_join).
    """

    topic: str
    message: dict[str, Any]
    exclude: frozenset[str] = frozenset()
    recipients: frozenset[str] | None = None
    origin: str = field(default="", compare=False)
    #: The publication's place in the cluster's order (see JoinResult.position).
    position: str = field(default="", compare=False)


DeliveryCallback = Callable[[Publication], None]


@dataclass(frozen=True)
class Departure:
    """A member removed from a room because its node stopped without closing it."""

    room_id: str
    user_id: str
    client_id: str


DepartureCallback = Callable[[tuple[Departure, ...]], None]


class Broker(ABC):
    """Shared state and fan-out; implementations must be safe for concurrent callers."""

    async def start(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Reach the backing store before the node serves; raise BrokerUnavailable if it can't.

        Called once at application startup; the in-memory broker has nothing to reach.
        """

    async def check(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Raise BrokerUnavailable if new connections could not be served now (HTTP-006).

        The in-memory broker is always available.
        """

    def on_departures(self, callback: DepartureCallback) -> None:  # noqa: B027 - optional
        """Register who tells rooms about members of dead nodes (CLUSTER-006).

        A single-process broker never has a dead node, so the default keeps nothing.
        """

    @abstractmethod
    def on_publication(self, callback: DeliveryCallback) -> None:
        """Register the node's delivery function; called for every publication, own included."""

    @abstractmethod
    async def publish(self, publication: Publication) -> None: ...

    # connections ---------------------------------------------------------------
    @abstractmethod
    async def connection_opened(self, client_id: str, user_id: str) -> None: ...

    @abstractmethod
    async def connection_closed(self, client_id: str, user_id: str) -> int:
        """Return how many connections the user still has."""

    @abstractmethod
    async def connection_count(self) -> int: ...

    # rooms -----------------------------------------------------------------------
    @abstractmethod
    async def join_room(
        self, room_id: str, member: Member, announce: Publication | None = None
    ) -> JoinResult:
        """Add the member; publish ``announce`` in the same atomic step if it was not one.

        One step, so that in a cluster no other join falls between the membership and its
        announcement: a member listed in a join response is never announced to it again.
        """

    @abstractmethod
    async def leave_room(
        self, room_id: str, client_id: str, announce: Publication | None = None
    ) -> LeaveResult:
        """Remove the member; publish ``announce`` in the same atomic step if it was one."""

    @abstractmethod
    async def room_members(self, room_id: str) -> tuple[Member, ...]: ...

    @abstractmethod
    async def room_count(self) -> int: ...

    # presence --------------------------------------------------------------------
    @abstractmethod
    async def set_status(self, user_id: str, status: str) -> None: ...

    @abstractmethod
    async def clear_status(self, user_id: str) -> None: ...

    @abstractmethod
    async def statuses(self, user_ids: Sequence[str]) -> dict[str, str]: ...

    # rate limiting -----------------------------------------------------------------
    @abstractmethod
    async def rate_limit_hit(
        self, user_id: str, now_ms: int, window_ms: int, limit: int
    ) -> RateDecision:
        """Admit and count one message, or refuse it without counting it."""

    # records -----------------------------------------------------------------------
    @abstractmethod
    async def record_create(
        self, collection: str, record_id: str, data: dict[str, Any]
    ) -> RecordOutcome: ...

    @abstractmethod
    async def record_update(
        self, collection: str, record_id: str, data: dict[str, Any], expected: int | None
    ) -> RecordOutcome: ...

    @abstractmethod
    async def record_delete(
        self, collection: str, record_id: str, expected: int | None
    ) -> RecordOutcome: ...

    @abstractmethod
    async def record_sync(self, collection: str, since_revision: int | None) -> SyncResult: ...

    # streams -----------------------------------------------------------------------
    @abstractmethod
    async def stream_append(
        self,
        stream_id: str,
        event_type: str,
        tags: Sequence[str],
        data: Any,
        now_ms: int,
        buffer_size: int,
        retention_ms: int,
    ) -> StreamEvent: ...

    @abstractmethod
    async def stream_read(
        self, stream_id: str, after: str | None, now_ms: int, retention_ms: int
    ) -> StreamRead:
        """Buffered events after position ``after`` (all buffered events when None).

        ``found`` is False when the buffer cannot prove the answer gap-free: an event newer
        than ``after`` was already dropped, ``after`` lies beyond the newest event, or it is
        not an event id at all. ``"0-0"`` is the position before a stream's first event.
        """

    @abstractmethod
    async def close(self) -> None:
        """Release connections and stop delivering."""
