"""A self-contained HTML report: no scripts, no external resources, everything escaped.

The first screen answers "what do I fix first": the verdict and counts, why the run
stopped (if it did), the server going away, the ranked root causes with their first
failure message, and why checks were skipped. Below, collapsed: every failing check once
(what the spec requires, the message, the replay command, the transcript), then the
inconclusive checks grouped by what blocked them, then each section's requirements.
Requirement ids link to the published specification (plain links, not resources).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from conformance.results import first_line as _first_line

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
table.transcript col.narrow{width:5.5rem}table.transcript col.arrow{width:1.5rem}
table.transcript col.frame{width:auto}
.first{border:2px solid #c62828;border-radius:6px;padding:.5rem 1rem;margin:1rem 0}
.first.f-pass{border-color:#23854b}.banner{background:#fdecea;padding:.5rem 1rem;
border-radius:4px}ol.causes li{margin:.4rem 0}ol.causes pre{margin:.2rem 0}
.sent td{background:#f4f9ff}.received td{background:#fafafa}.event td{background:#fffbe6}
.problem{color:#c62828;font-weight:600}
dl{display:grid;grid-template-columns:max-content auto;gap:.1rem 1rem}dt{font-weight:600}
"""


#: Root causes shown on the first screen; the rest are one click away.
FIRST_SCREEN_CAUSES = 5


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
        '<table class="transcript"><colgroup><col class="narrow"><col class="narrow">'
        '<col class="arrow"><col class="narrow"><col class="frame"></colgroup>'
        "<tr><th>time</th><th>channel</th><th></th><th>kind</th>"
        "<th>frame</th></tr>" + "".join(rows) + "</table>"
    )


def _req_link(report: Mapping[str, Any], rid: Any) -> str:
    """A requirement id linked to its anchor in the published specification."""
    url = str(report.get("requirement_url") or "")
    text = _e(rid)
    if "{id}" not in url:
        return f"<code>{text}</code>"
    return f'<a href="{_e(url.format(id=rid))}"><code>{text}</code></a>'


def _failed_check(report: Mapping[str, Any], test: Mapping[str, Any]) -> str:
    """One failing check, once, with every requirement it broke."""
    index = {str(r.get("id")): r for r in report.get("requirements", [])}
    required = "".join(
        f"<li>{_req_link(report, rid)} ({_e(index.get(rid, {}).get('level'))}): "
        f"{_e(index.get(rid, {}).get('text'))}</li>"
        for rid in test.get("failed_requirements", [])
    )
    replay = test.get("replay")
    baseline = test.get("baseline_reason")
    return (
        f'<details id="check-{_e(test.get("id"))}"><summary>{_badge(str(test.get("verdict")))} '
        f"<code>{_e(test.get('id'))}</code>: {_e(_first_line(test.get('message')))}</summary>"
        f"<p><strong>The spec requires</strong></p><ul>{required}</ul>"
        f"<pre>{_e(test.get('message'))}</pre>"
        + (f"<p>Baselined: {_e(baseline)}</p>" if baseline else "")
        + (f"<p>Replay: <code>{_e(replay)}</code></p>" if replay else "")
        + _transcript(test.get("transcript", []))
        + "</details>"
    )


