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
import traceback
from collections.abc import Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conformance.baseline import Baseline
from conformance.failures import ConformanceFailure
from conformance.generation import settings as run_settings
from conformance.harness import Harness, Inconclusive, Run, probe_profile
from conformance.health import Outage, ServerHealth
from conformance.preflight import preflight
from conformance.profile import ServerProfile
from conformance.redact import redact
from conformance.reports import build_report, rewrite_junit, write_reports
from conformance.results import (
    FEATURE_PREFIX,
    SERVER_UNREACHABLE,
    CheckResult,
    RequirementResult,
    RootCause,
    counts_as_failure,
    feature_cause,
    first_line,
    judge,
    requirement_results,
    root_causes,
    skip_causes,
)
from conformance.target import Target, TargetError, load_target
from conformance.tokens import TokenUnavailable, token_source
from rep_spec import requirements

HARNESS_KEY = pytest.StashKey[Harness]()
RESULT_KEY = pytest.StashKey[CheckResult]()
STARTED_KEY = pytest.StashKey[float]()
RECORDER_NAME = "rep-conformance-recorder"
PROGRESS_NAME = "rep-conformance-progress"

#: Exit statuses of a run (README "Exit status"); pytest's own 0, 1 and 5 keep theirs.
EXIT_UNREACHABLE = 3
EXIT_TARGET = 4
#: pytest's own INTERNALERROR is 3, which would read as "the server went away".
EXIT_KIT_ERROR = 6


class RunAborted(Exception):
    """The run cannot start checking: the server is unreachable or the target is wrong."""

    def __init__(self, reason: str, exit_status: int) -> None:
        reason = redact(reason)  # the probe's error may quote what the server sent
        super().__init__(reason)
        self.reason = reason
        self.exit_status = exit_status


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
    config.addinivalue_line(
        "markers",
        "feature_entry(name): a feature's first request; runs before the other checks",
    )
    config.addinivalue_line(
        "markers", "frame_audit: the run-wide frame audit; runs after the other checks"
    )
    config.pluginmanager.register(Recorder(config), RECORDER_NAME)
    config.pluginmanager.register(ModuleProgress(config), PROGRESS_NAME)


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


