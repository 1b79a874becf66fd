"""Replayable steps: everything a generated or multi-step check does, recorded as data.

Checks never talk to the server directly: they call a :class:`Runner`, which records each
step (``{"do": "send", "client": "sender", "text": ...}``) and then performs it. Steps
that wait carry what the spec requires, so a step list is a complete test case: the replay
file of a failure is the step list of its shrunk example, and ``rep-conformance replay``
hands it to a fresh runner (:meth:`Runner.replay`) against any server.

Values the server assigns (client ids, event ids, SSE cursors) never appear in steps;
steps name clients by label and events by reference (``e1``), resolved while running.
Names the kit invents (users, rooms, collections) are turned into placeholders when a
replay file is written and into fresh names when it is replayed, so a replay never
collides with the run that produced it.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from conformance import spec
from conformance.client import (
    Client,
    Message,
    correlation_of,
    error_code_text,
    json_text,
    summarize,
)
from conformance.failures import ConformanceFailure
from conformance.generation.sse import SseError, SseEvent, SseStream
from conformance.harness import Harness
from conformance.identifiers import slug
from conformance.jsonvalues import json_difference
from rep_spec import catalog

Step = dict[str, Any]
#: Characters a generated slug leaves free for the longer names a replay may invent.
SLUG_SLACK = 12
PLACEHOLDER = re.compile(r"\{\{([a-z][a-z-]*)-(\d+)\}\}")

ANNOUNCE = spec.permission("message:announce")
PUBLISH = spec.permission("stream:publish")
NORMAL_CLOSURE = spec.close_code("normal_closure")
#: Codes that say "your message is malformed": a message the schemas accept must not get them.
VALIDATION_CODES = frozenset(
    spec.error_code(c)
    for c in (
        "invalid_json",
        "invalid_envelope",
        "unknown_type",
        "invalid_direction",
        "unsupported_version",
        "unsupported_frame",
        "invalid_payload",
    )
)
#: Server messages a settled connection may hold without any step having asked for them.
BACKGROUND = frozenset({"heartbeat"})


def _event_ids_of(event: SseEvent) -> str | None:
    """The stream event id an SSE event carries, if it carries one."""
    message = event.message or {}
    if message.get("type") != "stream_event":
        return None
    found = message.get("payload", {}).get("event", {}).get("id")
    return found if isinstance(found, str) else None


def _event_ids(stream: SseStream) -> set[str]:
    return {i for i in (_event_ids_of(e) for e in stream.events) if i is not None}


def _payload_member(key: str, value: Any) -> Callable[[Message], bool]:
    return lambda message: message.get("payload", {}).get(key) == value


def _is_error(message: Message) -> bool:
    return message.get("type") == "error"


def _code(message: Message) -> Any:
    payload = message.get("payload")
    return payload.get("code") if isinstance(payload, dict) else None


class Runner:
    """Performs and records the steps of one example against the target."""

    def __init__(self, rep: Harness) -> None:
        self.rep = rep
        self.steps: list[Step] = []
        self.clients: dict[str, Client] = {}
        self.users: dict[str, str] = {}
        self.streams: dict[str, SseStream] = {}
        self.cursors: dict[str, str] = {}
        #: Every stream event id each SSE name received on its earlier connections.
        self.sse_history: dict[str, set[str]] = {}
        self.refs: dict[str, str] = {}
        self.published: dict[str, dict[str, Any]] = {}
        self.observed: dict[str, dict[str, Any]] = {}
        self.last_event: dict[str, str] = {}
        #: When the first message since the last quiet check was sent (do_expect_quiet).
        self._quiet_since: float | None = None
        self.created: list[str] = []
        self._order: dict[tuple[str, str], float] = {}
        self._placeholders: dict[str, str] = {}
        #: Every connection and SSE stream of the example, including replaced ones.
        self._opened: list[Client | SseStream] = []
        #: Clients that had a message refused: none may turn up as a member (ERR-004).
        self.refused: set[str] = set()
        #: How long expectations wait; shorter while hypothesis shrinks a known failure.
        self.within = rep.timeouts.answer

    # -- names ---------------------------------------------------------------------------

    def name(self, prefix: str) -> str:
        """A fresh name (room, collection, user, event type) that replays will renew."""
        found = self.rep.name(prefix)
        self.created.append(found)
        return found

    def slug(self, prefix: str) -> str:
        """A fresh id from the whole slug pattern (identifiers.slug) around a fresh name.
        It stops short of the longest length by :data:`SLUG_SLACK`, so that the longer
        name a replay may invent still fits."""
        return slug(self.name(prefix), length_slack=SLUG_SLACK)

    def resolve(self, value: Any) -> Any:
        """Placeholders of a replay file become fresh names, the same name each time."""
        if isinstance(value, str):
            return PLACEHOLDER.sub(self._fresh, value)
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        return value

    def _fresh(self, match: re.Match[str]) -> str:
        key = match.group(0)
        if key not in self._placeholders:
            self._placeholders[key] = self.name(match.group(1))
        return self._placeholders[key]

    def recorded(self) -> tuple[list[Step], list[str]]:
        """The steps with every invented name replaced by a placeholder, and the placeholders."""
        mapping: dict[str, str] = {}
        for index, name in enumerate(dict.fromkeys(self.created)):
            # Invented names read <prefix>-<run id>-<number>; the prefix survives a replay.
            prefix = re.sub(r"[^a-z-]", "", name.rsplit("-", 2)[0].lower()).strip("-") or "name"
            mapping[name] = f"{{{{{prefix}-{index + 1}}}}}"
        ordered = sorted(mapping, key=len, reverse=True)

        def swap(value: Any) -> Any:
            if isinstance(value, str):
                for name in ordered:
                    value = value.replace(name, mapping[name])
                return value
            if isinstance(value, list):
                return [swap(v) for v in value]
            if isinstance(value, dict):
                return {k: swap(v) for k, v in value.items()}
            return value

        return [swap(step) for step in self.steps], list(mapping.values())

    # -- recording -----------------------------------------------------------------------

    def _run(self, do: str, **args: Any) -> Any:
        self.steps.append({"do": do, **args})
        performer: Callable[..., Any] = getattr(self, f"do_{do}")
        return performer(**args)

    def replay(self, steps: Sequence[Step]) -> None:
        """Perform recorded steps (with fresh names); the first unmet expectation raises."""
        for step in steps:
            args = self.resolve({k: v for k, v in step.items() if k != "do"})
            do = str(step["do"])
            if not hasattr(self, f"do_{do}"):
                raise ValueError(f"unknown step {do!r} in the replay file")
            self._run(do, **args)

    def close_all(self) -> None:
        for opened in self._opened:
            opened.close()

    def frame_problems(self) -> ConformanceFailure | None:
        """Schema or rule problems in anything the server sent during this example, on
        every connection it opened (reconnects included)."""
        found = [(ids, f"{o.label}: {text}") for o in self._opened for ids, text in o.problems]
        if not found:
            return None
        return self.rep.fail(
            [rid for ids, _ in found for rid in ids],
            expected="every message the server sends to match the server schemas and rules",
            received="; ".join(text for _, text in found[:5]),
        )

    # -- public steps ----------------------------------------------------------------------

    def connect(
        self,
        client: str,
        user: str,
        roles: Sequence[str] = ("user",),
        permissions: Sequence[str] = (),
    ) -> Client:
        found: Client = self._run(
            "connect", client=client, user=user, roles=list(roles), permissions=list(permissions)
        )
        return found

    def close(self, client: str) -> None:
        self._run("close", client=client)

    def drop(self, client: str) -> None:
        self._run("drop", client=client)

    def send(self, client: str, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            self._run("send", client=client, binary=base64.b64encode(frame).decode())
        else:
            self._run("send", client=client, text=frame)

    def send_message(self, client: str, type_name: str, payload: dict[str, Any]) -> str:
        """A valid envelope from the client, sent as recorded text; returns its id."""
        envelope = self.clients[client].envelope(type_name, payload)
        self.send(client, orjson.dumps(envelope).decode())
        return str(envelope["id"])

    def request(
        self,
        client: str,
        type_name: str,
        payload: dict[str, Any],
        *,
        requirement: str | list[str] = "MSG-003",
    ) -> Message:
        found: Message = self._run(
            "request", client=client, type=type_name, payload=payload, requirement=requirement
        )
        return found

    # -- performers: connections ---------------------------------------------------------

    def do_connect(
        self, client: str, user: str, roles: list[str], permissions: list[str]
    ) -> Client:
        if client in self.clients:
            self.clients[client].close()
        connected = self.rep.connect(user, tuple(roles), tuple(permissions), label=client)
        self._opened.append(connected)
        self.clients[client] = connected
        self.users[client] = user
        return connected

    def do_close(self, client: str) -> None:
        before = self._connection_count()
        self.clients[client].close()
        self._settle(before)

    def do_drop(self, client: str) -> None:
        before = self._connection_count()
        self.clients[client].drop()
        self._settle(before)

    def _connection_count(self) -> int | None:
        """/stats connections, or None when /stats gives no count (its own checks judge it)."""
        try:
            response = self.rep.http.get("/stats")
            count = response.json().get("connections") if response.status == 200 else None
        except Exception:
            return None
        return count if isinstance(count, int) else None

    def _settle(self, before: int | None) -> None:
        """Let the server see a closed or dropped connection before the program goes on.

        Nothing in the protocol tells another client when a server has noticed that a
        connection ended, and a busy server may take a moment; a join sent meanwhile would
        legitimately still list the departed member. /stats is the one observable sign, so
        wait (bounded by the answer timeout) until it counts one connection less. A wait
        that runs out judges nothing: the program goes on, and /stats has checks of its own.
        """
        if before is None:
            return
        deadline = time.monotonic() + self.within
        while time.monotonic() < deadline:
            now = self._connection_count()
            if now is None or now < before:
                return
            time.sleep(0.02)

    def do_send(self, client: str, text: str | None = None, binary: str | None = None) -> None:
        target = self.clients[client]
        if self._quiet_since is None:  # the first message a quiet check may ask about
            self._quiet_since = self.rep.transcript.now()
        if binary is not None:
            target.send_raw(base64.b64decode(binary))
        elif text is not None:
            target.send_raw(text)
        else:
            raise ValueError("a send step needs text or binary")

    def do_request(
        self, client: str, type: str, payload: dict[str, Any], requirement: str | list[str]
    ) -> Message:
        target = self.clients[client]
        sent = target.send(type, payload)
        answer = catalog().types[type].answer_type or type
        return target.expect(
            answer, correlation_id=sent, within=self.within, requirement=requirement
        )

    # -- performers: judging one answer --------------------------------------------------

    def expect_answer(
        self, client: str, message_id: str, type_name: str, *, payload_rules: bool = False
    ) -> None:
        self._run(
            "expect_answer",
            client=client,
            message_id=message_id,
            type_name=type_name,
            payload_rules=payload_rules,
        )

    def do_expect_answer(
        self, client: str, message_id: str, type_name: str, payload_rules: bool
    ) -> None:
        """A valid message gets what the catalogue registers, or a registered error.

        ``payload_rules``: the spec adds payload rules beyond the schema for this message
        (attachment URL policy), so invalid_payload is a possible answer too.
        """
        target = self.clients[client]
        message_type = catalog().types[type_name]
        kind = message_type.answer_kind
        wanted = message_type.answer_type if kind == "response" else type_name
        answered = "MSG-003" if kind == "response" else "MSG-004"
        sent = target.describe_sent(message_id)
        found = target.expect(
            lambda m: correlation_of(m) == message_id,
            within=self.within,
            requirement=["ERR-001", answered],
            description=f"a {wanted} or an error with metadata.correlation_id = {message_id!r}",
        )
        if _is_error(found):
            code = _code(found)
            if code not in catalog().error_codes:
                raise target.failure(
                    "ERR-002",
                    sent=sent,
                    expected="a registered error code",
                    received=summarize(found),
                )
            refusable = code == spec.error_code("invalid_payload") and payload_rules
            if code in VALIDATION_CODES and not refusable:
                ids = ["VER-003"] if code == spec.error_code("unsupported_version") else []
                raise target.failure(
                    ["ENV-009", *ids],
                    sent=sent,
                    expected=f"a {wanted}: the message matches the client schemas",
                    received=f"refused as malformed: {summarize(found)}",
                )
        elif found.get("type") != wanted:
            raise target.failure(
                answered,
                sent=sent,
                expected=f"a {wanted} with metadata.correlation_id = {message_id!r}",
                received=summarize(found),
            )
        elif kind == "copy":
            sender = found.get("metadata", {}).get("sender")
            want = {"userId": target.user_id, "clientId": target.client_id}
            if not isinstance(sender, dict) or {k: sender.get(k) for k in want} != want:
                raise target.failure(
                    "MSG-005",
                    sent=sent,
                    expected=f"metadata.sender = {want} (whatever the client wrote there)",
                    received=f"metadata.sender = {sender!r} in {summarize(found)}",
                )
        if type_name == spec.message_type("disconnect") and not _is_error(found):
            target.expect_close(
                NORMAL_CLOSURE, within=self.within, requirement="LIFE-006", sent=sent
            )
            return
        if not target.is_open():
            raise target.failure(
                ["ERR-005", "WS-006"],
                sent=sent,
                expected="the connection to stay open after answering a valid message",
                received=target.closed.describe() if target.closed else "closed",
            )
        target.sync()
        target.expect_none(
            lambda m: correlation_of(m) == message_id,
            within=0.0,
            requirement=["ERR-001"] if _is_error(found) else [answered],
            description=f"a second answer to {message_id!r}",
        )

    def expect_refusal(
        self,
        client: str,
        code: str,
        correlation_id: str | None,
        *,
        code_requirement: str,
        violates: str,
        description: str,
    ) -> None:
        self._run(
            "expect_refusal",
            client=client,
            code=code,
            correlation_id=correlation_id,
            code_requirement=code_requirement,
            violates=violates,
            description=description,
        )

    def do_expect_refusal(
        self,
        client: str,
        code: str,
        correlation_id: str | None,
        code_requirement: str,
        violates: str,
        description: str,
    ) -> None:
        """One error with the documented code; the message is not processed.

        Processing a message the schemas refuse also breaks ENV-009; processing one refused
        for what it asks (a room one is not in) breaks only the rule that refuses it.
        """
        target = self.clients[client]
        self.refused.add(client)
        sent = f"{description} (breaks {violates})"
        of = correlation_id
        unchecked = ["ENV-009"] if code in VALIDATION_CODES else []

        def relevant(message: Message) -> bool:
            correlation = correlation_of(message)
            if _is_error(message):
                return correlation in (of, None) or of is None
            return of is not None and correlation == of

        expected = f"an error with code {json_text(code)}" + (
            f" and metadata.correlation_id = {json_text(of)}" if of is not None else ""
        )
        found = target.expect(
            relevant,
            within=self.within,
            requirement=["ERR-001", code_requirement],
            description=expected,
        )
        if not _is_error(found):
            raise target.failure(
                [*unchecked, code_requirement],
                sent=sent,
                expected=expected,
                received=f"the server processed it and answered {summarize(found)}",
            )
        if of is not None and correlation_of(found) != of:
            raise target.failure(
                "ERR-003",
                sent=sent,
                expected=expected,
                received=f"an error without that correlation_id: {summarize(found)}",
            )
        if _code(found) != code:
            # Another validation code means the checks ran in another order than ERR-011's.
            ids = (
                [code_requirement, "ERR-011"]
                if _code(found) in VALIDATION_CODES
                else [code_requirement]
            )
            raise target.failure(
                ids,
                sent=sent,
                expected=expected,
                received=f"{error_code_text(_code(found))}: {summarize(found)}",
            )
        if not target.is_open():
            raise target.failure(
                "ERR-005",
                sent=sent,
                expected="the connection to stay open after the refusal",
                received=target.closed.describe() if target.closed else "closed",
            )
        target.sync()
        target.expect_none(
            relevant,
            within=0.0,
            requirement=["ERR-001", *unchecked],
            description=f"a second answer to {description}",
        )

    def expect_quiet(self, client: str, *, requirement: str, about: str) -> None:
        self._run("expect_quiet", client=client, requirement=requirement, about=about)

    def do_expect_quiet(self, client: str, requirement: str, about: str) -> None:
        """After a barrier, the client holds nothing it was not told to expect, of what came
        after the messages sent since the last such check (nothing earlier can be caused by
        them: a leftover of an earlier step is that step's finding)."""
        target = self.clients[client]
        target.sync()
        since, self._quiet_since = self._quiet_since or 0.0, None
        target.expect_none(
            lambda m: m.get("type") not in BACKGROUND,
            within=0.0,
            requirement=requirement,
            description=f"any message caused by {about}",
            since=since,
        )

    def expect_close(self, client: str, codes: list[int], *, requirement: str) -> None:
        self._run("expect_close", client=client, codes=codes, requirement=requirement)

    def do_expect_close(self, client: str, codes: list[int], requirement: str) -> None:
        self.clients[client].expect_close(codes, within=self.within, requirement=requirement)

    # -- performers: deliveries the model predicts ---------------------------------------

    def expect_delivery(self, client: str, match: dict[str, Any], *, requirement: str) -> Message:
        found: Message = self._run(
            "expect_delivery", client=client, match=match, requirement=requirement
        )
        return found

    def _matcher(self, match: dict[str, Any]) -> tuple[Callable[[Message], bool], str]:
        kind = str(match["type"])
        checks: list[Callable[[Message], bool]] = [lambda m: m.get("type") == kind]
        parts = [f"a {kind}"]
        if "correlation_id" in match:
            wanted = match["correlation_id"]
            checks.append(lambda m: correlation_of(m) == wanted)
            parts.append(f"correlated to {wanted!r}")
        if "about" in match:
            about = self.clients[str(match["about"])]
            ids = (about.user_id, about.client_id)
            checks.append(
                lambda m: (
                    (m.get("payload", {}).get("userId"), m.get("payload", {}).get("clientId"))
                    == ids
                )
            )
            parts.append(f"about {about.label}")
        for key in ("roomId", "reason"):
            if key in match:
                checks.append(_payload_member(key, match[key]))
                parts.append(f"{key} {match[key]!r}")
        if "event" in match:
            event_id = self.refs[str(match["event"])]
            checks.append(lambda m: m.get("payload", {}).get("event", {}).get("id") == event_id)
            parts.append(f"event {match['event']} ({event_id})")
        return (lambda m: all(check(m) for check in checks)), " ".join(parts)

    def do_expect_delivery(
        self, client: str, match: dict[str, Any], requirement: str | list[str]
    ) -> Message:
        target = self.clients[client]
        predicate, description = self._matcher(match)
        found = target.expect(
            predicate, within=self.within, requirement=requirement, description=description
        )
        if "after_from" in match:
            self._check_order(client, target, found, str(match["after_from"]), requirement)
        if match["type"] == "stream_event":
            self._observe(str(match["event"]), found, target.label, "STREAM-004")
        return found

    def _check_order(
        self, client: str, target: Client, found: Message, sender: str, requirement: Any
    ) -> None:
        """Copies from one sender arrive in the order it sent them."""
        at = next((t for t, m in target.received() if m is found), 0.0)
        key = (client, sender)
        previous = self._order.get(key)
        if previous is not None and at < previous:
            raise target.failure(
                requirement,
                expected=f"copies from {sender} in the order {sender} sent them",
                received=f"{summarize(found)} arrived before a copy sent earlier",
            )
        self._order[key] = at

    def expect_stream_events(
        self, client: str, stream: str, kind: str, events: list[str], *, requirement: str
    ) -> None:
        self._run(
            "expect_stream_events",
            client=client,
            stream=stream,
            kind=kind,
            events=events,
            requirement=requirement,
        )

    def do_expect_stream_events(
        self, client: str, stream: str, kind: str, events: list[str], requirement: str
    ) -> None:
        """Exactly these events of ``kind`` next, in order: no gap, no duplicate."""
        target = self.clients[client]

        def ours(message: Message) -> bool:
            payload = message.get("payload", {})
            return (
                message.get("type") == "stream_event"
                and payload.get("streamId") == stream
                and payload.get("event", {}).get("type") == kind
            )

        for ref in events:
            want = self.refs[ref]
            found = target.expect(
                ours,
                within=self.within,
                requirement=requirement,
                description=f"stream_event {ref} ({want})",
            )
            got = found["payload"]["event"].get("id")
            if got != want:
                known = {v: k for k, v in self.refs.items()}
                raise target.failure(
                    requirement,
                    expected=f"event {ref} ({want}) next, after {self.last_event.get(client)}",
                    received=f"event {known.get(got, got)} ({got}): "
                    + ("a duplicate" if got in known and known[got] not in events else "a gap"),
                )
            self.last_event[client] = ref
            self._observe(ref, found, target.label, requirement)

    def stream_subscribe(
        self, client: str, stream: str, kind: str, *, after: str | None, replay: list[str]
    ) -> None:
        self._run(
            "stream_subscribe", client=client, stream=stream, kind=kind, after=after, replay=replay
        )

    def do_stream_subscribe(
        self, client: str, stream: str, kind: str, after: str | None, replay: list[str]
    ) -> None:
        """Subscribe with a filter on ``kind`` (after an event, when given): the response
        counts the replay, reports no gap, and exactly the replayed events follow."""
        target = self.clients[client]
        payload: dict[str, Any] = {"streamId": stream, "filter": {"eventTypes": [kind]}}
        if after is not None:
            payload["lastEventId"] = self.refs[after]
        sent = target.send("stream_subscribe", payload)
        response = target.expect(
            "stream_subscribe_response",
            correlation_id=sent,
            within=self.within,
            requirement="MSG-003",
        )
        body = response.get("payload", {})
        expected = {"replayed": len(replay)} | ({"gap": False} if after is not None else {})
        got = {key: body.get(key) for key in expected}
        if got != expected:
            raise target.failure(
                "STREAM-004",
                sent=target.describe_sent(sent),
                expected=f"a stream_subscribe_response with {expected}"
                + (f" (resuming after {after})" if after else ""),
                received=summarize(response),
            )
        self.last_event[client] = after or "the subscription"
        self.do_expect_stream_events(client, stream, kind, replay, "STREAM-004")

    def stream_resume(
        self, client: str, stream: str, kind: str, *, position: str, replay: list[str], gap: str
    ) -> None:
        self._run(
            "stream_resume",
            client=client,
            stream=stream,
            kind=kind,
            position=position,
            replay=replay,
            gap=gap,
        )

    def _position(self, position: str) -> str:
        """A symbolic resume position as an event id: ``after:eN`` the id of event eN,
        ``beyond:eN`` an hour after it, ``beyond:now`` an hour from now, ``origin`` 0-0."""
        kind, _, ref = position.partition(":")
        if kind == "origin":
            return "0-0"
        if kind == "after":
            return self.refs[ref]
        base = time.time() * 1000 if ref == "now" else float(self.refs[ref].split("-")[0])
        return f"{int(base) + 3_600_000}-0"

    def do_stream_resume(
        self, client: str, stream: str, kind: str, position: str, replay: list[str], gap: str
    ) -> None:
        """Subscribe with lastEventId at ``position``. ``gap`` says what the spec allows:
        ``no`` (inside the buffer: gap false and exactly ``replay``), ``yes`` (beyond the
        stream: gap true, nothing replayed, STREAM-005), ``either`` (possibly older than the
        buffer: gap true and nothing, or gap false and exactly ``replay``)."""
        target = self.clients[client]
        payload: dict[str, Any] = {
            "streamId": stream,
            "filter": {"eventTypes": [kind]},
            "lastEventId": self._position(position),
        }
        sent = target.send("stream_subscribe", payload)
        response = target.expect(
            "stream_subscribe_response",
            correlation_id=sent,
            within=self.within,
            requirement="MSG-003",
        )
        body = response.get("payload", {})
        found = (body.get("gap"), body.get("replayed"))
        allowed = {"no": [(False, len(replay))], "yes": [(True, 0)]}.get(
            gap, [(True, 0), (False, len(replay))]
        )
        if found not in allowed:
            raise target.failure(
                "STREAM-005" if gap != "no" else "STREAM-004",
                sent=target.describe_sent(sent),
                expected=" or ".join(f"gap {json_text(g)}, replayed {n}" for g, n in allowed)
                + f" (lastEventId {position})",
                received=summarize(response),
            )
        self.last_event[client] = position
        if found[0] is False:
            self.do_expect_stream_events(client, stream, kind, replay, "STREAM-004")

    def _observe(self, ref: str, message: Message, where: str, requirement: str) -> None:
        """One event, every transport, identical content (SSE-004, HTTP-003)."""
        event = message.get("payload", {}).get("event", {})
        published = self.published.get(ref)
        if published is not None:
            seen = {k: event.get(k) for k in ("type", "tags", "data")}
            want = {
                "type": published["type"],
                "tags": published.get("tags", []),
                "data": published["data"],
            }
            difference = json_difference(want, seen, "/event")
            if difference is not None:
                raise self.rep.fail(
                    "HTTP-003",
                    expected=f"event {ref} on {where} as published: {want}",
                    received=f"{seen} ({difference})",
                )
        first = self.observed.setdefault(ref, {"event": event, "where": where})
        difference = json_difference(first["event"], event, "/event")
        if difference is not None:
            over_sse = "sse" in where or "sse" in first["where"]
            raise self.rep.fail(
                ["SSE-004", requirement] if over_sse else requirement,
                expected=f"event {ref} identical everywhere: {first['event']} "
                f"(as on {first['where']})",
                received=f"{event} on {where} ({difference})",
            )

    def expect_members(
        self, client: str, room: str, members: dict[str, list[str]], *, message_id: str
    ) -> None:
        self._run(
            "expect_members", client=client, room=room, members=members, message_id=message_id
        )

    def do_expect_members(
        self, client: str, room: str, members: dict[str, list[str]], message_id: str
    ) -> None:
        """The room_join_response lists exactly the model's members, each with a status
        the model allows (ROOM-003, PRES-002)."""
        target = self.clients[client]
        response = target.expect(
            "room_join_response",
            correlation_id=message_id,
            within=self.within,
            requirement="MSG-003",
        )
        listed = response.get("payload", {}).get("members")
        got = {
            (m.get("userId"), m.get("clientId")): m.get("status")
            for m in (listed if isinstance(listed, list) else [])
            if isinstance(m, dict)
        }
        identities = self._identities(list(members))
        want = {identities[label]: statuses for label, statuses in members.items()}
        if set(got) != set(want):
            label_of = {ids: label for label, ids in self._identities(list(members)).items()}
            ghosts = self._identities(sorted(self.refused - set(members) & set(self.clients)))
            ghost = sorted(label for label, ids in ghosts.items() if ids in got)
            if ghost:
                raise target.failure(
                    "ERR-004",
                    expected=f"members of {room}: {sorted(members)}; a refused message has "
                    "no effect",
                    received=f"members include {ghost}, whose join was refused",
                )
            raise target.failure(
                "ROOM-003",
                expected=f"members of {room}: {sorted(members)}",
                received=f"members {[label_of.get(k, k) for k in got]}",
            )
        for key, statuses in want.items():
            if got[key] not in statuses:
                raise target.failure(
                    "PRES-002",
                    expected=f"{key[0]} listed with status {' or '.join(statuses)}",
                    received=f"status {got[key]!r}",
                )

    def _identities(self, labels: list[str]) -> dict[str, tuple[Any, Any]]:
        """(userId, clientId) of each labelled client's current connection."""
        return {
            label: (self.clients[label].user_id, self.clients[label].client_id) for label in labels
        }

    def expect_settled(self, clients: list[str], *, watch: dict[str, str]) -> None:
        self._run("expect_settled", clients=clients, watch=watch)

    def do_expect_settled(self, clients: list[str], watch: dict[str, str]) -> None:
        """After a barrier on every open client, none holds a message no step predicted.

        ``watch`` maps a message type to the requirement an unpredicted one breaks
        (a duplicate copy, a delivery to a non-member, a notice about nobody).
        """
        open_clients = [
            self.clients[c] for c in clients if c in self.clients and self.clients[c].is_open()
        ]
        for client in open_clients:
            client.sync()
        for client in open_clients:
            for message_type, requirement in watch.items():
                client.expect_none(
                    message_type,
                    within=0.0,
                    requirement=requirement,
                    description=f"{message_type} that no step predicted",
                )

    # -- performers: HTTP publishing and SSE ---------------------------------------------

    def publish(self, ref: str, stream: str, body: dict[str, Any], *, publisher: str) -> str:
        found: str = self._run("publish", ref=ref, stream=stream, body=body, publisher=publisher)
        return found

    def do_publish(self, ref: str, stream: str, body: dict[str, Any], publisher: str) -> str:
        token = self.rep.token(publisher, ("admin",), (PUBLISH,))
        response = self.rep.http.post(f"/streams/{stream}/events", json=body, token=token)
        decoded = response.json()
        event_id = decoded.get("id") if isinstance(decoded, dict) else None
        if response.status != 201 or not isinstance(event_id, str):
            raise self.rep.fail(
                "HTTP-003",
                sent=f"POST /streams/{stream}/events with stream:publish",
                expected="HTTP 201 with the stored event's id",
                received=f"HTTP {response.status} {response.text[:300]}",
            )
        self.refs[ref] = event_id
        self.published[ref] = body
        return event_id

    def sse_open(self, name: str, user: str, channels: list[str], *, resume: bool) -> None:
        self._run("sse_open", name=name, user=user, channels=channels, resume=resume)

    def do_sse_open(self, name: str, user: str, channels: list[str], resume: bool) -> None:
        """Open GET /events; with ``resume``, send the last cursor this name received."""
        url = self.rep.target.node.sse_url or f"{self.rep.target.node.http_url}/events"
        last = self.cursors.get(name) if resume else None
        if resume and last is None:
            raise ValueError(f"{name} has no cursor to resume from")
        token = self.rep.token(user)
        try:
            stream = SseStream(
                url,
                channels=channels,
                token=token,
                transcript=self.rep.transcript,
                label=f"{name}#sse",
                last_event_id=last,
                timeout=self.rep.timeouts.connect,
            )
        except SseError as exc:
            raise self.rep.fail(
                "SSE-007" if resume else "SSE-002",
                sent=f"GET /events?channels={','.join(channels)}",
                expected="HTTP 200 text/event-stream",
                received=str(exc),
            ) from exc
        self.streams[name] = stream
        self._opened.append(stream)
        connection = stream.wait_for(lambda e: e.event == "connection", self.within)
        if connection is None or connection.id is None:
            raise self.rep.fail(
                "SSE-011",
                expected="a connection event with an id (the resume cursor)",
                received="none" if connection is None else "no id",
            )
        self.cursors[name] = connection.id

    def sse_close(self, name: str) -> None:
        self._run("sse_close", name=name)

    def do_sse_close(self, name: str) -> None:
        """Close, then remember what a reconnecting client would: the last id it received
        (read after the reader stopped, so cursor and history agree)."""
        stream = self.streams[name]
        stream.close()
        if stream.last_id is not None:
            self.cursors[name] = stream.last_id
        self.sse_history.setdefault(name, set()).update(_event_ids(stream))

    def sse_expect_events(
        self, name: str, kind: str, events: list[str], *, requirement: str
    ) -> None:
        self._run("sse_expect_events", name=name, kind=kind, events=events, requirement=requirement)

    def do_sse_expect_events(
        self, name: str, kind: str, events: list[str], requirement: str
    ) -> None:
        """Exactly these events of ``kind`` next on the SSE stream, in order."""
        stream = self.streams[name]
        known = {v: k for k, v in self.refs.items()}

        def ours(event: SseEvent) -> bool:
            message = event.message or {}
            if message.get("type") == "error":
                return True
            return message.get("type") == "stream_event" and (
                message.get("payload", {}).get("event", {}).get("type") == kind
            )

        for ref in events:
            want = self.refs[ref]
            found = stream.wait_for(ours, self.within)
            if found is None:
                raise self.rep.fail(
                    requirement,
                    expected=f"event {ref} ({want}) on {stream.label} within {self.within:g} s",
                    received="nothing" + (" (the stream ended)" if stream.ended else ""),
                )
            message = found.message or {}
            got = message.get("payload", {}).get("event", {}).get("id")
            if message.get("type") == "error" or got != want:
                what = (
                    summarize(message)
                    if message.get("type") == "error"
                    else f"event {known.get(got, got)} ({got}): "
                    + ("a duplicate" if got in known and known[got] not in events else "a gap")
                )
                raise self.rep.fail(
                    requirement,
                    expected=f"event {ref} ({want}) next on {stream.label}",
                    received=what,
                )
            if found.id is not None:
                self.cursors[name] = found.id
            self._observe(ref, message, stream.label, requirement)

    def sse_expect_settled(
        self, name: str, stream: str, kind: str, *, publisher: str, requirement: str
    ) -> None:
        self._run(
            "sse_expect_settled",
            name=name,
            stream=stream,
            kind=kind,
            publisher=publisher,
            requirement=requirement,
        )

    def do_sse_expect_settled(
        self, name: str, stream: str, kind: str, publisher: str, requirement: str
    ) -> None:
        """After a barrier, no event of ``kind`` (nor an error) arrived that no step predicted.

        SSE has no ping, so the barrier is an event of another type published now: events
        of one stream arrive in order, so once it is there, everything before it is too.
        """
        sse = self.streams[name]
        marker = f"{kind}-barrier"
        event_id = self.do_publish(
            f"barrier-{name}", stream, {"type": marker, "data": {}}, publisher
        )
        found = sse.wait_for(
            lambda e: (e.message or {}).get("payload", {}).get("event", {}).get("id") == event_id,
            self.within,
            consume=True,
        )
        if found is None:
            raise self.rep.fail(
                "SSE-011",
                expected=f"the live event {event_id} on {sse.label} within {self.within:g} s",
                received="nothing" + (" (the stream ended)" if sse.ended else ""),
            )
        seen = set(self.sse_history.get(name, set()))
        for event in sse.events:
            repeated = _event_ids_of(event)
            if repeated is None:
                continue
            if repeated in seen:
                raise self.rep.fail(
                    requirement,
                    expected=f"each event once on {sse.label} (resumed from "
                    f"{self.cursors.get(name)!r})",
                    received=f"event {repeated} again: {summarize(event.message)}",
                )
            seen.add(repeated)
        for event in sse.unconsumed():
            message = event.message or {}
            mine = message.get("payload", {}).get("event", {}).get("type") == kind
            if message.get("type") == "error" or (message.get("type") == "stream_event" and mine):
                raise self.rep.fail(
                    requirement,
                    expected=f"no further event of {kind} on {sse.label}",
                    received=summarize(message),
                )
