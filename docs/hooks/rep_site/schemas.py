"""Read what the reference pages show from ``schemas/``: payload fields, vectors, downloads.

Nothing here is copied by hand: field tables are walked from the payload schemas with
every ``$ref`` resolved, examples come from the test vectors, and the downloads are the
schema files themselves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from rep_spec import schema_dir, schema_registry
from rep_spec.schema_files import schema_uri

PUBLISH_SKIP_SUFFIXES = (".md", ".py", ".pyc")


@dataclass(frozen=True)
class FieldRow:
    """One member of a payload, flattened: ``metadata.attachments[].url`` and what holds it."""

    path: str
    type: str
    required: bool
    constraints: tuple[str, ...]
    description: str
    requirement: str | None


@dataclass(frozen=True)
class SchemaView:
    """A schema ready to document: its description, whether it is closed, and its fields."""

    uri: str
    description: str
    closed: bool
    fields: tuple[FieldRow, ...]
    requirement: str | None = None

    @property
    def cited(self) -> tuple[str, ...]:
        """The requirement ids the schema cites (``x-requirement``), itself first, no repeats."""
        found = [self.requirement, *(row.requirement for row in self.fields)]
        return tuple(dict.fromkeys(r for r in found if r))


def _resolve(node: Any, resolver: Any) -> tuple[dict[str, Any], Any]:
    """Follow ``$ref`` chains; keywords beside a ``$ref`` (descriptions) win over the target's."""
    if not isinstance(node, dict):
        return {}, resolver
    current = dict(node)
    while "$ref" in current:
        resolved = resolver.lookup(current.pop("$ref"))
        target = resolved.contents if isinstance(resolved.contents, dict) else {}
        current = {**target, **current}  # the target's own $ref, if any, is followed next
        resolver = resolved.resolver
    return current, resolver


def _type_name(node: Mapping[str, Any], resolver: Any) -> str:
    if "const" in node:
        return _json_type(node["const"])
    if "enum" in node:
        kinds = sorted({_json_type(v) for v in node["enum"]})
        return " or ".join(kinds)
    kind = node.get("type")
    if kind == "array":
        items, _ = _resolve(node.get("items", {}), resolver)
        return f"array of {_type_name(items, resolver)}" if items else "array"
    if isinstance(kind, list):
        return " or ".join(kind)
    if isinstance(kind, str):
        return kind
    return "any JSON value"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "array" if isinstance(value, list) else "object"


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return f"`{text}`"


def _constraints(node: Mapping[str, Any]) -> list[str]:
    """The limits a reader needs, in words, in the order they are usually asked about."""
    found: list[str] = []
    if "const" in node:
        found.append(f"always {_code(node['const'])}")
    if "enum" in node:
        found.append("one of " + ", ".join(_code(v) for v in node["enum"]))
    low, high = node.get("minLength"), node.get("maxLength")
    if low is not None and high is not None:
        found.append(f"{low} to {high} characters")
    elif high is not None:
        found.append(f"at most {high} characters")
    elif low:
        found.append(f"at least {low} characters")
    if "minimum" in node and "maximum" in node:
        found.append(f"{node['minimum']} to {node['maximum']}")
    elif "minimum" in node:
        found.append(f"at least {node['minimum']}")
    elif "maximum" in node:
        found.append(f"at most {node['maximum']}")
    low, high = node.get("minItems"), node.get("maxItems")
    if low is not None and high is not None:
        found.append(f"{low} to {high} items")
    elif high is not None:
        found.append(f"at most {high} items")
    elif low:
        found.append(f"at least {low} items")
    if node.get("uniqueItems"):
        found.append("no duplicates")
    if "maxProperties" in node:
        found.append(f"at most {node['maxProperties']} members")
    if "format" in node:
        found.append(f"format {node['format']}")
    if "pattern" in node:
        found.append(f"pattern {_code(node['pattern'])}")
    if "default" in node:
        found.append(f"default {_code(node['default'])}")
    if node.get("type") == "object" and node.get("additionalProperties") is False:
        found.append("no other members")
    return found


def _walk(node: Mapping[str, Any], resolver: Any, prefix: str) -> Iterator[FieldRow]:
    required = set(node.get("required", []))
    for name, raw in node.get("properties", {}).items():
        child, child_resolver = _resolve(raw, resolver)
        path = f"{prefix}{name}"
        yield FieldRow(
            path=path,
            type=_type_name(child, child_resolver),
            required=name in required,
            constraints=tuple(_constraints(child)),
            description=" ".join(str(child.get("description", "")).split()),
            requirement=child.get("x-requirement"),
        )
        if "properties" in child:
            yield from _walk(child, child_resolver, f"{path}.")
        if child.get("type") == "array":
            items, items_resolver = _resolve(child.get("items", {}), child_resolver)
            if "properties" in items:
                yield from _walk(items, items_resolver, f"{path}[].")


def describe(relative: str, registry: Registry[Any] | None = None) -> SchemaView:
    """Document the schema at ``relative`` (to schemas/, fragment allowed), refs resolved."""
    uri = schema_uri(relative)
    resolver = (registry if registry is not None else schema_registry()).resolver()
    root, root_resolver = _resolve({"$ref": uri}, resolver)
    return SchemaView(
        uri=uri.split("#")[0],
        description=" ".join(str(root.get("description", "")).split()),
        closed=root.get("additionalProperties") is False,
        fields=tuple(_walk(root, root_resolver, "")),
        requirement=root.get("x-requirement"),
    )


def describe_file(path: Path) -> SchemaView:
    """Document a schema kept outside schemas/ (the kit's target file), refs resolved."""
    contents = json.loads(path.read_text(encoding="utf-8"))
    uri = contents.get("$id") or path.resolve().as_uri()
    registry = schema_registry().with_resource(uri, Resource.from_contents(contents, DRAFT202012))
    root, root_resolver = _resolve({"$ref": uri}, registry.resolver())
    return SchemaView(
        uri=uri,
        description=" ".join(str(root.get("description", "")).split()),
        closed=root.get("additionalProperties") is False,
        fields=tuple(_walk(root, root_resolver, "")),
        requirement=root.get("x-requirement"),
    )


def vector_example(sender: str, type_name: str, base: Path | None = None) -> Any | None:
    """The first valid case of ``vectors/<sender>/<type>.json``, or None when there is none."""
    path = (base if base is not None else schema_dir()) / "vectors" / sender / f"{type_name}.json"
    if not path.is_file():
        return None
    document = json.loads(path.read_text(encoding="utf-8"))
    for case in document.get("tests", []):
        if case.get("valid") is True:
            return case.get("data")
    return None


def published_files(base: Path | None = None) -> list[tuple[str, Path]]:
    """Every file of schemas/ to serve under /schemas/1.0/, as (relative path, file)."""
    root = base if base is not None else schema_dir()
    found = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if not path.is_file() or path.suffix in PUBLISH_SKIP_SUFFIXES:
            continue
        if any(part.startswith((".", "__")) for part in relative.parts):
            continue
        found.append((relative.as_posix(), path))
    return found


def schema_id(path: Path) -> str | None:
    """The ``$id`` a JSON schema file declares, if any: its published URL must match it."""
    if not path.name.endswith(".schema.json"):
        return None
    value = json.loads(path.read_text(encoding="utf-8")).get("$id")
    return value if isinstance(value, str) else None
