"""Envelopes out, meaning in: everything here is read from ``schemas/`` through rep_spec."""

from __future__ import annotations

import itertools
import secrets
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

from rep_client.errors import InvalidMessage
from rep_spec import MessageValidator, catalog

Reconnect = Literal["backoff", "never", "new_token"]


@cache
def validator() -> MessageValidator:
    return MessageValidator()


class IdSource:
    """Ids unique on a connection and, with the random prefix, across the client's connections.

    A counter alone would repeat after a reconnect, which the server may see as the
    same connection's history in its logs; the prefix makes every id new (CLIENT-001).
    """

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"c{self._prefix}-{next(self._counter)}"


def now_timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(
    ids: IdSource, type_name: str, payload: dict[str, Any], metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A client message, validated against the client schemas before it leaves (CLIENT-001)."""
    message = {
        "id": ids.next(),
        "type": type_name,
        "timestamp": now_timestamp(),
        "payload": payload,
        "metadata": {"version": catalog().protocol_version, "source": "client", **(metadata or {})},
    }
    problem = validator().check_client_message(message)
    if problem is not None:
        raise InvalidMessage(problem.code, problem.message, problem.pointer)
    return message


def answer_kind(type_name: str) -> str | None:
    """The catalogue's answer of the type: response, copy, or None (not answered)."""
    known = catalog().types.get(type_name)
    return known.answer_kind if known is not None else None


def is_known_type(type_name: object) -> bool:
    return isinstance(type_name, str) and type_name in catalog().types


def is_retryable(code: object) -> bool:
    """The registry's answer; a code it does not list is not worth retrying (CLIENT-006)."""
    known = catalog().error_codes.get(code) if isinstance(code, str) else None
    return known.retryable if known is not None else False


def reconnect_rule(close_code: int | None) -> Reconnect:
    """What CLIENT-012 says to do after an unrequested close with this code.

    None (no close frame) and codes the table does not list count as backoff.
    """
    for entry in catalog().close_codes.values():
        if entry.code == close_code:
            rule = entry.client_reconnect
            if rule in ("backoff", "never", "new_token"):
                return rule  # type: ignore[return-value]
    return "backoff"


def correlation_id(message: dict[str, Any]) -> str | None:
    metadata = message.get("metadata")
    if isinstance(metadata, dict):
        value = metadata.get("correlation_id")
        if isinstance(value, str):
            return value
    return None
