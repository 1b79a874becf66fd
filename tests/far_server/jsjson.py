"""JSON the way JavaScript's ``JSON.parse`` and ``JSON.stringify`` treat it.

A Node server holds every JSON number as a double and writes it back with JavaScript's
Number-to-string rules: an integral value loses its ``.0`` and its exponent below 1e21
(``5.677767015998854e+16`` comes back as ``56777670159988540``, ``3.0`` as ``3``), large
integers lose precision, and NaN or Infinity become ``null``. The far server goes through
this module for everything it parses and writes, so clients see the same numbers as from
a naive Node implementation.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any, NoReturn

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _reject_constant(name: str) -> NoReturn:
    """``JSON.parse`` knows no NaN or Infinity literals; Python's parser would accept them."""
    raise ValueError(f"Unexpected token {name} in JSON")


def parse(text: str) -> Any:
    """Parse like ``JSON.parse``: every number, integer or not, becomes a double."""
    return json.loads(text, parse_int=float, parse_constant=_reject_constant)


def number(value: float) -> str:
    """JavaScript's Number::toString for a double (ECMA-262, Number::toString, radix 10)."""
    if math.isnan(value) or math.isinf(value):
        return "null"  # what JSON.stringify writes for them
    if value == 0:
        return "0"  # -0 included
    if value < 0:
        return "-" + number(-value)
    # repr() gives the shortest digits that round-trip, as JavaScript's algorithm does.
    parts = Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(str(d) for d in parts.digits)
    exponent = parts.exponent
    assert isinstance(exponent, int)
    k = len(digits)
    n = k + exponent  # the decimal point sits after n digits
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    e = n - 1
    suffix = f"e{'+' if e >= 0 else '-'}{abs(e)}"
    return digits + suffix if k == 1 else digits[0] + "." + digits[1:] + suffix


def _string(value: str) -> str:
    # JSON.stringify leaves non-ASCII as is and escapes lone surrogates (which UTF-8
    # could not carry anyway).
    text = json.dumps(value, ensure_ascii=False)
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        # The server's own counters and clocks: doubles too, in JavaScript.
        try:
            out.append(number(float(value)))
        except OverflowError:
            out.append("null")
    elif isinstance(value, float):
        out.append(number(value))
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, dict):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append(_string(str(key)))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot serialise {type(value).__name__}")


def stringify(value: Any) -> str:
    """Serialise like ``JSON.stringify(value)``: compact, JavaScript number formatting."""
    out: list[str] = []
    _write(value, out)
    return "".join(out)