def entry_feature(item: pytest.Item) -> str | None:
    """The feature whose first request this check sends, for feature-entry checks."""
    mark = item.get_closest_marker("feature_entry")
    return str(mark.args[0]) if mark is not None and mark.args else None


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
        self.aborted: RunAborted | None = None
        self.found: list[RequirementResult] = []
        self.causes: list[RootCause] = []
        self.skipped: list[dict[str, Any]] = []
        self.exit_status: int | None = None
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
        # Feature entries first (they gate the rest), the frame audit last (it sums up).
        items.sort(
            key=lambda item: (
                0
                if item.get_closest_marker("feature_entry")
                else 2
                if item.get_closest_marker("frame_audit")
                else 1
            )
        )

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.items = [item for item in session.items if is_check(item)]

    # -- running -----------------------------------------------------------------------

    def session_run(self) -> Run:
        if self.run is None:
            assert self.target is not None
            tokens = token_source(self.target.tokens)
            try:
                profile: ServerProfile = probe_profile(self.target, tokens)
            except TokenUnavailable as exc:
                raise RunAborted(f"the target's tokens source failed: {exc}", EXIT_TARGET) from exc
            except (ConnectionError, OSError) as exc:
                raise RunAborted(
                    f"cannot check {self.target.node.ws_url}: {exc}", EXIT_UNREACHABLE
                ) from exc
            problems = preflight(self.target, profile, tokens)
            if problems:
                raise RunAborted(
                    "the target file does not match the server; fix " + "; ".join(problems),
                    EXIT_TARGET,
                )
            self.run = Run(self.target, profile, tokens)
            self.run.health = ServerHealth(self.target, tokens)
            self.run.collect_welcome_problems(profile.welcome)
            self.run.audit_frames = any(
                item.get_closest_marker("frame_audit") is not None for item in self.items
            )
            for item in self.items:
                if item.get_closest_marker("background") is not None:
                    self.background[item.nodeid] = BackgroundCheck.start(item, self.run)
        return self.run

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        """Reach the server and check the target before the first check, or stop cleanly."""
        if not self.active or session.config.option.collectonly:
            return None
        if not any({"rep", "rep_run"} & set(getattr(i, "fixturenames", ())) for i in self.items):
            return None  # checks that never talk to a server need no probe
        try:
            self.session_run()
        except RunAborted as exc:
            self.aborted = exc
            self.exit_status = exc.exit_status
            reporter = session.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(f"rep-conformance: run stopped before checking: {exc.reason}")
            return True
        return None

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
            # Called whatever stopped the check: it also hands incidental frame problems
            # to the frame audit, so a blocked check's frames are judged too.
            extra = harness.frame_failure() if harness is not None else None
            if isinstance(exc, ConformanceFailure):
                if extra is not None:
                    exc.absorb(extra)
                exc.replay = self._replay(item)
            if not isinstance(exc, pytest.skip.Exception) and self.run is not None:
                health = self.run.health
                if health is not None:
                    health.after_failure(
                        check_id_of(item), harness.transcript if harness is not None else None
                    )
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
        exc = call.excinfo.value if call.excinfo is not None else None
        failed: tuple[str, ...] = ()
        blocked: tuple[str, ...] = ()
        went_away = False
        message = ""
        if isinstance(exc, Inconclusive):
            blocked, message = exc.blocked_by, exc.reason
        elif report.skipped:
            longrepr = report.longrepr
            message = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
            message = message.removeprefix("Skipped: ")
        elif report.failed:
            if isinstance(exc, ConformanceFailure):
                failed = exc.requirement_ids
                message = str(exc)
            else:
                failed = marked
                message = kit_error_text(exc) if exc is not None else "the check failed"
            late = self._late_feature_block(item)
            if late is not None:
                failed, blocked = (), (late[0],)
                message = late[1]
            outage = self._outage_since(item)
            if outage is not None:
                went_away = outage.check == check_id_of(item)
                failed, blocked = (), (SERVER_UNREACHABLE,)
                first = first_line(message)
                message = outage.describe() + (f"\n(the check saw: {first})" if first else "")
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
            blocked_by=blocked,
            server_went_away=went_away,
        )
        result.verdict, result.baseline_reason = judge(result, self.baseline)
        self._note_feature(item, result)
        return result

    def _late_feature_block(self, item: pytest.Item) -> tuple[str, str] | None:
        """A background check starts before the feature entries run: a feature found
        missing meanwhile blocks it when it is judged."""
        if self.run is None or item.nodeid not in self.background:
            return None
        for feature in needed_features(item):
            found = self.run.feature_block(feature)
            if found is not None:
                return found
        return None

    def _outage_since(self, item: pytest.Item) -> Outage | None:
        health = self.run.health if self.run is not None else None
        if health is None:
            return None
        background = self.background.get(item.nodeid)
        if background is not None:
            return health.went_away_since(background.started, background.finished)
        started = item.stash.get(STARTED_KEY, None)
        return health.went_away_since(started) if started is not None else None

    def _note_feature(self, item: pytest.Item, result: CheckResult) -> None:
        """A feature entry blocked by another missing feature blocks its own checks too."""
        feature = entry_feature(item)
        if feature is None or self.run is None:
            return
        if result.verdict in ("fail", "warn") and feature in self.run.missing_features:
            result.root_cause = feature_cause(feature)
        if result.verdict != "inconclusive":
            return
        for cause in result.blocked_by:
            if cause.startswith(FEATURE_PREFIX) and cause != feature_cause(feature):
                self.run.blocked_features.setdefault(feature, cause.removeprefix(FEATURE_PREFIX))

    def _replay(self, item: pytest.Item) -> str:
        target = self.target.source if self.target and self.target.source else "TARGET.yaml"
        return f"rep-conformance run --target {target} --check '{check_id_of(item)}'"

    def _shape(self, item: pytest.Item, report: pytest.TestReport, result: CheckResult) -> None:
        item.user_properties.append(("requirements", " ".join(result.requirement_ids)))
        item.user_properties.append(("verdict", result.verdict))
        if result.blocked_by:
            item.user_properties.append(("blocked_by", " ".join(result.blocked_by)))
        harness = item.stash.get(HARNESS_KEY, None)
        if result.verdict in ("fail", "warn", "baselined", "stale") and harness is not None:
            report.sections.append(("REP transcript", console_transcript(harness)))
        where = (str(item.path), item.location[1] or 0)
        if result.verdict == "stale":
            report.outcome = "failed"
            report.longrepr = f"stale baseline: {result.baseline_reason}"
        elif result.verdict == "baselined":
            report.outcome = "skipped"
            report.wasxfail = f"baselined: {result.baseline_reason}"
        elif result.verdict == "inconclusive":
            report.outcome = "skipped"
            causes = ", ".join(result.blocked_by)
            first = first_line(result.message)
            report.longrepr = (*where, f"inconclusive (blocked by {causes}): {first}")
        elif result.verdict == "warn" and not self.strict:
            report.outcome = "skipped"
            ids = ", ".join(result.failed_requirements)
            first = first_line(result.message)
            report.wasxfail = f"SHOULD not met ({ids}): {first}"
        elif result.verdict in ("fail", "warn"):
            report.longrepr = result.message

    # -- finishing ---------------------------------------------------------------------

    def explanations(self) -> dict[str, str]:
        """Titles of the root causes that are not requirements."""
        notes: dict[str, str] = {}
        if self.run is None:
            return notes
        health = self.run.health
        if health is not None and health.outages:
            first = health.outages[0]
            notes[SERVER_UNREACHABLE] = f"the server stopped answering during {first.check}" + (
                f" (it answered again before {first.ended_before})" if first.ended_before else ""
            )
        for feature in self.run.missing_features:
            notes[feature_cause(feature)] = (
                f"feature {feature} is not implemented, although the target claims it or "
                "the welcome advertises it"
            )
        return notes

    def failing(self, session: pytest.Session, found: list[RequirementResult]) -> bool:
        broken = {"fail", "warn"} if self.strict else {"fail"}
        return (
            any(counts_as_failure(c.verdict, self.strict) for c in self.results)
            or any(r.verdict in broken for r in found)
            or bool(self.stale_entries)
            or self.aborted is not None
            or self.outages_seen()
            or session.exitstatus not in (0, 5)
        )

    def outages_seen(self) -> bool:
        health = self.run.health if self.run is not None else None
        return bool(health is not None and health.outages)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not self.active:
            return
        # Computed once here; the terminal summary (printed after) reads them.
        self.found = found = requirement_results(self.results)
        self.causes = root_causes(self.results, self.explanations())
        self.skipped = skip_causes(self.results)
        passed = [r.requirement.id for r in found if r.verdict == "pass"]
        failed = [rid for c in self.results for rid in c.failed_requirements]
        self.stale_entries = [
            {"entry": entry.key, "reason": entry.reason}
            for entry in self.baseline.stale_requirement_entries(passed, failed)
        ]
        failing = self.failing(session, found)
        if self.aborted is not None:
            session.exitstatus = self.aborted.exit_status
        elif self.outages_seen():
            session.exitstatus = EXIT_UNREACHABLE
        elif session.exitstatus == pytest.ExitCode.INTERNAL_ERROR:
            session.exitstatus = EXIT_KIT_ERROR
        elif failing and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.report_dir is not None:
            health = self.run.health if self.run is not None else None
            report = build_report(
                results=self.results,
                requirement_results=found,
                target=self.target.describe() if self.target else {},
                server=self.run.profile.figures() if self.run else {},
                strict=self.strict,
                started_at=self.started_at,
                duration=time.monotonic() - self.started,
                stale_entries=self.stale_entries,
                failing=failing,
                root_causes=[c.to_dict() for c in self.causes],
                skip_causes=self.skipped,
                aborted=self.aborted.reason if self.aborted is not None else None,
                outages=[o.to_dict() for o in health.outages] if health is not None else [],
                exit_status=int(session.exitstatus),
            )
            self.report_paths = write_reports(report, self.report_dir)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.active:
            return
        write = terminalreporter.write_line
        terminalreporter.section("REP conformance")
        if self.aborted is not None:
            write(f"run stopped before checking: {self.aborted.reason}")
        if self.results:
            by_verdict: dict[str, int] = {}
            for result in self.results:
                by_verdict[result.verdict] = by_verdict.get(result.verdict, 0) + 1
            write("checks: " + ", ".join(f"{n} {v}" for v, n in sorted(by_verdict.items())))
            req_counts: dict[str, int] = {}
            for r in self.found:
                if r.verdict not in ("not-checked", "out-of-scope"):
                    req_counts[r.verdict] = req_counts.get(r.verdict, 0) + 1
            write("requirements: " + ", ".join(f"{n} {v}" for v, n in sorted(req_counts.items())))
            if self.run is not None and self.run.profile.checks_every_feature:
                write(f"features: {self.run.profile.feature_basis()}")
            causes = self.causes
            if causes:
                write("fix first:")
                for rank, cause in enumerate(causes[:FIX_FIRST_SHOWN], 1):
                    costs = []
                    if cause.blocked:
                        costs.append(f"blocks {len(cause.blocked)}")
                    if cause.failed:
                        costs.append(f"fails {len(cause.failed)}")
                    write(
                        f"  {rank}. {cause.key} ({cause.level}, {', '.join(costs)}): {cause.title}"
                    )
                    first = first_line(cause.message)
                    if first:
                        write(f"     {first}")
                if len(causes) > FIX_FIRST_SHOWN:
                    write(f"  ... and {len(causes) - FIX_FIRST_SHOWN} more in the reports")
            skipped = self.skipped
            if skipped:
                write("skipped:")
                for entry in skipped:
                    write(f"  {entry['checks']:4} {entry['reason']}")
        for entry in self.stale_entries:
            write(f"  STALE baseline {entry['entry']}: {entry['reason']}")
        for path in self.report_paths:
            write(f"report: {path}")

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """Give CI viewers the kit's verdicts: junit.xml is rewritten after pytest wrote it."""
        xml_path = getattr(config.option, "xmlpath", None)
        if not self.active or not xml_path or not Path(xml_path).exists():
            return
        rewrite_junit(Path(xml_path), [r.to_dict() for r in self.results], self.strict)


