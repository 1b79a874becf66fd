"""``python -m bench [--quick] [--json PATH] [--only NAME ...]``: run, print the table."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.procs import ROOT, raise_nofile_limit
from bench.profiles import FULL, PROFILES, QUICK, Profile
from bench.report import Row, markdown, write_json
from bench.scenarios import Context, registry


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the REP reference server and conformance kit against baselines "
        "measured in the same run.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="shorter windows, fewer runs (< 2 min)")
    size.add_argument("--profile", choices=sorted(PROFILES), help="full, quick or tiny (tests)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the rows as JSON")
    parser.add_argument(
        "--only",
        action="append",
        choices=list(registry()),
        metavar="SCENARIO",
        help=f"run only these scenarios (repeatable): {', '.join(registry())}",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return parser


def _meta(profile: Profile, started: float) -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "profile": profile.name,
        "runs": profile.runs,
        "window_seconds": profile.seconds,
        "commit": commit,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "wall_seconds": round(time.monotonic() - started, 1),
    }


def run(profile: Profile, only: Sequence[str] | None = None, verbose: bool = True) -> list[Row]:
    """Run the selected scenarios; one that fails becomes an ``error`` row, not a crash."""
    raise_nofile_limit()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="rep-bench-") as scratch:
        ctx = Context(profile, Path(scratch), verbose=verbose)
        for name, scenario in registry().items():
            if only and name not in only:
                continue
            began = time.monotonic()
            try:
                rows += scenario(ctx)
            except Exception as exc:
                traceback.print_exc(file=sys.stderr)
                rows.append(Row(name, "", "-", None, None, None, "-", "error", note=f"{exc}"[:200]))
            ctx.log(f"{name}: {time.monotonic() - began:.1f} s")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    profile = PROFILES[args.profile] if args.profile else (QUICK if args.quick else FULL)
    started = time.monotonic()
    rows = run(profile, args.only, verbose=not args.quiet)
    print(markdown(rows))
    print(f"\n{profile.name} profile, {time.monotonic() - started:.0f} s")
    if args.json:
        write_json(rows, args.json, _meta(profile, started))
    return 1 if any(row.verdict == "error" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
