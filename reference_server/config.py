"""Server configuration: the YAML file ``rep-server --config`` reads, as frozen dataclasses.

``schemas/server-config.schema.json`` is the one description of the file: its keys, their
types, limits and defaults. :func:`parse_config` validates against it (errors name the
key: ``rooms[2].id: ...``) and keeps only the checks a schema cannot express, such as
room ids being unique. The dataclasses' defaults are read from the schema's ``default``
keywords, so the file and ``ServerConfig()`` cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from rep_spec import schema_registry
from rep_spec.schema_files import load_json, schema_uri
from rep_spec.validation import EcmaValidator

SCHEMA = "server-config.schema.json"


class ConfigError(ValueError):
    """The configuration file is unreadable or names an unknown or ill-typed setting."""


@cache
def config_schema() -> dict[str, Any]:
    schema: dict[str, Any] = load_json(SCHEMA)
    return schema


def _default(*path: str) -> Any:
    """The ``default`` of the member at ``path`` (``"rate_limit", "window_ms"``)."""
    node = config_schema()
    for name in path:
        node = node["$defs"][name] if name in ("room", "stream") else node["properties"][name]
    return node["default"]


@dataclass(frozen=True)
class RoomConfig:
    """A room the operator defines; rooms not listed are public and created on demand."""

    id: str
    private: bool = _default("room", "private")
    password: str | None = None
    moderated: bool = _default("room", "moderated")
    invite_only: bool = _default("room", "invite_only")
    invited: frozenset[str] = frozenset(_default("room", "invited"))


@dataclass(frozen=True)
class StreamConfig:
    id: str
    buffer_size: int = _default("stream", "buffer_size")
    retention_ms: int = _default("stream", "retention_ms")


@dataclass(frozen=True)
class RateLimitConfig:
    window_ms: int = _default("rate_limit", "window_ms")
    max_messages: int = _default("rate_limit", "max_messages")


@dataclass(frozen=True)
class ServerConfig:
    heartbeat_interval_ms: int = _default("heartbeat_interval_ms")
    max_message_bytes: int = _default("max_message_bytes")
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    jwt_algorithms: tuple[str, ...] = tuple(_default("jwt_algorithms"))
    allowed_origins: frozenset[str] = frozenset(_default("allowed_origins"))
    rooms: tuple[RoomConfig, ...] = ()
    streams: tuple[StreamConfig, ...] = ()
    outbound_queue_limit: int = _default("outbound_queue_limit")
    outbound_buffer_bytes: int = _default("outbound_buffer_bytes")

    def room(self, room_id: str) -> RoomConfig | None:
        return next((room for room in self.rooms if room.id == room_id), None)

    def stream(self, stream_id: str) -> StreamConfig | None:
        return next((stream for stream in self.streams if stream.id == stream_id), None)


@cache
def _validator() -> Any:
    # The protocol's own pattern semantics (ECMA-262: '$' is the end of the string), so a
    # room id is refused here exactly when a room_join would refuse it (ROOM-001).
    return EcmaValidator(
        {"$ref": schema_uri(SCHEMA)},
        registry=schema_registry(keep_dialect=False),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def _location(path: Iterable[str | int]) -> str:
    """``rooms[2].id`` for the path ``("rooms", 2, "id")``; ``(top level)`` for ``()``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _describe(error: ValidationError) -> str:
    """One line naming the key at fault and what is wrong with it."""
    path = list(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = list(schema.get("properties", {}))
        unknown = sorted(str(name) for name in error.instance if name not in known)
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        return f"{_location([*path, unknown[0]])}: unknown key{more}; known: {', '.join(known)}"
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in schema.get("required", []) if name not in error.instance]
        if missing:
            return f"{_location([*path, missing[0]])}: required key missing"
    message = error.message
    requirement = schema.get("x-requirement")
    if requirement:
        message += f" ({requirement})"
    return f"{_location(path)}: {message}"


def _unique(kind: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for index, each in enumerate(ids):
        if each in seen:
            raise ConfigError(f"{kind}[{index}].id: {each!r} is defined twice")
        seen.add(each)


def parse_config(raw: Any, source: str | None = None) -> ServerConfig:
    """Validate a decoded configuration (``None`` for an empty file) and build it.

    Raises :class:`ConfigError` with one line: ``[source: ]key: what is wrong``.
    """
    raw = {} if raw is None else raw
    error = best_match(_validator().iter_errors(raw))
    try:
        if error is not None:
            raise ConfigError(_describe(error))
        rooms = [
            RoomConfig(**{**room, "invited": frozenset(room.get("invited", ()))})
            for room in raw.get("rooms", ())
        ]
        streams = [StreamConfig(**stream) for stream in raw.get("streams", ())]
        _unique("rooms", [room.id for room in rooms])
        _unique("streams", [stream.id for stream in streams])
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}" if source else str(exc)) from None
    scalars = {
        name: raw[name]
        for name in (
            "heartbeat_interval_ms",
            "max_message_bytes",
            "outbound_queue_limit",
            "outbound_buffer_bytes",
        )
        if name in raw
    }
    lists: dict[str, Any] = {}
    if "jwt_algorithms" in raw:
        lists["jwt_algorithms"] = tuple(raw["jwt_algorithms"])
    if "allowed_origins" in raw:
        lists["allowed_origins"] = frozenset(raw["allowed_origins"])
    return ServerConfig(
        **scalars,
        **lists,
        rate_limit=RateLimitConfig(**raw.get("rate_limit", {})),
        rooms=tuple(rooms),
        streams=tuple(streams),
    )


def load_config(path: Path | None) -> ServerConfig:
    """The defaults without a path; else the YAML file at ``path``, validated."""
    if path is None:
        return ServerConfig()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ConfigError(f"cannot read {path}: {' '.join(str(reason).split())}") from exc
    return parse_config(raw, source=str(path))
