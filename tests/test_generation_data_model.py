"""The model of the data programs: versions, revisions, copies and sync listings, without a
server; and, over generated sequences, the reference broker agrees with it."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.generation.data_model import (
    BEYOND,
    CONFLICT,
    CREATE,
    DELETE,
    FIRST_REVISION,
    FIRST_VERSION,
    FORBIDDEN,
    NOT_FOUND,
    SINCE_KINDS,
    UPDATE,
    DataModel,
)
from reference_server.broker.memory import MemoryBroker

RECORDS = ("a", "b", "c")


def world(*labels: str, budget: int | None = None, reader: str | None = None) -> DataModel:
    model = DataModel(budget)
    for label in labels:
        model.add_client(label, f"user-{label}")
        model.connect(label)
    if reader is not None:
        model.add_client(reader, f"user-{reader}", writes=False)
        model.connect(reader)
    for record in RECORDS:
        model.add_record(record)
    return model


def test_a_create_is_version_1_and_reaches_the_sender_and_each_subscriber_once() -> None:
    model = world("w", "s", "idle")
    model.sync("s", None)
    model.sync("w", None)
    change = model.create("w", "a", {"n": 1})
    assert (change.outcome, change.version, change.revision) == ("ok", FIRST_VERSION, 1)
    assert change.recipients == ("w", "s")  # the subscribed sender once, first; idle none
    assert change.requirement == "DATA-002"


def test_versions_count_per_record_while_the_revision_counts_the_collection() -> None:
    """What VersionFromCollectionRevision confuses: b's third version at revision 5."""
    model = world("w")
    model.create("w", "a", {})
    model.create("w", "b", {})
    model.update("w", "b", {"v": 2})
    model.create("w", "c", {})
    change = model.update("w", "b", {"v": 3})
    assert (change.version, change.revision) == (3, 5)
    deleted = model.delete("w", "b")
    assert (deleted.version, deleted.revision, deleted.data) == (3, 6, None)


def test_a_re_created_record_starts_again_at_version_1() -> None:
    model = world("w")
    model.create("w", "a", {})
    model.update("w", "a", {"x": 1})
    model.delete("w", "a")
    change = model.create("w", "a", {"y": 2})
    assert (change.outcome, change.version, change.revision) == ("ok", FIRST_VERSION, 4)


def test_refusals_change_nothing_and_name_the_rule_that_refuses() -> None:
    model = world("w")
    assert model.update("w", "a", {}).outcome == NOT_FOUND  # never created: DATA-005
    model.create("w", "a", {"k": 1})
    conflict = model.create("w", "a", {"k": 2})
    assert (conflict.outcome, conflict.requirement, conflict.recipients) == (
        CONFLICT,
        "DATA-003",
        (),
    )
    stale = model.update("w", "a", {"k": 3}, expected=FIRST_VERSION + 1)
    assert (stale.outcome, stale.requirement) == (CONFLICT, "DATA-004")
    assert model.delete("w", "a", expected=FIRST_VERSION + 5).requirement == "DATA-006"
    assert model.revision == 1 and model.refusals == 4
    assert model.records["a"].data == {"k": 1} and model.records["a"].version == FIRST_VERSION
    model.delete("w", "a")
    gone = model.delete("w", "a")
    assert (gone.outcome, gone.requirement) == (NOT_FOUND, "DATA-005")
    assert model.update("w", "a", {}, expected=FIRST_VERSION).outcome == NOT_FOUND


def test_a_matching_expected_version_applies() -> None:
    model = world("w")
    model.create("w", "a", {})
    assert model.update("w", "a", {"n": 1}, expected=FIRST_VERSION).version == 2
    assert model.delete("w", "a", expected=2).outcome == "ok"


def test_stale_versions_never_include_the_current_one() -> None:
    model = world("w")
    model.create("w", "a", {})
    assert model.stale_versions("a") == [FIRST_VERSION + 1]
    model.update("w", "a", {})
    model.update("w", "a", {})
    assert model.stale_versions("a") == [FIRST_VERSION, 2, 4]


def test_a_client_without_data_write_is_forbidden_and_leaves_no_trace() -> None:
    model = world("w", reader="x")
    model.sync("x", None)
    change = model.create("x", "a", {})
    assert (change.outcome, change.requirement, change.recipients) == (FORBIDDEN, "DATA-009", ())
    assert model.revision == FIRST_REVISION and not model.records["a"].exists
    model.create("w", "a", {})
    assert model.update("x", "a", {}).outcome == FORBIDDEN
    assert model.delete("x", "a").outcome == FORBIDDEN
    assert model.actors(1, writers=True) == ["w"]
    assert model.create("w", "b", {}).recipients == ("w", "x")  # x still follows it


def test_a_subscription_ends_with_its_connection() -> None:
    model = world("w", "s")
    model.sync("s", None)
    model.disconnect("s")
    model.connect("s")
    assert model.create("w", "a", {}).recipients == ("w",)


