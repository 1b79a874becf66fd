"""``rep-conformance client``: every scenario against a fresh client, then the reports.

Verdicts are the server run's (:mod:`conformance.results`) and so are the reports
(:mod:`conformance.reports`): report.json, report.html, summary.md and junit.xml, with
requirement ids, transcripts and the command that re-runs one check.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conformance.baseline import pattern_matches
from conformance.clientkit.control import Driver, DriverGone
from conformance.clientkit.process import ClientProcess, Endpoints
from conformance.clientkit.scenarios import (
    ClientUnreachable,
    Context,
    Inconclusive,
    Scenario,
    scenarios,
)
from conformance.clientkit.target import ClientTarget, load_client_target
from conformance.clientkit.wire import ENVELOPE_REQUIREMENT, ScriptedServer
from conformance.failures import ConformanceFailure
from conformance.redact import remember
from conformance.reports import build_report, rewrite_junit, write_reports
from conformance.reports.junit import junit_address
from conformance.results import (
    CheckResult,
    counts_as_failure,
    first_line,
    judge,
    requirement_results,
    root_causes,
    skip_causes,
)
from conformance.target import TargetError
from conformance.transcript import Transcript
from rep_spec import requirements

EXIT_PASS, EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE, EXIT_NO_SELECTION = 0, 1, 3, 4, 5
CLIENT_UNREACHABLE = "client-unreachable"
SECTION = "client"
#: The longest a scenario may take beyond its own waits (a hung client or driver).
SCENARIO_BUDGET_S = 180.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", type=Path, required=True, help="client target file")
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=Path("rep-conformance-report"),
        help="where reports go (default: rep-conformance-report)",
    )
    parser.add_argument(
        "--check",
        action="append",
        default=[],
        metavar="ID",
        help="run only this check: 'client.py::name[param]', without the parameter, or the "
        "bare name; repeatable",
    )
    parser.add_argument("--strict", action="store_true", help="failed SHOULDs fail the run")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="run up to N scenarios at once, each with its own server and client "
        "(default 1; the first scenario always runs alone, to see that the client starts)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no line per check")


@dataclass
class Planned:
    scenario: Scenario
    check_ids: list[str]


def plan(patterns: list[str]) -> list[Planned]:
    planned = []
    for scenario in scenarios():
        ids = [scenario.check_id(check) for check in scenario.checks]
        if not patterns or any(pattern_matches(p, i) for p in patterns for i in ids):
            planned.append(Planned(scenario, ids))
    return planned


def _replay_command(target: Path, check_id: str) -> str:
    return f"rep-conformance client --target {target} --check '{check_id}'"


async def run_scenario(
    target: ClientTarget, scenario: Scenario, log_dir: Path, token: str
) -> tuple[list[CheckResult], bool]:
    """Run one scenario; return its checks' results and whether the client was reachable."""
    transcript = Transcript()
    server = ScriptedServer(transcript, target.static, token)
    driver = Driver(transcript)
    server.control_handler = driver.handle
    await server.start()
    where = Endpoints(server.ws_url, server.sse_url, server.control_url, server.http_url, token)
    label = scenario.check_id(scenario.checks[0]).split("::")[1]
    process = ClientProcess(target, where, label, log_dir / f"{_file_name(label)}.log")
    ctx = Context(target, server, driver, transcript)
    started = time.monotonic()
    unreachable: str | None = None
    failure: ConformanceFailure | None = None
    try:
        await process.start()
        await driver.ready(target.ready_timeout_s)
        await asyncio.wait_for(scenario.body(ctx), SCENARIO_BUDGET_S)
    except (DriverGone, ClientUnreachable) as exc:
        unreachable = f"{exc}\nclient output:\n{process.log_tail()}"
    except ConformanceFailure as exc:
        failure = exc
    except TimeoutError:
        unreachable = f"the scenario did not finish within {SCENARIO_BUDGET_S:g} s"
    except OSError as exc:
        unreachable = f"the client command could not be started: {exc}"
    finally:
        await process.stop()
        await server.stop()
    duration = time.monotonic() - started
    if server.kit_problems:
        ctx.figures["kit_problems"] = sorted(set(server.kit_problems))
    frames = None
    if server.violations:
        frames = ConformanceFailure(
            [ENVELOPE_REQUIREMENT],
            expected="every client message valid, with an id new on its connection",
            received="; ".join(server.violations[:5])
            + (f" (and {len(server.violations) - 5} more)" if len(server.violations) > 5 else ""),
            transcript=transcript,
        )
    results = []
    for check in scenario.checks:
        check_id = scenario.check_id(check)
        outcome = ctx.outcomes.get(check.name, failure)
        replay = _replay_command(target.path, check_id)
        found = outcome if isinstance(outcome, ConformanceFailure) else None
        if frames is not None:
            if found is None:
                found = frames
            else:
                found.absorb(frames)
        fields: dict[str, Any] = {}
        if unreachable is not None and found is None:
            fields = {
                "outcome": "failed",
                "blocked_by": (CLIENT_UNREACHABLE,),
                "message": unreachable,
            }
        elif found is not None:
            fields = {
                "outcome": "failed",
                "failed_requirements": found.requirement_ids,
                "message": f"{found}\nreplay: {replay}",
            }
        elif isinstance(outcome, Inconclusive):
            fields = {"outcome": "skipped", "message": str(outcome)}
        elif check.name not in ctx.outcomes:
            fields = {
                "outcome": "failed",
                "blocked_by": (CLIENT_UNREACHABLE,),
                "message": "the scenario ended without a verdict for this check",
            }
        result = CheckResult(
            check_id=check_id,
            nodeid=f"client/{check_id}",
            requirement_ids=check.requirements,
            outcome=fields.pop("outcome", "passed"),
            duration=duration / len(scenario.checks),
            transcript=transcript.to_dicts(),
            figures=dict(ctx.figures),
            replay=replay,
            **fields,
        )
        result.verdict, result.baseline_reason = judge(result, target.baseline)
        results.append(result)
    return results, unreachable is None


