"""Hypothesis strategies from the REP JSON Schemas, for exactly the keywords they use.

``hypothesis-jsonschema`` cannot be used: it breaks with current hypothesis, knows only
drafts 4-7 and cannot read a ``referencing`` registry. REP's schemas use a small subset of
draft 2020-12, so this module compiles a schema into a :class:`Node` (``$ref`` resolved
through :func:`rep_spec.schema_registry`, ``allOf`` merged) and builds strategies from it.

Supported keywords (anything else raises :class:`UnsupportedSchema`, so a schema change
can never silently weaken the fuzzing):

=================  ============================================================
applicators        ``$ref``, ``allOf`` (merged: properties per key, required united,
                   limits narrowed, enum/const intersected, patterns all applied),
                   ``properties``, ``items``, ``additionalProperties`` (``false`` or
                   absent)
assertions         ``type`` (``object``, ``array``, ``string``, ``integer``,
                   ``number``, ``boolean``, ``null``), ``enum``, ``const``,
                   ``required``, ``minLength``, ``maxLength``, ``pattern``,
                   ``format`` (``date-time``, ``uri``), ``minimum``, ``maximum``,
                   ``minItems``, ``maxItems``, ``uniqueItems``, ``minProperties``,
                   ``maxProperties``
annotations        ``$schema``, ``$id``, ``$defs``, ``$comment``, ``title``,
                   ``description``, ``default``, ``examples``, ``x-requirement``
=================  ============================================================

An empty schema (``{}``) means any JSON value. Integers without bounds stay within
+-(2**53 - 1) and unconstrained containers stay small, so generated messages are
interoperable JSON and fit any advertised message size; the boundary phase
(:mod:`conformance.generation.boundaries`) reaches the limits deliberately.
"""

from __future__ import annotations

import importlib
import math
import re
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st

from conformance.jsonvalues import json_key
from rep_spec import schema_registry
from rep_spec.schema_files import schema_uri

if TYPE_CHECKING:
    from referencing._core import Resolver

ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$defs",
        "$comment",
        "title",
        "description",
        "default",
        "examples",
        "x-requirement",
    }
)
ASSERTIONS = frozenset(
    {
        "type",
        "enum",
        "const",
        "required",
        "properties",
        "items",
        "additionalProperties",
        "minLength",
        "maxLength",
        "pattern",
        "format",
        "minimum",
        "maximum",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
    }
)
APPLICATORS = frozenset({"$ref", "allOf"})
SUPPORTED = ANNOTATIONS | ASSERTIONS | APPLICATORS
FORMATS = frozenset({"date-time", "uri"})
JSON_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})

#: Integers without a bound stay in the range every JSON implementation reads exactly.
SAFE_INTEGER = 2**53 - 1
#: Random generation keeps unconstrained containers this small; boundaries go further.
SMALL = 5


class UnsupportedSchema(ValueError):
    """A schema uses a keyword or value this generator does not implement."""


@dataclass(frozen=True)
class Node:
    """One compiled schema: every constraint that applies at a location, merged.

    ``types`` None means any JSON type; ``enum`` None means no enumeration. ``patterns``
    must all match. ``requirement`` is the nearest ``x-requirement`` (the rule a value
    here obeys), ``where`` the schema location it came from, for messages.
    """

    where: str
    types: frozenset[str] | None = None
    enum: tuple[Any, ...] | None = None
    properties: Mapping[str, Node] = field(default_factory=dict)
    required: frozenset[str] = frozenset()
    additional: bool = True
    items: Node | None = None
    min_length: int | None = None
    max_length: int | None = None
    patterns: tuple[str, ...] = ()
    format: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_items: int | None = None
    max_items: int | None = None
    unique_items: bool = False
    min_properties: int | None = None
    max_properties: int | None = None
    requirement: str | None = None

    def allows(self, json_type: str) -> bool:
        if self.types is None:
            return True
        return json_type in self.types or (json_type == "integer" and "number" in self.types)

    @property
    def is_any(self) -> bool:
        """No constraint at all: the empty schema."""
        return self == Node(self.where, requirement=self.requirement)


# -- compiling ---------------------------------------------------------------------------


def _narrow(a: float | None, b: float | None, pick: Callable[[float, float], float]) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return pick(a, b)


