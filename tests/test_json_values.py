"""conformance.jsonvalues: JSON value semantics (I-JSON numbers, booleans apart from numbers)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from conformance.jsonvalues import json_difference, json_key, same_json

SAME = {
    "javascript-reserialised-double": (5.677767015998854e16, 56777670159988540),
    "integral-float": (3.0, 3),
    "negative-zero": (-0.0, 0),
    "beyond-2**53": (2**53 + 1, 2**53),
    "beyond-the-double-range": (10**400, 10**401),
    "member-order": (
        {"a": 1, "b": {"x": [1, 2], "y": None}},
        {"b": {"y": None, "x": [1, 2]}, "a": 1},
    ),
    "nested-numbers": ({"data": {"price": 1.0, "qty": [2.0]}}, {"data": {"price": 1, "qty": [2]}}),
    "empty-containers": ({"a": [], "b": {}}, {"b": {}, "a": []}),
    "strings": ("héllo", "héllo"),
    "null": (None, None),
    "booleans": (True, True),
}

DIFFERENT = {
    "one-and-true": (1, True),
    "zero-and-false": (0, False),
    "null-and-zero": (None, 0),
    "null-and-false": (None, False),
    "null-and-empty-string": (None, ""),
    "number-and-its-string": (1, "1"),
    "array-order": ([1, 2], [2, 1]),
    "array-length": ([1, 2], [1, 2, 3]),
    "extra-member": ({"a": 1}, {"a": 1, "b": 2}),
    "missing-member": ({"a": 1, "b": 2}, {"a": 1}),
    "object-and-array": ({}, []),
    "close-doubles": (0.1 + 0.2, 0.3),
    "2**53-and-2**53+2": (2**53, 2**53 + 2),
    "string-case": ("a", "A"),
    "nested-boolean": ({"data": {"ok": 1}}, {"data": {"ok": True}}),
}


@pytest.mark.parametrize(("a", "b"), SAME.values(), ids=SAME.keys())
def test_the_same_json_values(a: Any, b: Any) -> None:
    assert same_json(a, b) and same_json(b, a)
    assert json_difference(a, b) is None and json_difference(b, a) is None
    assert json_key(a) == json_key(b)


@pytest.mark.parametrize(("a", "b"), DIFFERENT.values(), ids=DIFFERENT.keys())
def test_different_json_values(a: Any, b: Any) -> None:
    assert not same_json(a, b) and not same_json(b, a)
    assert json_difference(a, b) is not None and json_difference(b, a) is not None
    assert json_key(a) != json_key(b)


def test_what_a_javascript_server_sends_back_decodes_to_the_same_value() -> None:
    published = {"data": {"big": 5.677767015998854e16, "three": 3.0}}
    echoed = orjson.loads(b'{"data": {"three": 3, "big": 56777670159988540}}')
    assert same_json(published, echoed)


@pytest.mark.parametrize(
    ("a", "b", "text"),
    [
        ({"data": {"price": 1.5}}, {"data": {"price": 1.25}}, "at /data/price: 1.5 != 1.25"),
        ({"ok": 1}, {"ok": True}, "at /ok: 1 != true"),
        ({"v": 0}, {"v": None}, "at /v: 0 != null"),
        ({"name": "x"}, {"name": "y"}, 'at /name: "x" != "y"'),
        ({"a": 1}, {}, "at /a: 1 != (absent)"),
        ({}, {"b": False}, "at /b: (absent) != false"),
        ([1, 2], [1, 2, {"c": None}], 'at /2: (absent) != {"c": null}'),
        ([1, 2], [2, 1], "at /0: 1 != 2"),
        ({"a/b": {"~": 1}}, {"a/b": {"~": 2}}, "at /a~1b/~0: 1 != 2"),
        (True, None, "at /: true != null"),
        ({"t": ["é"]}, {"t": "é"}, 'at /t: ["é"] != "é"'),
    ],
)
def test_a_difference_names_the_pointer_and_speaks_json(a: Any, b: Any, text: str) -> None:
    assert json_difference(a, b) == text


def test_a_difference_can_be_placed_in_a_larger_document() -> None:
    assert json_difference({"n": 1}, {"n": 2}, "/payload/data") == "at /payload/data/n: 1 != 2"
    assert json_difference(1, 2, "/payload/data") == "at /payload/data: 1 != 2"


def test_a_difference_reports_the_first_one_only_and_stays_short() -> None:
    text = json_difference({"a": "x" * 500, "b": 1}, {"a": "y", "b": 2})
    assert text is not None and text.startswith('at /a: "xxx') and len(text) < 200
    assert "None" not in text and "True" not in text and "'" not in text