def _file_name(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


def _junit(path: Path, results: list[CheckResult], strict: bool) -> None:
    suite = ET.Element("testsuite", {"name": "rep-conformance-client", "tests": str(len(results))})
    for result in results:
        classname, name = junit_address(result.nodeid)
        ET.SubElement(
            suite,
            "testcase",
            {"classname": classname, "name": name, "time": f"{result.duration:.3f}"},
        )
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    rewrite_junit(path, [r.to_dict() for r in results], strict)


async def run_all(args: argparse.Namespace, target: ClientTarget, planned: list[Planned]) -> int:
    token = f"kit-{secrets.token_urlsafe(16)}"
    remember(token)
    report_dir: Path = args.report_dir
    started_at, started = datetime.now(UTC), time.monotonic()
    results: list[CheckResult] = []
    aborted: str | None = None
    log_dir = report_dir / "client-logs"
    # Scenarios share nothing (each has its own scripted server and client process) and
    # mostly wait on the client's timers, so --jobs overlaps them; results keep the order
    # of the plan. The first runs alone: a client that does not start stops the run. A
    # scenario marked ``alone`` takes every slot, so nothing runs beside it.
    jobs = max(1, args.jobs)
    slots = asyncio.Semaphore(jobs)
    whole = asyncio.Lock()

    async def scenario_in_slot(item: Planned) -> tuple[list[CheckResult], bool]:
        if not item.scenario.alone:
            async with slots:
                return await run_scenario(target, item.scenario, log_dir, token)
        async with whole:
            for _ in range(jobs):
                await slots.acquire()
        try:
            return await run_scenario(target, item.scenario, log_dir, token)
        finally:
            for _ in range(jobs):
                slots.release()

    pending: list[asyncio.Task[tuple[list[CheckResult], bool]]] = []
    try:
        for number, item in enumerate(planned):
            if number == 0:
                found, reachable = await run_scenario(target, item.scenario, log_dir, token)
            else:
                if not pending:
                    pending = [asyncio.create_task(scenario_in_slot(p)) for p in planned[1:]]
                found, reachable = await pending[number - 1]
            results.extend(found)
            if not args.quiet:
                for result in found:
                    ids = ", ".join(result.requirement_ids)
                    print(f"  {result.verdict:<12} {result.check_id}  [{ids}]")
            if number == 0 and not reachable:
                aborted = first_line(found[0].message)
                break
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    explanations = {CLIENT_UNREACHABLE: "the client under test did not start or connect"}
    found_requirements = [
        r for r in requirement_results(results) if r.requirement.section == SECTION
    ]
    failing = any(counts_as_failure(r.verdict, args.strict) for r in results)
    exit_status = EXIT_UNREACHABLE if aborted else (EXIT_FAILED if failing else EXIT_PASS)
    causes = root_causes(results, explanations)
    report = build_report(
        results=results,
        requirement_results=found_requirements,
        target=target.describe(),
        server={"role": "scripted server of the kit", "client": target.name},
        strict=args.strict,
        started_at=started_at,
        duration=time.monotonic() - started,
        stale_entries=[],
        failing=failing or aborted is not None,
        root_causes=[c.to_dict() for c in causes],
        skip_causes=skip_causes(results),
        aborted=aborted,
        exit_status=exit_status,
    )
    report["sections"] = [s for s in report["sections"] if s["section"] == SECTION]
    paths = write_reports(report, report_dir)
    junit = report_dir / "junit.xml"
    _junit(junit, results, args.strict)
    _summary(results, found_requirements, causes, aborted)
    for path in [*paths, junit]:
        print(f"report: {path}")
    return exit_status


def _summary(
    results: list[CheckResult], found: list[Any], causes: list[Any], aborted: str | None
) -> None:
    print("REP client conformance")
    if aborted:
        print(f"run stopped before checking: {aborted}")
    counts: dict[str, int] = {}
    for result in results:
        counts[result.verdict] = counts.get(result.verdict, 0) + 1
    print("checks: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())))
    by_verdict: dict[str, int] = {}
    for requirement in found:
        by_verdict[requirement.verdict] = by_verdict.get(requirement.verdict, 0) + 1
    print("requirements: " + ", ".join(f"{n} {v}" for v, n in sorted(by_verdict.items())))
    if causes:
        print("fix first:")
        for rank, cause in enumerate(causes[:5], 1):
            print(f"  {rank}. {cause.key} ({cause.level}): {cause.title}")
            line = first_line(cause.message)
            if line:
                print(f"     {line}")


def run_client(args: argparse.Namespace) -> int:
    try:
        target = load_client_target(args.target.resolve())
    except TargetError as exc:
        print(f"rep-conformance: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.jobs < 1:
        print("rep-conformance: --jobs must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    planned = plan(args.check)
    if not planned:
        print(f"rep-conformance: no client check matches {' '.join(args.check)}", file=sys.stderr)
        return EXIT_NO_SELECTION
    args.report_dir = args.report_dir.resolve()
    args.report_dir.mkdir(parents=True, exist_ok=True)
    known = requirements()
    assert all(r in known for p in planned for c in p.scenario.checks for r in c.requirements)
    return asyncio.run(run_all(args, target, planned))
