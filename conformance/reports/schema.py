"""The published schema of report.json, and validation of a report against it.

Implementations submit their report.json to the conformance matrix of the published
specification; the schema is what such a file must match, and the kit's own reports are
tested against it, so the two cannot drift.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from rep_spec import schema_registry

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "report.schema.json"


@cache
def report_schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def report_problems(report: Mapping[str, Any]) -> list[str]:
    """Every way ``report`` breaks the schema, as ``pointer: message`` lines (none: valid).

    The schema takes the registry's id pattern and levels from the registry's own schema,
    which the ``rep_spec`` registry resolves offline.
    """
    validator = jsonschema.Draft202012Validator(
        report_schema(),
        registry=schema_registry(),
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )
    return [
        f"/{'/'.join(str(p) for p in error.absolute_path)}: {error.message[:300]}"
        for error in sorted(
            validator.iter_errors(report), key=lambda e: [str(p) for p in e.absolute_path]
        )
    ]


def requirement_verdicts() -> tuple[str, ...]:
    """The requirement verdicts, worst news first (the order the schema lists them in)."""
    return tuple(report_schema()["$defs"]["requirementVerdict"]["enum"])
