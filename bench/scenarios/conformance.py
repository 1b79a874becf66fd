"""Scenario 6: wall time of a full conformance run against the bundled reference server.

The command is ``rep-conformance run --reference`` (with ``--profile ci`` once the kit has
profiles). Its same-run baseline is the kit's fixed cost: the same command collecting the
checks without running any (interpreter, plugin, reference server start), so the ratio
tells how much the checks themselves add. The issue's limit is absolute: 30 s.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.procs import ROOT, child_env
from bench.report import Row, at_most, make_row, unavailable
from bench.scenarios import Context

LIMIT_SECONDS = 30.0
SCENARIO = "conformance kit, full ci run"


def command() -> list[str] | None:
    """How to start the kit here, or None when it has no ``run --reference`` yet."""
    script = Path(sys.executable).with_name("rep-conformance")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "conformance.cli"]
    try:
        shown = subprocess.run(
            [*base, "run", "--help"],
            cwd=ROOT,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if shown.returncode != 0 or "--reference" not in shown.stdout:
        return None
    argv = [*base, "run", "--reference"]
    if "--profile" in shown.stdout:
        argv += ["--profile", "ci"]
    return argv


def timed(argv: list[str], timeout: float) -> tuple[float, int]:
    began = time.monotonic()
    try:
        done = subprocess.run(
            argv,
            cwd=ROOT,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
        status = done.returncode
    except subprocess.TimeoutExpired:
        status = -1
    return time.monotonic() - began, status


def run(ctx: Context) -> list[Row]:
    argv = command()
    target = at_most(LIMIT_SECONDS, "s")
    if argv is None:
        return [unavailable(SCENARIO, "s", "rep-conformance has no run --reference", target)]
    reports = ctx.workdir / "conformance"
    shutil.rmtree(reports, ignore_errors=True)
    selection = list(ctx.profile.conformance_selection)
    ctx.log(f"conformance: {' '.join(argv[1:] + selection)}")
    fixed, fixed_status = (
        timed(
            [*argv, "--report-dir", str(reports / "collect"), *selection, "--", "--collect-only"],
            ctx.profile.conformance_timeout,
        )
        if ctx.profile.extras
        else (0.0, -2)
    )
    wall, status = timed(
        [*argv, "--report-dir", str(reports / "run"), *selection], ctx.profile.conformance_timeout
    )
    outcome = {0: "all MUSTs pass", 1: "some checks fail", -1: "timed out"}.get(
        status, f"exit {status}"
    )
    return [
        make_row(
            SCENARIO if not selection else f"conformance kit, {' '.join(selection)}",
            "s",
            "collect only",
            [fixed] if fixed_status in (0, 1) else [],
            [wall] if status != -1 else [],
            target,
            details={
                "command": " ".join(argv[1:]),
                "exit_status": status,
                "collect_exit_status": fixed_status,
                "value_extra": outcome,
            },
        )
    ]
