"""Stateful model checking: generated multi-client programs, every delivery predicted.

Hypothesis ``RuleBasedStateMachine``s drive several clients through random programs
(connect, join, leave, rejoin at once, chat, bursts, status updates, disconnect in three
ways; subscribe, resume, unsubscribe, publish over HTTP, SSE open, close and resume with
Last-Event-ID). A :class:`~conformance.generation.model.Model` predicts who receives what;
each prediction is an expectation step, and at the end of each program every client must
hold nothing the model did not predict. Every program uses fresh users, rooms and event
types. A failing program is shrunk and saved as a replay file.

Room programs also judge what no single step shows: each welcome's clientId against the
program's open connections (AUTH-011), GET /stats around each action that empties or
re-creates a room (ROOM-009), one user's rate window exhausted over both of its
connections and waited out (RATE-001..003, in the run's first programs that reach the
rule), and at the end the heartbeats of every program connection, pooled (LIFE-002). These
judgements are made by the check, not by recorded steps: a replay file repeats the
program's steps, not the timing or /stats readings.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from conformance import spec
from conformance.checks._timing import Watch, judge_heartbeats, pooled
from conformance.client import Client, Message, correlation_of, json_text, summarize
from conformance.failures import ConformanceFailure
from conformance.generation import settings as run_settings
from conformance.generation.explore import (
    explore_machine,
    note_failure,
    program_end,
    run_finding,
    start_example,
)
from conformance.generation.model import Model
from conformance.generation.scenario import Runner
from conformance.generation.schema import compiled, strategy
from conformance.harness import Harness

F = TypeVar("F", bound=Callable[..., Any])

CLIENTS = ("c0", "c1", "c2")
#: Clients that are further connections of another client's user (two connections per
#: user: member lists per connection, presence per user, one rate window).
SAME_USER = {"c2": "c0"}
#: A client whose token lacks room:join: its joins are refused and must leave no trace.
REFUSED = "x"
CONNECT = spec.permission("websocket:connect")
#: Positions a stream subscription resumes from (STREAM-004, STREAM-005).
RESUME_FROM = ("none", "last", "earlier", "beyond", "origin")
SHORT = 24
#: Share of the advertised maxMessages a user may spend in one program (RATE-001).
RATE_SHARE = 0.8
#: Most messages one chat rule sends: a burst of three, each refused and synced.
CHAT_WORST = 6
ROOMS = 2
STATUSES = list(spec.schema_at("defs.schema.json#/$defs/presenceStatus")["enum"])
NOT_FOUND = spec.error_code("not_found")
FORBIDDEN = spec.error_code("forbidden")
DISCONNECT_WAYS = ("close", "drop", "disconnect")
RATE_LIMITED = spec.error_code("rate_limited")
#: Programs per run that may drive a user past the rate limit and wait for its window to
#: pass (a window's wait each, two seconds against the reference server).
RATE_WAITS = {"ci": 1, "thorough": 2, "load": 0}
#: How often /stats is read while the server catches up with a change (seconds), and how
#: often at most.
#: Keep-alive pings of the limited user, per connection, once the window may admit again.
RATE_AFTER = 2
STATS_POLL = 0.01
STATS_READS = 400

#: Unpredicted messages at the end of a program, and the requirement each one breaks.
ROOM_WATCH = {
    "chat_message": "CHAT-002",
    "status_update": "PRES-001",
    "user_join": "ROOM-004",
    "user_leave": "LIFE-008",
    "error": "ERR-001",
}
STREAM_WATCH = {"stream_event": "STREAM-007", "error": "ERR-001"}


def contents() -> st.SearchStrategy[str]:
    """Short chat content as the schema allows it: programs are about who receives what, and
    long values would only use up hypothesis' budget (the fuzz checks cover lengths).
    Sanitizing may change content, so copies are matched by correlation id."""
    node = compiled("payloads/chat_message.schema.json").properties["content"]
    return strategy(replace(node, max_length=min(node.max_length or SHORT, SHORT)))


def published_bodies() -> st.SearchStrategy[dict[str, Any]]:
    """Bodies for POST /streams/{id}/events from the publish-request schema."""
    return strategy(compiled("http/publish-request.schema.json"), extra_members=False)


def message_budget(rep: Harness) -> int | None:
    """Messages one user may send in a program: a share of the advertised rate limit."""
    allowed = rep.profile.rate_max_messages
    return None if allowed is None else max(8, int(allowed * RATE_SHARE))


def rooms_count(rep: Harness) -> int | None:
    """/stats rooms, or None when /stats gives no count (its own checks judge that)."""
    try:
        response = rep.http.get("/stats")
        body = response.json() if response.status == 200 else None
    except Exception:
        return None
    count = body.get("rooms") if isinstance(body, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) else None


def await_rooms(rep: Harness, within: float, done: Callable[[int], bool]) -> list[int]:
    """Read /stats rooms until ``done`` accepts the count or ``within`` runs out; every
    reading, in order (the last one is the verdict)."""
    deadline = time.monotonic() + within
    seen: list[int] = []
    for _ in range(STATS_READS):
        count = rooms_count(rep)
        if count is None:
            return seen
        seen.append(count)
        if done(count) or time.monotonic() >= deadline:
            return seen
        time.sleep(STATS_POLL)
    return seen


def readings(seen: list[int]) -> str:
    """/stats readings without repeats: 5, 5, 4 reads as 5 -> 4."""
    shown = [n for i, n in enumerate(seen) if i == 0 or seen[i - 1] != n]
    return " -> ".join(str(n) for n in shown)


@dataclass(frozen=True)
class RateLimit:
    """The advertised limit, and how long the rule may keep the program waiting."""

    count: int
    window: float
    interval: float


def rate_limit_of(rep: Harness) -> RateLimit | None:
    """The welcome's rate limit when the kit can afford to exhaust it and wait it out."""
    count, window_ms = rep.profile.rate_max_messages, rep.profile.rate_window_ms
    if count is None or window_ms is None or message_budget(rep) is None:
        return None
    budgets = rep.target.budgets
    tolerance = rep.timeouts.heartbeat_tolerance
    if count > budgets.max_rate_messages or window_ms / 1000 + tolerance > budgets.max_rate_wait:
        return None
    interval_ms = rep.profile.heartbeat_interval_ms or window_ms
    return RateLimit(count, window_ms / 1000, interval_ms / 1000)


