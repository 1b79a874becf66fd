"""The kit's view of the spec: names looked up in the registries, facts quoted from the text.

Checks never restate a field list, enum or limit. Names (error codes, close codes,
permissions, message types) are looked up in ``rep_spec.catalog()`` at import, so a
renamed entry breaks the kit loudly instead of silently checking the wrong thing.

A few facts exist only in the prose of a requirement (the subprotocol name, the minimum
``maxMessageBytes``, the chat markup allow-list). :func:`quoted` takes such a fact
together with the id of the requirement that states it and verifies, at import, that
the requirement's text still says so.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from rep_spec import catalog, requirements, schema_registry
from rep_spec.schema_files import schema_dir, schema_uri


class SpecDrift(RuntimeError):
    """The registry no longer says what the kit quotes from it."""


def error_code(name: str) -> str:
    if name not in catalog().error_codes:
        raise SpecDrift(f"error code {name!r} is not in the error-code registry")
    return name


def close_code(name: str) -> int:
    if name not in catalog().close_codes:
        raise SpecDrift(f"close code {name!r} is not in the close-code registry")
    return catalog().close_code(name)


def permission(name: str) -> str:
    if name not in catalog().permissions:
        raise SpecDrift(f"permission {name!r} is not in the role table")
    return name


def message_type(name: str) -> str:
    if name not in catalog().types:
        raise SpecDrift(f"message type {name!r} is not in the message catalogue")
    return name


def quoted(requirement_id: str, fact: str) -> str:
    """``fact``, after checking that the requirement's text states it (as a whole word)."""
    text = requirements()[requirement_id].text
    if not re.search(rf"(?<![\w.:-]){re.escape(fact)}(?![\w:-])", text):
        raise SpecDrift(f"{requirement_id} no longer mentions {fact!r}: {text}")
    return fact


def quoted_all(requirement_id: str, facts: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(quoted(requirement_id, fact) for fact in facts)


@cache
def payload_schema(type_name: str, sender: str = "client") -> dict[str, Any]:
    """The resolved payload schema of a type (for defaults and enums)."""
    relative = catalog().types[type_name].payload_schema(sender)  # type: ignore[arg-type]
    if relative is None:
        raise SpecDrift(f"{type_name} has no {sender} payload schema")
    contents: dict[str, Any] = schema_registry().resolver().lookup(schema_uri(relative)).contents
    return contents


def schema_at(relative: str) -> dict[str, Any]:
    """A schema (or subschema, with a fragment) by its path relative to ``schemas/``."""
    contents: dict[str, Any] = schema_registry().resolver().lookup(schema_uri(relative)).contents
    return contents


def payload_default(type_name: str, member: str) -> Any:
    """The ``default`` a payload schema gives a member (e.g. chat ``type``)."""
    try:
        return payload_schema(type_name)["properties"][member]["default"]
    except KeyError as exc:
        raise SpecDrift(f"the {type_name} schema gives {member} no default") from exc


@cache
def valid_client_payload(type_name: str) -> dict[str, Any]:
    """A payload the schemas accept for a client message of this type: the first valid
    example of the type's test vectors (``schemas/vectors/client/<type>.json``)."""
    path = schema_dir() / "vectors" / "client" / f"{type_name}.json"
    try:
        tests = json.loads(path.read_text(encoding="utf-8"))["tests"]
    except (OSError, ValueError, KeyError) as exc:
        raise SpecDrift(f"no client test vectors for {type_name}: {exc}") from exc
    for test in tests:
        if test.get("valid") and isinstance(test.get("data", {}).get("payload"), dict):
            payload: dict[str, Any] = test["data"]["payload"]
            return payload
    raise SpecDrift(f"the {type_name} vectors hold no valid message")


def client_types_of_feature(feature: str) -> list[str]:
    return [t.name for t in catalog().types_for("client") if t.feature == feature]


def answer_types() -> frozenset[str]:
    """Server message types that answer a client's message (and so carry correlation_id):
    registered responses, copies, and errors."""
    types = catalog().types.values()
    found = {t.answer_type for t in types if t.answer_kind == "response" and t.answer_type}
    found |= {t.name for t in types if t.answer_kind == "copy"}
    return frozenset({*found, error_type()})


def error_type() -> str:
    return message_type("error")


def server_only_types() -> list[str]:
    return [t.name for t in catalog().types.values() if not t.sendable_by("client")]


# -- facts stated only in requirement prose ----------------------------------------------

SUBPROTOCOL = quoted("WS-001", "rep.v1")
MIN_MAX_MESSAGE_BYTES = int(quoted("WS-005", "65536"))
INVALID_ENVELOPE_PREFIX = quoted("ERR-012", "Invalid message format")
TOKEN_PARAMETER = quoted("AUTH-002", "token")
ALLOWED_CHAT_ELEMENTS = quoted_all("CHAT-003", ("b", "i", "em", "strong", "u"))
DEFAULT_STATUS = quoted("PRES-002", "online")
LEAVE_REASON_LEFT = quoted("ROOM-005", "left")
LEAVE_REASON_DISCONNECTED = quoted("ROOM-006", "disconnected")
