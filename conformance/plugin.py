"""The pytest plugin (``pytest11`` entry point ``rep_conformance``).

It is inert unless the session collects REP checks (items marked ``requirements`` or
``informational``). Then it:

* loads the target file (``--rep-target``) and probes the server's welcome once;
* gives checks the ``rep`` fixture (:class:`~conformance.harness.Harness`), skipping
  checks whose features the server does not advertise;
* after each check, fails it if any frame the server sent broke the schemas (ENV-013);
* turns each outcome into a verdict (pass, fail, warn, skip, info, baselined, stale) and
  shapes pytest's report to match: a warning (SHOULD) or baselined failure shows as an
  expected failure, a stale baseline entry as a failure;
* writes the JSON, HTML and Markdown reports (``--rep-report-dir``) and prints a summary.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conformance.baseline import Baseline
from conformance.failures import ConformanceFailure
from conformance.generation import settings as run_settings
from conformance.harness import Harness, Run, probe_profile
from conformance.profile import ServerProfile
from conformance.reports import build_report, write_reports
from conformance.results import CheckResult, counts_as_failure, judge, requirement_results
from conformance.target import Target, TargetError, load_target
from conformance.tokens import token_source
from rep_spec import requirements

HARNESS_KEY = pytest.StashKey[Harness]()
RESULT_KEY = pytest.StashKey[CheckResult]()
RECORDER_NAME = "rep-conformance-recorder"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rep-conformance", "REP conformance kit")
    group.addoption(
        "--rep-target", metavar="FILE", help="target file describing the REP server under test"
    )
    group.addoption(
        "--rep-strict",
        action="store_true",
        default=False,
        help="SHOULD requirements that fail also fail the run",
    )
    group.addoption(
        "--rep-report-dir",
        metavar="DIR",
        help="write report.json, report.html and summary.md to DIR",
    )
    group.addoption(
        "--rep-check",
        action="append",
        default=[],
        metavar="ID",
        help="run only this check (id as 'module.py::test_name[params]'); repeatable",
    )
    group.addoption(
        "--rep-profile",
        choices=run_settings.PROFILES,
        default=run_settings.DEFAULT_PROFILE,
        help="ci: few generated examples, fixed seed (default); thorough: many more; "
        "load: only the load check",
    )
    group.addoption(
        "--rep-seed",
        type=int,
        metavar="N",
        help="seed of the generated checks (default: fixed for ci, random for thorough)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requirements(*ids): the REP requirement ids a conformance check verifies"
    )
    config.addinivalue_line(
        "markers", "features(*names): features a check needs besides those of its requirements"
    )
    config.addinivalue_line(
        "markers", "informational: a conformance check that reports figures, not a verdict"
    )
    config.addinivalue_line(
        "markers",
        "background: a check that mostly waits (timers); it starts with the session and "
        "runs alongside the others",
    )
    config.addinivalue_line("markers", "load: the load check, run only with --rep-profile load")
    config.pluginmanager.register(Recorder(config), RECORDER_NAME)


def check_id_of(item: pytest.Item) -> str:
    return f"{Path(str(item.path)).name}::{item.name}"


def marked_requirements(item: pytest.Item) -> tuple[str, ...]:
    ids: list[str] = []
    for mark in item.iter_markers("requirements"):
        ids.extend(str(a) for a in mark.args)
    return tuple(dict.fromkeys(ids))


def is_check(item: pytest.Item) -> bool:
    return item.get_closest_marker("requirements") is not None or (
        item.get_closest_marker("informational") is not None
    )


def needed_features(item: pytest.Item) -> list[str]:
    index = requirements()
    found = [
        index[rid].feature
        for rid in marked_requirements(item)
        if rid in index and index[rid].feature is not None
    ]
    for mark in item.iter_markers("features"):
        found.extend(str(a) for a in mark.args)
    return [f for f in dict.fromkeys(found) if f is not None]


class Recorder:
    """Per-session state of the plugin: target, results, reports."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.strict: bool = bool(config.getoption("rep_strict"))
        report_dir = config.getoption("rep_report_dir")
        self.report_dir = Path(report_dir) if report_dir else None
        self.target: Target | None = None
        self.run: Run | None = None
        self.results: list[CheckResult] = []
        self.started = time.monotonic()
        self.started_at = datetime.now(UTC)
        self.active = False
        self.stale_entries: list[dict[str, str]] = []
        self.items: list[pytest.Item] = []
        self.background: dict[str, BackgroundCheck] = {}
        self.report_paths: list[Path] = []
        target_path = config.getoption("rep_target")
        if target_path:
            try:
                self.target = load_target(target_path)
            except TargetError as exc:
                raise pytest.UsageError(str(exc)) from exc
        self.baseline = Baseline(self.target.baseline if self.target else ())
        self.profile: str = config.getoption("rep_profile")
        run_settings.configure(
            self.profile,
            config.getoption("rep_seed"),
            self.report_dir / "replays" if self.report_dir else None,
            str(self.target.source) if self.target and self.target.source else None,
        )

    # -- collection --------------------------------------------------------------------

    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        checks = [item for item in items if is_check(item)]
        if not checks:
            return
        self.active = True
        if self.target is None:
            raise pytest.UsageError(
                "the REP conformance checks need a target: pass --rep-target FILE "
                "(or run them with 'rep-conformance run')"
            )
        known = requirements()
        unknown = sorted(
            {rid for item in checks for rid in marked_requirements(item) if rid not in known}
        )
        if unknown:
            raise pytest.UsageError(f"checks name unknown requirement ids: {', '.join(unknown)}")
        # The load check runs alone, and only with the load profile.
        load_only = self.profile == "load"
        keep = [
            item
            for item in items
            if not is_check(item) or (item.get_closest_marker("load") is not None) == load_only
        ]
        if len(keep) < len(items):
            config.hook.pytest_deselected(items=[item for item in items if item not in keep])
            items[:] = keep
        wanted = config.getoption("rep_check")
        if wanted:
            from conformance.baseline import pattern_matches

            keep = [
                item
                for item in items
                if not is_check(item)
                or any(pattern_matches(pattern, check_id_of(item)) for pattern in wanted)
            ]
            deselected = [item for item in items if item not in keep]
            if deselected:
                config.hook.pytest_deselected(items=deselected)
            items[:] = keep

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.items = [item for item in session.items if is_check(item)]

    # -- running -----------------------------------------------------------------------

    def session_run(self) -> Run:
        if self.run is None:
            assert self.target is not None
            tokens = token_source(self.target.tokens)
            try:
                profile: ServerProfile = probe_profile(self.target, tokens)
            except (ConnectionError, OSError) as exc:
                pytest.exit(
                    f"rep-conformance: cannot check {self.target.node.ws_url}: {exc}", returncode=3
                )
            self.run = Run(self.target, profile, tokens)
            for item in self.items:
                if item.get_closest_marker("background") is not None:
                    self.background[item.nodeid] = BackgroundCheck.start(item, self.run)
        return self.run

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool | None:
        """A background check already ran: report its outcome as this call's."""
        found = self.background.get(pyfuncitem.nodeid)
        if found is None:
            return None
        found.wait()
        return True

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        try:
            outcome = yield
        except BaseException as exc:
            harness = item.stash.get(HARNESS_KEY, None)
            if isinstance(exc, ConformanceFailure):
                extra = harness.frame_failure() if harness is not None else None
                if extra is not None:
                    exc.absorb(extra)
                exc.replay = self._replay(item)
            raise
        harness = item.stash.get(HARNESS_KEY, None)
        if harness is not None:
            failure = harness.frame_failure()
            if failure is not None:
                failure.replay = self._replay(item)
                raise failure
        return outcome

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if not is_check(item) or RESULT_KEY in item.stash:
            return report
        if report.when == "setup" and report.passed:
            return report
        if report.when == "teardown" and not report.failed:
            return report
        result = self._result(item, call, report)
        item.stash[RESULT_KEY] = result
        self.results.append(result)
        self._shape(item, report, result)
        return report

    def _result(
        self, item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport
    ) -> CheckResult:
        marked = marked_requirements(item)
        harness = item.stash.get(HARNESS_KEY, None)
        failed: tuple[str, ...] = ()
        message = ""
        if report.skipped:
            longrepr = report.longrepr
            message = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
            message = message.removeprefix("Skipped: ")
        elif report.failed:
            exc = call.excinfo.value if call.excinfo is not None else None
            if isinstance(exc, ConformanceFailure):
                failed = exc.requirement_ids
                message = str(exc)
            else:
                failed = marked
                message = (
                    f"{type(exc).__name__}: {exc}" if exc is not None else str(report.longrepr)
                )
        result = CheckResult(
            check_id=check_id_of(item),
            nodeid=item.nodeid,
            requirement_ids=marked,
            outcome=report.outcome,
            duration=report.duration,
            failed_requirements=failed,
            message=message,
            informational=item.get_closest_marker("informational") is not None,
            transcript=harness.transcript.to_dicts() if harness is not None else [],
            figures=dict(harness.figures) if harness is not None else {},
            replay=self._replay(item) if report.failed else None,
        )
        result.verdict, result.baseline_reason = judge(result, self.baseline)
        return result

    def _replay(self, item: pytest.Item) -> str:
        target = self.target.source if self.target and self.target.source else "TARGET.yaml"
        return f"rep-conformance run --target {target} --check '{check_id_of(item)}'"

    def _shape(self, item: pytest.Item, report: pytest.TestReport, result: CheckResult) -> None:
        item.user_properties.append(("requirements", " ".join(result.requirement_ids)))
        item.user_properties.append(("verdict", result.verdict))
        harness = item.stash.get(HARNESS_KEY, None)
        if result.verdict in ("fail", "warn", "baselined", "stale") and harness is not None:
            report.sections.append(("REP transcript", harness.transcript.render()))
        if result.verdict == "stale":
            report.outcome = "failed"
            report.longrepr = f"stale baseline: {result.baseline_reason}"
        elif result.verdict == "baselined":
            report.outcome = "skipped"
            report.wasxfail = f"baselined: {result.baseline_reason}"
        elif result.verdict == "warn" and not self.strict:
            report.outcome = "skipped"
            ids = ", ".join(result.failed_requirements)
            first = result.message.splitlines()[0] if result.message else ""
            report.wasxfail = f"SHOULD not met ({ids}): {first}"

    # -- finishing ---------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not self.active:
            return
        found = requirement_results(self.results)
        passed = [r.requirement.id for r in found if r.verdict == "pass"]
        failed = [rid for c in self.results for rid in c.failed_requirements]
        self.stale_entries = [
            {"entry": entry.key, "reason": entry.reason}
            for entry in self.baseline.stale_requirement_entries(passed, failed)
        ]
        failing = any(counts_as_failure(c.verdict, self.strict) for c in self.results)
        if self.stale_entries and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.report_dir is not None:
            report = build_report(
                results=self.results,
                requirement_results=found,
                target=self.target.describe() if self.target else {},
                server=self.run.profile.figures() if self.run else {},
                strict=self.strict,
                started_at=self.started_at,
                duration=time.monotonic() - self.started,
                stale_entries=self.stale_entries,
                failing=failing or bool(self.stale_entries) or session.exitstatus not in (0, 5),
            )
            self.report_paths = write_reports(report, self.report_dir)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.active or not self.results:
            return
        write = terminalreporter.write_line
        terminalreporter.section("REP conformance")
        by_verdict: dict[str, int] = {}
        for result in self.results:
            by_verdict[result.verdict] = by_verdict.get(result.verdict, 0) + 1
        write("checks: " + ", ".join(f"{n} {v}" for v, n in sorted(by_verdict.items())))
        found = requirement_results(self.results)
        req_counts: dict[str, int] = {}
        for r in found:
            if r.verdict not in ("not-checked", "out-of-scope"):
                req_counts[r.verdict] = req_counts.get(r.verdict, 0) + 1
        write("requirements: " + ", ".join(f"{n} {v}" for v, n in sorted(req_counts.items())))
        for r in found:
            if r.verdict in ("fail", "warn"):
                write(
                    f"  {r.verdict.upper():5} {r.requirement.id} ({r.requirement.level}): "
                    f"{r.requirement.text}"
                )
        for entry in self.stale_entries:
            write(f"  STALE baseline {entry['entry']}: {entry['reason']}")
        for path in self.report_paths:
            write(f"report: {path}")


