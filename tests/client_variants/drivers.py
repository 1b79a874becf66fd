"""Deliberately broken clients: the reference client with one rule broken each.

``python -m tests.client_variants.drivers NAME`` runs the reference client's conformance
driver with the variant NAME patched in; ``VARIANTS`` says which requirement each one
breaks and which check must catch it (tests/test_client_conformance_variants.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import rep_client.messages as messages
import rep_client.sse as sse
import rep_client.ws as ws
from rep_client import driver
from rep_client.backoff import Backoff
from rep_client.errors import ClientError, RequestFailed


@dataclass(frozen=True)
class Variant:
    requirement: str
    check: str
    patch: Callable[[], None]
    doc: str


def _set(owner: Any, name: str, value: Any) -> None:
    setattr(owner, name, value)


def fixed_delay() -> None:
    _set(Backoff, "delay", lambda self, attempt: self.ceiling(attempt))


def no_backoff() -> None:
    _set(Backoff, "delay", lambda self, attempt: 0.01)


def never_gives_up() -> None:
    _set(Backoff, "exhausted", lambda self, failed: False)


def reconnects_after_any_close() -> None:
    _set(ws, "reconnect_rule", lambda code: "backoff")


def reconnects_after_own_close() -> None:
    """Treats every close as the server's doing, its own disconnect included."""

    async def close(self: ws.RepClient, reason: str = "client closing") -> None:
        if self._ws is not None and self.connected:
            with contextlib.suppress(ClientError):
                await self.request("disconnect", {"reason": reason}, timeout_s=5.0)

    _set(ws.RepClient, "close", close)
    _set(ws, "reconnect_rule", lambda code: "backoff")


def ignores_retry_after() -> None:
    original = ws.RepClient._dispatch

    async def dispatch(self: ws.RepClient, message: dict[str, Any]) -> None:
        await original(self, message)
        self._retry_after_s = 0.0

    _set(ws.RepClient, "_dispatch", dispatch)


def no_rejoin() -> None:
    async def restore(self: ws.RepClient) -> None:
        return None

    _set(ws.RepClient, "_restore", restore)


def duplicates_replays() -> None:
    _set(ws.Subscription, "first_time", lambda self, event_id: True)


def ignores_rate_limit() -> None:
    _set(ws.RepClient, "_holding", lambda self: False)
    original = ws.RepClient._dispatch

    async def dispatch(self: ws.RepClient, message: dict[str, Any]) -> None:
        await original(self, message)
        self._hold_until = 0.0

    _set(ws.RepClient, "_dispatch", dispatch)


def no_timeout() -> None:
    original = ws.RepClient.request

    async def request(
        self: ws.RepClient, type_name: str, payload: dict[str, Any], **kw: Any
    ) -> Any:
        kw["timeout_s"] = 3600.0
        return await original(self, type_name, payload, **kw)

    _set(ws.RepClient, "request", request)


def matches_by_order() -> None:
    original = ws.RepClient._dispatch

    async def dispatch(self: ws.RepClient, message: dict[str, Any]) -> None:
        pending = [k for k, p in self._pending.items() if p.type_name == "ping"]
        if message.get("type") == "pong" and pending:  # the oldest ping takes any pong
            message = {**message, "metadata": {**message["metadata"], "correlation_id": pending[0]}}
        await original(self, message)

    _set(ws.RepClient, "_dispatch", dispatch)


KNOWN_METADATA = {"version", "source", "correlation_id", "sender"}


def closes_on_unknown_members() -> None:
    """A strict reader: metadata members beyond those of 1.0 end the connection."""
    original = ws.RepClient._dispatch

    async def dispatch(self: ws.RepClient, message: dict[str, Any]) -> None:
        extra = set(message.get("metadata") or {}) - KNOWN_METADATA
        if extra and self._ws is not None:
            await self._ws.close(1002, "unexpected member")
            return
        await original(self, message)

    _set(ws.RepClient, "_dispatch", dispatch)


def closes_on_unknown_type() -> None:
    original = ws.RepClient._dispatch

    async def dispatch(self: ws.RepClient, message: dict[str, Any]) -> None:
        if not messages.is_known_type(message.get("type")) and self._ws is not None:
            await self._ws.close(1002, "unknown type")
            return
        await original(self, message)

    _set(ws.RepClient, "_dispatch", dispatch)


def retries_unknown_errors() -> None:
    original = ws.RepClient.request

    async def request(
        self: ws.RepClient, type_name: str, payload: dict[str, Any], **kw: Any
    ) -> Any:
        try:
            return await original(self, type_name, payload, **kw)
        except RequestFailed:
            return await original(self, type_name, payload, **kw)  # "maybe it works now"

    _set(ws.RepClient, "request", request)


def answers_heartbeats() -> None:
    original = ws.RepClient._dispatch

    async def dispatch(self: ws.RepClient, message: dict[str, Any]) -> None:
        if message.get("type") == "heartbeat":
            ping = {"timestamp": int(time.time() * 1000)}
            self._spawn(self.send("ping", ping, {"correlation_id": message.get("id")}))
        await original(self, message)

    _set(ws.RepClient, "_dispatch", dispatch)


