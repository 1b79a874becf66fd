"""The client checks: what the scripted server does to the client, and what it expects.

Each scenario runs against a fresh client process and gives a verdict for one or more
checks (the backoff measurement serves both the schedule and the jitter check). A
finding is a :class:`~conformance.failures.ConformanceFailure` naming the requirement:
what the kit did, what the requirement expects, what the client did.

Times are measured on the kit's side of loopback: a handshake's time is when its request
arrived, a report's when it reached the control channel. Every bound is widened by the
target's ``tolerance_ms``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from conformance.clientkit.control import Driver, event
from conformance.clientkit.target import ClientTarget
from conformance.clientkit.wire import ClientConn, Handshake, ScriptedServer
from conformance.failures import ConformanceFailure
from conformance.transcript import Transcript
from rep_spec import catalog

#: A code the close-code table does not list: counts as backoff (CLIENT-012).
UNLISTED_CLOSE_CODE = 4999
ROOM = "kit-room"
STREAM = "kit-stream"


class ClientUnreachable(Exception):
    """The client never opened the connection it was asked to open."""


class Inconclusive(Exception):
    """The scenario could not judge its requirement (too few samples, for example)."""


@dataclass
class Context:
    target: ClientTarget
    server: ScriptedServer
    driver: Driver
    transcript: Transcript
    #: Verdicts by check name: None passed, a failure failed, a string skipped/inconclusive.
    outcomes: dict[str, ConformanceFailure | Inconclusive | None] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    _refs: int = 0

    @property
    def tol(self) -> float:
        return self.target.tolerance_s

    def d(self, attempt: int) -> float:
        return self.target.reconnect.ceiling(attempt)

    def ref(self) -> str:
        self._refs += 1
        return f"r{self._refs}"

    def fail(
        self, requirement: str, *, expected: str, received: str, sent: str | None = None
    ) -> ConformanceFailure:
        return ConformanceFailure(
            [requirement],
            expected=expected,
            received=received,
            sent=sent,
            transcript=self.transcript,
        )

    async def connect(self) -> ClientConn:
        """Ask the driver to connect and return the accepted connection."""
        await self.driver.command("connect")
        conn = await self.next_connection(self.target.ready_timeout_s)
        # Commands wait until the client says it is connected (a browser opens its
        # WebSocket after the server has accepted it); a driver that never says so gets
        # a few seconds.
        await self.driver.expect(event("connected"), 5.0, since=conn.handshake.at)
        return conn

    async def next_connection(self, within: float) -> ClientConn:
        try:
            return await asyncio.wait_for(self.server.connections.get(), within)
        except TimeoutError:
            raise ClientUnreachable(
                f"the client opened no WebSocket connection within {within:g} s of being "
                "asked to (the driver's connect command)"
            ) from None

    async def maybe_connection(self, within: float) -> ClientConn | None:
        try:
            return await asyncio.wait_for(self.server.connections.get(), within)
        except TimeoutError:
            return None

    async def request(
        self, conn: ClientConn, type_name: str, payload: dict[str, Any], requirement: str
    ) -> tuple[str, float, dict[str, Any]]:
        """Ask the driver for a request; return its ref, when it reached the wire, and it."""
        ref = self.ref()
        timeout_ms = round(self.target.request_timeout_s * 1000)
        await self.driver.command(
            "request", ref=ref, type=type_name, payload=payload, timeout_ms=timeout_ms
        )
        seen = await conn.next(5.0, lambda m: m.get("type") == type_name)
        if seen is None:
            if self.driver.unsupported("request"):
                raise self.fail(
                    requirement,
                    sent=f"the command to send a {type_name} request and wait for its answer",
                    expected="a client with requests that wait for a correlated answer",
                    received="the driver reports that the client has no such operation",
                )
            raise self.fail(
                requirement,
                sent=f"the command to send a {type_name} request",
                expected=f"a {type_name} message on the connection",
                received="nothing within 5 s",
            )
        return ref, seen[0], seen[1]


Body = Callable[[Context], Awaitable[None]]


@dataclass(frozen=True)
class Check:
    name: str
    requirements: tuple[str, ...]
    doc: str


@dataclass(frozen=True)
class Scenario:
    """One client run; ``checks`` are the verdicts it gives."""

    checks: tuple[Check, ...]
    body: Body
    param: str | None = None
    #: Its verdicts rest on delays measured both ways to within the tolerance (the backoff
    #: schedule and its jitter): under ``--jobs`` it runs with no other scenario beside it,
    #: so that another client's start-up cannot pass for, or hide, the client's own timing.
    alone: bool = False

    def check_id(self, check: Check) -> str:
        suffix = f"[{self.param}]" if self.param is not None else ""
        return f"client.py::{check.name}{suffix}"


def _check(name: str, requirement: str, doc: str) -> Check:
    return Check(name, (requirement,), " ".join(doc.split()))


def notification(text: str) -> dict[str, Any]:
    return {"title": "kit", "message": text}


async def delivered(ctx: Context, message_id: str, within: float) -> bool:
    found = await ctx.driver.expect(
        lambda r: (
            r.get("event") == "delivered"
            and isinstance(r.get("message"), dict)
            and r["message"].get("id") == message_id
        ),
        within,
    )
    return found is not None


def correlated_to(ids: set[str]) -> Callable[[dict[str, Any]], bool]:
    def match(message: dict[str, Any]) -> bool:
        metadata = message.get("metadata")
        return isinstance(metadata, dict) and metadata.get("correlation_id") in ids

    return match


# -- what a client sends ---------------------------------------------------------------


async def valid_messages(ctx: Context) -> None:
    conn = await ctx.connect()
    await ctx.driver.command("send", type="ping", payload={"timestamp": 1})
    await ctx.driver.command("send", type="status_update", payload={"status": "away"})
    await ctx.driver.command("send", type="ping", payload={"timestamp": 2})
    if not await conn.received_at_least(3, 5.0):
        ctx.outcomes["test_client_messages_are_valid_with_fresh_ids"] = ctx.fail(
            "CLIENT-001",
            sent="three commands to send ping, status_update, ping",
            expected="three client messages on the connection",
            received=f"{len(conn.received)} within 5 s",
        )
        return
    ctx.outcomes["test_client_messages_are_valid_with_fresh_ids"] = None  # the frame checks judge


# -- requests and answers --------------------------------------------------------------


async def request_timeout(ctx: Context) -> None:
    name = "test_a_request_without_answer_times_out"
    conn = await ctx.connect()
    conn.auto_pong = False
    timeout = ctx.target.request_timeout_s
    ref, sent_at, message = await ctx.request(conn, "ping", {"timestamp": 7}, "CLIENT-002")
    found = await ctx.driver.expect(
        event("failed", ref=ref), timeout + ctx.tol + 5.0, since=sent_at
    )
    if found is None:
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-002",
            sent=f"no answer to the ping {message.get('id')!r}",
            expected=f"the request failed to the application after its timeout of {timeout:g} s",
            received=f"no failure reported within {timeout + ctx.tol + 5.0:g} s",
        )
        return
    elapsed = found[0] - sent_at
    ctx.figures["request_timeout_observed_s"] = round(elapsed, 3)
    if elapsed < timeout - ctx.tol:
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-002",
            sent=f"no answer to the ping {message.get('id')!r}",
            expected=f"a failure no sooner than the timeout of {timeout:g} s",
            received=f"failed after {elapsed:.3f} s ({found[1].get('reason')})",
        )
        return
    late = await conn.send("pong", {"timestamp": 0, "echo": 7}, str(message.get("id")))
    resolved = await ctx.driver.expect(
        lambda r: (
            (r.get("event") == "answer" and r.get("ref") == ref)
            or (r.get("event") == "delivered" and (r.get("message") or {}).get("id") == late)
        ),
        1.0 + ctx.tol,
        since=found[0],
    )
    if resolved is not None:
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-002",
            sent=f"a pong correlated to the timed-out ping, after the timeout ({late})",
            expected="the late answer ignored",
            received=f"the client reported {json.dumps(resolved[1])[:200]}",
        )
        return
    ctx.outcomes[name] = None


async def correlation(ctx: Context) -> None:
    name = "test_answers_are_matched_by_correlation_id"
    conn = await ctx.connect()
    conn.auto_pong = False
    first_ref, _, first = await ctx.request(conn, "ping", {"timestamp": 111}, "CLIENT-003")
    second_ref, _, second = await ctx.request(conn, "ping", {"timestamp": 222}, "CLIENT-003")
    await conn.send("pong", {"timestamp": 0, "echo": 999}, "no-such-request")
    await conn.send("pong", {"timestamp": 0, "echo": 222}, str(second.get("id")))
    await conn.send("pong", {"timestamp": 0, "echo": 111}, str(first.get("id")))
    want = {first_ref: 111, second_ref: 222}
    for ref, echo in want.items():
        found = await ctx.driver.expect(event("answer", ref=ref), 3.0)
        got = None if found is None else ((found[1].get("message") or {}).get("payload") or {})
        if got is None or got.get("echo") != echo:
            ctx.outcomes[name] = ctx.fail(
                "CLIENT-003",
                sent="two pings; then an uncorrelated pong (echo 999), the second's pong "
                "(echo 222), the first's pong (echo 111)",
                expected=f"request {ref} resolved with the pong echoing {echo}",
                received="no answer reported" if got is None else f"resolved with {got}",
            )
            return
    ctx.outcomes[name] = None


# -- forward compatibility -------------------------------------------------------------


UNKNOWN_MEMBERS = (
    "a notification with the unknown members payload.futureMember, metadata.futureMeta"
)


async def unknown_members(ctx: Context) -> None:
    name = "test_unknown_members_are_ignored"
    conn = await ctx.connect()
    payload = {**notification("from a later minor version"), "futureMember": {"x": 1}}
    sent = await conn.send("notification", payload, metadata={"futureMeta": "yes"}, deliberate=True)
    ok = await delivered(ctx, sent, 3.0)
    if conn.closed.is_set() or await conn.wait_closed(1.0):
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-004",
            sent=UNKNOWN_MEMBERS,
            expected="the connection kept open",
            received=f"the client closed it (code {conn.client_close_code})",
        )
        return
    if not ok:
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-004",
            sent=UNKNOWN_MEMBERS,
            expected="the notification delivered to the application",
            received="the driver reported no delivery within 3 s",
        )
        return
    ctx.outcomes[name] = None


async def unknown_type(ctx: Context) -> None:
    name = "test_unknown_types_are_ignored"
    conn = await ctx.connect()
    strange = ctx.server.envelope("hologram_beam", {"intensity": 3})
    strange_id = await conn.send("hologram_beam", {}, raw=strange, deliberate=True)
    after = await conn.send("notification", notification("after the unknown type"))
    answered = await conn.next(1.0 + ctx.tol, correlated_to({strange_id}))
    if answered is not None:
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-005",
            sent="a message of the unregistered type hologram_beam",
            expected="no answer to it",
            received=f"the client answered {json.dumps(answered[1])[:200]}",
        )
        return
    if conn.closed.is_set():
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-005",
            sent="a message of the unregistered type hologram_beam",
            expected="the connection kept open",
            received=f"the client closed it (code {conn.client_close_code})",
        )
        return
    if not await delivered(ctx, after, 3.0):
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-005",
            sent="hologram_beam, then a notification",
            expected="the notification after it delivered to the application",
            received="no delivery reported within 3 s",
        )
        return
    ctx.outcomes[name] = None


async def unknown_error_code(ctx: Context) -> None:
    name = "test_unknown_error_codes_fail_the_request"
    conn = await ctx.connect()
    conn.auto_pong = False
    ref, _, message = await ctx.request(conn, "ping", {"timestamp": 31}, "CLIENT-006")
    error = {"code": "quantum_flux", "message": "an error code of a later minor version"}
    answered_at = ctx.transcript.now()
    await conn.send("error", error, str(message.get("id")), deliberate=True)
    found = await ctx.driver.expect(
        lambda r: r.get("ref") == ref and r.get("event") in ("failed", "answer"), 3.0
    )
    sent_text = (
        f"an error of the unregistered code quantum_flux correlated to {message.get('id')!r}"
    )
    if found is None or found[1].get("event") != "failed":
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-006",
            sent=sent_text,
            expected="the request failed to the application",
            received="nothing reported within 3 s" if found is None else "it was resolved",
        )
        return
    payload = message.get("payload")
    retry = await conn.next(1.5, lambda m: m.get("type") == "ping" and m.get("payload") == payload)
    if retry is not None:
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-006",
            sent=sent_text,
            expected="no retry (an unknown code is not worth retrying)",
            received=f"the same ping again {retry[0] - answered_at:.3f} s later",
        )
        return
    if conn.closed.is_set():
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-006",
            sent=sent_text,
            expected="the connection kept open",
            received=f"the client closed it (code {conn.client_close_code})",
        )
        return
    ctx.outcomes[name] = None


# -- heartbeat -------------------------------------------------------------------------


def heartbeat_s(ctx: Context) -> float:
    """The interval the kit advertises in these scenarios: short, above the tolerance."""
    return max(1.0, 4 * ctx.tol)


async def heartbeats_unanswered(ctx: Context) -> None:
    name = "test_heartbeats_are_not_answered"
    interval = heartbeat_s(ctx)
    ctx.server.heartbeat_ms = round(interval * 1000)
    conn = await ctx.connect()
    closed = await conn.wait_closed(3 * interval)
    answers = [m for _, m in conn.received if correlated_to(conn.heartbeat_ids)(m)]
    if answers:
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-007",
            sent=f"heartbeats every {interval / 2:g} s",
            expected="no message correlated to a heartbeat",
            received=f"{len(answers)} answers, the first {json.dumps(answers[0])[:200]}",
        )
        return
    if closed and not conn.closed_by_kit:
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-008",
            sent=f"heartbeats every {interval / 2:g} s (interval {interval:g} s advertised)",
            expected="the connection kept open while heartbeats arrive",
            received=f"the client closed it (code {conn.client_close_code})",
        )
        return
    ctx.outcomes[name] = None


async def silent_server(ctx: Context) -> None:
    name = "test_a_silent_server_is_left"
    interval = heartbeat_s(ctx)
    ctx.server.heartbeat_ms = round(interval * 1000)
    ctx.server.send_heartbeats = False
    conn = await ctx.connect()
    conn.auto_pong = False
    welcomed = conn.handshake.at
    sent = f"a welcome advertising heartbeatIntervalMs {ctx.server.heartbeat_ms}, then nothing"
    closed = await conn.wait_closed(3 * interval + ctx.tol + 2.0)
    if not closed or conn.closed_at is None:
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-008",
            sent=sent,
            expected=f"the client closes the connection {2 * interval:g} to {3 * interval:g} s "
            "after the last server message",
            received=f"still open after {3 * interval + ctx.tol + 2.0:g} s",
        )
        return
    silent_for = conn.closed_at - welcomed
    ctx.figures["silence_before_close_s"] = round(silent_for, 3)
    if not 2 * interval - ctx.tol <= silent_for <= 3 * interval + ctx.tol:
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-008",
            sent=sent,
            expected=f"a close {2 * interval:g} to {3 * interval:g} s after the server's last "
            "message",
            received=f"closed after {silent_for:.3f} s",
        )
        return
    again = await ctx.server.next_handshake(1, ctx.d(1) + ctx.tol + 2.0)
    if again is None:
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-008",
            sent=sent,
            expected="a reconnect after leaving the silent connection",
            received=f"no new handshake within {ctx.d(1) + ctx.tol + 2.0:g} s of the close",
        )
        return
    ctx.outcomes[name] = None


# -- reconnection ----------------------------------------------------------------------

SCHEDULE = "test_reconnection_follows_the_backoff_schedule"
JITTER = "test_reconnection_delays_are_jittered"


async def backoff(ctx: Context) -> None:
    """Drop the transport, refuse the first attempts of the sequence, accept the last."""
    per_sequence = min(3, ctx.target.reconnect.max_attempts)
    samples: list[tuple[int, int, float]] = []  # (sequence, attempt, delay)
    conn = await ctx.connect()
    for sequence in range(1, ctx.target.samples + 1):
        await asyncio.sleep(0.2)  # a settled connection, as after a while of use
        already = len(ctx.server.handshakes_of("ws"))
        refused = {"left": per_sequence - 1}

        def policy(handshake: Handshake, refused: dict[str, int] = refused) -> int | None:
            if refused["left"] > 0:
                refused["left"] -= 1
                return 503
            return None

        ctx.server.policy = policy
        conn.drop()
        previous = ctx.transcript.now()
        for attempt in range(1, per_sequence + 1):
            limit = ctx.d(attempt) + ctx.tol + 2.0
            handshake = await ctx.server.next_handshake(already + attempt - 1, limit)
            if handshake is None:
                failure = ctx.fail(
                    "CLIENT-009",
                    sent=f"sequence {sequence}: the transport dropped"
                    + (f", then {attempt - 1} handshakes refused with 503" if attempt > 1 else ""),
                    expected=f"attempt {attempt} within {ctx.d(attempt):g} s",
                    received=f"no handshake within {limit:g} s",
                )
                ctx.outcomes[SCHEDULE] = failure
                ctx.outcomes[JITTER] = failure
                return
            samples.append((sequence, attempt, handshake.at - previous))
            previous = handshake.at
        ctx.server.policy = lambda handshake: None
        conn = await ctx.next_connection(5.0)
    ctx.figures["reconnect_delays_s"] = [
        {"sequence": s, "attempt": a, "delay": round(x, 3), "d": ctx.d(a)} for s, a, x in samples
    ]
    ctx.outcomes[SCHEDULE] = judge_schedule(ctx, samples)
    ctx.outcomes[JITTER] = judge_jitter(ctx, samples)


def _table(ctx: Context, samples: list[tuple[int, int, float]]) -> str:
    return ", ".join(f"#{a}: {x:.3f} s (d {ctx.d(a):g})" for _, a, x in samples)


def judge_schedule(
    ctx: Context, samples: list[tuple[int, int, float]]
) -> ConformanceFailure | None:
    outside = [
        (s, a, x) for s, a, x in samples if not ctx.d(a) / 2 - ctx.tol <= x <= ctx.d(a) + ctx.tol
    ]
    if not outside:
        return None
    s, a, x = outside[0]
    return ctx.fail(
        "CLIENT-009",
        sent=f"{ctx.target.samples} sequences: the transport dropped, attempts refused with 503",
        expected=f"attempt {a} between {ctx.d(a) / 2:g} and {ctx.d(a):g} s "
        f"(base {ctx.target.reconnect.base_s:g} s, cap {ctx.target.reconnect.cap_s:g} s), "
        f"± {ctx.tol:g} s",
        received=f"{len(outside)} of {len(samples)} delays outside their interval; sequence "
        f"{s} attempt {a} after {x:.3f} s. All: {_table(ctx, samples)}",
    )


#: The smallest spread, as a fraction of the jitter interval, that shows random delays.
#: n uniform draws spread less than s with the probability n s^(n-1) - (n-1) s^n: about
#: 2e-7 for the twelve draws of four sequences at the default base, 4e-6 for ten.
JITTER_SPREAD = 0.2


def judge_jitter(
    ctx: Context, samples: list[tuple[int, int, float]]
) -> ConformanceFailure | Inconclusive | None:
    """Delays normalised to their interval [d/2, d]; a fixed delay spreads only by noise.

    Only attempts whose d is at least four tolerances long count, so timer noise cannot
    pass for jitter.
    """
    usable = [(a, x) for _, a, x in samples if ctx.d(a) >= 4 * ctx.tol]
    if len(usable) < 6:
        return Inconclusive(
            f"only {len(usable)} delays have d >= {4 * ctx.tol:g} s; raise samples or "
            "reconnect.base_ms in the target"
        )
    positions = [(x - ctx.d(a) / 2) / (ctx.d(a) / 2) for a, x in usable]
    spread = max(positions) - min(positions)
    ctx.figures["jitter_spread"] = round(spread, 3)
    if spread >= JITTER_SPREAD:
        return None
    return ctx.fail(
        "CLIENT-010",
        sent=f"{ctx.target.samples} sequences of reconnection attempts",
        expected=f"delays spread over their intervals [d/2, d] (at least {JITTER_SPREAD:g} of "
        "the interval apart)",
        received=f"every delay at the same place in its interval (spread {spread:.3f}): "
        f"{_table(ctx, samples)}",
    )


async def gives_up(ctx: Context) -> None:
    name = "test_reconnection_gives_up_after_the_configured_attempts"
    most = ctx.target.reconnect.max_attempts
    conn = await ctx.connect()
    await asyncio.sleep(0.2)
    already = len(ctx.server.handshakes_of("ws"))
    ctx.server.policy = lambda handshake: 503
    conn.drop()
    for attempt in range(1, most + 2):
        limit = ctx.d(attempt) + ctx.tol + (2.0 if attempt <= most else 1.0)
        handshake = await ctx.server.next_handshake(already + attempt - 1, limit)
        if attempt <= most and handshake is None:
            ctx.outcomes[name] = ctx.fail(
                "CLIENT-011",
                sent="the transport dropped, then every handshake refused with 503",
                expected=f"{most} attempts before giving up",
                received=f"{attempt - 1} attempts, then none within {limit:g} s",
            )
            return
        if attempt > most and handshake is not None:
            ctx.outcomes[name] = ctx.fail(
                "CLIENT-011",
                sent="the transport dropped, then every handshake refused with 503",
                expected=f"no attempt after the {most} configured",
                received=f"attempt {attempt} {handshake.at:.3f} s into the scenario",
            )
            return
    told = await ctx.driver.expect(event("gave_up"), 2.0)
    if told is None:
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-011",
            sent=f"{most} refused attempts",
            expected="the application told that the client gave up",
            received="the driver reported no gave_up",
        )
        return
    ctx.outcomes[name] = None


def close_code_scenario(code: int, rule: str) -> Body:
    name = "test_close_codes_are_followed"

    async def body(ctx: Context) -> None:
        conn = await ctx.connect()
        await asyncio.sleep(0.2)
        if code == catalog().close_code("going_away"):
            await conn.send("disconnect", {"reason": "server shutting down"})
        await conn.close(code, "kit")
        await conn.wait_closed(2.0)
        closed_at = conn.closed_at if conn.closed_at is not None else ctx.transcript.now()
        window = ctx.d(1) + ctx.tol + 1.0
        again = await ctx.server.next_handshake(1, window)
        sent = f"a close with code {code} (clientReconnect {rule})"
        if rule == "backoff" and again is None:
            ctx.outcomes[name] = ctx.fail(
                "CLIENT-012",
                sent=sent,
                expected=f"a reconnect within {ctx.d(1):g} s (the first backoff delay)",
                received=f"no handshake within {window:g} s",
            )
            return
        if rule == "never" and again is not None:
            ctx.outcomes[name] = ctx.fail(
                "CLIENT-012",
                sent=sent,
                expected="no automatic reconnect",
                received=f"a new handshake {again.at - closed_at:.3f} s after the close",
            )
            return
        if rule == "new_token" and again is not None and again.token == conn.handshake.token:
            ctx.outcomes[name] = ctx.fail(
                "CLIENT-012",
                sent=sent,
                expected="no reconnect with the token the closed connection presented",
                received=f"a handshake with the same token {again.at - closed_at:.3f} s later",
            )
            return
        ctx.outcomes[name] = None

    return body


async def own_close(ctx: Context) -> None:
    name = "test_a_close_of_its_own_is_final"
    conn = await ctx.connect()
    await asyncio.sleep(0.2)
    await ctx.driver.command("disconnect")
    asking = asyncio.ensure_future(conn.next(3.0, lambda m: m.get("type") == "disconnect"))
    closing = asyncio.ensure_future(conn.closed.wait())
    await asyncio.wait({asking, closing}, timeout=3.0, return_when=asyncio.FIRST_COMPLETED)
    closing.cancel()
    asked = asking.result() if asking.done() else None
    asking.cancel()
    if asked is not None:
        await conn.send(
            "disconnect", {"reason": "client requested disconnect"}, str(asked[1]["id"])
        )
        await conn.close(1000)
    if not await conn.wait_closed(3.0):
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-013",
            sent="the command to end the session",
            expected="a disconnect or a close from the client",
            received="the connection still open after 3 s",
        )
        return
    closed_at = conn.closed_at if conn.closed_at is not None else ctx.transcript.now()
    window = ctx.d(1) + ctx.tol + 1.0
    again = await ctx.server.next_handshake(1, window)
    if again is not None:
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-013",
            sent="the command to end the session"
            + ("; the server's disconnect and close 1000" if asked else ""),
            expected="no reconnect after a close the client made itself",
            received=f"a new handshake {again.at - closed_at:.3f} s after the close",
        )
        return
    ctx.outcomes[name] = None


async def retry_after(ctx: Context) -> None:
    name = "test_retry_after_ms_is_waited"
    conn = await ctx.connect()
    await asyncio.sleep(0.2)
    wait_s = max(4 * ctx.d(1), 1.0)
    disconnect_at = ctx.transcript.now()
    await conn.send(
        "disconnect", {"reason": "server shutting down", "retryAfterMs": round(wait_s * 1000)}
    )
    await conn.close(catalog().close_code("going_away"), "shutdown")
    window = wait_s + ctx.d(1) + ctx.tol + 2.0
    again = await ctx.server.next_handshake(1, window)
    sent = f"disconnect with retryAfterMs {round(wait_s * 1000)}, then close 1001"
    if again is None:
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-012",
            sent=sent,
            expected="a reconnect after the shutdown (1001 invites one)",
            received=f"no handshake within {window:g} s",
        )
        return
    waited = again.at - disconnect_at
    ctx.figures["retry_after_waited_s"] = round(waited, 3)
    if waited < wait_s - ctx.tol:
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-014",
            sent=sent,
            expected=f"the first attempt no sooner than {wait_s:g} s after the disconnect",
            received=f"an attempt after {waited:.3f} s",
        )
        return
    ctx.outcomes[name] = None


# -- resuming ---------------------------------------------------------------------------


def stream_event(event_id: str, replay: bool = False) -> dict[str, Any]:
    found: dict[str, Any] = {
        "streamId": STREAM,
        "event": {
            "id": event_id,
            "type": "tick",
            "tags": [],
            "data": {"n": event_id},
            "publishedAt": "2026-01-01T00:00:00Z",
        },
    }
    if replay:
        found["replay"] = True
    return found


async def _joined_and_subscribed(ctx: Context, requirement: str) -> ClientConn:
    """Connect, join ROOM, subscribe to STREAM, deliver two events; return the connection."""
    conn = await ctx.connect()
    await ctx.driver.command("join", ref=ctx.ref(), room=ROOM)
    joined = await conn.next(5.0, lambda m: m.get("type") == "room_join")
    if joined is None:
        raise ctx.fail(
            requirement,
            sent=f"the command to join the room {ROOM}",
            expected="a room_join on the connection",
            received="nothing within 5 s",
        )
    await conn.send("room_join_response", {"roomId": ROOM, "members": []}, str(joined[1]["id"]))
    await ctx.driver.command("subscribe", ref=ctx.ref(), stream=STREAM)
    subscribed = await conn.next(5.0, lambda m: m.get("type") == "stream_subscribe")
    if subscribed is None:
        raise ctx.fail(
            requirement,
            sent=f"the command to subscribe to the stream {STREAM}",
            expected="a stream_subscribe on the connection",
            received="nothing within 5 s",
        )
    await conn.send(
        "stream_subscribe_response", {"streamId": STREAM, "replayed": 0}, str(subscribed[1]["id"])
    )
    for event_id in ("1-1", "1-2"):
        await conn.send("stream_event", stream_event(event_id))
    await ctx.driver.expect(lambda r: _event_id(r) == "1-2", 3.0)
    return conn


def _event_id(report: dict[str, Any]) -> str | None:
    message = report.get("message") if report.get("event") == "delivered" else None
    if not isinstance(message, dict) or message.get("type") != "stream_event":
        return None
    event_ = (message.get("payload") or {}).get("event")
    return event_.get("id") if isinstance(event_, dict) else None


async def _restored(
    ctx: Context, conn: ClientConn, requirement: str
) -> tuple[ClientConn, dict[str, Any] | None, dict[str, Any] | None]:
    conn.drop()
    again = await ctx.maybe_connection(ctx.d(1) + ctx.tol + 3.0)
    if again is None:
        raise ctx.fail(
            "CLIENT-012",
            sent="the transport dropped",
            expected="a reconnect",
            received=f"no new connection within {ctx.d(1) + ctx.tol + 3.0:g} s",
        )
    join = await again.next(3.0, lambda m: m.get("type") == "room_join")
    if join is not None:
        await again.send("room_join_response", {"roomId": ROOM, "members": []}, str(join[1]["id"]))
    resubscribe = await again.next(3.0, lambda m: m.get("type") == "stream_subscribe")
    return again, (join[1] if join else None), (resubscribe[1] if resubscribe else None)


async def restored(ctx: Context) -> None:
    name = "test_rooms_and_streams_are_restored"
    conn = await _joined_and_subscribed(ctx, "CLIENT-015")
    _, join, resubscribe = await _restored(ctx, conn, "CLIENT-015")
    sent = (
        f"a join of {ROOM}, a subscription to {STREAM} with events 1-1 and 1-2, a dropped transport"
    )
    if join is None or (join.get("payload") or {}).get("roomId") != ROOM:
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-015",
            sent=sent,
            expected=f"room_join of {ROOM} on the new connection",
            received="none within 3 s of the welcome",
        )
        return
    payload = (resubscribe or {}).get("payload") or {}
    if resubscribe is None or payload.get("streamId") != STREAM:
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-015",
            sent=sent,
            expected=f"stream_subscribe of {STREAM} on the new connection",
            received="none within 3 s of the rejoin",
        )
        return
    if payload.get("lastEventId") != "1-2":
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-015",
            sent=sent,
            expected='stream_subscribe with lastEventId "1-2", the last event delivered',
            received=f"lastEventId {json.dumps(payload.get('lastEventId'))}",
        )
        return
    ctx.outcomes[name] = None


async def delivered_once(ctx: Context) -> None:
    name = "test_replayed_events_are_delivered_once"
    conn = await _joined_and_subscribed(ctx, "CLIENT-016")
    again, _, resubscribe = await _restored(ctx, conn, "CLIENT-016")
    if resubscribe is None:
        raise ctx.fail(
            "CLIENT-015",
            sent="a dropped transport after a subscription",
            expected="stream_subscribe on the new connection",
            received="none within 3 s",
        )
    await again.send(
        "stream_subscribe_response", {"streamId": STREAM, "replayed": 3}, str(resubscribe["id"])
    )
    for event_id in ("1-1", "1-2", "1-3"):
        await again.send("stream_event", stream_event(event_id, replay=True))
    await again.send("stream_event", stream_event("1-4"))
    await ctx.driver.expect(lambda r: _event_id(r) == "1-4", 3.0)
    await asyncio.sleep(0.3)
    counts: dict[str, int] = {}
    for _, report in ctx.driver.reports:
        found = _event_id(report)
        if found is not None:
            counts[found] = counts.get(found, 0) + 1
    wrong = {k: v for k, v in counts.items() if v != 1}
    missing = [e for e in ("1-1", "1-2", "1-3", "1-4") if e not in counts]
    if wrong or missing:
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-016",
            sent="events 1-1, 1-2; a drop; after the resubscribe the replay 1-1, 1-2, 1-3 and "
            "the live 1-4",
            expected="each of 1-1 .. 1-4 delivered to the application exactly once",
            received=f"deliveries per event id: {json.dumps(counts, sort_keys=True)}"
            + (f"; never delivered: {missing}" if missing else ""),
        )
        return
    ctx.outcomes[name] = None


# -- rate limiting -----------------------------------------------------------------------


async def rate_limited(ctx: Context) -> None:
    name = "test_rate_limited_is_waited_out"
    conn = await ctx.connect()
    await ctx.driver.command("send", type="status_update", payload={"status": "away"})
    first = await conn.next(5.0, lambda m: m.get("type") == "status_update")
    if first is None:
        raise ctx.fail(
            "CLIENT-017",
            sent="the command to send a status_update",
            expected="a status_update on the connection",
            received="nothing within 5 s",
        )
    hold_s = max(1.5, 4 * ctx.tol)
    limited = {
        "code": "rate_limited",
        "message": "rate limit exceeded",
        "retry_after_ms": round(hold_s * 1000),
    }
    refused_at = ctx.transcript.now()
    await conn.send("error", limited, str(first[1]["id"]))
    await asyncio.sleep(0.2)
    for status in ("busy", "online", "away"):
        await ctx.driver.command("send", type="status_update", payload={"status": status})
    early = await conn.next(hold_s - ctx.tol - 0.2)
    if early is not None:
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-017",
            sent=f"an error rate_limited with retry_after_ms {limited['retry_after_ms']}",
            expected=f"no message before {hold_s:g} s have passed",
            received=f"{early[1].get('type')} after {early[0] - refused_at:.3f} s",
        )
        return
    ctx.outcomes[name] = None


# -- SSE ---------------------------------------------------------------------------------


def sse_frame(event_name: str, event_id: str, data: dict[str, Any]) -> bytes:
    return f"id: {event_id}\nevent: {event_name}\ndata: {json.dumps(data)}\n\n".encode()


def sse_script(ctx: Context, retry_ms: int, ended: list[float]) -> Callable[..., Awaitable[None]]:
    async def script(response: web.StreamResponse, handshake: Handshake) -> None:
        requests = ctx.server.handshakes_of("sse")
        if len(requests) > 1:
            for _ in range(int(30 / 0.5)):  # keep the resumed stream open, with keep-alives
                await response.write(b": keep-alive\n\n")
                await asyncio.sleep(0.5)
            return
        hello = {"clientId": "kit-sse-1", "protocolVersion": "1.0", "channels": [STREAM]}
        await response.write(f"retry: {retry_ms}\n\n".encode())
        await response.write(sse_frame("connection", f"{STREAM}=0-0", hello))
        for event_id in ("1-1", "1-2"):
            envelope = ctx.server.envelope("stream_event", stream_event(event_id))
            text = json.dumps(envelope)
            ctx.transcript.add("sse", "sent", "event", f"id {STREAM}={event_id}: {text}")
            await response.write(sse_frame("stream_event", f"{STREAM}={event_id}", envelope))
        await asyncio.sleep(0.3)
        ended.append(ctx.transcript.now())
        ctx.transcript.note("the kit ends the stream", "sse")

    return script


async def _sse_resumed(ctx: Context, retry_ms: int) -> tuple[Handshake | None, float | None]:
    ended: list[float] = []
    ctx.server.sse_script = sse_script(ctx, retry_ms, ended)
    await ctx.driver.command("sse", channels=[STREAM])
    first = await ctx.server.next_handshake(0, ctx.target.ready_timeout_s, kind="sse")
    if first is None:
        raise ClientUnreachable("the client opened no SSE stream when asked to")
    window = retry_ms / 1000 + ctx.d(1) + ctx.tol + 3.0
    second = await ctx.server.next_handshake(1, window + 1.0, kind="sse")
    return second, (ended[0] if ended else None)


async def sse_last_event_id(ctx: Context) -> None:
    name = "test_sse_resume_sends_the_last_event_id"
    second, _ = await _sse_resumed(ctx, 500)
    sent = f"retry 500, the connection event, events {STREAM}=1-1 and {STREAM}=1-2, end of stream"
    if second is None:
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-018",
            sent=sent,
            expected="the stream requested again",
            received="no second request",
        )
        return
    last = {k.lower(): v for k, v in second.headers.items()}.get("last-event-id")
    channels = second.query.get("channels")
    if last != f"{STREAM}=1-2" or channels != STREAM:
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-018",
            sent=sent,
            expected=f'Last-Event-ID "{STREAM}=1-2" and channels={STREAM}',
            received=f"Last-Event-ID {json.dumps(last)}, channels={channels}",
        )
        return
    ctx.outcomes[name] = None


async def sse_retry(ctx: Context) -> None:
    name = "test_sse_retry_is_waited"
    retry_ms = max(2000, round(8 * ctx.tol * 1000))
    second, ended = await _sse_resumed(ctx, retry_ms)
    sent = f"retry {retry_ms}, two events, end of stream"
    if second is None or ended is None:
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-019",
            sent=sent,
            expected="the stream requested again",
            received="no second request",
        )
        return
    waited = second.at - ended
    ctx.figures["sse_reconnect_after_s"] = round(waited, 3)
    if waited < retry_ms / 1000 - ctx.tol:
        ctx.outcomes[name] = ctx.fail(
            "CLIENT-019",
            sent=sent,
            expected=f"the next request no sooner than {retry_ms} ms after the stream ended",
            received=f"after {waited:.3f} s",
        )
        return
    ctx.outcomes[name] = None


# -- the catalogue -------------------------------------------------------------------------


def _close_scenarios() -> list[Scenario]:
    check = _check(
        "test_close_codes_are_followed",
        "CLIENT-012",
        "After a close with each code of the close-code table (and one it does not list), "
        "the client reconnects or stays away as the code's clientReconnect rule says.",
    )
    codes = sorted((c.code, c.client_reconnect) for c in catalog().close_codes.values())
    codes.append((UNLISTED_CLOSE_CODE, "backoff"))
    return [
        Scenario((check,), close_code_scenario(code, rule), param=str(code)) for code, rule in codes
    ]


def scenarios() -> list[Scenario]:
    """Every scenario, in the order a run takes them."""
    single = [
        (
            valid_messages,
            "test_client_messages_are_valid_with_fresh_ids",
            "CLIENT-001",
            "Messages the client sends validate against the client schemas, with ids fresh on "
            "the connection.",
        ),
        (
            request_timeout,
            "test_a_request_without_answer_times_out",
            "CLIENT-002",
            "A request that is never answered fails after the client's request timeout, and a "
            "late answer is ignored.",
        ),
        (
            correlation,
            "test_answers_are_matched_by_correlation_id",
            "CLIENT-003",
            "Two requests answered in reverse order, after an uncorrelated answer, resolve "
            "with their own answers.",
        ),
        (
            unknown_members,
            "test_unknown_members_are_ignored",
            "CLIENT-004",
            "A notification with unknown payload and metadata members is delivered and the "
            "connection stays open.",
        ),
        (
            unknown_type,
            "test_unknown_types_are_ignored",
            "CLIENT-005",
            "A message of an unregistered type is not answered, and the next message is delivered.",
        ),
        (
            unknown_error_code,
            "test_unknown_error_codes_fail_the_request",
            "CLIENT-006",
            "An error with an unregistered code fails its request, without a retry.",
        ),
        (
            heartbeats_unanswered,
            "test_heartbeats_are_not_answered",
            "CLIENT-007",
            "Heartbeats get no answer, and the connection stays open while they arrive.",
        ),
        (
            silent_server,
            "test_a_silent_server_is_left",
            "CLIENT-008",
            "A server silent for two heartbeat intervals is left within a third, then the "
            "client reconnects.",
        ),
        (
            gives_up,
            "test_reconnection_gives_up_after_the_configured_attempts",
            "CLIENT-011",
            "With every handshake refused, the client makes the configured number of attempts, "
            "then tells its application it gave up.",
        ),
        (
            own_close,
            "test_a_close_of_its_own_is_final",
            "CLIENT-013",
            "After the client ends the session itself, it does not reconnect.",
        ),
        (
            retry_after,
            "test_retry_after_ms_is_waited",
            "CLIENT-014",
            "After a disconnect with retryAfterMs and close 1001, the first attempt waits that "
            "long.",
        ),
        (
            restored,
            "test_rooms_and_streams_are_restored",
            "CLIENT-015",
            "After a dropped transport the client rejoins its room and resubscribes from the "
            "last event delivered.",
        ),
        (
            delivered_once,
            "test_replayed_events_are_delivered_once",
            "CLIENT-016",
            "Events replayed after a resume reach the application once.",
        ),
        (
            rate_limited,
            "test_rate_limited_is_waited_out",
            "CLIENT-017",
            "After rate_limited, nothing is sent before retry_after_ms.",
        ),
        (
            sse_last_event_id,
            "test_sse_resume_sends_the_last_event_id",
            "CLIENT-018",
            "An SSE stream that ends is requested again with the last id as Last-Event-ID and "
            "the same channels.",
        ),
        (
            sse_retry,
            "test_sse_retry_is_waited",
            "CLIENT-019",
            "An SSE stream that ends is requested again no sooner than its retry value.",
        ),
    ]
    found = [Scenario((_check(name, rid, doc),), body) for body, name, rid, doc in single]
    schedule = Scenario(
        (
            _check(
                SCHEDULE,
                "CLIENT-009",
                "Dropped transports and refused attempts, measured over several "
                "sequences: each delay lies in [d/2, d] of its attempt.",
            ),
            _check(
                JITTER,
                "CLIENT-010",
                "The same delays, normalised to their intervals, are spread out: the "
                "client draws them at random.",
            ),
        ),
        backoff,
        alone=True,
    )
    return [*found[:8], schedule, *found[8:], *_close_scenarios()]


def checks_by_requirement() -> dict[str, list[str]]:
    """Requirement id -> the client checks that verify it (``rep-conformance list``)."""
    found: dict[str, list[str]] = {}
    for scenario in scenarios():
        for check in scenario.checks:
            for requirement in check.requirements:
                found.setdefault(requirement, []).append(scenario.check_id(check))
    return found
