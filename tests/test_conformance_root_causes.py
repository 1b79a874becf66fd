"""Blocked checks, root causes, checked features and the junit rewrite: the rules alone."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from conformance.baseline import Baseline
from conformance.profile import ServerProfile, known_features
from conformance.reports.junit import junit_address, rewrite_junit
from conformance.results import (
    SERVER_UNREACHABLE,
    CheckResult,
    feature_cause,
    judge,
    requirement_results,
    root_causes,
    skip_causes,
)


def check(
    check_id: str,
    outcome: str,
    marked: tuple[str, ...],
    failed: tuple[str, ...] = (),
    **kw: Any,
) -> CheckResult:
    found = CheckResult(
        check_id=check_id,
        nodeid=f"checks/{check_id}",
        requirement_ids=marked,
        outcome=outcome,  # type: ignore[arg-type]
        failed_requirements=failed,
        **kw,
    )
    found.verdict, found.baseline_reason = judge(found, Baseline())
    return found


def test_a_failure_on_another_requirement_blocks_the_check() -> None:
    blocked = check(
        "test_chat.py::test_a", "failed", ("CHAT-002",), ("MSG-003",), blocked_by=("MSG-003",)
    )
    assert blocked.verdict == "inconclusive"
    verdicts = {r.requirement.id: r.verdict for r in requirement_results([blocked])}
    assert verdicts["MSG-003"] == "fail", "the precondition step is evidence against MSG-003"
    assert verdicts["CHAT-002"] == "inconclusive"


def test_a_failure_on_an_own_requirement_fails_even_when_others_broke_too() -> None:
    found = check(
        "test_errors.py::test_a",
        "failed",
        ("ERR-007",),
        ("ERR-001", "ERR-007"),
        blocked_by=("ERR-001", "ERR-007"),
    )
    assert found.verdict == "fail"


def test_an_unreachable_server_blames_no_requirement() -> None:
    found = check(
        "test_http.py::test_a",
        "failed",
        ("HTTP-001",),
        (),
        blocked_by=(SERVER_UNREACHABLE,),
        message="server unreachable since test_handshake.py::test_x",
    )
    assert found.verdict == "inconclusive"
    verdicts = {r.requirement.id: r.verdict for r in requirement_results([found])}
    assert verdicts["HTTP-001"] == "inconclusive"


def test_root_causes_put_the_server_first_then_the_costliest() -> None:
    results = [
        check("test_a.py::t1", "failed", ("AUTH-010",), ("AUTH-010",), message="welcome bad"),
        *(
            check(f"test_b.py::t{n}", "failed", ("LIFE-002",), ("AUTH-010",), message="no hb")
            for n in range(3)
        ),
        *(
            check(
                f"test_rooms.py::t{n}",
                "skipped",
                ("ROOM-002",),
                blocked_by=(feature_cause("rooms"),),
                message="rooms not implemented",
            )
            for n in range(5)
        ),
        check("test_c.py::t1", "failed", ("ERR-010",), ("ERR-010",), message="a SHOULD"),
        check("test_d.py::t1", "failed", ("ERR-003",), ("ERR-003",), message="one MUST"),
        check(
            "test_e.py::t1",
            "failed",
            ("AUTH-001",),
            blocked_by=(SERVER_UNREACHABLE,),
            server_went_away=True,
            message="the server stopped answering during test_e.py::t1",
        ),
    ]
    causes = root_causes(results, {SERVER_UNREACHABLE: "gone during test_e.py::t1"})
    keys = [c.key for c in causes]
    assert keys == ["server-unreachable", "feature:rooms", "AUTH-010", "ERR-003", "ERR-010"]
    welcome = causes[2]
    assert (len(welcome.blocked), len(welcome.failed)) == (3, 1)
    assert welcome.message == "welcome bad"
    assert causes[0].title == "gone during test_e.py::t1"
    assert causes[0].message.startswith("the server stopped answering")


def test_skip_causes_are_counted() -> None:
    results = [
        check("test_a.py::t1", "skipped", ("ROOM-002",), message="no fixture"),
        check("test_a.py::t2", "skipped", ("ROOM-002",), message="no fixture"),
        check("test_a.py::t3", "skipped", ("ROOM-002",), message="over budget"),
    ]
    assert skip_causes(results) == [
        {"reason": "no fixture", "checks": 2},
        {"reason": "over budget", "checks": 1},
    ]


def welcome(features: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"status": "connected"}
    if features is not None:
        payload["features"] = features
    return {"type": "auth", "payload": payload}


@pytest.mark.parametrize(
    ("listed", "claimed", "checked"),
    [
        (["core", "rooms"], None, {"core", "rooms"}),
        (["core", "rooms"], {"rooms", "chat"}, {"core", "rooms", "chat"}),
        (None, {"chat"}, {"core", "chat"}),
        ([], {"chat"}, {"core", "chat"}),
        (None, None, set(known_features())),
        ("rooms", None, set(known_features())),
    ],
    ids=["advertised", "union", "no-list-claimed", "empty-list", "nothing-said", "not-a-list"],
)
def test_the_checked_features_are_claimed_and_advertised(
    listed: Any, claimed: set[str] | None, checked: set[str]
) -> None:
    profile = ServerProfile(welcome(listed), frozenset(claimed) if claimed else None)
    assert profile.checked_features == checked
    assert profile.checks_every_feature == (checked == set(known_features()))


def test_the_feature_basis_names_what_is_claimed_but_not_advertised() -> None:
    profile = ServerProfile(welcome(["core"]), frozenset({"rooms"}))
    assert "claimed but not advertised: rooms" in profile.feature_basis()
    assert profile.supports("rooms") and not profile.advertises("rooms")


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="rep-conformance" errors="0" failures="1" skipped="2" tests="4">
<testcase classname="checks.test_a" name="test_fail"><failure message="x">Traceback (most
recent call last): File "conformance/client.py", line 3
token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln</failure></testcase>
<testcase classname="checks.test_a" name="test_should[p]">
<skipped type="pytest.xfail" message="x"/></testcase>
<testcase classname="checks.test_b" name="test_blocked">
<skipped type="pytest.skip" message="x"/></testcase>
<testcase classname="checks.test_b" name="test_gone"><failure message="x">boom</failure></testcase>
</testsuite></testsuites>
"""


