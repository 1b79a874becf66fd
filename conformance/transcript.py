"""What happened on the wire during one check: every frame, close and HTTP exchange, timed.

Transcripts are the evidence behind a verdict. Entries carry a monotonic time relative to
the start of the check, the channel (a connection label such as ``alice#1`` or ``http``),
a direction and a rendering of the frame. Problems that the frame checker finds in a
received frame are attached to that entry, so reports can show them in place.

Every text and problem is redacted on entry (:mod:`conformance.redact`): transcripts end
up in reports, and a handshake or request may carry a token.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from conformance.redact import redact

Direction = Literal["sent", "received", "event"]

#: Frames longer than this are cut in transcripts; size checks send 64 KiB frames.
MAX_RENDERED = 600
#: Text redacted before the final clip: enough to see whole tokens around the cut,
#: without searching a 64 KiB frame for secrets.
REDACT_BEFORE_CLIP = 4 * MAX_RENDERED


def clip(text: str, limit: int = MAX_RENDERED) -> str:
    """Keep transcripts readable when a check sends or receives a very large frame."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters]"


@dataclass(frozen=True)
class Entry:
    at: float
    channel: str
    direction: Direction
    kind: str
    text: str
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "at": round(self.at, 4),
            "channel": self.channel,
            "direction": self.direction,
            "kind": self.kind,
            "text": self.text,
        }
        if self.problems:
            found["problems"] = list(self.problems)
        return found

    def render(self) -> str:
        arrow = {"sent": "->", "received": "<-", "event": "**"}[self.direction]
        line = f"{self.at:8.3f}s {self.channel:>14} {arrow} {self.kind:<9} {self.text}"
        for problem in self.problems:
            line += f"\n{'':>27}!! {problem}"
        return line


@dataclass
class Transcript:
    """Thread-safe, append-only log of one check; reader threads append received frames."""

    started: float = field(default_factory=time.monotonic)
    _entries: list[Entry] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        return time.monotonic() - self.started

    def add(
        self,
        channel: str,
        direction: Direction,
        kind: str,
        text: str,
        problems: tuple[str, ...] = (),
        at: float | None = None,
    ) -> Entry:
        entry = Entry(
            self.now() if at is None else at,
            channel,
            direction,
            kind,
            clip(redact(clip(text, REDACT_BEFORE_CLIP))),
            tuple(redact(problem) for problem in problems),
        )
        with self._lock:
            self._entries.append(entry)
        return entry

    def note(self, text: str, channel: str = "kit") -> Entry:
        return self.add(channel, "event", "note", text)

    def entries(self) -> list[Entry]:
        with self._lock:
            return sorted(self._entries, key=lambda e: e.at)

    def to_dicts(self) -> list[dict[str, Any]]:
        return [entry.to_dict() for entry in self.entries()]

    def render(self) -> str:
        return "\n".join(entry.render() for entry in self.entries())
