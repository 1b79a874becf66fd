"""GitHub annotations from a rep-conformance report.json: one per failed requirement.

    python annotate.py REPORT_JSON [--exit-code N]

Prints workflow commands (``::error title=AUTH-012::<first line of the finding>``) on
standard output, most important first: the report's "fix first" causes in their order,
then every other requirement a failed (or, as warnings, SHOULD-only) check names, then
stale baseline entries. Without a readable report, a non-zero ``--exit-code`` becomes
one annotation saying what that status means. Always exits 0: the action's last step
turns the kit's status into the step's verdict.

Standard library only, so that it runs before (or without) the kit's own environment.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: GitHub shows at most 10 errors and 10 warnings per step; the rest are in the reports.
MAX_PER_LEVEL = 10

#: What each exit status of ``rep-conformance run`` means (conformance/README.md).
EXIT_STATUS = {
    0: "every MUST requirement passed (with strict, every SHOULD too)",
    1: "a requirement failed or a baseline entry is stale",
    3: "the server could not be reached at the start or stopped answering during the run",
    4: "usage error, or the target file names a fixture the server does not have",
    5: "the selection (-k, --check) matched no check",
    6: "the kit itself failed (a bug in rep-conformance, not a verdict on the server)",
}


@dataclass(frozen=True)
class Annotation:
    level: str  # "error", "warning" or "notice"
    title: str
    text: str

    def command(self) -> str:
        return f"::{self.level} title={escape_property(self.title)}::{escape_data(self.text)}"


def escape_data(text: str) -> str:
    """A workflow command's message: %, CR and LF are escaped (as @actions/core does)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: also ":" and ","."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def first_line(text: Any) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0].strip() if lines else ""


def _level(requirement_level: str, strict: bool) -> str:
    return "warning" if requirement_level == "SHOULD" and not strict else "error"


def collect(report: Mapping[str, Any]) -> list[Annotation]:
    """Every annotation the report calls for, most important first, one per title."""
    strict = bool(report.get("strict"))
    tests = [t for t in report.get("tests", []) if isinstance(t, Mapping)]
    failing = [t for t in tests if t.get("verdict") in ("fail", "warn")]
    found: dict[str, Annotation] = {}

    def finding(requirement: str) -> str:
        """The first line of the first failed check that names the requirement."""
        for test in failing:
            if requirement in test.get("failed_requirements", []):
                return first_line(test.get("message"))
        return ""

    def add(title: str, level: str, text: str) -> None:
        if title and title not in found:
            found[title] = Annotation(level, title, text or title)

    if report.get("aborted"):
        add("run stopped", "error", first_line(report["aborted"]))
    for cause in report.get("fix_first", []):
        key = str(cause.get("key") or "")
        level = "error"
        if cause.get("kind") == "requirement":
            level = _level(str(cause.get("level", "MUST")), strict)
        text = finding(key) or first_line(cause.get("message")) or first_line(cause.get("title"))
        add(key, level, text)
    for test in failing:
        level = "error" if test.get("verdict") == "fail" or strict else "warning"
        for requirement in test.get("failed_requirements", []):
            add(str(requirement), level, first_line(test.get("message")))
    for entry in report.get("stale_baseline", []):
        name = str(entry.get("entry") or "")
        add(
            f"stale baseline: {name}",
            "error",
            f"the baseline entry {name} no longer fails; remove it from the target file"
            + (f" ({first_line(entry.get('reason'))})" if entry.get("reason") else ""),
        )
    return list(found.values())


def limited(found: Iterable[Annotation], per_level: int = MAX_PER_LEVEL) -> list[Annotation]:
    """At most ``per_level`` errors and warnings, and a notice counting the rest."""
    kept: list[Annotation] = []
    counts: dict[str, int] = {}
    left_off = 0
    for annotation in found:
        counts[annotation.level] = counts.get(annotation.level, 0) + 1
        if counts[annotation.level] <= per_level:
            kept.append(annotation)
        else:
            left_off += 1
    if left_off:
        kept.append(
            Annotation(
                "notice",
                "rep-conformance",
                f"{left_off} more failed requirements are listed in the step summary "
                "and in report.html",
            )
        )
    return kept


def for_exit_code(code: int) -> list[Annotation]:
    """The annotation for a run that left no report (or nothing to say) but failed."""
    if code == 0:
        return []
    meaning = EXIT_STATUS.get(code, "unexpected exit status")
    text = f"{meaning}; see the run step's log"
    return [Annotation("error", f"rep-conformance exit {code}", text)]


def load(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="report.json written by rep-conformance run")
    parser.add_argument("--exit-code", default="", help="the kit's exit status, if known")
    args = parser.parse_args(argv)
    code = int(args.exit_code) if args.exit_code.strip().isdigit() else None
    report = load(args.report)
    found = limited(collect(report)) if report is not None else []
    if not found and code is not None:
        found = for_exit_code(code)
    for annotation in found:
        print(annotation.command())
    return 0


if __name__ == "__main__":
    sys.exit(main())
