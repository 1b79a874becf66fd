"""Verdicts: from raw check outcomes to per-check and per-requirement judgements.

Pure functions over plain data, so the rules are unit-tested without a server:

============ =========================================================================
verdict      meaning
============ =========================================================================
pass         the check ran and the server behaved as required
fail         a MUST (or MUST NOT) requirement of the check's own was broken
warn         only SHOULD requirements were broken (fails the run with ``--strict``)
skip         not applicable: a feature neither claimed nor advertised, a fixture not
             configured, a budget exceeded
inconclusive the check could not judge its own requirements: a precondition broke
             another requirement (``blocked_by`` names it), a feature it needs is not
             implemented, or the server stopped answering
info         an informational check that reports figures only
baselined    a failure the target's baseline accepts
stale        a baseline entry whose check now passes (fails the run)
============ =========================================================================

A check fails only on its own requirements (those it is marked with). A failure that names
only other requirements means a precondition broke: the check is ``inconclusive``, blocked
by those requirements, and they (not the check's own) are the failed ones. So one broken
welcome or join is one root cause, ranked by :func:`root_causes`, not forty failures.

Requirements additionally get ``inconclusive`` (their checks were blocked),
``not-checked`` (their checks did not run, e.g. deselected) and
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

#: How the kit verifies: servers (``rep-conformance run``), clients (``... client``).
KIT_VERIFIED = frozenset({"conformance", "client-conformance"})

#: ``blocked_by`` entries that are not requirement ids.
SERVER_UNREACHABLE = "server-unreachable"
FEATURE_PREFIX = "feature:"


def feature_cause(feature: str) -> str:
    return f"{FEATURE_PREFIX}{feature}"


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
    blocked_by: tuple[str, ...] = ()
    #: The server stopped answering during this check (it is named as the root cause).
    server_went_away: bool = False
    #: What to fix when it is not the failed requirement itself (a feature-entry check
    #: whose feature is not implemented counts under ``feature:<name>``).
    root_cause: str | None = None
    verdict: str = ""
    baseline_reason: str | None = None

    def __post_init__(self) -> None:
        # A failure naming only other requirements is a broken precondition.
        if (
            self.outcome == "failed"
            and self.requirement_ids
            and self.failed_requirements
            and not self.blocked_by
            and not set(self.failed_requirements) & set(self.requirement_ids)
        ):
            self.blocked_by = self.failed_requirements

    @property
    def own_failed(self) -> bool:
        """Whether the failure names one of the check's own requirements."""
        if not self.requirement_ids:
            return not self.blocked_by
        return bool(set(self.failed_requirements) & set(self.requirement_ids))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.check_id,
            "nodeid": self.nodeid,
            "requirements": list(self.requirement_ids),
            "verdict": self.verdict,
            "outcome": self.outcome,
            "duration_s": round(self.duration, 4),
            "failed_requirements": list(self.failed_requirements),
            "blocked_by": list(self.blocked_by),
            "server_went_away": self.server_went_away,
            "root_cause": self.root_cause,
            "message": self.message,
            "baseline_reason": self.baseline_reason,
            "replay": self.replay,
            "figures": self.figures,
            "transcript": self.transcript if self.verdict not in ("pass", "skip", "info") else [],
        }


def is_mandatory(requirement_id: str) -> bool:
    index = requirements()
    return requirement_id not in index or index[requirement_id].is_mandatory


def judge(result: CheckResult, baseline: Baseline) -> tuple[str, str | None]:
    """The verdict of one check and, when a baseline entry applies, its reason."""
    if result.blocked_by and not (result.outcome == "failed" and result.own_failed):
        return "inconclusive", None
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
    """How one requirement fared across the checks that name it or failed on it.

    A check blocked by this requirement is evidence against it: its precondition step
    saw the requirement broken.
    """
    attributed = [c for c in involved if requirement.id in c.failed_requirements]
    real = [c for c in attributed if c.verdict in ("fail", "warn", "inconclusive")]
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
    return "not-checked" if requirement.verified_by in KIT_VERIFIED else "out-of-scope"


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


@dataclass
class RootCause:
    """One thing to fix, with what it costs the run: the checks it blocked or failed."""

    key: str
    kind: Literal["server", "feature", "requirement"]
    title: str
    level: str
    blocked: list[str]
    failed: list[str]
    message: str

    @property
    def weight(self) -> int:
        return len(self.blocked) + len(self.failed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "title": self.title,
            "level": self.level,
            "blocks": len(self.blocked),
            "fails": len(self.failed),
            "blocked_checks": self.blocked,
            "failed_checks": self.failed,
            "message": self.message,
        }


def first_line(text: Any) -> str:
    """The first line of a message: what one-line summaries (tables, junit) show."""
    lines = str(text or "").strip().splitlines()
    return lines[0] if lines else ""


def root_causes(
    results: Iterable[CheckResult], explanations: Mapping[str, str] | None = None
) -> list[RootCause]:
    """What to fix first: every cause that failed or blocked checks, the costliest first.

    ``explanations`` gives the title of causes that are not requirements (the server
    going away, a feature not implemented), keyed like ``blocked_by`` entries. A server
    that stopped answering always comes first: nothing after it could be judged.
    """
    checks = list(results)
    notes = dict(explanations or {})
    index = requirements()
    causes: dict[str, RootCause] = {}

    def cause(key: str) -> RootCause:
        if key not in causes:
            if key == SERVER_UNREACHABLE:
                kind: Literal["server", "feature", "requirement"] = "server"
                title, level = notes.get(key, "the server stopped answering"), "MUST"
            elif key.startswith(FEATURE_PREFIX):
                feature = key.removeprefix(FEATURE_PREFIX)
                kind, level = "feature", "MUST"
                title = notes.get(key, f"feature {feature} is not implemented")
            else:
                kind = "requirement"
                known = next((r for r in index if r.id == key), None)
                title = known.text if known else key
                level = known.level if known else "MUST"
            causes[key] = RootCause(key, kind, title, level, [], [], "")
        return causes[key]

    for check in checks:
        if check.verdict in ("fail", "warn"):
            for rid in (check.root_cause,) if check.root_cause else check.failed_requirements:
                found = cause(rid)
                found.failed.append(check.check_id)
                found.message = found.message or check.message
        elif check.verdict == "inconclusive":
            for key in check.blocked_by:
                found = cause(key)
                found.blocked.append(check.check_id)
                if check.server_went_away or key != SERVER_UNREACHABLE:
                    found.message = found.message or check.message
    order = {r.id: n for n, r in enumerate(index)}

    def rank(found: RootCause) -> tuple[int, int, int, int]:
        mandatory = found.kind != "requirement" or is_mandatory(found.key)
        return (
            0 if found.kind == "server" else 1,
            0 if mandatory else 1,
            -found.weight,
            order.get(found.key, -1),
        )

    return sorted(causes.values(), key=rank)


def skip_causes(results: Iterable[CheckResult]) -> list[dict[str, Any]]:
    """Why checks were skipped, each reason once with how many checks it skipped."""
    counts: dict[str, int] = {}
    for check in results:
        if check.verdict == "skip":
            reason = first_line(check.message) or "no reason given"
            counts[reason] = counts.get(reason, 0) + 1
    return [
        {"reason": reason, "checks": n}
        for reason, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]
