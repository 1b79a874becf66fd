"""Server configuration: defaults from the spec's seed values, overridden by a YAML file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class RoomConfig:
    """A room the operator defines; rooms not listed are public and created on demand."""

    id: str
    private: bool = False
    password: str | None = None
    moderated: bool = False
    invite_only: bool = False
    invited: frozenset[str] = frozenset()


@dataclass(frozen=True)
class StreamConfig:
    id: str
    buffer_size: int = 100
    retention_ms: int = 3_600_000


@dataclass(frozen=True)
class RateLimitConfig:
    window_ms: int = 60_000
    max_messages: int = 100


@dataclass(frozen=True)
class ServerConfig:
    heartbeat_interval_ms: int = 30_000
    max_message_bytes: int = 65_536
    rate_limit: RateLimitConfig = RateLimitConfig()
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    allowed_origins: frozenset[str] = frozenset()
    rooms: tuple[RoomConfig, ...] = ()
    streams: tuple[StreamConfig, ...] = ()
    outbound_queue_limit: int = 1000

    def room(self, room_id: str) -> RoomConfig | None:
        return next((room for room in self.rooms if room.id == room_id), None)

    def stream(self, stream_id: str) -> StreamConfig | None:
        return next((stream for stream in self.streams if stream.id == stream_id), None)


class ConfigError(ValueError):
    """The configuration file is unreadable or names an unknown or ill-typed setting."""


_TOP_LEVEL = {
    "heartbeat_interval_ms",
    "max_message_bytes",
    "rate_limit",
    "jwt_algorithms",
    "allowed_origins",
    "rooms",
    "streams",
    "outbound_queue_limit",
}
_REFUSED_ALGORITHMS = {"none", ""}


def _positive_int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def parse_config(raw: dict[str, Any] | None) -> ServerConfig:
    raw = dict(raw or {})
    unknown = set(raw) - _TOP_LEVEL
    if unknown:
        raise ConfigError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
    defaults = ServerConfig()
    rate = raw.get("rate_limit") or {}
    algorithms = tuple(raw.get("jwt_algorithms", defaults.jwt_algorithms))
    if not algorithms or any(a.lower() in _REFUSED_ALGORITHMS for a in algorithms):
        raise ConfigError("jwt_algorithms must list real signature algorithms; 'none' is refused")
    max_bytes = _positive_int(
        raw.get("max_message_bytes", defaults.max_message_bytes), "max_message_bytes"
    )
    if max_bytes < 65_536:
        raise ConfigError("max_message_bytes must be at least 65536 (WS-005)")
    try:
        rooms = tuple(
            RoomConfig(
                id=str(room["id"]),
                private=bool(room.get("private", False)),
                password=room.get("password"),
                moderated=bool(room.get("moderated", False)),
                invite_only=bool(room.get("invite_only", False)),
                invited=frozenset(str(user) for user in room.get("invited", ())),
            )
            for room in raw.get("rooms", ())
        )
        streams = tuple(
            StreamConfig(
                id=str(stream["id"]),
                buffer_size=_positive_int(stream.get("buffer_size", 100), "buffer_size"),
                retention_ms=_positive_int(stream.get("retention_ms", 3_600_000), "retention_ms"),
            )
            for stream in raw.get("streams", ())
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"invalid rooms or streams entry: {exc!r}") from exc
    return ServerConfig(
        heartbeat_interval_ms=_positive_int(
            raw.get("heartbeat_interval_ms", defaults.heartbeat_interval_ms),
            "heartbeat_interval_ms",
        ),
        max_message_bytes=max_bytes,
        rate_limit=RateLimitConfig(
            window_ms=_positive_int(rate.get("window_ms", 60_000), "rate_limit.window_ms"),
            max_messages=_positive_int(rate.get("max_messages", 100), "rate_limit.max_messages"),
        ),
        jwt_algorithms=algorithms,
        allowed_origins=frozenset(raw.get("allowed_origins", ())),
        rooms=rooms,
        streams=streams,
        outbound_queue_limit=_positive_int(
            raw.get("outbound_queue_limit", defaults.outbound_queue_limit), "outbound_queue_limit"
        ),
    )


def load_config(path: Path | None) -> ServerConfig:
    if path is None:
        return ServerConfig()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return parse_config(raw)
