"""Negative generation: valid messages broken in one way each, and what a server must answer.

Each :class:`Mutant` starts from a valid envelope (:mod:`.messages`) and applies one
mutation kind. It is then *confirmed* invalid by :class:`rep_spec.MessageValidator`
(frames that turn out valid are discarded), and the error code a server must answer with
is the validator's, which applies the order of checks of ERR-011. Two kinds never reach
the validator and take their code from the spec: a frame that is not JSON
(``invalid_json``, ERR-007) and a binary frame (``unsupported_frame``, WS-003).

Every kind also declares the codes the spec leads one to anticipate (``anticipated``); the
project's property tests hold the validator to them, so the oracle and the generator
check each other.
"""

from __future__ import annotations

import copy
import json
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from hypothesis import reject
from hypothesis import strategies as st

from conformance.generation.messages import (
    Anchors,
    Message,
    distinct_items,
    envelope_node,
    frame_text,
    minimal,
    place,
    string_of_length,
    valid_messages,
)
from conformance.generation.schema import Node, timestamps, walk
from rep_spec import MessageValidator, Problem, catalog, decode_text_frame

INVALID_JSON = "invalid_json"
INVALID_ENVELOPE = "invalid_envelope"
INVALID_PAYLOAD = "invalid_payload"
UNKNOWN_TYPE = "unknown_type"
INVALID_DIRECTION = "invalid_direction"
UNSUPPORTED_VERSION = "unsupported_version"
UNSUPPORTED_FRAME = "unsupported_frame"

#: The requirement that names the code a server must answer with.
CODE_REQUIREMENT = {
    INVALID_JSON: "ERR-007",
    INVALID_ENVELOPE: "ERR-008",
    INVALID_PAYLOAD: "ERR-009",
    UNKNOWN_TYPE: "MSG-001",
    INVALID_DIRECTION: "MSG-002",
    UNSUPPORTED_VERSION: "VER-002",
    UNSUPPORTED_FRAME: "WS-003",
}
for _code in CODE_REQUIREMENT:
    if _code not in catalog().error_codes:
        raise RuntimeError(f"error code {_code!r} is not in the error-code registry")

Frame = str | bytes


@dataclass(frozen=True)
class Mutant:
    """A frame a server must refuse, with the refusal the spec requires."""

    kind: str
    description: str
    frame: Frame
    code: str
    correlation_id: str | None
    violates: str
    pointer: str | None
    source_type: str
    anticipated: frozenset[str]

    @property
    def code_requirement(self) -> str:
        return CODE_REQUIREMENT.get(self.code, "ERR-001")

    def __repr__(self) -> str:
        shown = self.frame if isinstance(self.frame, str) else f"<{len(self.frame)} binary bytes>"
        if len(shown) > 300:
            shown = shown[:300] + f"... ({len(shown)} characters)"
        return (
            f"Mutant({self.kind}: {self.description}; expect {self.code} "
            f"(violates {self.violates}); frame {shown!r})"
        )


@cache
def _validator() -> MessageValidator:
    return MessageValidator()


def refusal(frame: Frame) -> Problem | None:
    """How the spec says a server must refuse this frame, or None if it is valid."""
    if isinstance(frame, bytes):
        return Problem(UNSUPPORTED_FRAME, "binary frame", None, "WS-003", None)
    decoded, problem = decode_text_frame(frame)
    if problem is not None:
        return problem
    return _validator().check_client_message(decoded)


