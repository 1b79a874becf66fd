"""The browser WebSocketManager and SSEClient classes REP grew out of, in headless
Chromium, against the kit's scripted server: an honest report whose failures are real.

The classes (tests/browser_client/seed-clients.js) reconnect after any close, without
jitter and without restoring anything; they have no request with a timeout and do not
watch for a silent server. They do validate as REP messages, follow the doubling
schedule and its attempt limit, and EventSource resumes SSE as REP asks.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.cli import main

pytestmark = pytest.mark.network

PAGE = Path(__file__).resolve().parent / "browser_client"

#: What each client requirement gets, and why (the classes' own code says so).
EXPECTED = {
    "CLIENT-001": "pass",  # envelopes with metadata, ids from time and randomness
    "CLIENT-002": "fail",  # no request that waits for an answer, so no timeout
    "CLIENT-003": "fail",  # nor any matching of answers
    "CLIENT-004": "pass",  # every parsed message reaches the "message" listeners
    "CLIENT-005": "pass",  # unknown types too, without an answer
    "CLIENT-006": "fail",  # no request to fail
    "CLIENT-007": "pass",  # heartbeats are not answered
    "CLIENT-008": "fail",  # it pings, but never notices a silent server
    "CLIENT-009": "pass",  # reconnectDelay * 2^attempts is d itself
    "CLIENT-010": "fail",  # ... exactly, without jitter
    "CLIENT-011": "pass",  # maxReconnectAttempts, then reconnection_failed
    "CLIENT-012": "fail",  # onclose reconnects after 1000, 1008 and 4001 too
    "CLIENT-013": "fail",  # disconnect() closes, and onclose reconnects
    "CLIENT-014": "warn",  # retryAfterMs is not read
    "CLIENT-015": "fail",  # rooms and subscriptions are the application's sends
    "CLIENT-016": "inconclusive",  # blocked: nothing is resubscribed to replay
    "CLIENT-017": "fail",  # sends through rate_limited at once
    "CLIENT-018": "pass",  # EventSource sends Last-Event-ID as received
    "CLIENT-019": "pass",  # and waits the retry value
}


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        reason = "chromium is not on PATH (Debian: apt-get install -y chromium)"
        if os.environ.get("REP_REQUIRE_ALL") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


#: Scenarios at once: each starts a Chromium of its own, which is heavy on two cores.
JOBS = 2


# A whole run: 28 scenarios, each starting Chromium afresh, JOBS at a time.
@pytest.mark.timeout(900)
def test_the_browser_classes_get_an_honest_report(tmp_path: Path) -> None:
    target: dict[str, Any] = yaml.safe_load((PAGE / "client.yaml").read_text("utf-8"))
    target["client"]["command"][0] = chromium()
    target["client"]["static"] = str(PAGE)
    path = tmp_path / "client.yaml"
    path.write_text(yaml.safe_dump(target), "utf-8")
    reports = tmp_path / "report"
    argv = ["client", "--target", str(path), "--report-dir", str(reports), "-q"]
    status = main([*argv, "--jobs", str(JOBS)])
    report = json.loads((reports / "report.json").read_text("utf-8"))
    verdicts = {r["id"]: r["verdict"] for r in report["requirements"]}
    messages = {t["id"]: t["message"] for t in report["tests"] if t["verdict"] != "pass"}
    assert verdicts == EXPECTED, messages
    assert status == 1 and report["outcome"] == "fail"
    for name in ("report.html", "summary.md", "junit.xml"):
        assert (reports / name).stat().st_size > 0
    by_check = {t["id"]: t for t in report["tests"]}
    closes = {
        code: by_check[f"client.py::test_close_codes_are_followed[{code}]"]["verdict"]
        for code in (1000, 1001, 1008, 4000, 4001, 4999)
    }
    assert closes == {
        1000: "fail",
        1001: "pass",
        1008: "fail",
        4000: "pass",
        4001: "fail",
        4999: "pass",
    }
    jitter = by_check["client.py::test_reconnection_delays_are_jittered"]["message"]
    assert "every delay at the same place in its interval" in jitter
