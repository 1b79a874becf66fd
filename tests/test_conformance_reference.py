"""The kit against real servers: the reference server passes; each broken variant fails.

The reference server runs in a thread of this process (``running_server``); the kit runs
as its users run it, ``python -m conformance.cli run --target FILE``, in a subprocess, and
the verdicts are read from its JSON report.
"""

from __future__ import annotations

import json
import secrets
import select
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.reference import fixtures, server_config
from reference_server.config import parse_config
from reference_server.core.server import ServerCore
from reference_server.testing import running_server
from rep_spec import requirements
from tests.conformance_variants import VARIANTS, Variant
from tests.conformance_variants.kit import run_kit

pytestmark = pytest.mark.network

#: Features the reference server implements and the target file therefore claims.
CLAIMED = ["core", "rooms", "chat", "presence", "notifications", "data", "streams", "publish"]

#: Checks that may skip against the reference server, and why.
DECLARED_SKIPS = {
    "test_types_of_an_unadvertised_feature_are_answered_with_unknown_type": "advertises",
    "test_room_traffic_crosses_nodes": "feature cluster",
    "test_the_rate_limit_spans_nodes": "feature cluster",
    "test_stream_events_cross_nodes_and_replay_alike": "feature cluster",
    "test_record_versions_and_conflicts_span_nodes": "feature cluster",
    "test_membership_and_presence_agree_across_nodes": "feature cluster",
}

#: Departures of the reference server from the spec that the kit found and that are not
#: fixed yet. Baselined so that the rest stays green; each entry fails this test as stale
#: as soon as the server is fixed, and must then be deleted.
KNOWN_REFERENCE_FAILURES: list[dict[str, str]] = []


def claimed_by(variant: Variant) -> list[str]:
    """The features a variant's target claims: the usual ones, minus what it hides."""
    return [f for f in CLAIMED if f not in variant.unclaimed]


@contextmanager
def served(core: type[ServerCore] = ServerCore) -> Iterator[dict[str, Any]]:
    """A reference server (or variant) in this process; yields the target file content."""
    found = fixtures(secrets.token_hex(3))
    config = parse_config(server_config(found))
    with running_server(config, core_class=core) as server:
        yield {
            "name": f"in-process {core.__name__}",
            "ws_url": server.ws_url,
            "http_url": server.http_url,
            "tokens": {"jwt": {"secret": server.secret}},
            "features": CLAIMED,
            "fixtures": found,
            "timeouts": {"answer": 2.0, "silence": 0.25},
        }


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any], str]:
    with served() as target:
        target["baseline"] = KNOWN_REFERENCE_FAILURES
        return run_kit(target, tmp_path_factory.mktemp("reference"))


def test_the_reference_server_passes(reference_run: tuple[int, dict[str, Any], str]) -> None:
    code, report, stdout = reference_run
    failing = [
        t["id"] + ": " + t["message"]
        for t in report["tests"]
        if t["verdict"] in ("fail", "warn", "stale")
    ]
    assert not failing, "\n\n".join(failing)
    assert report["stale_baseline"] == []
    assert (code, report["outcome"]) == (0, "pass"), stdout[-3000:]


def test_the_reference_server_skips_only_declared_checks(
    reference_run: tuple[int, dict[str, Any], str],
) -> None:
    _, report, _ = reference_run
    for test in report["tests"]:
        if test["verdict"] != "skip":
            continue
        name = test["id"].split("::")[1].split("[")[0]
        assert name in DECLARED_SKIPS, f"undeclared skip: {test['id']}: {test['message']}"
        assert DECLARED_SKIPS[name] in test["message"], test["message"]


def test_every_conformance_requirement_gets_a_verdict(
    reference_run: tuple[int, dict[str, Any], str],
) -> None:
    _, report, _ = reference_run
    unjudged = [
        r["id"]
        for r in report["requirements"]
        if r["verified_by"] == "conformance" and r["verdict"] == "not-checked"
    ]
    assert not unjudged, unjudged


def run_kits(
    jobs: list[tuple[dict[str, Any], Path, list[str]]],
) -> list[tuple[int, dict[str, Any]]]:
    """Several kit runs in one subprocess, one after the other (saves the start-up cost)."""
    argv_lists = []
    for target, directory, args in jobs:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "target.yaml").write_text(yaml.safe_dump(target, sort_keys=False))
        argv_lists.append(
            [
                "run",
                "--target",
                str(directory / "target.yaml"),
                "--report-dir",
                str(directory / "reports"),
                *args,
            ]
        )
    jobs_file = jobs[0][1].parent / f"jobs-{jobs[0][1].name}.json"
    jobs_file.write_text(json.dumps(argv_lists))
    done = subprocess.run(
        [sys.executable, "-m", "tests.conformance_variants.run_many", str(jobs_file)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("EXIT-CODES ")), None)
    assert line is not None, done.stdout[-3000:] + done.stderr[-3000:]
    codes = json.loads(line.removeprefix("EXIT-CODES "))
    return [
        (code, json.loads((directory / "reports" / "report.json").read_text()))
        for code, (_, directory, _) in zip(codes, jobs, strict=True)
    ]