def dumps(message: Any) -> str:
    """Serialize a mutated message: integers of any size, non-ASCII kept as is."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


# -- locating members --------------------------------------------------------------------


def members(value: Any, node: Node, pointer: str = "") -> Iterator[tuple[str, Any, Node]]:
    """Every (pointer, value, node) present in a message, following the schema tree."""
    yield pointer, value, node
    if isinstance(value, dict):
        for name, sub in value.items():
            child = node.properties.get(name)
            if child is not None:
                yield from members(sub, child, f"{pointer}/{_escape(name)}")
    elif isinstance(value, list) and node.items is not None:
        for index, sub in enumerate(value):
            yield from members(sub, node.items, f"{pointer}/{index}")


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _parts(pointer: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]


def set_at(message: Any, pointer: str, value: Any) -> Any:
    parts = _parts(pointer)
    if not parts:
        return value
    target = message
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target[part]
    last = parts[-1]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return message


def remove_at(message: Any, pointer: str) -> Any:
    parts = _parts(pointer)
    target = message
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target[part]
    del target[parts[-1]]
    return message


def where_code(pointer: str) -> str:
    """Schema faults inside the payload are invalid_payload; elsewhere invalid_envelope."""
    return INVALID_PAYLOAD if pointer.startswith("/payload/") else INVALID_ENVELOPE


# -- mutation kinds ----------------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    """A mutated frame before confirmation, with the codes the kind anticipates."""

    description: str
    frame: Frame
    anticipated: frozenset[str]
    pointer: str | None = None


Draw = st.DrawFn
Mutation = Callable[[Message, Node, Draw], Draft | None]


def _choose(draw: Draw, options: list[Any]) -> Any:
    return draw(st.sampled_from(options)) if options else None


def drop_required(message: Message, root: Node, draw: Draw) -> Draft | None:
    options = [
        (f"{pointer}/{_escape(name)}", name)
        for pointer, value, node in members(message, root)
        if isinstance(value, dict)
        for name in sorted(node.required)
        if name in value
    ]
    chosen = _choose(draw, options)
    if chosen is None:
        return None
    pointer, _ = chosen
    mutated = remove_at(copy.deepcopy(message), pointer)
    return Draft(f"dropped required {pointer}", dumps(mutated), frozenset({where_code(pointer)}))


_SAMPLES: dict[str, Any] = {
    "string": "text",
    "integer": 42,
    "number": 2.5,
    "boolean": True,
    "null": None,
    "array": [1],
    "object": {"k": 1},
}


def _wrong_values(node: Node) -> list[Any]:
    if node.types is None:
        return []
    wrong = []
    for json_type, sample in _SAMPLES.items():
        if node.allows(json_type):
            continue
        if json_type == "number" and node.allows("integer"):
            continue  # 2.5 breaks "integer", but so would other numbers: keep it simple
        wrong.append(sample)
    return wrong


def wrong_type(message: Message, root: Node, draw: Draw) -> Draft | None:
    options = [(p, n) for p, _, n in members(message, root) if p and _wrong_values(n)]
    chosen = _choose(draw, options)
    if chosen is None:
        return None
    pointer, node = chosen
    value = draw(st.sampled_from(_wrong_values(node)))
    mutated = set_at(copy.deepcopy(message), pointer, value)
    return Draft(
        f"{pointer} set to {json.dumps(value)} (wrong type)",
        dumps(mutated),
        frozenset({where_code(pointer)}),
        pointer,
    )


def _limited(root: Node, test: Callable[[Node], bool]) -> list[tuple[str, Node]]:
    """Schema locations (``/*`` for array items) whose node passes ``test``."""
    return [(p, n) for p, n in walk(root) if p and p != "/type" and test(n)]


def _bounded_integer(node: Node) -> bool:
    return (
        node.types is not None
        and node.allows("integer")
        and node.enum is None
        and (node.minimum is not None or node.maximum is not None)
    )


def _placed(message: Message, root: Node, pointer: str, value: Any) -> tuple[Any, str]:
    """The message with ``value`` at a schema location, parents created as needed."""
    parts = [p for p in pointer.split("/") if p]
    return place(copy.deepcopy(message), root, parts, value), pointer.replace("*", "0")


def out_of_range(message: Message, root: Node, draw: Draw) -> Draft | None:
    chosen = _choose(draw, _limited(root, _bounded_integer))
    if chosen is None:
        return None
    pointer, node = chosen
    below = node.minimum is not None and (node.maximum is None or draw(st.booleans()))
    distance = draw(st.integers(1, 1000))
    value = int(node.minimum or 0) - distance if below else int(node.maximum or 0) + distance
    mutated, where = _placed(message, root, pointer, value)
    return Draft(
        f"{where} set to {value} (out of range)",
        dumps(mutated),
        frozenset({where_code(where)}),
        where,
    )


def huge_number(message: Message, root: Node, draw: Draw) -> Draft | None:
    """Numbers past 64 bits where a bound excludes them (they decode, then break the bound)."""
    chosen = _choose(draw, _limited(root, _bounded_integer))
    if chosen is None:
        return None
    pointer, node = chosen
    magnitude = 10 ** draw(st.integers(19, 60))
    negative = node.maximum is None or (node.minimum is not None and draw(st.booleans()))
    value = -magnitude if negative else magnitude
    mutated, where = _placed(message, root, pointer, value)
    return Draft(
        f"{where} set to {'-' if negative else ''}10^{len(str(magnitude)) - 1}",
        dumps(mutated),
        frozenset({where_code(where)}),
        where,
    )


def unknown_property(message: Message, root: Node, draw: Draw) -> Draft | None:
    options = [
        (p, n) for p, v, n in members(message, root) if isinstance(v, dict) and not n.additional
    ]
    chosen = _choose(draw, options)
    if chosen is None:
        return None
    pointer, node = chosen
    name = draw(
        st.text(string.ascii_letters + "_", min_size=1, max_size=16).filter(
            lambda n: n not in node.properties
        )
    )
    mutated = copy.deepcopy(message)
    target: Any = mutated
    for part in _parts(pointer):
        target = target[int(part)] if isinstance(target, list) else target[part]
    target[name] = draw(st.sampled_from(["x", 1, True, None, {"nested": 1}]))
    where = f"{pointer}/{name}"
    return Draft(
        f"unknown member {where}",
        dumps(mutated),
        frozenset({INVALID_PAYLOAD if pointer.startswith("/payload") else INVALID_ENVELOPE}),
        where,
    )


def _long_string(node: Node) -> bool:
    return node.allows("string") and node.enum is None and node.max_length is not None


def over_long(message: Message, root: Node, draw: Draw) -> Draft | None:
    chosen = _choose(draw, _limited(root, _long_string))
    if chosen is None:
        return None
    pointer, node = chosen
    assert node.max_length is not None
    length = node.max_length + draw(st.integers(1, 64))
    value = string_of_length(node, length, variant=draw(st.integers(0, 50)))
    if value is None:
        return None
    mutated, where = _placed(message, root, pointer, value)
    return Draft(
        f"{where} of {length} characters (maxLength {node.max_length})",
        dumps(mutated),
        frozenset({where_code(where)}),
        where,
    )


def _countable(node: Node) -> bool:
    if node.types is None:
        return False
    if node.allows("array") and node.items is not None and node.max_items is not None:
        return True
    return node.allows("object") and node.max_properties is not None and not node.properties


def too_many(message: Message, root: Node, draw: Draw) -> Draft | None:
    """Arrays over maxItems (mentions, attachments, filters) and objects over maxProperties."""
    chosen = _choose(draw, _limited(root, _countable))
    if chosen is None:
        return None
    pointer, node = chosen
    extra = draw(st.integers(1, 5))
    grown: Any
    if node.allows("array") and node.items is not None and node.max_items is not None:
        count = node.max_items + extra
        grown = (
            distinct_items(node.items, count)
            if node.unique_items
            else [minimal(node.items)] * count
        )
        what = f"{count} items (maxItems {node.max_items})"
    else:
        assert node.max_properties is not None
        count = node.max_properties + extra
        grown = {f"k{i}": i for i in range(count)}
        what = f"{count} members (maxProperties {node.max_properties})"
    mutated, where = _placed(message, root, pointer, grown)
    return Draft(f"{where} with {what}", dumps(mutated), frozenset({where_code(where)}), where)


def _bad_timestamp(valid: str, draw: Draw) -> str | int:
    kind = draw(
        st.sampled_from(
            [
                "no-offset",
                "month-13",
                "day-32",
                "hour-24",
                "minute-60",
                "leap-second",
                "space",
                "date-only",
                "short-offset",
                "epoch-number",
                "words",
                "empty",
            ]
        )
    )
    date, _, rest = valid.replace("t", "T").partition("T")
    time_part = rest[:8]
    bad: dict[str, str | int] = {
        "no-offset": f"{date}T{time_part}",
        "month-13": f"{date[:5]}13{date[7:]}T{time_part}Z",
        "day-32": f"{date[:8]}32T{time_part}Z",
        "hour-24": f"{date}T24{time_part[2:]}Z",
        "minute-60": f"{date}T{time_part[:3]}60{time_part[5:]}Z",
        "leap-second": f"{date}T{time_part[:6]}60Z",
        "space": f"{date} {time_part}Z",
        "date-only": date,
        "short-offset": f"{date}T{time_part}+1:00",
        "epoch-number": 1767225600,
        "words": draw(st.sampled_from(["yesterday", "now", "2026"])),
        "empty": "",
    }
    return bad[kind]


def bad_timestamp(message: Message, root: Node, draw: Draw) -> Draft | None:
    value = _bad_timestamp(draw(timestamps()), draw)
    mutated = copy.deepcopy(message)
    mutated["timestamp"] = value
    return Draft(
        f"/timestamp set to {json.dumps(value)}",
        dumps(mutated),
        frozenset({INVALID_ENVELOPE}),
        "/timestamp",
    )


def bad_version(message: Message, root: Node, draw: Draw) -> Draft | None:
    major = catalog().major_version
    other = draw(st.integers(0, 99).filter(lambda m: m != major))
    malformed: list[Any] = ["1", f"{major}", f"{major}.0.0", f"v{major}.0", f"{major}.x", "", 1.0]
    value = draw(st.sampled_from([f"{other}.{draw(st.integers(0, 9))}", *malformed]))
    mutated = copy.deepcopy(message)
    metadata = mutated.get("metadata")
    mutated["metadata"] = {**(metadata if isinstance(metadata, dict) else {}), "version": value}
    anticipated = (
        UNSUPPORTED_VERSION if isinstance(value, str) and value.startswith(f"{other}.") else None
    )
    return Draft(
        f"/metadata/version set to {json.dumps(value)}",
        dumps(mutated),
        frozenset({anticipated or INVALID_ENVELOPE}),
        "/metadata/version",
    )


def bad_source(message: Message, root: Node, draw: Draw) -> Draft | None:
    mutated = copy.deepcopy(message)
    metadata = mutated.get("metadata")
    value = draw(st.sampled_from(["server", "Client", "", "browser"]))
    mutated["metadata"] = {**(metadata if isinstance(metadata, dict) else {}), "source": value}
    return Draft(
        f"/metadata/source set to {json.dumps(value)}",
        dumps(mutated),
        frozenset({INVALID_ENVELOPE}),
        "/metadata/source",
    )


def wrong_direction(message: Message, root: Node, draw: Draw) -> Draft | None:
    server_only = sorted(t.name for t in catalog().types.values() if not t.sendable_by("client"))
    mutated = copy.deepcopy(message)
    mutated["type"] = draw(st.sampled_from(server_only))
    return Draft(
        f"/type set to the server-only {mutated['type']}",
        dumps(mutated),
        frozenset({INVALID_DIRECTION}),
        "/type",
    )


def unknown_type(message: Message, root: Node, draw: Draw) -> Draft | None:
    registered = set(catalog().types)
    name = draw(
        st.one_of(
            st.from_regex(r"[a-z][a-z_]{0,63}", fullmatch=True),
            st.sampled_from(sorted(registered)).map(lambda t: t + "s"),
        ).filter(lambda t: t not in registered)
    )
    mutated = copy.deepcopy(message)
    mutated["type"] = name
    return Draft(f"/type set to unregistered {name!r}", dumps(mutated), frozenset({UNKNOWN_TYPE}))


def bad_type_name(message: Message, root: Node, draw: Draw) -> Draft | None:
    """A type that is not even a well-formed name (upper case, digits, too long)."""
    name = draw(st.sampled_from(["Ping", "PING", "chat-message", "2ping", "", "a" * 65, " ping"]))
    mutated = copy.deepcopy(message)
    mutated["type"] = name
    return Draft(f"/type set to {name!r}", dumps(mutated), frozenset({INVALID_ENVELOPE}), "/type")


def outside_strings(text: str) -> list[int]:
    """Indices of a JSON text outside string literals (an opening quote counts as outside).

    Inserting before, or deleting, such a character always breaks the JSON; doing so inside
    a string would only change the string.
    """
    found = []
    inside = escaped = False
    for index, char in enumerate(text):
        if inside:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                inside = False
            continue
        if char == '"':
            inside = True
        found.append(index)
    return found


def invalid_json(message: Message, root: Node, draw: Draw) -> Draft | None:
    text = frame_text(message)
    how = draw(
        st.sampled_from(
            [
                "truncated",
                "delete-char",
                "garbage",
                "trailing-comma",
                "single-quotes",
                "trailing-text",
                "two-objects",
                "not-an-object",
                "nan",
            ]
        )
    )
    if how == "truncated":
        cut = draw(st.integers(0, len(text) - 1))
        return Draft(f"truncated to {cut} characters", text[:cut], frozenset({INVALID_JSON}))
    if how == "delete-char":
        structural = [i for i in outside_strings(text) if text[i] in '{}[]:,"']
        index = draw(st.sampled_from(structural))
        broken = text[:index] + text[index + 1 :]
        return Draft(f"character {index} deleted", broken, frozenset({INVALID_JSON}))
    if how == "garbage":
        index = draw(st.sampled_from([*outside_strings(text), len(text)]))
        junk = draw(st.sampled_from(["@", "}", "\\", "\x00", "'", "undefined"]))
        broken = text[:index] + junk + text[index:]
        return Draft(f"{junk!r} inserted at {index}", broken, frozenset({INVALID_JSON}))
    if how == "trailing-comma":
        return Draft("trailing comma", text[:-1] + ",}", frozenset({INVALID_JSON}))
    if how == "single-quotes":
        return Draft("single quotes", text.replace('"', "'"), frozenset({INVALID_JSON}))
    if how == "trailing-text":
        return Draft("text after the object", text + " x", frozenset({INVALID_JSON}))
    if how == "two-objects":
        return Draft("two objects in one frame", text + text, frozenset({INVALID_JSON}))
    if how == "nan":
        return Draft("a NaN member", text[:-1] + ',"n":NaN}', frozenset({INVALID_JSON}))
    top = draw(st.sampled_from(["array", "string", "number", "null", "true"]))
    shown = {
        "array": f"[{text}]",
        "string": json.dumps(text),
        "number": "42",
        "null": "null",
        "true": "true",
    }[top]
    return Draft(f"top-level {top}", shown, frozenset({INVALID_JSON}))


def binary_frame(message: Message, root: Node, draw: Draw) -> Draft | None:
    how = draw(st.sampled_from(["envelope-bytes", "not-utf8", "random"]))
    if how == "envelope-bytes":
        data = frame_text(message).encode()
    elif how == "not-utf8":
        data = frame_text(message).encode()[:-1] + b"\xff\xfe}"
    else:
        data = draw(st.binary(min_size=1, max_size=64))
    return Draft(f"binary frame ({how})", data, frozenset({UNSUPPORTED_FRAME}))


def deep_nesting(message: Message, root: Node, draw: Draw) -> Draft | None:
    """A constrained member replaced by nested arrays or objects, 32 to 400 levels deep."""
    options = [(p, n) for p, _, n in members(message, root) if p and n.types is not None]
    chosen = _choose(draw, options)
    if chosen is None:
        return None
    pointer, _ = chosen
    depth = draw(st.integers(32, 400))
    shape = draw(st.sampled_from(["array", "object"]))
    value: Any = 0
    for _ in range(depth):
        value = [value] if shape == "array" else {"a": value}
    mutated = set_at(copy.deepcopy(message), pointer, value)
    # Nested objects as the payload keep the envelope valid and break the payload schema.
    payload_objects = pointer == "/payload" and shape == "object"
    return Draft(
        f"{pointer} replaced by {shape}s nested {depth} deep",
        dumps(mutated),
        frozenset({INVALID_PAYLOAD if payload_objects else where_code(pointer)}),
        pointer,
    )


#: Every mutation kind by name, in the order reports list them.
KINDS: dict[str, Mutation] = {
    "drop-required": drop_required,
    "wrong-type": wrong_type,
    "out-of-range": out_of_range,
    "unknown-property": unknown_property,
    "over-long-string": over_long,
    "too-many": too_many,
    "bad-timestamp": bad_timestamp,
    "bad-version": bad_version,
    "bad-source": bad_source,
    "wrong-direction": wrong_direction,
    "unknown-type": unknown_type,
    "bad-type-name": bad_type_name,
    "invalid-json": invalid_json,
    "binary-frame": binary_frame,
    "deep-nesting": deep_nesting,
    "huge-number": huge_number,
}


def confirm(draft: Draft, kind: str, source_type: str) -> Mutant | None:
    """The mutant, with the spec's refusal, when the frame really is invalid."""
    problem = refusal(draft.frame)
    if problem is None:
        return None
    return Mutant(
        kind=kind,
        description=draft.description,
        frame=draft.frame,
        code=problem.code,
        correlation_id=problem.correlation_id,
        violates=problem.requirement or CODE_REQUIREMENT[problem.code],
        pointer=problem.pointer if problem.pointer is not None else draft.pointer,
        source_type=source_type,
        anticipated=draft.anticipated,
    )


#: Kinds that need a schema location with a limit; other kinds apply to every type.
NEEDS = {
    "out-of-range": _bounded_integer,
    "huge-number": _bounded_integer,
    "over-long-string": _long_string,
    "too-many": _countable,
}


def applies(kind: str, type_name: str) -> bool:
    """Whether ``kind`` can mutate messages of ``type_name`` at all."""
    test = NEEDS.get(kind)
    return test is None or bool(_limited(envelope_node(type_name), test))


@st.composite
def _mutants(
    draw: Draw, types: tuple[str, ...], anchors: Anchors, kinds: tuple[str, ...]
) -> Mutant:
    kind = draw(st.sampled_from(kinds))
    type_name = draw(st.sampled_from([t for t in types if applies(kind, t)]))
    message = draw(valid_messages(type_name, anchors))
    draft = KINDS[kind](message, envelope_node(type_name), draw)
    found = confirm(draft, kind, type_name) if draft is not None else None
    if found is None:
        reject()
    assert found is not None
    return found


def mutants(
    types: list[str], anchors: Anchors, kinds: list[str] | None = None
) -> st.SearchStrategy[Mutant]:
    """Confirmed-invalid frames derived from valid messages of ``types``."""
    if not types:
        raise ValueError("no message types to mutate")
    unknown = sorted(set(kinds or ()) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown mutation kinds: {unknown}")
    usable = tuple(k for k in (kinds or KINDS) if any(applies(k, t) for t in types))
    if not usable:
        raise ValueError(f"no mutation kind applies to {types}")
    return _mutants(tuple(types), anchors, usable)
