"""JSON value semantics for comparing what a server echoes or stores with what the kit sent.

Decoded JSON compared with Python's ``==`` gets two things wrong for a black-box kit:

* Numbers. I-JSON (RFC 7493) numbers are IEEE 754 doubles, and servers written in
  JavaScript re-serialise them: ``5.677767015998854e+16`` comes back as
  ``56777670159988540``, ``3.0`` as ``3``, ``9007199254740993`` as ``9007199254740992``.
  These are the same value. Here two numbers are the same when they are equal as doubles;
  an integer beyond the double range counts as an infinity, as JavaScript's ``Number``
  would read it.
* Booleans. ``True == 1`` and ``False == 0`` in Python, but ``true`` and ``1`` are
  different JSON values; so are ``null`` and ``0`` or ``""``.

Objects compare as unordered sets of members, recursively; arrays element by element, in
order; strings exactly. Descriptions of differences render values as JSON (``true``,
``null``, ``"x"``), never as Python reprs, since the reader may implement the server in
any language.

Layer 1 of the kit: the standard library only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

__all__ = ["json_difference", "json_key", "same_json"]

#: How a member or item missing on one side is shown in a difference.
ABSENT = "(absent)"
_RENDER_LIMIT = 80


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal | Fraction):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return "array"
    return "other"


def _double(number: int | float | Decimal | Fraction) -> float:
    """The IEEE 754 double a JSON parser reads for ``number`` (correctly rounded)."""
    try:
        return float(number)
    except OverflowError:  # an integer beyond the largest double: JavaScript says Infinity
        return math.inf if number > 0 else -math.inf


def same_json(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` (decoded JSON) are the same JSON value (see the module)."""
    kind = _kind(a)
    if kind != _kind(b):
        return False
    if kind == "number":
        return _double(a) == _double(b)
    if kind == "object":
        return a.keys() == b.keys() and all(same_json(a[key], b[key]) for key in a)
    if kind == "array":
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def json_difference(a: Any, b: Any, pointer: str = "") -> str | None:
    """The first difference between ``a`` and ``b``, or None when they are the same JSON value.

    The description names the JSON pointer of the difference (prefixed with ``pointer``,
    the place of ``a`` and ``b`` in a larger document) and both values as JSON, ``a``
    first: ``at /data/price: 1.5 != 1.25``. A member or item only one side has is shown
    as ``(absent)``: ``at /data/n: (absent) != 1``. The top level is ``/``.
    """
    kind = _kind(a)
    if kind == _kind(b):
        if kind == "object":
            for key in a:
                where = f"{pointer}/{_escape(key)}"
                if key not in b:
                    return _differ(where, _render(a[key]), ABSENT)
                found = json_difference(a[key], b[key], where)
                if found is not None:
                    return found
            for key in b:
                if key not in a:
                    return _differ(f"{pointer}/{_escape(key)}", ABSENT, _render(b[key]))
            return None
        if kind == "array":
            for index, (x, y) in enumerate(zip(a, b, strict=False)):
                found = json_difference(x, y, f"{pointer}/{index}")
                if found is not None:
                    return found
            if len(a) > len(b):
                return _differ(f"{pointer}/{len(b)}", _render(a[len(b)]), ABSENT)
            if len(b) > len(a):
                return _differ(f"{pointer}/{len(a)}", ABSENT, _render(b[len(a)]))
            return None
    if same_json(a, b):
        return None
    return _differ(pointer, _render(a), _render(b))


def json_key(value: Any) -> str:
    """A canonical text of ``value``: equal for two values exactly when :func:`same_json`.

    For sets and dictionaries keyed by JSON values (``{json_key(v) for v in sent}``).
    Numbers are written as their double, members sorted; NaN, which JSON cannot carry,
    gets one key although it is not the same as itself.
    """
    return json.dumps(
        _canonical(value),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=repr,
    )


def _canonical(value: Any) -> Any:
    kind = _kind(value)
    if kind == "number":
        double = _double(value)
        return 0.0 if double == 0 else double  # -0.0 is the same value as 0
    if kind == "object":
        return {str(key): _canonical(item) for key, item in value.items()}
    if kind == "array":
        return [_canonical(item) for item in value]
    return value


def _differ(pointer: str, a: str, b: str) -> str:
    return f"at {pointer or '/'}: {a} != {b}"


def _escape(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _render(value: Any) -> str:
    """``value`` as (compact, clipped) JSON text."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=_fallback)
    except (TypeError, ValueError):  # circular structures and the like
        text = repr(value)
    return text if len(text) <= _RENDER_LIMIT else text[: _RENDER_LIMIT - 3] + "..."


def _fallback(value: Any) -> Any:
    if isinstance(value, Decimal | Fraction):
        return _double(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return list(value)
    return repr(value)
