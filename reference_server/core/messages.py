"""Building the envelopes a server sends: ids, timestamps, metadata, errors."""

from __future__ import annotations

import itertools
import os
import time
from datetime import UTC, datetime
from typing import Any

from rep_spec import Problem, catalog


class MessageFactory:
    """Server message ids are ``<node>-<counter>``: unique per connection (ENV-010), cheap."""

    def __init__(self, node_id: str | None = None) -> None:
        self.node_id = node_id or os.urandom(4).hex()
        self._counter = itertools.count(1)
        self._version = catalog().protocol_version
        self._stamp_ms = -1
        self._stamp = ""

    def next_id(self) -> str:
        return f"{self.node_id}-{next(self._counter)}"

    def timestamp(self) -> str:
        """Now as RFC 3339 UTC with milliseconds, formatted once per millisecond.

        Formatting a datetime costs more than the rest of an envelope; under load many
        messages share a millisecond, so the string is reused until the clock moves on.
        """
        now_ms = time.time_ns() // 1_000_000
        if now_ms != self._stamp_ms:
            seconds, millis = divmod(now_ms, 1000)
            moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=millis * 1000)
            self._stamp = moment.isoformat(timespec="milliseconds")
            self._stamp_ms = now_ms
        return self._stamp

    def build(
        self,
        message_type: str,
        payload: dict[str, Any],
        *,
        correlation_id: str | None = None,
        sender: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        metadata: dict[str, Any] = {"version": self._version, "source": "server"}
        if correlation_id is not None:
            metadata["correlation_id"] = correlation_id
        if sender is not None:
            metadata["sender"] = sender
        return {
            "id": self.next_id(),
            "type": message_type,
            "timestamp": self.timestamp(),
            "payload": payload,
            "metadata": metadata,
        }

    def error(
        self,
        code: str,
        message: str,
        *,
        correlation_id: str | None = None,
        details: dict[str, Any] | None = None,
        retry_after_ms: int | None = None,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"code": code, "message": message}
        if details:
            payload["details"] = details
        if retry_after_ms is not None:
            payload["retry_after_ms"] = retry_after_ms
        return self.build("error", payload, correlation_id=correlation_id)

    def problem(self, problem: Problem) -> dict[str, Any]:
        return self.error(
            problem.code,
            problem.message,
            correlation_id=problem.correlation_id,
            details=problem.details() or None,
        )
