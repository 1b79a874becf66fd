"""Run steps of the site workflow (.github/workflows/site.yml) as the runner would.

The tests build the site with the workflow's own commands, read from the file, so the
site CI deploys is the site the tests checked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "site.yml"
BUILD_STEP = ("build", "Build the site (strict)")


class _GitHubLoader(yaml.SafeLoader):
    """YAML as GitHub reads it: only true/false are booleans, so ``on:`` stays a key."""


_GitHubLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_GitHubLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(WORKFLOW.read_text(encoding="utf-8"), _GitHubLoader)
    return loaded


def step(job: str, name: str) -> dict[str, Any]:
    found = [s for s in workflow()["jobs"][job]["steps"] if s.get("name") == name]
    assert len(found) == 1, f"{WORKFLOW.name}: job {job} has no single step {name!r}"
    return found[0]


def run_step(
    job: str, name: str, cwd: Path, runner_temp: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """The step's script under bash, as ``run:`` executes it: ``-e``, this interpreter's
    environment first on PATH (``python`` is the project's), RUNNER_TEMP and the step's
    ``env`` (whose expressions the caller supplies in ``env``)."""
    script = step(job, name)["run"]
    declared = step(job, name).get("env", {})
    missing = set(declared) - set(env)
    assert not missing, f"{name}: give values for {missing}"
    assert not re.search(r"\$\{\{", script), f"{name}: expressions belong in env"
    bin_dir = str(Path(sys.executable).parent)
    environment = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "RUNNER_TEMP": str(runner_temp),
        "NO_MKDOCS_2_WARNING": "1",
        **env,
    }
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
