"""Presence: status updates reach the sender's rooms once each; member lists carry status."""

from __future__ import annotations

import pytest

from conformance import spec, steps
from conformance.client import json_text
from conformance.harness import Harness

STATUSES = spec.schema_at("defs.schema.json#/$defs/presenceStatus")["enum"]
#: A status other than the default one, so that a remembered status is visible.
CHANGED = next(s for s in STATUSES if s != spec.DEFAULT_STATUS)


@pytest.mark.requirements("PRES-001", "MSG-004", "MSG-005")
@pytest.mark.features("rooms")
def test_a_status_update_reaches_each_member_of_the_senders_rooms_once(rep: Harness) -> None:
    """Sender in two rooms; members of one, the other and both get one copy; others none."""
    sender = rep.connect(label="sender")
    first, second = rep.connect(label="first"), rep.connect(label="second")
    both, stranger = rep.connect(label="both"), rep.connect(label="stranger")
    steps.populated_room(rep, first, both, sender)
    steps.populated_room(rep, second, both, sender)
    sent = sender.send("status_update", {"status": CHANGED, "message": "back soon"})
    for client in (sender, first, second, both):
        copy = steps.delivered(client, "status_update", sent, requirement="PRES-001")
        steps.check_sender(rep, copy, sender)
    rep.quiet(
        [sender, first, second, both, stranger],
        "status_update",
        correlation_id=sent,
        requirement="PRES-001",
        description="another copy",
    )


@pytest.mark.requirements("PRES-002")
@pytest.mark.features("rooms")
def test_member_lists_carry_the_last_status(rep: Harness) -> None:
    """A member who set a status is listed with it; a member who set none is listed online."""
    busy, quiet, joiner = (
        rep.connect(label="busy"),
        rep.connect(label="quiet"),
        rep.connect(label="joiner"),
    )
    room = steps.populated_room(rep, busy, quiet)
    sent = busy.send("status_update", {"status": CHANGED})
    steps.copy_of(busy, "status_update", sent, requirement="PRES-001")
    quiet.expect("status_update", correlation_id=sent, requirement="PRES-001")
    response = steps.join(joiner, room)
    want = {busy.client_id: CHANGED, quiet.client_id: spec.DEFAULT_STATUS}
    want[joiner.client_id] = spec.DEFAULT_STATUS
    got = {m.get("clientId"): m.get("status") for m in steps.members_of(response)}
    for client_id, status in want.items():
        if got.get(client_id) != status:
            raise rep.fail(
                "PRES-002",
                expected=f"member {client_id} listed with status {json_text(status)}",
                received=f"members {steps.members_of(response)}",
            )


@pytest.mark.requirements("PRES-001")
@pytest.mark.features("rooms")
def test_a_users_other_connections_get_a_status_only_as_room_members(rep: Harness) -> None:
    """One user, three connections: the sender and a second connection in the room, a
    third in no room. The sender, the second connection and the other member each get
    one copy; the third connection gets none."""
    user = rep.user("multi")
    sender, sibling, idle = (rep.connect(user, label="multi") for _ in range(3))
    member = rep.connect(label="member")
    steps.populated_room(rep, member, sender, sibling)
    sent = sender.send("status_update", {"status": CHANGED})
    for client in (sender, sibling, member):
        steps.delivered(client, "status_update", sent, requirement="PRES-001")
    rep.quiet(
        [sender, sibling, member, idle],
        "status_update",
        correlation_id=sent,
        requirement="PRES-001",
        description="a copy beyond one per member connection (the user's connection in no "
        "room is not a member)",
    )


@pytest.mark.requirements("PRES-002")
@pytest.mark.features("rooms")
def test_a_status_outlives_the_close_of_one_of_the_users_connections(rep: Harness) -> None:
    """A user sets a status on one connection and closes another: the status stays, so a
    newcomer sees it on the remaining connection."""
    user = rep.user("multi")
    setter, other = rep.connect(user, label="multi"), rep.connect(user, label="multi")
    room = steps.populated_room(rep, setter)
    watcher = rep.connect(label="watcher")
    steps.populated_room(rep, watcher, other)
    sent = setter.send("status_update", {"status": CHANGED})
    steps.copy_of(setter, "status_update", sent, requirement="PRES-001")
    other.close()
    watcher.expect(  # the server has cleaned up after the closed connection
        "user_leave", where=steps.names_client(other), requirement="ROOM-006"
    )
    response = steps.join(rep.connect(label="joiner"), room)
    got = {m.get("clientId"): m.get("status") for m in steps.members_of(response)}
    if got.get(setter.client_id) != CHANGED:
        raise rep.fail(
            "PRES-002",
            sent=f"status_update {json_text(CHANGED)} on {setter.label}, then the close of "
            f"{other.label}, another connection of the same user",
            expected=f"{setter.label} listed with status {json_text(CHANGED)} (the user still "
            "has a connection)",
            received=f"members {json_text(steps.members_of(response))}",
        )
