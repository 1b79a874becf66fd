"""Every workflow and action under .github/, read as data.

Each file is validated against SchemaStore's schema for its kind (the copies that
check-jsonschema vendors, so no network), then against the project's own rules: values
reach scripts through env, actions are pinned, local actions get only inputs they
declare, the composite action names only steps and inputs that exist and leaves the
caller's Python alone, and the release workflow does what tests/test_wheel_install.py
does locally. Finally, the action's own "Resolve the kit" and "Annotate failed
requirements" steps run with bash, as the runner would run them.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
GITHUB = ROOT / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.y*ml"))
ACTIONS = sorted((GITHUB / "actions").glob("*/action.y*ml"))
ACTION = GITHUB / "actions" / "rep-conformance" / "action.yml"
RELEASE = GITHUB / "workflows" / "release.yml"


class GitHubLoader(yaml.SafeLoader):
    """YAML as GitHub reads it: only true/false are booleans, so ``on:`` stays a key."""


GitHubLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
GitHubLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load(path: Path) -> dict[str, Any]:
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=GitHubLoader)
    assert isinstance(data, dict), path
    return data


def steps_of(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if "runs" in document:
        yield from document["runs"].get("steps", [])
    for job in document.get("jobs", {}).values():
        yield from job.get("steps", [])


def relative(path: object) -> str | None:
    """A parameter id: a file's path from the repository root (None: pytest's own id)."""
    return str(path.relative_to(ROOT)) if isinstance(path, Path) else None


def test_there_is_something_to_check() -> None:
    assert {p.name for p in WORKFLOWS} >= {"conformance.yml", "release.yml"}
    assert ACTION in ACTIONS


def vendored_schema(name: str) -> dict[str, Any]:
    if importlib.util.find_spec("check_jsonschema") is None:
        reason = "check-jsonschema is not installed (pip install -e '.[dev]')"
        if os.environ.get("REP_REQUIRE_ALL") == "1":
            pytest.fail(f"{reason}; REP_REQUIRE_ALL=1 requires it")
        pytest.skip(reason)
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendor / name).read_text(encoding="utf-8"))
    return schema


@pytest.mark.parametrize(
    ("path", "schema_name"),
    [(p, "github-workflows.json") for p in WORKFLOWS]
    + [(p, "github-actions.json") for p in ACTIONS],
    ids=relative,
)
def test_each_file_matches_the_schemastore_schema(path: Path, schema_name: str) -> None:
    schema = vendored_schema(schema_name)
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message[:300]}"
        for e in validator.iter_errors(load(path))
    ]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=relative)
def test_scripts_get_values_through_env_and_actions_are_pinned(path: Path) -> None:
    document = load(path)
    for step in steps_of(document):
        name = step.get("name") or step.get("uses") or step.get("run", "")[:40]
        if "run" in step:
            # An expression in a script is pasted into it before bash runs: injection.
            assert "${{" not in step["run"], f"{name}: pass values through env"
            if "runs" in document:
                assert step.get("shell") == "bash", name
        uses = step.get("uses")
        if uses and not uses.startswith("./"):
            assert re.fullmatch(r"[\w.-]+/[\w.-]+(/[\w./-]+)?@[\w.-]+", uses), uses
            assert uses.rsplit("@", 1)[1] not in ("main", "master", "latest", "HEAD"), uses
    assert "secrets." not in path.read_text(encoding="utf-8"), "no secrets in CI files"


@pytest.mark.parametrize("path", WORKFLOWS, ids=relative)
def test_workflows_limit_permissions_and_time(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {"contents": "read"}, "least privilege at the top"
    for name, job in workflow["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), f"{name}: timeout-minutes"
        granted = job.get("permissions", {})
        assert set(granted.values()) <= {"read", "write"}, name
        if granted.get("id-token") == "write":  # publishing: only from a protected environment
            assert job.get("environment"), name


@pytest.mark.parametrize("path", WORKFLOWS, ids=relative)
def test_local_actions_exist_and_get_only_declared_inputs(path: Path) -> None:
    for step in steps_of(load(path)):
        uses = step.get("uses", "")
        if not uses.startswith("./"):
            continue
        action = load(ROOT / uses / "action.yml")
        declared = action.get("inputs", {})
        given = step.get("with", {})
        assert set(given) <= set(declared), f"{uses}: {set(given) - set(declared)}"
        for name, spec in declared.items():
            if spec.get("required") is True and "default" not in spec:
                assert name in given, f"{uses} needs {name}"


def test_the_action_refers_only_to_steps_and_inputs_that_exist() -> None:
    action = load(ACTION)
    text = ACTION.read_text(encoding="utf-8")
    declared = set(action["inputs"])
    used = set(re.findall(r"\binputs\.([\w-]+)", text))
    assert used <= declared, used - declared
    assert declared <= used, f"inputs never used: {declared - used}"
    seen: set[str] = set()
    for step in action["runs"]["steps"]:
        for ref in re.findall(r"\bsteps\.([\w-]+)\.outputs", json.dumps(step)):
            assert ref in seen, f"{step.get('name')}: step {ref} is not an earlier step"
        if "id" in step:
            seen.add(step["id"])
    for name, output in action["outputs"].items():
        ref = re.fullmatch(r"\$\{\{ steps\.([\w-]+)\.outputs\.([\w-]+) \}\}", output["value"])
        assert ref and ref.group(1) in seen, name
    for script in re.findall(r"\$ACTION_PATH/([\w.]+)", text):
        assert (ACTION.parent / script).is_file(), script


def test_the_action_leaves_the_callers_python_alone_and_installs_no_index_name() -> None:
    action = load(ACTION)
    steps = action["runs"]["steps"]
    setups = [s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python@")]
    assert setups, "the kit's Python comes from setup-python"
    for setup in setups:
        assert setup["with"]["update-environment"] is False, "no PATH change for the caller"
    install = next(s for s in steps if s.get("name") == "Install the conformance kit")
    assert "$RUNNER_TEMP" not in install["run"] and "KIT_VENV" in install["env"]
    assert install["env"]["KIT_VENV"].startswith("${{ runner.temp }}/")
    assert "GITHUB_PATH" not in ACTION.read_text() and "GITHUB_ENV" not in ACTION.read_text()
    assert action["inputs"]["kit"]["default"] == "", "the default installs the action's checkout"


def test_every_exit_status_is_documented_the_same_way() -> None:
    from conformance.cli import EXIT_STATUSES

    codes = [code for code, _ in EXIT_STATUSES]
    description = load(ACTION)["outputs"]["exit-code"]["description"]
    assert re.findall(r"(?<![\w.-])(\d) (?=[a-z])", description) == [str(c) for c in codes]
    spec = importlib.util.spec_from_file_location("annotate", ACTION.parent / "annotate.py")
    assert spec and spec.loader
    annotate = importlib.util.module_from_spec(spec)
    sys.modules["annotate"] = annotate  # dataclasses look their module up there
    try:
        spec.loader.exec_module(annotate)
    finally:
        del sys.modules["annotate"]
    assert list(annotate.EXIT_STATUS) == codes


def test_the_release_workflow_builds_checks_installs_and_keeps_the_wheel() -> None:
    release = load(RELEASE)
    assert release["on"]["push"] == {"tags": ["v*"]}
    assert "workflow_dispatch" in release["on"]
    build = release["jobs"]["build"]
    scripts = "\n".join(s.get("run", "") for s in build["steps"])
    order = [
        "python -m build",
        "twine check --strict dist/*",
        "python -m venv",
        "-m pip install dist/rep_kit-*.whl",
        'rep-conformance" run --reference --report-dir',
    ]
    positions = [scripts.find(fragment) for fragment in order]
    assert -1 not in positions, dict(zip(order, positions, strict=True))
    assert positions == sorted(positions), "build, check, install the wheel, then run it"
    gate = next(s for s in build["steps"] if "run --reference" in s.get("run", ""))
    assert gate.get("working-directory") == "${{ runner.temp }}", "away from the checkout"
    uploads = [s for s in build["steps"] if str(s.get("uses", "")).startswith("actions/upload-")]
    assert {"name": "dist", "path": "dist/", "if-no-files-found": "error"} in [
        s["with"] for s in uploads
    ]
    publish = release["jobs"].get("publish")
    if publish:  # optional, and never by default: the project owns no name on PyPI yet
        assert "vars.PUBLISH_TO_PYPI == 'true'" in publish["if"]
        assert publish["needs"] == "build"
        assert publish["permissions"] == {"id-token": "write"}


BARE_INSTALL = re.compile(
    r"pip3? install\s+(-\S+\s+)*[\"']?rep[-_.]kit\b(?!\s*@)(?![\w./-])", re.IGNORECASE
)


def commands_in(path: Path) -> Iterator[str]:
    """What a reader would run: fenced code and inline code in Markdown (except a warning
    such as "never `pip install rep-kit`"), run scripts in YAML."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":
        yield from re.findall(r"(?ms)^\s*```[^\n]*\n(.*?)^\s*```", text)
        prose = re.sub(r"(?ms)^\s*```.*?^\s*```", "", text)
        for code in re.finditer(r"`([^`]+)`", prose):
            before = prose[max(0, code.start() - 40) : code.start()]
            if not re.search(r"\b(not|never|don't|instead of)\b", before, re.IGNORECASE):
                yield code.group(1)
    else:
        document = load(path)
        for step in steps_of(document):
            yield step.get("run", "")
        yield str(document.get("inputs", {}).get("kit", {}).get("default", ""))


