"""The generated, stateful and load checks against the reference server: all pass, seeded
runs repeat, the profiles differ in size, and the load figures reach the reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conformance_variants.kit import run_kit
from tests.test_fuzz_variants import served

pytestmark = pytest.mark.network

GENERATED = (
    "test_generated_valid_messages_get_an_answer_the_spec_allows",
    "test_generated_invalid_messages_are_refused_with_the_documented_code",
    "test_room_programs_deliver_exactly_what_the_model_predicts",
    "test_stream_programs_deliver_each_event_once_over_websocket_and_sse",
    "test_data_programs_keep_versions_revisions_and_syncs_as_the_model_predicts",
)
SELECT = [arg for check in GENERATED for arg in ("--check", check)]
#: A small load for tests: the figures and thresholds matter here, not the size.
SMALL_LOAD = {
    "connections": 20,
    "messages": 120,
    "senders": 4,
    "hold": 0.5,
    "max_duration": 30,
    "min_messages_per_second": 20,
}

Run = tuple[int, dict[str, Any], str]


@pytest.fixture(scope="module")
def ci_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Run]:
    """The ci profile twice with the same seed, each against a fresh reference server."""
    root = tmp_path_factory.mktemp("fuzz-reference")
    found = []
    for attempt in ("first", "second"):
        with served() as target:
            found.append(run_kit(target, root / attempt, *SELECT, "--seed", "3"))
    return found[0], found[1]


def figures(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for t in report["tests"] for k, v in t["figures"].items()}


def test_the_reference_server_passes_the_generated_and_stateful_checks(
    ci_runs: tuple[Run, Run],
) -> None:
    code, report, stdout = ci_runs[0]
    verdicts = {t["id"].split("::")[1]: (t["verdict"], t["message"]) for t in report["tests"]}
    assert {name: v for name, (v, _) in verdicts.items()} == dict.fromkeys(GENERATED, "pass"), (
        verdicts
    )
    assert code == 0, stdout[-3000:]
    numbers = figures(report)
    assert numbers["fuzz.valid.boundary_cases"] > 50
    assert numbers["fuzz.invalid.kinds"] == 16
    assert numbers["stateful.rooms.programs"] >= 30 and numbers["stateful.streams.steps"] > 100
    assert numbers["stateful.data.programs"] >= 30 and numbers["stateful.data.steps"] > 300


def test_a_seeded_run_tries_the_same_examples_again(ci_runs: tuple[Run, Run]) -> None:
    """Same seed, same server behaviour: the same programs, step for step."""
    first, second = (figures(run[1]) for run in ci_runs)
    for key in (
        "stateful.rooms.steps",
        "stateful.streams.steps",
        "stateful.rooms.programs",
        "stateful.data.steps",
    ):
        assert first[key] == second[key], key


def test_the_thorough_profile_runs_many_more_programs(tmp_path: Path) -> None:
    with served() as target:
        code, report, stdout = run_kit(
            target,
            tmp_path,
            "--check",
            "test_stream_programs_deliver_each_event_once_over_websocket_and_sse",
            "--profile",
            "thorough",
        )
    assert code == 0, stdout[-3000:]
    assert figures(report)["stateful.streams.programs"] >= 80


def test_the_load_profile_reports_throughput_and_latency(tmp_path: Path) -> None:
    with served() as target:
        target["load"] = SMALL_LOAD
        code, report, stdout = run_kit(target, tmp_path, "--profile", "load")
    assert code == 0, stdout[-3000:]
    assert [t["verdict"] for t in report["tests"]] == ["info"], report["tests"]
    numbers = report["figures"]
    assert numbers["load.connections.held"] == SMALL_LOAD["connections"]
    assert numbers["load.messages.delivered"] == SMALL_LOAD["messages"]
    assert numbers["load.messages_per_second"] >= SMALL_LOAD["min_messages_per_second"]
    assert 0 < numbers["load.latency_ms.p50"] <= numbers["load.latency_ms.p99"]
    assert numbers["load.thresholds_met"] is True
    for phase in ("connections", "messages"):
        assert 0 < numbers[f"load.{phase}.kit_cpu_share"] < 4, numbers  # threads: can pass 1
    assert numbers["load.messages.limited_by"] in ("kit", "rate limit", "server"), numbers
    html = (tmp_path / "reports" / "report.html").read_text(encoding="utf-8")
    assert "load.messages_per_second" in html and "load.latency_ms.p99" in html


def test_a_missed_load_threshold_fails_the_load_run(tmp_path: Path) -> None:
    with served() as target:
        target["load"] = {**SMALL_LOAD, "connections": 5, "min_messages_per_second": 1e9}
        code, report, _ = run_kit(target, tmp_path, "--profile", "load")
    assert code == 1
    (test,) = report["tests"]
    assert test["verdict"] == "fail" and "below the threshold" in test["message"], test
    assert test["figures"]["load.thresholds_met"] is False