def test_junit_carries_verdicts_ids_and_the_kits_messages(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT, encoding="utf-8")
    tests = [
        {"nodeid": "checks/test_a.py::test_fail", "requirements": ["ERR-003"], "verdict": "fail",
         "message": "sent ping; expected an error (ERR-003); received nothing"},
        {"nodeid": "checks/test_a.py::test_should[p]", "requirements": ["ERR-010"],
         "verdict": "warn", "message": "expected details (ERR-010)"},
        {"nodeid": "checks/test_b.py::test_blocked", "requirements": ["CHAT-002"],
         "verdict": "inconclusive", "blocked_by": ["feature:rooms"], "message": "no rooms"},
        {"nodeid": "checks/test_b.py::test_gone", "requirements": ["AUTH-001"],
         "verdict": "inconclusive", "blocked_by": ["server-unreachable"],
         "server_went_away": True, "message": "the server stopped answering"},
    ]  # fmt: skip
    rewrite_junit(path, tests, strict=False)
    text = path.read_text(encoding="utf-8")
    assert "Traceback" not in text and "eyJ" not in text
    cases = {c.get("name"): c for c in ET.fromstring(text).iter("testcase")}
    failed = cases["test_fail [ERR-003]"].find("failure")
    assert failed is not None and failed.text is not None and "ERR-003" in failed.text
    warned = cases["test_should[p] [ERR-010]"].find("failure")
    assert warned is not None and warned.get("type") == "warn"
    blocked = cases["test_blocked [CHAT-002]"].find("skipped")
    assert blocked is not None and blocked.get("type") == "inconclusive"
    assert "feature:rooms" in (blocked.get("message") or "")
    gone = cases["test_gone [AUTH-001]"].find("error")
    assert gone is not None and gone.get("type") == "server-unreachable"
    suite = ET.fromstring(text).find("testsuite")
    assert suite is not None
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("2", "1", "1")


def test_junit_addresses_match_pytests() -> None:
    assert junit_address("checks/test_a.py::test_x[a::b]") == ("checks.test_a", "test_x[a::b]")
