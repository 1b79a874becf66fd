"""Per-connection state and its lifecycle, as data (h11 style).

Every change of ``Connection.state`` goes through :func:`transition`, against the table
below; anything else is a bug in the core, not in the peer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Literal

from reference_server.auth import Principal


class State(enum.Enum):
    OPEN = "open"  # authenticated, welcome sent, serving messages
    CLOSING = "closing"  # a close was decided; nothing more is processed
    CLOSED = "closed"  # the transport reported the socket gone; state cleaned up


class Event(enum.Enum):
    CLIENT_DISCONNECT = "client sent disconnect"
    HEARTBEAT_TIMEOUT = "client silent for two intervals"
    TOKEN_EXPIRED = "token expired"
    SHUTDOWN = "server shutting down"
    SLOW_CONSUMER = "outbound queue overflowed"
    TRANSPORT_CLOSED = "socket closed"


TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.OPEN, Event.CLIENT_DISCONNECT): State.CLOSING,
    (State.OPEN, Event.HEARTBEAT_TIMEOUT): State.CLOSING,
    (State.OPEN, Event.TOKEN_EXPIRED): State.CLOSING,
    (State.OPEN, Event.SHUTDOWN): State.CLOSING,
    (State.OPEN, Event.SLOW_CONSUMER): State.CLOSING,
    (State.OPEN, Event.TRANSPORT_CLOSED): State.CLOSED,
    (State.CLOSING, Event.TRANSPORT_CLOSED): State.CLOSED,
}


class InvalidTransition(RuntimeError):
    pass


@dataclass(frozen=True)
class StreamFilter:
    event_types: frozenset[str] | None = None
    tags: frozenset[str] | None = None

    def passes(self, event_type: str, tags: tuple[str, ...]) -> bool:
        """STREAM-006: type listed (if a list was given) and a shared tag (if tags were given)."""
        if self.event_types is not None and event_type not in self.event_types:
            return False
        return self.tags is None or not self.tags.isdisjoint(tags)


#: Every subscription without a filter shares this one, so a fan-out recognises it by
#: identity instead of reading each subscriber's filter.
UNFILTERED = StreamFilter()


@dataclass
class Connection:
    client_id: str
    principal: Principal
    opened_ms: int
    last_received_ms: int
    last_heartbeat_ms: int
    transport: Literal["websocket", "sse"] = "websocket"
    state: State = State.OPEN
    rooms: set[str] = field(default_factory=set)
    # Room -> where publication order stood at the join (JoinResult.position): in a cluster a
    # publication from before the join can arrive after it, and is not the member's to get.
    joined_at: dict[str, str] = field(default_factory=dict)
    collections: set[str] = field(default_factory=set)
    streams: dict[str, StreamFilter] = field(default_factory=dict)
    # Stream messages held back while a subscription replays, released in order afterwards,
    # so a live event that races the replay read is neither lost nor duplicated.
    held: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def user_id(self) -> str:
        return self.principal.user_id

    @property
    def is_open(self) -> bool:
        return self.state is State.OPEN


def transition(connection: Connection, event: Event) -> State:
    try:
        connection.state = TRANSITIONS[(connection.state, event)]
    except KeyError:
        raise InvalidTransition(f"{connection.state.value} --{event.value}--> ?") from None
    return connection.state
