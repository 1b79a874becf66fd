"""``rep-conformance init``: a target file from a server's welcome, that the kit accepts.

The server is the reference server in a thread of this process (``running_server``); init
runs in-process through ``main([...])``, and the file it wrote is checked the way a user
would use it: loaded with ``load_target`` and run with ``rep-conformance run --target``.
"""

from __future__ import annotations

import argparse
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.cli import main
from conformance.init import PLACEHOLDER_COMMAND, SECRET_VARIABLE, render_target, validate
from conformance.profile import ServerProfile
from conformance.reference import free_port
from conformance.target import CommandTokens, JwtTokens, load_target, target_schema
from reference_server.config import parse_config
from reference_server.testing import RunningServer, running_server

pytestmark = pytest.mark.network

PING = "test_ping_is_answered_by_a_correlated_pong"


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with running_server(parse_config({"heartbeat_interval_ms": 30000})) as found:
        yield found


def init(*args: str) -> int:
    try:
        return main(["init", *args])
    except SystemExit as exc:  # argparse's usage errors
        return int(exc.code or 0)


def welcome_features(server: RunningServer, tmp_path: Path) -> list[str]:
    output = tmp_path / "probe.yaml"
    assert init("--url", server.ws_url, "--secret", server.secret, "-o", str(output)) == 0
    features: list[str] = yaml.safe_load(output.read_text())["features"]
    return features


def run_check(target: Path, reports: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "conformance.cli", "run", "--target", str(target)),
            *("--report-dir", str(reports), "--check", PING),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_a_secret_is_named_by_variable_and_the_file_runs(
    server: RunningServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SECRET_VARIABLE, raising=False)
    output = tmp_path / "target.yaml"
    assert init("--url", server.ws_url, "--secret", server.secret, "--output", str(output)) == 0
    said = capsys.readouterr().out
    assert f"export {SECRET_VARIABLE}=" in said and server.secret not in said
    text = output.read_text()
    assert server.secret not in text
    raw = yaml.safe_load(text)
    assert raw["tokens"] == {"jwt": {"secret_env": SECRET_VARIABLE, "algorithm": "HS256"}}
    assert raw["ws_url"] == server.ws_url and raw["http_url"] == server.http_url
    assert raw["sse_url"] == server.sse_url  # the reference welcome advertises sse

    monkeypatch.setenv(SECRET_VARIABLE, server.secret)
    target = load_target(output)
    assert isinstance(target.tokens, JwtTokens) and target.tokens.secret == server.secret
    assert target.claimed_features is not None and {"core", "rooms"} <= target.claimed_features

    done = run_check(output, tmp_path / "reports", {**os.environ, SECRET_VARIABLE: server.secret})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr


def test_the_file_shows_limits_fixtures_and_the_schemas_defaults(
    server: RunningServer, tmp_path: Path
) -> None:
    output = tmp_path / "target.yaml"
    assert init("--url", server.ws_url, "--secret", server.secret, "-o", str(output)) == 0
    text = output.read_text()
    schema = target_schema()["properties"]
    for name in schema["fixtures"]["properties"]:
        assert re.search(rf"^#   {name}: .+# \w", text, re.M), f"fixtures.{name} is not shown"
    for section in ("timeouts", "budgets"):
        assert f"# {section}:" in text
        for name, spec in schema[section]["properties"].items():
            assert f"#   {name}: {spec['default']}" in text, f"{section}.{name}"
    assert "heartbeatIntervalMs: 30000" in text
    assert "budgets.max_heartbeat_wait" in text  # 30 s is over the default budget
    assert "limits.maxMessageBytes:" in text and "limits.rateLimit:" in text
    for commented in ("fixtures", "timeouts", "budgets", "nodes", "baseline"):
        assert commented not in yaml.safe_load(text)


