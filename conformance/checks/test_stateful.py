"""Stateful model checking: generated multi-client programs, every delivery predicted.

Hypothesis ``RuleBasedStateMachine``s drive several clients through random programs
(connect, join, leave, rejoin at once, chat, bursts, status updates, disconnect in three
ways; subscribe, resume, unsubscribe, publish over HTTP, SSE open, close and resume with
Last-Event-ID). A :class:`~conformance.generation.model.Model` predicts who receives what;
each prediction is an expectation step, and at the end of each program every client must
hold nothing the model did not predict. Every program uses fresh users, rooms and event
types. A failing program is shrunk and saved as a replay file.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from conformance import spec
from conformance.failures import ConformanceFailure
from conformance.generation import settings as run_settings
from conformance.generation.explore import (
    explore_machine,
    note_failure,
    program_end,
    start_example,
)
from conformance.generation.model import Model
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


@pytest.mark.requirements(
    "ROOM-003",
    "ROOM-004",
    "ROOM-005",
    "ROOM-006",
    "ROOM-007",
    "ROOM-008",
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
)
def test_room_programs_deliver_exactly_what_the_model_predicts(rep: Harness) -> None:
    """Clients join, leave, rejoin at once, chat (singly and in bursts), change status and
    disconnect: every member gets each room message exactly once and in the sender's order,
    non-members get nothing, member lists and statuses match the model."""
    last: dict[str, Any] = {}

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

        # -- connections -----------------------------------------------------------------

        @initialize(seats=st.lists(st.none() | st.integers(0, ROOMS - 1), min_size=3, max_size=3))
        @guarded
        def seat_everyone(self, seats: list[int | None]) -> None:
            """Programs start with every client connected, most already in a room, and a
            client without room:join whose joins are refused."""
            for label in CLIENTS:
                self.runner.connect(label, self.model.clients[label].user)
                self.model.connect(label)
            self.runner.connect(REFUSED, self.runner.name("refused"), (), [CONNECT])
            for label, seat in zip(CLIENTS, seats, strict=True):
                if seat is not None and self.model.can_send(label, 1):
                    self.model.spend(label, 1)
                    self._joined(label, self.rooms[seat], self._join(label, self.rooms[seat]))

        @precondition(lambda self: bool(self.model.disconnected()))
        @rule(data=st.data())
        @guarded
        def connect(self, data: st.DataObject) -> None:
            label = data.draw(st.sampled_from(self.model.disconnected()), label="client")
            self.runner.connect(label, self.model.clients[label].user)
            self.model.connect(label)

        @precondition(lambda self: bool(self.model.connected()))
        @rule(data=st.data(), how=st.sampled_from(DISCONNECT_WAYS))
        @guarded
        def disconnect(self, data: st.DataObject, how: str) -> None:
            label = data.draw(st.sampled_from(self.model.connected()), label="client")
            if how == "disconnect" and not self.model.can_send(label, 1):
                how = "close"
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

        # -- rooms -----------------------------------------------------------------------

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
            """Join (again, when already a member: ROOM-007)."""
            label = data.draw(st.sampled_from(self.model.actors(1)), label="client")
            self.model.spend(label, 1)
            name = self.rooms[room]
            self._joined(label, name, self._join(label, name))

        def _room_of(self, data: st.DataObject, label: str) -> str:
            """Mostly a room the client is in (where things happen), sometimes any room."""
            mine = sorted(self.model.clients[label].rooms)
            return data.draw(st.sampled_from(mine * 3 + self.rooms), label="room")

        @precondition(lambda self: bool(self.model.actors(3)))
        @rule(data=st.data(), rejoin=st.booleans())
        @guarded
        def leave(self, data: st.DataObject, rejoin: bool) -> None:
            """Leave (not_found for a non-member); with ``rejoin``, join again at once,
            without waiting for the first answer."""
            label = data.draw(st.sampled_from(self.model.actors(3)), label="client")
            self.model.spend(label, 3)
            name = self._room_of(data, label)
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

        @precondition(lambda self: self.refused_budget > 2)
        @rule(room=st.integers(0, ROOMS - 1))
        @guarded
        def refused_join(self, room: int) -> None:
            """A join without room:join: forbidden, and no trace (no user_join now, no
            member later, ERR-004); the end of the program checks nobody heard of it."""
            self.refused_budget -= 2  # the join and the barrier that proves one error
            name = self.rooms[room]
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

        def teardown(self) -> None:
            with program_end(last, self.runner, self.title):
                if not self.failed:
                    self.runner.expect_settled([*self.model.clients, REFUSED], watch=ROOM_WATCH)
                    problem = self.runner.frame_problems()
                    if problem is not None:
                        raise problem

    explore_machine(
        rep,
        check="test_stateful.py::test_room_programs_deliver_exactly_what_the_model_predicts",
        machine=RoomPrograms,
        max_examples=run_settings.budget().room_programs,
        last=last,
    )
    rep.record("stateful.rooms.programs", last.get("programs", 0))
    rep.record("stateful.rooms.steps", last.get("steps", 0))


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
