"""The conformance matrix's inputs: submitted reports, the published report schema, the rules.

Every committed ``implementations/*/<version>.json`` must match conformance/report.schema.json
(what the kit writes), every ``implementation.yaml`` its schema; the kit's own reports match
the schema too, so the published format is the one implementers get. The cell rules are
checked on small reports here; tests/test_docs_site.py checks the page the build renders.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.reports.model import REQUIREMENT_URL
from conformance.reports.schema import report_problems, requirement_verdicts
from rep_spec import catalog, requirements
from tests.test_conformance_reports import sample_report

ROOT = Path(__file__).resolve().parents[1]
IMPLEMENTATIONS = ROOT / "implementations"
sys.path.insert(0, str(ROOT / "docs" / "hooks"))

from rep_site.matrix import Matrix, load_entries  # noqa: E402
from rep_site.pages import SiteError  # noqa: E402

SUBMITTED = sorted(IMPLEMENTATIONS.glob("*/*.json"))


def test_there_are_submitted_reports() -> None:
    assert SUBMITTED, "at least the example failing server's report"


@pytest.mark.parametrize("path", SUBMITTED, ids=lambda p: str(p.relative_to(IMPLEMENTATIONS)))
def test_each_submitted_report_matches_the_published_schema(path: Path) -> None:
    report = json.loads(path.read_text(encoding="utf-8"))
    problems = report_problems(report)
    assert not problems, "\n".join(problems[:20])


def test_every_entry_loads_without_a_problem() -> None:
    entries, problems = load_entries(IMPLEMENTATIONS, None, report_problems)
    assert problems == []
    assert {e.kind for e in entries} >= {"test"}
    reference = yaml.safe_load((IMPLEMENTATIONS / "rep-server" / "implementation.yaml").read_text())
    assert reference["kind"] == "reference"


def test_the_kits_own_report_matches_the_schema() -> None:
    report = sample_report()
    assert report_problems(report) == []
    assert report["requirement_url"] == REQUIREMENT_URL


def test_the_schema_refuses_what_the_matrix_could_not_read() -> None:
    report = sample_report()
    broken = copy.deepcopy(report)
    broken["format"] = 3
    broken["requirements"][0]["verdict"] = "great"
    del broken["requirements"][1]["section"]
    broken["requirements"][2]["id"] = "room-1"
    problems = "\n".join(report_problems(broken))
    assert "/format: 2 was expected" in problems
    assert "/requirements/0/verdict: 'great' is not one of" in problems
    assert "/requirements/1: 'section' is a required property" in problems
    assert "/requirements/2/id: 'room-1' does not match" in problems


def test_every_verdict_the_kit_gives_is_in_the_schema() -> None:
    """The verdict order of the matrix is the schema's; the kit's verdicts are all in it."""
    given = {
        r["verdict"] for path in SUBMITTED for r in json.loads(path.read_text())["requirements"]
    }
    given |= {r["verdict"] for r in sample_report()["requirements"]}
    assert given <= set(requirement_verdicts())
    assert requirement_verdicts()[0] == "fail" and requirement_verdicts().index(
        "baselined"
    ) < requirement_verdicts().index("pass") < requirement_verdicts().index("skip")


def test_reports_link_requirements_into_their_protocol_version() -> None:
    version = catalog().protocol_version
    cited = REQUIREMENT_URL.format(id="ROOM-011")
    assert cited == f"https://rep-protocol.dev/{version}/reference/requirements/#ROOM-011"


# --- submissions the build refuses ---------------------------------------------------------


def write_entry(root: Path, slug: str, meta: dict[str, Any], reports: dict[str, Any]) -> None:
    folder = root / slug
    folder.mkdir(parents=True)
    (folder / "implementation.yaml").write_text(yaml.safe_dump(meta), encoding="utf-8")
    for name, content in reports.items():
        text = content if isinstance(content, str) else json.dumps(content)
        (folder / name).write_text(text, encoding="utf-8")


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    root = tmp_path / "implementations"
    root.mkdir()
    schema = IMPLEMENTATIONS / "implementation.schema.json"
    (root / schema.name).write_text(schema.read_text(encoding="utf-8"), encoding="utf-8")
    return root


def meta(kind: str = "implementation") -> dict[str, str]:
    return {"name": "Example", "kind": kind, "description": "A server."}


def test_broken_submissions_are_named(scratch: Path) -> None:
    good = sample_report()
    write_entry(scratch, "ok", meta(), {"1.2.0.json": good})
    write_entry(scratch, "ref", meta("reference"), {"0.1.0.json": good})
    write_entry(scratch, "badname", meta(), {"report.txt": good})
    write_entry(scratch, "badmeta", {"name": "x", "kind": "vendor", "description": "y"}, {})
    write_entry(scratch, "badjson", meta(), {"1.0.json": "{"})
    write_entry(scratch, "badreport", meta(), {"1.0.json": {**good, "outcome": "maybe"}})
    (scratch / "nometa").mkdir()
    entries, problems = load_entries(scratch, None, report_problems)
    assert [(e.slug, e.version) for e in entries] == [("ok", "1.2.0")]
    text = "\n".join(problems)
    assert "ref: the reference server's report is made by the build; do not commit one" in text
    assert "badname/report.txt: not <version>.json" in text
    assert "badmeta/implementation.yaml: 'vendor' is not one of" in text
    assert "badjson/1.0.json: not JSON" in text
    assert "badreport/1.0.json/outcome: 'maybe' is not one of ['pass', 'fail']" in text
    assert "nometa: implementation.yaml is missing" in text


def test_the_reference_row_comes_from_the_build_and_goes_first(
    scratch: Path, tmp_path: Path
) -> None:
    write_entry(
        scratch, "zeta", meta(), {"1.0.0.json": sample_report(), "1.10.0.json": sample_report()}
    )
    write_entry(scratch, "alpha", meta("test"), {"0.1.json": sample_report()})
    write_entry(scratch, "rep-server", meta("reference"), {})
    made = tmp_path / "report.json"
    made.write_text(json.dumps(sample_report()), encoding="utf-8")
    entries, problems = load_entries(scratch, made, report_problems)
    assert problems == []
    kit_version = sample_report()["kit"]["version"]
    assert [(e.slug, e.version) for e in entries] == [
        ("rep-server", kit_version),
        ("zeta", "1.10.0"),
        ("zeta", "1.0.0"),
        ("alpha", "0.1"),
    ]
    assert entries[0].source == made


# --- what a cell shows ----------------------------------------------------------------------


def report_with(verdicts: dict[str, str]) -> dict[str, Any]:
    """A valid report whose requirements all pass except the given ones."""
    report = sample_report()
    for result in report["requirements"]:
        result["verdict"] = verdicts.get(result["id"], "pass")
    return report


def cell(report: dict[str, Any], section: str) -> tuple[str, str]:
    from rep_site.matrix import Entry

    entry = Entry("x", "X", "implementation", None, "", "1.0", report, Path("x.json"))
    return Matrix([entry], requirements(), requirement_verdicts(), False).state(entry, section)


def section_of(section: str) -> list[str]:
    return [r.id for r in requirements() if r.section == section]


def test_a_cell_shows_the_worst_verdict_of_its_section() -> None:
    rooms = section_of("rooms")
    size = len(rooms)
    assert cell(report_with({}), "rooms") == ("pass", f"pass {size}/{size}")
    assert cell(report_with({rooms[0]: "fail"}), "rooms") == ("fail", f"fail 1/{size}")
    both = {rooms[0]: "baselined", rooms[1]: "warn"}
    assert cell(report_with(both), "rooms") == ("warn", f"warn 1/{size}")
    baselined = {rooms[0]: "baselined", rooms[1]: "skip"}
    assert cell(report_with(baselined), "rooms") == ("baselined", f"baselined 1/{size - 1}")


def test_skips_and_unjudged_sections() -> None:
    cluster = section_of("cluster")
    assert cell(report_with(dict.fromkeys(cluster, "skip")), "cluster") == ("skip", "skip")
    assert cell(report_with(dict.fromkeys(cluster, "out-of-scope")), "cluster") == (
        "out-of-scope",
        "—",
    )
    assert cell(report_with(dict.fromkeys(cluster, "not-checked")), "cluster") == (
        "not-checked",
        "not checked",
    )
    older = report_with({})
    older["requirements"] = [r for r in older["requirements"] if r["section"] != "cluster"]
    assert cell(older, "cluster") == ("absent", "not in report")


def test_a_build_with_an_invalid_submission_fails(scratch: Path) -> None:
    from rep_site.matrix import load_matrix

    write_entry(scratch, "bad", meta(), {"1.0.json": {"format": 2}})
    with pytest.raises(SiteError) as raised:
        load_matrix(scratch, None, requirements(), requirement_verdicts(), report_problems)
    assert any(p.startswith("implementations/bad/1.0.json/: 'kit'") for p in raised.value.problems)
