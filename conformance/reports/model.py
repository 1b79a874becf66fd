"""The report dictionary: one structure that every report format renders."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson

from conformance import __version__
from conformance.results import CheckResult, RequirementResult, section_summary
from rep_spec import catalog, requirements

REPORT_FORMAT = 2
#: The published specification. Each protocol version lives under its own path there
#: (``/1.0/``), so a link from a report keeps pointing at the text the kit checked.
SPEC_SITE = "https://rep-protocol.dev/"
#: Where requirement ids link to: the anchor of the id in its version's requirement index.
REQUIREMENT_URL = f"{SPEC_SITE}{catalog().protocol_version}/reference/requirements/#{{id}}"


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


def build_report(
    *,
    results: list[CheckResult],
    requirement_results: list[RequirementResult],
    target: Mapping[str, Any],
    server: Mapping[str, Any],
    strict: bool,
    started_at: datetime,
    duration: float,
    stale_entries: list[dict[str, str]],
    failing: bool,
    root_causes: list[dict[str, Any]] | None = None,
    skip_causes: list[dict[str, Any]] | None = None,
    aborted: str | None = None,
    outages: list[dict[str, Any]] | None = None,
    exit_status: int | None = None,
) -> dict[str, Any]:
    """Everything a report shows; JSON-serializable.

    ``root_causes`` ("fix first") ranks what failed or blocked checks, costliest first;
    ``aborted`` says why a run stopped before checking; ``outages`` when the server
    stopped answering during the run.
    """
    figures: dict[str, Any] = {}
    for result in results:
        figures.update(result.figures)
    mandatory = [
        r for r in requirement_results if r.requirement.is_mandatory and r.verdict != "out-of-scope"
    ]
    return {
        "format": REPORT_FORMAT,
        "kit": {"name": "rep-conformance", "version": __version__},
        "protocol_version": catalog().protocol_version,
        "target": dict(target),
        "server": dict(server),
        "started_at": started_at.isoformat(timespec="seconds"),
        "duration_s": round(duration, 3),
        "strict": strict,
        "outcome": "fail" if failing else "pass",
        "exit_status": exit_status,
        "aborted": aborted,
        "outages": outages or [],
        "fix_first": root_causes or [],
        "skip_causes": skip_causes or [],
        "totals": {
            "checks": _count(r.verdict for r in results),
            "requirements": _count(r.verdict for r in requirement_results),
            "must": _count(r.verdict for r in mandatory),
        },
        "sections": section_summary(requirement_results, requirements().sections),
        "requirements": [r.to_dict() for r in requirement_results],
        "tests": [r.to_dict() for r in results],
        "stale_baseline": stale_entries,
        "figures": figures,
        "requirement_url": REQUIREMENT_URL,
    }


def dump_json(report: Mapping[str, Any]) -> str:
    return orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
