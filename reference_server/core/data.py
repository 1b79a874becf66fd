"""Shared collections: versioned records, optimistic concurrency, sync (DATA-*)."""

from __future__ import annotations

import uuid
from typing import Any

from reference_server.broker.base import (
    Publication,
    RecordOutcome,
)
from reference_server.core.base import (
    CoreBase,
    Refused,
    collection_topic,
)
from reference_server.core.connection import Connection
from reference_server.core.effects import Publish, Send, Step, ask


class DataHandlers(CoreBase):
    def _data_change(
        self,
        connection: Connection,
        message: dict[str, Any],
        outcome: RecordOutcome,
        include_data: bool,
    ) -> Step[None]:
        payload = message["payload"]
        if outcome.status == "not_found":
            raise Refused("not_found", f"no record {payload['recordId']}", "DATA-005")
        if outcome.status == "conflict":
            requirement = {"data_create": "DATA-003", "data_update": "DATA-004"}.get(
                message["type"], "DATA-006"
            )
            raise Refused("conflict", "the record changed since that version", requirement)
        assert outcome.record is not None
        copy_payload: dict[str, Any] = {
            "collection": payload["collection"],
            "recordId": outcome.record.record_id,
            "version": outcome.record.version,
        }
        if include_data:
            copy_payload["data"] = outcome.record.data
        copy = self._copy(connection, message, copy_payload)
        collection = payload["collection"]
        if collection not in connection.collections:  # the sender's copy, exactly once
            yield Send(connection.client_id, copy)
        yield Publish(Publication(collection_topic(collection), copy))

    def on_data_create(
        self, connection: Connection, message: dict[str, Any], now_ms: int
    ) -> Step[None]:
        self._require(connection, "data:write", "DATA-009")
        payload = message["payload"]
        record_id = payload.get("recordId") or uuid.uuid4().hex
        outcome = yield from ask(
            lambda b: b.record_create(payload["collection"], record_id, payload["data"])
        )
        yield from self._data_change(connection, message, outcome, include_data=True)

    def on_data_update(
        self, connection: Connection, message: dict[str, Any], now_ms: int
    ) -> Step[None]:
        self._require(connection, "data:write", "DATA-009")
        payload = message["payload"]
        outcome = yield from ask(
            lambda b: b.record_update(
                payload["collection"],
                payload["recordId"],
                payload["data"],
                payload.get("expectedVersion"),
            )
        )
        yield from self._data_change(connection, message, outcome, include_data=True)

    def on_data_delete(
        self, connection: Connection, message: dict[str, Any], now_ms: int
    ) -> Step[None]:
        self._require(connection, "data:write", "DATA-009")
        payload = message["payload"]
        outcome = yield from ask(
            lambda b: b.record_delete(
                payload["collection"], payload["recordId"], payload.get("expectedVersion")
            )
        )
        yield from self._data_change(connection, message, outcome, include_data=False)

    def on_data_sync(
        self, connection: Connection, message: dict[str, Any], now_ms: int
    ) -> Step[None]:
        self._require(connection, "data:read", "DATA-009")
        payload = message["payload"]
        collection: str = payload["collection"]
        result = yield from ask(lambda b: b.record_sync(collection, payload.get("sinceRevision")))
        connection.collections.add(collection)  # DATA-008
        yield self._respond(
            connection,
            message,
            {
                "collection": collection,
                "revision": result.revision,
                "records": [
                    {"recordId": r.record_id, "version": r.version, "data": r.data}
                    for r in result.records
                ],
                "deleted": list(result.deleted),
            },
        )
