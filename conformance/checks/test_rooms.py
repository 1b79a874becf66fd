"""Rooms: creation on first join, member lists, join/leave notices, configured room rules."""

from __future__ import annotations

from typing import Any

import pytest

from conformance import spec, steps
from conformance.client import Client, Message, json_text
from conformance.harness import Harness

FORBIDDEN = spec.error_code("forbidden")
NOT_FOUND = spec.error_code("not_found")
JOIN = spec.permission("room:join")
JOIN_PRIVATE = spec.permission("room:join_private")
JOIN_INVITED = spec.permission("room:join_invited")
CONNECT = spec.permission("websocket:connect")


def listed(response: Message, client: Client) -> dict[str, Any] | None:
    for member in steps.members_of(response):
        if member.get("clientId") == client.client_id:
            return member
    return None


@pytest.mark.requirements("ROOM-002")
def test_an_unconfigured_room_is_created_public_by_its_first_join(rep: Harness) -> None:
    """A fresh room id: the first join creates it, as a public room anyone may join."""
    first, second = rep.connect(label="first"), rep.connect(label="second")
    room = rep.name("fresh")
    response = steps.join(first, room, requirement="ROOM-002")
    info = response["payload"].get("room")
    if isinstance(info, dict) and info.get("private"):
        raise rep.fail("ROOM-002", expected="a public room", received=f"room = {json_text(info)}")
    steps.join(second, room, requirement="ROOM-002")


@pytest.mark.requirements("ROOM-003")
def test_the_join_response_lists_every_member_with_status(rep: Harness) -> None:
    """The second joiner's room_join_response lists both members: userId, clientId, status."""
    first, second = rep.connect(label="first"), rep.connect(label="second")
    room = steps.populated_room(rep, first)
    response = steps.join(second, room)
    for client in (first, second):
        member = listed(response, client)
        if member is None or member.get("userId") != client.user_id or "status" not in member:
            raise rep.fail(
                "ROOM-003",
                expected=f"members to include {client.label} with userId "
                f"{json_text(client.user_id)}, "
                f"clientId {json_text(client.client_id)} and a status",
                received=f"members = {steps.members_of(response)}",
            )


@pytest.mark.requirements("ROOM-004")
def test_others_are_told_of_a_join_and_the_joiner_is_not(rep: Harness) -> None:
    """The existing member gets user_join naming the joiner; the joiner gets none."""
    member, joiner = rep.connect(label="member"), rep.connect(label="joiner")
    room = steps.populated_room(rep, member)
    steps.join(joiner, room)
    notice = member.expect("user_join", where=steps.names_client(joiner), requirement="ROOM-004")
    payload = notice["payload"]
    if (payload.get("roomId"), payload.get("userId")) != (room, joiner.user_id):
        raise rep.fail(
            "ROOM-004",
            expected=f"user_join with roomId {json_text(room)} "
            f"and userId {json_text(joiner.user_id)}",
            received=f"payload {json_text(payload)}",
        )
    joiner.sync()
    joiner.expect_none("user_join", within=0.0, description="user_join about its own join")


@pytest.mark.requirements("ROOM-005", "MSG-003")
def test_leaving_is_confirmed_and_announced_with_reason_left(rep: Harness) -> None:
    """room_leave gets room_leave_response; the remaining member gets user_leave (left)."""
    stayer, leaver = rep.connect(label="stayer"), rep.connect(label="leaver")
    room = steps.populated_room(rep, stayer, leaver)
    response = steps.request(leaver, "room_leave", {"roomId": room}, requirement="ROOM-005")
    if response["payload"].get("roomId") != room:
        raise rep.fail(
            "ROOM-005",
            expected=f"roomId {json_text(room)}",
            received=json_text(response["payload"]),
        )
    notice = stayer.expect("user_leave", where=steps.names_client(leaver), requirement="ROOM-005")
    if notice["payload"].get("reason") != spec.LEAVE_REASON_LEFT:
        raise rep.fail(
            "ROOM-005",
            expected=f"user_leave with reason {json_text(spec.LEAVE_REASON_LEFT)}",
            received=f"payload {json_text(notice['payload'])}",
        )


@pytest.mark.requirements("ROOM-006")
def test_a_dropped_member_is_announced_with_reason_disconnected(rep: Harness) -> None:
    """The connection of a member drops: the others get user_leave (disconnected)."""
    stayer, dropper = rep.connect(label="stayer"), rep.connect(label="dropper")
    steps.populated_room(rep, stayer, dropper)
    dropper.drop()
    notice = stayer.expect("user_leave", where=steps.names_client(dropper), requirement="ROOM-006")
    if notice["payload"].get("reason") != spec.LEAVE_REASON_DISCONNECTED:
        raise rep.fail(
            "ROOM-006",
            expected=f"reason {json_text(spec.LEAVE_REASON_DISCONNECTED)}",
            received=f"payload {json_text(notice['payload'])}",
        )


