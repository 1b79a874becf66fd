"""Judging heartbeat timing over samples, as LIFE-010 says, for every check that watches them.

The fixed LIFE-002 check watches one connection for six intervals; the room programs pool
the heartbeats of every connection they opened. Both judge the same way: no gap may exceed
the interval by more than the tolerance, and the median gap between heartbeats must meet
the interval within LIFE-010's jitter allowance, so a server late by a few percent on
every beat fails although no single gap is too long.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from conformance import spec
from conformance.client import json_text
from conformance.harness import Harness

#: The jitter LIFE-010 allows the median gap, as a fraction of the interval.
MEDIAN_SLACK = int(spec.quoted("LIFE-010", "2 %").split()[0]) / 100
#: Gaps between heartbeats a median needs before it says anything about a delay.
MEDIAN_SAMPLES = 3


@dataclass(frozen=True)
class Watch:
    """One connection's heartbeat arrivals, between the marks where it was watched."""

    opened: float
    beats: tuple[float, ...]
    end: float | None

    @property
    def gaps(self) -> list[float]:
        """Every stretch without a heartbeat: from the welcome, between beats, to the end."""
        marks = [self.opened, *self.beats, *([] if self.end is None else [self.end])]
        return [later - earlier for earlier, later in itertools.pairwise(marks)]

    @property
    def between(self) -> list[float]:
        return [later - earlier for earlier, later in itertools.pairwise(self.beats)]


@dataclass(frozen=True)
class Judged:
    """The longest gap and the median gap between heartbeats (None without samples)."""

    worst: float | None
    median: float | None
    between: tuple[float, ...]


def pooled(watches: Sequence[Watch]) -> Judged:
    gaps = [g for w in watches for g in w.gaps]
    between = tuple(g for w in watches for g in w.between)
    middle = statistics.median(between) if len(between) >= MEDIAN_SAMPLES else None
    return Judged(max(gaps) if gaps else None, middle, between)


def judge_heartbeats(
    rep: Harness,
    watches: Sequence[Watch],
    interval: float,
    *,
    watched: str,
    median_required: bool = True,
) -> Judged:
    """Raise a LIFE-002 failure when the pooled gaps break LIFE-010's rules.

    ``median_required``: too few gaps for a median is itself a failure (a check that
    watched long enough to see several heartbeats); otherwise the median is judged only
    when there are :data:`MEDIAN_SAMPLES` gaps or more.
    """
    tolerance = rep.timeouts.heartbeat_tolerance
    found = pooled(watches)
    worst, middle = found.worst, found.median
    if worst is not None and worst > interval + tolerance:
        raise rep.fail(
            "LIFE-002",
            expected=f"a heartbeat at least every {interval:g} s (tolerance {tolerance:g} s)",
            received=f"{watched}; the longest gap was {worst:.3f} s",
        )
    if (middle is None and median_required) or (
        middle is not None and middle > interval * (1 + MEDIAN_SLACK)
    ):
        raise rep.fail(
            ("LIFE-002", "LIFE-010"),
            expected=f"the median gap between heartbeats at most {interval:g} s plus "
            f"{MEDIAN_SLACK:.0%} ({interval * (1 + MEDIAN_SLACK):.3f} s)",
            received=f"{watched}; gaps {json_text([round(g, 3) for g in found.between])}, "
            f"median {json_text(None if middle is None else round(middle, 3))} s",
        )
    return found
