"""The schema generator: what it supports, that it refuses the rest, that its output is valid.

Validity is judged by ``rep_spec.MessageValidator`` (the oracle the server and the kit
share), never by the generator itself.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.generation.messages import (
    ASTRAL,
    Anchors,
    any_valid_message,
    boundary_cases,
    client_types,
    envelope_node,
    frame_text,
    minimal,
    valid_messages,
)
from conformance.generation.schema import (
    SAFE_INTEGER,
    Compiler,
    UnsupportedSchema,
    compiled,
    json_values,
    matches,
    pattern_example,
    pattern_width,
    strategy,
    timestamps,
    uris,
    walk,
)
from rep_spec import MessageValidator, catalog, decode_text_frame
from rep_spec.schema_files import schema_uri

VALIDATOR = MessageValidator()
ANCHORS = Anchors(room="room-a", collection="col-a", stream="stream-a")
SLUG = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
CHECK = settings(
    max_examples=60,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def inline(schema: dict[str, Any]) -> Any:
    return Compiler().compile(schema, schema_uri("defs.schema.json"))


# -- the supported subset and nothing else --------------------------------------------------


def test_every_schema_the_kit_generates_from_compiles() -> None:
    """Client envelopes of every client type, and the publish body: all in the subset."""
    for type_name in client_types():
        node = envelope_node(type_name)
        assert node.properties["type"].enum == (type_name,)
    compiled("http/publish-request.schema.json")


@pytest.mark.parametrize(
    "schema",
    [
        {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        {"anyOf": [{"type": "string"}]},
        {"type": "object", "patternProperties": {"^x": {"type": "string"}}},
        {"type": "object", "additionalProperties": {"type": "string"}},
        {"type": "string", "format": "email"},
        {"type": "date"},
        {"if": {"type": "string"}, "then": {"minLength": 1}},
        {"type": "object", "properties": {"a": {"not": {"type": "null"}}}},
        {"type": "array", "prefixItems": [{"type": "string"}]},
        {"type": "number", "multipleOf": 2},
    ],
    ids=lambda s: re.sub(r"\W+", "-", str(s))[:40],
)
def test_an_unsupported_keyword_fails_loudly(schema: dict[str, Any]) -> None:
    """A schema change outside the subset must stop the kit, not silently weaken fuzzing."""
    with pytest.raises(UnsupportedSchema):
        inline(schema)


def test_refs_resolve_through_the_registry_across_files() -> None:
    chat = compiled("payloads/chat_message.schema.json")
    assert chat.properties["roomId"].patterns == (SLUG,)
    mentions = chat.properties["metadata"].properties["mentions"]
    assert (mentions.max_items, mentions.unique_items) == (10, True)
    assert mentions.items is not None and mentions.items.max_length == 128
    assert chat.requirement == "CHAT-007"


def test_all_of_merges_the_client_envelope_constraints() -> None:
    """client-envelope = envelope AND metadata.source const client: the enum narrows."""
    node = compiled("client-envelope.schema.json")
    assert node.properties["metadata"].properties["source"].enum == ("client",)
    assert node.required == {"id", "type", "timestamp", "payload"}
    assert node.additional is False


def test_a_types_envelope_fixes_type_payload_and_major_version() -> None:
    node = envelope_node("room_join")
    version = node.properties["metadata"].properties["version"]
    major = catalog().major_version
    assert len(version.patterns) == 2 and version.patterns[-1] == f"^{major}\\.[0-9]+$"
    assert node.properties["payload"].required == {"roomId"}


def test_merging_narrows_limits_and_intersects_enumerations() -> None:
    node = inline(
        {
            "allOf": [
                {"type": "string", "maxLength": 10, "enum": ["a", "bb", "ccc"]},
                {"minLength": 2, "maxLength": 5, "enum": ["bb", "ccc", "dddd"]},
            ]
        }
    )
    assert (node.min_length, node.max_length, node.enum) == (2, 5, ("bb", "ccc"))


def test_walk_visits_array_items_as_star() -> None:
    pointers = [p for p, _ in walk(compiled("payloads/chat_message.schema.json"))]
    assert "/metadata/attachments/*/url" in pointers
    assert "/metadata/mentions/*" in pointers


# -- strings, patterns and formats -----------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "width"),
    [(SLUG, (1, 128)), (r"^[a-z][a-z_]{0,63}$", (1, 64)), (r"^[0-9]+\.[0-9]+$", (3, None))],
)
def test_pattern_widths(pattern: str, width: tuple[int, int | None]) -> None:
    assert pattern_width(pattern) == width


def test_pattern_examples_have_exact_lengths_and_match() -> None:
    for length in (1, 2, 64, 127, 128):
        found = pattern_example(SLUG, length, variant=length)
        assert found is not None and len(found) == length and matches(SLUG, found)
    assert pattern_example(SLUG, 129) is None
    assert pattern_example(SLUG, 0) is None


def test_patterns_follow_ecma_anchors() -> None:
    """JSON Schema patterns are ECMA-262: ``$`` ends the text, a trailing newline fails."""
    assert not matches(SLUG, "room\n")
    assert matches(SLUG, "room")


@given(timestamps())
@CHECK
def test_generated_timestamps_are_valid_envelope_timestamps(value: str) -> None:
    message = {"id": "t", "type": "ping", "timestamp": value, "payload": {}}
    assert VALIDATOR.check_client_message(message) is None, value


@given(uris())
@CHECK
def test_generated_urls_are_valid_attachment_urls(url: str) -> None:
    payload = {
        "roomId": "r",
        "content": "x",
        "metadata": {"attachments": [{"type": "file", "url": url}]},
    }
    assert VALIDATOR.check_payload("chat_message", "client", payload) is None, url


@given(json_values())
@CHECK
def test_free_json_values_survive_a_round_trip(value: Any) -> None:
    """Unconstrained data stays interoperable: integers within 2**53, no NaN."""
    decoded, problem = decode_text_frame(frame_text({"v": value}))
    assert problem is None and decoded == {"v": value}


def test_unbounded_integers_stay_exactly_representable() -> None:
    node = inline({"type": "integer"})

    @given(strategy(node))
    @CHECK
    def bounded(value: int) -> None:
        assert -SAFE_INTEGER <= value <= SAFE_INTEGER

    bounded()


# -- everything the positive generator makes is valid --------------------------------------


@pytest.mark.parametrize("type_name", client_types())
def test_every_generated_message_of_every_client_type_validates(type_name: str) -> None:
    @given(valid_messages(type_name, ANCHORS))
    @CHECK
    def valid(message: dict[str, Any]) -> None:
        assert message["type"] == type_name
        assert VALIDATOR.check_client_message(message) is None, message
        decoded, problem = decode_text_frame(frame_text(message))
        assert problem is None and VALIDATOR.check_client_message(decoded) is None

    valid()


def test_anchored_members_take_the_checks_names() -> None:
    seen: set[str] = set()

    @given(valid_messages("chat_message", ANCHORS))
    @CHECK
    def anchored(message: dict[str, Any]) -> None:
        seen.add(message["payload"]["roomId"])

    anchored()
    assert "room-a" in seen and len(seen) > 1


@given(st.data())
@CHECK
def test_any_valid_message_mixes_types(data: st.DataObject) -> None:
    message = data.draw(any_valid_message(client_types(), ANCHORS))
    assert VALIDATOR.check_client_message(message) is None


def test_minimal_values_are_valid() -> None:
    for type_name in client_types():
        message = minimal(envelope_node(type_name))
        message["timestamp"] = "2026-01-01T00:00:00Z"
        assert VALIDATOR.check_client_message(message) is None, message


# -- the boundary phase ---------------------------------------------------------------------


@pytest.mark.parametrize("type_name", client_types())
def test_boundaries_at_the_limit_validate_and_one_past_is_refused(type_name: str) -> None:
    cases = boundary_cases(type_name, ANCHORS)
    assert cases, f"{type_name} has no limit at all?"
    for case in cases:
        problem = VALIDATOR.check_client_message(case.message)
        if case.at_limit:
            assert problem is None, case
        else:
            assert problem is not None, case


def test_every_limit_of_the_chat_schema_is_reached_and_passed() -> None:
    """Each maxLength, maxItems, minimum and maximum shows up at the limit and one past."""
    labels = {(c.pointer, c.label) for c in boundary_cases("chat_message", ANCHORS)}
    for pointer, label in [
        ("/payload/content", "1000 characters (maximum)"),
        ("/payload/content", "1001 characters (maximum + 1)"),
        ("/payload/content", "0 characters (minimum - 1)"),
        ("/payload/metadata/mentions", "10 items (maxItems)"),
        ("/payload/metadata/mentions", "11 items (maxItems + 1)"),
        ("/payload/metadata/attachments", "6 items (maxItems + 1)"),
        ("/payload/metadata/attachments/*/size", "10485761 (maximum + 1)"),
        ("/payload/metadata/attachments/*/url", "2049 characters (maximum + 1)"),
        ("/payload/roomId", "128 characters (maximum)"),
        ("/payload/roomId", "129 characters (maximum + 1)"),
    ]:
        assert (pointer, label) in labels, (pointer, label)


def test_length_limits_are_also_reached_with_characters_outside_the_bmp() -> None:
    """1000 code points that are 2000 UTF-16 units: valid, and a classic server bug."""
    astral = [
        c
        for c in boundary_cases("chat_message", ANCHORS)
        if c.pointer == "/payload/content" and "astral" in c.label
    ]
    assert len(astral) == 1 and astral[0].message["payload"]["content"] == ASTRAL * 1000
    assert VALIDATOR.check_client_message(astral[0].message) is None


def test_envelope_limits_are_exercised_once_on_ping() -> None:
    ping = {c.pointer for c in boundary_cases("ping", ANCHORS)}
    chat = {c.pointer for c in boundary_cases("chat_message", ANCHORS)}
    assert {"/id", "/metadata/correlation_id"} <= ping
    assert all(p.startswith("/payload") for p in chat)
