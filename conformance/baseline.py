"""Expected-failures baselines: accepted known failures that must keep failing.

An entry names a check (``test``) or a requirement. A failure is baselined when a test
entry names its check, or when requirement entries cover every requirement the failure is
attributed to. An entry whose check now passes, or whose requirement was exercised and
never failed, is *stale* and fails the run, so baselines only shrink.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from conformance.target import BaselineEntry


def function_of(check_id: str) -> str:
    """``module.py::test_x[p]`` -> ``test_x``."""
    return check_id.split("::")[-1].split("[")[0]


def pattern_matches(pattern: str, check_id: str) -> bool:
    """Exact id, id without parameters, or bare function name."""
    if pattern == check_id:
        return True
    if "[" not in pattern and check_id.split("[")[0] == pattern:
        return True
    return "::" not in pattern and "[" not in pattern and function_of(check_id) == pattern


@dataclass(frozen=True)
class Baseline:
    entries: tuple[BaselineEntry, ...] = ()

    def test_entry(self, check_id: str) -> BaselineEntry | None:
        for entry in self.entries:
            if entry.test is not None and pattern_matches(entry.test, check_id):
                return entry
        return None

    def requirement_entry(self, requirement_id: str) -> BaselineEntry | None:
        for entry in self.entries:
            if entry.requirement == requirement_id:
                return entry
        return None

    def covering(self, check_id: str, failed: Sequence[str]) -> BaselineEntry | None:
        """The entry that accepts this failure, or None if it is a real failure."""
        by_test = self.test_entry(check_id)
        if by_test is not None:
            return by_test
        if not failed:
            return None
        found = [self.requirement_entry(rid) for rid in failed]
        if all(entry is not None for entry in found):
            return found[0]
        return None

    def stale_requirement_entries(
        self, exercised: Iterable[str], failed: Iterable[str]
    ) -> list[BaselineEntry]:
        """Requirement entries whose requirement was exercised and never failed."""
        ran, broke = set(exercised), set(failed)
        return [
            entry
            for entry in self.entries
            if entry.requirement is not None
            and entry.requirement in ran
            and entry.requirement not in broke
        ]
