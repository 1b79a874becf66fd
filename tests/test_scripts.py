"""The quick-start scripts and CI entry point, run against stand-ins for Python and pip.

A stub ``python3`` creates a fake virtual environment whose ``python``, ``ruff``, ``mypy``
and ``rep-conformance`` only log how they were called, so these tests check what the
scripts install where, when they reinstall, and what they print, in well under a second
and without a network.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
TESTS = ROOT / "tests"
BASH = shutil.which("bash") or "/bin/bash"

# `python3 -m venv DIR` makes DIR/bin with logging stand-ins; anything else (the version
# check reads a program from stdin) succeeds.
FAKE_PYTHON = r"""#!/usr/bin/env bash
if [ "${1:-}" = "-m" ] && [ "${2:-}" = "venv" ]; then
  dir=$3
  mkdir -p "$dir/bin"
  printf 'export PATH="%s/bin:$PATH"\n' "$(cd "$dir" && pwd)" >"$dir/bin/activate"
  for tool in python ruff mypy rep-conformance; do
    printf '#!/usr/bin/env bash\necho "%s $*" >>"$REP_STUB_LOG"\n' "$dir:$tool" >"$dir/bin/$tool"
    chmod +x "$dir/bin/$tool"
  done
  echo "$dir:created" >>"$REP_STUB_LOG"
  exit 0
fi
cat >/dev/null
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the scripts in an otherwise empty project, and a stub python3."""
    root = tmp_path / "project"
    shutil.copytree(SCRIPTS, root / "scripts")
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n", encoding="utf-8")
    stub = tmp_path / "stub" / "python3"
    stub.parent.mkdir()
    stub.write_text(FAKE_PYTHON, encoding="utf-8")
    stub.chmod(0o755)
    return root


def run(project: Path, script: str, *args: str) -> tuple[str, list[str]]:
    log = project.parent / "calls.log"
    log.unlink(missing_ok=True)
    env = {
        "PATH": f"{project.parent / 'stub'}:/usr/bin:/bin",
        "HOME": str(project.parent),
        "REP_STUB_LOG": str(log),
    }
    done = subprocess.run(
        [BASH, str(project / "scripts" / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    calls = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return done.stderr, calls


def test_conformance_installs_the_project_alone_into_its_own_environment(project: Path) -> None:
    stderr, calls = run(project, "conformance.sh", "--strict")
    assert "setting up .venv-kit (first run only, ~" in stderr
    assert calls == [
        ".venv-kit:created",
        ".venv-kit:python -m pip install --quiet --disable-pip-version-check -e .",
        ".venv-kit:rep-conformance run --reference --report-dir reports/conformance --strict",
    ]
    assert (project / ".venv-kit" / ".gitignore").read_text(encoding="utf-8") == "*\n"
    assert not (project / ".venv").exists()


def test_test_sh_installs_the_dev_extras_into_dot_venv(project: Path) -> None:
    stderr, calls = run(project, "test.sh", "-k", "vectors")
    assert "setting up .venv (first run only, ~" in stderr
    assert calls == [
        ".venv:created",
        ".venv:python -m pip install --quiet --disable-pip-version-check -e .[dev]",
        ".venv:ruff check .",
        ".venv:mypy ",
        ".venv:python -m pytest -k vectors",
    ]


def test_a_second_run_installs_nothing_until_pyproject_changes(project: Path) -> None:
    run(project, "conformance.sh")
    stderr, calls = run(project, "conformance.sh")
    assert stderr == "" and calls == [
        ".venv-kit:rep-conformance run --reference --report-dir reports/conformance"
    ]
    stamp = project / ".venv-kit" / ".rep-installed"
    os.utime(stamp, (1, 1))  # pyproject.toml is now the newer file
    stderr, calls = run(project, "conformance.sh")
    assert "updating .venv-kit (pyproject.toml changed" in stderr
    assert calls[0] == ".venv-kit:python -m pip install --quiet --disable-pip-version-check -e ."


def test_an_environment_installed_with_other_extras_is_reinstalled(project: Path) -> None:
    run(project, "test.sh")
    (project / ".venv" / ".rep-installed").write_text(".\n", encoding="utf-8")
    _, calls = run(project, "test.sh")
    assert calls[0] == ".venv:python -m pip install --quiet --disable-pip-version-check -e .[dev]"


def test_an_old_python_is_refused_with_the_reason(project: Path) -> None:
    old = project.parent / "stub" / "python3"
    old.write_text("#!/usr/bin/env bash\ncat >/dev/null\nexit 1\n", encoding="utf-8")
    done = subprocess.run(
        [BASH, str(project / "scripts" / "conformance.sh")],
        env={"PATH": f"{old.parent}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1 and "Python 3.11 or newer is required" in done.stderr


# --- the system tools the tests need ----------------------------------------------------


def tool_table() -> dict[str, tuple[str, set[str]]]:
    """scripts/_tools.sh's entries: tool -> (Debian package, test files it names)."""
    text = (SCRIPTS / "_tools.sh").read_text(encoding="utf-8")
    body = re.search(r"REP_TOOLS=\((.*?)\n\)", text, re.S)
    assert body is not None
    table = {}
    for entry in shlex.split(body.group(1)):
        tool, package, gated = entry.split("|")
        table[tool] = (package, set(re.findall(r"tests/[\w/]+\.py", gated)))
    return table


