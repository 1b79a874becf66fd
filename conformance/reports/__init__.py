"""Reports of a run: JSON (the data), HTML (for people), Markdown (for CI summaries).

All three render the same dictionary, built once by :func:`build_report`. JUnit XML is
written by pytest (``--junitxml``) and then rewritten by :func:`rewrite_junit` from the
checks' verdicts: requirement ids in test names, the kit's messages instead of tracebacks.

Reports are CI artifacts: :func:`write_reports` redacts the dictionary before rendering
and every rendered text before writing it (:mod:`conformance.redact`), so no token or
secret reaches a file even if something upstream let one through.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conformance.redact import redact, redact_data
from conformance.reports.html import render_html
from conformance.reports.junit import rewrite_junit
from conformance.reports.markdown import render_markdown
from conformance.reports.model import build_report, dump_json

__all__ = [
    "build_report",
    "dump_json",
    "render_html",
    "render_markdown",
    "rewrite_junit",
    "write_reports",
]


def write_reports(report: dict[str, Any], directory: Path) -> list[Path]:
    """Write report.json, report.html and summary.md; return their paths.

    ``report`` itself is left as it is; what is written is redacted.
    """
    directory.mkdir(parents=True, exist_ok=True)
    report = redact_data(report)
    written = {
        "report.json": dump_json(report),
        "report.html": render_html(report),
        "summary.md": render_markdown(report),
    }
    paths = []
    for name, text in written.items():
        path = directory / name
        path.write_text(redact(text), encoding="utf-8")
        paths.append(path)
    return paths
