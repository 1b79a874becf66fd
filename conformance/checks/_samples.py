"""Malformed client messages, each derived from a valid ping by one defect.

The code a server must answer with is not written here: :func:`expected` asks the
schemas (``rep_spec``), which also apply the order of checks of ERR-011.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conformance import spec
from conformance.frames import classify_client_message
from rep_spec import Problem, catalog

#: Which requirement a wrong error code breaks, by the code the schemas expect.
CODE_REQUIREMENT = {
    spec.error_code("invalid_json"): "ERR-007",
    spec.error_code("invalid_envelope"): "ERR-008",
    spec.error_code("invalid_payload"): "ERR-009",
    spec.error_code("unknown_type"): "MSG-001",
    spec.error_code("invalid_direction"): "MSG-002",
    spec.error_code("unsupported_version"): "VER-002",
}

Envelope = dict[str, Any]


@dataclass(frozen=True)
class Sample:
    name: str
    build: Callable[[Envelope], Any]

    def make(self, valid: Envelope) -> Any:
        return self.build(copy.deepcopy(valid))


def _set(path: str, value: Any) -> Callable[[Envelope], Any]:
    def build(envelope: Envelope) -> Any:
        *parents, last = path.split("/")
        node = envelope
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
        return envelope

    return build


def _drop(member: str) -> Callable[[Envelope], Any]:
    def build(envelope: Envelope) -> Any:
        envelope.pop(member, None)
        return envelope

    return build


def _max_id_length() -> int:
    length: int = spec.schema_at("defs.schema.json#/$defs/messageId")["maxLength"]
    return length


def other_major(offset: int = 1) -> str:
    return f"{catalog().major_version + offset}.0"


ENVELOPE_DEFECTS = [
    Sample("missing-id", _drop("id")),
    Sample("empty-id", _set("id", "")),
    Sample("overlong-id", lambda e: _set("id", "i" * (_max_id_length() + 1))(e)),
    Sample("numeric-id", _set("id", 42)),
    Sample("missing-type", _drop("type")),
    Sample("missing-timestamp", _drop("timestamp")),
    Sample("timestamp-without-offset", _set("timestamp", "2026-01-01T12:00:00")),
    Sample("timestamp-not-a-date", _set("timestamp", "yesterday")),
    Sample("missing-payload", _drop("payload")),
    Sample("payload-not-an-object", _set("payload", [])),
    Sample("unknown-top-level-member", _set("priority", "high")),
    Sample("metadata-not-an-object", _set("metadata", "client")),
    Sample("metadata-source-server", _set("metadata/source", "server")),
    Sample("metadata-version-malformed", _set("metadata/version", "one")),
]

PAYLOAD_DEFECTS = [
    Sample("ping-unknown-member", _set("payload/bogus", True)),
    Sample("ping-negative-timestamp", _set("payload/timestamp", -1)),
    Sample("ping-string-timestamp", _set("payload/timestamp", "now")),
]


@dataclass(frozen=True)
class Expected:
    code: str
    correlation_id: str | None
    pointer: str | None
    requirement: str | None


def expected(message: Any) -> Expected:
    """How the schemas say a server must refuse ``message``."""
    problem: Problem | None = classify_client_message(message)
    if problem is None:
        raise ValueError(f"sample is valid, nothing to refuse: {message!r}")
    return Expected(problem.code, problem.correlation_id, problem.pointer, problem.requirement)