def merge(a: Node, b: Node) -> Node:
    """Both nodes' constraints at once (``allOf``)."""
    types = a.types if b.types is None else b.types if a.types is None else a.types & b.types
    if a.enum is not None and b.enum is not None:
        enum: tuple[Any, ...] | None = tuple(v for v in a.enum if v in b.enum)
    else:
        enum = a.enum if a.enum is not None else b.enum
    properties = dict(a.properties)
    for name, sub in b.properties.items():
        properties[name] = merge(properties[name], sub) if name in properties else sub
    if a.format and b.format and a.format != b.format:
        raise UnsupportedSchema(f"{b.where}: formats {a.format!r} and {b.format!r} together")
    if a.items is not None and b.items is not None:
        items: Node | None = merge(a.items, b.items)
    else:
        items = a.items or b.items
    return Node(
        where=b.where,
        types=types,
        enum=enum,
        properties=properties,
        required=a.required | b.required,
        additional=a.additional and b.additional,
        items=items,
        min_length=_narrow(a.min_length, b.min_length, max),
        max_length=_narrow(a.max_length, b.max_length, min),
        patterns=tuple(dict.fromkeys(a.patterns + b.patterns)),
        format=a.format or b.format,
        minimum=_narrow(a.minimum, b.minimum, max),
        maximum=_narrow(a.maximum, b.maximum, min),
        min_items=_narrow(a.min_items, b.min_items, max),
        max_items=_narrow(a.max_items, b.max_items, min),
        unique_items=a.unique_items or b.unique_items,
        min_properties=_narrow(a.min_properties, b.min_properties, max),
        max_properties=_narrow(a.max_properties, b.max_properties, min),
        requirement=b.requirement or a.requirement,
    )


class Compiler:
    """Compiles schemas (by URI or inline, relative to a base URI) into :class:`Node` trees."""

    def __init__(self, resolver: Resolver[Any] | None = None) -> None:
        self.resolver = resolver if resolver is not None else schema_registry().resolver()

    def compile_uri(self, uri: str) -> Node:
        resolved = self.resolver.lookup(uri)
        return self._compile(resolved.contents, resolved.resolver, uri, None, 0)

    def compile(self, schema: Mapping[str, Any], base_uri: str) -> Node:
        """An inline schema whose ``$ref``s are relative to ``base_uri``."""
        base = self.resolver.lookup(base_uri)
        return self._compile(schema, base.resolver, f"inline@{base_uri}", None, 0)

    def _compile(
        self,
        schema: Any,
        resolver: Resolver[Any],
        where: str,
        inherited: str | None,
        depth: int,
    ) -> Node:
        if depth > 64:
            raise UnsupportedSchema(f"{where}: $ref chain deeper than 64 (recursive schema?)")
        if schema is True or schema == {}:
            return Node(where, requirement=inherited)
        if not isinstance(schema, Mapping):
            raise UnsupportedSchema(f"{where}: schema {schema!r} is neither an object nor true")
        unknown = sorted(set(schema) - SUPPORTED)
        if unknown:
            raise UnsupportedSchema(f"{where}: unsupported keyword(s) {', '.join(unknown)}")
        own_requirement = schema.get("x-requirement")
        node = self._own(schema, resolver, where, own_requirement or inherited, depth)
        found = [own_requirement]
        if "$ref" in schema:
            target = resolver.lookup(schema["$ref"])
            referenced = self._compile(
                target.contents, target.resolver, f"{where}->{schema['$ref']}", None, depth + 1
            )
            found.append(referenced.requirement)
            node = merge(referenced, node)
        for index, sub in enumerate(schema.get("allOf", ())):
            part = self._compile(sub, resolver, f"{where}/allOf/{index}", None, depth + 1)
            found.append(part.requirement)
            node = merge(node, part)
        effective = next((r for r in found if r is not None), inherited)
        return replace(node, requirement=effective)

    def _own(
        self,
        schema: Mapping[str, Any],
        resolver: Resolver[Any],
        where: str,
        requirement: str | None,
        depth: int,
    ) -> Node:
        declared = schema.get("type")
        if declared is None:
            types = None
        else:
            listed = [declared] if isinstance(declared, str) else list(declared)
            if not set(listed) <= JSON_TYPES:
                raise UnsupportedSchema(f"{where}: type {declared!r}")
            types = frozenset(listed)
        enum: tuple[Any, ...] | None = None
        if "enum" in schema:
            enum = tuple(schema["enum"])
        if "const" in schema:
            enum = (
                (schema["const"],)
                if enum is None
                else tuple(v for v in enum if v == schema["const"])
            )
        additional = schema.get("additionalProperties", True)
        if additional not in (True, False):
            raise UnsupportedSchema(f"{where}: additionalProperties must be true or false here")
        fmt = schema.get("format")
        if fmt is not None and fmt not in FORMATS:
            raise UnsupportedSchema(f"{where}: format {fmt!r}")
        properties = {
            name: self._compile(sub, resolver, f"{where}/properties/{name}", requirement, depth + 1)
            for name, sub in schema.get("properties", {}).items()
        }
        items = (
            self._compile(schema["items"], resolver, f"{where}/items", requirement, depth + 1)
            if "items" in schema
            else None
        )
        pattern = schema.get("pattern")
        if pattern is not None:
            re.compile(pattern)
        return Node(
            where=where,
            types=types,
            enum=enum,
            properties=properties,
            required=frozenset(schema.get("required", ())),
            additional=bool(additional),
            items=items,
            min_length=schema.get("minLength"),
            max_length=schema.get("maxLength"),
            patterns=(pattern,) if pattern is not None else (),
            format=fmt,
            minimum=schema.get("minimum"),
            maximum=schema.get("maximum"),
            min_items=schema.get("minItems"),
            max_items=schema.get("maxItems"),
            unique_items=bool(schema.get("uniqueItems", False)),
            min_properties=schema.get("minProperties"),
            max_properties=schema.get("maxProperties"),
            requirement=requirement,
        )


