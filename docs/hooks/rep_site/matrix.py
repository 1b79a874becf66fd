"""The conformance matrix: submitted report.json files as a compatibility table.

``implementations/<slug>/implementation.yaml`` describes an implementation and each
``implementations/<slug>/<version>.json`` is a report of the kit for one version of it.
The reference server has no committed report: the site build runs the kit against it and
hands the report over (``reference`` below), so its row is always of this checkout.

One row per implementation and version, one column per section of the registry; a cell
shows the worst verdict of the section's requirements and links to the requirement-level
verdicts on the entry's own page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from rep_site.pages import SiteError
from rep_site.render import REQUIREMENT_INDEX, escape_markdown, md_table, rel
from rep_spec import RequirementIndex

MATRIX_PAGE = "conformance-matrix.md"
MATRIX_ROOT = "conformance-matrix"
METADATA = "implementation.yaml"
METADATA_SCHEMA = "implementation.schema.json"
VERSION_FILE = re.compile(r"^(?P<version>[0-9A-Za-z][0-9A-Za-z.+-]*)\.json$")
KIND_ORDER = {"reference": 0, "implementation": 1, "test": 2}
#: Verdicts that judge a requirement (the others say it was not judged).
JUDGED = ("fail", "warn", "inconclusive", "baselined", "pass")
ReportCheck = Callable[[Mapping[str, Any]], list[str]]


@dataclass(frozen=True)
class Entry:
    """One row: a report of one version of one implementation."""

    slug: str
    name: str
    kind: str
    homepage: str | None
    description: str
    version: str
    report: Mapping[str, Any]
    source: Path

    @property
    def page(self) -> str:
        return f"{MATRIX_ROOT}/{self.slug}/{self.version}.md"

    @property
    def published(self) -> str:
        return f"{MATRIX_ROOT}/{self.slug}/{self.version}.json"


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"[.+-]", version))


def load_entries(
    root: Path, reference: Path | None, check_report: ReportCheck
) -> tuple[list[Entry], list[str]]:
    """Every entry under ``root``, reference first, and the problems found on the way.

    ``reference`` is the report the build made of the reference server (None when the
    build made none: the reference row then says so). Every report is checked against
    the published report schema with ``check_report``.
    """
    problems: list[str] = []
    schema = json.loads((root / METADATA_SCHEMA).read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    entries: list[Entry] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        meta_path = folder / METADATA
        if not meta_path.is_file():
            problems.append(f"{folder.name}: {METADATA} is missing")
            continue
        meta = yaml.safe_load(meta_path.read_text(encoding="utf-8"))
        errors = [e.message for e in validator.iter_errors(meta)]
        if errors:
            problems.extend(f"{folder.name}/{METADATA}: {e}" for e in errors)
            continue
        reports: list[tuple[str, Path]] = []
        for path in sorted(folder.iterdir()):
            if path.name == METADATA:
                continue
            match = VERSION_FILE.match(path.name)
            if match is None:
                problems.append(f"{folder.name}/{path.name}: not <version>.json")
                continue
            reports.append((match.group("version"), path))
        if meta["kind"] == "reference":
            if reports:
                problems.append(
                    f"{folder.name}: the reference server's report is made by the build;"
                    " do not commit one"
                )
            reports = []
            if reference is not None:
                report = json.loads(reference.read_text(encoding="utf-8"))
                reports = [(str(report.get("kit", {}).get("version", "")), reference)]
        elif not reports:
            problems.append(f"{folder.name}: no <version>.json report")
        for version, path in reports:
            try:
                report = json.loads(path.read_text(encoding="utf-8"))
            except ValueError as error:
                problems.append(f"{folder.name}/{path.name}: not JSON: {error}")
                continue
            found = check_report(report)
            if found:
                problems.extend(f"{folder.name}/{path.name}{line}" for line in found[:20])
                continue
            entries.append(
                Entry(
                    slug=folder.name,
                    name=str(meta["name"]),
                    kind=str(meta["kind"]),
                    homepage=meta.get("homepage"),
                    description=" ".join(str(meta["description"]).split()),
                    version=version,
                    report=report,
                    source=path,
                )
            )
    entries.sort(key=lambda e: (KIND_ORDER[e.kind], e.name.lower(), _neg(e.version)))
    return entries, problems


def _neg(version: str) -> tuple[tuple[int, str], ...]:
    """Sorts newer versions first."""
    return tuple((-n, s) for n, s in _version_key(version))


class Matrix:
    """Renders the table and the entries' pages from the entries and the registry."""

    def __init__(
        self,
        entries: Sequence[Entry],
        registry: RequirementIndex,
        verdicts: Sequence[str],
        reference_missing: bool,
    ) -> None:
        self.entries = list(entries)
        self.registry = registry
        self.verdicts = list(verdicts)
        self.reference_missing = reference_missing

    # --- the table -----------------------------------------------------------------

    def state(self, entry: Entry, section: str) -> tuple[str, str]:
        """A section's cell of one entry: (verdict shown, label)."""
        found = [r for r in entry.report["requirements"] if r["section"] == section]
        if not found:
            return "absent", "not in report"
        counts: dict[str, int] = {}
        for r in found:
            counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
        shown = next(v for v in self.verdicts if v in counts)
        judged = sum(counts.get(v, 0) for v in JUDGED)
        if shown in JUDGED:
            return shown, f"{shown} {counts[shown]}/{judged}"
        return shown, {"out-of-scope": "—", "not-checked": "not checked"}.get(shown, shown)

    def table(self, page_src: str = MATRIX_PAGE) -> str:
        sections = list(self.registry.sections)
        header = ["implementation", "version", "result", *sections]
        rows = []
        for entry in self.entries:
            page = rel(page_src, entry.page)
            name = escape_markdown(entry.name)
            if entry.kind == "test":
                name += " *(test entry)*"
            outcome = entry.report["outcome"]
            row = [
                name,
                f"[{escape_markdown(entry.version)}]({page})",
                f"[{outcome}]({page}){{ .rep-cell .rep-cell--{outcome} }}",
            ]
            for section in sections:
                verdict, label = self.state(entry, section)
                row.append(f"[{label}]({page}#{section}){{ .rep-cell .rep-cell--{verdict} }}")
            rows.append(row)
        parts = []
        if self.reference_missing:
            parts.append(
                '!!! warning "No reference row in this build"\n'
                "    The reference server's row is made by `python scripts/site.py build`,\n"
                "    which runs the kit first; this build ran without that report.\n"
            )
        legend = ", ".join(f"`{v}`" for v in self.verdicts)
        titles = "; ".join(
            f"`{key}`: {escape_markdown(title)}" for key, title in self.registry.sections.items()
        )
        parts.append(
            '<div class="rep-matrix" markdown>\n\n' + md_table(header, rows) + "\n\n</div>\n"
        )
        parts.append(
            f"A cell shows the first of {legend} that any requirement of the section got, with"
            " how many of the section's judged requirements got it; it links to the"
            f" requirement-level verdicts. Columns: {titles}.\n"
        )
        return "\n".join(parts)

    # --- an entry's page --------------------------------------------------------------

    def pages(self) -> dict[str, str]:
        return {entry.page: self.page(entry) for entry in self.entries}

    def published_files(self) -> list[tuple[str, Path]]:
        return [(entry.published, entry.source) for entry in self.entries]

    def page(self, entry: Entry) -> str:
        src = entry.page
        report = entry.report
        facts = [
            ["implementation", escape_markdown(entry.name)],
            ["version", escape_markdown(entry.version)],
            ["result", f"**{report['outcome']}** (exit status {report.get('exit_status')})"],
            ["protocol version", str(report["protocol_version"])],
            ["kit", f"{report['kit']['name']} {report['kit']['version']}"],
            ["run started", str(report["started_at"])],
            ["strict", "yes" if report["strict"] else "no"],
            ["report", f"[{entry.version}.json]({rel(src, entry.published)})"],
        ]
        if entry.homepage:
            facts.insert(1, ["homepage", f"<{entry.homepage}>"])
        parts = [f"# {escape_markdown(entry.name)} {escape_markdown(entry.version)}\n"]
        if entry.kind == "test":
            parts.append(
                '!!! note "Test entry"\n'
                "    Not a real implementation: a deliberately broken server kept to show how\n"
                "    failures, baseline entries and skips look in the matrix.\n"
            )
        parts.append(escape_markdown(entry.description) + "\n")
        parts.append("\n".join(f"- **{key}**: {value}" for key, value in facts) + "\n")
        if report.get("aborted"):
            parts.append(f"The run stopped early: {escape_markdown(str(report['aborted']))}\n")
        causes = list(report.get("fix_first", []))[:10]
        if causes:
            parts.append("## Fix first\n")
            for cause in causes:
                parts.append(
                    f"- {self._requirement_link(src, str(cause['key']))}: "
                    f"{escape_markdown(str(cause['title']))} (fails {cause['fails']},"
                    f" blocks {cause['blocks']})"
                )
            parts.append("")
        by_section: dict[str, list[Mapping[str, Any]]] = {}
        for result in report["requirements"]:
            by_section.setdefault(str(result["section"]), []).append(result)
        titles = {s["section"]: s["title"] for s in report["sections"]}
        sections = list(self.registry.sections) + [
            s for s in by_section if s not in self.registry.sections
        ]
        back = rel(src, MATRIX_PAGE)
        for section in sections:
            title = self.registry.sections.get(section) or titles.get(section, section)
            parts.append(f"## {escape_markdown(title)} {{ #{section} }}\n")
            results = by_section.get(section, [])
            if not results:
                parts.append(
                    f"This report has no requirement of this section: the kit"
                    f" {report['kit']['version']} that wrote it predates the section.\n"
                )
                continue
            rows = [
                [
                    f'<span id="{r["id"]}"></span>{self._requirement_link(src, str(r["id"]))}',
                    str(r["level"]),
                    f"**{r['verdict']}**{{ .rep-cell--{r['verdict']} }}",
                    _detail(r),
                ]
                for r in results
            ]
            parts.append(md_table(["requirement", "level", "verdict", "detail"], rows) + "\n")
        parts.append(f"[Back to the conformance matrix]({back})\n")
        return "\n".join(parts)

    def _requirement_link(self, src: str, key: str) -> str:
        if key in self.registry:
            return f"[{key}]({rel(src, REQUIREMENT_INDEX)}#{key})"
        return f"`{escape_markdown(key)}`"


