"""The kit's verdict on a far-from-conformant server, read as its author would read it.

``tests/far_server`` deviates in many ways at once: its welcome lacks ``features`` and
four other members, its errors carry no code, it has no rooms, and it exits on a
handshake without a token. Run once as is (it dies and stays dead) and once under a
supervisor (it comes back), the kit must: name the crash and the check during which it
happened, judge nothing it could not observe, check the features the target claims,
put the root causes first, and write no token into any file.
"""

from __future__ import annotations

import importlib
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from conformance.coverage import CHECKS_DIR
from tests.conformance_variants.kit import run_kit
from tests.far_server import FarServer, running_far_server

pytestmark = pytest.mark.network

CRASH_CHECK = "test_handshake.py::test_a_handshake_without_a_token_is_refused_with_401"
CLAIMED = ["rooms", "chat", "data", "sse", "publish"]
JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")


def far_target(server: FarServer) -> dict[str, Any]:
    return {
        "name": "far server",
        "ws_url": server.ws_url,
        "http_url": server.http_url,
        "tokens": {"jwt": {"secret": server.secret}},
        "features": CLAIMED,
        "timeouts": {"answer": 1.0, "silence": 0.3},
        "fixtures": {"stream": "orders"},
    }


class Run:
    def __init__(self, code: int, report: dict[str, Any], stdout: str, directory: Path) -> None:
        self.code = code
        self.report = report
        self.stdout = stdout
        self.directory = directory
        self.tests = {t["id"]: t for t in report["tests"]}
        self.requirements = {r["id"]: r for r in report["requirements"]}
        self.order = [t["id"] for t in report["tests"]]

    def after(self, check_id: str) -> list[dict[str, Any]]:
        position = self.order.index(check_id)
        return [self.tests[c] for c in self.order[position + 1 :]]


def kit_run(tmp: Path, *, supervised: bool) -> tuple[Run, str]:
    with running_far_server(supervised=supervised) as server:
        code, report, stdout = run_kit(far_target(server), tmp)
    return Run(code, report, stdout, tmp / "reports"), server.secret


@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, str]:
    return kit_run(tmp_path_factory.mktemp("far-crash"), supervised=False)


@pytest.fixture(scope="module")
def supervised(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, str]:
    return kit_run(tmp_path_factory.mktemp("far-supervised"), supervised=True)


def test_the_crash_is_named_with_its_check_and_the_frames_that_caused_it(
    crashed: tuple[Run, str],
) -> None:
    run, _ = crashed
    assert run.code == 3, "a run in which the server died exits with 3"
    (outage,) = run.report["outages"]
    assert outage["check"] == CRASH_CHECK
    assert outage["back_before"] is None
    assert any("no token" in frame for frame in outage["last_sent"]), outage
    first = run.report["fix_first"][0]
    assert first["key"] == "server-unreachable"
    assert CRASH_CHECK in first["title"]
    assert run.tests[CRASH_CHECK]["server_went_away"] is True


def background_checks() -> set[str]:
    """Checks that wait on timers from the start of the run: they are judged on what they
    saw before an outage, wherever they appear in the order."""
    found = set()
    for path in CHECKS_DIR.glob("test_*.py"):
        module = importlib.import_module(f"conformance.checks.{path.stem}")
        for name, function in vars(module).items():
            marks = getattr(function, "pytestmark", [])
            if name.startswith("test_") and any(m.name == "background" for m in marks):
                found.add(f"{path.name}::{name}")
    return found


def test_checks_after_the_crash_are_inconclusive_not_failed(crashed: tuple[Run, str]) -> None:
    run, _ = crashed
    timers = background_checks()
    later = [
        t
        for t in run.after(CRASH_CHECK)
        if "test_frames.py" not in t["id"] and t["id"].split("[")[0] not in timers
    ]
    assert later, "the crash happened before the end of the run"
    wrongly_judged = [t["id"] for t in later if t["verdict"] in ("fail", "warn", "pass")]
    assert not wrongly_judged
    blocked = [t for t in later if t["verdict"] == "inconclusive"]
    assert all("server-unreachable" in t["blocked_by"] for t in blocked), [
        (t["id"], t["blocked_by"]) for t in blocked if "server-unreachable" not in t["blocked_by"]
    ]
    # Requirements the server meets when it is up are not failed by refused connections.
    for rid in ("HTTP-001", "LIFE-001", "VER-003", "AUTH-011"):
        assert run.requirements[rid]["verdict"] != "fail", rid


def test_the_welcome_problems_reach_the_report_although_the_server_died(
    crashed: tuple[Run, str],
) -> None:
    run, _ = crashed
    audit = next(t for t in run.report["tests"] if t["id"].startswith("test_frames.py::"))
    assert audit["verdict"] == "fail"
    for member in ("userId", "protocolVersion", "heartbeatIntervalMs", "limits", "features"):
        assert f"/payload/{member}" in audit["message"], member


