"""The Server-Sent Events binding: GET /events refusals, headers, opening, keep-alive,
cursors, resume, replay_unavailable and CORS.

Streams are read with :class:`conformance.generation.sse.SseStream`, which validates every
envelope it receives against the server schemas (through ``rep_spec``); each check ends by
turning what it found wrong into a failure. Checks that publish use event types of their
own and filter on them, so events of other checks in the shared fixture stream never count.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import pytest

from conformance import spec, steps
from conformance.client import json_text
from conformance.failures import ConformanceFailure
from conformance.frames import check_http_body
from conformance.generation.sse import SseError, SseEvent, SseStream
from conformance.harness import Harness, Inconclusive

CONNECT = spec.permission("websocket:connect")
UNAUTHORIZED = spec.error_code("unauthorized")
FORBIDDEN = spec.error_code("forbidden")
NOT_FOUND = spec.error_code("not_found")
INVALID_PAYLOAD = spec.error_code("invalid_payload")
REPLAY_UNAVAILABLE = spec.error_code("replay_unavailable")


class Streams:
    """The check's SSE requests: opened through :meth:`open`, all closed at teardown."""

    def __init__(self, rep: Harness) -> None:
        self.rep = rep
        self.url = rep.target.node.sse_url or f"{rep.target.node.http_url}/events"
        self.opened: list[SseStream] = []
        self._count = itertools.count(1)

    def open(
        self,
        channels: Sequence[str] | None,
        token: str | None,
        *,
        via: str = "header",
        headers: dict[str, str] | None = None,
        last_event_id: str | None = None,
    ) -> SseStream:
        """An open stream; an HTTP refusal raises :class:`SseError`."""
        stream = SseStream(
            self.url,
            channels=channels,
            token=token,
            transcript=self.rep.transcript,
            label=f"sse#{next(self._count)}",
            last_event_id=last_event_id,
            timeout=self.rep.timeouts.connect,
            via=via,
            headers=headers,
        )
        self.opened.append(stream)
        return stream

    def accepted(
        self,
        requirement: str,
        channels: Sequence[str],
        token: str,
        *,
        via: str = "header",
        headers: dict[str, str] | None = None,
        last_event_id: str | None = None,
    ) -> SseStream:
        """An open stream, or a failure of ``requirement`` naming the refusal."""
        try:
            return self.open(channels, token, via=via, headers=headers, last_event_id=last_event_id)
        except SseError as refused:
            raise self.rep.fail(
                requirement,
                sent=f"GET /events?channels={','.join(channels)} with a valid token (via {via})",
                expected="HTTP 200 with Content-Type text/event-stream",
                received=f"HTTP {refused.status} {refused.body[:300]}",
            ) from refused

    def refused(
        self,
        requirement: str,
        what: str,
        channels: Sequence[str] | None,
        token: str | None,
        *,
        status: int,
        code: str,
    ) -> None:
        """The request is refused before any event, with ``status`` and an error body."""
        sent = f"GET /events ({what})"
        try:
            stream = self.open(channels, token)
        except SseError as refused:
            if refused.status != status:
                raise self.rep.fail(
                    requirement,
                    sent=sent,
                    expected=f"HTTP {status} ({code}) before any event",
                    received=f"HTTP {refused.status} {refused.body[:300]}",
                ) from refused
            self.error_body(requirement, sent, refused, code)
            return
        first = stream.wait_for(lambda e: True, self.rep.timeouts.answer, consume=False)
        raise self.rep.fail(
            requirement,
            sent=sent,
            expected=f"HTTP {status} ({code}) before any event",
            received="HTTP 200 text/event-stream"
            + (f", then a {json_text(first.event)} event" if first is not None else ""),
        )

    def error_body(self, requirement: str, sent: str, refused: SseError, code: str) -> None:
        try:
            body: Any = orjson.loads(refused.body)
        except orjson.JSONDecodeError:
            body = None
        violation = (
            check_http_body("error-response", body) if body is not None else "the body is not JSON"
        )
        if violation is not None or body["error"].get("code") != code:
            raise self.rep.fail(
                requirement,
                sent=sent,
                expected=f'a JSON body {{"error": {{"code": "{code}", "message": ...}}}}',
                received=f"HTTP {refused.status} {refused.body[:300]}"
                + (f": {violation}" if violation else ""),
            )

    def problems(self) -> ConformanceFailure | None:
        """Everything wrong with the envelopes the streams delivered (schemas, SSE-004)."""
        found = [(ids, f"{s.label}: {text}") for s in self.opened for ids, text in s.problems]
        if not found:
            return None
        return ConformanceFailure(
            [rid for ids, _ in found for rid in ids],
            expected="every SSE event's data to be one envelope matching the server schemas",
            received="; ".join(text for _, text in found[:5]),
            transcript=self.rep.transcript,
        )

    def close(self) -> None:
        for stream in self.opened:
            stream.close()


