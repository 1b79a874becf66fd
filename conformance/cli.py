"""The ``rep-conformance`` command: write a target, run the checks, list them, replay a failure.

``run`` executes the checks with pytest in this process, isolated from the configuration
and plugins of whatever project it is started in (its own ini file, plugin autoloading
off), and writes JUnit XML, JSON, HTML and Markdown reports. ``init`` writes a first
target file from a server's welcome (:mod:`conformance.init`). ``list`` prints the
requirements and the checks of each. ``replay FILE --target T`` re-runs a failure saved
by a generated check (FIXED: 0, FAILED: 1).

Exit status (the same table is in ``rep-conformance --help``; ``EXIT_STATUSES``):

  0  pass: every MUST passed (with --strict, every SHOULD too)
  1  a requirement failed, or a baseline entry is stale
  3  the server could not be reached at the start, or it stopped answering during the run
  4  usage error: a bad option or target file, or a fixture the server does not have
  5  the selection (--check, -k) matched no check
  6  the kit itself failed (pytest's INTERNALERROR): a bug in rep-conformance, not a verdict
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import yaml

from conformance import __version__
from conformance.baseline import pattern_matches
from conformance.clientkit.runner import add_arguments as add_client_arguments
from conformance.clientkit.runner import run_client
from conformance.clientkit.scenarios import checks_by_requirement as client_checks_by_requirement
from conformance.coverage import CHECKS_DIR, all_checks, tests_by_requirement
from conformance.generation.replay import add_arguments as add_replay_arguments
from conformance.generation.replay import run_replay
from conformance.generation.settings import DEFAULT_PROFILE, PROFILES
from conformance.init import add_arguments as add_init_arguments
from conformance.init import run_init
from conformance.target import TargetError, load_target
from rep_spec import requirements

RUN_INI = Path(__file__).with_name("run.ini")
DEFAULT_REPORT_DIR = Path("rep-conformance-report")

EXIT_PASS = 0
EXIT_FAILED = 1
EXIT_UNREACHABLE = 3
EXIT_USAGE = 4
EXIT_NO_SELECTION = 5
EXIT_KIT_ERROR = 6

#: The exit statuses of ``run`` (and, where they apply, ``init`` and ``replay``); the module
#: docstring and ``--help`` show this table.
EXIT_STATUSES: tuple[tuple[int, str], ...] = (
    (EXIT_PASS, "pass: every MUST passed (with --strict, every SHOULD too)"),
    (EXIT_FAILED, "a requirement failed, or a baseline entry is stale"),
    (
        EXIT_UNREACHABLE,
        "the server could not be reached at the start, or it stopped answering during the run",
    ),
    (
        EXIT_USAGE,
        "usage error: a bad option or target file, or a fixture the server does not have",
    ),
    (EXIT_NO_SELECTION, "the selection (--check, -k) matched no check"),
    (
        EXIT_KIT_ERROR,
        "the kit itself failed (pytest's INTERNALERROR): a bug in rep-conformance, not a verdict",
    ),
)

EXAMPLES = (
    ("rep-conformance run --reference", "check the bundled reference server"),
    (
        "rep-conformance init --url ws://127.0.0.1:8765/ws --secret-env REP_JWT_SECRET",
        "write target.yaml from your server's welcome",
    ),
    ("rep-conformance run --target target.yaml", "check your server"),
    (
        "rep-conformance run --target target.yaml "
        "--check test_ping_is_answered_by_a_correlated_pong",
        "run one check",
    ),
    ("rep-conformance list", "the requirements, their text and their checks"),
    (
        "rep-conformance replay REPORT_DIR/replays/FILE.json --target target.yaml",
        "re-run a saved failure: FIXED or FAILED",
    ),
)


def exit_status_table(indent: str = "  ") -> str:
    return "\n".join(f"{indent}{code}  {meaning}" for code, meaning in EXIT_STATUSES)


def epilog() -> str:
    examples = "\n".join(f"  {command}\n      {what}" for command, what in EXAMPLES)
    return (
        f"examples:\n{examples}\n\nexit status:\n{exit_status_table()}\n"
        "  (replay: 0 FIXED, 1 FAILED; init: 0 written, 3 and 4 as above)"
    )


class Parser(argparse.ArgumentParser):
    """Usage errors exit with 4, the kit's status for them, not argparse's 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="rep-conformance",
        description="Check a REP 1.0 server against the specification, black-box.",
        epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run the conformance checks",
        epilog=f"exit status:\n{exit_status_table()}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
        "--check",
        action="append",
        default=[],
        metavar="ID",
        help="run only this check: 'module.py::test_name[params]', without the parameters, "
        "or the bare function name; repeatable",
    )
    run.add_argument(
        "--profile",
        choices=PROFILES,
        default=DEFAULT_PROFILE,
        help="ci: fast, seeded generated checks (default); thorough: many more examples; "
        "load: the load check only",
    )
    run.add_argument("--seed", type=int, metavar="N", help="seed of the generated checks")
    noise = run.add_mutually_exclusive_group()
    noise.add_argument(
        "-v", "--verbose", action="count", default=0, help="one line per check (repeatable)"
    )
    noise.add_argument(
        "-q", "--quiet", action="store_true", help="less output: no line per finished module"
    )
    run.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")

    init = commands.add_parser(
        "init",
        help="write a target file from a running server's welcome",
        description="Connect to the server, read its welcome, and write a target file the kit "
        "accepts: URLs, tokens, the advertised features and limits, and every other setting "
        "commented out with its default or what the server must be configured with.",
    )
    add_init_arguments(init)

    client = commands.add_parser(
        "client",
        help="check a REP client: the kit plays a scripted server to it",
        description="Start the client the target file names once per scenario, pointed at a "
        "REP server the kit scripts on loopback, and judge what it does against the client "
        "requirements (CLIENT-xxx). Reports as for a server run.",
        epilog=f"exit status:\n{exit_status_table()}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_client_arguments(client)

    again = commands.add_parser("replay", help="re-run a saved failure: FIXED or FAILED")
    add_replay_arguments(again)

    listing = commands.add_parser(
        "list", help="list the requirements, their text and the checks for each"
    )
    listing.add_argument(
        "--format",
        choices=("text", "json", "markdown"),
        default="text",
        help="text (default): by section, each requirement with its text and checks; "
        "markdown: one table; json: every field, for tools",
    )
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
    if getattr(args, "quiet", False):
        argv.append("-q")
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


def could_match(pattern: str) -> bool:
    """Whether a ``--check`` pattern can select a check (parameters are not known here)."""
    ids = [check.check_id for check in all_checks()]
    if "[" in pattern:
        base = pattern.split("[")[0]
        return "::" in base and base in ids  # the plugin matches bare names without params
    return any(pattern_matches(pattern, check_id) for check_id in ids)


def _selection(args: argparse.Namespace) -> str:
    parts = [f"--check {c!r}" for c in args.check]
    if args.keyword:
        parts.append(f"-k {args.keyword!r}")
    return " ".join(parts)


def _no_match(what: str) -> int:
    print(f"rep-conformance: no check matches {what}; see 'rep-conformance list'", file=sys.stderr)
    return EXIT_NO_SELECTION


def _checked_run(args: argparse.Namespace, target: Path) -> int:
    code = _run_pytest(pytest_arguments(args, target))
    if code == EXIT_NO_SELECTION:
        what = _selection(args) or "the selection"
        if args.profile != DEFAULT_PROFILE:
            what += f" in profile {args.profile}"
        return _no_match(what)
    return code


def run(args: argparse.Namespace) -> int:
    if args.cluster and not args.reference:
        print("rep-conformance: --cluster needs --reference", file=sys.stderr)
        return EXIT_USAGE
    for pattern in args.check:
        if not could_match(pattern):
            return _no_match(f"--check {pattern!r}")
    args.report_dir = args.report_dir.resolve()
    if args.target is not None:
        args.target = args.target.resolve()
        try:
            load_target(args.target)
        except TargetError as exc:
            print(f"rep-conformance: {exc}", file=sys.stderr)
            return EXIT_USAGE
        return _checked_run(args, args.target)
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
            return _checked_run(args, target_path)
    except ReferenceServerError as exc:
        print(f"rep-conformance: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE


def _width() -> int:
    return max(60, min(shutil.get_terminal_size((100, 24)).columns, 100))


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def list_requirements(fmt: str, uncovered_only: bool) -> str:
    covered = {**tests_by_requirement(), **client_checks_by_requirement()}
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
        lines += [
            "| requirement | level | verified by | text | checks |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r.id} | {r.level} | {r.verified_by} | {_cell(r.text)} | "
            + (", ".join(f"`{c}`" for c in checks) or "-")
            + " |"
            for r, checks in rows
        ]
        return "\n".join(lines)
    width = _width()
    section = None
    for requirement, checks in rows:
        if requirement.section != section:
            section = requirement.section
            lines.append(f"\n{index.sections.get(section, section)}")
        lines.append(
            f"  {requirement.id:<11} {requirement.level:<8} {requirement.verified_by:<11} "
            + (f"{len(checks)} check(s)" if checks else "no check")
        )
        lines += textwrap.wrap(
            " ".join(requirement.text.split()),
            width=width,
            initial_indent=" " * 6,
            subsequent_indent=" " * 6,
            break_on_hyphens=False,
            break_long_words=False,
        )
        for number, check in enumerate(checks):
            lines.append(("      checks: " if number == 0 else " " * 14) + check)
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
    if args.command == "init":
        return run_init(args)
    if args.command == "replay":
        return run_replay(args)
    if args.command == "client":
        return run_client(args)
    print(list_requirements(args.format, args.uncovered))
    return EXIT_PASS


if __name__ == "__main__":
    sys.exit(main())