def arrival(client: Client, message: Message) -> float:
    """When the reader received ``message`` (transcript time)."""
    return next((at for at, m in client.received() if m is message), client.transcript.now())


def guarded(method: F) -> F:
    """A failing rule marks the program as failed, so teardown does not pile on."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except ConformanceFailure:
            self.failed = True
            note_failure(self.last, self.runner, self.title)
            raise

    return wrapper  # type: ignore[return-value]


class RateRound:
    """One user driven past the rate limit over its connections, then waited out.

    Times are ``time.monotonic()`` seconds; arrivals are converted from transcript time.
    The pings are sent straight on the connections, not as recorded steps: how many the
    window admits depends on timing, which a replay cannot repeat.
    """

    def __init__(self, rep: Harness, runner: Runner, labels: list[str], limit: RateLimit) -> None:
        self.rep = rep
        self.runner = runner
        self.labels = labels
        self.clients = [runner.clients[label] for label in labels]
        self.limit = limit
        self.started = time.monotonic()
        self.first_refusal: float | None = None
        self.retry = 0.0
        self.last_admitted = self.started
        #: Pings refused with rate_limited: none may be processed (RATE-002).
        self.refused: set[str] = set()
        #: Keep-alive pings of the user whose answers are read at the end, either way.
        self.pending: list[tuple[Client, str]] = []
        #: Pings admitted since the burst's admitted ones (they count in the new window).
        self.admitted_since = 0
        #: False when the burst took longer than a window: nothing about it can be judged.
        self.judgeable = True

    def _spread(self, count: int) -> list[tuple[Client, str]]:
        """``count`` pings sent back to back, round-robin over the user's connections."""
        return [(c, c.send("ping")) for c in (self.clients * count)[:count]]

    def _at(self, client: Client, message: Message) -> float:
        return arrival(client, message) + client.transcript.started

    def _answer(self, client: Client, ping: str, requirement: list[str]) -> Message:
        """The ping's pong, or its rate_limited error with retry_after_ms (RATE-003)."""
        found = client.expect(
            lambda m: m.get("type") in ("pong", "error"),
            correlation_id=ping,
            within=self.runner.within,
            requirement=requirement,
            description=f"the pong or the rate_limited error of ping {ping}",
        )
        if found.get("type") == "pong":
            return found
        payload = found.get("payload", {})
        if payload.get("code") != RATE_LIMITED:
            raise client.failure(
                "RATE-002",
                sent=client.describe_sent(ping),
                expected=f"a pong, or an error with code {json_text(RATE_LIMITED)}",
                received=summarize(found),
            )
        retry = payload.get("retry_after_ms")
        if not isinstance(retry, int) or isinstance(retry, bool) or retry < 1:
            raise client.failure(
                "RATE-003",
                sent=client.describe_sent(ping),
                expected="retry_after_ms, an integer number of milliseconds of at least 1",
                received=summarize(found),
            )
        self.refused.add(ping)
        return found

    def burst(self) -> None:
        """maxMessages + 1 pings: unless the burst outlasted a window, at least one must be
        refused, whichever connection it came on (the window is the user's, RATE-001)."""
        count = self.limit.count + 1
        sent = self._spread(count)
        answers = [(c, p, self._answer(c, p, ["RATE-004", "RATE-002"])) for c, p in sent]
        took = time.monotonic() - self.started
        admitted = [(c, m) for c, _, m in answers if m.get("type") == "pong"]
        refused = [(c, m) for c, _, m in answers if m.get("type") != "pong"]
        self.last_admitted = max((self._at(c, m) for c, m in admitted), default=self.started)
        if refused:
            client, error = min(refused, key=lambda found: self._at(*found))
            self.first_refusal = self._at(client, error)
            self.retry = error["payload"]["retry_after_ms"] / 1000
            return
        if took >= self.limit.window:
            self.judgeable = False
            return
        per = {c.label: sum(1 for a, _ in admitted if a is c) for c in self.clients}
        raise self.clients[0].failure(
            "RATE-001",
            sent=f"{count} pings (maxMessages {self.limit.count} + 1) round-robin over "
            f"{' and '.join(self.labels)}, one user's connections, within {took:.3f} s",
            expected=f"at most {self.limit.count} admitted per window of "
            f"{self.limit.window:g} s across the user's connections, the rest refused "
            f"with {json_text(RATE_LIMITED)}",
            received="a pong for every one ("
            + ", ".join(f"{k}: {v}" for k, v in per.items())
            + ")",
        )

    def refused_burst(self) -> None:
        """Halfway through retry_after_ms, a window's worth more: the window still holds
        maxMessages admitted ones, so each is refused; a server that counted them would
        keep the user limited long after the window has passed."""
        assert self.first_refusal is not None
        sent = self._spread(self.limit.count)
        sent_by = time.monotonic()
        certain = sent_by < self.first_refusal + self.retry - self.rep.timeouts.heartbeat_tolerance
        for client, ping in sent:
            answer = self._answer(client, ping, ["RATE-002"])
            if answer.get("type") != "pong":
                continue
            if certain:
                raise client.failure(
                    "RATE-001",
                    sent=f"ping {ping} on {client.label} "
                    f"{sent_by - self.first_refusal:.3f} s after the first refusal "
                    f"(retry_after_ms {self.retry * 1000:g})",
                    expected=f"{json_text(RATE_LIMITED)}: the window of "
                    f"{self.limit.window:g} s still held {self.limit.count} admitted messages",
                    received=summarize(answer),
                )
            self.admitted_since += 1
            self.last_admitted = max(self.last_admitted, self._at(client, answer))

    def admits_again(self) -> float:
        """When every admitted ping has left the window and retry_after_ms has passed,
        plus the allowance for network and scheduling delay."""
        refusal = self.first_refusal if self.first_refusal is not None else self.started
        passed = max(refusal + self.retry, self.last_admitted + self.limit.window)
        return passed + self.rep.timeouts.heartbeat_tolerance

    def wait_until(self, deadline: float, quota: dict[str, int]) -> None:
        """Wait, pinging every connection of the program each half interval so that none
        is closed for silence (LIFE-003), each at most its ``quota`` of pings that can
        count (what the model spent for it); the user's own pings are answered either way."""
        period = self.limit.interval / 2
        rounds = math.ceil(max(0.0, deadline - time.monotonic()) / period) + 1
        for _ in range(rounds):
            now = time.monotonic()
            if now >= deadline:
                return
            for label, left in quota.items():
                client = self.runner.clients.get(label)
                if left <= 0 or client is None or not client.is_open():
                    continue
                ours = client in self.clients
                if not (ours and self._still_limited(now)):
                    quota[label] -= 1
                ping = client.send("ping")
                if ours:
                    self.pending.append((client, ping))
            time.sleep(min(period, deadline - now))

    def _still_limited(self, now: float) -> bool:
        """Whether the window still holds maxMessages (allowance included): the user's
        pings are refused then and count for nothing, not even in the model's budget."""
        if self.first_refusal is None:
            return False
        return now < self.first_refusal + self.retry - self.rep.timeouts.heartbeat_tolerance

    def served_again(self) -> None:
        """One ping on each of the user's connections: each is admitted (RATE-001: refused
        messages do not count), and no refused ping was processed (RATE-002)."""
        waited = time.monotonic() - (self.first_refusal or self.started)
        for client, ping in self.pending:
            if self._answer(client, ping, ["RATE-002"]).get("type") == "pong":
                self.admitted_since += 1
        room = self.limit.count - self.admitted_since >= len(self.clients)
        for client in self.clients:
            ping = client.send("ping")
            answer = self._answer(client, ping, ["RATE-003", "RATE-001"])
            if answer.get("type") == "pong":
                self.admitted_since += 1
                continue
            if self.judgeable and room:
                raise client.failure(
                    "RATE-001",
                    sent=f"{self.limit.count} more pings while limited, then, {waited:.3f} s "
                    f"after the first refusal (retry_after_ms {self.retry * 1000:g} ms, the "
                    f"window of {self.limit.window:g} s since the last admitted ping, plus "
                    "the allowance of LIFE-010), a ping",
                    expected="a pong: messages refused by the limit do not count toward it",
                    received=summarize(answer),
                )
        for client in self.clients:
            client.expect_none(
                "pong",
                where=lambda m: correlation_of(m) in self.refused,
                within=0.0,
                requirement="RATE-002",
                description="pong for a ping refused with rate_limited",
            )