def ignores_silence() -> None:
    async def watch(self: ws.RepClient, conn: Any, interval_s: float) -> None:
        await asyncio.Event().wait()

    _set(ws.RepClient, "_watch", watch)


def repeats_ids() -> None:
    _set(messages.IdSource, "next", lambda self: "same-id")


def sse_forgets_last_event_id() -> None:
    original = sse.SseClient._target

    def target(self: sse.SseClient) -> tuple[str, dict[str, str]]:
        self.last_event_id = None
        return original(self)

    _set(sse.SseClient, "_target", target)


def sse_ignores_retry() -> None:
    _set(sse.SseClient, "_note_retry", lambda self, source: None)
    original = sse.SseClient._reconnect

    async def reconnect(self: sse.SseClient, session: Any) -> Any:
        self.retry_s = 0.0
        return await original(self, session)

    _set(sse.SseClient, "_reconnect", reconnect)


VARIANTS: dict[str, Variant] = {
    "repeats_ids": Variant(
        "CLIENT-001",
        "test_client_messages_are_valid_with_fresh_ids",
        repeats_ids,
        "every message has the same id",
    ),
    "no_timeout": Variant(
        "CLIENT-002",
        "test_a_request_without_answer_times_out",
        no_timeout,
        "requests wait for an hour",
    ),
    "matches_by_order": Variant(
        "CLIENT-003",
        "test_answers_are_matched_by_correlation_id",
        matches_by_order,
        "a pong resolves the oldest ping",
    ),
    "closes_on_unknown_members": Variant(
        "CLIENT-004",
        "test_unknown_members_are_ignored",
        closes_on_unknown_members,
        "closes on a member the 1.0 schemas do not list",
    ),
    "closes_on_unknown_type": Variant(
        "CLIENT-005",
        "test_unknown_types_are_ignored",
        closes_on_unknown_type,
        "closes on an unregistered type",
    ),
    "retries_unknown_errors": Variant(
        "CLIENT-006",
        "test_unknown_error_codes_fail_the_request",
        retries_unknown_errors,
        "sends a failed request again",
    ),
    "answers_heartbeats": Variant(
        "CLIENT-007",
        "test_heartbeats_are_not_answered",
        answers_heartbeats,
        "answers each heartbeat with a correlated ping",
    ),
    "ignores_silence": Variant(
        "CLIENT-008",
        "test_a_silent_server_is_left",
        ignores_silence,
        "never notices a silent server",
    ),
    "no_backoff": Variant(
        "CLIENT-009",
        "test_reconnection_follows_the_backoff_schedule",
        no_backoff,
        "reconnects after 10 ms every time",
    ),
    "fixed_delay": Variant(
        "CLIENT-010",
        "test_reconnection_delays_are_jittered",
        fixed_delay,
        "waits exactly d, without jitter",
    ),
    "never_gives_up": Variant(
        "CLIENT-011",
        "test_reconnection_gives_up_after_the_configured_attempts",
        never_gives_up,
        "keeps trying for ever",
    ),
    "reconnects_after_any_close": Variant(
        "CLIENT-012",
        "client.py::test_close_codes_are_followed[1008]",
        reconnects_after_any_close,
        "reconnects whatever the close code",
    ),
    "reconnects_after_own_close": Variant(
        "CLIENT-013",
        "test_a_close_of_its_own_is_final",
        reconnects_after_own_close,
        "reconnects after its own disconnect",
    ),
    "ignores_retry_after": Variant(
        "CLIENT-014",
        "test_retry_after_ms_is_waited",
        ignores_retry_after,
        "ignores the disconnect's retryAfterMs",
    ),
    "no_rejoin": Variant(
        "CLIENT-015",
        "test_rooms_and_streams_are_restored",
        no_rejoin,
        "restores nothing after a reconnect",
    ),
    "duplicates_replays": Variant(
        "CLIENT-016",
        "test_replayed_events_are_delivered_once",
        duplicates_replays,
        "delivers replayed events again",
    ),
    "ignores_rate_limit": Variant(
        "CLIENT-017",
        "test_rate_limited_is_waited_out",
        ignores_rate_limit,
        "sends on through a rate_limited error",
    ),
    "sse_forgets_last_event_id": Variant(
        "CLIENT-018",
        "test_sse_resume_sends_the_last_event_id",
        sse_forgets_last_event_id,
        "resumes SSE without Last-Event-ID",
    ),
    "sse_ignores_retry": Variant(
        "CLIENT-019",
        "test_sse_retry_is_waited",
        sse_ignores_retry,
        "reconnects SSE without waiting the retry value",
    ),
}


if __name__ == "__main__":
    VARIANTS[sys.argv[1]].patch()
    sys.exit(asyncio.run(driver.main()))