@pytest.fixture
def sse(rep: Harness) -> Iterator[Streams]:
    streams = Streams(rep)
    try:
        yield streams
    finally:
        streams.close()


def finish(sse: Streams) -> None:
    """Fail on any envelope problem the streams found (called at the end of each check)."""
    failure = sse.problems()
    if failure is not None:
        raise failure


def connection_event(rep: Harness, stream: SseStream, requirement: str) -> SseEvent:
    event = stream.wait_for(lambda e: True, rep.timeouts.answer)
    if event is None or event.event != "connection":
        raise rep.fail(
            requirement,
            expected="a first event named connection",
            received="nothing"
            if event is None
            else f"a first event {json_text(event.event)}: {event.data[:200]}",
        )
    return event


def stream_events(
    rep: Harness, stream: SseStream, kind: str, count: int, requirement: str
) -> list[SseEvent]:
    """The next ``count`` stream_events of type ``kind`` on the stream, in order."""

    def ours(event: SseEvent) -> bool:
        payload = (event.message or {}).get("payload", {})
        return event.event == "stream_event" and payload.get("event", {}).get("type") == kind

    found: list[SseEvent] = []
    for index in range(count):
        event = stream.wait_for(ours, rep.timeouts.answer)
        if event is None:
            raise rep.fail(
                requirement,
                expected=f"stream_event {index + 1} of {count} of type {json_text(kind)}",
                received=f"{len(found)} within {rep.timeouts.answer:g} s",
            )
        found.append(event)
    return found


def event_id(event: SseEvent) -> str:
    return str((event.message or {}).get("payload", {}).get("event", {}).get("id"))


# -- refusals (SSE-001, SSE-006, SSE-012) ----------------------------------------------


REFUSALS = ["no-token", "bad-signature", "expired"]


@pytest.mark.requirements("SSE-001")
@pytest.mark.parametrize("case", REFUSALS)
def test_sse_requests_without_a_good_token_are_refused_with_401(
    rep: Harness, sse: Streams, case: str
) -> None:
    """No token, a token whose signature does not verify, an expired token: 401 with an
    unauthorized error body, before any event."""
    stream = steps.require_stream(rep)
    user = rep.user()
    tokens = {
        "no-token": None,
        "bad-signature": rep.token(user)[:-4] + "AAAA",
        "expired": rep.token(user, ttl=-60),
    }
    sse.refused("SSE-001", case, [stream], tokens[case], status=401, code=UNAUTHORIZED)


@pytest.mark.requirements("SSE-001")
@pytest.mark.parametrize("via", ["query", "cookie"])
def test_sse_accepts_the_token_from_the_query_or_the_cookie(
    rep: Harness, sse: Streams, via: str
) -> None:
    """A valid token in the token query parameter, or the token cookie (sent with an
    allowed Origin, as a browser would): the stream opens with its connection event."""
    stream = steps.require_stream(rep)
    headers: dict[str, str] = {}
    if via == "cookie":
        origin = rep.target.fixtures.allowed_origin
        if origin is None:
            pytest.skip("the target file names no fixtures.allowed_origin for a cookie token")
        headers["Origin"] = origin
    opened = sse.accepted("SSE-001", [stream], rep.token(rep.user()), via=via, headers=headers)
    connection_event(rep, opened, "SSE-001")
    finish(sse)


@pytest.mark.requirements("SSE-006")
def test_an_unknown_channel_is_answered_404_before_any_event(rep: Harness, sse: Streams) -> None:
    """channels naming the fixture stream and one that does not exist: 404 not_found."""
    stream = steps.require_stream(rep)
    missing = rep.name("no-stream")
    sse.refused(
        "SSE-006",
        f"channels={stream},{missing}",
        [stream, missing],
        rep.token(rep.user()),
        status=404,
        code=NOT_FOUND,
    )