class ModuleProgress:
    """One line per finished check module, after pytest's own progress for it:

    ``handshake  32 checks  29 pass  2 fail  1 skip  (12.3 s elapsed)``

    Counts are the kit's verdicts (the Recorder's results), not pytest's outcomes. A module
    is finished when its last selected check is; checks of one module may be spread over
    the run (feature entries go first), so its line comes when the last one is done. Quiet
    runs (``-q``) show no such lines.
    """

    #: The order verdicts are counted in; any other verdict follows.
    ORDER = ("pass", "fail", "warn", "stale", "baselined", "inconclusive", "skip", "info")

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.module_of: dict[str, str] = {}
        self.expected: dict[str, int] = {}
        self.done: dict[str, int] = {}

    @staticmethod
    def section(module: str) -> str:
        return module.removeprefix("test_").removesuffix(".py")

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            if is_check(item):
                module = Path(str(item.path)).name
                self.module_of[item.nodeid] = module
                self.expected[module] = self.expected.get(module, 0) + 1

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logfinish(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        module = self.module_of.get(nodeid)
        if module is None:
            return
        self.done[module] = self.done.get(module, 0) + 1
        if self.done[module] == self.expected[module]:
            self.write(module)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        result = yield
        for module, done in self.done.items():  # stopped early (-x, an interrupt)
            if done < self.expected[module]:
                self.write(module, f"stopped after {done} of {self.expected[module]}")
        return result

    def line(self, module: str, note: str = "") -> str:
        recorder = recorder_of(self.config)
        counts: dict[str, int] = {}
        for result in recorder.results:
            if result.check_id.split("::")[0] == module:
                counts[result.verdict] = counts.get(result.verdict, 0) + 1
        order = [*self.ORDER, *sorted(set(counts) - set(self.ORDER))]
        width = max(len(self.section(m)) for m in self.expected)
        total = self.expected[module]
        parts = [
            f"{self.section(module):<{width}}",
            f"{total:3} {'check' if total == 1 else 'checks':<6}",
            *(f"{counts[v]} {v}" for v in order if counts.get(v)),
        ]
        if note:
            parts.append(note)
        elapsed = time.monotonic() - recorder.started
        return "  ".join(parts) + f"  ({elapsed:.1f} s elapsed)"

    def write(self, module: str, note: str = "") -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or self.config.get_verbosity() < 0:
            return
        if not recorder_of(self.config).active:
            return
        reporter.ensure_newline()
        reporter.write(self.line(module, note), flush=True)
        # Leave the line open, as pytest does after a module's dots: whatever pytest writes
        # next starts a new line, without an empty one in between.
        reporter.currentfspath = -2


FIX_FIRST_SHOWN = 10
#: Transcript entries a console failure shows; the reports keep the whole transcript.
CONSOLE_TRANSCRIPT = 12


def console_transcript(harness: Harness) -> str:
    entries = harness.transcript.entries()
    shown = "\n".join(entry.render() for entry in entries[-CONSOLE_TRANSCRIPT:])
    if len(entries) > CONSOLE_TRANSCRIPT:
        earlier = len(entries) - CONSOLE_TRANSCRIPT
        shown = f"({earlier} earlier entries in report.html)\n" + shown
    return shown


def kit_error_text(exc: BaseException) -> str:
    """An unexpected exception, in one line and the kit's location: no traceback, no locals."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = next(
        (
            f"{Path(f.filename).name}:{f.lineno}"
            for f in reversed(frames)
            if "conformance" in f.filename
        ),
        None,
    )
    text = f"the check stopped on an unexpected {type(exc).__name__}: {exc}"
    return redact(text + (f" (in {where})" if where else ""))


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
        self.started = time.monotonic()
        self.finished: float | None = None
        self.thread = threading.Thread(target=self._run, name=f"rep-bg-{item.name}", daemon=True)

    @classmethod
    def start(cls, item: pytest.Item, run: Run) -> BackgroundCheck:
        harness = Harness(run, marked_requirements(item), item.name)
        found = cls(item, harness)
        found.thread.start()
        return found

    def _run(self) -> None:
        try:
            gate(self.item, self.harness.run)
            params = getattr(self.item, "callspec", None)
            kwargs: dict[str, Any] = dict(params.params) if params is not None else {}
            function: Any = getattr(self.item, "obj")  # noqa: B009 - pytest.Function attribute
            function(rep=self.harness, **kwargs)
        except BaseException as exc:  # re-raised in the test's own call phase
            self.error = exc
        finally:
            self.finished = time.monotonic()
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
    try:
        return recorder_of(request.config).session_run()
    except RunAborted as exc:
        pytest.exit(f"rep-conformance: {exc.reason}", returncode=exc.exit_status)


@pytest.fixture
def rep(request: pytest.FixtureRequest, rep_run: Run) -> Iterator[Harness]:
    """The harness of one check; skips checks of features neither claimed nor advertised,
    and blocks checks that cannot be judged (server gone, feature not implemented)."""
    item = request.node
    item.stash[STARTED_KEY] = time.monotonic()
    background = recorder_of(request.config).background.get(item.nodeid)
    if background is not None:
        item.stash[HARNESS_KEY] = background.harness
        yield background.harness
        return
    gate(item, rep_run)
    harness = Harness(rep_run, marked_requirements(item), item.name)
    item.stash[HARNESS_KEY] = harness
    try:
        yield harness
    finally:
        harness.close()


def gate(item: pytest.Item, run: Run) -> None:
    """Skip, or raise :class:`Inconclusive`, before a check that cannot be judged."""
    health = run.health
    if health is not None and item.get_closest_marker("frame_audit") is None:
        outage = health.before_check(check_id_of(item))
        if outage is not None:
            raise Inconclusive((SERVER_UNREACHABLE,), f"server unreachable since {outage.check}")
    own = entry_feature(item)
    for feature in needed_features(item):
        run.require_feature(feature, blocking=feature != own)