def recorder_of(config: pytest.Config) -> Recorder:
    recorder = config.pluginmanager.get_plugin(RECORDER_NAME)
    assert isinstance(recorder, Recorder)
    return recorder


class BackgroundCheck:
    """A check run in its own thread from the start of the session (timers, not traffic)."""

    #: Longest a background check may take; its own waits are bounded well below this.
    LIMIT = 120.0

    def __init__(self, item: pytest.Item, harness: Harness) -> None:
        self.item = item
        self.harness = harness
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"rep-bg-{item.name}", daemon=True)

    @classmethod
    def start(cls, item: pytest.Item, run: Run) -> BackgroundCheck:
        harness = Harness(run, marked_requirements(item), item.name)
        found = cls(item, harness)
        found.thread.start()
        return found

    def _run(self) -> None:
        try:
            for feature in needed_features(self.item):
                if not self.harness.profile.supports(feature):
                    pytest.skip(
                        f"the server does not advertise the feature {feature!r} in its welcome"
                    )
            params = getattr(self.item, "callspec", None)
            kwargs: dict[str, Any] = dict(params.params) if params is not None else {}
            function: Any = getattr(self.item, "obj")  # noqa: B009 - pytest.Function attribute
            function(rep=self.harness, **kwargs)
        except BaseException as exc:  # re-raised in the test's own call phase
            self.error = exc
        finally:
            self.harness.close()

    def wait(self) -> None:
        self.thread.join(self.LIMIT)
        if self.thread.is_alive():
            raise self.harness.fail(
                None,
                expected=f"the check to finish within {self.LIMIT:g} s",
                received="it was still waiting",
            )
        if self.error is not None:
            raise self.error


@pytest.fixture(scope="session")
def rep_run(request: pytest.FixtureRequest) -> Run:
    """The session's target, token source and server profile."""
    return recorder_of(request.config).session_run()


@pytest.fixture
def rep(request: pytest.FixtureRequest, rep_run: Run) -> Iterator[Harness]:
    """The harness of one check; skips checks whose features the server lacks."""
    item = request.node
    background = recorder_of(request.config).background.get(item.nodeid)
    if background is not None:
        item.stash[HARNESS_KEY] = background.harness
        yield background.harness
        return
    for feature in needed_features(item):
        if not rep_run.profile.supports(feature):
            pytest.skip(f"the server does not advertise the feature {feature!r} in its welcome")
    harness = Harness(rep_run, marked_requirements(item), item.name)
    item.stash[HARNESS_KEY] = harness
    try:
        yield harness
    finally:
        harness.close()