def test_secret_inline_and_secret_env(
    server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inline = tmp_path / "inline.yaml"
    assert (
        init(
            "--url", server.ws_url, "--secret", server.secret, "--secret-inline", "-o", str(inline)
        )
        == 0
    )
    assert load_target(inline).tokens == JwtTokens(server.secret, "HS256", ("HS256",))
    assert stat.S_IMODE(inline.stat().st_mode) == 0o600

    monkeypatch.setenv("MY_SECRET", server.secret)
    named = tmp_path / "named.yaml"
    assert init("--url", server.ws_url, "--secret-env", "MY_SECRET", "-o", str(named)) == 0
    assert yaml.safe_load(named.read_text())["tokens"]["jwt"]["secret_env"] == "MY_SECRET"
    assert server.secret not in named.read_text()

    monkeypatch.delenv("MY_SECRET")
    assert (
        init(
            "--url", server.ws_url, "--secret-env", "MY_SECRET", "-o", str(tmp_path / "unset.yaml")
        )
        == 4
    )


def test_a_single_token_gets_a_placeholder_command(
    server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from conformance.tokens import hmac_token, standard_claims

    token = hmac_token(standard_claims("alice", ["user"], [], 600), server.secret, "HS256")
    output = tmp_path / "target.yaml"
    assert init("--url", server.ws_url, "--token", token, "-o", str(output)) == 0
    assert "placeholder tokens.command" in capsys.readouterr().out
    text = output.read_text()
    assert token not in text and "{ttl}" in text
    assert load_target(output).tokens == CommandTokens(PLACEHOLDER_COMMAND)
    # Until it is replaced, a run stops on it and says which command is missing (exit 4).
    done = run_check(output, tmp_path / "reports", dict(os.environ))
    assert done.returncode == 4, done.stdout[-2000:]
    assert "replace-with-a-command-that-prints-a-token" in done.stdout


def test_an_existing_file_is_kept_without_force(server: RunningServer, tmp_path: Path) -> None:
    output = tmp_path / "target.yaml"
    output.write_text("mine\n")
    assert init("--url", server.ws_url, "--secret", server.secret, "-o", str(output)) == 4
    assert output.read_text() == "mine\n"
    assert (
        init("--url", server.ws_url, "--secret", server.secret, "-o", str(output), "--force") == 0
    )
    assert yaml.safe_load(output.read_text())["ws_url"] == server.ws_url


def kit_lines(err: str) -> list[str]:
    """The kit's own lines on stderr; the in-process server under test logs there too."""
    return [line for line in err.splitlines() if line.startswith("rep-conformance")]


def test_an_unreachable_server_or_a_refused_token_exits_3_with_one_line(
    server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "target.yaml"
    closed = f"ws://127.0.0.1:{free_port()}/ws"
    assert init("--url", closed, "--secret", "x" * 32, "-o", str(output)) == 3
    err = kit_lines(capsys.readouterr().err)
    assert len(err) == 1 and closed in err[0]
    assert init("--url", server.ws_url, "--secret", "not-" + server.secret, "-o", str(output)) == 3
    err = kit_lines(capsys.readouterr().err)
    assert len(err) == 1 and "refused the token" in err[0] and "HTTP 401" in err[0]
    assert init("--url", server.ws_url, "--token", "not-a-token", "-o", str(output)) == 3
    assert "refused the token" in capsys.readouterr().err
    assert not output.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--url", "http://127.0.0.1:1", "--secret", "s"],  # not a WebSocket URL
        ["--url", "ws://127.0.0.1:1/ws", "--secret-env", "V", "--secret-inline"],
        ["--url", "ws://127.0.0.1:1/ws", "--token", "t", "--algorithm", "HS512"],
        ["--url", "ws://127.0.0.1:1/ws"],  # no credentials
        ["--url", "ws://127.0.0.1:1/ws", "--secret", "s", "--token", "t"],
        ["--url", "ws://127.0.0.1:1/ws", "--secret", "s", "--algorithm", "RS256"],
    ],
)
def test_usage_errors_exit_4(args: list[str], tmp_path: Path) -> None:
    assert init(*args, "-o", str(tmp_path / "t.yaml")) == 4
    assert not (tmp_path / "t.yaml").exists()


def namespace(**extra: Any) -> argparse.Namespace:
    found: dict[str, Any] = {
        "url": "ws://example.test:9000/ws",
        "token": None,
        "secret": None,
        "secret_env": "V",
        "secret_inline": False,
        "algorithm": None,
        "name": None,
        "output": Path("target.yaml"),
        "force": False,
    }
    return argparse.Namespace(**{**found, **extra})


@pytest.mark.parametrize("features", [None, [], "core", [1, 2]])
def test_a_welcome_without_features_gets_a_note(features: Any) -> None:
    payload: dict[str, Any] = {"status": "connected", "protocolVersion": "1.0"}
    if features is not None:
        payload["features"] = features
    text = render_target(namespace(), ServerProfile({"type": "auth", "payload": payload}))
    validate(text)
    assert "features" not in yaml.safe_load(text)
    assert "# features: [" in text and "checks every feature" in text
    assert "heartbeatIntervalMs: not advertised" in text
    assert "# sse_url:" in text  # not advertised: commented out


def test_names_that_yaml_would_misread_are_quoted() -> None:
    profile = ServerProfile({"type": "auth", "payload": {"features": ["core", "yes", "1.0"]}})
    text = render_target(namespace(name="no"), profile)
    raw = yaml.safe_load(text)
    assert raw["name"] == "no" and raw["features"] == ["core", "yes", "1.0"]
