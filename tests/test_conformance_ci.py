"""The GitHub Actions recipe: its shell steps run as written and report what they should."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ACTION = ROOT / ".github" / "actions" / "rep-conformance" / "action.yml"
WORKFLOW = ROOT / ".github" / "workflows" / "conformance.yml"


def step(name: str) -> dict[str, Any]:
    action = yaml.safe_load(ACTION.read_text())
    found: dict[str, Any] = next(s for s in action["runs"]["steps"] if s.get("name") == name)
    return found


def run_step(name: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run one composite step's script with bash, as the runner would."""
    script = step(name)["run"]
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script],
        env={**os.environ, "PATH": path, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_action_and_workflow_are_well_formed() -> None:
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    for found in action["runs"]["steps"]:
        if "run" in found:
            assert found.get("shell") == "bash", found.get("name")
            assert "${{ inputs." not in found["run"], "inputs go through env, not the script"
    workflow = yaml.safe_load(WORKFLOW.read_text())
    uses = [s.get("uses") for job in workflow["jobs"].values() for s in job["steps"]]
    assert "./.github/actions/rep-conformance" in uses


@pytest.mark.network
def test_the_run_and_summary_steps_check_the_reference_server(tmp_path: Path) -> None:
    outputs, summary = tmp_path / "outputs", tmp_path / "summary.md"
    env = {
        "TARGET": "",
        "REFERENCE": "true",
        "STRICT": "false",
        "REPORT_DIR": str(tmp_path / "reports"),
        "EXTRA_ARGS": "--check test_ping_is_answered_by_a_correlated_pong",
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    done = run_step("Run the conformance checks", env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert outputs.read_text().splitlines() == ["exit-code=0", "outcome=pass"]
    done = run_step("Write the step summary", env, tmp_path)
    assert done.returncode == 0
    assert "REP 1.0 conformance: PASS" in summary.read_text()


def test_the_run_step_refuses_to_guess_a_target(tmp_path: Path) -> None:
    env = {
        "TARGET": "",
        "REFERENCE": "false",
        "STRICT": "false",
        "REPORT_DIR": str(tmp_path / "reports"),
        "EXTRA_ARGS": "",
        "GITHUB_OUTPUT": str(tmp_path / "outputs"),
    }
    done = run_step("Run the conformance checks", env, tmp_path)
    assert done.returncode == 4
    assert "set the target input" in done.stdout
