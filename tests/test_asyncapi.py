"""schemas/asyncapi.yaml: it describes every registered message type with the catalogue's payload
schemas and directions, and the official AsyncAPI parser (tools/asyncapi) accepts it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

from rep_spec import catalog, schema_dir

REPO = Path(__file__).resolve().parents[1]
ASYNCAPI = schema_dir() / "asyncapi.yaml"
TOOL = REPO / "tools" / "asyncapi"
VALIDATOR = TOOL / "validate.mjs"
NPM_CI_TIMEOUT = 300
NODE_TIMEOUT = 120

# The one JSON Schema format the parser validates (see the comment at the top of the document).
SCHEMA_FORMAT = "application/schema+json;version=draft-07"
# SSE-004 and SSE-008: /events carries the events of streams, and an error when a replay is
# impossible; every other server message belongs to the WebSocket connection.
SSE_TYPES = {"stream_event", "error"}

# Keywords whose meaning draft-07 does not share with draft 2020-12.
DRAFT_2020_ONLY = {
    "prefixItems",
    "unevaluatedProperties",
    "unevaluatedItems",
    "dependentRequired",
    "dependentSchemas",
    "minContains",
    "maxContains",
    "$dynamicRef",
    "$dynamicAnchor",
    "$recursiveRef",
    "$recursiveAnchor",
    "$anchor",
    "$vocabulary",
}
# Draft-07 ignores every sibling of $ref; these are annotations, so ignoring them changes nothing.
ANNOTATIONS = {"description", "title", "$comment", "examples", "default", "deprecated"}
SCHEMA_MAPS = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
SCHEMA_LISTS = {"allOf", "anyOf", "oneOf", "prefixItems"}
SCHEMA_VALUES = {
    "items",
    "additionalItems",
    "additionalProperties",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
    "unevaluatedItems",
    "unevaluatedProperties",
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def pointer(document: dict[str, Any], ref: str) -> Any:
    """Follow a local reference such as ``#/channels/ws/messages/ping``."""
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def component_key(document: dict[str, Any], ref: str) -> str:
    """The key under components/messages that a channel or operation message ends up at."""
    while not ref.startswith("#/components/messages/"):
        ref = pointer(document, ref)["$ref"]
    key = ref.removeprefix("#/components/messages/")
    assert key in document["components"]["messages"], ref
    return key


def payload_ref(message: dict[str, Any]) -> str:
    ref = message["payload"]["schema"]["$ref"]
    assert isinstance(ref, str)
    return ref


def operation_messages(document: dict[str, Any], address: str, action: str) -> dict[str, str]:
    """Message name -> payload $ref, for the one operation of that action on that channel."""
    found = [
        op
        for op in document["operations"].values()
        if pointer(document, op["channel"]["$ref"])["address"] == address and op["action"] == action
    ]
    assert len(found) == 1, f"expected one {action} operation on {address}, found {len(found)}"
    (operation,) = found
    channel_ref = operation["channel"]["$ref"]
    result: dict[str, str] = {}
    for item in operation["messages"]:
        assert item["$ref"].startswith(channel_ref + "/messages/"), (
            f"{item['$ref']} is not a message of the operation's channel {channel_ref}"
        )
        message = document["components"]["messages"][component_key(document, item["$ref"])]
        assert message["name"] not in result, f"{message['name']} twice in {action} {address}"
        result[message["name"]] = payload_ref(message)
    return result


def resolve_payload_ref(ref: str) -> tuple[Path, Any]:
    """Resolve a payload $ref (``./payloads/x.schema.json#/json/pointer``) against schemas/."""
    assert ref.startswith("./"), f"{ref}: payload schemas are referenced relative to schemas/"
    relative, _, fragment = ref.partition("#")
    path = (schema_dir() / relative).resolve()
    assert path.is_file(), f"{ref}: no such schema file"
    node: Any = json.loads(path.read_text(encoding="utf-8"))
    if fragment:
        for part in fragment.removeprefix("/").split("/"):
            assert isinstance(node, dict) and part in node, f"{ref}: fragment does not resolve"
            node = node[part]
    return path, node