@cache
def compiled(relative: str) -> Node:
    """The node of a schema given relative to ``schemas/`` (fragments allowed)."""
    return Compiler().compile_uri(schema_uri(relative))


# -- checking a value against a node (what the strategies must respect) ------------------


def matches(pattern: str, text: str) -> bool:
    """ECMA-262 semantics for the anchors our patterns use: ``$`` ends the text.

    Python's ``$`` also matches before a final newline, which JSON Schema's does not, so
    generated strings never end in one.
    """
    return re.search(pattern, text) is not None and not text.endswith("\n")


def canonical(value: Any) -> str:
    """A key for uniqueItems: equal JSON values (``1`` and ``1.0`` too), equal keys."""
    return json_key(value)


# -- strings -----------------------------------------------------------------------------

_parser: Any = importlib.import_module("re._parser")
_constants: Any = importlib.import_module("re._constants")


def pattern_width(pattern: str) -> tuple[int, int | None]:
    """Shortest and longest length a pattern admits (None: unbounded)."""
    low, high = _parser.parse(pattern).getwidth()
    return int(low), (None if high >= _constants.MAXREPEAT else int(high))


def _char_from(items: list[tuple[Any, Any]], variant: int) -> str:
    """A character of a ``[...]`` class: the ``variant``-th allowed one of a fixed order."""
    negate = bool(items) and items[0][0] is _constants.NEGATE
    if negate:
        excluded = items[1:]
        candidates = [c for c in string.ascii_letters + string.digits if not _in(c, excluded)]
        return candidates[variant % len(candidates)]
    allowed: list[str] = []
    for op, arg in items:
        if op is _constants.LITERAL:
            allowed.append(chr(arg))
        elif op is _constants.RANGE:
            allowed.extend(chr(c) for c in range(arg[0], min(arg[1], arg[0] + 25) + 1))
        elif op is _constants.CATEGORY and arg is _constants.CATEGORY_DIGIT:
            allowed.extend(string.digits)
        else:
            raise UnsupportedSchema(f"character class item {op} {arg}")
    return allowed[variant % len(allowed)]


def _in(char: str, items: list[tuple[Any, Any]]) -> bool:
    code = ord(char)
    for op, arg in items:
        if op is _constants.LITERAL and arg == code:
            return True
        if op is _constants.RANGE and arg[0] <= code <= arg[1]:
            return True
        if op is _constants.CATEGORY:
            if arg is _constants.CATEGORY_SPACE and char.isspace():
                return True
            if arg is _constants.CATEGORY_DIGIT and char.isdigit():
                return True
    return False


def _width(items: Any) -> tuple[int, int]:
    low, high = _parser.SubPattern(_parser.State(), list(items)).getwidth()
    return int(low), int(min(high, _constants.MAXREPEAT))


def _realize(items: Any, length: int, variant: int) -> str | None:
    """A string of exactly ``length`` characters matching the parsed sequence, or None."""
    widths = [_width([item]) for item in items]
    spare = length - sum(low for low, _ in widths)
    if spare < 0:
        return None
    chosen = []
    for low, high in widths:
        extra = min(spare, high - low)
        chosen.append(low + extra)
        spare -= extra
    if spare:
        return None
    out = []
    for (op, arg), size in zip(items, chosen, strict=True):
        part = _realize_one(op, arg, size, variant)
        if part is None:
            return None
        out.append(part)
    return "".join(out)


