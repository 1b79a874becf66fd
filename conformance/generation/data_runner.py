"""The steps of the data programs (conformance/checks/test_stateful_data.py): changes,
syncs and the copies each must bring, as a :class:`Runner` that records them, so that
``rep-conformance replay`` can perform a data program's replay file too."""

from __future__ import annotations

from typing import Any

from conformance import spec
from conformance.client import Message, correlation_of, json_text, summarize
from conformance.generation.data_model import CREATE, DELETE, UPDATE
from conformance.generation.scenario import Runner
from conformance.harness import Harness
from conformance.jsonvalues import json_difference

SYNC = spec.message_type("data_sync")
SYNC_RESPONSE = "data_sync_response"
#: Unpredicted messages at the end of a program.
WATCHED = frozenset({CREATE, UPDATE, DELETE, SYNC_RESPONSE, "error"})


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