def subschemas(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for keyword, value in schema.items():
        if keyword in SCHEMA_MAPS and isinstance(value, dict):
            yield from (v for v in value.values() if isinstance(v, dict))
        elif keyword in SCHEMA_LISTS and isinstance(value, list):
            yield from (v for v in value if isinstance(v, dict))
        elif keyword in SCHEMA_VALUES and isinstance(value, dict):
            yield value


def walk_dicts(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk_dicts(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_dicts(item)


def draft_07_differences(schema: dict[str, Any], where: str) -> Iterator[str]:
    """Places where reading ``schema`` as draft-07 would not mean what draft 2020-12 means."""
    for keyword in DRAFT_2020_ONLY & schema.keys():
        yield f"{where}: {keyword} exists only in draft 2020-12"
    if isinstance(schema.get("items"), list):
        yield f"{where}: items as an array means a tuple in draft-07"
    if "$ref" in schema:
        ignored = {k for k in schema if k != "$ref" and k not in ANNOTATIONS}
        ignored = {k for k in ignored if not k.startswith("x-")}
        if ignored:
            yield f"{where}: draft-07 ignores {sorted(ignored)} beside $ref"
    for child in subschemas(schema):
        yield from draft_07_differences(child, where)


# --- the document, read as data ---------------------------------------------------------------


def test_document_header(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "REP — Realtime Envelope Protocol"
    assert document["info"]["version"] == "1.0.0"
    assert document["info"]["description"].strip()
    ws_servers = [s for s in document["servers"].values() if s["protocol"] == "ws"]
    assert [s["host"] for s in ws_servers] == ["127.0.0.1:8765"]
    addresses = {c["address"] for c in document["channels"].values()}
    assert addresses == {"/ws", "/events"}


def test_every_registered_type_has_a_message_and_no_other(document: dict[str, Any]) -> None:
    names = {m["name"] for m in document["components"]["messages"].values()}
    types = set(catalog().types)
    assert types - names == set(), "registered types without a message"
    assert names - types == set(), "messages that are not registered types"


def test_message_tags_are_the_catalogue_group_and_feature(document: dict[str, Any]) -> None:
    for key, message in document["components"]["messages"].items():
        entry = catalog().types[message["name"]]
        tags = [tag["name"] for tag in message["tags"]]
        assert tags == [entry.group, f"feature:{entry.feature}"], key


def test_every_message_references_an_existing_payload_schema(document: dict[str, Any]) -> None:
    messages = document["components"]["messages"]
    assert messages
    for key, message in messages.items():
        payload = message["payload"]
        assert payload.keys() == {"schemaFormat", "schema"}, key
        assert payload["schemaFormat"] == SCHEMA_FORMAT, key
        assert payload["schema"].keys() == {"$ref"}, f"{key}: the schema must be referenced"
        _, schema = resolve_payload_ref(payload_ref(message))
        assert isinstance(schema, dict) and schema.get("type") == "object", key


def test_websocket_receive_is_what_clients_may_send(document: dict[str, Any]) -> None:
    received = operation_messages(document, "/ws", "receive")
    expected = {t.name: f"./{t.client_payload}" for t in catalog().types_for("client")}
    assert received == expected


def test_websocket_send_is_what_servers_may_send(document: dict[str, Any]) -> None:
    sent = operation_messages(document, "/ws", "send")
    expected = {t.name: f"./{t.server_payload}" for t in catalog().types_for("server")}
    assert sent == expected


def test_sse_send_is_the_stream_events_and_errors(document: dict[str, Any]) -> None:
    sent = operation_messages(document, "/events", "send")
    server_payloads = {t.name: f"./{t.server_payload}" for t in catalog().types_for("server")}
    assert set(sent) == SSE_TYPES
    assert sent == {name: server_payloads[name] for name in SSE_TYPES}
    assert not any(
        op["action"] == "receive"
        for op in document["operations"].values()
        if pointer(document, op["channel"]["$ref"])["address"] == "/events"
    ), "clients send nothing over Server-Sent Events"


def test_every_channel_message_is_used_by_an_operation(document: dict[str, Any]) -> None:
    used = {item["$ref"] for op in document["operations"].values() for item in op["messages"]}
    for channel_key, channel in document["channels"].items():
        for key in channel["messages"]:
            assert f"#/channels/{channel_key}/messages/{key}" in used, f"{channel_key}/{key}"


def test_referenced_schemas_mean_the_same_under_draft_07(document: dict[str, Any]) -> None:
    """The document declares draft-07 for 2020-12 schemas; that is only honest while the two
    drafts agree on every schema it reaches, including the files those schemas reference."""
    pending = [
        resolve_payload_ref(payload_ref(m))[0] for m in document["components"]["messages"].values()
    ]
    seen: set[Path] = set()
    problems: list[str] = []
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        schema = json.loads(path.read_text(encoding="utf-8"))
        where = str(path.relative_to(schema_dir()))
        problems.extend(draft_07_differences(schema, where))
        for node in walk_dicts(schema):
            target = node.get("$ref")
            if isinstance(target, str) and not target.startswith("#"):
                pending.append((path.parent / target.partition("#")[0]).resolve())
    assert len(seen) > len(catalog().types) // 2
    assert problems == []


# --- the official AsyncAPI parser --------------------------------------------------------------


def locked_parser_version() -> str:
    lock = json.loads((TOOL / "package-lock.json").read_text(encoding="utf-8"))
    version = lock["packages"]["node_modules/@asyncapi/parser"]["version"]
    assert isinstance(version, str)
    return version


def installed_parser_version() -> str | None:
    manifest = TOOL / "node_modules" / "@asyncapi" / "parser" / "package.json"
    if not manifest.is_file():
        return None
    version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
    return version if isinstance(version, str) else None


def missing_tool(reason: str) -> NoReturn:
    if os.environ.get("REP_REQUIRE_ALL") == "1":
        pytest.fail(f"{reason} (REP_REQUIRE_ALL=1 requires the AsyncAPI validator to run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node() -> str:
    """The node executable, with tools/asyncapi's dependencies installed from the lock file
    (``npm ci`` when they are missing or not the locked version)."""
    node = shutil.which("node")
    if node is None:
        missing_tool("node is not on PATH: cannot run the AsyncAPI validator")
    if installed_parser_version() != locked_parser_version():
        npm = shutil.which("npm")
        if npm is None:
            missing_tool("npm is not on PATH: cannot install the AsyncAPI validator")
        try:
            done = subprocess.run(
                [npm, "ci", "--prefix", str(TOOL), "--no-audit", "--no-fund"],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=NPM_CI_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"npm ci --prefix {TOOL} took more than {NPM_CI_TIMEOUT} s")
        if done.returncode != 0:
            pytest.fail(f"npm ci --prefix {TOOL} failed:\n{done.stdout}\n{done.stderr}")
    return node


def validate(node: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node, str(VALIDATOR), str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
        check=False,
    )


@pytest.mark.timeout(NPM_CI_TIMEOUT + NODE_TIMEOUT)
def test_official_parser_accepts_the_document(node: str) -> None:
    done = validate(node, ASYNCAPI)
    assert done.returncode == 0, f"the AsyncAPI parser rejected {ASYNCAPI}:\n{done.stderr}"
    names = json.loads(done.stdout)
    assert names == sorted(set(names))
    assert set(names) == set(catalog().types)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def break_action(schemas: Path) -> None:
    edit(schemas / "asyncapi.yaml", "action: receive", "action: publish")


def break_payload_ref(schemas: Path) -> None:
    edit(schemas / "asyncapi.yaml", "./payloads/ping.schema.json", "./payloads/missing.json")


def break_payload_schema(schemas: Path) -> None:
    path = schemas / "payloads" / "room_leave.schema.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema["minProperties"] = -1
    path.write_text(json.dumps(schema), encoding="utf-8")


BREAKAGES = {
    "action": (break_action, '"action" property'),
    "payload_ref": (break_payload_ref, "missing.json"),
    "payload_schema": (break_payload_schema, '"minProperties" property must be >= 0'),
}


@pytest.mark.timeout(NPM_CI_TIMEOUT + NODE_TIMEOUT)
@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_official_parser_rejects_a_broken_copy(node: str, tmp_path: Path, breakage: str) -> None:
    """The validator is not a rubber stamp: an error in the document, in a $ref or in a
    referenced payload schema makes it exit non-zero and name the problem."""
    schemas = tmp_path / "schemas"
    shutil.copytree(schema_dir(), schemas)
    breaker, expected = BREAKAGES[breakage]
    breaker(schemas)
    done = validate(node, schemas / "asyncapi.yaml")
    assert done.returncode == 1, done.stdout + done.stderr
    assert expected in done.stderr
    assert done.stdout == ""
