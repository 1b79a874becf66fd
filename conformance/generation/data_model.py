"""What the spec says a collection holds: the model the data programs compare servers with.

One program uses one fresh collection. The model holds, per record (named by a label, as
the server's id may only be learnt from the first copy), whether it exists, its version,
its data and the revision of its last change; for the collection its revision and the
history of changes; per client whether it is connected and subscribed. Its questions are
the predictions: the outcome of a change (the version its copies carry and who receives
one, or the error that refuses it), and what a ``data_sync`` with any ``sinceRevision``
must list. Nothing here does I/O.

Decisions where the spec leaves room:

* The order of ``records`` and ``deleted`` in a sync response is not specified: both are
  compared as sets. A record listed twice is wrong (which entry would a client keep?); an
  id repeated in ``deleted`` is tolerated, as it asks the client to forget the same id twice.
* A sync without ``sinceRevision`` returns "all its records" (DATA-007) and says nothing
  of ``deleted``: any ids of records the collection held and no longer holds are
  accepted there, none of a record it holds.
* Which of forbidden, not_found and conflict comes first when several apply is left to
  each feature's page, which does not fix it for data: the client without data:write only
  sends changes that would otherwise succeed, so forbidden is its only right answer.

Rate limits (RATE-001) are respected as the room and stream programs respect them: the
clients' users share a :class:`~conformance.generation.model.Model` budget per program.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conformance import spec
from conformance.generation.model import Model

CREATE = spec.message_type("data_create")
UPDATE = spec.message_type("data_update")
DELETE = spec.message_type("data_delete")
CONFLICT = spec.error_code("conflict")
NOT_FOUND = spec.error_code("not_found")
FORBIDDEN = spec.error_code("forbidden")
#: The lowest record version the schemas admit: a created record's (DATA-002).
FIRST_VERSION = int(spec.schema_at("defs.schema.json#/$defs/version")["minimum"])
#: The lowest sinceRevision the schemas admit: the revision of a collection never changed.
FIRST_REVISION = int(
    spec.schema_at("payloads/data_sync.schema.json")["properties"]["sinceRevision"]["minimum"]
)
#: How far past the current revision the "beyond" positions reach (DATA-011).
BEYOND = (1, 1_000)
#: Where a sync's sinceRevision is drawn from; ``none`` is a full sync.
SINCE_KINDS = ("none", "zero", "seen", "survivor", "current", "beyond")
#: The requirement that decides each outcome of each change type.
DECIDED_BY = {
    (CREATE, "ok"): "DATA-002",
    (CREATE, CONFLICT): "DATA-003",
    (UPDATE, "ok"): "DATA-004",
    (UPDATE, CONFLICT): "DATA-004",
    (UPDATE, NOT_FOUND): "DATA-005",
    (DELETE, "ok"): "DATA-006",
    (DELETE, CONFLICT): "DATA-006",
    (DELETE, NOT_FOUND): "DATA-005",
    (CREATE, FORBIDDEN): "DATA-009",
    (UPDATE, FORBIDDEN): "DATA-009",
    (DELETE, FORBIDDEN): "DATA-009",
}


@dataclass
class RecordModel:
    label: str
    exists: bool = False
    #: Ever created: a label never created is unknown to the server (not_found, DATA-005).
    created: bool = False
    #: The server chose the id (the first create sent none); it is learnt from the copy.
    assigned: bool = False
    #: The current version, or for a deleted record the version it had.
    version: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    #: The revision of its last change: create, update or delete.
    changed_at: int = 0
    #: The type of its last change, which names the requirement of its version and data.
    last: str = CREATE


@dataclass(frozen=True)
class Change:
    """The predicted outcome of one change message."""

    type: str
    sender: str
    record: str
    #: ``ok`` or the error code that refuses it.
    outcome: str
    #: The version its copies carry (for a delete, the version the record had).
    version: int | None
    data: dict[str, Any] | None
    #: The collection's revision once it is applied (unchanged when refused).
    revision: int
    #: Who receives a copy, each exactly once: the sender first, then the subscribers.
    recipients: tuple[str, ...]
    requirement: str

    @property
    def refused(self) -> bool:
        return self.outcome != "ok"


@dataclass(frozen=True)
class SyncPrediction:
    """What a data_sync response must hold, record labels instead of ids."""

    since: int | None
    revision: int
    #: label -> (version, data, type of its last change)
    records: Mapping[str, tuple[int, dict[str, Any], str]]
    #: Labels that must be listed in ``deleted``.
    deleted: frozenset[str]
    #: Labels that may be listed in ``deleted`` too (a full sync's leeway).
    may_delete: frozenset[str]

    @property
    def requirement(self) -> str:
        """Which rule decides the listing: the full sync's DATA-007, or DATA-011."""
        return "DATA-007" if self.since is None else "DATA-011"