def _realize_one(op: Any, arg: Any, size: int, variant: int) -> str | None:
    if op is _constants.AT:
        return ""
    if op is _constants.LITERAL:
        return chr(arg)
    if op is _constants.IN:
        return _char_from(list(arg), variant)
    if op is _constants.ANY:
        return "abcdefghij"[variant % 10]
    if op in (_constants.MAX_REPEAT, _constants.MIN_REPEAT):
        low, high, sub = arg
        sub_low, sub_high = _width(sub)
        if sub_low != sub_high or sub_low == 0:
            raise UnsupportedSchema("repeats of variable-width groups")
        count, rest = divmod(size, sub_low)
        if rest or not low <= count <= high:
            return None
        parts = [_realize(list(sub), sub_low, variant + i) for i in range(count)]
        return None if any(p is None for p in parts) else "".join(p or "" for p in parts)
    if op is _constants.SUBPATTERN:
        return _realize(list(arg[-1]), size, variant)
    if op is _constants.BRANCH:
        for branch in arg[1]:
            found = _realize(list(branch), size, variant)
            if found is not None:
                return found
        return None
    raise UnsupportedSchema(f"regular expression construct {op}")


def pattern_example(pattern: str, length: int, variant: int = 0) -> str | None:
    """A deterministic string of ``length`` characters that the pattern matches, or None."""
    found = _realize(list(_parser.parse(pattern)), length, variant)
    return found if found is not None and matches(pattern, found) else None


# -- formats -----------------------------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def rfc3339(moment: datetime, digits: int, offset_minutes: int, t: str = "T", z: str = "Z") -> str:
    """An RFC 3339 date-time with an explicit offset, as ENV-004 requires."""
    local = moment.astimezone(UTC) + timedelta(minutes=offset_minutes)
    text = local.strftime(f"%Y-%m-%d{t}%H:%M:%S")
    if digits:
        text += "." + f"{local.microsecond:06d}"[:digits].ljust(digits, "0")
    if offset_minutes == 0 and z:
        return text + z
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


def timestamps() -> st.SearchStrategy[str]:
    """Valid date-times: any second from 1970 to 2199, 0-9 fraction digits, any offset."""
    return st.builds(
        rfc3339,
        st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2199, 12, 30)).map(
            lambda d: d.replace(tzinfo=UTC)
        ),
        st.integers(0, 9),
        st.integers(-(23 * 60 + 59), 23 * 60 + 59),
        st.sampled_from("Tt"),
        st.sampled_from(["Z", "z", ""]),
    )


_HOST_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
_PATH_CHARS = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@%"


def _path_segment() -> st.SearchStrategy[str]:
    return st.text(st.sampled_from(string.ascii_letters + string.digits + "-._~"), max_size=12)


def uris() -> st.SearchStrategy[str]:
    """http(s) URLs with a host name, in any scheme case, optional port, path and query."""
    return st.builds(
        lambda scheme, labels, tld, port, path, query: (
            f"{scheme}://{'.'.join([*labels, tld])}"
            + (f":{port}" if port is not None else "")
            + "".join(f"/{segment}" for segment in path)
            + (f"?q={query}" if query is not None else "")
        ),
        st.sampled_from(["http", "https", "HTTPS", "Http", "hTTp"]),
        st.lists(_HOST_LABEL, min_size=1, max_size=3),
        st.sampled_from(["com", "org", "example", "test", "io"]),
        st.none() | st.integers(1, 65535),
        st.lists(_path_segment(), max_size=3),
        st.none() | _path_segment(),
    )


def uri_of_length(length: int, variant: int = 0) -> str:
    """A deterministic https URL of ``length`` characters, or the shortest one (for boundaries)."""
    base = f"https://h{variant}.example.com/"
    return base + "p" * max(0, length - len(base))


# -- JSON values -------------------------------------------------------------------------


