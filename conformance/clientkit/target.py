"""The client target file: the command that starts the client and how the client is set up.

Validated by ``client-target.schema.json``; defaults come from the schema's ``default``
keywords, so the schema stays the one description of the format.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from conformance.baseline import Baseline
from conformance.target import BaselineEntry, TargetError

SCHEMA_PATH = Path(__file__).with_name("client-target.schema.json")


@cache
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


@dataclass(frozen=True)
class Reconnect:
    base_s: float
    cap_s: float
    max_attempts: int

    def ceiling(self, attempt: int) -> float:
        """d of CLIENT-009 for the n-th attempt."""
        return min(self.cap_s, self.base_s * 2.0 ** (attempt - 1))


@dataclass(frozen=True)
class ClientTarget:
    path: Path
    name: str
    command: tuple[str, ...]
    workdir: Path
    static: Path | None
    env: dict[str, str]
    ready_timeout_s: float
    reconnect: Reconnect
    request_timeout_s: float
    samples: int
    tolerance_s: float
    baseline: Baseline

    def describe(self) -> dict[str, Any]:
        """What the reports show of the target."""
        return {
            "file": str(self.path),
            "role": "client",
            "name": self.name,
            "command": list(self.command),
            "reconnect": {
                "base_ms": round(self.reconnect.base_s * 1000),
                "cap_ms": round(self.reconnect.cap_s * 1000),
                "max_attempts": self.reconnect.max_attempts,
            },
            "request_timeout_ms": round(self.request_timeout_s * 1000),
            "samples": self.samples,
            "tolerance_ms": round(self.tolerance_s * 1000),
        }


def _with_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Fill ``default`` keywords of object properties, recursively."""
    if not isinstance(value, dict) or schema.get("type") != "object":
        return value
    filled = dict(value)
    for name, sub in schema.get("properties", {}).items():
        if name not in filled and "default" in sub:
            filled[name] = sub["default"]
        if name in filled:
            filled[name] = _with_defaults(sub, filled[name])
    return filled


def load_client_target(path: Path) -> ClientTarget:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TargetError(f"{path}: cannot read the client target: {exc}") from None
    error = best_match(Draft202012Validator(_schema()).iter_errors(raw))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise TargetError(f"{path}: {where}: {error.message}")
    data = _with_defaults(_schema(), raw)
    client = data["client"]
    command = client["command"]
    argv = tuple(shlex.split(command) if isinstance(command, str) else command)
    base = path.parent
    static = base / client["static"] if "static" in client else None
    if static is not None and not static.is_dir():
        raise TargetError(f"{path}: client/static: {static} is not a directory")
    workdir = base / client["workdir"]
    if not workdir.is_dir():
        raise TargetError(f"{path}: client/workdir: {workdir} is not a directory")
    reconnect = data["reconnect"]
    if reconnect["cap_ms"] < reconnect["base_ms"]:
        raise TargetError(f"{path}: reconnect: cap_ms is smaller than base_ms")
    entries = tuple(
        BaselineEntry(reason=e["reason"], test=e.get("test"), requirement=e.get("requirement"))
        for e in data["baseline"]
    )
    return ClientTarget(
        path=path,
        name=client["name"],
        command=argv,
        workdir=workdir,
        static=static,
        env=dict(client["env"]),
        ready_timeout_s=float(client["ready_timeout_s"]),
        reconnect=Reconnect(
            reconnect["base_ms"] / 1000, reconnect["cap_ms"] / 1000, reconnect["max_attempts"]
        ),
        request_timeout_s=data["request_timeout_ms"] / 1000,
        samples=data["samples"],
        tolerance_s=data["tolerance_ms"] / 1000,
        baseline=Baseline(entries),
    )
