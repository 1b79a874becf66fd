"""The configuration file against schemas/server-config.schema.json, its one description."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from reference_server.config import (
    ConfigError,
    RateLimitConfig,
    RoomConfig,
    ServerConfig,
    StreamConfig,
    config_schema,
    load_config,
    parse_config,
)
from rep_spec import schema_registry
from rep_spec.schema_files import SCHEMA_BASE_URI

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rooms.yaml"


def test_the_schema_is_published_under_the_protocol_base_uri() -> None:
    uri = SCHEMA_BASE_URI + "server-config.schema.json"
    assert config_schema()["$id"] == uri
    assert schema_registry().resolver().lookup(uri).contents == config_schema()


def test_ids_reuse_the_protocol_slug_definitions_instead_of_copying_them() -> None:
    room, stream = (config_schema()["$defs"][name]["properties"] for name in ("room", "stream"))
    assert room["id"] == {"$ref": "defs.schema.json#/$defs/roomId"}
    assert stream["id"] == {"$ref": "defs.schema.json#/$defs/streamId"}
    assert room["invited"]["items"] == {"$ref": "defs.schema.json#/$defs/userId"}


@pytest.mark.parametrize(
    ("schema_node", "dataclass"),
    [
        (lambda s: s, ServerConfig),
        (lambda s: s["properties"]["rate_limit"], RateLimitConfig),
        (lambda s: s["$defs"]["room"], RoomConfig),
        (lambda s: s["$defs"]["stream"], StreamConfig),
    ],
    ids=["top level", "rate_limit", "room", "stream"],
)
def test_keys_and_defaults_are_the_dataclass_fields(schema_node: Any, dataclass: Any) -> None:
    properties = schema_node(config_schema())["properties"]
    fields = {field.name: field for field in dataclasses.fields(dataclass)}
    assert list(properties) == list(fields)
    instance = dataclass(id="x") if "id" in fields else dataclass()
    for name, member in properties.items():
        if "default" in member:
            value = getattr(instance, name)
            expected = member["default"]
            assert value == (type(value)(expected) if isinstance(expected, list) else expected)


def test_an_empty_file_is_the_defaults() -> None:
    assert parse_config(None) == parse_config({}) == ServerConfig()


def test_the_example_file_is_valid() -> None:
    config = load_config(EXAMPLE)
    assert config.room("vault") == RoomConfig(id="vault", password="open-sesame")
    assert config.room("board") == RoomConfig(id="board", invite_only=True, invited={"alice"})


BAD: list[tuple[dict[str, Any], str]] = [
    (
        {"rooms": [{"id": "a"}, {"id": "b"}, {"id": "bad id!"}]},
        "rooms[2].id: 'bad id!' does not match",
    ),
    ({"rooms": [{"id": "a", "private": "maybe"}]}, "rooms[0].private: 'maybe' is not of type"),
    ({"rooms": [{"id": "a", "password": 1234}]}, "rooms[0].password: 1234 is not of type"),
    ({"rooms": [{"private": True}]}, "rooms[0].id: required key missing"),
    ({"rooms": [{"id": "a", "colour": "red"}]}, "rooms[0].colour: unknown key"),
    ({"rooms": [{"id": "a"}, {"id": "a"}]}, "rooms[1].id: 'a' is defined twice"),
    ({"streams": [{"id": "s", "buffer_size": 0}]}, "streams[0].buffer_size: 0 is less than"),
    ({"streams": [{"id": "s"}, {"id": "s"}]}, "streams[1].id: 's' is defined twice"),
    ({"surprise": 1}, "surprise: unknown key; known: heartbeat_interval_ms"),
    ({"heartbeat_interval_ms": -1}, "heartbeat_interval_ms: -1 is less than the minimum"),
    ({"heartbeat_interval_ms": True}, "heartbeat_interval_ms: True is not of type 'integer'"),
    ({"max_message_bytes": 1000}, "max_message_bytes: 1000 is less than the minimum of 65536"),
    ({"rate_limit": {"window_ms": "1m"}}, "rate_limit.window_ms: '1m' is not of type"),
    ({"jwt_algorithms": ["none"]}, "jwt_algorithms[0]: 'none' is not one of"),
    ({"jwt_algorithms": []}, "jwt_algorithms: [] should be non-empty"),
    ({"allowed_origins": ["https://app.example.com/"]}, "allowed_origins[0]:"),
]


@pytest.mark.parametrize(("raw", "message"), BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_errors_name_the_key_in_one_line(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_the_slug_rule_is_the_protocols_own() -> None:
    """ROOM-001's pattern with ECMA-262 semantics: '$' does not admit a trailing newline."""
    assert parse_config({"rooms": [{"id": "load-test:room_1.a"}]}).rooms[0].id
    for refused in ("staff\n", "-staff", "x" * 129, ""):
        with pytest.raises(ConfigError, match=r"rooms\[0\]\.id: .* \(ROOM-001\)"):
            parse_config({"rooms": [{"id": refused}]})


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rooms.yaml"
    path.write_text("rooms:\n  - id: staff\n    private: maybe\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"rooms\.yaml: rooms\[0\]\.private: 'maybe'"):
        load_config(path)
    path.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"rooms\.yaml: \(top level\): .* is not of type 'object'"
    ):
        load_config(path)
    path.write_text("rooms: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot read") as caught:
        load_config(path)
    assert "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match=r"cannot read .*: No such file"):
        load_config(tmp_path / "missing.yaml")
