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
    room = rep.slug("fresh")
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
    room = steps.populated_room(rep, rep.connect(label="other")) if room_exists else rep.slug("x")
    sent = client.send("room_leave", {"roomId": room})
    client.expect_refusal(NOT_FOUND, of=sent, requirement="ROOM-008")


@pytest.mark.requirements("ROOM-010", "ROOM-015", "AUTHZ-002")
def test_joining_needs_room_join(rep: Harness) -> None:
    """A user whose token grants websocket:connect but not room:join cannot join."""
    member = rep.connect(label="member")
    room = steps.populated_room(rep, member)
    client = rep.connect(roles=(), permissions=(CONNECT,))
    sent = client.send("room_join", {"roomId": room})
    client.expect_refusal(FORBIDDEN, of=sent, requirement="ROOM-010", wrong_code="ROOM-015")
    member.expect_none(
        "user_join",
        where=steps.names_client(client),
        requirement="AUTHZ-002",
        description="user_join for it",
    )


def private_room(rep: Harness) -> str:
    room = rep.target.fixtures.private_room
    if room is None:
        pytest.skip("the target file names no fixtures.private_room")
    return room


@pytest.mark.requirements("ROOM-010", "ROOM-015")
def test_joining_a_private_room_needs_room_join_private(rep: Harness) -> None:
    """A plain user is refused the private room; a user granted room:join_private joins."""
    room = private_room(rep)
    plain = rep.connect(label="plain")
    sent = plain.send("room_join", {"roomId": room})
    plain.expect_refusal(FORBIDDEN, of=sent, requirement="ROOM-010", wrong_code="ROOM-015")
    granted = rep.connect(label="granted", permissions=(JOIN_PRIVATE,))
    steps.join(granted, room, requirement="ROOM-010")


@pytest.mark.requirements("ROOM-011", "ROOM-015")
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
    client.expect_refusal(FORBIDDEN, of=sent, requirement="ROOM-011", wrong_code="ROOM-015")
    steps.join(client, fixture.id, password=fixture.password, requirement="ROOM-011")


@pytest.mark.requirements("ROOM-012", "ROOM-015")
def test_an_invite_only_room_admits_the_invited_and_room_join_invited(rep: Harness) -> None:
    """Refused for a plain user; joined with room:join_invited, and by an invited user."""
    fixture = rep.target.fixtures.invite_only_room
    if fixture is None:
        pytest.skip("the target file names no fixtures.invite_only_room")
    plain = rep.connect(label="plain")
    sent = plain.send("room_join", {"roomId": fixture.id})
    plain.expect_refusal(FORBIDDEN, of=sent, requirement="ROOM-012", wrong_code="ROOM-015")
    granted = rep.connect(label="granted", permissions=(JOIN_INVITED,))
    steps.join(granted, fixture.id, requirement="ROOM-012")
    if fixture.invited_user is None:
        rep.record("ROOM-012 invitation list", "not exercised: no invited_user in the target")
        return
    invited = rep.connect(fixture.invited_user, label="invited")
    steps.join(invited, fixture.id, requirement="ROOM-012")


@pytest.mark.requirements("ROOM-003")
def test_a_user_with_two_connections_is_listed_once_per_connection(rep: Harness) -> None:
    """One user joins from two connections: the next joiner sees both clientIds."""
    user = rep.user("twice")
    first, second = rep.connect(user, label="twice"), rep.connect(user, label="twice")
    room = steps.populated_room(rep, first, second)
    response = steps.join(rep.connect(label="joiner"), room)
    listed = [m.get("clientId") for m in steps.members_of(response) if m.get("userId") == user]
    if sorted(map(str, listed)) != sorted([first.client_id, second.client_id]):
        raise rep.fail(
            "ROOM-003",
            sent=f"room_join from two connections of {user}, then from a third user",
            expected=f"members to list {user} once per connection: clientIds "
            f"{json_text(sorted([first.client_id, second.client_id]))}",
            received=f"members = {json_text(steps.members_of(response))}",
        )


def password_room(rep: Harness) -> Any:
    fixture = rep.target.fixtures.password_room
    if fixture is None:
        pytest.skip("the target file names no fixtures.password_room")
    return fixture


