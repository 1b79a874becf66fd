"""The per-check harness (the ``rep`` fixture): connections, tokens, names, HTTP, evidence.

A :class:`Run` lives for the whole session: the target, the token source, the server's
profile and a run id that makes every user, room, collection and tag name unique, so
checks neither share rate-limit budgets nor see each other's traffic. A :class:`Harness`
lives for one check: it opens the check's connections, owns its transcript, and at the
end reports what the frame checker found wrong in anything the server sent.
"""

from __future__ import annotations

import itertools
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from conformance.client import ANY, SUBPROTOCOL, Client, Matcher, Message, open_websocket
from conformance.failures import ConformanceFailure
from conformance.frames import ConnectionState, FrameChecker
from conformance.health import ServerHealth
from conformance.http import HttpClient
from conformance.identifiers import slug
from conformance.profile import ServerProfile
from conformance.results import feature_cause
from conformance.target import Node, Target
from conformance.tokens import DEFAULT_TTL, TokenSource, TokenUnavailable, token_source
from conformance.transcript import Transcript

DEFAULT_ROLES = ("user",)
#: Frame problems listed in one failure (each schema violation is one problem).
FRAME_PROBLEMS_SHOWN = 20


class Inconclusive(pytest.skip.Exception):  # type: ignore[misc, name-defined]
    """The check cannot judge its own requirements; ``blocked_by`` names what stopped it.

    It derives from pytest's skip outcome so pytest stops the check quietly; the plugin
    turns it into the ``inconclusive`` verdict, never into a skip.
    """

    def __init__(self, blocked_by: Sequence[str], reason: str) -> None:
        super().__init__(reason, pytrace=False)
        self.blocked_by = tuple(blocked_by)
        self.reason = reason


@dataclass
class FrameFinding:
    """A problem in server frames seen outside the checks it concerns, counted run-wide."""

    requirement_ids: tuple[str, ...]
    text: str
    first_check: str
    example: str
    count: int = 1


@dataclass
class Run:
    """Session-wide context shared by every check."""

    target: Target
    profile: ServerProfile
    tokens: TokenSource
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    health: ServerHealth | None = None
    #: Features whose first request failed as "not implemented": feature -> why.
    missing_features: dict[str, str] = field(default_factory=dict)
    #: Features blocked by another missing feature: feature -> the blocking feature.
    blocked_features: dict[str, str] = field(default_factory=dict)
    #: Whether the frame audit runs at the end: then frame problems outside a check's
    #: own requirements are collected for it instead of failing the check they appear in.
    audit_frames: bool = False
    frame_findings: dict[tuple[tuple[str, ...], str], FrameFinding] = field(default_factory=dict)
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def unique(self, prefix: str) -> str:
        with self._lock:
            number = next(self._counter)
        return f"{prefix}-{self.run_id}-{number}"

    def feature_block(self, feature: str) -> tuple[str, str] | None:
        """``(cause, reason)`` when checks of ``feature`` cannot be judged, else None."""
        if feature in self.blocked_features:
            other = self.blocked_features[feature]
            return feature_cause(other), (
                f"the feature {feature} needs {other}, which is not implemented"
            )
        if feature in self.missing_features:
            return feature_cause(feature), (
                f"the feature {feature} is not implemented: {self.missing_features[feature]}"
            )
        return None

    def require_feature(self, feature: str, *, blocking: bool = True) -> None:
        """Skip unless the kit checks the feature; with ``blocking``, raise
        :class:`Inconclusive` when it is known not to work."""
        if not self.profile.supports(feature):
            pytest.skip(not_checked_reason(feature))
        blocked = self.feature_block(feature) if blocking else None
        if blocked is not None:
            raise Inconclusive((blocked[0],), blocked[1])

    def collect_welcome_problems(self, welcome: Message) -> None:
        """The probe's welcome, judged like any frame: its problems reach the frame audit
        even when the server dies before the first check connects."""
        _, problems = FrameChecker().check(orjson.dumps(welcome).decode(), ConnectionState())
        for problem in problems:
            self.collect_frame_problem(
                problem.requirement_ids, problem.text, "the kit's first connection", "probe"
            )

    def collect_frame_problem(
        self, requirement_ids: tuple[str, ...], text: str, check: str, example: str
    ) -> None:
        key = (requirement_ids, problem_kind(text))
        with self._lock:
            found = self.frame_findings.get(key)
            if found is None:
                self.frame_findings[key] = FrameFinding(requirement_ids, text, check, example)
            else:
                found.count += 1


