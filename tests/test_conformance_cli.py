"""``rep-conformance``'s exit statuses, help and listing, as a user or CI meets them.

Each exit status of the table in ``conformance/cli.py`` is reached here the way it is
reached in practice. Exit 1 (a requirement failed, a baseline entry is stale) needs a
broken server; it is asserted through this same CLI by
``tests/test_conformance_reference.py::test_each_broken_variant_fails_the_right_requirement``
(``python -m conformance.cli run --target`` against broken variants of the reference
server) and, for stale baselines, by
``tests/test_conformance_verdicts.py::test_the_plugin_gives_each_check_its_verdict``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import conformance.cli as cli
from conformance.cli import EXIT_STATUSES, list_requirements, main
from conformance.reference import free_port
from rep_spec import requirements

PING = "test_ping_is_answered_by_a_correlated_pong"


def rep_conformance(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conformance.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def closed_port_target(path: Path) -> Path:
    """A target on a loopback port nothing listens on."""
    path.write_text(
        yaml.safe_dump(
            {
                "ws_url": f"ws://127.0.0.1:{free_port()}/ws",
                "tokens": {"jwt": {"secret": "s" * 32}},
                "timeouts": {"connect": 2.0},
            }
        )
    )
    return path


# -- 0 and the progress lines -----------------------------------------------------------


@pytest.mark.network
def test_a_passing_run_exits_0_and_shows_each_finished_module(tmp_path: Path) -> None:
    done = rep_conformance(
        "run", "--reference", "--report-dir", str(tmp_path / "reports"), "--check", PING
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert re.search(r"^lifecycle +2 checks +2 pass +\(\d+\.\d s elapsed\)$", done.stdout, re.M), (
        done.stdout
    )
    assert "checks/test_lifecycle.py .." in done.stdout  # pytest's own progress stays


@pytest.mark.network
def test_quiet_runs_show_no_module_lines(tmp_path: Path) -> None:
    done = rep_conformance(
        "run", "--reference", "-q", "--report-dir", str(tmp_path / "reports"), "--check", PING
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert "elapsed)" not in done.stdout


# -- 3 ----------------------------------------------------------------------------------


@pytest.mark.network
def test_an_unreachable_server_exits_3(tmp_path: Path) -> None:
    target = closed_port_target(tmp_path / "target.yaml")
    done = rep_conformance("run", "--target", str(target), "--report-dir", str(tmp_path / "r"))
    assert done.returncode == 3, done.stdout[-3000:] + done.stderr
    assert "run stopped before checking" in done.stdout and "cannot check" in done.stdout


# -- 6 ----------------------------------------------------------------------------------


def test_a_crash_of_the_kit_itself_exits_6_not_3(tmp_path: Path) -> None:
    """pytest's INTERNALERROR is 3, the kit's "server unreachable": a kit bug must not read
    as a verdict on the server. A plugin that raises during collection stands in for one."""
    (tmp_path / "crashing_plugin.py").write_text(
        "def pytest_collection_modifyitems(items):\n    raise RuntimeError('a bug in the kit')\n"
    )
    target = closed_port_target(tmp_path / "target.yaml")
    argv = ["run", "--target", str(target), "--report-dir", str(tmp_path / "r")]
    done = subprocess.run(
        [sys.executable, "-m", "conformance.cli", *argv, "--", "-p", "crashing_plugin"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])},
    )
    assert "INTERNALERROR" in done.stdout + done.stderr, done.stdout[-2000:] + done.stderr
    assert done.returncode == 6, done.stdout[-2000:] + done.stderr


# -- 4 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--reference", "--no-such-option"],
        ["run"],  # neither --target nor --reference
        ["run", "--target", "t.yaml", "--reference"],
        ["run", "--reference", "--profile", "nope"],
        ["run", "--reference", "--seed", "not-a-number"],
        ["frobnicate"],
        [],
        ["list", "--format", "html"],
        ["init", "--secret", "s"],  # no --url
    ],
    ids=lambda argv: " ".join(argv) or "(nothing)",
)
def test_usage_errors_exit_4(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 4
    assert "usage: rep-conformance" in capsys.readouterr().err


def test_an_unknown_option_exits_4_from_the_command_line() -> None:
    done = rep_conformance("run", "--reference", "--no-such-option")
    assert done.returncode == 4, done.stderr
    assert "unrecognized arguments: --no-such-option" in done.stderr


def test_an_invalid_target_file_exits_4_with_one_line(tmp_path: Path) -> None:
    target = tmp_path / "target.yaml"
    target.write_text(yaml.safe_dump({"ws_url": "http://not-a-websocket", "tokens": {}}))
    done = rep_conformance("run", "--target", str(target), "--report-dir", str(tmp_path / "r"))
    assert done.returncode == 4, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "invalid target file" in done.stderr
    missing = rep_conformance("run", "--target", str(tmp_path / "missing.yaml"))
    assert missing.returncode == 4 and "cannot read target file" in missing.stderr


def test_cluster_without_reference_exits_4(tmp_path: Path) -> None:
    target = closed_port_target(tmp_path / "target.yaml")
    assert main(["run", "--target", str(target), "--cluster", "redis://127.0.0.1:1/0"]) == 4


# -- 5 ----------------------------------------------------------------------------------


def test_a_check_that_matches_nothing_exits_5_before_starting_anything() -> None:
    done = rep_conformance("run", "--reference", "--check", "test_no_such_check", timeout=30)
    assert done.returncode == 5, done.stdout + done.stderr
    assert done.stderr.strip() == (
        "rep-conformance: no check matches --check 'test_no_such_check'; see 'rep-conformance list'"
    )
    assert "reference server on" not in done.stdout  # nothing was started


@pytest.mark.parametrize(
    "selection",
    [
        ["--check", f"test_lifecycle.py::{PING}[no-such-parameter]"],
        ["-k", "no_check_has_this_in_its_name"],
    ],
)
def test_a_selection_that_matches_nothing_after_collection_exits_5(
    selection: list[str], tmp_path: Path
) -> None:
    """Parameters and -k are only known once pytest collected; the server is not probed."""
    target = closed_port_target(tmp_path / "target.yaml")
    done = rep_conformance(
        "run", "--target", str(target), "--report-dir", str(tmp_path / "r"), *selection
    )
    assert done.returncode == 5, done.stdout + done.stderr
    assert "rep-conformance: no check matches " in done.stderr
    assert "see 'rep-conformance list'" in done.stderr


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        (PING, True),
        (f"test_lifecycle.py::{PING}", True),
        (f"test_lifecycle.py::{PING}[empty]", True),  # parameters are judged by the plugin
        (f"{PING}[empty]", False),  # a bare name with parameters never matches
        ("test_lifecycle.py::test_nothing", False),
        ("checks/test_lifecycle.py", False),
    ],
)
def test_could_match_agrees_with_the_plugins_patterns(pattern: str, matches: bool) -> None:
    assert cli.could_match(pattern) is matches


# -- the table, help and list -------------------------------------------------------------


def test_one_table_of_exit_statuses_in_the_docstring_and_the_help() -> None:
    assert [code for code, _ in EXIT_STATUSES] == [0, 1, 3, 4, 5, 6]
    done = rep_conformance("--help")
    assert done.returncode == 0
    doc = " ".join((cli.__doc__ or "").split())
    for code, meaning in EXIT_STATUSES:
        assert f"{code} {meaning}" in doc, meaning
        assert f"  {code}  {meaning}" in done.stdout, meaning
    run_help = rep_conformance("run", "--help").stdout
    assert all(meaning in run_help for _, meaning in EXIT_STATUSES)


def test_the_help_shows_examples_of_every_command() -> None:
    text = rep_conformance("--help").stdout
    for example in ("run --reference", "run --target", "init --url", "list", "replay"):
        assert f"rep-conformance {example}" in text, example
    assert "text (default)" in rep_conformance("list", "--help").stdout


def test_list_shows_each_requirements_text() -> None:
    text = list_requirements("text", uncovered_only=False)
    flat = " ".join(text.split())
    for requirement in requirements():
        assert " ".join(requirement.text.split()) in flat, requirement.id
    assert max(len(line) for line in text.splitlines()) <= 100 + 40  # wrapped (ids may be long)
    assert re.search(rf"^      checks: test_lifecycle\.py::{PING}$", text, re.M)


def test_list_markdown_has_a_text_column() -> None:
    lines = list_requirements("markdown", uncovered_only=False).splitlines()
    assert lines[0] == "| requirement | level | verified by | text | checks |"
    first = next(iter(requirements()))
    row = next(line for line in lines if line.startswith(f"| {first.id} |"))
    assert " ".join(first.text.split()).replace("|", "\\|") in row
    assert all(line.count(" | ") >= 4 for line in lines[2:])
    assert json.loads(list_requirements("json", uncovered_only=False))[0]["text"] == first.text
