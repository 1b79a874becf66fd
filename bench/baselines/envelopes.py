"""Envelope-shaped replies built the cheapest sound way, shared by every baseline."""

from __future__ import annotations

import itertools
import os
import time
from datetime import UTC, datetime
from typing import Any

VERSION = "1.0"


class Envelopes:
    """Counter ids and a timestamp string recomputed once per millisecond."""

    def __init__(self) -> None:
        self._node = os.urandom(4).hex()
        self._ids = itertools.count(1)
        self._ms = -1
        self._stamp = ""

    def timestamp(self) -> str:
        ms = time.time_ns() // 1_000_000
        if ms != self._ms:
            self._ms = ms
            moment = datetime.fromtimestamp(ms / 1000, UTC)
            self._stamp = moment.isoformat(timespec="milliseconds")
        return self._stamp

    def build(
        self, message_type: str, payload: dict[str, Any], correlation_id: str | None = None
    ) -> dict[str, Any]:
        metadata: dict[str, Any] = {"version": VERSION, "source": "server"}
        if correlation_id is not None:
            metadata["correlation_id"] = correlation_id
        return {
            "id": f"{self._node}-{next(self._ids)}",
            "type": message_type,
            "timestamp": self.timestamp(),
            "payload": payload,
            "metadata": metadata,
        }

    def pong(self, ping: dict[str, Any]) -> dict[str, Any]:
        payload: dict[str, Any] = {"timestamp": time.time_ns() // 1_000_000}
        if "timestamp" in ping.get("payload", {}):
            payload["echo"] = ping["payload"]["timestamp"]
        return self.build("pong", payload, ping.get("id"))
