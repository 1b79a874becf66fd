"""Whole client envelopes per message type: random ones, and the boundary phase.

A type's envelope is the client envelope schema narrowed to that ``type``, its client
payload schema and the protocol's major version (other majors are a refusal, not a valid
message). Generated payloads may be *anchored*: a ``roomId``, ``collection`` or
``streamId`` replaced by a name the check has set up (a room its clients joined, the
target's stream), so valid messages reach the success paths and not only ``not_found``.

The boundary phase, run before random generation as Schemathesis does, puts each length,
count and number of each schema at its limit and one past it, one location at a time, in
an otherwise minimal message. Which of those the schemas accept is decided by
:class:`rep_spec.MessageValidator`, not assumed here.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson
from hypothesis import strategies as st

from conformance.generation.schema import (
    Compiler,
    Node,
    UnsupportedSchema,
    pattern_example,
    pattern_width,
    strategy,
    uri_of_length,
    walk,
)
from conformance.jsonvalues import json_key
from rep_spec import catalog
from rep_spec.schema_files import schema_uri

Message = dict[str, Any]

#: Payload members that name something a check can set up, by anchor name.
ANCHORED_MEMBERS = {"roomId": "room", "collection": "collection", "streamId": "stream"}
FIXED_TIMESTAMP = "2026-01-01T00:00:00Z"
#: A character outside the Basic Multilingual Plane: one code point, four UTF-8 bytes,
#: two UTF-16 units. Strings of it at a maxLength catch servers that count the wrong unit.
ASTRAL = "\U0001f600"


@dataclass(frozen=True)
class Anchors:
    """Names a check has set up; generated payloads may use them instead of random ones."""

    room: str | None = None
    collection: str | None = None
    stream: str | None = None

    def get(self, kind: str) -> str | None:
        found: str | None = getattr(self, kind)
        return found


NO_ANCHORS = Anchors()


@cache
def envelope_node(type_name: str) -> Node:
    """The client envelope of one type: its payload schema, the protocol's major version."""
    message_type = catalog().types[type_name]
    if message_type.client_payload is None:
        raise ValueError(f"{type_name} is not sent by clients")
    major = catalog().major_version
    narrowed = {
        "allOf": [
            {"$ref": "client-envelope.schema.json"},
            {
                "properties": {
                    "type": {"const": type_name},
                    "payload": {"$ref": message_type.client_payload},
                    "metadata": {"properties": {"version": {"pattern": f"^{major}\\.[0-9]+$"}}},
                }
            },
        ]
    }
    return Compiler().compile(narrowed, schema_uri("client-envelope.schema.json"))


def client_types(features: frozenset[str] | None = None) -> list[str]:
    """Types a client may send, optionally only those of the given features."""
    return [
        t.name for t in catalog().types_for("client") if features is None or t.feature in features
    ]


def frame_text(message: Any) -> str:
    return orjson.dumps(message).decode()


def anchor(message: Message, anchors: Anchors, which: Mapping[str, bool]) -> Message:
    """Replace the chosen anchored payload members by the check's names."""
    payload = message.get("payload")
    if not isinstance(payload, dict):
        return message
    for member, kind in ANCHORED_MEMBERS.items():
        name = anchors.get(kind)
        if name is not None and member in payload and which.get(member, False):
            payload[member] = name
    return message


@cache
def valid_messages(type_name: str, anchors: Anchors = NO_ANCHORS) -> st.SearchStrategy[Message]:
    """Random valid envelopes of one type, payload members anchored at random."""
    flags = st.fixed_dictionaries({member: st.booleans() for member in ANCHORED_MEMBERS})
    return st.builds(
        lambda message, which: anchor(message, anchors, which),
        strategy(envelope_node(type_name)),
        flags,
    )


def any_valid_message(
    types: list[str], anchors: Anchors = NO_ANCHORS
) -> st.SearchStrategy[Message]:
    if not types:
        raise ValueError("no message types to generate")
    return st.one_of([valid_messages(t, anchors) for t in types])


