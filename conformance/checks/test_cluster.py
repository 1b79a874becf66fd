"""Multi-node operation: several nodes behave as one server.

These checks need a second node in the target file (``nodes``) and the ``cluster``
feature in the welcome; otherwise they are skipped.
"""

from __future__ import annotations

import pytest

from conformance import spec, steps
from conformance.checks.test_presence import CHANGED
from conformance.checks.test_rate_limit import exhaust, rate_limit, refused_as_limited
from conformance.client import json_text
from conformance.harness import Harness
from conformance.jsonvalues import json_difference
from conformance.target import Node

CONFLICT = spec.error_code("conflict")


def second_node(rep: Harness) -> Node:
    if not rep.target.other_nodes:
        pytest.skip("the target file lists no other node of the cluster (nodes)")
    return rep.target.other_nodes[0]


@pytest.mark.requirements("CLUSTER-001")
@pytest.mark.features("rooms", "chat")
def test_room_traffic_crosses_nodes(rep: Harness) -> None:
    """Members on two nodes: joins and chat messages reach the member on the other node."""
    node = second_node(rep)
    here, there = rep.connect(label="here"), rep.connect(label="there", node=node)
    room = steps.populated_room(rep, here, there)
    for sender, receiver in ((here, there), (there, here)):
        sent = sender.send("chat_message", {"roomId": room, "content": "across"})
        steps.delivered(receiver, "chat_message", sent, requirement="CLUSTER-001")


@pytest.mark.requirements("CLUSTER-002")
def test_the_rate_limit_spans_nodes(rep: Harness) -> None:
    """One user's messages on two nodes count against one limit."""
    node = second_node(rep)
    count, window = rate_limit(rep)
    user = rep.user("busy")
    clients = [rep.connect(user, label="busy"), rep.connect(user, label="busy", node=node)]
    exhaust(rep, clients, count, window)
    refused_as_limited(rep, clients[1], clients[1].send("ping"), requirement="CLUSTER-002")


@pytest.mark.requirements("CLUSTER-003")
@pytest.mark.features("streams", "publish")
def test_stream_events_cross_nodes_and_replay_alike(rep: Harness) -> None:
    """Published on one node, delivered on the other; replay is the same from both nodes."""
    node = second_node(rep)
    stream = steps.require_stream(rep)
    kind = rep.name("evt")
    there = rep.connect(label="there", node=node)
    steps.request(there, "stream_subscribe", {"streamId": stream, "filter": {"eventTypes": [kind]}})
    published = steps.publish(rep, stream, kind)
    event = there.expect("stream_event", requirement="CLUSTER-003")
    if event["payload"]["event"].get("id") != published:
        raise rep.fail("CLUSTER-003", expected=f"event {published}", received=json_text(event))
    replays = []
    for client in (rep.connect(label="late"), rep.connect(label="late", node=node)):
        steps.request(
            client, "stream_subscribe", {"streamId": stream, "filter": {"eventTypes": [kind]}}
        )
        replays.append(client.expect("stream_event", requirement="CLUSTER-003")["payload"])
    difference = json_difference(replays[0]["event"], replays[1]["event"], "/event")
    if difference is not None:
        raise rep.fail(
            "CLUSTER-003",
            expected="the same replayed event from both nodes",
            received=f"{json_text(replays[0]['event'])} vs {json_text(replays[1]['event'])} "
            f"({difference})",
        )


@pytest.mark.requirements("CLUSTER-004")
@pytest.mark.features("data")
def test_record_versions_and_conflicts_span_nodes(rep: Harness) -> None:
    """Created on one node, updated on the other; a stale update on the first conflicts."""
    node = second_node(rep)
    here, there = rep.connect(label="here"), rep.connect(label="there", node=node)
    collection, record = rep.name("col"), rep.name("rec")
    base = {"collection": collection, "recordId": record}
    steps.record_change(here, "data_create", {**base, "data": {}}, requirement="DATA-002")
    copy = steps.record_change(
        there,
        "data_update",
        {**base, "data": {"n": 1}, "expectedVersion": 1},
        requirement="CLUSTER-004",
    )
    if copy["payload"].get("version") != 2:
        raise rep.fail("CLUSTER-004", expected="version 2", received=json_text(copy["payload"]))
    sent = here.send("data_update", {**base, "data": {"n": 2}, "expectedVersion": 1})
    here.expect_refusal(CONFLICT, of=sent, requirement="CLUSTER-004")


@pytest.mark.requirements("CLUSTER-005")
@pytest.mark.features("rooms", "presence")
def test_membership_and_presence_agree_across_nodes(rep: Harness) -> None:
    """Members joined on both nodes, with a status set on one, are listed alike on both."""
    node = second_node(rep)
    here, there = rep.connect(label="here"), rep.connect(label="there", node=node)
    room = steps.populated_room(rep, here, there)
    sent = here.send("status_update", {"status": CHANGED})
    steps.copy_of(here, "status_update", sent)
    there.expect("status_update", correlation_id=sent, requirement="CLUSTER-005")
    listings = []
    for client in (rep.connect(label="late"), rep.connect(label="late", node=node)):
        members = steps.members_of(steps.join(client, room))
        listings.append(
            {
                m.get("clientId"): m.get("status")
                for m in members
                if m.get("clientId") in (here.client_id, there.client_id)
            }
        )
    want = {here.client_id: CHANGED, there.client_id: spec.DEFAULT_STATUS}
    if listings[0] != want or listings[1] != want:
        raise rep.fail(
            "CLUSTER-005",
            expected=f"both nodes to list {want}",
            received=f"node 1: {listings[0]}, node 2: {listings[1]}",
        )
