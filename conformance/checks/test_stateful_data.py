"""Stateful model checking of collections: generated programs of changes and syncs.

Several clients (two of them connections of one user, one without data:write) create,
update, delete and re-create records of one fresh collection, singly and in bursts, with
and without expectedVersion (current or stale), and sync with sinceRevision drawn from 0,
every revision the collection has had, the revision at which a surviving record last
changed, the current revision and beyond it. A
:class:`~conformance.generation.data_model.DataModel` predicts every copy (version, data,
recipients), every refusal, and what each sync must list; at the end of each program no
client may hold a copy or an error the model did not predict. A failing program is shrunk
and saved as a replay file.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from conformance import spec
from conformance.checks.test_stateful import guarded, message_budget
from conformance.generation import settings as run_settings
from conformance.generation.data_model import (
    CREATE,
    DELETE,
    FORBIDDEN,
    SINCE_KINDS,
    UPDATE,
    Change,
    DataModel,
    SyncPrediction,
)
from conformance.generation.data_runner import DataRunner
from conformance.generation.explore import explore_machine, program_end, start_example
from conformance.generation.scenario import SLUG_SLACK
from conformance.generation.schema import compiled, strategy
from conformance.harness import Harness
from conformance.identifiers import slug

CHECK = (
    "test_stateful_data.py::"
    "test_data_programs_keep_versions_revisions_and_syncs_as_the_model_predicts"
)
COLLECTION = "defs.schema.json#/$defs/collection"
RECORD = "defs.schema.json#/$defs/recordId"
CONNECT = spec.permission("websocket:connect")
READ = spec.permission("data:read")
CLIENTS = ("c0", "c1", "c2")
#: A further connection of c0's user: subscriptions belong to connections (DATA-008).
SAME_USER = {"c2": "c0"}
#: A client with data:read only: it syncs and receives copies, its changes are forbidden.
READER = "x"
RECORDS = ("r0", "r1", "r2", "r3")
#: Most changes one rule sends back to back, and what they may cost: each refusal is
#: proved by a barrier (Runner.expect_refusal), one message more.
BURST = 3
BURST_WORST = 2 * BURST
#: Data members per generated record: programs are about versions and revisions, and the
#: message checks cover sizes.
DATA_MEMBERS = 3
CHANGE_TYPES = (CREATE, UPDATE, DELETE)
EXPECTATIONS = ("none", "current", "stale")


def record_data() -> st.SearchStrategy[dict[str, Any]]:
    """Record data as the update schema allows it, a few members each."""
    node = compiled("payloads/data_update.schema.json").properties["data"]
    small = min(node.max_properties or DATA_MEMBERS, DATA_MEMBERS)
    found: st.SearchStrategy[dict[str, Any]] = strategy(replace(node, max_properties=small))
    return found


def start_data_example(rep: Harness, title: str, last: dict[str, Any]) -> DataRunner:
    """start_example's fresh transcript and waits, with the data steps."""
    base = start_example(rep, title, last)
    runner = DataRunner(rep)
    runner.within = base.within
    return runner


def change_step(model: DataModel, change: Change, collection: str) -> dict[str, Any]:
    """What the copy steps need to judge a copy, as JSON for the replay file."""
    return {
        "type": change.type,
        "sender": change.sender,
        "record": change.record,
        "version": change.version,
        "data": change.data,
        "revision": change.revision,
        "requirement": change.requirement,
        "collection": collection,
        "story": model.story(),
    }


def sync_step(model: DataModel, prediction: SyncPrediction) -> dict[str, Any]:
    return {
        "since": prediction.since,
        "revision": prediction.revision,
        "records": {k: list(v) for k, v in prediction.records.items()},
        "deleted": sorted(prediction.deleted),
        "may_delete": sorted(prediction.may_delete),
        "requirement": prediction.requirement,
        "changed": {r.label: r.changed_at for r in model.records.values() if r.created},
        "existing": model.existing(),
        "story": model.story(),
        "refusals": model.refusals,
    }


