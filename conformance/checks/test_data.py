"""Data operations: versioned records, optimistic concurrency, revisions, sync, subscribers."""

from __future__ import annotations

from typing import Any

import pytest

from conformance import spec, steps
from conformance.client import Client, Message, json_text
from conformance.harness import Harness
from conformance.jsonvalues import json_difference, same_json

CONFLICT = spec.error_code("conflict")
NOT_FOUND = spec.error_code("not_found")
FORBIDDEN = spec.error_code("forbidden")
CONNECT = spec.permission("websocket:connect")
READ = spec.permission("data:read")
WRITE = spec.permission("data:write")
COLLECTION = "defs.schema.json#/$defs/collection"
RECORD = "defs.schema.json#/$defs/recordId"


def change(client: Client, type_: str, requirement: str, **payload: Any) -> Message:
    return steps.record_change(client, type_, payload, requirement=requirement)


def sync(client: Client, collection: str, since: int | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"collection": collection}
    if since is not None:
        payload["sinceRevision"] = since
    response = steps.request(client, "data_sync", payload, requirement="DATA-007")
    found: dict[str, Any] = response["payload"]
    return found


def record_in(synced: dict[str, Any], record_id: str) -> dict[str, Any] | None:
    for record in synced.get("records", []):
        if isinstance(record, dict) and record.get("recordId") == record_id:
            return record
    return None


def expect_field(rep: Harness, requirement: str, message: Message, **wanted: Any) -> None:
    payload = message.get("payload", {})
    for key, value in wanted.items():
        difference = json_difference(value, payload.get(key), f"/payload/{key}")
        if difference is not None:
            raise rep.fail(
                requirement,
                expected=f"{message.get('type')} with {key} = {json_text(value)}",
                received=f"payload {json_text(payload)} ({difference})",
            )


@pytest.mark.requirements("DATA-002", "MSG-004")
@pytest.mark.parametrize("with_id", [True, False], ids=["given-id", "server-id"])
def test_a_created_record_is_at_version_1(rep: Harness, with_id: bool) -> None:
    """data_create's copy carries the record id (assigned when absent) and version 1."""
    client = rep.connect()
    collection = rep.slug("col", COLLECTION)
    extra = {"recordId": rep.slug("rec", RECORD)} if with_id else {}
    copy = change(client, "data_create", "DATA-002", collection=collection, data={"a": 1}, **extra)
    record_id = copy["payload"].get("recordId")
    expect_field(rep, "DATA-002", copy, version=1, **extra)
    if not isinstance(record_id, str) or not record_id:
        raise rep.fail("DATA-002", expected="a recordId", received=json_text(copy["payload"]))
    stored = record_in(sync(client, collection), record_id)
    if stored is None or stored.get("version") != 1 or not same_json(stored.get("data"), {"a": 1}):
        raise rep.fail(
            "DATA-002",
            expected=f"data_sync to list {record_id} at version 1 with data {{'a': 1}}",
            received=json_text(stored),
        )


@pytest.mark.requirements("DATA-003", "ERR-004")
def test_creating_an_existing_record_is_a_conflict(rep: Harness) -> None:
    """A second data_create with the same record id: conflict, the first record kept."""
    client = rep.connect()
    collection, record = rep.slug("col", COLLECTION), rep.slug("rec", RECORD)
    change(client, "data_create", "DATA-002", collection=collection, recordId=record, data={"v": 1})
    sent = client.send(
        "data_create", {"collection": collection, "recordId": record, "data": {"v": 2}}
    )
    client.expect_refusal(CONFLICT, of=sent, requirement="DATA-003")
    stored = record_in(sync(client, collection), record)
    if stored is None or not same_json(stored.get("data"), {"v": 1}):
        raise rep.fail("ERR-004", expected="the first record unchanged", received=json_text(stored))


@pytest.mark.requirements("DATA-004")
def test_an_update_replaces_data_and_bumps_the_version(rep: Harness) -> None:
    """Update without and with a matching expectedVersion: versions 2 and 3, data replaced."""
    client = rep.connect()
    collection, record = rep.slug("col", COLLECTION), rep.slug("rec", RECORD)
    change(client, "data_create", "DATA-002", collection=collection, recordId=record, data={"a": 1})
    copy = change(
        client, "data_update", "DATA-004", collection=collection, recordId=record, data={"b": 2}
    )
    expect_field(rep, "DATA-004", copy, version=2, data={"b": 2})
    copy = change(
        client,
        "data_update",
        "DATA-004",
        collection=collection,
        recordId=record,
        data={"c": 3},
        expectedVersion=2,
    )
    expect_field(rep, "DATA-004", copy, version=3, data={"c": 3})