# -- deterministic values ----------------------------------------------------------------


def minimal(node: Node, variant: int = 0) -> Any:
    """The smallest valid value of a node, deterministic (the base of boundary cases)."""
    if node.enum is not None:
        return node.enum[variant % len(node.enum)]
    if node.is_any:
        return None
    if node.allows("object"):
        return {name: minimal(node.properties[name]) for name in sorted(node.required)}
    if node.allows("array"):
        if node.items is None:
            return []
        return [minimal(node.items, i) for i in range(node.min_items or 0)]
    if node.allows("string"):
        if node.format == "date-time":
            return FIXED_TIMESTAMP
        if node.format == "uri":
            return uri_of_length(0, variant)
        found = string_of_length(node, max(node.min_length or 0, _pattern_low(node)), variant)
        if found is None:
            raise UnsupportedSchema(f"{node.where}: no minimal string")
        return found
    if node.allows("integer") or node.allows("number"):
        low = 0 if node.minimum is None else node.minimum
        value = max(low, 0) if node.maximum is None else min(max(low, 0), node.maximum)
        return math.ceil(value)
    if node.allows("boolean"):
        return False
    return None


def _pattern_low(node: Node) -> int:
    return max((pattern_width(p)[0] for p in node.patterns), default=0)


def _pattern_high(node: Node) -> int | None:
    highs = [pattern_width(p)[1] for p in node.patterns]
    bounded = [h for h in highs if h is not None]
    return min(bounded) if bounded else None


def string_of_length(node: Node, length: int, variant: int = 0, astral: bool = False) -> str | None:
    """A string of ``length`` characters shaped for the node (None when none exists).

    Valid lengths give a valid string; lengths past a pattern's reach extend a valid one,
    so they break only the length.
    """
    if length < 0:
        return None
    if node.format == "date-time":
        return FIXED_TIMESTAMP if length == len(FIXED_TIMESTAMP) else None
    if node.format == "uri":
        url = uri_of_length(length, variant)
        return url if len(url) == length else None
    if node.patterns:
        pattern = node.patterns[-1]
        if length == 0:
            return ""
        exact = pattern_example(pattern, length, variant)
        if exact is not None:
            return exact
        high = _pattern_high(node)
        if high is None or length <= high:
            return None
        longest = pattern_example(pattern, high, variant)
        return None if longest is None else longest + longest[-1] * (length - high)
    if astral:
        return ASTRAL * length
    return "".join("abcdefghijklmnopqrstuvwxyz"[(variant + i) % 26] for i in range(length))


def distinct_items(node: Node, count: int) -> list[Any]:
    """``count`` different valid items (uniqueItems arrays at their limit)."""
    values: list[Any] = []
    seen: set[str] = set()
    variant = 0
    while len(values) < count:
        if node.allows("string") and not node.patterns and node.enum is None:
            low = max(node.min_length or 0, len(str(variant)) + 1)
            value: Any = f"u{variant}".ljust(low, "x")
        else:
            value = minimal(node, variant)
        key = json_key(value)
        if key not in seen:
            seen.add(key)
            values.append(value)
        variant += 1
        if variant > count * 50:
            raise UnsupportedSchema(f"{node.where}: cannot make {count} distinct items")
    return values


# -- boundary cases ----------------------------------------------------------------------


@dataclass(frozen=True)
class Boundary:
    """One message with one value at a limit (``at_limit``) or one past it."""

    type_name: str
    pointer: str
    label: str
    message: Message
    at_limit: bool

    def __repr__(self) -> str:
        side = "at the limit" if self.at_limit else "one past the limit"
        return f"Boundary({self.type_name} {self.pointer}: {self.label}, {side})"


