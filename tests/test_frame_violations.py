"""Every schema violation of a server message is listed, each with its pointer.

``MessageValidator.server_message_violations`` (rep_spec) and ``FrameChecker.check`` (the
kit) list all faults of a message, so an implementer fixes them in one run; a valid message
still costs one compiled check per schema.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
import pytest

from conformance.frames import ConnectionState, FrameChecker
from rep_spec import MessageValidator, schema_dir
from rep_spec.validation import (
    JsonschemaBackend,
    JsonschemaRsBackend,
    SchemaCheck,
    Violation,
    ViolationsCheck,
)

WELCOME: dict[str, Any] = {
    "id": "s-1",
    "type": "auth",
    "timestamp": "2026-11-26T10:00:00Z",
    "payload": {
        "status": "connected",
        "clientId": "conn-7f3a",
        "userId": "alice",
        "roles": ["user"],
        "protocolVersion": "1.0",
        "heartbeatIntervalMs": 30000,
        "limits": {"maxMessageBytes": 65536, "rateLimit": {"windowMs": 60000, "maxMessages": 100}},
        "features": ["core", "rooms"],
    },
    "metadata": {"version": "1.0", "source": "server"},
}
FIVE_MISSING = ["clientId", "userId", "protocolVersion", "heartbeatIntervalMs", "features"]


def welcome(**overrides: Any) -> dict[str, Any]:
    message = copy.deepcopy(WELCOME)
    message.update(overrides)
    return message


def without(*names: str) -> dict[str, Any]:
    message = welcome()
    for name in names:
        del message["payload"][name]
    return message


def check(message: Any) -> list[tuple[tuple[str, ...], str]]:
    _, problems = FrameChecker().check(orjson.dumps(message).decode(), ConnectionState())
    return [(p.requirement_ids, p.text) for p in problems]


@pytest.fixture(scope="module")
def validator() -> MessageValidator:
    return MessageValidator()


@pytest.fixture(scope="module")
def reference() -> MessageValidator:
    return MessageValidator(backend=JsonschemaBackend())


def test_a_welcome_missing_five_members_yields_five_problems_with_pointers() -> None:
    problems = check(without(*FIVE_MISSING))
    assert [text for _, text in problems] == [
        f"the message does not match the server schemas at /payload/{name}: "
        f"'{name}' is a required property"
        for name in FIVE_MISSING
    ]
    assert {ids for ids, _ in problems} == {("AUTH-010", "ENV-013")}


def test_a_valid_message_yields_no_problem(validator: MessageValidator) -> None:
    assert check(welcome()) == []
    assert validator.server_message_violations(welcome()) == []


def test_a_wrong_type_in_the_envelope_still_yields_the_envelope_violations(
    validator: MessageValidator,
) -> None:
    message = without("userId")
    message["id"] = 7
    message["timestamp"] = "yesterday"
    message["extra"] = True
    found = validator.server_message_violations(message)
    assert [v.pointer for v in found] == ["/extra", "/id", "/timestamp", "/payload/userId"]
    assert [v.requirement for v in found] == ["ENV-001", "ENV-002", "ENV-004", "AUTH-010"]
    texts = [text for _, text in check(message)]
    assert texts[1] == (
        "the message does not match the server schemas at /id: 7 is not of type 'string'"
    )


def test_an_envelope_that_hides_the_type_yields_envelope_violations_only(
    validator: MessageValidator,
) -> None:
    message = without(*FIVE_MISSING)
    message["type"] = 3
    del message["metadata"]
    found = validator.server_message_violations(message)
    assert [(v.pointer, v.requirement) for v in found] == [
        ("/type", "ENV-003"),
        ("/metadata", "ENV-008"),
    ]


def test_several_extra_members_are_one_violation_each(validator: MessageValidator) -> None:
    found = validator.server_message_violations(welcome(b=1, a=2))
    assert [(v.pointer, v.message) for v in found] == [
        ("/b", "Additional properties are not allowed ('b' was unexpected)"),
        ("/a", "Additional properties are not allowed ('a' was unexpected)"),
    ]


def test_nested_members_point_at_their_own_object(validator: MessageValidator) -> None:
    message = welcome()
    message["payload"]["limits"] = {"rateLimit": {}}
    found = validator.server_message_violations(message)
    assert [v.pointer for v in found] == [
        "/payload/limits/maxMessageBytes",
        "/payload/limits/rateLimit/windowMs",
        "/payload/limits/rateLimit/maxMessages",
    ]


def test_one_value_refused_by_several_keywords_of_one_schema_is_one_violation(
    validator: MessageValidator,
) -> None:
    """A bad timestamp fails both ``format`` and ``pattern`` of the timestamp definition."""
    found = validator.server_message_violations(welcome(timestamp="2026-11-26T10:00:00"))
    assert [(v.pointer, v.message) for v in found] == [
        ("/timestamp", "'2026-11-26T10:00:00' is not a 'date-time'")
    ]


@pytest.mark.parametrize(
    ("change", "pointer", "requirement"),
    [
        ({"type": "no_such_type"}, "/type", "MSG-001"),
        ({"type": "ping", "payload": {}}, "/type", "MSG-002"),
        ({"metadata": {"version": "2.0", "source": "server"}}, "/metadata/version", "VER-002"),
    ],
)
def test_type_direction_and_version_faults_are_listed(
    validator: MessageValidator, change: dict[str, Any], pointer: str, requirement: str
) -> None:
    found = validator.server_message_violations(welcome(**change))
    assert [(v.pointer, v.requirement) for v in found] == [(pointer, requirement)]


def test_the_first_violation_api_is_unchanged(validator: MessageValidator) -> None:
    problem = validator.check_server_message(without(*FIVE_MISSING))
    assert problem is not None
    assert (problem.code, problem.pointer, problem.requirement) == (
        "invalid_payload",
        "/payload/clientId",
        "AUTH-010",
    )
    assert problem.message == "Invalid auth payload: 'clientId' is a required property"


def test_not_an_object_is_one_violation(validator: MessageValidator) -> None:
    assert validator.server_message_violations([]) == [
        Violation("", "A message must be a JSON object", "ERR-007")
    ]


class CountingBackend:
    """The reference backend, counting calls to its fast checks and to its full lists."""

    def __init__(self) -> None:
        self.inner = JsonschemaBackend()
        self.fast = 0
        self.full = 0

    def compile(self, uri: str) -> SchemaCheck:
        inner = self.inner.compile(uri)

        def check(instance: Any) -> Violation | None:
            self.fast += 1
            return inner(instance)

        return check

    def compile_all(self, uri: str) -> ViolationsCheck:
        inner = self.inner.compile_all(uri)

        def check_all(instance: Any) -> list[Violation]:
            self.full += 1
            return inner(instance)

        return check_all


def test_a_valid_message_costs_one_fast_check_per_schema() -> None:
    backend = CountingBackend()
    validator = MessageValidator(backend=backend)
    assert validator.server_message_violations(welcome()) == []
    assert (backend.fast, backend.full) == (2, 0)  # envelope and payload, no full list
    assert len(validator.server_message_violations(without(*FIVE_MISSING))) == 5
    assert (backend.fast, backend.full) == (4, 1)  # the list only for the refused payload


def test_a_backend_without_a_list_reports_its_one_violation() -> None:
    class FirstOnly:
        def __init__(self) -> None:
            self.inner = JsonschemaBackend()

        def compile(self, uri: str) -> SchemaCheck:
            return self.inner.compile(uri)

    validator = MessageValidator(backend=FirstOnly())
    assert [v.pointer for v in validator.server_message_violations(without(*FIVE_MISSING))] == [
        "/payload/clientId"
    ]
    assert validator.server_message_violations(welcome()) == []


def test_the_compiled_backend_never_asks_jsonschema_about_a_valid_message() -> None:
    pytest.importorskip("jsonschema_rs", reason="the compiled backend needs jsonschema-rs")
    backend = JsonschemaRsBackend()
    slow = CountingBackend()
    backend._fallback = slow  # type: ignore[assignment]  # counts jsonschema's work
    validator = MessageValidator(backend=backend)
    assert validator.server_message_violations(welcome()) == []
    assert (slow.fast, slow.full) == (0, 0)  # jsonschema-rs alone said "valid"
    assert len(validator.server_message_violations(without(*FIVE_MISSING))) == 5
    assert (slow.fast, slow.full) == (1, 1)  # the refused payload only


def _server_vectors() -> list[Any]:
    return [
        pytest.param(case["data"], case["valid"], id=f"{path.name}::{case['description']}")
        for path in sorted((schema_dir() / "vectors" / "server").glob("*.json"))
        for case in json.loads(path.read_text(encoding="utf-8"))["tests"]
    ]


@pytest.mark.parametrize(("data", "valid"), _server_vectors())
def test_both_backends_list_the_same_violations_for_every_server_vector(
    validator: MessageValidator, reference: MessageValidator, data: Any, valid: bool
) -> None:
    found = validator.server_message_violations(copy.deepcopy(data))
    assert found == reference.server_message_violations(copy.deepcopy(data))
    assert (found == []) == valid == (validator.check_server_message(copy.deepcopy(data)) is None)