def looks_up(path: Path) -> set[str]:
    """The tools a test module looks up with shutil.which("...")."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "which"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.add(str(node.args[0].value))
    return found


def test_the_tool_list_names_exactly_the_tests_that_look_each_tool_up() -> None:
    modules = {p: looks_up(p) for p in TESTS.rglob("*.py")}
    helpers = {p.stem: tools for p, tools in modules.items() if not p.name.startswith("test_")}
    # Outside tests/, one module gates tests on tools: the bench's Node baseline, which its
    # test skips without (bench/procs.py's redis lookup only marks a row "not available").
    helpers["node_baseline"] = looks_up(ROOT / "bench" / "node_baseline.py")
    for tool, (_, listed) in tool_table().items():
        expected = set()
        for path, tools in modules.items():
            if not path.name.startswith("test_") or path.name == "test_scripts.py":
                continue
            text = path.read_text(encoding="utf-8")
            through = any(tool in t and re.search(rf"\b{h}\b", text) for h, t in helpers.items())
            if tool in tools or through:
                expected.add(path.relative_to(ROOT).as_posix())
        assert listed == expected, tool
    every = set().union(*modules.values()) - {"python", "python3", "bash"}
    assert every <= set(tool_table()), "a test looks up a tool scripts/_tools.sh does not list"


def report(path: str, **env: str) -> str:
    done = subprocess.run(
        [BASH, "-c", "source scripts/_tools.sh"],
        cwd=ROOT,
        env={"PATH": path, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stdout == ""
    return done.stderr


def test_missing_tools_are_reported_with_their_tests_and_the_install_line(tmp_path: Path) -> None:
    text = report(str(tmp_path))
    assert text.startswith("scripts/test.sh: not on PATH, so these tests will be skipped:")
    table = tool_table()
    for tool, (_, tests) in table.items():
        line = next(line for line in text.splitlines() if line.startswith(f"  {tool}: "))
        assert all(test in line for test in tests), line
    packages = " ".join(package for package, _ in table.values())
    assert f"apt-get install -y --no-install-recommends {packages}" in text
    assert "will fail (REP_REQUIRE_ALL=1)" in report(str(tmp_path), REP_REQUIRE_ALL="1")


def test_nothing_is_reported_when_every_tool_is_there(tmp_path: Path) -> None:
    for tool in tool_table():
        (tmp_path / tool).write_text("#!/bin/sh\n", encoding="utf-8")
        (tmp_path / tool).chmod(0o755)
    assert report(str(tmp_path)) == ""


def test_ci_installs_every_package_the_tests_need() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for tool, (package, _) in tool_table().items():
        assert re.search(rf"command -v {re.escape(tool)}\b.*need_apt\+=\({package}\)", ci), tool
    assert "python3-venv" in ci and "REP_REQUIRE_ALL=1" in ci
    assert "scripts/test.sh" in ci.splitlines()[-1]


@pytest.mark.parametrize("script", ["scripts/_venv.sh", "scripts/_tools.sh", ".ci/run"])
def test_scripts_parse(script: str) -> None:
    subprocess.run([BASH, "-n", str(ROOT / script)], check=True, timeout=30)


# --- the README's quick start -------------------------------------------------------------


def test_the_quick_start_is_two_commands_that_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert commands == ["scripts/conformance.sh", "scripts/test.sh"]
    for command in commands:
        assert os.access(ROOT / command, os.X_OK), command


def test_the_readme_never_installs_the_kit_from_the_package_index() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "not published on PyPI" in readme
    assert re.search(r"pip install [^`\n]*rep_kit-<version>-py3-none-any\.whl", readme)
    for line in readme.splitlines():
        if re.search(r"pip install ['\"]?rep-kit\b(?!\s*@)", line):
            assert "not" in line, f"the README installs rep-kit by name: {line}"
    assert "`LICENSE`" in readme.split("## License", 1)[1]
