"""Runs that cannot start: a target naming fixtures the server lacks, a closed port, a
server that went away. Each says why, in the console and in every report."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.harness import probe_profile
from conformance.health import ServerHealth
from conformance.preflight import preflight
from conformance.reference import fixtures, server_config
from conformance.target import parse_target
from conformance.tokens import token_source
from conformance.transcript import Transcript
from reference_server.config import parse_config
from reference_server.testing import running_server
from tests.conformance_variants.kit import run_kit

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def reference() -> Iterator[dict[str, Any]]:
    found = fixtures(secrets.token_hex(3))
    with running_server(parse_config(server_config(found))) as server:
        yield {
            "name": "reference",
            "ws_url": server.ws_url,
            "http_url": server.http_url,
            "tokens": {"jwt": {"secret": server.secret}},
            "fixtures": found,
        }


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_preflight_accepts_the_fixtures_the_server_has(reference: dict[str, Any]) -> None:
    target = parse_target(reference)
    tokens = token_source(target.tokens)
    assert preflight(target, probe_profile(target, tokens), tokens) == []


@pytest.mark.parametrize(
    ("fixture", "value", "key"),
    [
        ("stream", "orders", "fixtures.stream"),
        ("password_room", {"id": "conf-password", "password": "wrong"}, "fixtures.password_room"),
        ("allowed_origin", "https://not-allowed.example", "fixtures.allowed_origin"),
    ],
    ids=["stream", "password", "origin"],
)
def test_the_preflight_names_the_target_key_to_fix(
    reference: dict[str, Any], fixture: str, value: Any, key: str
) -> None:
    raw = {**reference, "fixtures": {**reference["fixtures"], fixture: value}}
    target = parse_target(raw)
    tokens = token_source(target.tokens)
    problems = preflight(target, probe_profile(target, tokens), tokens)
    assert len(problems) == 1 and problems[0].startswith(key), problems


def test_a_wrong_fixture_stops_the_run_with_4_and_every_report_says_why(
    reference: dict[str, Any], tmp_path: Path
) -> None:
    raw = {**reference, "fixtures": {**reference["fixtures"], "stream": "orders"}}
    check = "test_ping_is_answered_by_a_correlated_pong"
    code, report, stdout = run_kit(raw, tmp_path, "--check", check)
    assert code == 4
    assert "fixtures.stream" in report["aborted"]
    assert "run stopped before checking" in stdout and "fixtures.stream" in stdout
    assert "_pytest" not in stdout and "Traceback" not in stdout
    reports = tmp_path / "reports"
    assert "fixtures.stream" in (reports / "summary.md").read_text(encoding="utf-8")
    assert "fixtures.stream" in (reports / "report.html").read_text(encoding="utf-8")


def test_an_unreachable_server_stops_the_run_with_3_and_says_why(tmp_path: Path) -> None:
    port = closed_port()
    raw = {"ws_url": f"ws://127.0.0.1:{port}/ws", "tokens": {"jwt": {"secret": "s" * 32}}}
    code, report, stdout = run_kit(raw, tmp_path)
    assert code == 3
    assert report["aborted"].startswith(f"cannot check ws://127.0.0.1:{port}/ws")
    assert report["outcome"] == "fail"
    assert "stopped before checking" in (tmp_path / "reports" / "summary.md").read_text("utf-8")
    assert "_pytest.outcomes.Exit" not in stdout


def test_the_health_probe_records_where_the_server_went_away() -> None:
    port = closed_port()
    target = parse_target(
        {
            "ws_url": f"ws://127.0.0.1:{port}/ws",
            "tokens": {"jwt": {"secret": "s" * 32}},
            "timeouts": {"connect": 0.5},
        }
    )
    health = ServerHealth(target, token_source(target.tokens))
    transcript = Transcript()
    transcript.add("anon#1", "sent", "handshake", "GET /ws (no token)")
    outage = health.after_failure("test_x.py::test_crash", transcript)
    assert outage is not None and outage.check == "test_x.py::test_crash"
    assert outage.last_sent == ["anon#1 handshake GET /ws (no token)"]
    assert "Connection refused" in outage.reason and "/health" in outage.reason
    assert health.before_check("test_x.py::test_next") is outage
    assert health.went_away_since(0.0) is outage
    assert "test_x.py::test_crash" in outage.describe()
