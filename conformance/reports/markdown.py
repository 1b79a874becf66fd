"""A short Markdown summary for CI step summaries (GitHub caps them at 1 MiB)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conformance.reports.html import VERDICT_ORDER

MAX_FINDINGS = 50


def _cell(value: Any, limit: int = 300) -> str:
    text = " ".join(str(value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def render_markdown(report: Mapping[str, Any]) -> str:
    target = report.get("target", {})
    outcome = str(report.get("outcome", "fail")).upper()
    icon = "✅" if outcome == "PASS" else "❌"
    lines = [
        f"## {icon} REP {_cell(report.get('protocol_version'))} conformance: {outcome}",
        "",
        f"Target **{_cell(target.get('name'))}** (`{_cell(target.get('ws_url'))}`), "
        f"{report.get('duration_s')} s" + (", strict" if report.get("strict") else ""),
        "",
    ]
    totals = report.get("totals", {})
    for label in ("must", "requirements", "checks"):
        counts = totals.get(label, {})
        shown = ", ".join(f"{n} {v}" for v, n in counts.items())
        lines.append(f"- **{label}**: {shown or 'none'}")
    lines += ["", "| section | " + " | ".join(VERDICT_ORDER) + " |"]
    lines.append("|---" * (len(VERDICT_ORDER) + 1) + "|")
    for section in report.get("sections", []):
        counts = section.get("verdicts", {})
        cells = " | ".join(str(counts.get(v, "")) for v in VERDICT_ORDER)
        lines.append(f"| {_cell(section.get('title'))} | {cells} |")
    findings = [r for r in report.get("requirements", []) if r.get("verdict") in ("fail", "warn")]
    if findings:
        lines += ["", "### Findings", "", "| requirement | level | verdict | check | finding |"]
        lines.append("|---|---|---|---|---|")
        for requirement in findings[:MAX_FINDINGS]:
            for failure in requirement.get("failures", [])[:3]:
                first = str(failure.get("message", "")).splitlines()[:1]
                lines.append(
                    f"| {_cell(requirement.get('id'))} | {_cell(requirement.get('level'))} | "
                    f"{_cell(requirement.get('verdict'))} | `{_cell(failure.get('test'), 120)}` | "
                    f"{_cell(first[0] if first else '')} |"
                )
        if len(findings) > MAX_FINDINGS:
            lines.append(f"\n… and {len(findings) - MAX_FINDINGS} more in the HTML report.")
    stale = report.get("stale_baseline", [])
    if stale:
        lines += ["", "### Stale baseline entries", ""]
        lines += [f"- {_cell(s.get('entry'))}: {_cell(s.get('reason'))}" for s in stale]
    lines.append("")
    return "\n".join(lines)
