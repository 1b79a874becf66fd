"""A short Markdown summary for CI step summaries (GitHub caps them at 1 MiB).

Its first screen answers "what do I fix first": the verdict and counts, why the run
stopped (if it did), the server going away, the ranked root causes with their first
failure message, and why checks were skipped. Findings follow, each failing check once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conformance.reports.html import VERDICT_ORDER
from conformance.results import first_line

MAX_FINDINGS = 50
MAX_CAUSES = 10


def _cell(value: Any, limit: int = 300) -> str:
    text = " ".join(str(value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _link(report: Mapping[str, Any], key: str) -> str:
    """A requirement id linked to its anchor in the published spec; other causes as is."""
    url = str(report.get("requirement_url") or "")
    if "{id}" in url and key[:1].isupper() and "-" in key:
        return f"[{_cell(key)}]({url.format(id=key)})"
    return f"`{_cell(key)}`"


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {v}" for v, n in counts.items()) or "none"


def fix_first_lines(report: Mapping[str, Any]) -> list[str]:
    causes = list(report.get("fix_first", []))
    if not causes:
        return []
    lines = [
        "",
        "### Fix first",
        "",
        "| # | cause | blocks | fails | what | first failure |",
        "|---|---|---|---|---|---|",
    ]
    for rank, cause in enumerate(causes[:MAX_CAUSES], 1):
        key = _link(report, str(cause.get("key")))
        lines.append(
            f"| {rank} | {key} ({_cell(cause.get('level'))}) | {cause.get('blocks', 0)} | "
            f"{cause.get('fails', 0)} | {_cell(cause.get('title'), 200)} | "
            f"{_cell(first_line(cause.get('message')), 400)} |"
        )
    if len(causes) > MAX_CAUSES:
        lines.append(f"\n… and {len(causes) - MAX_CAUSES} more causes in report.html.")
    return lines


def render_markdown(report: Mapping[str, Any]) -> str:
    target = report.get("target", {})
    outcome = str(report.get("outcome", "fail")).upper()
    icon = "✅" if outcome == "PASS" else "❌"
    exit_status = report.get("exit_status")
    lines = [
        f"## {icon} REP {_cell(report.get('protocol_version'))} conformance: {outcome}",
        "",
        f"Target **{_cell(target.get('name'))}** (`{_cell(_where(target))}`), "
        f"{report.get('duration_s')} s"
        + (", strict" if report.get("strict") else "")
        + (f", exit status {exit_status}" if exit_status is not None else ""),
        "",
    ]
    if report.get("aborted"):
        lines += [f"> **The run stopped before checking:** {_cell(report['aborted'], 1000)}", ""]
    for outage in report.get("outages", []):
        back = outage.get("back_before")
        lines += [
            f"> **The server stopped answering** during `{_cell(outage.get('check'))}` "
            f"({_cell(outage.get('reason'))})"
            + (
                f"; it answered again before `{_cell(back)}`."
                if back
                else "; it did not come back."
            )
            + (
                f" Last frames the kit sent: {_cell(' | '.join(outage.get('last_sent', [])), 600)}"
                if outage.get("last_sent")
                else ""
            ),
            "",
        ]
    basis = report.get("server", {}).get("featureBasis")
    if basis and "every feature" in str(basis):
        lines += [f"> **Features:** {_cell(basis)}", ""]
    totals = report.get("totals", {})
    for label in ("must", "requirements", "checks"):
        lines.append(f"- **{label}**: {_counts(totals.get(label, {}))}")
    lines += fix_first_lines(report)
    skipped = report.get("skip_causes", [])
    if skipped:
        lines += ["", "### Skipped", "", "| checks | reason |", "|---|---|"]
        lines += [f"| {s.get('checks')} | {_cell(s.get('reason'))} |" for s in skipped]
    lines += ["", "### By section", "", "| section | " + " | ".join(VERDICT_ORDER) + " |"]
    lines.append("|---" * (len(VERDICT_ORDER) + 1) + "|")
    for section in report.get("sections", []):
        counts = section.get("verdicts", {})
        cells = " | ".join(str(counts.get(v, "")) for v in VERDICT_ORDER)
        lines.append(f"| {_cell(section.get('title'))} | {cells} |")
    failing = [t for t in report.get("tests", []) if t.get("verdict") in ("fail", "warn")]
    if failing:
        lines += ["", "### Findings", "", "| requirement | verdict | check | finding |"]
        lines.append("|---|---|---|---|")
        for test in failing[:MAX_FINDINGS]:
            ids = ", ".join(_link(report, r) for r in test.get("failed_requirements", []))
            lines.append(
                f"| {ids} | {_cell(test.get('verdict'))} | `{_cell(test.get('id'), 120)}` | "
                f"{_cell(first_line(test.get('message')))} |"
            )
        if len(failing) > MAX_FINDINGS:
            lines.append(f"\n… and {len(failing) - MAX_FINDINGS} more in the HTML report.")
    stale = report.get("stale_baseline", [])
    if stale:
        lines += ["", "### Stale baseline entries", ""]
        lines += [f"- {_cell(s.get('entry'))}: {_cell(s.get('reason'))}" for s in stale]
    lines.append("")
    return "\n".join(lines)


def _where(target: Mapping[str, Any]) -> str:
    """A server's WebSocket URL, or the command of a client under test."""
    return str(target.get("ws_url") or " ".join(target.get("command") or []))