def _values(node: Node) -> Iterator[tuple[str, Any, bool]]:
    """(label, value, at_limit) for every limit of one node."""
    if node.enum is not None:
        return
    if node.allows("string") and node.format != "date-time":
        low = node.min_length if node.min_length is not None else _pattern_low(node)
        high = node.max_length if node.max_length is not None else _pattern_high(node)
        if node.format == "uri" and node.max_length is None:
            high = None
        if low:
            yield f"{low} characters (minimum)", string_of_length(node, low), True
            yield f"{low - 1} characters (minimum - 1)", string_of_length(node, low - 1), False
        if high is not None:
            yield f"{high} characters (maximum)", string_of_length(node, high), True
            if not node.patterns and node.format is None:
                astral = string_of_length(node, high, astral=True)
                yield f"{high} astral characters (maximum)", astral, True
            yield f"{high + 1} characters (maximum + 1)", string_of_length(node, high + 1), False
    if node.allows("integer") and node.types is not None:
        if node.minimum is not None:
            low_int = math.ceil(node.minimum)
            yield f"{low_int} (minimum)", low_int, True
            yield f"{low_int - 1} (minimum - 1)", low_int - 1, False
        if node.maximum is not None:
            high_int = math.floor(node.maximum)
            yield f"{high_int} (maximum)", high_int, True
            yield f"{high_int + 1} (maximum + 1)", high_int + 1, False
    if node.allows("array") and node.items is not None and node.types is not None:
        counts: list[tuple[int, bool, str]] = []
        if node.min_items:
            counts += [
                (node.min_items, True, "minItems"),
                (node.min_items - 1, False, "minItems - 1"),
            ]
        if node.max_items is not None:
            counts += [
                (node.max_items, True, "maxItems"),
                (node.max_items + 1, False, "maxItems + 1"),
            ]
        for count, at_limit, what in counts:
            items = (
                distinct_items(node.items, count)
                if node.unique_items
                else [minimal(node.items)] * count
            )
            yield f"{count} items ({what})", items, at_limit
    counted = node.types is not None and node.max_properties is not None
    if counted and node.allows("object") and not node.properties:
        assert node.max_properties is not None
        for count, at_limit, what in (
            (node.max_properties, True, "maxProperties"),
            (node.max_properties + 1, False, "maxProperties + 1"),
        ):
            yield f"{count} members ({what})", {f"k{i}": i for i in range(count)}, at_limit


def place(message: Any, node: Node, parts: list[str], value: Any) -> Any:
    """``message`` with ``value`` at the pointer ``parts``, creating minimal parents."""
    if not parts:
        return value
    head, rest = parts[0], parts[1:]
    if head == "*":
        if node.items is None:
            raise UnsupportedSchema(f"{node.where}: no items to place into")
        current = message if isinstance(message, list) and message else [minimal(node.items)]
        current = list(current)
        current[0] = place(current[0], node.items, rest, value)
        return current
    child = node.properties[head]
    container = dict(message) if isinstance(message, dict) else minimal(node)
    existing = container.get(head, minimal(child) if rest else None)
    container[head] = place(existing, child, rest, value)
    return container


def boundary_cases(type_name: str, anchors: Anchors = NO_ANCHORS) -> list[Boundary]:
    """Every limit of the type's payload (and, for ``ping``, of the envelope) at and past it.

    Envelope limits are the same for every type, so they are exercised once, on ``ping``.
    """
    root = envelope_node(type_name)
    base = anchor(minimal(root), anchors, {m: True for m in ANCHORED_MEMBERS})
    base["timestamp"] = FIXED_TIMESTAMP
    found: list[Boundary] = []
    for pointer, node in walk(root):
        if pointer in ("", "/type") or (type_name != "ping" and not pointer.startswith("/payload")):
            continue
        parts = [p for p in pointer.split("/") if p]
        for label, value, at_limit in _values(node):
            if value is None:
                continue
            message = place(copy.deepcopy(base), root, parts, value)
            message["id"] = message["id"] if pointer == "/id" else f"bound-{len(found) + 1}"
            found.append(Boundary(type_name, pointer, label, message, at_limit))
    return found