@pytest.mark.requirements("ERR-004", "ERR-006", "ROOM-011")
def test_a_refused_join_leaves_no_member_behind(rep: Harness) -> None:
    """A wrong password: the members hear nothing, a newcomer's list does not name the
    refused client, and its later good join is announced as a first join."""
    fixture = password_room(rep)
    member, outsider = rep.connect(label="member"), rep.connect(label="outsider")
    steps.join(member, fixture.id, password=fixture.password)
    sent = outsider.send("room_join", {"roomId": fixture.id, "password": f"x{fixture.password}"})
    outsider.expect_refusal(FORBIDDEN, of=sent, requirement="ROOM-011")
    member.expect_none(
        "user_join",
        where=steps.names_client(outsider),
        requirement="ERR-006",
        description="a user_join for the refused client",
    )
    joined = steps.join(rep.connect(label="newcomer"), fixture.id, password=fixture.password)
    member.expect("user_join", requirement="ROOM-004", description="the newcomer's user_join")
    if listed_member := listed(joined, outsider):
        raise rep.fail(
            "ERR-004",
            sent=f"room_join of {fixture.id} with a wrong password from {outsider.label}",
            expected="the refused client in no member list",
            received=f"a later join lists it: {json_text(listed_member)}",
        )
    steps.join(outsider, fixture.id, password=fixture.password)
    member.expect(
        "user_join",
        where=steps.names_client(outsider),
        requirement="ERR-004",
        description=f"a user_join for {outsider.label}'s first successful join (its refused "
        "join must not have made it a member)",
    )


@pytest.mark.requirements("ERR-004", "ROOM-010")
@pytest.mark.features("rooms")
def test_a_refused_join_creates_no_room(rep: Harness) -> None:
    """A join refused for lack of room:join creates no room: /stats rooms is unchanged and
    the first real joiner is alone in it."""
    client = rep.connect(roles=(), permissions=(CONNECT,))
    rooms: list[str] = []

    def refused_join() -> None:
        rooms.append(rep.slug("ghost"))
        sent = client.send("room_join", {"roomId": rooms[-1]})
        client.expect_refusal(FORBIDDEN, of=sent, requirement="ROOM-010")

    steps.stats_change(rep, "rooms", refused_join, 0, requirement="ERR-004")
    joiner = rep.connect(label="joiner")
    members = steps.members_of(steps.join(joiner, rooms[-1]))
    if [m.get("clientId") for m in members] != [joiner.client_id]:
        raise rep.fail(
            "ERR-004",
            sent=f"a refused room_join of {rooms[-1]}, then a permitted one",
            expected=f"the permitted joiner alone in the room ({joiner.client_id})",
            received=f"members = {json_text(members)}",
        )


@pytest.mark.requirements("ROOM-014", "ROOM-011")
def test_rejoining_is_judged_by_the_room_rules_again(rep: Harness) -> None:
    """A member re-joins the password room with a wrong password: forbidden, and it is
    still a member (its chat is distributed)."""
    fixture = password_room(rep)
    client = rep.connect()
    steps.join(client, fixture.id, password=fixture.password)
    sent = client.send("room_join", {"roomId": fixture.id, "password": f"x{fixture.password}"})
    client.expect_refusal(FORBIDDEN, of=sent, requirement="ROOM-014")
    if not rep.profile.supports("chat"):
        return
    chat = client.send("chat_message", {"roomId": fixture.id, "content": "still here"})
    steps.copy_of(client, "chat_message", chat, requirement="ROOM-014")


@pytest.mark.requirements("ROOM-013", "ROOM-005")
def test_leaving_needs_no_permission(rep: Harness) -> None:
    """A token granting only websocket:connect and room:join can still leave."""
    client = rep.connect(roles=(), permissions=(CONNECT, JOIN))
    room = steps.populated_room(rep, client)
    steps.request(client, "room_leave", {"roomId": room}, requirement="ROOM-013")


@pytest.mark.requirements("ROOM-009")
def test_an_empty_room_is_removed_and_created_afresh(rep: Harness) -> None:
    """The last member leaves: /stats counts one room less, and the next join finds a new
    public room with only the joiner in it."""
    client = rep.connect()
    rooms: list[str] = []

    def last_member_leaves() -> None:
        rooms.append(steps.populated_room(rep, client, label="brief"))
        steps.request(client, "room_leave", {"roomId": rooms[-1]}, requirement="ROOM-005")

    steps.stats_change(rep, "rooms", last_member_leaves, 0, requirement="ROOM-009")
    joiner = rep.connect(label="joiner")
    response = steps.join(joiner, rooms[-1])
    members = steps.members_of(response)
    info = response["payload"].get("room")
    if [m.get("clientId") for m in members] != [joiner.client_id] or (
        isinstance(info, dict) and info.get("private")
    ):
        raise rep.fail(
            "ROOM-009",
            sent=f"room_leave by the last member of {rooms[-1]}, then a new room_join",
            expected="a new public room whose only member is the joiner",
            received=f"members = {json_text(members)}, room = {json_text(info)}",
        )
