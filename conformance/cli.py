"""The ``rep-conformance`` command: run the checks against a target, list them, replay a failure.

``run`` executes the checks with pytest in this process, isolated from the configuration
and plugins of whatever project it is started in (its own ini file, plugin autoloading
off), and writes JUnit XML, JSON, HTML and Markdown reports. Exit status: 0 when every
MUST passes (and with ``--strict`` every SHOULD), 1 when a check fails, 3 when the server
cannot be reached, 4 on a usage error, 5 when the selection matches no check.
``replay FILE --target T`` re-runs a failure saved by a generated check (FIXED: 0, FAILED: 1).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from conformance import __version__
from conformance.coverage import CHECKS_DIR, all_checks, tests_by_requirement
from conformance.generation.replay import add_arguments as add_replay_arguments
from conformance.generation.replay import run_replay
from conformance.generation.settings import DEFAULT_PROFILE, PROFILES
from rep_spec import requirements

RUN_INI = Path(__file__).with_name("run.ini")
DEFAULT_REPORT_DIR = Path("rep-conformance-report")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rep-conformance",
        description="Check a REP 1.0 server against the specification, black-box.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the conformance checks")
    where = run.add_mutually_exclusive_group(required=True)
    where.add_argument("--target", type=Path, help="target file describing the server")
    where.add_argument(
        "--reference",
        action="store_true",
        help="start the bundled reference server and check it",
    )
    run.add_argument(
        "--cluster",
        metavar="REDIS_URL",
        help="with --reference: start two nodes sharing this Redis and run the cluster checks",
    )
    run.add_argument("--strict", action="store_true", help="failed SHOULDs fail the run")
    run.add_argument(
        "--report-dir",
        type=Path,
        default=DEFAULT_REPORT_DIR,
        help=f"where reports go (default: {DEFAULT_REPORT_DIR})",
    )
    run.add_argument("-k", dest="keyword", metavar="EXPR", help="pytest -k selection")
    run.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failure")
    run.add_argument(
        "--check", action="append", default=[], metavar="ID", help="run only this check"
    )
    run.add_argument(
        "--profile",
        choices=PROFILES,
        default=DEFAULT_PROFILE,
        help="ci: fast, seeded generated checks (default); thorough: many more examples; "
        "load: the load check only",
    )
    run.add_argument("--seed", type=int, metavar="N", help="seed of the generated checks")
    run.add_argument("-v", "--verbose", action="count", default=0)
    run.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")

    again = commands.add_parser("replay", help="re-run a saved failure: FIXED or FAILED")
    add_replay_arguments(again)

    listing = commands.add_parser("list", help="list the requirements and their checks")
    listing.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    listing.add_argument(
        "--uncovered", action="store_true", help="only requirements without a check"
    )
    return parser


def pytest_arguments(args: argparse.Namespace, target: Path) -> list[str]:
    report_dir: Path = args.report_dir
    argv = [
        "-c",
        str(RUN_INI),
        "--rootdir",
        str(CHECKS_DIR.parent),
        "--disable-plugin-autoload",
        "-p",
        "conformance.plugin",
        "-p",
        "no:cacheprovider",
        "--pyargs",
        "conformance.checks",
        "--rep-target",
        str(target),
        "--rep-report-dir",
        str(report_dir),
        f"--junitxml={report_dir / 'junit.xml'}",
        "-o",
        "junit_suite_name=rep-conformance",
    ]
    if args.strict:
        argv.append("--rep-strict")
    if args.keyword:
        argv += ["-k", args.keyword]
    if args.exitfirst:
        argv.append("-x")
    for check in args.check:
        argv += ["--rep-check", check]
    argv += ["--rep-profile", args.profile]
    if args.seed is not None:
        argv += ["--rep-seed", str(args.seed)]
    argv += ["-v"] * args.verbose
    argv += list(args.pytest_args)
    return argv


def _run_pytest(argv: list[str]) -> int:
    """Run from the kit's directory so node ids read ``checks/test_x.py::...``."""
    import pytest

    previous = Path.cwd()
    os.chdir(CHECKS_DIR.parent)
    try:
        return int(pytest.main(argv))
    finally:
        os.chdir(previous)


def run(args: argparse.Namespace) -> int:
    if args.cluster and not args.reference:
        print("rep-conformance: --cluster needs --reference", file=sys.stderr)
        return 4
    args.report_dir = args.report_dir.resolve()
    if args.target is not None:
        args.target = args.target.resolve()
    if args.target is not None:
        return _run_pytest(pytest_arguments(args, args.target))
    from conformance.reference import ReferenceServerError, reference_cluster, reference_server

    report_dir: Path = args.report_dir
    workdir = report_dir / "reference"
    try:
        with contextlib.ExitStack() as stack:
            if args.cluster:
                first, *others = stack.enter_context(reference_cluster(workdir, args.cluster))
            else:
                first, others = stack.enter_context(reference_server(workdir)), []
            target_path = report_dir / "target.yaml"
            target_path.write_text(yaml.safe_dump(first.target(others), sort_keys=False), "utf-8")
            for server in (first, *others):
                print(
                    f"rep-conformance: reference server on {server.ws_url} (log {server.log_path})"
                )
            return _run_pytest(pytest_arguments(args, target_path))
    except ReferenceServerError as exc:
        print(f"rep-conformance: {exc}", file=sys.stderr)
        return 3


def list_requirements(fmt: str, uncovered_only: bool) -> str:
    covered = tests_by_requirement()
    index = requirements()
    rows = []
    for requirement in index:
        checks = covered.get(requirement.id, [])
        if uncovered_only and (checks or requirement.verified_by != "conformance"):
            continue
        rows.append((requirement, checks))
    if fmt == "json":
        return json.dumps(
            [
                {
                    "id": r.id,
                    "level": r.level,
                    "section": r.section,
                    "verified_by": r.verified_by,
                    "feature": r.feature,
                    "text": r.text,
                    "tests": checks,
                }
                for r, checks in rows
            ],
            indent=2,
        )
    lines: list[str] = []
    if fmt == "markdown":
        lines += ["| requirement | level | verified by | checks |", "|---|---|---|---|"]
        lines += [
            f"| {r.id} | {r.level} | {r.verified_by} | "
            + (", ".join(f"`{c}`" for c in checks) or "-")
            + " |"
            for r, checks in rows
        ]
        return "\n".join(lines)
    section = None
    for requirement, checks in rows:
        if requirement.section != section:
            section = requirement.section
            lines.append(f"\n{index.sections.get(section, section)}")
        lines.append(
            f"  {requirement.id:<11} {requirement.level:<8} {requirement.verified_by:<11} "
            + (f"{len(checks)} check(s)" if checks else "no check")
        )
        lines.extend(f"      {check}" for check in checks)
    conformance = [r for r in index if r.verified_by == "conformance"]
    with_checks = [r for r in conformance if covered.get(r.id)]
    lines.append(
        f"\n{len(with_checks)}/{len(conformance)} requirements verified by conformance have "
        f"checks; {len(all_checks())} check functions"
    )
    return "\n".join(lines).lstrip("\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return run(args)
    if args.command == "replay":
        return run_replay(args)
    print(list_requirements(args.format, args.uncovered))
    return 0


if __name__ == "__main__":
    sys.exit(main())