@pytest.mark.requirements("SSE-012")
def test_a_request_without_channels_is_answered_400_invalid_payload(
    rep: Harness, sse: Streams
) -> None:
    """GET /events without the channels parameter: 400 invalid_payload, before any event."""
    sse.refused(
        "SSE-012",
        "no channels parameter",
        None,
        rep.token(rep.user()),
        status=400,
        code=INVALID_PAYLOAD,
    )


@pytest.mark.requirements("SSE-012")
def test_a_token_without_stream_subscribe_is_answered_403(rep: Harness, sse: Streams) -> None:
    """A token holding only websocket:connect: 403 forbidden, before any event."""
    stream = steps.require_stream(rep)
    token = rep.token(rep.user(), roles=(), permissions=(CONNECT,))
    sse.refused(
        "SSE-012", "a token without stream:subscribe", [stream], token, status=403, code=FORBIDDEN
    )


# -- the response (SSE-002, SSE-003, SSE-004, SSE-006) ---------------------------------


@pytest.mark.requirements("SSE-002")
def test_an_accepted_request_is_an_uncached_event_stream(rep: Harness, sse: Streams) -> None:
    """200 with Content-Type text/event-stream and Cache-Control no-cache."""
    stream = steps.require_stream(rep)
    opened = sse.accepted("SSE-002", [stream], rep.token(rep.user()))
    cache = [d.strip().lower() for d in opened.headers.get("cache-control", "").split(",")]
    if "no-cache" not in cache:
        raise rep.fail(
            "SSE-002",
            sent=f"GET /events?channels={stream}",
            expected="a Cache-Control header with the directive no-cache",
            received=f"Cache-Control: {json_text(opened.headers.get('cache-control'))}",
        )
    finish(sse)


@pytest.mark.requirements("SSE-003")
def test_the_stream_opens_with_retry_then_a_connection_event_with_the_client_id(
    rep: Harness, sse: Streams
) -> None:
    """The first field is retry (a number of milliseconds); the first event is connection,
    whose data is a JSON object with a non-empty clientId."""
    stream = steps.require_stream(rep)
    opened = sse.accepted("SSE-003", [stream], rep.token(rep.user()))
    connection = connection_event(rep, opened, "SSE-003")
    fields = [name for name in opened.opening if name != ":"]
    if not fields or fields[0] != "retry":
        raise rep.fail(
            "SSE-003",
            expected="the stream to start with a retry field",
            received=f"the first fields were {fields[:6]}",
        )
    try:
        data: Any = orjson.loads(connection.data)
    except orjson.JSONDecodeError:
        data = None
    client_id = data.get("clientId") if isinstance(data, dict) else None
    if not isinstance(client_id, str) or not client_id:
        raise rep.fail(
            "SSE-003",
            expected="connection data: a JSON object carrying a non-empty clientId",
            received=f"data: {connection.data[:300]}",
        )
    finish(sse)


@pytest.mark.requirements("SSE-006", "SSE-004")
@pytest.mark.features("publish")
def test_events_of_the_selected_channel_arrive_with_a_cursor_naming_it(
    rep: Harness, sse: Streams
) -> None:
    """Publish to the selected channel: the stream_event arrives, its event field is the
    envelope's type and its id is a cursor naming the channel at the published event."""
    stream = steps.require_stream(rep)
    kind = rep.name("evt")
    opened = sse.accepted("SSE-006", [stream], rep.token(rep.user()))
    connection_event(rep, opened, "SSE-006")
    published = steps.publish(rep, stream, kind, data={"n": 1})
    (event,) = stream_events(rep, opened, kind, 1, "SSE-006")
    payload = (event.message or {}).get("payload", {})
    if payload.get("streamId") != stream or event_id(event) != published:
        raise rep.fail(
            "SSE-006",
            expected=f"the event {published} of channel {stream}",
            received=f"{event.data[:300]}",
        )
    cursor = dict(part.partition("=")[::2] for part in (event.id or "").split(";"))
    if cursor.get(stream) != published:
        raise rep.fail(
            "SSE-004",
            expected=f"an id field (cursor) with {stream}={published}",
            received=f"id: {json_text(event.id)}",
        )
    strays = [
        e.data[:120]
        for e in opened.events
        if e.event == "stream_event"
        and (e.message or {}).get("payload", {}).get("streamId") not in (stream,)
    ]
    if strays:
        raise rep.fail(
            "SSE-006", expected=f"events of {stream} only", received=f"also {strays[:3]}"
        )
    finish(sse)


