"""A self-contained HTML report: no scripts, no external resources, everything escaped.

Layout: outcome and target, a summary per spec section, then each section's requirements
with their verdict, checks and, for every failure, what the spec requires, the failure
message, the replay command and the full transcript with timestamps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

VERDICT_ORDER = (
    "fail",
    "warn",
    "stale",
    "baselined",
    "inconclusive",
    "pass",
    "info",
    "skip",
    "not-checked",
    "out-of-scope",
)

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:1rem 2rem;
color:#1d2330}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #d6dae3;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #d6dae3;padding:.25rem .5rem;
text-align:left;vertical-align:top}th{background:#f3f5f9}
.badge{display:inline-block;border-radius:3px;padding:0 .45rem;font-size:12px;font-weight:600;
color:#fff;background:#6b7385}
.v-pass,.v-info{background:#23854b}.v-fail,.v-stale{background:#c62828}.v-warn{background:#c77700}
.v-baselined{background:#7a4fb3}.v-skip,.v-not-checked,.v-out-of-scope{background:#8c93a3}
.v-inconclusive{background:#4b6584}
.outcome{font-size:20px;font-weight:700}.o-pass{color:#23854b}.o-fail{color:#c62828}
article{border:1px solid #e1e4eb;border-radius:6px;padding:.4rem .8rem;margin:.6rem 0}
article h3{margin:.2rem 0;font-size:15px}.level{color:#5a6275;font-size:12px}
pre{background:#f6f8fa;padding:.5rem;overflow-x:auto;white-space:pre-wrap;word-break:break-word}
table.transcript{table-layout:fixed;width:100%}
table.transcript td{font:12px/1.35 ui-monospace,monospace;word-break:break-all}
table.transcript td:nth-child(-n+4){width:6rem;word-break:normal}
.sent td{background:#f4f9ff}.received td{background:#fafafa}.event td{background:#fffbe6}
.problem{color:#c62828;font-weight:600}
dl{display:grid;grid-template-columns:max-content auto;gap:.1rem 1rem}dt{font-weight:600}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _badge(verdict: str) -> str:
    return f'<span class="badge v-{_e(verdict)}">{_e(verdict)}</span>'


def _transcript(entries: Sequence[Mapping[str, Any]]) -> str:
    if not entries:
        return "<p>No frames were exchanged.</p>"
    rows = []
    for entry in entries:
        arrow = {"sent": "&rarr;", "received": "&larr;"}.get(str(entry.get("direction")), "&bull;")
        problems = "".join(f'<div class="problem">{_e(p)}</div>' for p in entry.get("problems", []))
        rows.append(
            f'<tr class="{_e(entry.get("direction"))}"><td>{float(entry.get("at", 0)):.3f}s</td>'
            f"<td>{_e(entry.get('channel'))}</td><td>{arrow}</td><td>{_e(entry.get('kind'))}</td>"
            f"<td>{_e(entry.get('text'))}{problems}</td></tr>"
        )
    return (
        '<table class="transcript"><tr><th>time</th><th>channel</th><th></th><th>kind</th>'
        "<th>frame</th></tr>" + "".join(rows) + "</table>"
    )


def _failure(test: Mapping[str, Any], requirement: Mapping[str, Any]) -> str:
    message = str(test.get("message", ""))
    replay = test.get("replay")
    baseline = test.get("baseline_reason")
    return (
        f"<details open><summary>{_badge(str(test.get('verdict')))} "
        f"<code>{_e(test.get('id'))}</code></summary>"
        f"<p><strong>The spec requires</strong> ({_e(requirement.get('id'))}, "
        f"{_e(requirement.get('level'))}): {_e(requirement.get('text'))}</p>"
        f"<pre>{_e(message)}</pre>"
        + (f"<p>Baselined: {_e(baseline)}</p>" if baseline else "")
        + (f"<p>Replay: <code>{_e(replay)}</code></p>" if replay else "")
        + _transcript(test.get("transcript", []))
        + "</details>"
    )


def _requirement(requirement: Mapping[str, Any], tests: Mapping[str, Mapping[str, Any]]) -> str:
    rid = str(requirement.get("id"))
    checks = requirement.get("tests", [])
    listed = "".join(
        f"<li>{_badge(str(tests[c].get('verdict')))} <code>{_e(c)}</code> "
        f"{float(tests[c].get('duration_s', 0)):.3f}s</li>"
        for c in checks
        if c in tests
    )
    failures = "".join(
        _failure(tests[f["test"]], requirement)
        for f in requirement.get("failures", [])
        if f.get("test") in tests
    )
    skips = "".join(
        f"<li>skipped: {_e(reason)}</li>" for reason in requirement.get("skip_reasons", [])
    )
    feature = requirement.get("feature")
    return (
        f'<article id="{_e(rid)}"><h3><a href="#{_e(rid)}">{_e(rid)}</a> '
        f'{_badge(str(requirement.get("verdict")))} <span class="level">'
        f"{_e(requirement.get('level'))} &middot; verified by {_e(requirement.get('verified_by'))}"
        + (f" &middot; feature {_e(feature)}" if feature else "")
        + f"</span></h3><p>{_e(requirement.get('text'))}</p>"
        + (f"<ul>{listed}{skips}</ul>" if listed or skips else "")
        + failures
        + "</article>"
    )


def _out_of_scope(found: Sequence[Mapping[str, Any]]) -> str:
    """Requirements the kit cannot observe, listed compactly with their text on hover."""
    if not found:
        return ""
    items = ", ".join(
        f'<span title="{_e(r.get("text"))}" id="{_e(r.get("id"))}">{_e(r.get("id"))}</span> '
        f"({_e(r.get('verified_by'))})"
        for r in found
    )
    return f'<p class="level">Verified outside the kit: {items}</p>'


def _findings(report: Mapping[str, Any]) -> str:
    rows = [
        f'<li>{_badge(str(r.get("verdict")))} <a href="#{_e(r.get("id"))}">{_e(r.get("id"))}</a> '
        f"({_e(r.get('level'))}): {_e(r.get('text'))}</li>"
        for r in report.get("requirements", [])
        if r.get("verdict") in ("fail", "warn", "inconclusive")
    ]
    return f"<h2>Findings</h2><ul>{''.join(rows)}</ul>" if rows else ""


def _summary_table(report: Mapping[str, Any]) -> str:
    header = "".join(f"<th>{_e(v)}</th>" for v in VERDICT_ORDER)
    rows = []
    for section in report.get("sections", []):
        counts = section.get("verdicts", {})
        cells = "".join(f"<td>{counts.get(v, '') or ''}</td>" for v in VERDICT_ORDER)
        rows.append(
            f'<tr><td><a href="#s-{_e(section.get("section"))}">{_e(section.get("title"))}</a>'
            f"</td>{cells}</tr>"
        )
    return f"<table><tr><th>section</th>{header}</tr>{''.join(rows)}</table>"


def render_html(report: Mapping[str, Any]) -> str:
    target = report.get("target", {})
    server = report.get("server", {})
    outcome = str(report.get("outcome", "fail"))
    tests = {str(t.get("id")): t for t in report.get("tests", [])}
    by_section: dict[str, list[Mapping[str, Any]]] = {}
    for requirement in report.get("requirements", []):
        by_section.setdefault(str(requirement.get("section")), []).append(requirement)
    sections = []
    for section in report.get("sections", []):
        key = str(section.get("section"))
        found = by_section.get(key, [])
        body = "".join(_requirement(r, tests) for r in found if r.get("verdict") != "out-of-scope")
        body += _out_of_scope([r for r in found if r.get("verdict") == "out-of-scope"])
        sections.append(f'<h2 id="s-{_e(key)}">{_e(section.get("title"))}</h2>{body}')
    facts = {
        "target": target.get("name"),
        "WebSocket": target.get("ws_url"),
        "HTTP": target.get("http_url"),
        "advertised features": ", ".join(server.get("features", []) or []),
        "claimed features": ", ".join(target.get("claimed_features") or []) or "(the welcome's)",
        "protocol": report.get("protocol_version"),
        "started": report.get("started_at"),
        "duration": f"{report.get('duration_s')} s",
        "strict": "yes" if report.get("strict") else "no",
        "kit": f"rep-conformance {report.get('kit', {}).get('version', '')}",
    }
    facts_html = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts.items())
    totals = report.get("totals", {})
    checks_line = ", ".join(f"{n} {_e(v)}" for v, n in totals.get("checks", {}).items())
    stale = "".join(
        f"<li><strong>{_e(s.get('entry'))}</strong>: {_e(s.get('reason'))}</li>"
        for s in report.get("stale_baseline", [])
    )
    figures = "".join(
        f"<tr><td>{_e(k)}</td><td><code>{_e(v)}</code></td></tr>"
        for k, v in sorted(report.get("figures", {}).items())
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>REP conformance: {_e(target.get('name'))}</title><style>{STYLE}</style></head>"
        f"<body><h1>REP {_e(report.get('protocol_version'))} conformance report</h1>"
        f'<p class="outcome o-{_e(outcome)}">{_e(outcome.upper())}</p>'
        f"<dl>{facts_html}</dl><p>Checks: {checks_line}</p>"
        + (f"<h2>Stale baseline entries</h2><ul>{stale}</ul>" if stale else "")
        + _findings(report)
        + f"<h2>Summary by section</h2>{_summary_table(report)}"
        + "".join(sections)
        + (f"<h2>Figures</h2><table>{figures}</table>" if figures else "")
        + "</body></html>\n"
    )
