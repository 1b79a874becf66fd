"""Is the server still there? Probes after a failed check, so a crash is named once.

A server that dies during check X makes every later check fail with a refused
connection, blaming requirements it meets when it is up. After every failed check the
kit therefore probes the server (a handshake with a valid token, and ``GET /health`` for
the report); when the probe fails, the outage is recorded with the check during which it
began and the last frames that check sent. Until a probe succeeds again, checks are
``inconclusive: server unreachable``; a supervised server that comes back is checked
again from the next check on.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from conformance.client import open_websocket
from conformance.http import HttpClient
from conformance.target import Target
from conformance.tokens import TokenSource, TokenUnavailable
from conformance.transcript import Transcript

#: Attempts of one probe before the server is declared gone (a busy server gets another).
PROBE_ATTEMPTS = 2
#: Timeout (s) of a quick probe while an outage goes on.
QUICK_TIMEOUT = 1.0
#: Frames of the failing check shown in the outage's description.
LAST_FRAMES = 4


@dataclass
class Outage:
    check: str
    reason: str
    last_sent: list[str]
    started: float = field(default_factory=time.monotonic)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    ended_before: str | None = None
    patience_spent: bool = False

    def describe(self) -> str:
        text = f"the server stopped answering during {self.check}: {self.reason}"
        if self.last_sent:
            text += "; the last frames the kit sent were: " + " | ".join(self.last_sent)
        if self.ended_before:
            text += f"; it answered again before {self.ended_before}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "reason": self.reason,
            "last_sent": self.last_sent,
            "started_at": self.started_at,
            "back_before": self.ended_before,
        }


class ServerHealth:
    """The server's reachability over the run, shared by all checks (thread-safe)."""

    def __init__(self, target: Target, tokens: TokenSource) -> None:
        self.target = target
        self.tokens = tokens
        self.outages: list[Outage] = []
        self._lock = threading.Lock()

    @property
    def current(self) -> Outage | None:
        with self._lock:
            last = self.outages[-1] if self.outages else None
        return last if last is not None and last.ended_before is None else None

    def probe(self, *, quick: bool = False) -> str | None:
        """None when a handshake with a valid token succeeds, else what went wrong.

        A full probe tries twice (a busy server gets another chance) and asks
        ``/health`` for the report; a quick one, while an outage goes on, tries once
        with a short timeout, so a hung server costs each later check little.
        """
        timeout = min(QUICK_TIMEOUT, self.target.timeouts.connect) if quick else None
        reasons: list[str] = []
        attempts = 1 if quick else PROBE_ATTEMPTS
        for attempt in range(attempts):
            reason = self._handshake(timeout)
            if reason is None:
                return None
            reasons.append(reason)
            if attempt + 1 < attempts:
                time.sleep(0.2)
        return reasons[-1] if quick else f"{reasons[-1]}; {self._health_endpoint()}"

    def _handshake(self, timeout: float | None = None) -> str | None:
        try:
            token = self.tokens.mint("health-probe", ("user",))
        except TokenUnavailable:
            token = None
        try:
            handshake = open_websocket(
                self.target.node.ws_url,
                transcript=Transcript(),
                channel="probe",
                token=token,
                timeout=timeout or self.target.timeouts.connect,
            )
        except Exception as exc:  # any failure to connect means "not answering"
            return f"a WebSocket handshake failed ({exc.__cause__ or exc})"
        if handshake.connection is not None:
            handshake.connection.close()
        return None  # an upgrade or an HTTP refusal: either way the server answers

    def _health_endpoint(self) -> str:
        http = HttpClient(self.target.node.http_url, Transcript(), self.target.timeouts.connect)
        try:
            response = http.request("GET", "/health")
        except Exception as exc:  # refused, reset, timed out, garbled
            return f"GET /health failed ({exc})"
        return f"GET /health answered HTTP {response.status}"

    def after_failure(self, check: str, transcript: Transcript | None) -> Outage | None:
        """Probe after a failed check; the outage (new or ongoing) if the server is gone."""
        ongoing = self.current
        if ongoing is not None:
            return ongoing
        reason = self.probe()
        if reason is None:
            return None
        sent = [
            f"{e.channel} {e.kind} {e.text}"
            for e in (transcript.entries() if transcript is not None else [])
            if e.direction == "sent"
        ][-LAST_FRAMES:]
        outage = Outage(check, reason, sent)
        with self._lock:
            if self.outages and self.outages[-1].ended_before is None:
                return self.outages[-1]
            self.outages.append(outage)
        return outage

    def before_check(self, check: str) -> Outage | None:
        """Before a check during an outage: probe again (waiting once, for a supervisor
        to restart the server); the outage if it goes on, None if the server is back."""
        outage = self.current
        if outage is None:
            return None
        deadline = time.monotonic() + (0.0 if outage.patience_spent else self.patience)
        outage.patience_spent = True
        while True:
            if self.probe(quick=True) is None:
                outage.ended_before = check
                return None
            if time.monotonic() >= deadline:
                return outage
            time.sleep(0.25)

    @property
    def patience(self) -> float:
        """How long the first check after an outage waits for the server to come back."""
        return max(2.0, 2 * self.target.timeouts.connect)

    def went_away_since(self, started: float, until: float | None = None) -> Outage | None:
        """The outage that began during a check (``started`` to ``until``), if any."""
        with self._lock:
            return next(
                (
                    o
                    for o in self.outages
                    if o.started >= started and (until is None or o.started <= until)
                ),
                None,
            )