@pytest.mark.requirements("DATA-004", "ERR-004")
def test_an_update_with_a_stale_expected_version_is_a_conflict(rep: Harness) -> None:
    """expectedVersion differs from the record's: conflict, and the record is unchanged."""
    client = rep.connect()
    collection, record = rep.slug("col", COLLECTION), rep.slug("rec", RECORD)
    change(client, "data_create", "DATA-002", collection=collection, recordId=record, data={"a": 1})
    change(client, "data_update", "DATA-004", collection=collection, recordId=record, data={"a": 2})
    sent = client.send(
        "data_update",
        {"collection": collection, "recordId": record, "data": {"a": 99}, "expectedVersion": 1},
    )
    client.expect_refusal(CONFLICT, of=sent, requirement="DATA-004")
    stored = record_in(sync(client, collection), record)
    if stored is None or stored.get("version") != 2 or not same_json(stored.get("data"), {"a": 2}):
        raise rep.fail(
            "DATA-004",
            expected="the record still at version 2 with data {'a': 2}",
            received=json_text(stored),
        )


@pytest.mark.requirements("DATA-005")
@pytest.mark.parametrize("type_name", ["data_update", "data_delete"])
def test_changing_a_missing_record_is_not_found(rep: Harness, type_name: str) -> None:
    """Update or delete of a record id the collection never held: not_found."""
    client = rep.connect()
    payload: dict[str, Any] = {
        "collection": rep.slug("col", COLLECTION),
        "recordId": rep.slug("ghost", RECORD),
    }
    if type_name == "data_update":
        payload["data"] = {}
    sent = client.send(type_name, payload)
    client.expect_refusal(NOT_FOUND, of=sent, requirement="DATA-005")


@pytest.mark.requirements("DATA-006", "ERR-004")
def test_a_delete_removes_the_record_and_reports_its_version(rep: Harness) -> None:
    """A stale expectedVersion is a conflict; a plain delete's copy carries the last version."""
    client = rep.connect()
    collection, record = rep.slug("col", COLLECTION), rep.slug("rec", RECORD)
    change(client, "data_create", "DATA-002", collection=collection, recordId=record, data={})
    change(client, "data_update", "DATA-004", collection=collection, recordId=record, data={"x": 1})
    sent = client.send(
        "data_delete", {"collection": collection, "recordId": record, "expectedVersion": 1}
    )
    client.expect_refusal(CONFLICT, of=sent, requirement="DATA-006")
    if record_in(sync(client, collection), record) is None:
        raise rep.fail("DATA-006", expected="the record kept after the conflict", received="gone")
    copy = change(client, "data_delete", "DATA-006", collection=collection, recordId=record)
    expect_field(rep, "DATA-006", copy, version=2, recordId=record)
    if record_in(sync(client, collection), record) is not None:
        raise rep.fail("DATA-006", expected="the record gone after the delete", received="listed")


@pytest.mark.requirements("DATA-007")
def test_revisions_count_changes_and_sync_since_returns_the_difference(rep: Harness) -> None:
    """Each change adds one to the revision; sinceRevision gives changed and deleted ids."""
    client = rep.connect()
    collection = rep.slug("col", COLLECTION)
    a, b, c = rep.slug("a", RECORD), rep.slug("b", RECORD), rep.slug("c", RECORD)
    for record in (a, b):
        change(client, "data_create", "DATA-002", collection=collection, recordId=record, data={})
    start = sync(client, collection)
    if start.get("revision") != 2:
        raise rep.fail(
            "DATA-007", expected="revision 2 after two creates", received=json_text(start)
        )
    change(client, "data_update", "DATA-004", collection=collection, recordId=a, data={"n": 1})
    change(client, "data_delete", "DATA-006", collection=collection, recordId=b)
    change(client, "data_create", "DATA-002", collection=collection, recordId=c, data={})
    after = sync(client, collection, since=2)
    changed = sorted(r.get("recordId") for r in after.get("records", []))
    if after.get("revision") != 5 or changed != sorted([a, c]) or after.get("deleted") != [b]:
        raise rep.fail(
            "DATA-007",
            sent=f"data_sync with sinceRevision 2 after updating {a}, deleting {b}, creating {c}",
            expected=f"revision 5, records {sorted([a, c])}, deleted [{json_text(b)}]",
            received=f"revision {json_text(after.get('revision'))}, records {changed}, "
            f"deleted {json_text(after.get('deleted'))}",
        )
    full = sync(client, collection)
    listed = sorted(r.get("recordId") for r in full.get("records", []))
    if listed != sorted([a, c]):
        raise rep.fail("DATA-007", expected=f"all records {sorted([a, c])}", received=f"{listed}")


@pytest.mark.requirements("DATA-008", "MSG-005")
def test_subscribers_get_each_change_exactly_once(rep: Harness) -> None:
    """After data_sync, a subscriber gets one copy per change; a non-subscriber none; the
    sender, also subscribed, one."""
    writer, subscriber, bystander = (
        rep.connect(label="writer"),
        rep.connect(label="subscriber"),
        rep.connect(label="bystander"),
    )
    collection = rep.slug("col", COLLECTION)
    sync(subscriber, collection)
    sync(writer, collection)
    sent = writer.send("data_create", {"collection": collection, "data": {"n": 1}})
    steps.copy_of(writer, "data_create", sent, requirement="DATA-008")
    copy = steps.delivered(subscriber, "data_create", sent, requirement="DATA-008")
    steps.check_sender(rep, copy, writer)
    rep.quiet(
        [writer, subscriber, bystander],
        "data_create",
        correlation_id=sent,
        requirement="DATA-008",
        description="another copy",
    )