@dataclass
class DataClient:
    label: str
    writes: bool = True
    subscribed: bool = False


class DataModel:
    """The expected state of one program's collection and its clients."""

    def __init__(self, budget: int | None = None) -> None:
        self.people = Model(budget)
        self.clients: dict[str, DataClient] = {}
        self.records: dict[str, RecordModel] = {}
        self.revision = FIRST_REVISION
        #: (revision, type, record label, version) of every applied change, in order.
        self.history: list[tuple[int, str, str, int]] = []
        self.refusals = 0

    # -- clients ---------------------------------------------------------------------------

    def add_client(self, label: str, user: str, *, writes: bool = True) -> None:
        self.people.add_client(label, user)
        self.clients[label] = DataClient(label, writes)

    def add_record(self, label: str) -> None:
        self.records[label] = RecordModel(label)

    def connect(self, label: str) -> None:
        self.people.connect(label)

    def disconnect(self, label: str) -> None:
        """A subscription lasts as long as its connection (DATA-008)."""
        self.people.disconnect(label)
        self.clients[label].subscribed = False

    def connected(self) -> list[str]:
        return self.people.connected()

    def disconnected(self) -> list[str]:
        return self.people.disconnected()

    def actors(self, messages: int, *, writers: bool = False) -> list[str]:
        """Connected clients that can afford ``messages`` (only writers, if asked)."""
        found = self.people.actors(messages)
        return [c for c in found if self.clients[c].writes] if writers else found

    def spend(self, label: str, messages: int) -> None:
        self.people.spend(label, messages)

    def subscribers(self) -> list[str]:
        return sorted(
            c.label
            for c in self.clients.values()
            if c.subscribed and self.people.clients[c.label].connected
        )

    # -- records ---------------------------------------------------------------------------

    def existing(self) -> list[str]:
        return sorted(r.label for r in self.records.values() if r.exists)

    def never_created(self) -> list[str]:
        return sorted(r.label for r in self.records.values() if not r.created)

    def stale_versions(self, label: str) -> list[int]:
        """expectedVersion values that differ from the record's version: one behind, one
        ahead, and the first version (when that is not the current one)."""
        version = self.records[label].version
        found = {version - 1, version + 1, FIRST_VERSION} - {version}
        return sorted(v for v in found if v >= FIRST_VERSION)

    def _recipients(self, sender: str) -> tuple[str, ...]:
        return (sender, *[c for c in self.subscribers() if c != sender])

    def _refused(self, type_: str, sender: str, label: str, code: str) -> Change:
        self.refusals += 1
        return Change(
            type_, sender, label, code, None, None, self.revision, (), DECIDED_BY[type_, code]
        )

    def _applied(
        self, type_: str, sender: str, record: RecordModel, data: dict[str, Any] | None
    ) -> Change:
        self.revision += 1
        record.changed_at = self.revision
        record.last = type_
        self.history.append((self.revision, type_, record.label, record.version))
        return Change(
            type_,
            sender,
            record.label,
            "ok",
            record.version,
            data,
            self.revision,
            self._recipients(sender),
            DECIDED_BY[type_, "ok"],
        )

    def create(
        self, sender: str, label: str, data: dict[str, Any], *, assigned: bool = False
    ) -> Change:
        """A create of ``label``: conflict while it exists (DATA-003), otherwise version 1,
        a re-created record included (DATA-002). ``assigned``: the message names no id,
        so the server chooses one (only for a label never created)."""
        record = self.records[label]
        if not self.clients[sender].writes:
            return self._refused(CREATE, sender, label, FORBIDDEN)
        if record.exists:
            return self._refused(CREATE, sender, label, CONFLICT)
        if assigned and record.created:
            raise ValueError(f"{label} already has an id; only a first create may omit it")
        record.assigned = record.assigned or assigned
        record.exists = record.created = True
        record.version = FIRST_VERSION
        record.data = dict(data)
        return self._applied(CREATE, sender, record, record.data)

    def _refusal(
        self, type_: str, sender: str, record: RecordModel, expected: int | None
    ) -> Change | None:
        if not self.clients[sender].writes:
            return self._refused(type_, sender, record.label, FORBIDDEN)
        if not record.exists:
            return self._refused(type_, sender, record.label, NOT_FOUND)
        if expected is not None and expected != record.version:
            return self._refused(type_, sender, record.label, CONFLICT)
        return None

    def update(
        self, sender: str, label: str, data: dict[str, Any], expected: int | None = None
    ) -> Change:
        """Replace the data, one version more (DATA-004); not_found for a record that does
        not exist (DATA-005); conflict for a stale expectedVersion, nothing changed."""
        record = self.records[label]
        refusal = self._refusal(UPDATE, sender, record, expected)
        if refusal is not None:
            return refusal
        record.version += 1
        record.data = dict(data)
        return self._applied(UPDATE, sender, record, record.data)

    def delete(self, sender: str, label: str, expected: int | None = None) -> Change:
        """Remove the record; the copy carries the version it had (DATA-006)."""
        record = self.records[label]
        refusal = self._refusal(DELETE, sender, record, expected)
        if refusal is not None:
            return refusal
        record.exists = False
        return self._applied(DELETE, sender, record, None)

    def would_succeed(self, type_: str, label: str) -> bool:
        """Whether a writer's change of this type (without expectedVersion) would apply."""
        exists = self.records[label].exists
        return not exists if type_ == CREATE else exists

    # -- sync ------------------------------------------------------------------------------

    def since_options(self, kind: str) -> list[int]:
        """sinceRevision values of one kind: ``zero``; ``seen``, every revision the
        collection has had; ``survivor``, the revision at which a record that exists now
        last changed (DATA-011's boundary: it is not after itself); ``current``; ``beyond``
        the current revision."""
        if kind == "zero":
            return [FIRST_REVISION]
        if kind == "seen":
            return list(range(FIRST_REVISION, self.revision + 1))
        if kind == "survivor":
            return sorted({r.changed_at for r in self.records.values() if r.exists})
        if kind == "current":
            return [self.revision]
        if kind == "beyond":
            return [self.revision + step for step in BEYOND]
        raise ValueError(f"no sinceRevision of kind {kind!r}")

    def sync(self, label: str, since: int | None) -> SyncPrediction:
        """The response to ``label``'s data_sync, which subscribes it (DATA-008).

        With ``since``: the records whose last change came after it, and the records
        deleted after it that do not exist now, those created after it included (DATA-007,
        DATA-011); beyond the current revision, nothing. Without: every record."""
        self.clients[label].subscribed = True
        gone = frozenset(r.label for r in self.records.values() if r.created and not r.exists)
        listed = {
            r.label: (r.version, dict(r.data), r.last)
            for r in self.records.values()
            if r.exists and (since is None or r.changed_at > since)
        }
        if since is None:
            return SyncPrediction(None, self.revision, listed, frozenset(), gone)
        deleted = frozenset(label for label in gone if self.records[label].changed_at > since)
        return SyncPrediction(since, self.revision, listed, deleted, frozenset())

    def story(self) -> str:
        """The applied changes so far, for failure messages: what the spec counts from."""
        if not self.history:
            return "no change applied yet"
        return ", ".join(
            f"{rev}: {kind.removeprefix('data_')} {label} v{version}"
            for rev, kind, label, version in self.history
        )