def probe_profile(target: Target, tokens: TokenSource | None = None) -> ServerProfile:
    """Open one connection, read the welcome, close. Raises ConnectionError if impossible."""
    source = tokens or token_source(target.tokens)
    transcript = Transcript()
    user = f"probe-{secrets.token_hex(3)}"
    token = source.mint(user, DEFAULT_ROLES)
    handshake = open_websocket(
        target.node.ws_url,
        transcript=transcript,
        channel="probe",
        token=token,
        timeout=target.timeouts.connect,
    )
    if handshake.connection is None:
        raise ConnectionError(
            f"the server refused a valid token for a user with role 'user': "
            f"HTTP {handshake.status} {handshake.body[:200]}"
        )
    ws = handshake.connection
    try:
        first = ws.recv(timeout=target.timeouts.answer)
    except TimeoutError as exc:
        raise ConnectionError("the server sent no welcome after the handshake") from exc
    finally:
        ws.close()
    from rep_spec import decode_text_frame

    message, problem = decode_text_frame(first)
    if problem is not None or not isinstance(message, dict) or message.get("type") != "auth":
        raise ConnectionError(f"the first frame was not an auth welcome: {str(first)[:300]}")
    return ServerProfile(message, target.claimed_features)


_VALUES = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|-?\b\d+(?:\.\d+)?\b")


def problem_kind(text: str) -> str:
    """A frame problem without the values it quotes: the same fault in 200 frames (each
    with its own timestamp or id) is one kind for the frame audit."""
    return _VALUES.sub("…", text)


def not_checked_reason(feature: str) -> str:
    return f"the feature {feature} is neither claimed by the target nor advertised in the welcome"


@dataclass
class Attempt:
    """The outcome of a handshake a check expects may be refused."""

    status: int
    body: str
    client: Client | None