@pytest.mark.requirements("DATA-009", "AUTHZ-002")
@pytest.mark.parametrize(
    ("type_name", "held"),
    [("data_sync", WRITE), ("data_create", READ)],
    ids=["sync-without-read", "create-without-write"],
)
def test_reading_needs_data_read_and_writing_data_write(
    rep: Harness, type_name: str, held: str
) -> None:
    """Without data:read a sync is forbidden; without data:write a create is forbidden."""
    client = rep.connect(roles=(), permissions=(CONNECT, held))
    payload: dict[str, Any] = {"collection": rep.slug("col", COLLECTION)}
    if type_name == "data_create":
        payload["data"] = {}
    sent = client.send(type_name, payload)
    client.expect_refusal(FORBIDDEN, of=sent, requirement="DATA-009")


@pytest.mark.requirements("DATA-010")
def test_a_never_used_collection_syncs_empty_at_revision_0(rep: Harness) -> None:
    """data_sync on a fresh collection name: revision 0, no records, nothing deleted."""
    client = rep.connect()
    found = sync(client, rep.slug("empty", COLLECTION))
    if (found.get("revision"), found.get("records"), found.get("deleted")) != (0, [], []):
        raise rep.fail(
            "DATA-010",
            expected="revision 0, records [], deleted []",
            received=json_text(found),
        )


@pytest.mark.requirements("DATA-004", "DATA-006")
def test_versions_are_per_record_not_the_collection_revision(rep: Harness) -> None:
    """Three records; the middle one updated twice: its copies carry versions 2 and 3 while
    the collection's revision is 4 and 5, and its delete reports version 3."""
    client = rep.connect()
    collection = rep.slug("col", COLLECTION)
    a, b, c = (rep.slug(label, RECORD) for label in ("a", "b", "c"))
    for record in (a, b, c):
        change(client, "data_create", "DATA-002", collection=collection, recordId=record, data={})
    for version in (2, 3):
        copy = change(
            client,
            "data_update",
            "DATA-004",
            collection=collection,
            recordId=b,
            data={"v": version},
        )
        expect_field(rep, "DATA-004", copy, recordId=b, version=version)
    copy = change(client, "data_delete", "DATA-006", collection=collection, recordId=b)
    expect_field(rep, "DATA-006", copy, recordId=b, version=3)
    listed = sync(client, collection)
    versions = {r.get("recordId"): r.get("version") for r in listed.get("records", [])}
    if versions != {a: 1, c: 1} or listed.get("revision") != 6:
        raise rep.fail(
            "DATA-004",
            sent=f"3 creates, 2 updates of {b}, its delete, then data_sync",
            expected=f"revision 6, records {a} and {c} at version 1",
            received=f"revision {json_text(listed.get('revision'))}, "
            f"versions {json_text(versions)}",
        )


@pytest.mark.requirements("DATA-011", "DATA-007")
def test_sync_since_is_strictly_after_and_bounded_by_the_current_revision(rep: Harness) -> None:
    """sinceRevision equal to the revision of a surviving record's last change leaves it
    out; a record deleted and created again is listed as a record, not deleted; a
    sinceRevision beyond the current revision returns nothing."""
    client = rep.connect()
    collection = rep.slug("col", COLLECTION)
    a, b = rep.slug("a", RECORD), rep.slug("b", RECORD)
    change(client, "data_create", "DATA-002", collection=collection, recordId=a, data={})  # 1
    change(client, "data_create", "DATA-002", collection=collection, recordId=b, data={})  # 2
    change(client, "data_update", "DATA-004", collection=collection, recordId=a, data={"n": 1})

    def expect_sync(since: int, revision: int, records: list[str], why: str) -> None:
        got = sync(client, collection, since=since)
        listed = sorted(str(r.get("recordId")) for r in got.get("records", []))
        deleted = got.get("deleted", [])
        if (got.get("revision"), listed, deleted) != (revision, sorted(records), []):
            raise rep.fail(
                "DATA-011",
                sent=f"data_sync with sinceRevision {since} ({why})",
                expected=f"revision {revision}, records {json_text(sorted(records))}, deleted []",
                received=f"revision {json_text(got.get('revision'))}, records "
                f"{json_text(listed)}, deleted {json_text(deleted)}",
            )

    expect_sync(3, 3, [], f"{a} last changed at revision 3, which is not after 3")
    expect_sync(2, 3, [a], f"{a} changed at revision 3")
    change(client, "data_delete", "DATA-006", collection=collection, recordId=b)  # 4
    change(client, "data_create", "DATA-002", collection=collection, recordId=b, data={})  # 5
    expect_sync(3, 5, [b], f"{b} deleted at 4 and created again at 5: a record, not deleted")
    expect_sync(99, 5, [], "beyond the current revision 5")
