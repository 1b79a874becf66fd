"""The failure type every check raises, and how it explains itself to an implementer.

A :class:`ConformanceFailure` is an :class:`AssertionError`, so pytest reports it as an
ordinary test failure. It names the requirements the server broke (ids from the registry),
what the kit sent, what the spec requires, what actually came back, the transcript of the
whole exchange and a command that replays the check. Its texts are redacted
(:mod:`conformance.redact`): they end up in reports, and what was sent may be a token.
"""

from __future__ import annotations

from collections.abc import Iterable

from conformance.redact import redact
from conformance.transcript import Transcript
from rep_spec import requirements


def requirement_line(requirement_id: str) -> str:
    """``ID (LEVEL, Section): text`` for one requirement, or a note that the id is unknown."""
    index = requirements()
    if requirement_id not in index:
        return f"{requirement_id}: (not in the requirements registry)"
    found = index[requirement_id]
    section = index.sections.get(found.section, found.section)
    return f"{found.id} ({found.level}, {section}): {found.text}"


class ConformanceFailure(AssertionError):
    """The server departed from the spec; the message says what to fix.

    ``sent`` describes the kit's message that the finding is about (``None`` when the
    finding is not an answer to one), ``expected`` what the spec requires in concrete
    terms, ``received`` what the server did instead.
    """

    def __init__(
        self,
        requirement_ids: Iterable[str],
        *,
        expected: str,
        received: str,
        sent: str | None = None,
        transcript: Transcript | None = None,
        replay: str | None = None,
    ) -> None:
        self.requirement_ids: tuple[str, ...] = tuple(dict.fromkeys(requirement_ids))
        if not self.requirement_ids:
            raise ValueError("a conformance failure names at least one requirement")
        self.sent = redact(sent) if sent is not None else None
        self.expected = redact(expected)
        self.received = redact(received)
        self.transcript = transcript
        self.replay = replay
        super().__init__(self.summary())

    def absorb(self, other: ConformanceFailure) -> None:
        """Add the findings of another failure of the same check (e.g. frame problems)."""
        self.requirement_ids = tuple(dict.fromkeys(self.requirement_ids + other.requirement_ids))
        self.received = redact(f"{self.received}; also: {other.received}")
        self.args = (self.summary(),)

    def summary(self) -> str:
        """One line: sent; expected; received (the form implementers grep for)."""
        parts = [f"sent {self.sent}"] if self.sent else []
        parts.append(f"expected {self.expected} ({', '.join(self.requirement_ids)})")
        parts.append(self.received)
        return redact("; ".join(parts))

    @property
    def requirement_texts(self) -> dict[str, str]:
        """What the spec requires, by requirement id (the registry's own words)."""
        index = requirements()
        return {rid: index[rid].text for rid in self.requirement_ids if rid in index}

    def spec_text(self) -> str:
        """What the spec requires, one requirement per line, quoted from the registry."""
        return "\n".join(requirement_line(rid) for rid in self.requirement_ids)

    def __str__(self) -> str:
        text = f"{self.summary()}\n{self.spec_text()}"
        if self.replay:
            text += f"\nreplay: {self.replay}"
        return redact(text)