# -- keep-alive (SSE-005) --------------------------------------------------------------


@pytest.mark.requirements("SSE-005")
@pytest.mark.background
def test_comment_lines_arrive_at_least_once_per_heartbeat_interval(rep: Harness) -> None:
    """Hold an idle stream for 2.5 heartbeat intervals: no gap between comment lines (or
    from the start) exceeds one interval."""
    stream = steps.require_stream(rep)
    interval_ms = rep.profile.heartbeat_interval_ms
    if interval_ms is None or interval_ms <= 0:
        raise Inconclusive(
            ("AUTH-010",), "the welcome advertises no heartbeatIntervalMs to size the wait"
        )
    interval = interval_ms / 1000
    if 2.5 * interval > rep.target.budgets.max_heartbeat_wait:
        pytest.skip(f"2.5 heartbeat intervals ({2.5 * interval:g} s) exceed the wait budget")
    tolerance = rep.timeouts.heartbeat_tolerance
    sse = Streams(rep)  # a background check gets only the harness
    try:
        keep_alive_within(rep, sse, stream, interval, tolerance)
    finally:
        sse.close()


def keep_alive_within(
    rep: Harness, sse: Streams, stream: str, interval: float, tolerance: float
) -> None:
    opened = sse.accepted("SSE-005", [stream], rep.token(rep.user()))
    start = rep.transcript.now()
    end = start + 2.5 * interval
    opened.wait_for(lambda e: False, 2.5 * interval)
    marks = [start, *(at for at in list(opened.comments) if at <= end), end]
    worst = max(later - earlier for earlier, later in itertools.pairwise(marks))
    rep.record("sse keep-alive max gap (s)", round(worst, 3))
    if opened.ended or worst > interval + tolerance:
        raise rep.fail(
            "SSE-005",
            sent=f"GET /events?channels={stream}, then nothing for {2.5 * interval:g} s",
            expected=f"a comment line at least every {interval:g} s (tolerance {tolerance:g} s)",
            received=f"{len(marks) - 2} comment line(s); the longest gap was {worst:.3f} s"
            + (" and the stream ended" if opened.ended else ""),
        )
    finish(sse)


# -- resuming (SSE-007, SSE-008, SSE-011) ----------------------------------------------


@pytest.mark.requirements("SSE-007", "SSE-011")
@pytest.mark.features("publish")
def test_last_event_id_resumes_exactly_after_the_connection_cursor(
    rep: Harness, sse: Streams
) -> None:
    """Publish one event, then open: only later events arrive (SSE-011). Keep the connection
    event's cursor, close, publish more, reconnect with the cursor as Last-Event-ID: exactly
    every event after the cursor, in order, then a live one."""
    stream = steps.require_stream(rep)
    kind = rep.name("evt")
    token = rep.token(rep.user())
    before = steps.publish(rep, stream, kind, data={"n": 0})
    first = sse.accepted("SSE-011", [stream], token)
    cursor = connection_event(rep, first, "SSE-011").id
    if not cursor:
        raise rep.fail(
            "SSE-011", expected="a connection event with an id (a cursor)", received="no id"
        )
    marker = steps.publish(rep, stream, kind, data={"n": 1})
    seen = event_id(stream_events(rep, first, kind, 1, "SSE-011")[0])
    if seen != marker:
        raise rep.fail(
            "SSE-011",
            sent=f"an event {before} published before GET /events, {marker} after it",
            expected=f"only events published after the request was accepted: first {marker}",
            received=f"first {seen}",
        )
    first.close()
    missed = [marker, *(steps.publish(rep, stream, kind, data={"n": n}) for n in (2, 3))]
    second = sse.accepted("SSE-007", [stream], token, last_event_id=cursor)
    connection_event(rep, second, "SSE-007")
    replayed = [event_id(e) for e in stream_events(rep, second, kind, 3, "SSE-007")]
    if replayed != missed:
        raise rep.fail(
            "SSE-007",
            sent=f"Last-Event-ID: {cursor}",
            expected=f"the events after the cursor, in order: {missed}",
            received=f"{replayed}",
        )
    live = steps.publish(rep, stream, kind, data={"n": 4})
    got = [event_id(e) for e in stream_events(rep, second, kind, 1, "SSE-007")]
    if got != [live]:
        raise rep.fail("SSE-007", expected=f"the live event {live}", received=f"{got}")
    if before in {event_id(e) for e in second.events}:
        raise rep.fail(
            "SSE-007", expected="no event from before the cursor", received=f"{before} again"
        )
    finish(sse)


