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
from conformance.client import Message, correlation_of, json_text, summarize
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
from conformance.generation.explore import explore_machine, program_end, start_example
from conformance.generation.scenario import SLUG_SLACK, Runner
from conformance.generation.schema import compiled, strategy
from conformance.harness import Harness
from conformance.identifiers import slug
from conformance.jsonvalues import json_difference

CHECK = (
    "test_stateful_data.py::"
    "test_data_programs_keep_versions_revisions_and_syncs_as_the_model_predicts"
)
COLLECTION = "defs.schema.json#/$defs/collection"
RECORD = "defs.schema.json#/$defs/recordId"
SYNC = spec.message_type("data_sync")
SYNC_RESPONSE = "data_sync_response"
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
#: Unpredicted messages at the end of a program.
WATCHED = frozenset({CREATE, UPDATE, DELETE, SYNC_RESPONSE, "error"})


def record_data() -> st.SearchStrategy[dict[str, Any]]:
    """Record data as the update schema allows it, a few members each."""
    node = compiled("payloads/data_update.schema.json").properties["data"]
    small = min(node.max_properties or DATA_MEMBERS, DATA_MEMBERS)
    found: st.SearchStrategy[dict[str, Any]] = strategy(replace(node, max_properties=small))
    return found


class DataRunner(Runner):
    """The runner's steps plus the data steps, recorded like every other step.

    Records are named by label in the steps: an id the client chose is given once, an id
    the server assigned is learnt from the sender's copy (DATA-002) and used from then on,
    so a replay that gets another id from the server still runs.
    """

    def __init__(self, rep: Harness) -> None:
        super().__init__(rep)
        self.record_ids: dict[str, str] = {}
        self.sent_ids: dict[str, str] = {}
        #: message id -> requirement that refused it: its copies would break ERR-004.
        self.refused_ids: dict[str, str] = {}
        #: message id -> clients that received its copy.
        self.delivered: dict[str, set[str]] = {}

    def _record(self, label: str) -> str:
        found = self.record_ids.get(label)
        return f"{label} ({found})" if found else label

    # -- changes ---------------------------------------------------------------------------

    def data_send(
        self,
        client: str,
        ref: str,
        type_name: str,
        *,
        collection: str,
        record: str,
        record_id: str | None,
        data: dict[str, Any] | None,
        expected: int | None,
    ) -> None:
        self._run(
            "data_send",
            client=client,
            ref=ref,
            type_name=type_name,
            collection=collection,
            record=record,
            record_id=record_id,
            data=data,
            expected=expected,
        )

    def do_data_send(
        self,
        client: str,
        ref: str,
        type_name: str,
        collection: str,
        record: str,
        record_id: str | None,
        data: dict[str, Any] | None,
        expected: int | None,
    ) -> None:
        """Send one change; without ``record_id`` the id learnt for ``record`` is used, and
        a create of a record with no id yet names none (the server assigns it)."""
        if record_id is not None:
            self.record_ids[record] = record_id
        known = self.record_ids.get(record)
        if known is None and type_name != CREATE:
            raise ValueError(f"{record} has no id to send a {type_name} with")
        payload: dict[str, Any] = {"collection": collection}
        if known is not None:
            payload["recordId"] = known
        if data is not None:
            payload["data"] = data
        if expected is not None:
            payload["expectedVersion"] = expected
        message_id = f"{client}-{ref}"
        self.clients[client].send(type_name, payload, id=message_id)
        self.sent_ids[ref] = message_id

    def data_expect_copy(
        self,
        client: str,
        ref: str,
        *,
        change: dict[str, Any],
        learn: bool,
        requirement: str | list[str],
    ) -> None:
        self._run(
            "data_expect_copy",
            client=client,
            ref=ref,
            change=change,
            learn=learn,
            requirement=requirement,
        )

    def do_data_expect_copy(
        self,
        client: str,
        ref: str,
        change: dict[str, Any],
        learn: bool,
        requirement: str | list[str],
    ) -> None:
        """The copy of change ``ref`` on ``client``: its record id, the record's version
        (not the collection's revision), its data, and the sender in metadata.sender.
        ``learn``: the sender's copy of a create without an id tells the id."""
        target = self.clients[client]
        message_id = self.sent_ids[ref]
        kind, record, decided_by = change["type"], change["record"], change["requirement"]
        what = (
            f"{kind} {ref} of {self._record(record)} by {change['sender']} "
            f"(version {change['version']}, the collection at revision {change['revision']})"
        )
        found = target.expect(
            kind,
            correlation_id=message_id,
            within=self.within,
            requirement=requirement,
            description=f"the copy of {what}",
        )
        sent = target.describe_sent(message_id) if client == change["sender"] else what
        payload = found.get("payload", {})
        record_id = payload.get("recordId")
        if learn:
            taken = {i for label, i in self.record_ids.items() if label != record}
            if not isinstance(record_id, str) or not record_id or record_id in taken:
                raise target.failure(
                    decided_by,
                    sent=sent,
                    expected="a copy with the id the server assigned, new in the collection",
                    received=summarize(found),
                )
            self.record_ids[record] = record_id
        want: dict[str, Any] = {
            "collection": change["collection"],
            "recordId": self.record_ids[record],
            "version": change["version"],
        }
        if change["data"] is not None:
            want["data"] = change["data"]
        for key, value in want.items():
            difference = json_difference(value, payload.get(key), f"/payload/{key}")
            if difference is not None:
                why = (
                    f" (versions count per record; the collection's changes: {change['story']})"
                    if key == "version"
                    else ""
                )
                raise target.failure(
                    decided_by,
                    sent=sent,
                    expected=f"the copy of {what} with {key} = {json_text(value)}{why}",
                    received=f"{difference} in {summarize(found)}",
                )
        origin = self.clients[change["sender"]]
        sender = found.get("metadata", {}).get("sender")
        wanted = {"userId": origin.user_id, "clientId": origin.client_id}
        if not isinstance(sender, dict) or {k: sender.get(k) for k in wanted} != wanted:
            raise target.failure(
                "MSG-005",
                sent=sent,
                expected=f"metadata.sender = {wanted}",
                received=f"metadata.sender = {json_text(sender)} in {summarize(found)}",
            )
        self.delivered.setdefault(message_id, set()).add(client)

    def data_expect_refusal(
        self, client: str, ref: str, *, code: str, requirement: str, description: str
    ) -> None:
        self._run(
            "data_expect_refusal",
            client=client,
            ref=ref,
            code=code,
            requirement=requirement,
            description=description,
        )

    def do_data_expect_refusal(
        self, client: str, ref: str, code: str, requirement: str, description: str
    ) -> None:
        """One error with ``code`` for change ``ref``; a copy of it anywhere later breaks
        ERR-004 (the settled step looks)."""
        message_id = self.sent_ids[ref]
        self.refused_ids[message_id] = requirement
        self.do_expect_refusal(
            client,
            code,
            message_id,
            code_requirement=requirement,
            violates=requirement,
            description=description,
        )

    # -- syncs -----------------------------------------------------------------------------

    def data_sync(self, client: str, ref: str, *, collection: str, want: dict[str, Any]) -> None:
        self._run("data_sync", client=client, ref=ref, collection=collection, want=want)

    def do_data_sync(self, client: str, ref: str, collection: str, want: dict[str, Any]) -> None:
        """data_sync (with ``want["since"]`` as sinceRevision, when given): the current
        revision, exactly the records the model lists with their versions and data, and
        the deleted ids it requires (plus, for a full sync, any it allows)."""
        target = self.clients[client]
        since = want["since"]
        payload: dict[str, Any] = {"collection": collection}
        if since is not None:
            payload["sinceRevision"] = since
        message_id = f"{client}-{ref}"
        target.send(SYNC, payload, id=message_id)
        self.sent_ids[ref] = message_id
        found = target.expect(
            SYNC_RESPONSE, correlation_id=message_id, within=self.within, requirement="DATA-007"
        )
        body = found.get("payload", {})
        revision = want["revision"]
        listing: list[str] = [want["requirement"]]
        if revision == 0:
            listing.append("DATA-010")
        sent = (
            f"{target.describe_sent(message_id)}: "
            + (f"sinceRevision {since}" if since is not None else "no sinceRevision")
            + f"; the collection's changes: {want['story']}"
            + (f"; {want['refusals']} changes refused" if want["refusals"] else "")
        )

        def fail(requirement: str | list[str], expected: str, received: str) -> None:
            raise target.failure(requirement, sent=sent, expected=expected, received=received)

        if body.get("collection") != collection:
            fail("DATA-007", f"collection {json_text(collection)}", summarize(found))
        if body.get("revision") != revision:
            beyond = since is not None and since > revision
            fail(
                ["DATA-011" if beyond else "DATA-007", *listing[1:]],
                f"revision {revision}"
                + (f" (sinceRevision {since} is beyond it)" if beyond else ""),
                f"revision {json_text(body.get('revision'))}",
            )
        label_of = {i: label for label, i in self.record_ids.items()}
        listed: dict[str, dict[str, Any]] = {}
        for entry in body.get("records") or []:
            record_id = entry.get("recordId") if isinstance(entry, dict) else None
            label = label_of.get(record_id) if isinstance(record_id, str) else None
            if label is None:
                fail(listing, "only records the program created", f"record {json_text(entry)}")
            elif label in listed:
                fail(listing, f"{self._record(label)} listed once", "listed twice")
            else:
                listed[label] = entry
        wanted: dict[str, list[Any]] = want["records"]
        shown = sorted(wanted)
        changed: dict[str, int] = want["changed"]
        for label in sorted(set(listed) - set(wanted)):
            fail(
                listing,
                f"records {shown}",
                f"{self._record(label)} listed too, but {self._why(label, since, want)}",
            )
        for label in sorted(set(wanted) - set(listed)):
            fail(
                listing,
                f"records {shown}: {self._record(label)} changed at revision {changed[label]}",
                f"records {sorted(listed)} (without {label})",
            )
        for label, (version, data, last) in wanted.items():
            decided_by = "DATA-002" if last == CREATE else "DATA-004"
            for key, value in (("version", version), ("data", data)):
                difference = json_difference(value, listed[label].get(key), f"/{key}")
                if difference is not None:
                    fail(
                        decided_by,
                        f"{self._record(label)} with {key} {json_text(value)}",
                        f"{difference} in {json_text(listed[label])}",
                    )
        required, allowed = set(want["deleted"]), set(want["deleted"]) | set(want["may_delete"])
        gone: set[str] = set()
        for record_id in body.get("deleted") or []:
            label = label_of.get(record_id) if isinstance(record_id, str) else None
            if label is not None and label in allowed:
                gone.add(label)
                continue
            fail(
                listing,
                f"deleted {sorted(required)}",
                f"{json_text(record_id) if label is None else self._record(label)} in "
                f"deleted, but {self._why(label, since, want)}",
            )
        missing = sorted(required - gone)
        if missing:
            fail(
                listing,
                f"deleted {sorted(required)}: each deleted after {since} and not there now",
                f"deleted {sorted(gone)} (without {', '.join(missing)})",
            )

    @staticmethod
    def _why(label: str | None, since: int | None, want: dict[str, Any]) -> str:
        """Why the model does not list a record where a sync response did."""
        changed: dict[str, int] = want["changed"]
        if label is None:
            return "the program used no such id"
        if label not in changed:
            return "the collection never held it"
        at = changed[label]
        if label in want["existing"]:
            return f"its last change came at revision {at}, not after {since}"
        return f"it was deleted at revision {at}" + (
            f", not after {since}" if since is not None else ""
        )

    # -- the end ---------------------------------------------------------------------------

    def data_settled(self, clients: list[str]) -> None:
        self._run("data_settled", clients=clients)

    def do_data_settled(self, clients: list[str]) -> None:
        """After a barrier on every open client, none holds a copy, sync response or error
        no step predicted: a copy of a refused change breaks ERR-004, a second copy or one
        for a client that is not subscribed DATA-008."""
        opened = [c for c in clients if c in self.clients and self.clients[c].is_open()]
        for label in opened:
            self.clients[label].sync()
        for label in opened:
            target = self.clients[label]
            left: list[Message] = target.take_all(lambda m: m.get("type") in WATCHED)
            refs = {i: ref for ref, i in self.sent_ids.items()}
            for message in left:
                of = correlation_of(message)
                name = f"change {refs[of]}" if of in refs else "a change"
                if message.get("type") == "error" or message.get("type") == SYNC_RESPONSE:
                    ids, why = ["ERR-001"], "an answer no step asked for"
                elif of in self.refused_ids:
                    ids, why = ["ERR-004", self.refused_ids[of]], f"a copy of refused {name}"
                elif label in self.delivered.get(str(of), set()):
                    ids, why = ["DATA-008"], f"a second copy of {name}"
                else:
                    ids, why = ["DATA-008"], f"a copy of {name}, to a connection not subscribed"
                raise target.failure(
                    ids,
                    expected=f"one copy of each change per subscribed connection and "
                    f"nothing else unasked for on {target.label}",
                    received=f"{why}: {summarize(message)}",
                )


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
        max_examples=run_settings.budget().room_programs,
        last=last,
    )
    rep.record("stateful.data.programs", last.get("programs", 0))
    rep.record("stateful.data.steps", last.get("steps", 0))
