"""The composite action's two scripts: annotations from report.json, and what to install.

Both live in .github/actions/rep-conformance/ (standard library only) and are loaded here
from their files, as the action runs them.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
ACTION_DIR = ROOT / ".github" / "actions" / "rep-conformance"


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"rep_action_{name}", ACTION_DIR / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


annotate = load_script("annotate")
resolve_kit = load_script("resolve_kit")

PONG = (
    "sent ping id='user#1-1' on user#1; expected a pong with metadata.correlation_id = "
    "'user#1-1' within 2 s (LIFE-001); received instead: pong without correlation_id\n"
    "LIFE-001 (MUST, Heartbeat and lifecycle): A server answers a ping with a pong whose "
    "metadata.correlation_id is the ping's id.\n"
    "replay: rep-conformance run --target server.yaml --check 'test_lifecycle.py::...'"
)
SCHEMA = (
    "expected every message the server sends to match the server schemas and rules "
    "(ENV-005, ENV-013); user#1: the message does not match the server schemas at "
    "/payload/timestamp: 'timestamp' is a required property\n"
    "ENV-005 (MUST, Envelope): The payload member is a JSON object ..."
)


def sample_report(**changes: Any) -> dict[str, Any]:
    """The shape rep-conformance writes (report format 2), trimmed to what is read."""
    report: dict[str, Any] = {
        "format": 2,
        "outcome": "fail",
        "exit_status": 1,
        "strict": False,
        "aborted": None,
        "fix_first": [
            {
                "key": "ENV-005",
                "kind": "requirement",
                "level": "MUST",
                "title": "The payload member is a JSON object that matches ...",
                "blocks": 10,
                "fails": 0,
                "message": SCHEMA,
            },
            {
                "key": "LIFE-001",
                "kind": "requirement",
                "level": "MUST",
                "title": "A server answers a ping with a pong ...",
                "blocks": 0,
                "fails": 1,
                "message": PONG,
            },
        ],
        "tests": [
            {
                "id": "test_envelope.py::test_invalid_payloads_are_refused[ping-unknown]",
                "verdict": "inconclusive",
                "failed_requirements": ["ENV-005", "ENV-013"],
                "message": SCHEMA,
            },
            {
                "id": "test_lifecycle.py::test_ping_is_answered_by_a_correlated_pong[empty]",
                "verdict": "fail",
                "failed_requirements": ["LIFE-001"],
                "message": PONG,
            },
            {
                "id": "test_rooms.py::test_join_announces_the_member",
                "verdict": "warn",
                "failed_requirements": ["ROOM-012"],
                "message": "expected user_joined within 2 s (ROOM-012)\nROOM-012 (SHOULD, ...)",
            },
            {"id": "test_ok.py::test_fine", "verdict": "pass", "failed_requirements": []},
        ],
        "stale_baseline": [],
    }
    report.update(changes)
    return report


def commands(report: dict[str, Any]) -> list[str]:
    return [a.command() for a in annotate.limited(annotate.collect(report))]


def test_each_failed_requirement_is_one_annotation_fix_first_order() -> None:
    assert commands(sample_report()) == [
        "::error title=ENV-005::" + SCHEMA.splitlines()[0],
        "::error title=LIFE-001::" + PONG.splitlines()[0],
        "::warning title=ROOM-012::expected user_joined within 2 s (ROOM-012)",
    ]


def test_a_failed_should_is_an_error_with_strict() -> None:
    found = annotate.collect(sample_report(strict=True))
    assert {a.title: a.level for a in found}["ROOM-012"] == "error"


def test_the_finding_of_a_failed_check_is_preferred_over_the_cause_message() -> None:
    report = sample_report()
    report["fix_first"][1]["message"] = "some other check's text"
    (life,) = [a for a in annotate.collect(report) if a.title == "LIFE-001"]
    assert life.text == PONG.splitlines()[0]


def test_causes_that_are_not_requirements_and_stale_entries_are_errors() -> None:
    report = sample_report(
        aborted="the server did not answer at ws://127.0.0.1:9/ws\n(connection refused)",
        fix_first=[
            {
                "key": "server-unreachable",
                "kind": "server",
                "level": "MUST",
                "title": "the server stopped answering",
                "message": "",
            },
            {
                "key": "feature:rooms",
                "kind": "feature",
                "level": "MUST",
                "title": "feature rooms is not implemented",
                "message": "",
            },
        ],
        tests=[],
        stale_baseline=[{"entry": "test_chat.py::test_x", "reason": "sanitizer upgrade"}],
    )
    assert commands(report) == [
        "::error title=run stopped::the server did not answer at ws://127.0.0.1:9/ws",
        "::error title=server-unreachable::the server stopped answering",
        "::error title=feature%3Arooms::feature rooms is not implemented",
        "::error title=stale baseline%3A test_chat.py%3A%3Atest_x::the baseline entry "
        "test_chat.py::test_x no longer fails; remove it from the target file "
        "(sanitizer upgrade)",
    ]


def test_a_passing_report_makes_no_annotation() -> None:
    report = sample_report(outcome="pass", fix_first=[], tests=[{"verdict": "pass"}])
    assert commands(report) == []


def test_workflow_command_text_is_escaped() -> None:
    command = annotate.Annotation("error", "A,B: C", "100% sure\r\nnext").command()
    assert command == "::error title=A%2CB%3A C::100%25 sure%0D%0Anext"


def test_github_shows_ten_per_level_and_the_rest_are_counted() -> None:
    tests = [
        {"verdict": "fail", "failed_requirements": [f"ENV-{n:03}"], "message": f"broken {n}"}
        for n in range(1, 14)
    ]
    found = commands(sample_report(fix_first=[], tests=tests))
    assert len(found) == 11
    assert found[9] == "::error title=ENV-010::broken 10"
    assert found[10].startswith("::notice title=rep-conformance::3 more failed requirements")


@pytest.fixture
def report_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(sample_report()), encoding="utf-8")
    yield path


def test_main_prints_the_annotations(report_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert annotate.main([str(report_file), "--exit-code", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("::")[1] for line in lines] == [
        "error title=ENV-005",
        "error title=LIFE-001",
        "warning title=ROOM-012",
    ]


@pytest.mark.parametrize(("code", "meaning"), list(annotate.EXIT_STATUS.items())[1:])
def test_without_a_report_the_exit_status_is_explained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], code: int, meaning: str
) -> None:
    assert annotate.main([str(tmp_path / "missing.json"), "--exit-code", str(code)]) == 0
    assert capsys.readouterr().out == (
        f"::error title=rep-conformance exit {code}::{meaning}; see the run step's log\n"
    )


def test_an_unreadable_report_or_no_status_says_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "report.json"
    broken.write_text("{not json")
    assert annotate.main([str(broken), "--exit-code", ""]) == 0
    assert annotate.main([str(broken), "--exit-code", "0"]) == 0
    assert capsys.readouterr().out == ""


# resolve_kit.py


def test_the_default_is_the_checkout_that_holds_the_action() -> None:
    assert resolve_kit.requirement("", ACTION_DIR) == str(ROOT)
    assert resolve_kit.requirement("  ", ACTION_DIR / "." / ".." / "rep-conformance") == str(ROOT)


def test_another_projects_pyproject_on_the_way_up_is_passed_over(tmp_path: Path) -> None:
    kit, action = tmp_path / "rep", tmp_path / "rep" / "vendor" / "x" / "action"
    action.mkdir(parents=True)
    (kit / "pyproject.toml").write_text('[project]\nname = "REP_Kit"\n')
    (kit / "vendor" / "pyproject.toml").write_text('[project]\nname = "other"\n')
    assert resolve_kit.requirement("", action) == str(kit)


def test_no_kit_above_the_action_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(resolve_kit.KitError, match=r"no pyproject\.toml of rep-kit"):
        resolve_kit.requirement("", tmp_path)


@pytest.mark.parametrize(
    "kit",
    ["rep-kit", "rep_kit==0.1.0", "REP-KIT[dev]>=0.1", " rep.kit ", "rep-kit; python_version>'3'"],
)
def test_the_bare_index_name_is_refused(kit: str) -> None:
    with pytest.raises(resolve_kit.KitError, match="package index"):
        resolve_kit.requirement(kit, ACTION_DIR)


@pytest.mark.parametrize(
    "kit",
    [
        ".",
        "./rep-kit",
        "dist/rep_kit-0.1.0-py3-none-any.whl",
        "rep-kit @ git+https://github.com/example-owner/rep@v0.1.0",
        "git+https://github.com/example-owner/rep@0123456789abcdef0123456789abcdef01234567",
        "rep-kit-extras",
    ],
)
def test_other_requirements_are_passed_to_pip_as_given(kit: str) -> None:
    assert resolve_kit.requirement(kit, ACTION_DIR) == kit


def test_the_cache_key_follows_the_kits_dependencies(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "rep-kit"\n')
    first, prefix = resolve_kit.cache_key(str(tmp_path), tmp_path, "")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "rep-kit"\ndependencies = []\n')
    second, _ = resolve_kit.cache_key(str(tmp_path), tmp_path, "")
    assert first != second and first.startswith(prefix) and second.startswith(prefix)
    assert prefix.endswith(f"-py{sys.version_info[0]}.{sys.version_info[1]}-")
    assert resolve_kit.cache_key("x.whl", tmp_path, "x.whl")[0] != first


def test_main_writes_the_step_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = tmp_path / "outputs"
    outputs.write_text("earlier=1\n")
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    monkeypatch.setenv("RUNNER_OS", "Linux")
    assert resolve_kit.main(["--action-path", str(ACTION_DIR)]) == 0
    lines = outputs.read_text().splitlines()
    assert lines[0] == "earlier=1"
    assert lines[1] == f"requirement={ROOT}"
    assert lines[2].startswith("cache-key=rep-conformance-pip-Linux-py3.")
    assert capsys.readouterr().out.splitlines() == lines[1:]
    assert resolve_kit.main(["--action-path", str(ACTION_DIR), "--kit=rep-kit"]) == 4
    assert capsys.readouterr().out.startswith("::error title=rep-conformance::kit: 'rep-kit'")
    assert len(outputs.read_text().splitlines()) == 4
