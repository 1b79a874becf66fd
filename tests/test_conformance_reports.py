"""Report writers: JSON carries every requirement, HTML is self-contained and escaped."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from conformance.baseline import Baseline
from conformance.reports import build_report, render_html, render_markdown, write_reports
from conformance.reports.model import REQUIREMENT_URL
from conformance.results import CheckResult, judge, requirement_results
from rep_spec import requirements

HOSTILE = '<script>alert("x")</script> | `pipe` & </td>'


def sample_report() -> dict[str, Any]:
    checks = [
        CheckResult(
            check_id="test_chat.py::test_sanitized[script]",
            nodeid="checks/test_chat.py::test_sanitized[script]",
            requirement_ids=("CHAT-003",),
            outcome="failed",
            duration=0.25,
            failed_requirements=("CHAT-003",),
            message=f"sent chat; expected clean; received {HOSTILE}",
            transcript=[
                {
                    "at": 0.001,
                    "channel": "alice#1",
                    "direction": "sent",
                    "kind": "text",
                    "text": HOSTILE,
                },
                {
                    "at": 0.002,
                    "channel": "alice#1",
                    "direction": "received",
                    "kind": "text",
                    "text": "{}",
                    "problems": [f"ENV-013: {HOSTILE}"],
                },
            ],
            replay="rep-conformance run --target t.yaml --check 'x'",
        ),
        CheckResult(
            check_id="test_lifecycle.py::test_ping",
            nodeid="checks/test_lifecycle.py::test_ping",
            requirement_ids=("LIFE-001",),
            outcome="passed",
            duration=0.01,
        ),
        CheckResult(
            check_id="test_profile.py::test_server_profile",
            nodeid="checks/test_profile.py::test_server_profile",
            requirement_ids=(),
            outcome="passed",
            informational=True,
            figures={"ping round trip median (ms)": 0.4, "note": HOSTILE},
        ),
    ]
    for check in checks:
        check.verdict, check.baseline_reason = judge(check, Baseline())
    return build_report(
        results=checks,
        requirement_results=requirement_results(checks),
        target={"name": HOSTILE, "ws_url": "ws://127.0.0.1:1/ws", "claimed_features": None},
        server={"features": ["core", "chat"]},
        strict=False,
        started_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        duration=1.5,
        stale_entries=[{"entry": "requirement AUTH-012", "reason": HOSTILE}],
        failing=True,
    )


def test_the_json_report_lists_every_requirement_with_its_verdict() -> None:
    report = sample_report()
    by_id = {r["id"]: r for r in report["requirements"]}
    assert set(by_id) == {r.id for r in requirements()}
    assert by_id["CHAT-003"]["verdict"] == "fail"
    assert by_id["CHAT-003"]["level"] == "MUST"
    assert by_id["CHAT-003"]["section"] == "chat"
    assert by_id["CHAT-003"]["tests"] == ["test_chat.py::test_sanitized[script]"]
    assert by_id["CHAT-003"]["duration_s"] == 0.25
    assert by_id["LIFE-001"]["verdict"] == "pass"
    assert report["totals"]["must"]["fail"] == 1
    assert report["figures"]["ping round trip median (ms)"] == 0.4
    passing = next(t for t in report["tests"] if t["verdict"] == "pass")
    assert passing["transcript"] == [], "passing checks keep reports small"


class _Structure(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.sources: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = [v or "" for k, v in attrs if k in ("src", "href") and v]
        if tag == "a":
            self.links += found
        else:
            self.sources += found


def test_the_html_report_is_escaped_and_self_contained(tmp_path: Path) -> None:
    html = render_html(sample_report())
    parser = _Structure()
    parser.feed(html)
    assert "script" not in parser.tags
    assert not parser.sources, "no external resources: styles are inline, no scripts"
    spec_site = REQUIREMENT_URL.split("{id}")[0]
    assert all(link.startswith(("#", spec_site)) for link in parser.links), parser.links
    assert f'href="{REQUIREMENT_URL.format(id="CHAT-003")}"' in html
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert 'id="CHAT-003"' in html and "0.001s" in html and "FAIL" in html
    assert "The spec requires" in html and requirements()["CHAT-003"].text in html


def test_the_markdown_summary_keeps_tables_intact() -> None:
    text = render_markdown(sample_report())
    assert text.startswith("## ❌ REP 1.0 conformance: FAIL")
    finding = next(line for line in text.splitlines() if line.startswith("| [CHAT-003]"))
    cells = re.split(r"(?<!\\)\|", finding)
    assert len(cells) == 6, finding
    assert "<script>" not in text
    assert "requirement AUTH-012" in text


def test_write_reports_writes_the_three_files(tmp_path: Path) -> None:
    paths = write_reports(sample_report(), tmp_path / "out")
    assert sorted(p.name for p in paths) == ["report.html", "report.json", "summary.md"]
    loaded = json.loads((tmp_path / "out" / "report.json").read_text())
    assert loaded["outcome"] == "fail"
