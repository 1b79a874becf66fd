"""Find ``schemas/`` (inside an installed wheel or beside a source checkout) and load it."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMA_BASE_URI = "https://rep-protocol.dev/schemas/1.0/"


@cache
def schema_dir() -> Path:
    """The wheel ships the schemas inside the package; a checkout keeps them at the top."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "schemas", here.parent / "schemas"):
        if (candidate / "messages.json").is_file():
            return candidate
    raise FileNotFoundError(
        "REP schemas not found: expected rep_spec/schemas (installed) or ../schemas (checkout)"
    )


def load_json(relative: str) -> Any:
    return json.loads((schema_dir() / relative).read_text(encoding="utf-8"))


def load_yaml(relative: str) -> Any:
    return yaml.safe_load((schema_dir() / relative).read_text(encoding="utf-8"))


def schema_paths() -> list[Path]:
    return sorted(schema_dir().rglob("*.schema.json"))


@cache
def schema_registry(*, keep_dialect: bool = True) -> Registry:
    """Every ``*.schema.json`` under its absolute ``$id``, so relative ``$ref``s resolve offline.

    With ``keep_dialect=False`` the ``$schema`` members are dropped (every file is 2020-12
    anyway): jsonschema picks the validator class of a ``$ref`` target from its ``$schema``,
    which would silently replace an extended validator with the stock one.
    """
    resources = []
    for path in schema_paths():
        contents = json.loads(path.read_text(encoding="utf-8"))
        if not keep_dialect:
            contents.pop("$schema", None)
        resources.append((contents["$id"], Resource.from_contents(contents, DRAFT202012)))
    return Registry().with_resources(resources).crawl()


def schema_uri(relative: str) -> str:
    """Absolute URI of a schema given relative to ``schemas/`` (fragments allowed)."""
    return SCHEMA_BASE_URI + relative
