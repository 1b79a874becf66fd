"""The compiled schema backend agrees with jsonschema on every test vector.

``JsonschemaRsBackend`` answers "valid?" with jsonschema-rs and leaves every refusal to
jsonschema, so the server's answers could only change if the compiled validator accepted
something jsonschema refuses. Each vector is checked twice: the full classification
(code, pointer, requirement, message) of both backends is identical, and the compiled
validator's bare verdict on the envelope and payload schemas equals jsonschema's.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any, cast

import pytest

from rep_spec import MessageValidator, catalog, schema_dir
from rep_spec.catalog import Sender
from rep_spec.schema_files import schema_uri
from rep_spec.validation import (
    CLIENT_ENVELOPE,
    SERVER_ENVELOPE,
    JsonschemaBackend,
    JsonschemaRsBackend,
    default_backend,
)

pytest.importorskip("jsonschema_rs", reason="the compiled backend needs jsonschema-rs")

VECTOR_FILES = sorted((schema_dir() / "vectors").rglob("*.json"))
CASES = [
    pytest.param(doc["sender"], case, id=f"{path.parent.name}/{path.name}::{case['description']}")
    for path in VECTOR_FILES
    for doc in [json.loads(path.read_text(encoding="utf-8"))]
    for case in doc["tests"]
]
STAMP = "2026-11-26T10:00:00Z"


def _chat(**payload: Any) -> dict[str, Any]:
    return {"id": "e-1", "type": "chat_message", "timestamp": STAMP, "payload": payload}


#: Inputs where a compiled validator and jsonschema are most likely to part ways: formats,
#: regex anchors, numbers at the edges of what JSON and Rust represent.
EDGE_CASES = (
    [
        {"id": "e-1", "type": "ping", "timestamp": stamp, "payload": {}}
        for stamp in (
            "2026-02-30T10:00:00Z",
            "2026-02-28T24:00:00Z",
            "2026-12-31T23:59:60Z",
            "2026-11-26T10:00:00.123456789+14:00",
            "2026-11-26T10:00:00-00:00",
            "2026-11-26 10:00:00Z",
            "2026-11-26T10:00:00Z\n",
            "20261126T100000Z",
        )
    ]
    + [
        {"id": "e-1", "type": "ping\n", "timestamp": STAMP, "payload": {}},
        {"id": "e-1\n", "type": "ping", "timestamp": STAMP, "payload": {}},
        {"id": "e-1", "type": "ping", "timestamp": STAMP, "payload": {"timestamp": 10**30}},
        {"id": "e-1", "type": "ping", "timestamp": STAMP, "payload": {"timestamp": -(10**30)}},
        {"id": "e-1", "type": "ping", "timestamp": STAMP, "payload": {"timestamp": 1.0}},
        {"id": "e-1", "type": "ping", "timestamp": STAMP, "payload": {"timestamp": 1.5}},
        {"id": "e-1", "type": "ping", "timestamp": STAMP, "payload": {"timestamp": True}},
        {"id": "é" * 128, "type": "ping", "timestamp": STAMP, "payload": {}},
        {"id": "😀" * 129, "type": "ping", "timestamp": STAMP, "payload": {}},
        _chat(roomId="lobby\n", content="x"),
        _chat(roomId="lobby", content="x" * 1000),
        _chat(roomId="lobby", content="😀" * 1000),
    ]
    + [
        _chat(roomId="lobby", content="x", metadata={"attachments": [{"url": url, "name": "a"}]})
        for url in (
            "https://example.com/a b",
            "https://example.com/é",
            "https://exa mple.com/",
            "https://example.com/%zz",
            "https://[::1]/x",
            "https://example.com:99999/x",
            "HTTPS://EXAMPLE.COM/X",
            "https://user@example.com/x?q=1#f",
            "https:///x",
            "https://example.com/\u0000",
        )
    ]
)


@pytest.fixture(scope="module")
def reference() -> MessageValidator:
    return MessageValidator(backend=JsonschemaBackend())


@pytest.fixture(scope="module")
def compiled_backend() -> JsonschemaRsBackend:
    return JsonschemaRsBackend()


@pytest.fixture(scope="module")
def compiled(compiled_backend: JsonschemaRsBackend) -> MessageValidator:
    return MessageValidator(backend=compiled_backend)


def _classify(validator: MessageValidator, sender: str, data: Any) -> Any:
    data = copy.deepcopy(data)
    if sender == "client":
        return validator.check_client_message(data)
    return validator.check_server_message(data)


def _schemas(sender: str, data: Any) -> list[str]:
    """The envelope schema, and the payload schema when the type names one for the sender."""
    uris = [schema_uri(CLIENT_ENVELOPE if sender == "client" else SERVER_ENVELOPE)]
    message_type = catalog().types.get(data.get("type")) if isinstance(data, dict) else None
    relative = message_type.payload_schema(cast(Sender, sender)) if message_type else None
    if relative is not None and isinstance(data, dict) and "payload" in data:
        uris.append(schema_uri(relative))
    return uris


def _bare_verdicts(
    compiled_backend: JsonschemaRsBackend, sender: str, data: Any
) -> list[tuple[str, bool, bool]]:
    """(schema, jsonschema's verdict, jsonschema-rs's verdict) for each schema involved."""
    reference_backend = JsonschemaBackend()
    found = []
    for uri in _schemas(sender, data):
        instance = data if uri.endswith("envelope.schema.json") else data["payload"]
        slow: Callable[[Any], Any] = reference_backend.compile(uri)
        fast = compiled_backend.precheck(uri)
        found.append((uri, slow(copy.deepcopy(instance)) is None, fast(copy.deepcopy(instance))))
    return found


def test_the_compiled_backend_is_the_default() -> None:
    assert isinstance(default_backend(), JsonschemaRsBackend)
    assert isinstance(MessageValidator().backend, JsonschemaRsBackend)


@pytest.mark.parametrize(("sender", "case"), CASES)
def test_vector_classified_identically(
    sender: str, case: dict[str, Any], reference: MessageValidator, compiled: MessageValidator
) -> None:
    expected = _classify(reference, sender, case["data"])
    assert _classify(compiled, sender, case["data"]) == expected
    assert (expected is None) == case["valid"]


@pytest.mark.parametrize(("sender", "case"), CASES)
def test_vector_bare_verdicts_agree(
    sender: str, case: dict[str, Any], compiled_backend: JsonschemaRsBackend
) -> None:
    for uri, slow, fast in _bare_verdicts(compiled_backend, sender, case["data"]):
        assert fast == slow, f"{uri}: jsonschema says {slow}, jsonschema-rs says {fast}"


@pytest.mark.parametrize("data", EDGE_CASES, ids=lambda d: repr(d)[:80])
def test_edge_case_classified_identically(
    data: dict[str, Any], reference: MessageValidator, compiled: MessageValidator
) -> None:
    assert _classify(compiled, "client", data) == _classify(reference, "client", data)


@pytest.mark.parametrize("data", EDGE_CASES, ids=lambda d: repr(d)[:80])
def test_edge_case_is_never_accepted_by_the_compiled_validator_alone(
    data: dict[str, Any], compiled_backend: JsonschemaRsBackend
) -> None:
    """Stricter is harmless (jsonschema re-checks); laxer would change the server's answer."""
    for uri, slow, fast in _bare_verdicts(compiled_backend, "client", data):
        assert slow or not fast, f"{uri}: jsonschema-rs accepts what jsonschema refuses"
