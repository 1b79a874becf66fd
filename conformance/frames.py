"""The transcript-level check: every frame a server sends is judged, in every check.

Checks test one behaviour each; this module makes sure that whatever else they provoke is
well-formed too, so a schema slip in a rarely seen message still fails the run. Problems
are attached to the transcript entry of the frame and, at the end of the check, turned
into a :class:`~conformance.failures.ConformanceFailure` by the plugin.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from rep_spec import MessageValidator, Problem, catalog, decode_text_frame
from rep_spec.validation import Violation


@dataclass(frozen=True)
class FrameProblem:
    requirement_ids: tuple[str, ...]
    text: str


@dataclass
class ConnectionState:
    """What the checker remembers about one connection: ids seen, version announced."""

    seen_ids: set[str] = field(default_factory=set)
    protocol_version: str | None = None


@cache
def _validator() -> MessageValidator:
    return MessageValidator()


_validator_lock = threading.Lock()


def check_server_message(message: Any) -> tuple[str, str | None, str] | None:
    """``(code, pointer, requirement)`` of what is wrong with a server message, or None.

    Reader threads of several connections call this concurrently; the compiled validators
    are shared, so calls are serialized.
    """
    with _validator_lock:
        problem = _validator().check_server_message(message)
    if problem is None:
        return None
    return problem.message, problem.pointer, problem.requirement or "ENV-013"


def server_message_violations(message: Any) -> list[Violation]:
    """Every schema violation of a server message, each with its pointer and requirement.

    Empty for a valid message, at the cost of :func:`check_server_message`. Serialized like
    it: the compiled validators are shared by the reader threads.
    """
    with _validator_lock:
        return _validator().server_message_violations(message)


def classify_client_message(message: Any) -> Problem | None:
    """What the schemas say a server must answer to this client message (None: valid)."""
    with _validator_lock:
        return _validator().check_client_message(message)


def check_http_body(schema: str, body: Any) -> str | None:
    """What is wrong with an HTTP body against ``schemas/http/<schema>.schema.json``."""
    with _validator_lock:
        violation = _validator().check_http_body(schema, body)
    if violation is None:
        return None
    return f"{violation.message} at {violation.pointer or '/'}"


class FrameChecker:
    """Judges each received frame against the schemas and the per-connection rules.

    Every schema violation of a frame is one :class:`FrameProblem` (pointer and message),
    so an implementer sees all of a message's faults in one run, not the first one.
    """

    def check(
        self, data: str | bytes, state: ConnectionState
    ) -> tuple[dict[str, Any] | None, list[FrameProblem]]:
        if isinstance(data, bytes):
            return None, [
                FrameProblem(
                    ("WS-002",), "the server sent a binary frame; REP messages use text frames"
                )
            ]
        decoded, decode_problem = decode_text_frame(data)
        if decode_problem is not None or not isinstance(decoded, dict):
            return None, [
                FrameProblem(
                    ("WS-002", "ENV-013"),
                    "the server sent a text frame that is not one JSON object",
                )
            ]
        problems: list[FrameProblem] = []
        for violation in server_message_violations(decoded):
            requirement = violation.requirement or "ENV-013"
            where = f" at {violation.pointer}" if violation.pointer else ""
            problems.append(
                FrameProblem(
                    tuple(dict.fromkeys((requirement, "ENV-013"))),
                    f"the message does not match the server schemas{where}: {violation.message}",
                )
            )
        problems.extend(self._per_connection(decoded, state))
        return decoded, problems

    @staticmethod
    def _per_connection(message: dict[str, Any], state: ConnectionState) -> list[FrameProblem]:
        problems: list[FrameProblem] = []
        message_id = message.get("id")
        if isinstance(message_id, str):
            if message_id in state.seen_ids:
                problems.append(
                    FrameProblem(
                        ("ENV-010",), f"the id {message_id!r} was already used on this connection"
                    )
                )
            state.seen_ids.add(message_id)
        metadata = message.get("metadata")
        version = metadata.get("version") if isinstance(metadata, dict) else None
        if message.get("type") == "auth" and state.protocol_version is None:
            payload = message.get("payload")
            if isinstance(payload, dict) and isinstance(payload.get("protocolVersion"), str):
                state.protocol_version = payload["protocolVersion"]
        expected = state.protocol_version or catalog().protocol_version
        if isinstance(version, str) and version != expected:
            problems.append(
                FrameProblem(
                    ("ENV-008",),
                    f"metadata.version is {version!r}, but the server speaks {expected!r}",
                )
            )
        return problems
