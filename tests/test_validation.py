"""rep_spec.MessageValidator: the code it picks for each fault, in the ERR-011 order."""

from __future__ import annotations

from typing import Any

import pytest

from rep_spec import MessageValidator, decode_text_frame


@pytest.fixture(scope="module")
def validator() -> MessageValidator:
    return MessageValidator()


def chat(**overrides: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": "m-1",
        "type": "chat_message",
        "timestamp": "2026-11-26T10:00:00.123+01:00",
        "payload": {"roomId": "lobby", "content": "hello"},
    }
    message.update(overrides)
    return message


def test_valid_client_message_passes(validator: MessageValidator) -> None:
    assert validator.check_client_message(chat()) is None


@pytest.mark.parametrize(
    ("frame", "pointer"),
    [("{not json", None), ("[1, 2]", ""), ('"text"', ""), ("", None)],
)
def test_frames_that_are_not_objects_are_invalid_json(frame: str, pointer: str | None) -> None:
    _, problem = decode_text_frame(frame)
    assert problem is not None
    assert problem.code == "invalid_json"
    assert problem.pointer == pointer


@pytest.mark.parametrize(
    ("message", "code", "pointer"),
    [
        (chat(extra=1), "invalid_envelope", "/extra"),
        ({k: v for k, v in chat().items() if k != "timestamp"}, "invalid_envelope", "/timestamp"),
        (chat(timestamp="2026-11-26T10:00:00"), "invalid_envelope", "/timestamp"),
        (chat(id=""), "invalid_envelope", "/id"),
        (chat(payload=[]), "invalid_envelope", "/payload"),
        (chat(metadata={"source": "server"}), "invalid_envelope", "/metadata/source"),
        (chat(type="no_such_type"), "unknown_type", "/type"),
        (chat(type="pong"), "invalid_direction", "/type"),
        (chat(type="user_join"), "invalid_direction", "/type"),
        (chat(metadata={"version": "2.0"}), "unsupported_version", "/metadata/version"),
        (chat(payload={"roomId": "lobby"}), "invalid_payload", "/payload/content"),
        (
            chat(payload={"roomId": "lobby", "content": "x" * 1001}),
            "invalid_payload",
            "/payload/content",
        ),
        (
            chat(payload={"roomId": "lobby", "content": "x", "z": 1}),
            "invalid_payload",
            "/payload/z",
        ),
        (chat(payload={"roomId": "-bad", "content": "x"}), "invalid_payload", "/payload/roomId"),
    ],
)
def test_fault_is_classified_with_pointer(
    validator: MessageValidator, message: dict[str, Any], code: str, pointer: str
) -> None:
    problem = validator.check_client_message(message)
    assert problem is not None
    assert (problem.code, problem.pointer) == (code, pointer)
    assert problem.requirement is not None


def test_correlation_id_is_kept_when_readable(validator: MessageValidator) -> None:
    problem = validator.check_client_message(chat(extra=True))
    assert problem is not None and problem.correlation_id == "m-1"
    problem = validator.check_client_message(chat(id=7))
    assert problem is not None and problem.correlation_id is None


def test_envelope_is_checked_before_type(validator: MessageValidator) -> None:
    problem = validator.check_client_message(chat(type="no_such_type", extra=1))
    assert problem is not None and problem.code == "invalid_envelope"


def test_minor_versions_are_accepted(validator: MessageValidator) -> None:
    assert validator.check_client_message(chat(metadata={"version": "1.7"})) is None


def test_server_messages_need_server_metadata(validator: MessageValidator) -> None:
    pong = {
        "id": "s-1",
        "type": "pong",
        "timestamp": "2026-11-26T10:00:00Z",
        "payload": {"timestamp": 1},
    }
    problem = validator.check_server_message(pong)
    assert problem is not None and problem.code == "invalid_envelope"
    pong["metadata"] = {"version": "1.0", "source": "server", "correlation_id": "m-1"}
    assert validator.check_server_message(pong) is None


def test_server_copies_of_data_changes_need_version(validator: MessageValidator) -> None:
    copy = {
        "id": "s-2",
        "type": "data_update",
        "timestamp": "2026-11-26T10:00:00Z",
        "payload": {"collection": "todos", "recordId": "a", "data": {}},
        "metadata": {"version": "1.0", "source": "server"},
    }
    problem = validator.check_server_message(copy)
    assert problem is not None and problem.pointer == "/payload/version"


def test_error_message_is_bounded(validator: MessageValidator) -> None:
    problem = validator.check_client_message(chat(payload={"roomId": "r", "content": "x" * 50_000}))
    assert problem is not None and len(problem.message) < 400


@pytest.mark.parametrize("pointer", ["/type", "/timestamp", "/payload/roomId"])
def test_patterns_anchor_at_the_very_end_as_in_ecma_262(
    validator: MessageValidator, pointer: str
) -> None:
    """Python's ``$`` would accept a trailing newline; JSON Schema's does not."""
    message = chat()
    if pointer == "/type":
        message["type"] = "chat_message\n"
    elif pointer == "/timestamp":
        message["timestamp"] += "\n"
    else:
        message["payload"]["roomId"] = "lobby\n"
    problem = validator.check_client_message(message)
    assert problem is not None and problem.pointer == pointer
