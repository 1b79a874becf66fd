"""Verdicts: from raw check outcomes to per-check and per-requirement judgements.

Pure functions over plain data, so the rules are unit-tested without a server:

========== ===========================================================================
verdict    meaning
========== ===========================================================================
pass       the check ran and the server behaved as required
fail       a MUST (or MUST NOT) requirement was broken
warn       only SHOULD requirements were broken (fails the run with ``--strict``)
skip       not applicable: feature not advertised, fixture not configured, over budget
info       an informational check that reports figures only
baselined  a failure the target's baseline accepts
stale      a baseline entry whose check now passes (fails the run)
========== ===========================================================================

Requirements additionally get ``inconclusive`` (their checks stopped on another
requirement's failure), ``not-checked`` (their checks did not run, e.g. deselected) and
``out-of-scope`` (verified by the schema vectors or by review, not from outside a server).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from conformance.baseline import Baseline
from rep_spec import Requirement, requirements

Outcome = Literal["passed", "failed", "skipped"]
FAILING = frozenset({"fail", "stale"})


@dataclass
class CheckResult:
    """One check's raw outcome, as the plugin observed it, plus its verdict."""

    check_id: str
    nodeid: str
    requirement_ids: tuple[str, ...]
    outcome: Outcome
    duration: float = 0.0
    failed_requirements: tuple[str, ...] = ()
    message: str = ""
    informational: bool = False
    transcript: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    replay: str | None = None
    verdict: str = ""
    baseline_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.check_id,
            "nodeid": self.nodeid,
            "requirements": list(self.requirement_ids),
            "verdict": self.verdict,
            "outcome": self.outcome,
            "duration_s": round(self.duration, 4),
            "failed_requirements": list(self.failed_requirements),
            "message": self.message,
            "baseline_reason": self.baseline_reason,
            "replay": self.replay,
            "figures": self.figures,
            "transcript": self.transcript if self.verdict not in ("pass", "skip") else [],
        }


def is_mandatory(requirement_id: str) -> bool:
    index = requirements()
    return requirement_id not in index or index[requirement_id].is_mandatory


def judge(result: CheckResult, baseline: Baseline) -> tuple[str, str | None]:
    """The verdict of one check and, when a baseline entry applies, its reason."""
    if result.outcome == "skipped":
        return "skip", None
    if result.outcome == "passed":
        entry = baseline.test_entry(result.check_id)
        if entry is not None:
            return "stale", f"baseline entry ({entry.key}) now passes: {entry.reason}"
        return ("info" if result.informational else "pass"), None
    entry = baseline.covering(result.check_id, result.failed_requirements)
    if entry is not None:
        return "baselined", entry.reason
    if result.failed_requirements and not any(
        is_mandatory(rid) for rid in result.failed_requirements
    ):
        return "warn", None
    return "fail", None


def counts_as_failure(verdict: str, strict: bool) -> bool:
    return verdict in FAILING or (strict and verdict == "warn")


@dataclass
class RequirementResult:
    requirement: Requirement
    verdict: str
    checks: list[str]
    duration: float
    failures: list[dict[str, Any]]
    skip_reasons: list[str]
    baseline_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        r = self.requirement
        return {
            "id": r.id,
            "level": r.level,
            "section": r.section,
            "actor": r.actor,
            "verified_by": r.verified_by,
            "feature": r.feature,
            "text": r.text,
            "verdict": self.verdict,
            "tests": self.checks,
            "duration_s": round(self.duration, 4),
            "failures": self.failures,
            "skip_reasons": self.skip_reasons,
            "baseline_reason": self.baseline_reason,
        }


def requirement_verdict(requirement: Requirement, involved: list[CheckResult]) -> str:
    """How one requirement fared across the checks that name it or failed on it."""
    attributed = [c for c in involved if requirement.id in c.failed_requirements]
    real = [c for c in attributed if c.verdict in ("fail", "warn")]
    if real:
        return "fail" if requirement.is_mandatory else "warn"
    if attributed and all(c.verdict == "baselined" for c in attributed):
        return "baselined"
    naming = [c for c in involved if requirement.id in c.requirement_ids]
    if any(c.verdict in ("pass", "stale", "info") for c in naming):
        return "pass"
    if naming and all(c.verdict == "skip" for c in naming):
        return "skip"
    if naming:
        return "inconclusive"
    return "not-checked" if requirement.verified_by == "conformance" else "out-of-scope"


def requirement_results(results: Iterable[CheckResult]) -> list[RequirementResult]:
    checks = list(results)
    found = []
    for requirement in requirements():
        involved = [
            c
            for c in checks
            if requirement.id in c.requirement_ids or requirement.id in c.failed_requirements
        ]
        verdict = requirement_verdict(requirement, involved)
        failures = [
            {"test": c.check_id, "verdict": c.verdict, "message": c.message}
            for c in involved
            if requirement.id in c.failed_requirements
        ]
        baseline_reason = next(
            (c.baseline_reason for c in involved if c.verdict == "baselined"), None
        )
        found.append(
            RequirementResult(
                requirement=requirement,
                verdict=verdict,
                checks=[c.check_id for c in involved],
                duration=sum(c.duration for c in involved),
                failures=failures,
                skip_reasons=sorted({c.message for c in involved if c.verdict == "skip"}),
                baseline_reason=baseline_reason,
            )
        )
    return found


def section_summary(
    found: Iterable[RequirementResult], sections: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Per section: how many requirements got each verdict."""
    table: dict[str, dict[str, int]] = {key: {} for key in sections}
    for result in found:
        row = table.setdefault(result.requirement.section, {})
        row[result.verdict] = row.get(result.verdict, 0) + 1
    return [
        {"section": key, "title": sections.get(key, key), "verdicts": row}
        for key, row in table.items()
    ]
