"""rep-conformance client: the reference client passes, each broken variant fails the
check of its requirement, and the reports are those of a server run."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.cli import main
from conformance.clientkit.runner import plan
from conformance.clientkit.scenarios import JITTER, SCHEDULE, scenarios
from rep_spec import requirements
from tests.client_variants.drivers import VARIANTS

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "client.yaml"
#: Scenarios or variant runs at once: each mostly waits on the client's timers, and each
#: has its own scripted server and client process (at most three on two cores).
JOBS = 3


def run(target: Path, report_dir: Path, *checks: str, jobs: int = 1) -> tuple[int, dict[str, Any]]:
    argv = ["client", "--target", str(target), "--report-dir", str(report_dir), "-q"]
    argv += ["--jobs", str(jobs)]
    for check in checks:
        argv += ["--check", check]
    status = main(argv)
    report: dict[str, Any] = json.loads((report_dir / "report.json").read_text("utf-8"))
    return status, report


def variant_target(tmp_path: Path, name: str) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text("utf-8"))
    data["client"] = {
        "name": f"variant {name}",
        "command": ["{python}", "-m", "tests.client_variants.drivers", name],
        "workdir": str(ROOT),
    }
    path = tmp_path / "client.yaml"
    path.write_text(yaml.safe_dump(data), "utf-8")
    return path


def test_every_client_requirement_has_a_check_and_every_check_a_known_id() -> None:
    checked = {rid for s in scenarios() for c in s.checks for rid in c.requirements}
    registry = requirements()
    wanted = {r.id for r in registry if r.verified_by == "client-conformance"}
    assert checked == wanted
    assert all(registry[rid].actor == "client" for rid in checked)


def test_every_client_requirement_has_a_broken_variant() -> None:
    wanted = {r.id for r in requirements() if r.verified_by == "client-conformance"}
    assert {v.requirement for v in VARIANTS.values()} == wanted


# A whole run: 28 scenarios, each with a fresh client process and its waits.
@pytest.mark.timeout(900)
def test_the_reference_client_passes_with_the_reports_of_a_server_run(tmp_path: Path) -> None:
    status, report = run(EXAMPLE, tmp_path, jobs=JOBS)
    failed = [t for t in report["tests"] if t["verdict"] != "pass"]
    # Scenarios overlapped, the report keeps the order of the plan.
    assert [t["id"] for t in report["tests"]] == [i for p in plan([]) for i in p.check_ids]
    assert status == 0, [t["message"] for t in failed]
    assert report["outcome"] == "pass" and report["totals"]["requirements"] == {"pass": 19}
    for name in ("report.json", "report.html", "summary.md", "junit.xml"):
        assert (tmp_path / name).stat().st_size > 0
    junit = (tmp_path / "junit.xml").read_text("utf-8")
    assert "test_close_codes_are_followed[1008] [CLIENT-012]" in junit
    assert "<failure" not in junit
    # Every message the scripted server sent, but the deliberate unknowns, is valid.
    assert "kit_problems" not in report["figures"], report["figures"]["kit_problems"]


BROKEN = "test_a_broken_client_fails_on_its_requirement"


@pytest.fixture(scope="module")
def broken_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[int, dict[str, Any]]]:
    """The variants this session selected, each a run of its check, JOBS at a time."""
    selected = [
        item.callspec.params["name"]
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.module is request.module
        and item.originalname == BROKEN
    ]
    # The longest (the backoff measurements) first, so that none runs last alone.
    ordered = sorted(selected, key=lambda n: VARIANTS[n].check not in (SCHEDULE, JITTER))

    def one(name: str) -> tuple[int, dict[str, Any]]:
        directory = tmp_path_factory.mktemp(name)
        target = variant_target(directory, name)
        return run(target, directory / "report", VARIANTS[name].check)

    with ThreadPoolExecutor(max_workers=JOBS) as pool:
        return dict(zip(ordered, pool.map(one, ordered), strict=True))


@pytest.mark.parametrize("name", sorted(VARIANTS), ids=str)
def test_a_broken_client_fails_on_its_requirement(
    name: str, broken_runs: dict[str, tuple[int, dict[str, Any]]]
) -> None:
    variant = VARIANTS[name]
    status, report = broken_runs[name]
    check_id = variant.check if "::" in variant.check else f"client.py::{variant.check}"
    (test,) = [t for t in report["tests"] if t["id"] == check_id]
    mandatory = requirements()[variant.requirement].is_mandatory
    assert test["verdict"] == ("fail" if mandatory else "warn"), test["message"]
    assert variant.requirement in test["failed_requirements"], test["message"]
    assert status == (1 if mandatory else 0)
    # The message says what the kit did, what the requirement expects, what came back.
    assert "expected" in test["message"] and variant.requirement in test["message"]
    assert test["transcript"], "a failure carries its transcript"