def _first_line(text: object) -> str:
    lines = str(text or "").strip().splitlines()
    line = lines[0] if lines else ""
    return line[:297] + "…" if len(line) > 300 else line


def _detail(result: Mapping[str, Any]) -> str:
    """Why the verdict: the first failure, the skip reason, the accepted baseline entry."""
    verdict = result["verdict"]
    if verdict in ("fail", "warn", "inconclusive") and result["failures"]:
        failure = result["failures"][0]
        return escape_markdown(f"{failure['test']}: {_first_line(failure['message'])}")
    if verdict == "baselined":
        return escape_markdown(f"accepted by the target's baseline: {result['baseline_reason']}")
    if verdict == "skip" and result["skip_reasons"]:
        return escape_markdown(_first_line(result["skip_reasons"][0]))
    if verdict == "out-of-scope":
        return escape_markdown(f"verified by {result.get('verified_by', 'review')}, not by the kit")
    if verdict == "not-checked":
        return "no check of the kit ran for it"
    return escape_markdown(", ".join(result["tests"][:3]))


def load_matrix(
    root: Path,
    reference: Path | None,
    registry: RequirementIndex,
    verdicts: Sequence[str],
    check_report: ReportCheck,
) -> Matrix:
    """The matrix, or SiteError naming every invalid submission."""
    entries, problems = load_entries(root, reference, check_report)
    if problems:
        raise SiteError([f"implementations/{line}" for line in problems])
    return Matrix(entries, registry, verdicts, reference_missing=reference is None)
