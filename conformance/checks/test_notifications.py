"""Notifications: broadcast needs message:broadcast, announce needs message:announce."""

from __future__ import annotations

import pytest

from conformance import spec, steps
from conformance.harness import Harness

FORBIDDEN = spec.error_code("forbidden")
NOT_FOUND = spec.error_code("not_found")
BROADCAST = spec.permission("message:broadcast")
ANNOUNCE = spec.permission("message:announce")


@pytest.mark.requirements("NOTIF-001", "MSG-004", "MSG-005")
def test_a_broadcast_reaches_every_client_once(rep: Harness) -> None:
    """With message:broadcast, a notification without roomId reaches everyone, sender too."""
    sender = rep.connect(label="sender", permissions=(BROADCAST,))
    others = [rep.connect(label="other"), rep.connect(label="other")]
    sent = sender.send("notification", {"title": "Maintenance", "message": "at noon"})
    for client in [sender, *others]:
        copy = steps.delivered(client, "notification", sent, requirement="NOTIF-001")
        steps.check_sender(rep, copy, sender)
    rep.quiet(
        [sender, *others],
        "notification",
        correlation_id=sent,
        requirement="NOTIF-001",
        description="another copy",
    )


@pytest.mark.requirements("NOTIF-001", "AUTHZ-002")
def test_a_broadcast_needs_message_broadcast(rep: Harness) -> None:
    """A plain user's broadcast is forbidden and reaches no one."""
    sender, other = rep.connect(label="sender"), rep.connect(label="other")
    sent = sender.send("notification", {"message": "hello everyone"})
    sender.expect_refusal(FORBIDDEN, of=sent, requirement="NOTIF-001")
    other.expect_none(
        "notification", correlation_id=sent, requirement="AUTHZ-002", description="the broadcast"
    )


@pytest.mark.requirements("NOTIF-002", "NOTIF-004", "MSG-004")
@pytest.mark.features("rooms")
def test_an_announcement_reaches_the_room_and_the_sender(rep: Harness) -> None:
    """With message:announce, a notification to a room reaches its members and the sender."""
    members = [rep.connect(label="member"), rep.connect(label="member")]
    outsider = rep.connect(label="outsider")
    announcer = rep.connect(label="announcer", permissions=(ANNOUNCE,))
    room = steps.populated_room(rep, *members)
    sent = announcer.send("notification", {"message": "room closes soon", "roomId": room})
    for client in [announcer, *members]:
        copy = steps.delivered(client, "notification", sent, requirement=("NOTIF-002", "NOTIF-004"))
        steps.check_sender(rep, copy, announcer)
    rep.quiet(
        [announcer, *members, outsider],
        "notification",
        correlation_id=sent,
        requirement="NOTIF-002",
        description="another copy",
    )


@pytest.mark.requirements("NOTIF-002", "AUTHZ-002")
@pytest.mark.features("rooms")
def test_an_announcement_needs_message_announce(rep: Harness) -> None:
    """A plain member's announcement to its own room is forbidden; the room hears nothing."""
    sender, member = rep.connect(label="sender"), rep.connect(label="member")
    room = steps.populated_room(rep, member, sender)
    sent = sender.send("notification", {"message": "listen", "roomId": room})
    sender.expect_refusal(FORBIDDEN, of=sent, requirement="NOTIF-002")
    member.expect_none(
        "notification", correlation_id=sent, requirement="AUTHZ-002", description="it"
    )


@pytest.mark.requirements("NOTIF-003")
def test_an_announcement_to_a_missing_room_is_not_found(rep: Harness) -> None:
    """A notification naming a room that does not exist: not_found."""
    announcer = rep.connect(permissions=(ANNOUNCE,))
    sent = announcer.send("notification", {"message": "anyone?", "roomId": rep.name("nowhere")})
    announcer.expect_refusal(NOT_FOUND, of=sent, requirement="NOTIF-003")


@pytest.mark.requirements("NOTIF-004", "AUTHZ-002")
def test_the_announce_permission_is_checked_before_the_room(rep: Harness) -> None:
    """Without message:announce, a notification to a room that does not exist is
    forbidden, not not_found: the sender learns nothing about which rooms exist."""
    client = rep.connect()
    sent = client.send("notification", {"message": "anyone?", "roomId": rep.slug("nowhere")})
    client.expect_refusal(FORBIDDEN, of=sent, requirement="NOTIF-004")