class Harness:
    """Everything one check needs; close() ends every connection it opened."""

    def __init__(self, run: Run, requirement_ids: Sequence[str], check_name: str) -> None:
        self.run = run
        self.target = run.target
        self.profile = run.profile
        self.timeouts = run.target.timeouts
        self.requirement_ids = tuple(requirement_ids)
        self.check_name = check_name
        self.transcript = Transcript()
        self.clients: list[Client] = []
        self.figures: dict[str, Any] = {}
        self._labels: dict[str, int] = {}
        self.http = HttpClient(run.target.node.http_url, self.transcript, self.timeouts.answer)

    # -- names and tokens --------------------------------------------------------------

    def name(self, prefix: str) -> str:
        """A name no other check of this run (or earlier run) uses: users, rooms, tags."""
        return self.run.unique(prefix)

    def slug(self, label: str, pointer: str = "defs.schema.json#/$defs/roomId") -> str:
        """A unique room, collection or record id drawn from the whole slug pattern (a
        digit first, every punctuation the pattern admits, its longest length), so a
        server that splits, escapes or truncates ids misroutes and fails."""
        return slug(self.name(label), pointer)

    def user(self, label: str = "user") -> str:
        return self.name(label)

    def token(
        self,
        user: str,
        roles: Sequence[str] = DEFAULT_ROLES,
        permissions: Sequence[str] = (),
        ttl: int = DEFAULT_TTL,
    ) -> str:
        try:
            return self.run.tokens.mint(user, roles, permissions, ttl)
        except TokenUnavailable as exc:
            pytest.skip(f"the target's token source cannot mint this token: {exc}")

    def sign(self, claims: dict[str, Any], algorithm: str | None = None) -> str:
        try:
            return self.run.tokens.sign(claims, algorithm=algorithm)
        except TokenUnavailable as exc:
            pytest.skip(str(exc))

    # -- connections -------------------------------------------------------------------

    def _label(self, user: str) -> str:
        base = user.split("-")[0]
        self._labels[base] = self._labels.get(base, 0) + 1
        return f"{base}#{self._labels[base]}"

    def attempt(
        self,
        token: str | None,
        *,
        via: str = "header",
        placements: Sequence[tuple[str, str]] = (),
        origin: str | None = None,
        subprotocols: Sequence[str] = (SUBPROTOCOL,),
        headers: Iterable[tuple[str, str]] = (),
        label: str = "anon",
        user: str = "",
        node: Node | None = None,
    ) -> Attempt:
        """Try a handshake; a 101 yields a client whose welcome has been read."""
        channel = self._label(label)
        handshake = open_websocket(
            (node or self.target.node).ws_url,
            transcript=self.transcript,
            channel=channel,
            token=token,
            via=via,
            placements=placements,
            origin=origin,
            subprotocols=subprotocols,
            headers=headers,
            timeout=self.timeouts.connect,
        )
        if handshake.connection is None:
            return Attempt(handshake.status, handshake.body, None)
        client = Client(
            handshake.connection,
            label=channel,
            user_id=user,
            transcript=self.transcript,
            timeouts=self.timeouts,
            default_requirements=self.requirement_ids,
            protocol_version=self.profile.protocol_version,
        )
        self.clients.append(client)
        self._read_welcome(client)
        return Attempt(101, "", client)

    def _read_welcome(self, client: Client) -> None:
        welcome = client.expect(
            "auth", requirement="AUTH-010", description="an auth welcome as the first message"
        )
        first = client.received()[0][1]
        if first is not welcome:
            raise client.failure(
                "AUTH-010",
                expected="the auth welcome to be the first message on the connection",
                received=f"the first message was a {first.get('type')}",
            )
        client.welcome = welcome
        payload = welcome.get("payload")
        found = payload.get("clientId") if isinstance(payload, dict) else None
        client.client_id = found if isinstance(found, str) else None

    def connect(
        self,
        user: str | None = None,
        roles: Sequence[str] = DEFAULT_ROLES,
        permissions: Sequence[str] = (),
        *,
        label: str | None = None,
        ttl: int = DEFAULT_TTL,
        via: str = "header",
        origin: str | None = None,
        node: Node | None = None,
    ) -> Client:
        """A connected client for a (new, unless given) user with the given roles."""
        user = user or self.user(label or "user")
        token = self.token(user, roles, permissions, ttl)
        attempt = self.attempt(
            token, via=via, origin=origin, label=label or user, user=user, node=node
        )
        if attempt.client is None:
            raise ConformanceFailure(
                self.requirement_ids,
                sent=f"a WebSocket handshake with a valid token for {user} (roles {list(roles)})",
                expected="HTTP 101 and a welcome",
                received=f"HTTP {attempt.status} {attempt.body[:200]}",
                transcript=self.transcript,
            )
        return attempt.client

    # -- waiting on several connections ------------------------------------------------

    def quiet(
        self,
        clients: Iterable[Client],
        match: Matcher,
        *,
        within: float | None = None,
        correlation_id: Any = ANY,
        where: Callable[[Message], bool] | None = None,
        requirement: Iterable[str] | str | None = None,
        description: str | None = None,
    ) -> None:
        """One quiet window for several clients: none of them receives a matching message."""
        chosen = list(clients)
        if not chosen:
            return
        chosen[0].expect_none(
            match,
            correlation_id=correlation_id,
            where=where,
            within=within,
            requirement=requirement,
            description=description,
        )
        for client in chosen[1:]:
            client.expect_none(
                match,
                correlation_id=correlation_id,
                where=where,
                within=0.0,
                requirement=requirement,
                description=description,
            )

    def http_for(self, node: Node) -> HttpClient:
        """HTTP to another node of the cluster, recorded in the same transcript."""
        return HttpClient(node.http_url, self.transcript, self.timeouts.answer)

    # -- skipping ----------------------------------------------------------------------

    def require_feature(self, feature: str) -> None:
        """Skip unless the feature is checked; block when it is known not to work."""
        self.run.require_feature(feature)

    def feature_missing(self, feature: str, why: str) -> None:
        """Record that a feature's first request failed as not implemented."""
        self.run.missing_features.setdefault(feature, why)

    def feature_blocked(self, feature: str, by: str) -> None:
        self.run.blocked_features.setdefault(feature, by)

    def needs_messages(self, count: int) -> None:
        """Skip when the check would send more messages per user than the server's rate
        limit admits (the limit's own checks are in test_rate_limit)."""
        limit = self.profile.rate_max_messages
        if limit is not None and count > limit:
            pytest.skip(f"needs {count} messages from one user; the rate limit admits {limit}")

    def fail(
        self,
        requirement: Iterable[str] | str | None,
        *,
        expected: str,
        received: str,
        sent: str | None = None,
    ) -> ConformanceFailure:
        """A failure to raise, attributed (by default) to the check's requirements."""
        ids = (
            self.requirement_ids
            if requirement is None
            else ((requirement,) if isinstance(requirement, str) else tuple(requirement))
        )
        return ConformanceFailure(
            ids, expected=expected, received=received, sent=sent, transcript=self.transcript
        )

    def record(self, name: str, value: Any) -> None:
        """A figure for the report (informational checks)."""
        self.figures[name] = value

    # -- evidence ----------------------------------------------------------------------

    def frame_failure(self) -> ConformanceFailure | None:
        """Everything wrong with the frames the server sent during the check, if anything.

        With the run's frame audit scheduled, a problem that concerns none of the check's
        own requirements (a welcome without ``features`` in a ping check) is handed to the
        audit, counted once per kind for the whole run, instead of failing this check.
        """
        found = [(ids, f"{c.label}: {text}") for c in self.clients for ids, text in c.problems]
        if self.run.audit_frames:
            own = set(self.requirement_ids)
            incidental = [
                (problem_ids, text, c.label)
                for c in self.clients
                for problem_ids, text in c.problems
                if not own & set(problem_ids)
            ]
            for problem_ids, text, label in incidental:
                self.run.collect_frame_problem(problem_ids, text, self.check_name, label)
            found = [(problem_ids, text) for problem_ids, text in found if own & set(problem_ids)]
        if not found:
            return None
        ids = [rid for requirement_ids, _ in found for rid in requirement_ids]
        lines = [text for _, text in found[:FRAME_PROBLEMS_SHOWN]]
        if len(found) > FRAME_PROBLEMS_SHOWN:
            lines.append(f"and {len(found) - FRAME_PROBLEMS_SHOWN} more")
        return ConformanceFailure(
            ids,
            expected="every message the server sends to match the server schemas and rules",
            received="; ".join(lines),
            transcript=self.transcript,
        )

    def close(self) -> None:
        for client in self.clients:
            client.close()