@pytest.mark.requirements("SSE-008")
def test_a_channel_the_cursor_does_not_name_gets_replay_unavailable(
    rep: Harness, sse: Streams
) -> None:
    """Last-Event-ID names only another stream: one error replay_unavailable whose details
    name the channel, before any of its live events (checked when publishing is offered)."""
    stream = steps.require_stream(rep)
    other = rep.name("other")
    cursor = f"{other}=0-0"
    kind = rep.name("evt")
    opened = sse.accepted("SSE-008", [stream], rep.token(rep.user()), last_event_id=cursor)
    connection_event(rep, opened, "SSE-008")
    if rep.profile.supports("publish"):
        steps.publish(rep, stream, kind)
        stream_events(rep, opened, kind, 1, "SSE-008")
    error = opened.wait_for(lambda e: e.event == "error", rep.timeouts.answer, consume=False)
    payload = ((error.message or {}) if error is not None else {}).get("payload", {})
    details = payload.get("details") or {}
    sent = f"GET /events?channels={stream} with Last-Event-ID: {cursor}"
    if error is None or payload.get("code") != REPLAY_UNAVAILABLE:
        raise rep.fail(
            "SSE-008",
            sent=sent,
            expected=f"an error envelope of code {REPLAY_UNAVAILABLE} for {stream}",
            received="no error event" if error is None else f"{error.data[:300]}",
        )
    if details.get("streamId") != stream:
        raise rep.fail(
            "SSE-008",
            sent=sent,
            expected=f"details.streamId = {json_text(stream)}",
            received=f"{error.data[:300]}",
        )
    later = [e for e in opened.events if e.event == "stream_event" and e.at < error.at]
    if later:
        raise rep.fail(
            "SSE-008",
            sent=sent,
            expected="the error before the channel's live events",
            received=f"{len(later)} stream_event(s) first: {later[0].data[:200]}",
        )
    finish(sse)


# -- cross-origin requests (SSE-009) ---------------------------------------------------


@pytest.mark.requirements("SSE-009")
def test_an_allowed_origin_is_echoed_in_access_control_allow_origin(
    rep: Harness, sse: Streams
) -> None:
    """Origin from the target's allow-list: Access-Control-Allow-Origin names it."""
    stream = steps.require_stream(rep)
    origin = rep.target.fixtures.allowed_origin
    if origin is None:
        pytest.skip("the target file names no fixtures.allowed_origin")
    opened = sse.accepted("SSE-009", [stream], rep.token(rep.user()), headers={"Origin": origin})
    allowed = opened.headers.get("access-control-allow-origin")
    if allowed != origin:
        raise rep.fail(
            "SSE-009",
            sent=f"GET /events?channels={stream} with Origin: {origin} (on the allow-list)",
            expected=f"Access-Control-Allow-Origin: {origin}",
            received=f"Access-Control-Allow-Origin: {json_text(allowed)}",
        )
    finish(sse)


@pytest.mark.requirements("SSE-009")
def test_an_origin_outside_the_allow_list_gets_no_cors_header(rep: Harness, sse: Streams) -> None:
    """Origin the server cannot have allowed: no Access-Control-Allow-Origin, whether the
    request is served or refused."""
    stream = steps.require_stream(rep)
    origin = f"https://{rep.name('not-allowed')}.example.invalid"
    try:
        headers = sse.open([stream], rep.token(rep.user()), headers={"Origin": origin}).headers
    except SseError as refused:
        headers = refused.headers
    allowed = headers.get("access-control-allow-origin")
    if allowed is not None:
        raise rep.fail(
            "SSE-009",
            sent=f"GET /events?channels={stream} with Origin: {origin} (not on any allow-list)",
            expected="no Access-Control-Allow-Origin header",
            received=f"Access-Control-Allow-Origin: {allowed}",
        )
    finish(sse)


# -- order of refusals, repeated channels, the rate limit (SSE-014, SSE-015) -----------


ORDER = ["no-channels-and-no-subscribe", "no-subscribe-and-unknown-channel", "not-a-slug"]