@pytest.mark.requirements(
    "DATA-002",
    "DATA-003",
    "DATA-004",
    "DATA-005",
    "DATA-006",
    "DATA-007",
    "DATA-008",
    "DATA-009",
    "DATA-010",
    "DATA-011",
    "MSG-004",
    "MSG-005",
    "ERR-004",
)
def test_data_programs_keep_versions_revisions_and_syncs_as_the_model_predicts(
    rep: Harness,
) -> None:
    """Clients create, update, delete and re-create records of one collection, in bursts,
    with current and stale expectedVersion, and sync from every revision boundary: each
    copy carries the record's own version and reaches each subscriber once, each
    conflict and not_found changes nothing, and each sync lists exactly what changed
    strictly after its sinceRevision."""
    last: dict[str, Any] = {}

    class DataPrograms(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.last = last
            self.failed = False
            self.title = "data program"
            self.runner = start_data_example(rep, self.title, last)
            last["runner"], last["title"] = self.runner, self.title
            self.model = DataModel(message_budget(rep))
            self.collection = slug(self.runner.name("col"), COLLECTION, length_slack=SLUG_SLACK)
            self.ids = {
                label: slug(self.runner.name("rec"), RECORD, length_slack=SLUG_SLACK)
                for label in RECORDS
            }
            for label in RECORDS:
                self.model.add_record(label)
            self.access: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
            for label in CLIENTS:
                shared = SAME_USER.get(label)
                user = self.model.people.clients[shared].user if shared else self.runner.name(label)
                self.model.add_client(label, user)
                self.access[label] = (("user",), ())
            self.model.add_client(READER, self.runner.name("reader"), writes=False)
            self.access[READER] = ((), (CONNECT, READ))
            self.count = 0

        def _ref(self, prefix: str) -> str:
            self.count += 1
            return f"{prefix}{self.count}"

        def _connect(self, label: str) -> None:
            roles, permissions = self.access[label]
            user = self.model.people.clients[label].user
            self.runner.connect(label, user, roles, permissions)
            self.model.connect(label)

        # -- connections -----------------------------------------------------------------

        @initialize(synced=st.lists(st.booleans(), min_size=4, max_size=4))
        @guarded
        def connect_everyone(self, synced: list[bool]) -> None:
            """Everyone connected; some subscribe at once, to a collection never used
            (revision 0, DATA-010)."""
            for label, sync in zip([*CLIENTS, READER], synced, strict=True):
                self._connect(label)
                if sync and self.model.people.can_send(label, 1):
                    self._sync(label, None)

        @precondition(lambda self: bool(self.model.disconnected()))
        @rule(data=st.data())
        @guarded
        def connect(self, data: st.DataObject) -> None:
            self._connect(data.draw(st.sampled_from(self.model.disconnected()), label="client"))

        @precondition(lambda self: bool(self.model.connected()))
        @rule(data=st.data(), how=st.sampled_from(("close", "drop")), back=st.booleans())
        @guarded
        def disconnect(self, data: st.DataObject, how: str, back: bool) -> None:
            """A subscription ends with its connection: the next connection (at once, with
            ``back``) gets no copies until it syncs."""
            label = data.draw(st.sampled_from(self.model.connected()), label="client")
            self.runner.close(label) if how == "close" else self.runner.drop(label)
            self.model.disconnect(label)
            if back:
                self._connect(label)

        # -- changes ---------------------------------------------------------------------

        def _id_of(self, label: str) -> str | None:
            """The id a step sends for ``label``: the client's own, or None for one the
            server assigned (the runner knows it from the copy)."""
            return None if self.model.records[label].assigned else self.ids[label]

        def _draw_create(self, data: st.DataObject, sender: str) -> tuple[Change, dict[str, Any]]:
            """Mostly a record deleted or never created (a re-create starts at version 1);
            sometimes one that exists (conflict). A first create may leave the id to the
            server."""
            existing = self.model.existing()
            absent = [r for r in RECORDS if r not in existing]
            label = data.draw(st.sampled_from(absent * 3 + list(RECORDS)), label="record")
            record = self.model.records[label]
            assigned = not record.created and data.draw(st.booleans(), label="server id")
            body = data.draw(record_data(), label="data")
            sent = {
                "record_id": None if assigned else self._id_of(label),
                "data": body,
                "expected": None,
            }
            return self.model.create(sender, label, body, assigned=assigned), sent

        def _draw_change(
            self, data: st.DataObject, sender: str, kind: str, expectation: str
        ) -> tuple[Change, dict[str, Any]]:
            """An update or delete: mostly of a record that exists, sometimes of one deleted
            or never created (not_found); expectedVersion absent, current or stale."""
            existing = self.model.existing()
            label = data.draw(st.sampled_from(existing * 4 + list(RECORDS)), label="record")
            record_id = self._id_of(label)
            expected = self._expected(data, label, expectation)
            if kind == UPDATE:
                body = data.draw(record_data(), label="data")
                found = self.model.update(sender, label, body, expected)
                return found, {"record_id": record_id, "data": body, "expected": expected}
            found = self.model.delete(sender, label, expected)
            return found, {"record_id": record_id, "data": None, "expected": expected}

        def _draw_forbidden(self, data: st.DataObject) -> tuple[Change, dict[str, Any]]:
            """A change that would apply, from the client without data:write: forbidden
            (DATA-009), and no trace of it (ERR-004)."""
            kind = data.draw(st.sampled_from(CHANGE_TYPES), label="change")
            candidates = [r for r in RECORDS if self.model.would_succeed(kind, r)]
            if not candidates:
                kind = UPDATE if kind == CREATE else CREATE
                candidates = [r for r in RECORDS if self.model.would_succeed(kind, r)]
            label = data.draw(st.sampled_from(candidates), label="record")
            body = data.draw(record_data(), label="data") if kind != DELETE else None
            if kind == CREATE:
                found = self.model.create(READER, label, body or {})
            elif kind == UPDATE:
                found = self.model.update(READER, label, body or {})
            else:
                found = self.model.delete(READER, label)
            if found.outcome != FORBIDDEN:
                raise AssertionError(f"the model let {READER} write: {found}")
            return found, {"record_id": self._id_of(label), "data": body, "expected": None}

        def _expected(self, data: st.DataObject, label: str, kind: str) -> int | None:
            record = self.model.records[label]
            if kind == "none" or not record.exists:
                return None
            if kind == "current":
                return record.version
            return data.draw(st.sampled_from(self.model.stale_versions(label)), label="stale")

        def _send(self, found: Change, sent: dict[str, Any]) -> tuple[str, Change, bool]:
            ref = self._ref("ch")
            learn = found.type == CREATE and not found.refused and sent["record_id"] is None
            learn = learn and found.record not in self.runner.record_ids
            self.runner.data_send(
                found.sender,
                ref,
                found.type,
                collection=self.collection,
                record=found.record,
                **sent,
            )
            return ref, found, learn

        def _judge(self, sent: list[tuple[str, Change, bool]]) -> None:
            """Every copy and refusal of changes sent back to back, in the order sent."""
            self.model.spend(sent[0][1].sender, sum(2 if c.refused else 1 for _, c, _ in sent))
            for ref, change, learn in sent:
                if change.refused:
                    self.runner.data_expect_refusal(
                        change.sender,
                        ref,
                        code=change.outcome,
                        requirement=change.requirement,
                        description=f"{change.type} {ref} of {change.record} ({change.outcome})",
                    )
                    continue
                step = change_step(self.model, change, self.collection)
                for index, label in enumerate(change.recipients):
                    self.runner.data_expect_copy(
                        label,
                        ref,
                        change=step,
                        learn=learn and index == 0,
                        requirement=["MSG-004", change.requirement] if index == 0 else "DATA-008",
                    )

        def _senders(self) -> list[str]:
            """Writers that can afford a burst; the client without data:write, rarely."""
            writers = self.model.actors(BURST_WORST, writers=True)
            reader = [READER] if READER in self.model.actors(BURST_WORST) else []
            return writers * 3 + reader

        @precondition(lambda self: bool(self._senders()))
        @rule(data=st.data(), count=st.integers(1, BURST))
        @guarded
        def change(self, data: st.DataObject, count: int) -> None:
            """One to three changes back to back from one client: each is predicted in
            the order sent (MSG-008), then every copy and refusal is awaited."""
            sender = data.draw(st.sampled_from(self._senders()), label="client")
            sent: list[tuple[str, Change, bool]] = []
            for _ in range(count):
                if sender == READER:
                    found = self._draw_forbidden(data)
                else:
                    kinds = CHANGE_TYPES if self.model.existing() else (CREATE,) * 3 + CHANGE_TYPES
                    kind = data.draw(st.sampled_from(kinds), label="change")
                    found = (
                        self._draw_create(data, sender)
                        if kind == CREATE
                        else self._draw_change(data, sender, kind, "none")
                    )
                sent.append(self._send(*found))
                if sent[-1][2]:
                    break  # what follows in this burst would need the id its copy tells
            self._judge(sent)

        @precondition(
            lambda self: bool(self.model.actors(2, writers=True) and self.model.existing())
        )
        @rule(
            data=st.data(),
            kind=st.sampled_from((UPDATE, DELETE)),
            expectation=st.sampled_from(EXPECTATIONS[1:]),
        )
        @guarded
        def change_expecting(self, data: st.DataObject, kind: str, expectation: str) -> None:
            """An update or delete with expectedVersion: the record's version applies,
            another is a conflict that changes nothing (DATA-004, DATA-006)."""
            sender = data.draw(st.sampled_from(self.model.actors(2, writers=True)), label="client")
            self._judge([self._send(*self._draw_change(data, sender, kind, expectation))])

        # -- syncs -----------------------------------------------------------------------

        def _sync(self, label: str, since: int | None) -> None:
            self.model.spend(label, 1)
            prediction = self.model.sync(label, since)
            self.runner.data_sync(
                label,
                self._ref("sync"),
                collection=self.collection,
                want=sync_step(self.model, prediction),
            )

        @precondition(lambda self: bool(self.model.actors(1)))
        @rule(data=st.data(), kind=st.sampled_from(SINCE_KINDS))
        @guarded
        def sync(self, data: st.DataObject, kind: str) -> None:
            """A full sync, or one since 0, any revision so far, a surviving record's last
            change, the current revision, or beyond it; the client is subscribed after."""
            label = data.draw(st.sampled_from(self.model.actors(1)), label="client")
            since: int | None = None
            if kind != "none":
                options = self.model.since_options(kind) or self.model.since_options("current")
                since = data.draw(st.sampled_from(options), label="sinceRevision")
            self._sync(label, since)

        @precondition(lambda self: bool(self.model.actors(1)) and self.model.revision > 0)
        @rule(data=st.data(), kind=st.sampled_from(("survivor", "seen")))
        @guarded
        def sync_at_a_boundary(self, data: st.DataObject, kind: str) -> None:
            """A sync since the revision a surviving record last changed at (it must not
            be listed), or since one of the revisions before."""
            label = data.draw(st.sampled_from(self.model.actors(1)), label="client")
            options = self.model.since_options(kind) or self.model.since_options("seen")
            self._sync(label, data.draw(st.sampled_from(options), label="sinceRevision"))

        def teardown(self) -> None:
            with program_end(last, self.runner, self.title):
                if not self.failed:
                    self.runner.data_settled([*CLIENTS, READER])
                    problem = self.runner.frame_problems()
                    if problem is not None:
                        raise problem

    explore_machine(
        rep,
        check=CHECK,
        machine=DataPrograms,
        max_examples=run_settings.budget().data_programs,
        last=last,
    )
    rep.record("stateful.data.programs", last.get("programs", 0))
    rep.record("stateful.data.steps", last.get("steps", 0))
