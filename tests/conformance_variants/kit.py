"""Run the conformance kit the way a user does: a target file, a subprocess, the JSON report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


def write_target(target: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(target, sort_keys=False), encoding="utf-8")
    return path


def run_kit(target: dict[str, Any], directory: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    """``rep-conformance run --target`` in a subprocess; (exit code, JSON report, stdout)."""
    target_path = write_target(target, directory / "target.yaml")
    reports = directory / "reports"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance.cli",
            "run",
            "--target",
            str(target_path),
            "--report-dir",
            str(reports),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report_path = reports / "report.json"
    if not report_path.exists():
        raise AssertionError(f"no report (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.returncode, json.loads(report_path.read_text(encoding="utf-8")), done.stdout
