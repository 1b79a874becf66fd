"""schemas/ is data with its own tests: metaschema validity, $ref resolution, registry agreement."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing.exceptions import Unresolvable

from rep_spec import catalog, schema_dir, schema_registry
from rep_spec.schema_files import SCHEMA_BASE_URI, load_json, load_yaml, schema_paths

SCHEMA_FILES = schema_paths()
FORBIDDEN_KEYWORDS = {"unevaluatedProperties", "unevaluatedItems", "prefixItems", "$dynamicRef"}


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_schema_files_found() -> None:
    assert len(SCHEMA_FILES) >= 30


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: str(p.relative_to(schema_dir())))
def test_schema_is_valid_2020_12(path: Path) -> None:
    schema = load(path)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: str(p.relative_to(schema_dir())))
def test_schema_id_is_absolute_and_matches_path(path: Path) -> None:
    schema = load(path)
    relative = path.relative_to(schema_dir()).as_posix()
    assert schema["$id"] == SCHEMA_BASE_URI + relative


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: str(p.relative_to(schema_dir())))
def test_every_ref_resolves_through_the_registry(path: Path) -> None:
    schema = load(path)
    resolver = schema_registry().resolver(base_uri=schema["$id"])
    refs = [value for key, value in walk(schema) if key == "$ref"]
    for ref in refs:
        try:
            resolver.lookup(ref)
        except Unresolvable as exc:  # pragma: no cover - the assertion message is the point
            pytest.fail(f"{path.name}: $ref {ref!r} does not resolve: {exc}")


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: str(p.relative_to(schema_dir())))
def test_schema_uses_only_generator_friendly_keywords(path: Path) -> None:
    used = {key for key, _ in walk(load(path))} & FORBIDDEN_KEYWORDS
    assert not used, f"{path.name} uses {sorted(used)}"


def test_refs_are_relative() -> None:
    for path in SCHEMA_FILES:
        for key, value in walk(load(path)):
            if key == "$ref":
                assert not value.startswith("http"), f"{path.name}: absolute $ref {value}"


@pytest.mark.parametrize(
    ("document", "meta"),
    [
        ("messages.json", "meta/messages.schema.json"),
        ("error-codes.json", "meta/error-codes.schema.json"),
        ("close-codes.json", "meta/close-codes.schema.json"),
        ("roles.json", "meta/roles.schema.json"),
        ("requirements.yaml", "meta/requirements.schema.json"),
    ],
)
def test_registry_files_match_their_meta_schema(document: str, meta: str) -> None:
    data = load_yaml(document) if document.endswith(".yaml") else load_json(document)
    Draft202012Validator(load_json(meta)).validate(data)


BRIEF_TYPES = {
    "system": {"ping", "pong", "heartbeat", "error", "auth", "disconnect"},
    "application": {
        "chat_message",
        "user_join",
        "user_leave",
        "status_update",
        "notification",
        "room_join",
        "room_leave",
    },
    "data": {"data_create", "data_update", "data_delete", "data_sync"},
    "streams": {"stream_subscribe", "stream_unsubscribe", "stream_event"},
}


def test_catalogue_has_every_type_of_the_protocol() -> None:
    types = catalog().types
    for group, names in BRIEF_TYPES.items():
        for name in names:
            assert name in types, f"{name} missing"
            assert types[name].group == group


def test_every_request_type_has_a_registered_response() -> None:
    types = catalog().types
    for entry in types.values():
        if entry.answer_kind == "response":
            assert entry.answer_type in types, entry.name
            answer = types[entry.answer_type]
            assert answer.sendable_by("server"), (
                f"{entry.name} answered by unsendable {answer.name}"
            )
        if entry.name.endswith("_response"):
            request = entry.name.removesuffix("_response")
            assert types[request].answer_type == entry.name


def test_every_client_type_has_an_answer_and_only_client_types_do() -> None:
    for entry in catalog().types.values():
        assert (entry.answer_kind is not None) == entry.sendable_by("client"), entry.name


def test_direction_agrees_with_payload_schemas() -> None:
    for entry in catalog().types.values():
        expect_client = entry.direction in ("client_to_server", "both")
        expect_server = entry.direction in ("server_to_client", "both")
        assert (entry.client_payload is not None) == expect_client, entry.name
        assert (entry.server_payload is not None) == expect_server, entry.name


def test_every_payload_schema_is_registered_and_every_registration_resolves() -> None:
    resolver = schema_registry().resolver()
    referenced = set()
    for entry in catalog().types.values():
        for relative in (entry.client_payload, entry.server_payload):
            if relative is None:
                continue
            resolver.lookup(SCHEMA_BASE_URI + relative)
            referenced.add(relative.split("#")[0])
    on_disk = {
        p.relative_to(schema_dir()).as_posix() for p in (schema_dir() / "payloads").iterdir()
    }
    assert on_disk == referenced


def test_client_payload_schemas_are_strict() -> None:
    resolver = schema_registry().resolver()
    for entry in catalog().types.values():
        if entry.client_payload:
            schema = resolver.lookup(SCHEMA_BASE_URI + entry.client_payload).contents
            assert schema.get("additionalProperties") is False, entry.name


def test_every_feature_is_described() -> None:
    spec = catalog()
    for entry in spec.types.values():
        assert entry.feature in spec.features, entry.name


def test_error_payload_enum_is_the_error_code_registry() -> None:
    schema = load_json("payloads/error.schema.json")
    assert schema["properties"]["code"]["enum"] == list(catalog().error_codes)


def test_error_registry_has_the_protocol_codes() -> None:
    required = {
        "invalid_json",
        "invalid_envelope",
        "unknown_type",
        "invalid_payload",
        "unsupported_version",
        "unsupported_frame",
        "message_too_large",
        "unauthorized",
        "forbidden",
        "not_found",
        "conflict",
        "rate_limited",
        "internal_error",
    }
    assert required <= set(catalog().error_codes)


def test_close_codes_are_rfc6455_or_private_range() -> None:
    for close in catalog().close_codes.values():
        assert close.code in (1000, 1001, 1007, 1008, 1009, 1011) or 4000 <= close.code <= 4999


def test_role_table_is_cumulative() -> None:
    roles = catalog().roles
    assert roles["user"] <= roles["moderator"] <= roles["admin"]
    for permissions in roles.values():
        assert "websocket:connect" in permissions
        assert permissions <= set(catalog().permissions)