@pytest.mark.requirements(
    "ROOM-003",
    "ROOM-004",
    "ROOM-005",
    "ROOM-006",
    "ROOM-007",
    "ROOM-008",
    "ROOM-009",
    "CHAT-001",
    "CHAT-002",
    "PRES-001",
    "PRES-002",
    "LIFE-006",
    "LIFE-008",
    "MSG-004",
    "MSG-005",
    "ERR-004",
    "ROOM-010",
    "ROOM-015",
    "AUTH-011",
    "RATE-001",
    "RATE-002",
    "RATE-003",
    "LIFE-002",
    "LIFE-010",
)
def test_room_programs_deliver_exactly_what_the_model_predicts(rep: Harness) -> None:
    """Clients join, leave, rejoin at once, chat (singly and in bursts), change status,
    disconnect and reconnect: every member gets each room message exactly once and in the
    sender's order, non-members get nothing, member lists and statuses match the model,
    each welcome's clientId is one no open connection holds, an emptied room leaves
    /stats and comes back new, and a user driven past the rate limit is served again once
    the window has passed. The heartbeats of every connection are judged at the end."""
    last: dict[str, Any] = {}
    limit = rate_limit_of(rep)
    waits = {"left": RATE_WAITS.get(run_settings.OPTIONS.profile, 0) if limit else 0}
    #: Every program connection's heartbeats, and the program that watched the most.
    watches: list[Watch] = []
    busiest: dict[str, Any] = {"beats": -1}

    class RoomPrograms(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.last = last
            self.failed = False
            self.title = "room program"
            self.runner = start_example(rep, self.title, last)
            last["runner"], last["title"] = self.runner, self.title
            self.model = Model(message_budget(rep))
            self.rooms = [self.runner.slug("room") for _ in range(ROOMS)]
            for label in CLIENTS:
                shared = SAME_USER.get(label)
                user = self.model.clients[shared].user if shared else self.runner.name(label)
                self.model.add_client(label, user)
            self.refused_budget = message_budget(rep) or CHAT_WORST * 4
            #: Every connection of the program, with its label, and when the kit ended it.
            self.opened: list[tuple[str, Client]] = []
            self.ended: dict[int, float] = {}
            #: Rooms the program emptied: a later join must find them new (ROOM-009).
            self.emptied: set[str] = set()
            #: Rooms a refused join named: if one outlives its last member, the refusal may
            #: have left the refused client in it (ERR-004) as much as the room was kept.
            self.refused_rooms: set[str] = set()
            self.rooms_at_start = rooms_count(rep)
            self.rated = False

        # -- connections -----------------------------------------------------------------

        def _connect(self, label: str, user: str, *args: Any) -> None:
            """Connect, and judge the welcome's clientId against every other connection of
            the program still open (AUTH-011: unique among those the server holds)."""
            client = self.runner.connect(label, user, *args)
            mine = client.client_id
            for other, held in self.opened:
                if held.is_open() and held.client_id == mine:
                    raise client.failure(
                        "AUTH-011",
                        sent=f"a new connection for {label}, while {other} is open",
                        expected="a clientId no open connection holds: "
                        + json_text(sorted(h.client_id for _, h in self.opened if h.is_open())),
                        received=f"clientId {json_text(mine)}, the one {other} holds",
                    )
            self.opened.append((label, client))

        def _ending(self, label: str) -> None:
            """Heartbeats are owed only while the kit keeps the connection."""
            client = self.runner.clients[label]
            self.ended[id(client)] = client.transcript.now()

        @initialize(seats=st.lists(st.none() | st.integers(0, ROOMS - 1), min_size=3, max_size=3))
        @guarded
        def seat_everyone(self, seats: list[int | None]) -> None:
            """Programs start with every client connected, most already in a room, and a
            client without room:join whose joins are refused."""
            for label in CLIENTS:
                self._connect(label, self.model.clients[label].user)
                self.model.connect(label)
            self._connect(REFUSED, self.runner.name("refused"), (), [CONNECT])
            for label, seat in zip(CLIENTS, seats, strict=True):
                if seat is not None and self.model.can_send(label, 1):
                    self.model.spend(label, 1)
                    self._joined(label, self.rooms[seat], self._join(label, self.rooms[seat]))

        @precondition(lambda self: bool(self.model.disconnected()))
        @rule(data=st.data())
        @guarded
        def connect(self, data: st.DataObject) -> None:
            label = data.draw(st.sampled_from(self.model.disconnected()), label="client")
            self._connect(label, self.model.clients[label].user)
            self.model.connect(label)

        @precondition(lambda self: bool(self.model.connected()))
        @rule(data=st.data(), how=st.sampled_from(DISCONNECT_WAYS))
        @guarded
        def disconnect(self, data: st.DataObject, how: str) -> None:
            label = data.draw(st.sampled_from(self.model.connected()), label="client")
            if how == "disconnect" and not self.model.can_send(label, 1):
                how = "close"
            live = self.model.live_rooms()
            before = (
                rooms_count(rep) if any(self.model.members(r) == [label] for r in live) else None
            )
            self._ending(label)
            if how == "disconnect":
                self.model.spend(label, 1)
                sent = self.runner.send_message(label, "disconnect", {})
                self.runner.expect_delivery(
                    label, {"type": "disconnect", "correlation_id": sent}, requirement="LIFE-006"
                )
                self.runner.expect_close(
                    label, [spec.close_code("normal_closure")], requirement="LIFE-006"
                )
            elif how == "close":
                self.runner.close(label)
            else:
                self.runner.drop(label)
            for room, others in self.model.disconnect(label).items():
                for other in others:
                    self.runner.expect_delivery(
                        other,
                        {
                            "type": "user_leave",
                            "about": label,
                            "roomId": room,
                            "reason": spec.LEAVE_REASON_DISCONNECTED,
                        },
                        requirement="ROOM-006",
                    )
            self._rooms_removed(live, before, f"{how} of {label}, the last member of")

        # -- rooms -----------------------------------------------------------------------

        def _rooms_removed(self, live: set[str], before: int | None, action: str) -> None:
            """ROOM-009: GET /stats counts one room less for each room the model says was
            emptied (/stats is server-wide: the difference this action made is judged)."""
            gone = sorted(live - self.model.live_rooms())
            self.emptied.update(gone)
            if before is None or not gone:
                return
            want = before - len(gone)
            self._expect_rooms(
                lambda n: n == want,
                self._kept_blame(gone),
                sent=f"{action} {', '.join(gone)} (GET /stats rooms {before} before)",
                expected=f"GET /stats rooms {want}: an emptied room is removed"
                + self._kept_hint(gone),
            )

        def _expect_rooms(
            self,
            done: Callable[[int], bool],
            blame: str | list[str],
            *,
            sent: str,
            expected: str,
            judged: bool = True,
        ) -> None:
            """Read /stats until ``done`` accepts the room count (bounded); unless it does in
            the end, fail ``blame`` (when ``judged``: otherwise only wait for it to settle)."""
            seen = await_rooms(rep, self.runner.within, done)
            if judged and seen and not done(seen[-1]):
                raise rep.fail(
                    blame,
                    sent=sent,
                    expected=expected,
                    received=f"rooms {readings(seen)} within {self.runner.within:g} s",
                )

        def _kept_blame(self, rooms: list[str]) -> list[str]:
            """ROOM-009, and ERR-004 too when a refused join named one of the rooms: from
            /stats alone a kept empty room and a refused client left in it look the same."""
            return ["ROOM-009", "ERR-004"] if self.refused_rooms & set(rooms) else ["ROOM-009"]

        def _kept_hint(self, rooms: list[str]) -> str:
            named = sorted(self.refused_rooms & set(rooms))
            if not named:
                return ""
            return (
                f"; a refused join named {', '.join(named)}: if it left the refused client "
                "as a member, the room is not empty (ERR-004)"
            )

        def _join(self, label: str, room: str) -> str:
            return self.runner.send_message(label, "room_join", {"roomId": room})

        def _joined(self, label: str, room: str, sent: str) -> None:
            members, announced = self.model.join(label, room)
            self.runner.expect_members(
                label,
                room,
                {m: self.model.status_options(m) for m in members},
                message_id=sent,
            )
            if announced:
                for other in members:
                    if other != label:
                        self.runner.expect_delivery(
                            other,
                            {"type": "user_join", "about": label, "roomId": room},
                            requirement="ROOM-004",
                        )

        def _rejoin_of_emptied(self, room: str) -> tuple[str, int | None] | None:
            """A join of a room this program emptied: (room, /stats rooms now) to judge."""
            if room not in self.emptied or room in self.model.live_rooms():
                return None
            return room, rooms_count(rep)

        def _created_afresh(self, label: str, sent: str, pending: tuple[str, int | None]) -> None:
            """ROOM-009: the emptied room comes back as a new public room (its member list,
            only the joiner, is judged by the join itself) and /stats counts it again."""
            room, before = pending
            self.emptied.discard(room)
            client = self.runner.clients[label]
            response = next(
                (
                    m
                    for _, m in client.received()
                    if m.get("type") == "room_join_response" and correlation_of(m) == sent
                ),
                {},
            )
            info = response.get("payload", {}).get("room")
            if isinstance(info, dict) and info.get("private"):
                raise client.failure(
                    "ROOM-009",
                    sent=f"room_join of {room} after its last member left",
                    expected="a new public room",
                    received=f"room = {json_text(info)}",
                )
            if before is None:
                return
            self._expect_rooms(
                lambda n: n == before + 1,
                "ROOM-009",
                sent=f"room_join of {room} after its last member left (GET /stats rooms "
                f"{before} before)",
                expected=f"GET /stats rooms {before + 1}: the room is created afresh",
            )

        def _left(self, label: str, room: str, sent: str, told: list[str]) -> None:
            self.runner.expect_delivery(
                label,
                {"type": "room_leave_response", "correlation_id": sent},
                requirement="ROOM-005",
            )
            for other in told:
                self.runner.expect_delivery(
                    other,
                    {
                        "type": "user_leave",
                        "about": label,
                        "roomId": room,
                        "reason": spec.LEAVE_REASON_LEFT,
                    },
                    requirement="ROOM-005",
                )

        @precondition(lambda self: bool(self.model.actors(1)))
        @rule(data=st.data(), room=st.integers(0, ROOMS - 1))
        @guarded
        def join(self, data: st.DataObject, room: int) -> None:
            """Join (again, when already a member: ROOM-007; afresh, after the program
            emptied the room: ROOM-009)."""
            label = data.draw(st.sampled_from(self.model.actors(1)), label="client")
            self.model.spend(label, 1)
            name = self.rooms[room]
            pending = self._rejoin_of_emptied(name)
            sent = self._join(label, name)
            self._joined(label, name, sent)
            if pending is not None:
                self._created_afresh(label, sent, pending)

        def _room_of(self, data: st.DataObject, label: str) -> str:
            """Mostly a room the client is in (where things happen), sometimes any room."""
            mine = sorted(self.model.clients[label].rooms)
            return data.draw(st.sampled_from(mine * 3 + self.rooms), label="room")

        @precondition(lambda self: bool(self.model.actors(3)))
        @rule(data=st.data(), rejoin=st.booleans())
        @guarded
        def leave(self, data: st.DataObject, rejoin: bool) -> None:
            """Leave (not_found for a non-member); with ``rejoin``, join again at once,
            without waiting for the first answer. A leave that empties the room (without
            the rejoin) removes it from /stats (ROOM-009)."""
            label = data.draw(st.sampled_from(self.model.actors(3)), label="client")
            self.model.spend(label, 3)
            name = self._room_of(data, label)
            live = self.model.live_rooms()
            last_one = not rejoin and self.model.members(name) == [label]
            before = rooms_count(rep) if last_one else None
            left = self.runner.send_message(label, "room_leave", {"roomId": name})
            joined = self._join(label, name) if rejoin else None
            told = self.model.leave(label, name)
            if told is None:
                self.runner.expect_refusal(
                    label,
                    NOT_FOUND,
                    left,
                    code_requirement="ROOM-008",
                    violates="ROOM-008",
                    description=f"room_leave of {name}, which {label} is not in",
                )
            else:
                self._left(label, name, left, told)
            if joined is not None:
                self._joined(label, name, joined)
            else:
                self._rooms_removed(live, before, f"room_leave by {label}, the last member of")

        @precondition(lambda self: self.refused_budget > 2)
        @rule(room=st.integers(0, ROOMS - 1))
        @guarded
        def refused_join(self, room: int) -> None:
            """A join without room:join: forbidden, and no trace (no user_join now, no
            member later, ERR-004); the end of the program checks nobody heard of it."""
            self.refused_budget -= 2  # the join and the barrier that proves one error
            name = self.rooms[room]
            self.refused_rooms.add(name)
            sent = self._join(REFUSED, name)
            self.runner.expect_refusal(
                REFUSED,
                FORBIDDEN,
                sent,
                code_requirement="ROOM-015",
                violates="ROOM-010",
                description=f"room_join of {name} without room:join",
            )

        # -- messages --------------------------------------------------------------------

        @precondition(lambda self: bool(self.model.actors(CHAT_WORST)))
        @rule(data=st.data(), burst=st.lists(contents(), min_size=1, max_size=3))
        @guarded
        def chat(self, data: st.DataObject, burst: list[str]) -> None:
            """One or several messages back to back: each member gets each once, in the order
            sent; a non-member is refused (forbidden) and nobody gets anything."""
            label = data.draw(st.sampled_from(self.model.actors(CHAT_WORST)), label="client")
            self.model.spend(label, CHAT_WORST)
            name = self._room_of(data, label)
            sent = [
                self.runner.send_message(label, "chat_message", {"roomId": name, "content": c})
                for c in burst
            ]
            recipients = self.model.chat_recipients(label, name)
            for message_id in sent:
                if recipients is None:
                    self.runner.expect_refusal(
                        label,
                        FORBIDDEN,
                        message_id,
                        code_requirement="CHAT-001",
                        violates="CHAT-001",
                        description=f"chat_message to {name}, which {label} is not in",
                    )
                    continue
                for member in recipients:
                    self.runner.expect_delivery(
                        member,
                        {"type": "chat_message", "correlation_id": message_id, "after_from": label},
                        requirement="CHAT-002",
                    )

        @precondition(lambda self: bool(self.model.actors(1)))
        @rule(data=st.data(), status=st.sampled_from(STATUSES))
        @guarded
        def update_status(self, data: st.DataObject, status: str) -> None:
            label = data.draw(st.sampled_from(self.model.actors(1)), label="client")
            self.model.spend(label, 1)
            sent = self.runner.send_message(label, "status_update", {"status": status})
            for member in self.model.set_status(label, status):
                self.runner.expect_delivery(
                    member,
                    {"type": "status_update", "correlation_id": sent},
                    requirement="PRES-001",
                )

        # -- the rate window -------------------------------------------------------------

        def _rate_ready(self) -> bool:
            """Once per program, with both of c0's user's connections open and every
            connection able to afford the keep-alives of the wait."""
            if limit is None or self.rated:
                return False
            user = self.model.clients["c0"].user
            if len(self.model.connections_of(user)) < 2:
                return False
            pings = self._keepalives()
            others = [c for c in self.model.connected() if self.model.clients[c].user != user]
            return (
                self.refused_budget > pings + 2
                and self.model.can_send("c0", 2 * (RATE_AFTER + 1))
                and all(self.model.can_send(c, pings) for c in others)
            )

        def _keepalives(self) -> int:
            """Pings each other connection may send while the rule waits (LIFE-003 would
            close a connection silent for two intervals): a fixed number, so the model's
            state after the rule never depends on timing."""
            assert limit is not None
            wait = limit.window + 2 * rep.timeouts.heartbeat_tolerance
            return math.ceil(wait / (limit.interval / 2)) + 2

        @precondition(lambda self: self._rate_ready())
        @rule()
        @guarded
        def exhaust_the_rate_window(self) -> None:
            """maxMessages + 1 pings over c0 and c2 (one user) back to back: at least one is
            refused with rate_limited and retry_after_ms (RATE-001, RATE-003). Halfway
            through retry_after_ms, a window's worth more, all refused. Once the window has
            passed (retry_after_ms and the admitted pings' window, plus the allowance), each
            connection is served again: refused messages did not count (RATE-001).

            Waiting costs a window, so only the run's first programs that reach this rule
            wait (``RATE_WAITS``); in the others it sends nothing, and while a failure is
            shrunk it waits only if the failure was its own. Its preconditions and what the
            model spends are the same either way, so hypothesis replays every program as it
            was generated."""
            assert limit is not None
            self.rated = True
            pings = self._keepalives()
            user = self.model.clients["c0"].user
            mine = self.model.connections_of(user)
            others = [c for c in self.model.connected() if c not in mine]
            # Within the budget the model keeps: the keep-alives and the final ping of each
            # connection that can count; the burst and the pings refused while the window is
            # full are over the limit on purpose and waited out.
            self.model.spend(mine[0], len(mine) * (RATE_AFTER + 1))
            for label in others:
                self.model.spend(label, pings)
            self.refused_budget -= pings
            if not (last.get("rate_failed") or (waits["left"] > 0 and not last.get("found"))):
                return
            waits["left"] -= 1
            quota = dict.fromkeys([*others, REFUSED], pings) | dict.fromkeys(mine, RATE_AFTER)
            rated = RateRound(rep, self.runner, mine, limit)
            try:
                rated.burst()
                if rated.first_refusal is not None:
                    rated.wait_until(rated.first_refusal + rated.retry / 2, quota)
                    if rated.retry / 2 > rep.timeouts.heartbeat_tolerance:
                        rated.refused_burst()
                rated.wait_until(rated.admits_again(), quota)
                rated.served_again()
            except ConformanceFailure:
                last["rate_failed"] = True
                raise

        def teardown(self) -> None:
            with program_end(last, self.runner, self.title):
                if not self.failed:
                    self.runner.expect_settled([*self.model.clients, REFUSED], watch=ROOM_WATCH)
                    problem = self.runner.frame_problems()
                    if problem is not None:
                        raise problem
                    self._watched()
                    self._all_rooms_gone()

        def _watched(self) -> None:
            """Pool each connection's heartbeats, up to where the kit ended it."""
            beats = 0
            for _, client in self.opened:
                received = client.received()
                if not received:
                    continue
                end = self.ended.get(id(client))
                if end is None:
                    end = client.closed.at if client.closed else client.transcript.now()
                times = tuple(
                    at
                    for at, m in received
                    if m.get("type") == "heartbeat" and received[0][0] < at <= end
                )
                watches.append(Watch(received[0][0], times, end))
                beats += len(times)
            if beats > busiest["beats"]:
                busiest.update(beats=beats, runner=self.runner, transcript=rep.transcript)

        def _all_rooms_gone(self) -> None:
            """Every connection closes: /stats returns to its count before the program
            (ROOM-009), and the next program starts from a settled count."""
            start = self.rooms_at_start
            live = sorted(self.model.live_rooms())
            for _, client in self.opened:
                client.close()
            if start is None:
                return
            self._expect_rooms(
                lambda n: n <= start,
                self._kept_blame(live),
                sent=f"every connection of the program closed; {', '.join(live)} "
                f"had members (GET /stats rooms {start} before the program)",
                expected=f"GET /stats rooms {start} at most: emptied rooms are removed"
                + self._kept_hint(live),
                judged=bool(live),
            )

    check = "test_stateful.py::test_room_programs_deliver_exactly_what_the_model_predicts"
    explore_machine(
        rep,
        check=check,
        machine=RoomPrograms,
        max_examples=run_settings.budget().room_programs,
        last=last,
    )
    rep.record("stateful.rooms.programs", last.get("programs", 0))
    rep.record("stateful.rooms.steps", last.get("steps", 0))
    judge_program_heartbeats(rep, watches, busiest, check=check)


def judge_program_heartbeats(
    rep: Harness, watches: list[Watch], busiest: dict[str, Any], *, check: str
) -> None:
    """LIFE-002 over every program connection's heartbeats, pooled (LIFE-010's rules, as
    the fixed check judges them); the median only with enough gaps between heartbeats."""
    interval_ms = rep.profile.heartbeat_interval_ms
    found = pooled(watches)
    rep.record("stateful.rooms.heartbeat_gaps", len(found.between))
    rep.record(
        "stateful.rooms.heartbeat_median_gap_s",
        None if found.median is None else round(found.median, 3),
    )
    if not interval_ms or busiest.get("runner") is None:
        return
    rep.transcript = busiest["transcript"]
    beats = sum(len(w.beats) for w in watches)
    try:
        judge_heartbeats(
            rep,
            watches,
            interval_ms / 1000,
            watched=f"{beats} heartbeat(s) on {len(watches)} program connection(s)",
            median_required=False,
        )
    except ConformanceFailure as failure:
        raise run_finding(
            failure,
            runner=busiest["runner"],
            check=check,
            example=f"every room program's connections ({len(watches)}), pooled",
            note="judged over the heartbeats of every program of the run; the replay file "
            f"holds the program that saw the most of them ({busiest['beats']}), whose "
            "replay repeats its steps but not the timing",
        ) from failure


@pytest.mark.requirements(
    "STREAM-004",
    "STREAM-005",
    "STREAM-007",
    "STREAM-009",
    "HTTP-003",
    "SSE-004",
    "SSE-007",
    "SSE-011",
)
def test_stream_programs_deliver_each_event_once_over_websocket_and_sse(rep: Harness) -> None:
    """Subscribers come and go, resume with lastEventId, SSE streams open, close and resume
    with Last-Event-ID, events are published over HTTP: each receives every event it should,
    once, in order, with no gap after a resume, and identical on WebSocket and SSE."""
    if rep.target.fixtures.stream is None:
        pytest.skip("the target file names no fixtures.stream")
    stream: str = rep.target.fixtures.stream
    last: dict[str, Any] = {}

    class StreamPrograms(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.last = last
            self.failed = False
            self.title = "stream program"
            self.runner = start_example(rep, self.title, last)
            last["runner"], last["title"] = self.runner, self.title
            self.model = Model(message_budget(rep))
            self.kind = self.runner.name("evt")
            self.publisher = self.runner.name("publisher")
            self.count = 0
            for label in CLIENTS[:2]:
                self.model.add_client(label, self.runner.name(label))
            for label in ("s0", "s1"):
                self.model.add_stream(label, self.runner.name(label))

        @precondition(lambda self: bool(self.model.disconnected()))
        @rule(data=st.data())
        @guarded
        def connect(self, data: st.DataObject) -> None:
            label = data.draw(st.sampled_from(self.model.disconnected()), label="client")
            self.runner.connect(label, self.model.clients[label].user)
            self.model.connect(label)

        @precondition(lambda self: bool(self.model.connected()))
        @rule(data=st.data(), how=st.sampled_from(("close", "drop")))
        @guarded
        def disconnect(self, data: st.DataObject, how: str) -> None:
            label = data.draw(st.sampled_from(self.model.connected()), label="client")
            self.runner.close(label) if how == "close" else self.runner.drop(label)
            self.model.disconnect(label)

        @precondition(
            lambda self: bool(
                [c for c in self.model.actors(1) if not self.model.clients[c].subscribed]
            )
        )
        @rule(data=st.data(), start=st.sampled_from(RESUME_FROM))
        @guarded
        def subscribe(self, data: st.DataObject, start: str) -> None:
            """Subscribe fresh, or resume after the last event seen, after an earlier
            event (inside the buffer), beyond the newest (a gap), or from 0-0 (a full
            replay, or a gap when older events were dropped)."""
            idle = [c for c in self.model.actors(1) if not self.model.clients[c].subscribed]
            label = data.draw(st.sampled_from(idle), label="client")
            self.model.spend(label, 1)
            events = self.model.events
            if start in ("none", "last") or (start == "earlier" and not events):
                after = self.model.clients[label].last_seen if start == "last" else None
                replay = self.model.subscribe(label, after is not None)
                self.runner.stream_subscribe(label, stream, self.kind, after=after, replay=replay)
                return
            if start == "earlier":
                position = "after:" + data.draw(st.sampled_from(events), label="event")
            elif start == "beyond":
                position = f"beyond:{events[-1] if events else 'now'}"
            else:
                position = "origin"
            replay, gap = self.model.subscribe_at(label, position)
            self.runner.stream_resume(
                label, stream, self.kind, position=position, replay=replay, gap=gap
            )

        @precondition(
            lambda self: bool([c for c in self.model.actors(1) if self.model.clients[c].subscribed])
        )
        @rule(data=st.data())
        @guarded
        def unsubscribe(self, data: st.DataObject) -> None:
            subscribed = [c for c in self.model.actors(1) if self.model.clients[c].subscribed]
            label = data.draw(st.sampled_from(subscribed), label="client")
            self.model.spend(label, 1)
            self.runner.request(
                label, "stream_unsubscribe", {"streamId": stream}, requirement="STREAM-009"
            )
            self.model.unsubscribe(label)

        @rule(body=published_bodies())
        @guarded
        def publish(self, body: dict[str, Any]) -> None:
            self.count += 1
            ref = f"e{self.count}"
            self.runner.publish(ref, stream, {**body, "type": self.kind}, publisher=self.publisher)
            subscribers, streams = self.model.publish(ref)
            for label in subscribers:
                self.runner.expect_stream_events(
                    label, stream, self.kind, [ref], requirement="STREAM-007"
                )
            for label in streams:
                # Live events after a resume are SSE-007's; on a fresh stream SSE-011's.
                resumed = self.model.streams[label].resumed
                requirement = "SSE-007" if resumed else "SSE-011"
                self.runner.sse_expect_events(label, self.kind, [ref], requirement=requirement)

        @precondition(lambda self: any(not s.open for s in self.model.streams.values()))
        @rule(data=st.data(), resume=st.booleans())
        @guarded
        def sse_open(self, data: st.DataObject, resume: bool) -> None:
            closed = sorted(s.label for s in self.model.streams.values() if not s.open)
            label = data.draw(st.sampled_from(closed), label="stream")
            resume = resume and self.model.streams[label].position is not None
            replay = self.model.sse_open(label, resume)
            user = self.model.streams[label].user
            self.runner.sse_open(label, user, [stream], resume=resume)
            if replay:
                self.runner.sse_expect_events(label, self.kind, replay, requirement="SSE-007")
            self.runner.sse_expect_settled(
                label,
                stream,
                self.kind,
                publisher=self.publisher,
                requirement="SSE-007" if resume else "SSE-011",
            )

        @precondition(lambda self: any(s.open for s in self.model.streams.values()))
        @rule(data=st.data())
        @guarded
        def sse_close(self, data: st.DataObject) -> None:
            opened = sorted(s.label for s in self.model.streams.values() if s.open)
            label = data.draw(st.sampled_from(opened), label="stream")
            self.runner.sse_close(label)
            self.model.sse_close(label)

        def teardown(self) -> None:
            with program_end(last, self.runner, self.title):
                if not self.failed:
                    self.runner.expect_settled(list(self.model.clients), watch=STREAM_WATCH)
                    for label, found in self.model.streams.items():
                        if found.open:
                            self.runner.sse_expect_settled(
                                label,
                                stream,
                                self.kind,
                                publisher=self.publisher,
                                requirement="SSE-007" if found.resumed else "SSE-011",
                            )
                    problem = self.runner.frame_problems()
                    if problem is not None:
                        raise problem

    explore_machine(
        rep,
        check="test_stateful.py::test_stream_programs_deliver_each_event_once_over_websocket_and_sse",
        machine=StreamPrograms,
        max_examples=run_settings.budget().stream_programs,
        last=last,
    )
    rep.record("stateful.streams.programs", last.get("programs", 0))
    rep.record("stateful.streams.steps", last.get("steps", 0))