def test_a_supervised_server_that_comes_back_is_checked_again(
    supervised: tuple[Run, str],
) -> None:
    run, _ = supervised
    (outage, *_) = run.report["outages"]
    assert outage["check"] == CRASH_CHECK
    assert outage["back_before"] is not None
    judged_later = [t for t in run.after(CRASH_CHECK) if t["verdict"] in ("pass", "fail")]
    assert len(judged_later) > 10


def test_claimed_features_are_checked_and_their_deviations_reported(
    supervised: tuple[Run, str],
) -> None:
    run, _ = supervised
    causes = {c["key"]: c for c in run.report["fix_first"]}
    # Not advertised, claimed: checked anyway, and AUTH-010 says which are missing.
    claimed_check = run.tests[
        "test_handshake.py::test_the_features_the_target_claims_are_advertised"
    ]
    assert claimed_check["verdict"] == "fail"
    assert "features" in claimed_check["message"]
    # Rooms are absent: one finding, and what needs rooms is blocked by it.
    assert "feature:rooms" in causes
    assert causes["feature:rooms"]["blocks"] >= 20
    rooms = [t for t in run.report["tests"] if t["id"].startswith("test_rooms.py::")]
    assert rooms and all(
        t["verdict"] in ("inconclusive", "skip") and "feature:rooms" in t["blocked_by"]
        for t in rooms
        if t["verdict"] == "inconclusive"
    )
    # SSE without authentication, a connection event without its event line: reported.
    assert run.requirements["SSE-001"]["verdict"] == "fail"
    assert run.requirements["AUTH-010"]["verdict"] == "fail"
    # Skips remain only for what neither side claims.
    for skip in run.report["skip_causes"]:
        for feature in CLAIMED:
            assert f"feature {feature} is neither" not in skip["reason"], skip


def test_nothing_false_is_reported(supervised: tuple[Run, str]) -> None:
    run, _ = supervised
    # The server picks the header token first; only the welcome's missing userId keeps
    # the kit from seeing it, so AUTH-002 is blocked by AUTH-010, never failed.
    assert run.requirements["AUTH-002"]["verdict"] != "fail"
    auth_002 = [t for t in run.report["tests"] if "AUTH-002" in t["requirements"]]
    assert auth_002 and all(
        t["verdict"] != "fail" or "AUTH-002" not in t["failed_requirements"] for t in auth_002
    )
    # Correct pongs pass, whatever else is wrong with the frames around them.
    pongs = [t for t in run.report["tests"] if "correlated_pong" in t["id"]]
    assert pongs and all(t["verdict"] == "pass" for t in pongs)


def test_the_first_screen_ranks_root_causes(supervised: tuple[Run, str]) -> None:
    run, _ = supervised
    keys = [c["key"] for c in run.report["fix_first"]]
    assert keys[0] == "server-unreachable"
    assert "feature:rooms" in keys[:4]
    summary = (run.directory / "summary.md").read_text(encoding="utf-8")
    assert summary.index("### Fix first") < summary.index("### By section")
    assert "The server stopped answering" in summary
    html = (run.directory / "report.html").read_text(encoding="utf-8")
    assert html.index("Fix first") < html.index("Requirements by section")


@pytest.mark.parametrize("which", ["crashed", "supervised"])
def test_no_token_or_secret_in_any_written_file(which: str, request: pytest.FixtureRequest) -> None:
    run, secret = request.getfixturevalue(which)
    files = [p for p in run.directory.rglob("*") if p.is_file()]
    assert any(p.name == "junit.xml" for p in files)
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        assert not JWT.search(text), f"{path.name} carries a token: {JWT.search(text)}"
        assert secret not in text, f"{path.name} carries the JWT secret"
    assert not JWT.search(run.stdout)


def test_junit_failures_carry_the_kits_messages_not_python(supervised: tuple[Run, str]) -> None:
    run, _ = supervised
    root = ET.parse(run.directory / "junit.xml").getroot()
    failures = [
        (case, element)
        for case in root.iter("testcase")
        for element in case
        if element.tag in ("failure", "error")
    ]
    assert failures
    for case, element in failures:
        text = (element.text or "") + element.get("message", "")
        assert "Traceback" not in text and 'File "' not in text, case.get("name")
        assert "conformance/" not in text and "def " not in text, case.get("name")
        assert re.search(r"\[[A-Z]+-\d{3}", case.get("name", "")), case.get("name")
    kinds = {element.get("type") for _, element in failures}
    assert "server-unreachable" in kinds