@pytest.mark.requirements("SSE-014")
@pytest.mark.parametrize("case", ORDER)
def test_sse_refusals_follow_the_order_of_checks(rep: Harness, sse: Streams, case: str) -> None:
    """Two faults at once: the earlier check decides. No channels beats a missing
    stream:subscribe (400); a missing stream:subscribe beats an unknown channel (403); a
    channel that is not a slug is an unknown stream (404)."""
    stream = steps.require_stream(rep)
    weak = rep.token(rep.user(), roles=(), permissions=(CONNECT,))
    cases: dict[str, tuple[list[str] | None, str, int, str]] = {
        "no-channels-and-no-subscribe": (None, weak, 400, INVALID_PAYLOAD),
        "no-subscribe-and-unknown-channel": ([rep.name("no-stream")], weak, 403, FORBIDDEN),
        "not-a-slug": ([stream, "-not a slug!"], rep.token(rep.user()), 404, NOT_FOUND),
    }
    channels, token, status, code = cases[case]
    sse.refused("SSE-014", case, channels, token, status=status, code=code)


@pytest.mark.requirements("SSE-014", "SSE-007")
@pytest.mark.features("publish")
def test_a_repeated_channel_delivers_each_event_once(rep: Harness, sse: Streams) -> None:
    """channels=a,,a: one stream, each event once."""
    stream = steps.require_stream(rep)
    kind = rep.name("evt")
    opened = sse.accepted("SSE-014", [stream, "", stream], rep.token(rep.user()))
    connection_event(rep, opened, "SSE-014")
    published = steps.publish(rep, stream, kind)
    got = stream_events(rep, opened, kind, 1, "SSE-014")
    again = opened.wait_for(lambda e: event_id(e) == published, rep.timeouts.silence, consume=False)
    if event_id(got[0]) != published or again is not None:
        raise rep.fail(
            "SSE-014",
            sent=f"GET /events?channels={stream},,{stream}, then one event published",
            expected=f"the event {published} exactly once",
            received=f"{event_id(got[0])}" + (" and again" if again is not None else ""),
        )
    finish(sse)


@pytest.mark.requirements("SSE-015")
def test_sse_requests_do_not_count_toward_the_rate_limit(rep: Harness, sse: Streams) -> None:
    """A user at its WebSocket rate limit still opens SSE streams; its WebSocket window is
    not used up by them either."""
    stream = steps.require_stream(rep)
    count = rep.profile.rate_max_messages
    if count is None or count > rep.target.budgets.max_rate_messages:
        pytest.skip("no advertised rate limit within budgets.max_rate_messages")
    user = rep.user("busy")
    client = rep.connect(user, label="busy")
    pings = [client.send("ping") for _ in range(count - 1)]
    for ping in pings:
        client.expect("pong", correlation_id=ping, requirement="RATE-004")
    for _ in range(3):
        connection_event(rep, sse.accepted("SSE-015", [stream], rep.token(user)), "SSE-015")
    last = client.send("ping")
    client.expect("pong", correlation_id=last, requirement="SSE-015")
    finish(sse)


@pytest.mark.requirements("SSE-013")
@pytest.mark.background
def test_an_sse_stream_ends_when_its_token_expires(rep: Harness) -> None:
    """A token valid for two more seconds: the server ends the event stream within one
    second after exp (plus the tolerance), as it closes a WebSocket (AUTH-012)."""
    sse = Streams(rep)  # background checks get only the rep fixture
    try:
        stream_ends_at_expiry(rep, sse)
    finally:
        sse.close()


def stream_ends_at_expiry(rep: Harness, sse: Streams) -> None:
    stream = steps.require_stream(rep)
    ttl = 2
    budget = rep.target.budgets.max_expiry_wait
    if ttl + 1 > budget:
        pytest.skip(f"waiting for expiry needs {ttl + 1} s; budgets.max_expiry_wait is {budget} s")
    opened = sse.accepted("SSE-013", [stream], rep.token(rep.user(), ttl=ttl))
    connection_event(rep, opened, "SSE-013")
    started = time.monotonic()
    limit = ttl + 1 + rep.timeouts.heartbeat_tolerance + rep.timeouts.answer
    opened.wait_for(lambda e: False, limit)
    waited = time.monotonic() - started
    rep.record("sse token expiry end after (s)", round(waited, 3))
    if not opened.ended:
        raise rep.fail(
            "SSE-013",
            sent=f"GET /events with a token expiring {ttl} s later",
            expected="the server to end the event stream once exp has passed",
            received=f"the stream was still open {waited:.1f} s later",
        )
    finish(sse)