def test_sync_since_is_strict_at_the_revision_a_surviving_record_last_changed() -> None:
    """What SyncSinceInclusive gets wrong: a record last changed at revision 3 is not
    listed with sinceRevision 3."""
    model = world("w")
    model.create("w", "a", {})  # 1
    model.create("w", "b", {})  # 2
    model.update("w", "a", {"n": 1})  # 3
    assert model.since_options("survivor") == [2, 3]
    at = model.sync("w", 3)
    assert (at.revision, dict(at.records), at.deleted) == (3, {}, frozenset())
    before = model.sync("w", 2)
    assert set(before.records) == {"a"} and before.records["a"][:2] == (2, {"n": 1})
    assert before.requirement == "DATA-011"


def test_sync_since_lists_deletes_after_it_and_re_creates_as_records_only() -> None:
    model = world("w")
    model.create("w", "a", {})  # 1
    model.create("w", "b", {})  # 2
    model.delete("w", "a")  # 3
    model.delete("w", "b")  # 4
    model.create("w", "b", {"again": True})  # 5
    model.create("w", "c", {})  # 6
    model.delete("w", "c")  # 7: created and deleted after 3
    after = model.sync("w", 3)
    assert set(after.records) == {"b"} and after.deleted == frozenset({"c"})
    assert after.records["b"][0] == FIRST_VERSION
    early = model.sync("w", 2)
    assert set(early.records) == {"b"} and early.deleted == frozenset({"a", "c"})
    zero = model.sync("w", FIRST_REVISION)
    assert set(zero.records) == {"b"} and zero.deleted == frozenset({"a", "c"})


def test_a_full_sync_lists_every_record_and_may_list_deleted_ids() -> None:
    model = world("w")
    model.create("w", "a", {})
    model.create("w", "b", {})
    model.delete("w", "a")
    full = model.sync("w", None)
    assert set(full.records) == {"b"} and full.deleted == frozenset()
    assert full.may_delete == frozenset({"a"}) and full.requirement == "DATA-007"


def test_beyond_the_current_revision_nothing_is_listed() -> None:
    model = world("w")
    model.create("w", "a", {})
    model.delete("w", "a")
    for since in model.since_options("beyond"):
        found = model.sync("w", since)
        assert (found.revision, dict(found.records), found.deleted) == (2, {}, frozenset())
    assert model.since_options("beyond") == [2 + step for step in BEYOND]


def test_every_kind_of_since_has_values_once_something_survives() -> None:
    model = world("w")
    assert model.since_options("survivor") == []
    assert model.since_options("seen") == [FIRST_REVISION]
    model.create("w", "a", {})
    model.create("w", "b", {})
    model.delete("w", "b")
    for kind in SINCE_KINDS[1:]:
        assert model.since_options(kind), kind
    assert model.since_options("seen") == [0, 1, 2, 3]
    assert model.since_options("survivor") == [1] and model.since_options("current") == [3]


def test_the_story_names_each_applied_change_at_its_revision() -> None:
    model = world("w")
    assert model.story() == "no change applied yet"
    model.create("w", "a", {})
    model.create("w", "a", {})  # refused: not in the story
    model.update("w", "a", {})
    assert model.story() == "1: create a v1, 2: update a v2"


def test_budgets_are_shared_by_a_users_connections() -> None:
    model = DataModel(budget=6)
    model.add_client("a", "same")
    model.add_client("b", "same")
    model.connect("a")
    model.connect("b")
    model.spend("a", 3)
    assert model.actors(1) == ["a", "b"] and model.actors(2) == []  # one barrier each kept


# -- the reference broker agrees ----------------------------------------------------------

OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from((CREATE, UPDATE, DELETE, "sync")),
        st.sampled_from(RECORDS),
        st.none() | st.integers(FIRST_VERSION, 4),
        st.none() | st.integers(FIRST_REVISION, 12),
    ),
    max_size=30,
)


async def _agree(operations: list[tuple[str, str, int | None, int | None]]) -> None:
    broker = MemoryBroker()
    model = world("w")
    for index, (kind, label, expected, since) in enumerate(operations):
        data: dict[str, Any] = {"step": index}
        if kind == "sync":
            found = await broker.record_sync("col", since)
            want = model.sync("w", since)
            assert found.revision == want.revision
            assert {r.record_id: (r.version, r.data) for r in found.records} == {
                k: v[:2] for k, v in want.records.items()
            }
            assert want.deleted <= set(found.deleted) <= want.deleted | want.may_delete
            continue
        if kind == CREATE:
            outcome = await broker.record_create("col", label, data)
            change = model.create("w", label, data)
        elif kind == UPDATE:
            outcome = await broker.record_update("col", label, data, expected)
            change = model.update("w", label, data, expected)
        else:
            outcome = await broker.record_delete("col", label, expected)
            change = model.delete("w", label, expected)
        assert outcome.status == change.outcome, (kind, label, expected)
        if change.outcome == "ok":
            assert outcome.record is not None and outcome.record.version == change.version
            assert outcome.revision == change.revision


@settings(max_examples=150, deadline=None)
@given(OPERATIONS)
def test_the_reference_broker_agrees_with_the_model(
    operations: list[tuple[str, str, int | None, int | None]],
) -> None:
    """The model and the reference server read the spec alike (not a proof of either)."""
    asyncio.run(_agree(operations))
