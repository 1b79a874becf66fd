"""Verdicts and baselines: the rules alone, then through the plugin in a real pytest run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.baseline import Baseline, pattern_matches
from conformance.failures import ConformanceFailure
from conformance.results import (
    CheckResult,
    counts_as_failure,
    judge,
    requirement_results,
    requirement_verdict,
)
from conformance.target import BaselineEntry
from rep_spec import requirements


def result(
    outcome: str, marked: tuple[str, ...], failed: tuple[str, ...] = (), **kw: Any
) -> CheckResult:
    return CheckResult(
        check_id=kw.pop("check_id", "test_x.py::test_y"),
        nodeid="checks/test_x.py::test_y",
        requirement_ids=marked,
        outcome=outcome,  # type: ignore[arg-type]
        failed_requirements=failed,
        **kw,
    )


NO_BASELINE = Baseline()


@pytest.mark.parametrize(
    ("outcome", "failed", "verdict"),
    [
        ("passed", (), "pass"),
        ("skipped", (), "skip"),
        ("failed", ("ERR-003",), "fail"),
        ("failed", ("ERR-010",), "warn"),
        ("failed", ("ERR-010", "ERR-003"), "fail"),
        ("failed", (), "fail"),
    ],
    ids=["pass", "skip", "must", "should", "should-and-must", "not-attributed"],
)
def test_judge_without_baseline(outcome: str, failed: tuple[str, ...], verdict: str) -> None:
    assert judge(result(outcome, ("ERR-003", "ERR-010"), failed), NO_BASELINE)[0] == verdict


def test_informational_checks_are_info() -> None:
    assert judge(result("passed", (), informational=True), NO_BASELINE) == ("info", None)


def test_a_baselined_test_failing_is_accepted_and_passing_is_stale() -> None:
    baseline = Baseline((BaselineEntry(reason="known", test="test_x.py::test_y"),))
    assert judge(result("failed", ("ERR-003",), ("ERR-003",)), baseline) == ("baselined", "known")
    verdict, reason = judge(result("passed", ("ERR-003",)), baseline)
    assert verdict == "stale" and reason is not None and "known" in reason


def test_requirement_baselines_cover_only_failures_entirely_within_them() -> None:
    baseline = Baseline((BaselineEntry(reason="later", requirement="ERR-003"),))
    assert judge(result("failed", ("ERR-003",), ("ERR-003",)), baseline)[0] == "baselined"
    assert judge(result("failed", ("ERR-003",), ("ERR-003", "ERR-001")), baseline)[0] == "fail"
    assert judge(result("passed", ("ERR-003",)), baseline)[0] == "pass"


def test_stale_requirement_entries_need_the_requirement_exercised_and_never_failed() -> None:
    baseline = Baseline(
        (
            BaselineEntry(reason="a", requirement="ERR-003"),
            BaselineEntry(reason="b", requirement="ERR-007"),
            BaselineEntry(reason="c", requirement="AUTH-012"),
        )
    )
    stale = baseline.stale_requirement_entries(exercised=["ERR-003", "ERR-007"], failed=["ERR-007"])
    assert [e.requirement for e in stale] == ["ERR-003"]


@pytest.mark.parametrize(
    ("pattern", "check_id", "matches"),
    [
        ("test_a.py::test_b[x]", "test_a.py::test_b[x]", True),
        ("test_a.py::test_b", "test_a.py::test_b[x]", True),
        ("test_b", "test_a.py::test_b[x]", True),
        ("test_b[y]", "test_a.py::test_b[x]", False),
        ("test_a.py::test_b[y]", "test_a.py::test_b[x]", False),
        ("test_c.py::test_b", "test_a.py::test_b", False),
    ],
)
def test_baseline_test_patterns(pattern: str, check_id: str, matches: bool) -> None:
    assert pattern_matches(pattern, check_id) is matches


def test_strict_turns_warnings_into_failures() -> None:
    assert not counts_as_failure("warn", strict=False)
    assert counts_as_failure("warn", strict=True)
    assert counts_as_failure("stale", strict=False)
    assert not counts_as_failure("baselined", strict=True)


def judged(*results: CheckResult) -> list[CheckResult]:
    for found in results:
        found.verdict, found.baseline_reason = judge(found, NO_BASELINE)
    return list(results)


def test_requirement_verdicts() -> None:
    index = requirements()
    passing = judged(result("passed", ("ERR-001",)))
    assert requirement_verdict(index["ERR-001"], passing) == "pass"
    failing = judged(result("passed", ("ERR-001",)), result("failed", ("ERR-001",), ("ERR-001",)))
    assert requirement_verdict(index["ERR-001"], failing) == "fail"
    blocked = judged(result("failed", ("ERR-001", "ERR-003"), ("ERR-003",)))
    assert requirement_verdict(index["ERR-001"], blocked) == "inconclusive"
    skipped = judged(result("skipped", ("ERR-001",)))
    assert requirement_verdict(index["ERR-001"], skipped) == "skip"
    should = judged(result("failed", ("ERR-010",), ("ERR-010",)))
    assert requirement_verdict(index["ERR-010"], should) == "warn"
    assert requirement_verdict(index["ERR-001"], []) == "not-checked"
    assert requirement_verdict(index["ENV-001"], []) == "out-of-scope"


def test_frame_problems_count_against_the_requirement_they_break() -> None:
    """A failure attributed to ENV-013 by any check makes ENV-013 fail, named or not."""
    found = requirement_results(judged(result("failed", ("LIFE-001",), ("ENV-013",))))
    verdicts = {r.requirement.id: r.verdict for r in found}
    assert verdicts["ENV-013"] == "fail"
    assert verdicts["LIFE-001"] == "inconclusive"
    assert len(found) == len(list(requirements()))


def test_failure_messages_say_sent_expected_received_and_quote_the_spec() -> None:
    failure = ConformanceFailure(
        ["LIFE-001"],
        sent="ping id='abc'",
        expected="a pong with metadata.correlation_id = 'abc' within 2 s",
        received="received nothing",
    )
    text = str(failure)
    assert text.startswith(
        "sent ping id='abc'; expected a pong with metadata.correlation_id = 'abc' within 2 s "
        "(LIFE-001); received nothing"
    )
    assert requirements()["LIFE-001"].text in text
    assert failure.requirement_texts == {"LIFE-001": requirements()["LIFE-001"].text}
    assert isinstance(failure, AssertionError)
    with pytest.raises(ValueError, match="at least one requirement"):
        ConformanceFailure([], expected="x", received="y")


# -- through the plugin --------------------------------------------------------------------

FAKE_CHECKS = '''
import pytest
from conformance.failures import ConformanceFailure


def broken(*ids):
    raise ConformanceFailure(ids, sent="x", expected="y", received="z <b>|</b>")


@pytest.mark.requirements("LIFE-001")
def test_passes():
    """ok"""


@pytest.mark.requirements("LIFE-001", "ERR-003")
def test_must_fails():
    broken("ERR-003")


@pytest.mark.requirements("ERR-010")
def test_should_fails():
    broken("ERR-010")


@pytest.mark.requirements("ERR-012")
def test_baselined_by_test():
    broken("ERR-012")


@pytest.mark.requirements("AUTH-012")
def test_requirement_baseline_now_passes():
    """ok"""


@pytest.mark.requirements("WS-003")
def test_test_baseline_now_passes():
    """ok"""


@pytest.mark.requirements("ROOM-002")
def test_skipped():
    pytest.skip("the server does not advertise rooms")


@pytest.mark.informational
def test_figures():
    """ok"""
'''


def run_plugin(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    checks = tmp_path / "test_fake_checks.py"
    checks.write_text(textwrap.dedent(FAKE_CHECKS))
    target = tmp_path / "target.yaml"
    target.write_text(
        yaml.safe_dump(
            {
                "ws_url": "ws://127.0.0.1:9/ws",
                "tokens": {"jwt": {"secret": "s"}},
                "baseline": [
                    {"test": "test_baselined_by_test", "reason": "known sanitizer bug"},
                    {"requirement": "AUTH-012", "reason": "expiry comes later"},
                    {"test": "test_fake_checks.py::test_test_baseline_now_passes", "reason": "x"},
                ],
            }
        )
    )
    reports = tmp_path / "reports"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-c",
            "/dev/null",
            "--rootdir",
            str(tmp_path),
            str(checks),
            "--rep-target",
            str(target),
            "--rep-report-dir",
            str(reports),
            "--junitxml",
            str(reports / "junit.xml"),
            "-ra",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    report = json.loads((reports / "report.json").read_text())
    report["_stdout"] = done.stdout
    report["_junit"] = (reports / "junit.xml").read_text()
    return done.returncode, report


@pytest.fixture(scope="module")
def plugin_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any]]:
    return run_plugin(tmp_path_factory.mktemp("plugin"))


def test_the_plugin_gives_each_check_its_verdict(plugin_run: tuple[int, dict[str, Any]]) -> None:
    code, report = plugin_run
    verdicts = {t["id"].split("::")[1]: t["verdict"] for t in report["tests"]}
    assert verdicts == {
        "test_passes": "pass",
        "test_must_fails": "fail",
        "test_should_fails": "warn",
        "test_baselined_by_test": "baselined",
        "test_requirement_baseline_now_passes": "pass",
        "test_test_baseline_now_passes": "stale",
        "test_skipped": "skip",
        "test_figures": "info",
    }
    assert code == 1
    assert report["outcome"] == "fail"
    assert report["stale_baseline"] == [
        {"entry": "requirement AUTH-012", "reason": "expiry comes later"}
    ]


def test_requirements_get_verdicts_in_the_report(plugin_run: tuple[int, dict[str, Any]]) -> None:
    _, report = plugin_run
    by_id = {r["id"]: r for r in report["requirements"]}
    assert by_id["ERR-003"]["verdict"] == "fail"
    assert by_id["ERR-003"]["failures"][0]["test"] == "test_fake_checks.py::test_must_fails"
    assert by_id["LIFE-001"]["verdict"] == "pass"
    assert by_id["ERR-010"]["verdict"] == "warn"
    assert by_id["ERR-012"]["verdict"] == "baselined"
    assert by_id["ROOM-002"]["verdict"] == "skip"
    assert by_id["ROOM-002"]["skip_reasons"] == ["the server does not advertise rooms"]
    assert by_id["ENV-001"]["verdict"] == "out-of-scope"
    assert by_id["AUTH-001"]["verdict"] == "not-checked"


def test_pytest_reports_warnings_and_baselines_as_expected_failures(
    plugin_run: tuple[int, dict[str, Any]],
) -> None:
    _, report = plugin_run
    out = report["_stdout"]
    assert "XFAIL test_fake_checks.py::test_should_fails" in out
    assert "SHOULD not met (ERR-010)" in out
    assert "baselined: known sanitizer bug" in out
    assert "stale baseline" in out
    assert 'name="requirements" value="LIFE-001 ERR-003"' in report["_junit"]
    assert 'name="verdict" value="fail"' in report["_junit"]


def test_without_must_failures_the_run_passes_unless_strict(tmp_path: Path) -> None:
    selection = "not must_fails and not now_passes"
    code, report = run_plugin(tmp_path / "lenient", "-k", selection)
    assert (code, report["outcome"]) == (0, "pass")
    code, report = run_plugin(tmp_path / "strict", "-k", selection, "--rep-strict")
    assert (code, report["outcome"]) == (1, "fail")
