"""What the spec says happens, as data: the model the stateful checks compare servers with.

The model holds who is connected, who is in which room, each user's last status, which
events were published, and what each WebSocket subscriber and SSE stream has received.
Its questions (who gets a copy of this chat message, which events must a resumed
subscription replay) are the predictions; the stateful checks turn each into an
expectation step. Nothing here does I/O.

Decisions where the spec leaves room:

* A status belongs to the user (PRES-002): it stays while any of the user's connections
  is open. After the user's last connection ended, the server forgets it, but a join
  right after the close may still see it (the close and the join race), so the model
  accepts either then.
* Stream buffers keep at least the last 100 events (STREAM-003); the stateful checks
  publish far fewer per example, so every event of an example stays resumable. A
  position before the example's first event (``0-0``) may lie before the buffer if other
  checks published more; there a gap and a full replay are both right (STREAM-005).

* A room exists while a connected client is in it (ROOM-009): :meth:`Model.live_rooms`
  is what GET /stats must count of the program's rooms, and a join of a room that is not
  live finds a new room whose only member is the joiner.

Rate limits (RATE-001) are respected by construction: each user (across its connections)
may send at most ``budget`` messages in a whole program, a share of the advertised
``maxMessages``, and only clients that can afford a rule are chosen to act. Counting per
program rather than per window keeps programs independent of timing, so hypothesis can
replay them. The one rule that drives a user past the limit on purpose waits until the
window has emptied; the budget counts only what it sends after that.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_STATUS = "online"


@dataclass
class ClientModel:
    label: str
    user: str
    connected: bool = False
    rooms: set[str] = field(default_factory=set)
    subscribed: bool = False
    last_seen: str | None = None


@dataclass
class SseModel:
    label: str
    user: str
    open: bool = False
    position: int | None = None
    resumed: bool = False


@dataclass
class Status:
    value: str
    certain: bool


class Model:
    """The expected state of one example's world."""

    def __init__(self, budget: int | None = None) -> None:
        self.budget = budget
        self.sent: dict[str, int] = {}
        self.clients: dict[str, ClientModel] = {}
        self.streams: dict[str, SseModel] = {}
        self.statuses: dict[str, Status] = {}
        self.events: list[str] = []

    # -- rooms and presence ----------------------------------------------------------------

    def add_client(self, label: str, user: str) -> None:
        self.clients[label] = ClientModel(label, user)

    def connected(self) -> list[str]:
        return sorted(c.label for c in self.clients.values() if c.connected)

    def disconnected(self) -> list[str]:
        return sorted(c.label for c in self.clients.values() if not c.connected)

    def members(self, room: str) -> list[str]:
        return sorted(c.label for c in self.clients.values() if c.connected and room in c.rooms)

    def live_rooms(self) -> set[str]:
        """Rooms with at least one connected member: the ones a server still holds."""
        return {r for c in self.clients.values() if c.connected for r in c.rooms}

    def connections_of(self, user: str) -> list[str]:
        """The connected clients of one user (one rate window across them, RATE-001)."""
        return [label for label in self.connected() if self.clients[label].user == user]

    def can_send(self, label: str, messages: int) -> bool:
        """Whether the client's user may send ``messages`` more (one kept for the final
        barrier of each of the user's connections)."""
        if self.budget is None:
            return True
        user = self.clients[label].user
        barriers = sum(1 for c in self.clients.values() if c.user == user)
        return self.sent.get(user, 0) + messages + barriers <= self.budget

    def spend(self, label: str, messages: int) -> None:
        user = self.clients[label].user
        self.sent[user] = self.sent.get(user, 0) + messages

    def actors(self, messages: int) -> list[str]:
        """Connected clients that can afford to send ``messages``."""
        return [c for c in self.connected() if self.can_send(c, messages)]

    def connect(self, label: str) -> None:
        self.clients[label].connected = True

    def disconnect(self, label: str) -> dict[str, list[str]]:
        """Ends a connection; returns, per room it was in, who is told it left."""
        client = self.clients[label]
        told = {
            room: [m for m in self.members(room) if m != label] for room in sorted(client.rooms)
        }
        client.connected = False
        client.rooms.clear()
        client.subscribed = False
        status = self.statuses.get(client.user)
        still_here = any(c.connected and c.user == client.user for c in self.clients.values())
        if status is not None and not still_here:
            status.certain = False
        return told

    def join(self, label: str, room: str) -> tuple[list[str], bool]:
        """(members listed in the response, whether the others get a user_join)."""
        client = self.clients[label]
        already = room in client.rooms
        client.rooms.add(room)
        return self.members(room), not already

    def leave(self, label: str, room: str) -> list[str] | None:
        """Who is told of the leave; None when the client was not a member (not_found)."""
        client = self.clients[label]
        if room not in client.rooms:
            return None
        client.rooms.discard(room)
        return self.members(room)

    def chat_recipients(self, label: str, room: str) -> list[str] | None:
        """Every member, the sender included; None when the sender is not a member."""
        if room not in self.clients[label].rooms:
            return None
        return self.members(room)

    def set_status(self, label: str, value: str) -> list[str]:
        """Records the status; returns who receives the copy, each once (PRES-001)."""
        client = self.clients[label]
        self.statuses[client.user] = Status(value, True)
        told = {label}
        for room in client.rooms:
            told.update(self.members(room))
        return sorted(told)

    def status_options(self, label: str) -> list[str]:
        """Statuses the member list may show for this client's user (PRES-002)."""
        status = self.statuses.get(self.clients[label].user)
        if status is None:
            return [DEFAULT_STATUS]
        if status.certain:
            return [status.value]
        return sorted({status.value, DEFAULT_STATUS})

    # -- streams -------------------------------------------------------------------------

    def publish(self, ref: str) -> tuple[list[str], list[str]]:
        """Records an event; returns (WebSocket subscribers, open SSE streams) that get it."""
        self.events.append(ref)
        ws = sorted(c.label for c in self.clients.values() if c.connected and c.subscribed)
        for label in ws:
            self.clients[label].last_seen = ref
        sse = sorted(s.label for s in self.streams.values() if s.open)
        for label in sse:
            self.streams[label].position = len(self.events)
        return ws, sse

    def subscribe(self, label: str, resume: bool) -> list[str]:
        """The events a new subscription replays: all published, or those after the last seen."""
        client = self.clients[label]
        if resume and client.last_seen is not None:
            replay = self.events[self.events.index(client.last_seen) + 1 :]
        else:
            replay = list(self.events)
        client.subscribed = True
        if replay:
            client.last_seen = replay[-1]
        return replay

    def subscribe_at(self, label: str, position: str) -> tuple[list[str], str]:
        """A subscription resuming at a symbolic position (``after:eN``, ``beyond:...``,
        ``origin``): the replay a gap-free answer carries, and whether a gap is required
        (``yes``), forbidden (``no``) or allowed (``either``)."""
        self.clients[label].subscribed = True
        kind, _, ref = position.partition(":")
        if kind == "after":
            replay = self.events[self.events.index(ref) + 1 :]
            if replay:
                self.clients[label].last_seen = replay[-1]
            return replay, "no"
        if kind == "beyond":
            return [], "yes"
        return list(self.events), "either"

    def unsubscribe(self, label: str) -> None:
        self.clients[label].subscribed = False

    def add_stream(self, label: str, user: str) -> None:
        self.streams[label] = SseModel(label, user)

    def sse_open(self, label: str, resume: bool) -> list[str]:
        """The events an SSE request replays: none when fresh (SSE-011), the missed ones on
        resume (SSE-007)."""
        stream = self.streams[label]
        stream.open = True
        resumable = resume and stream.position is not None
        stream.resumed = resumable
        replay = self.events[stream.position or 0 :] if resumable else []
        stream.position = len(self.events)
        return replay

    def sse_close(self, label: str) -> None:
        self.streams[label].open = False