@pytest.mark.requirements("ROOM-007")
def test_joining_again_succeeds_without_a_second_notice(rep: Harness) -> None:
    """A member joins the same room again: a room_join_response, and no new user_join."""
    member, joiner = rep.connect(label="member"), rep.connect(label="joiner")
    room = steps.populated_room(rep, member, joiner)
    steps.join(joiner, room, requirement="ROOM-007")
    joiner.sync()
    member.expect_none(
        "user_join", where=steps.names_client(joiner), description="second user_join"
    )


@pytest.mark.requirements("ROOM-008")
@pytest.mark.parametrize("room_exists", [False, True], ids=["no-such-room", "not-a-member"])
def test_leaving_a_room_one_is_not_in_is_not_found(rep: Harness, room_exists: bool) -> None:
    """room_leave for a room the client is not a member of: not_found."""
    client = rep.connect()
    room = steps.populated_room(rep, rep.connect(label="other")) if room_exists else rep.name("x")
    sent = client.send("room_leave", {"roomId": room})
    client.expect_refusal(NOT_FOUND, of=sent, requirement="ROOM-008")


@pytest.mark.requirements("ROOM-010", "AUTHZ-002")
def test_joining_needs_room_join(rep: Harness) -> None:
    """A user whose token grants websocket:connect but not room:join cannot join."""
    member = rep.connect(label="member")
    room = steps.populated_room(rep, member)
    client = rep.connect(roles=(), permissions=(CONNECT,))
    sent = client.send("room_join", {"roomId": room})
    client.expect_refusal(FORBIDDEN, of=sent, requirement="ROOM-010")
    member.expect_none("user_join", requirement="AUTHZ-002", description="user_join for it")


def private_room(rep: Harness) -> str:
    room = rep.target.fixtures.private_room
    if room is None:
        pytest.skip("the target file names no fixtures.private_room")
    return room


@pytest.mark.requirements("ROOM-010")
def test_joining_a_private_room_needs_room_join_private(rep: Harness) -> None:
    """A plain user is refused the private room; a user granted room:join_private joins."""
    room = private_room(rep)
    plain = rep.connect(label="plain")
    sent = plain.send("room_join", {"roomId": room})
    plain.expect_refusal(FORBIDDEN, of=sent, requirement="ROOM-010")
    granted = rep.connect(label="granted", permissions=(JOIN_PRIVATE,))
    steps.join(granted, room, requirement="ROOM-010")


@pytest.mark.requirements("ROOM-011")
@pytest.mark.parametrize("password", [None, "wrong"], ids=["missing", "wrong"])
def test_a_password_room_refuses_a_missing_or_wrong_password(
    rep: Harness, password: str | None
) -> None:
    """No password, or the wrong one: forbidden. The right one: joined."""
    fixture = rep.target.fixtures.password_room
    if fixture is None:
        pytest.skip("the target file names no fixtures.password_room")
    client = rep.connect()
    payload: dict[str, str] = {"roomId": fixture.id}
    if password is not None:
        payload["password"] = f"{password}-{fixture.password}"
    sent = client.send("room_join", payload)
    client.expect_refusal(FORBIDDEN, of=sent, requirement="ROOM-011")
    steps.join(client, fixture.id, password=fixture.password, requirement="ROOM-011")


@pytest.mark.requirements("ROOM-012")
def test_an_invite_only_room_admits_the_invited_and_room_join_invited(rep: Harness) -> None:
    """Refused for a plain user; joined with room:join_invited, and by an invited user."""
    fixture = rep.target.fixtures.invite_only_room
    if fixture is None:
        pytest.skip("the target file names no fixtures.invite_only_room")
    plain = rep.connect(label="plain")
    sent = plain.send("room_join", {"roomId": fixture.id})
    plain.expect_refusal(FORBIDDEN, of=sent, requirement="ROOM-012")
    granted = rep.connect(label="granted", permissions=(JOIN_INVITED,))
    steps.join(granted, fixture.id, requirement="ROOM-012")
    if fixture.invited_user is None:
        rep.record("ROOM-012 invitation list", "not exercised: no invited_user in the target")
        return
    invited = rep.connect(fixture.invited_user, label="invited")
    steps.join(invited, fixture.id, requirement="ROOM-012")
