"""Reports of a run: JSON (the data), HTML (for people), Markdown (for CI summaries).

All three render the same dictionary, built once by :func:`build_report`. JUnit XML is
pytest's own (``--junitxml``); the plugin adds each check's requirement ids and verdict
to it as properties.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conformance.reports.html import render_html
from conformance.reports.markdown import render_markdown
from conformance.reports.model import build_report, dump_json

__all__ = ["build_report", "dump_json", "render_html", "render_markdown", "write_reports"]


def write_reports(report: dict[str, Any], directory: Path) -> list[Path]:
    """Write report.json, report.html and summary.md; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = {
        "report.json": dump_json(report),
        "report.html": render_html(report),
        "summary.md": render_markdown(report),
    }
    paths = []
    for name, text in written.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
