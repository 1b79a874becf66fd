"""Message catalogue: unknown and misdirected types, responses, copies, unadvertised features.

The types checked here come from the catalogue (``rep_spec.catalog()``): a type added to
the registry is checked without editing this module, or the check says which scenario
the kit still lacks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conformance import spec, steps
from conformance.client import Client, json_text
from conformance.harness import Harness, Inconclusive
from rep_spec import catalog

UNKNOWN_TYPE = spec.error_code("unknown_type")
INVALID_DIRECTION = spec.error_code("invalid_direction")

Scenario = Callable[[Harness, Client], dict[str, Any]]


def _stream(rep: Harness, client: Client) -> dict[str, Any]:
    return {"streamId": steps.require_stream(rep)}


def _subscribed(rep: Harness, client: Client) -> dict[str, Any]:
    payload = _stream(rep, client)
    steps.request(client, "stream_subscribe", payload)
    return payload


def _joined(rep: Harness, client: Client) -> dict[str, Any]:
    room = rep.name("room")
    steps.join(client, room)
    return {"roomId": room}


def _record(rep: Harness, client: Client) -> dict[str, Any]:
    collection, record = rep.name("col"), rep.name("rec")
    steps.record_change(
        client,
        "data_create",
        {"collection": collection, "recordId": record, "data": {"n": 1}},
        requirement="DATA-002",
    )
    return {"collection": collection, "recordId": record}


#: How to make a successful request of each type that has a response, from a fresh client.
REQUESTS: dict[str, Scenario] = {
    "ping": lambda rep, client: {},
    "disconnect": lambda rep, client: {"reason": "done"},
    "room_join": lambda rep, client: {"roomId": rep.name("room")},
    "room_leave": _joined,
    "data_sync": lambda rep, client: {"collection": rep.name("col")},
    "stream_subscribe": _stream,
    "stream_unsubscribe": _subscribed,
}

#: How to make a successful message of each type whose answer is a copy.
COPIES: dict[str, Scenario] = {
    "chat_message": lambda rep, client: {**_joined(rep, client), "content": "hello"},
    "status_update": lambda rep, client: {"status": "away"},
    "notification": lambda rep, client: {**_joined(rep, client), "message": "notice"},
    "data_create": lambda rep, client: {"collection": rep.name("col"), "data": {"n": 1}},
    "data_update": lambda rep, client: {**_record(rep, client), "data": {"n": 2}},
    "data_delete": _record,
}

#: Roles the sender of each copy type needs (announcing to a room is an admin right).
COPY_ROLES = {"notification": ("admin",)}


def _types(kind: str) -> list[str]:
    return [t.name for t in catalog().types_for("client") if t.answer_kind == kind]


@pytest.mark.requirements("MSG-001", "ERR-003")
def test_an_unregistered_type_is_answered_with_unknown_type(rep: Harness) -> None:
    """A well-formed envelope whose type is in no registry gets unknown_type."""
    client = rep.connect()
    sent = client.send("no_such_message_type")
    client.expect_refusal(UNKNOWN_TYPE, of=sent, requirement="MSG-001")


@pytest.mark.requirements("MSG-002", "ERR-003")
@pytest.mark.parametrize("type_name", spec.server_only_types())
def test_a_server_only_type_sent_by_a_client_is_answered_with_invalid_direction(
    rep: Harness, type_name: str
) -> None:
    """Types only servers send (pong, auth, user_join, ...) are refused from a client."""
    rep.require_feature(catalog().types[type_name].feature)
    client = rep.connect()
    sent = client.send(type_name, {})
    client.expect_refusal(INVALID_DIRECTION, of=sent, requirement="MSG-002")


@pytest.mark.requirements("MSG-003")
@pytest.mark.parametrize("type_name", _types("response"))
def test_a_successful_request_gets_exactly_one_correlated_response(
    rep: Harness, type_name: str
) -> None:
    """Each request type of the catalogue: one response of its registered type."""
    rep.require_feature(catalog().types[type_name].feature)
    if type_name not in REQUESTS:
        pytest.fail(f"the kit has no request scenario for {type_name}")
    client = rep.connect(roles=("admin",))
    payload = REQUESTS[type_name](rep, client)
    response = steps.answer_type(type_name)
    sent = client.send(type_name, payload)
    client.expect(response, correlation_id=sent, requirement="MSG-003")
    if type_name == "disconnect":
        client.expect_none(response, correlation_id=sent, within=rep.timeouts.silence)
        return
    client.sync()
    client.expect_none(response, correlation_id=sent, within=0.0, description=f"second {response}")


@pytest.mark.requirements("MSG-004", "MSG-005")
@pytest.mark.parametrize("type_name", _types("copy"))
def test_the_sender_receives_one_copy_naming_it_as_sender(rep: Harness, type_name: str) -> None:
    """Each copy-answered type: the sender gets the copy, correlated, with metadata.sender."""
    rep.require_feature(catalog().types[type_name].feature)
    if type_name not in COPIES:
        pytest.fail(f"the kit has no scenario for {type_name}")
    client = rep.connect(roles=COPY_ROLES.get(type_name, ("user",)))
    payload = COPIES[type_name](rep, client)
    sent = client.send(type_name, payload)
    copy = steps.copy_of(client, type_name, sent)
    steps.check_sender(rep, copy, client)
    client.sync()
    client.expect_none(
        type_name,
        correlation_id=sent,
        within=0.0,
        requirement="MSG-004",
        description=f"second copy of the {type_name}",
    )


def _unadvertisable_features() -> list[str]:
    return sorted({t.feature for t in catalog().types_for("client")} - {"core"})


@pytest.mark.requirements("MSG-006")
@pytest.mark.parametrize("feature", _unadvertisable_features())
def test_types_of_an_unadvertised_feature_are_answered_with_unknown_type(
    rep: Harness, feature: str
) -> None:
    """When the welcome does not list a feature, its client types count as unknown, even
    with payloads the schemas accept (taken from the spec's test vectors)."""
    if rep.profile.advertises(feature):
        pytest.skip(f"the server advertises {feature}; nothing to check")
    if rep.profile.supports(feature):
        claim = "claims it" if rep.target.claimed_features else "claims no features"
        raise Inconclusive(
            ("AUTH-010",),
            f"the welcome does not list {json_text(feature)} but the target {claim}: "
            "whether the server serves it unadvertised cannot be judged",
        )
    client = rep.connect()
    for type_name in spec.client_types_of_feature(feature):
        sent = client.send(type_name, spec.valid_client_payload(type_name))
        client.expect_refusal(UNKNOWN_TYPE, of=sent, requirement="MSG-006")
