"""Authorization: effective permissions are the role table's plus the token's own.

The role-table check is generated from ``roles.json`` (via ``rep_spec``): for every
built-in role and every permission the kit can observe from outside, a user holding only
that role must be allowed exactly when the table grants the permission.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from conformance import spec, steps
from conformance.client import Client, json_text, summarize
from conformance.harness import Harness
from rep_spec import catalog

FORBIDDEN = spec.error_code("forbidden")
CONNECT = spec.permission("websocket:connect")
JOIN = spec.permission("room:join")
JOIN_PRIVATE = spec.permission("room:join_private")


@dataclass(frozen=True)
class Probe:
    """An action that needs exactly one permission: send it, name what success looks like."""

    features: tuple[str, ...]
    act: Callable[[Harness, Client], tuple[str, str]]


def _fixture(rep: Harness, name: str) -> str:
    fixtures = rep.target.fixtures
    value = {
        "private_room": fixtures.private_room,
        "moderated_room": fixtures.moderated_room,
        "invite_only_room": fixtures.invite_only_room.id if fixtures.invite_only_room else None,
        "stream": fixtures.stream,
    }[name]
    if value is None:
        pytest.skip(f"the target file names no fixtures.{name}")
    return value


def _join(room: Callable[[Harness], str]) -> Callable[[Harness, Client], tuple[str, str]]:
    def act(rep: Harness, client: Client) -> tuple[str, str]:
        return client.send("room_join", {"roomId": room(rep)}), "room_join_response"

    return act


def _moderated_chat(rep: Harness, client: Client) -> tuple[str, str]:
    room = _fixture(rep, "moderated_room")
    steps.join(client, room)
    return client.send("chat_message", {"roomId": room, "content": "hi"}), "chat_message"


def _chat(rep: Harness, client: Client) -> tuple[str, str]:
    room = steps.populated_room(rep, client)
    return client.send("chat_message", {"roomId": room, "content": "hi"}), "chat_message"


def _announce(rep: Harness, client: Client) -> tuple[str, str]:
    room = steps.populated_room(rep, client)
    return client.send("notification", {"message": "hi", "roomId": room}), "notification"


def _broadcast(rep: Harness, client: Client) -> tuple[str, str]:
    return client.send("notification", {"message": "hi all"}), "notification"


def _sync(rep: Harness, client: Client) -> tuple[str, str]:
    return client.send("data_sync", {"collection": rep.name("col")}), "data_sync_response"


def _create(rep: Harness, client: Client) -> tuple[str, str]:
    return client.send("data_create", {"collection": rep.name("col"), "data": {}}), "data_create"


def _subscribe(rep: Harness, client: Client) -> tuple[str, str]:
    stream = _fixture(rep, "stream")
    return client.send("stream_subscribe", {"streamId": stream}), "stream_subscribe_response"


PROBES = {
    spec.permission("room:join"): Probe(("rooms",), _join(lambda rep: rep.name("room"))),
    spec.permission("room:join_private"): Probe(
        ("rooms",), _join(lambda rep: _fixture(rep, "private_room"))
    ),
    spec.permission("room:join_invited"): Probe(
        ("rooms",), _join(lambda rep: _fixture(rep, "invite_only_room"))
    ),
    spec.permission("room:moderate"): Probe(("rooms", "chat"), _moderated_chat),
    spec.permission("message:send"): Probe(("rooms", "chat"), _chat),
    spec.permission("message:announce"): Probe(("rooms", "notifications"), _announce),
    spec.permission("message:broadcast"): Probe(("notifications",), _broadcast),
    spec.permission("data:read"): Probe(("data",), _sync),
    spec.permission("data:write"): Probe(("data",), _create),
    spec.permission("stream:subscribe"): Probe(("streams",), _subscribe),
}

#: Every role of the table paired with every permission a probe can observe.
ROLE_CASES = [(role, permission) for role in catalog().roles for permission in PROBES]


@pytest.mark.requirements("AUTHZ-001", "AUTHZ-002")
@pytest.mark.parametrize(("role", "permission"), ROLE_CASES)
def test_each_role_grants_exactly_the_permissions_of_the_role_table(
    rep: Harness, role: str, permission: str
) -> None:
    """A user with only this role may do what needs the permission iff the table says so."""
    probe = PROBES[permission]
    for feature in probe.features:
        rep.require_feature(feature)
    granted = permission in catalog().roles[role]
    client = rep.connect(label=role.replace(":", "_"), roles=(role,))
    sent, success = probe.act(rep, client)
    answer = client.expect((success, "error"), correlation_id=sent, requirement="AUTHZ-001")
    allowed = answer.get("type") == success
    if allowed == granted:
        if not allowed and answer["payload"].get("code") != FORBIDDEN:
            raise rep.fail(
                "AUTHZ-002",
                expected=f"an error with code {json_text(FORBIDDEN)}",
                received=summarize(answer),
            )
        return
    verdict = "grants" if granted else "does not grant"
    raise rep.fail(
        "AUTHZ-001",
        sent=f"an action needing {permission} by a user with roles [{role}]",
        expected=f"{'success' if granted else 'forbidden'}: the role table {verdict} "
        f"{permission} to {role}",
        received=summarize(answer),
    )


@pytest.mark.requirements("AUTHZ-001")
def test_the_permissions_claim_alone_grants_permissions(rep: Harness) -> None:
    """No roles at all: the permissions claim (websocket:connect, room:join) is enough."""
    rep.require_feature("rooms")
    client = rep.connect(roles=(), permissions=(CONNECT, JOIN))
    steps.join(client, rep.name("room"), requirement="AUTHZ-001")


@pytest.mark.requirements("AUTHZ-001")
def test_the_permissions_claim_adds_to_the_roles(rep: Harness) -> None:
    """A user with role user plus room:join_private in the claim joins the private room."""
    rep.require_feature("rooms")
    room = _fixture(rep, "private_room")
    if JOIN_PRIVATE in catalog().roles["user"]:
        pytest.skip("the role table already grants room:join_private to user")
    client = rep.connect(roles=("user",), permissions=(JOIN_PRIVATE,))
    steps.join(client, room, requirement="AUTHZ-001")


@pytest.mark.requirements("AUTHZ-002", "ERR-004")
def test_a_forbidden_join_changes_nothing(rep: Harness) -> None:
    """A plain user is refused the private room: its member hears nothing, no membership."""
    rep.require_feature("rooms")
    room = _fixture(rep, "private_room")
    insider = rep.connect(label="insider", roles=("admin",))
    steps.join(insider, room)
    outsider = rep.connect(label="outsider")
    sent = outsider.send("room_join", {"roomId": room})
    outsider.expect_refusal(FORBIDDEN, of=sent, requirement="AUTHZ-002")
    insider.expect_none(
        "user_join",
        where=steps.names_client(outsider),
        requirement="AUTHZ-002",
        description="user_join for the refused user",
    )
    leave = outsider.send("room_leave", {"roomId": room})
    outsider.expect_refusal(spec.error_code("not_found"), of=leave, requirement="AUTHZ-002")