def json_values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """Any JSON value, kept small; integers stay exactly representable everywhere."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-SAFE_INTEGER, SAFE_INTEGER)
        | st.floats(allow_nan=False, allow_infinity=False, width=64)
        | st.text(max_size=20)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=max_leaves,
    )


# -- strategies --------------------------------------------------------------------------


def _string_strategy(node: Node) -> st.SearchStrategy[str]:
    low = node.min_length or 0
    high = node.max_length
    if node.format == "date-time":
        base: st.SearchStrategy[str] = timestamps()
    elif node.format == "uri":
        base = uris()
    elif node.patterns:
        base = st.from_regex(node.patterns[-1], fullmatch=True)
    else:
        # Lengths are built in and there is no pattern: nothing left to filter.
        return st.text(min_size=low, max_size=high if high is not None else max(low, 40))
    return base.filter(lambda s: string_fits(node, s))


def string_fits(node: Node, text: str) -> bool:
    if len(text) < (node.min_length or 0):
        return False
    if node.max_length is not None and len(text) > node.max_length:
        return False
    return all(matches(p, text) for p in node.patterns)


def _number_bounds(node: Node) -> tuple[int, int]:
    low = -SAFE_INTEGER if node.minimum is None else math.ceil(node.minimum)
    high = SAFE_INTEGER if node.maximum is None else math.floor(node.maximum)
    return low, high


def _object_strategy(node: Node, draw_extra: bool) -> st.SearchStrategy[dict[str, Any]]:
    required = {name: strategy(node.properties[name]) for name in sorted(node.required)}
    missing = sorted(node.required - set(node.properties))
    if missing:
        raise UnsupportedSchema(f"{node.where}: required {missing} without properties")
    optional = {
        name: strategy(sub) for name, sub in sorted(node.properties.items()) if name not in required
    }
    fixed = st.fixed_dictionaries(required, optional=optional)
    counted = node.max_properties is not None or node.min_properties is not None
    if not node.additional or not draw_extra:
        return fixed.filter(lambda d: properties_fit(node, d)) if counted else fixed
    known = set(node.properties)
    limit = node.max_properties if node.max_properties is not None else SMALL
    extra = st.dictionaries(
        st.text(min_size=1, max_size=12).filter(lambda k: k not in known),
        json_values(4),
        max_size=min(SMALL if node.properties else limit, limit),
    )
    merged = st.builds(lambda a, b: {**b, **a}, fixed, extra)
    return merged.filter(lambda d: properties_fit(node, d)) if counted else merged


def properties_fit(node: Node, value: Mapping[str, Any]) -> bool:
    if node.max_properties is not None and len(value) > node.max_properties:
        return False
    return not (node.min_properties is not None and len(value) < node.min_properties)


def _array_strategy(node: Node) -> st.SearchStrategy[list[Any]]:
    items = strategy(node.items) if node.items is not None else json_values(4)
    low = node.min_items or 0
    high = min(node.max_items if node.max_items is not None else SMALL, max(low, SMALL))
    if node.unique_items:
        return st.lists(items, min_size=low, max_size=high, unique_by=canonical)
    return st.lists(items, min_size=low, max_size=high)


def strategy(node: Node, *, extra_members: bool = True) -> st.SearchStrategy[Any]:
    """Values the node accepts. ``extra_members`` adds unknown members where allowed."""
    if node.enum is not None:
        if not node.enum:
            raise UnsupportedSchema(f"{node.where}: enum and const admit nothing together")
        return st.sampled_from(node.enum)
    if node.is_any:
        return json_values()
    choices: list[st.SearchStrategy[Any]] = []
    if node.allows("object"):
        choices.append(_object_strategy(node, extra_members))
    if node.allows("array"):
        choices.append(_array_strategy(node))
    if node.allows("string"):
        choices.append(_string_strategy(node))
    if node.types is None or "integer" in node.types or "number" in node.types:
        low, high = _number_bounds(node)
        choices.append(st.integers(low, high))
    if node.types is not None and "number" in node.types:
        choices.append(
            st.floats(
                min_value=node.minimum,
                max_value=node.maximum,
                allow_nan=False,
                allow_infinity=False,
            )
        )
    if node.allows("boolean"):
        choices.append(st.booleans())
    if node.allows("null"):
        choices.append(st.none())
    if not choices:
        raise UnsupportedSchema(f"{node.where}: no type left to generate")
    return st.one_of(choices)


def walk(node: Node, pointer: str = "") -> Iterator[tuple[str, Node]]:
    """Every (JSON pointer, node) of the tree, parents first; array items as ``/*``."""
    yield pointer, node
    for name, sub in sorted(node.properties.items()):
        yield from walk(sub, f"{pointer}/{name}")
    if node.items is not None:
        yield from walk(node.items, f"{pointer}/*")