def _requirement(
    report: Mapping[str, Any],
    requirement: Mapping[str, Any],
    tests: Mapping[str, Mapping[str, Any]],
) -> str:
    rid = str(requirement.get("id"))
    checks = requirement.get("tests", [])
    listed = "".join(
        f"<li>{_badge(str(tests[c].get('verdict')))} "
        f'<a href="#check-{_e(c)}"><code>{_e(c)}</code></a> '
        f"{float(tests[c].get('duration_s', 0)):.3f}s"
        + (
            f" (blocked by {_e(', '.join(tests[c].get('blocked_by', [])))})"
            if tests[c].get("blocked_by")
            else ""
        )
        + "</li>"
        for c in checks
        if c in tests
    )
    skips = "".join(
        f"<li>skipped: {_e(reason)}</li>" for reason in requirement.get("skip_reasons", [])
    )
    feature = requirement.get("feature")
    verdict = str(requirement.get("verdict"))
    return (
        f'<details id="{_e(rid)}"{" open" if verdict in ("fail", "warn") else ""}><summary>'
        f"{_badge(verdict)} <strong>{_e(rid)}</strong> "
        f'<span class="level">{_e(requirement.get("level"))}'
        + (f" &middot; feature {_e(feature)}" if feature else "")
        + f"</span> {_e(requirement.get('text'))}</summary>"
        f"<p>{_req_link(report, rid)} in the specification &middot; verified by "
        f"{_e(requirement.get('verified_by'))}</p>"
        + (f"<ul>{listed}{skips}</ul>" if listed or skips else "")
        + "</details>"
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


def _fix_first(report: Mapping[str, Any]) -> str:
    causes = list(report.get("fix_first", []))
    if not causes:
        return ""
    items = []
    for cause in causes:
        key = str(cause.get("key"))
        name = (
            _req_link(report, key)
            if cause.get("kind") == "requirement"
            else f"<code>{_e(key)}</code>"
        )
        costs = []
        if cause.get("blocks"):
            costs.append(f"blocks {cause['blocks']} check{'s' if cause['blocks'] != 1 else ''}")
        if cause.get("fails"):
            costs.append(f"fails {cause['fails']} check{'s' if cause['fails'] != 1 else ''}")
        items.append(
            f'<li>{name} <span class="level">{_e(cause.get("level"))} &middot; '
            f"{_e(', '.join(costs))}</span><br>{_e(cause.get('title'))}"
            f"<pre>{_e(_first_line(cause.get('message')))}</pre></li>"
        )
    shown, rest = items[:FIRST_SCREEN_CAUSES], items[FIRST_SCREEN_CAUSES:]
    more = (
        f'<details><summary>{len(rest)} more causes</summary><ol class="causes" '
        f'start="{FIRST_SCREEN_CAUSES + 1}">{"".join(rest)}</ol></details>'
        if rest
        else ""
    )
    return f'<h2>Fix first</h2><ol class="causes">{"".join(shown)}</ol>{more}'


def _skips(report: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{_e(s.get('checks'))}</td><td>{_e(s.get('reason'))}</td></tr>"
        for s in report.get("skip_causes", [])
    )
    return (
        f"<h3>Skipped</h3><table><tr><th>checks</th><th>reason</th></tr>{rows}</table>"
        if rows
        else ""
    )


def _banners(report: Mapping[str, Any]) -> str:
    parts = []
    if report.get("aborted"):
        parts.append(
            f'<p class="banner"><strong>The run stopped before checking:</strong> '
            f"{_e(report['aborted'])}</p>"
        )
    for outage in report.get("outages", []):
        back = outage.get("back_before")
        last = " | ".join(outage.get("last_sent", []))
        parts.append(
            f'<p class="banner"><strong>The server stopped answering</strong> during '
            f"<code>{_e(outage.get('check'))}</code> ({_e(outage.get('reason'))})"
            + (
                f"; it answered again before <code>{_e(back)}</code>."
                if back
                else "; it did not come back."
            )
            + (f" Last frames the kit sent: <code>{_e(last)}</code>" if last else "")
            + "</p>"
        )
    basis = report.get("server", {}).get("featureBasis")
    if basis and "every feature" in str(basis):
        parts.append(f'<p class="banner"><strong>Features:</strong> {_e(basis)}</p>')
    return "".join(parts)


def _inconclusive(report: Mapping[str, Any]) -> str:
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for test in report.get("tests", []):
        if test.get("verdict") == "inconclusive":
            key = ", ".join(test.get("blocked_by", [])) or "unknown"
            groups.setdefault(key, []).append(test)
    if not groups:
        return ""
    body = "".join(
        f"<details><summary>blocked by <code>{_e(key)}</code>: {len(tests)} checks</summary><ul>"
        + "".join(
            f'<li id="check-{_e(t.get("id"))}"><code>{_e(t.get("id"))}</code>: '
            f"{_e(_first_line(t.get('message')))}</li>"
            for t in tests
        )
        + "</ul></details>"
        for key, tests in sorted(groups.items(), key=lambda item: -len(item[1]))
    )
    return f"<h2>Inconclusive checks</h2>{body}"


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
        body = "".join(
            _requirement(report, r, tests) for r in found if r.get("verdict") != "out-of-scope"
        )
        body += _out_of_scope([r for r in found if r.get("verdict") == "out-of-scope"])
        sections.append(f'<h3 id="s-{_e(key)}">{_e(section.get("title"))}</h3>{body}')
    facts = {
        "target": target.get("name"),
        "WebSocket": target.get("ws_url"),
        "HTTP": target.get("http_url"),
        # A client run: the command that started the client under test.
        "client command": " ".join(target["command"]) if target.get("command") else None,
        "advertised features": ", ".join(server.get("features", []) or []) or "(none listed)",
        "claimed features": ", ".join(target.get("claimed_features") or []) or "(none claimed)",
        "checked features": ", ".join(server.get("checkedFeatures", []) or []),
        "protocol": report.get("protocol_version"),
        "started": report.get("started_at"),
        "duration": f"{report.get('duration_s')} s",
        "exit status": report.get("exit_status"),
        "strict": "yes" if report.get("strict") else "no",
        "kit": f"rep-conformance {report.get('kit', {}).get('version', '')}",
    }
    facts_html = "".join(
        f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts.items() if v is not None
    )
    totals = report.get("totals", {})
    counts = "".join(
        f"<li><strong>{_e(label)}</strong>: "
        + (", ".join(f"{n} {_e(v)}" for v, n in totals.get(label, {}).items()) or "none")
        + "</li>"
        for label in ("must", "requirements", "checks")
    )
    stale = "".join(
        f"<li><strong>{_e(s.get('entry'))}</strong>: {_e(s.get('reason'))}</li>"
        for s in report.get("stale_baseline", [])
    )
    failing = [t for t in report.get("tests", []) if t.get("verdict") in ("fail", "warn", "stale")]
    figures = "".join(
        f"<tr><td>{_e(k)}</td><td><code>{_e(v)}</code></td></tr>"
        for k, v in sorted(report.get("figures", {}).items())
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>REP conformance: {_e(target.get('name'))}</title><style>{STYLE}</style></head>"
        f"<body><h1>REP {_e(report.get('protocol_version'))} conformance report</h1>"
        f'<section class="first f-{_e(outcome)}">'
        f'<p class="outcome o-{_e(outcome)}">{_e(outcome.upper())}</p>'
        f"{_banners(report)}<ul>{counts}</ul>"
        + (f"<h2>Stale baseline entries</h2><ul>{stale}</ul>" if stale else "")
        + _fix_first(report)
        + _skips(report)
        + "</section>"
        + (
            f"<h2>Failures ({len(failing)} checks)</h2>"
            + "".join(_failed_check(report, t) for t in failing)
            if failing
            else ""
        )
        + _inconclusive(report)
        + f"<h2>Run</h2><dl>{facts_html}</dl>"
        + f"<h2>Requirements by section</h2>{_summary_table(report)}"
        + "".join(sections)
        + (f"<h2>Figures</h2><table>{figures}</table>" if figures else "")
        + "</body></html>\n"
    )