def test_the_bare_name_check_tells_commands_from_warnings(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Do not `pip install rep-kit`.\n\n```sh\npip install rep-kit\n```\n"
        'Run `pip install "rep-kit @ git+https://github.com/<owner>/<repo>@<tag>"`.\n'
    )
    found = [m.group(0) for c in commands_in(page) for m in BARE_INSTALL.finditer(c)]
    assert found == ["pip install rep-kit"]


def test_no_document_installs_the_kit_by_its_bare_index_name() -> None:
    """The name rep-kit is not the project's on PyPI: whoever registers it would run."""
    documents = [ROOT / "README.md", ROOT / "conformance" / "README.md"]
    documents += sorted((ROOT / "docs").rglob("*.md")) + WORKFLOWS + ACTIONS
    found = [
        f"{p.relative_to(ROOT)}: {m.group(0)}"
        for p in documents
        for command in commands_in(p)
        for m in BARE_INSTALL.finditer(command)
    ]
    assert not found, found
    assert load(ACTION)["inputs"]["kit"]["default"] == ""


def run_step(name: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """One composite step's script under bash -eo pipefail, as the runner runs it."""
    step = next(s for s in load(ACTION)["runs"]["steps"] if s.get("name") == name)
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        env={**os.environ, "ACTION_PATH": str(ACTION.parent), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_resolve_step_installs_the_actions_own_checkout(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    env = {"PYTHON": sys.executable, "KIT": "", "GITHUB_OUTPUT": str(outputs)}
    done = run_step("Resolve the kit", env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    found = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert found["requirement"] == str(ROOT)
    assert found["cache-key"].startswith(found["cache-prefix"])


def test_the_resolve_step_refuses_the_bare_index_name(tmp_path: Path) -> None:
    env = {"PYTHON": sys.executable, "KIT": "rep-kit", "GITHUB_OUTPUT": str(tmp_path / "out")}
    done = run_step("Resolve the kit", env, tmp_path)
    assert done.returncode == 4
    assert done.stdout.startswith("::error title=rep-conformance::")
    assert not (tmp_path / "out").exists()


def test_the_annotate_step_turns_a_report_into_annotations(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    report = {
        "strict": False,
        "fix_first": [],
        "tests": [
            {
                "verdict": "fail",
                "failed_requirements": ["LIFE-001"],
                "message": "sent ping id='1'; expected a pong\nLIFE-001 (MUST, ...)",
            }
        ],
    }
    (reports / "report.json").write_text(json.dumps(report))
    env = {"KIT_BIN": "", "REPORT_DIR": str(reports), "CODE": "1"}
    done = run_step("Annotate failed requirements", env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "::error title=LIFE-001::sent ping id='1'; expected a pong\n"
    (reports / "report.json").unlink()
    done = run_step("Annotate failed requirements", {**env, "CODE": "3"}, tmp_path)
    assert done.stdout.startswith("::error title=rep-conformance exit 3::the server could not")