def selection(variant: Variant) -> list[str]:
    return [arg for check in variant.checks for arg in ("--check", check)]


#: Variants whose checks wait on server timers; spread over the kit processes first.
SLOW = {"LIFE-002", "LIFE-003", "AUTH-012", "AUTH-014", "RATE-003"}
KIT_PROCESSES = 3


class Apart:
    """A patched variant starting in its own process (its patch must not touch the
    servers of other variants); :meth:`target` waits until it listens."""

    def __init__(self, variant: Variant, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.variant = variant
        self.fixtures = fixtures(secrets.token_hex(3))
        config = directory / "server.yaml"
        config.write_text(yaml.safe_dump(server_config(self.fixtures)))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.conformance_variants.serve", variant.name, str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def target(self) -> dict[str, Any]:
        stdout = self.process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], 30)
        assert ready, f"variant {self.variant.name} did not start"
        address = json.loads(stdout.readline())
        return {
            "name": f"variant {self.variant.name}",
            "ws_url": address["ws_url"],
            "http_url": address["http_url"],
            "tokens": {"jwt": {"secret": address["secret"]}},
            "features": claimed_by(self.variant),
            "fixtures": self.fixtures,
            "timeouts": {"answer": 2.0, "silence": 0.25},
        }

    def stop(self) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


@pytest.fixture(scope="module")
def variant_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, dict[str, Any]]]:
    """Every variant served at once (core variants in threads here, patched ones in their
    own processes) and checked by a few kit processes side by side."""
    root = tmp_path_factory.mktemp("variants")
    ordered = sorted(VARIANTS, key=lambda v: v.breaks not in SLOW)
    results: dict[str, tuple[int, dict[str, Any]]] = {}
    with ExitStack() as stack:
        apart: dict[str, Apart] = {}
        for variant in ordered:
            if variant.patch is not None:
                apart[variant.name] = Apart(variant, root / f"{variant.name}-server")
                stack.callback(apart[variant.name].stop)
        jobs = [
            (
                v,
                apart[v.name].target()
                if v.name in apart
                else {**stack.enter_context(served(v.core)), "features": claimed_by(v)},
            )
            for v in ordered
        ]
        batches = [jobs[index::KIT_PROCESSES] for index in range(KIT_PROCESSES)]
        with ThreadPoolExecutor(max_workers=KIT_PROCESSES) as pool:
            futures = [
                pool.submit(run_kits, [(t, root / v.name, selection(v)) for v, t in batch])
                for batch in batches
            ]
            for batch, future in zip(batches, futures, strict=True):
                for (variant, _), found in zip(batch, future.result(), strict=True):
                    results[variant.name] = found
    return results


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_each_broken_variant_fails_the_right_requirement(
    variant: Variant, variant_runs: dict[str, tuple[int, dict[str, Any]]]
) -> None:
    """A broken MUST fails the run; a broken SHOULD is a warning that does not."""
    code, report = variant_runs[variant.name]
    by_id = {r["id"]: r for r in report["requirements"]}
    found = by_id[variant.breaks]
    mandatory = requirements()[variant.breaks].is_mandatory
    assert found["verdict"] == ("fail" if mandatory else "warn"), found
    assert code == (1 if mandatory else 0), f"exit {code} for a server breaking {variant.breaks}"
    failed = {f["test"].split("::")[1].split("[")[0] for f in found["failures"]}
    assert failed & set(variant.checks), (failed, variant.checks)
    message = found["failures"][0]["message"]
    assert variant.breaks in message and "expected" in message, message


def test_run_reference_starts_the_bundled_server_as_a_subprocess(tmp_path: Path) -> None:
    """The README's command, on a small selection: the server starts, is checked, stops."""
    reports = tmp_path / "reports"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance.cli",
            "run",
            "--reference",
            "--report-dir",
            str(reports),
            "--check",
            "test_ping_is_answered_by_a_correlated_pong",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((reports / "report.json").read_text())
    assert [t["verdict"] for t in report["tests"]] == ["pass", "pass"]
    assert (reports / "report.html").exists() and (reports / "junit.xml").exists()
    assert "reference server on ws://127.0.0.1:" in done.stdout
