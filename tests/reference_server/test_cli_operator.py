"""rep-server as an operator first meets it: --version, help, start-up refusals, exit codes.

Every refusal is one line on standard error, ``rep-server: ...``, before anything listens.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jwt
import pytest

from reference_server.auth import WeakSecret, check_secret_length
from reference_server.cli import DEV_SECRET, EXIT_BROKER, EXIT_LISTEN, EXIT_USAGE, main
from reference_server.transport import loops
from rep_spec import catalog

GOOD_SECRET = "g" * 43  # as long as secrets.token_urlsafe(32)


def rep_server(
    *args: str, secret: str | None = GOOD_SECRET, timeout: float = 20
) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k != "REP_JWT_SECRET"}
    if secret is not None:
        env["REP_JWT_SECRET"] = secret
    done = subprocess.run(
        [sys.executable, "-m", "reference_server", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.returncode, done.stderr


# --- version and help ----------------------------------------------------------------------


def test_version_is_the_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"rep-server {importlib.metadata.version('rep-kit')}"


def test_version_without_metadata_is_the_source_trees(monkeypatch: pytest.MonkeyPatch) -> None:
    import conformance
    from reference_server import cli

    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert cli.version() == conformance.__version__


def help_of(*command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # unwrap argparse's line breaks


def test_serve_help_shows_defaults_and_explains_the_secret(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = help_of("serve", capsys=capsys)
    for option, default in (("--host", "127.0.0.1"), ("--port", "8765"), ("--log-level", "INFO")):
        assert re.search(rf"{option} \S+ .*?\(default: {re.escape(default)}\)", text), option
    assert "REP_JWT_SECRET the shared secret that signs and verifies tokens" in text
    assert "HS256 32 bytes" in text
    assert "--dev uses a fixed, published development secret" in text
    assert "never in production" in text


def test_main_help_has_examples_and_the_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_of(capsys=capsys)
    assert "examples: rep-server serve --config rooms.yaml" in text
    assert "rep-server token --user alice --role admin" in text
    assert f"{EXIT_USAGE} usage or configuration error" in text
    assert f"{EXIT_BROKER} cannot reach the broker" in text
    assert f"{EXIT_LISTEN} cannot listen on HOST:PORT" in text
    assert len({EXIT_USAGE, EXIT_BROKER, EXIT_LISTEN}) == 3


def test_token_help_lists_the_roles(capsys: pytest.CaptureFixture[str]) -> None:
    assert ", ".join(catalog().roles) in help_of("token", capsys=capsys)


@pytest.mark.parametrize(
    "argv",
    [["serve", "--port", "70000"], ["serve", "--port", "http"], ["--log-level", "LOUD"]],
    ids=["port out of range", "port not a number", "unknown log level"],
)
def test_bad_options_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == EXIT_USAGE


# --- the secret (RFC 7518 section 3.2) ---------------------------------------------------------


def test_secret_length_is_checked_per_hmac_algorithm() -> None:
    check_secret_length("k" * 32, ["HS256"])
    check_secret_length("k" * 64, ["HS256", "HS512"])
    check_secret_length("é" * 16, ["HS256"])  # bytes, not characters
    for secret, algorithms in (
        ("k" * 31, ["HS256"]),
        ("k" * 47, ["HS384"]),
        ("k" * 63, ["HS256", "HS512"]),
    ):
        with pytest.raises(WeakSecret, match=r"needs at least \d+ \(RFC 7518 section 3\.2\)"):
            check_secret_length(secret, algorithms)


def test_a_short_secret_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REP_JWT_SECRET", "changeme")
    assert main(["serve", "--port", "0"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(
        "rep-server: REP_JWT_SECRET: the secret is 8 bytes; HS256 needs at least 32"
    )
    assert err.count("\n") == 1


def test_the_secret_must_fit_the_strongest_configured_algorithm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "rooms.yaml"
    config.write_text("jwt_algorithms: [HS256, HS512]\n", encoding="utf-8")
    monkeypatch.setenv("REP_JWT_SECRET", GOOD_SECRET)
    assert main(["serve", "--port", "0", "--config", str(config)]) == EXIT_USAGE
    assert "HS512 needs at least 64" in capsys.readouterr().err


def test_token_refuses_a_short_secret_except_with_dev(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REP_JWT_SECRET", "changeme")
    assert main(["token", "--user", "alice"]) == EXIT_USAGE
    assert "REP_JWT_SECRET: the secret is 8 bytes" in capsys.readouterr().err
    assert main(["token", "--dev", "--user", "alice"]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("rep-server: warning: REP_JWT_SECRET: the secret is 8 bytes")
    assert captured.err.count("\n") == 1  # PyJWT's own warning is not repeated
    token = captured.out.strip()
    assert jwt.decode(token, "changeme", algorithms=["HS256"])["sub"] == "alice"


def test_dev_without_a_secret_uses_the_development_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REP_JWT_SECRET", raising=False)
    assert main(["token", "--dev", "--user", "alice"]) == 0
    jwt.decode(capsys.readouterr().out.strip(), DEV_SECRET, algorithms=["HS256"])


# --- roles ---------------------------------------------------------------------------------


def test_an_unknown_role_is_refused_with_the_known_ones(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REP_JWT_SECRET", GOOD_SECRET)
    with pytest.raises(SystemExit) as done:
        main(["token", "--user", "alice", "--role", "admin", "--role", "superuser"])
    assert done.value.code == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"unknown role 'superuser'; known roles: {', '.join(catalog().roles)}" in captured.err


def test_an_unknown_permission_is_refused_and_a_known_one_signed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REP_JWT_SECRET", GOOD_SECRET)
    known = next(iter(catalog().permissions))
    with pytest.raises(SystemExit) as done:
        main(["token", "--user", "alice", "--permission", known, "--permission", "room:joni"])
    assert done.value.code == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "unknown permission 'room:joni'; known permissions: " in captured.err
    assert main(["token", "--user", "alice", "--permission", known]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), GOOD_SECRET, algorithms=["HS256"])
    assert known in claims["permissions"]


@pytest.mark.parametrize(
    ("roles", "claimed"),
    [([], ["user"]), (["moderator", "admin"], ["moderator", "admin"]), ([""], [])],
    ids=["default", "several", "empty role grants none"],
)
def test_known_roles_are_signed(
    roles: list[str],
    claimed: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REP_JWT_SECRET", GOOD_SECRET)
    argv = ["token", "--user", "alice"]
    for role in roles:
        argv += ["--role", role]
    assert main(argv) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), GOOD_SECRET, algorithms=["HS256"])
    assert claims["roles"] == claimed


# --- the configuration file ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "rooms:\n  - id: a\n  - id: b\n  - id: bad id!\n",
            "rooms[2].id: 'bad id!' does not match",
        ),
        ("rooms:\n  - id: staff\n    private: maybe\n", "rooms[0].private: 'maybe' is not of type"),
        ("streams:\n  - id: prices\n    retention: 5\n", "streams[0].retention: unknown key"),
    ],
    ids=["room id", "boolean", "unknown key"],
)
def test_an_invalid_configuration_is_one_line_naming_the_key(
    yaml_text: str,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "rooms.yaml"
    config.write_text(yaml_text, encoding="utf-8")
    monkeypatch.setenv("REP_JWT_SECRET", GOOD_SECRET)
    assert main(["serve", "--port", "0", "--config", str(config)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err == f"rep-server: {config}: {message}" + err.split(message, 1)[1]
    assert err.count("\n") == 1


# --- listening -----------------------------------------------------------------------------


@pytest.mark.network
def test_a_busy_port_is_one_line_and_exit_4() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        status, err = rep_server("serve", "--port", str(port), timeout=10)
    assert status == EXIT_LISTEN
    assert err.startswith(f"rep-server: cannot listen on 127.0.0.1:{port}: ")
    assert err.count("\n") == 1, err  # no traceback, no "listening" before it


@pytest.mark.network
def test_an_unknown_host_is_one_line_and_exit_4() -> None:
    status, err = rep_server("serve", "--host", "no-such-host.invalid", timeout=10)
    assert status == EXIT_LISTEN
    assert err.startswith("rep-server: cannot listen on no-such-host.invalid:8765: ")
    assert err.count("\n") == 1, err


@pytest.mark.network
@pytest.mark.parametrize("loop", ["auto", "asyncio", "uvloop"])
def test_listening_is_logged_once_bound_with_the_real_port(loop: str) -> None:
    env = {**os.environ, "REP_JWT_SECRET": GOOD_SECRET}
    process = subprocess.Popen(
        [sys.executable, "-m", "reference_server", "serve", "--port", "0", "--loop", loop],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 10
        found = None
        while found is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            assert line, "the server exited before listening"
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+) ", line)
        assert found is not None, "no listening line"
        # auto is uvloop, a dependency wherever it installs (the tests' machines included)
        assert f"{'uvloop' if loop == 'auto' else loop} loop" in line, line
        port = int(found.group(1))
        assert port != 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
            assert answer.status == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=5)


def test_an_event_loop_that_is_not_installed_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loops, "uvloop_installed", lambda: False)
    assert loops.loop_factory("auto")[0] == "asyncio", "auto falls back to asyncio's loop"
    with pytest.raises(loops.LoopUnavailable, match="uvloop is not installed"):
        loops.loop_factory("uvloop")
    monkeypatch.setenv("REP_JWT_SECRET", GOOD_SECRET)
    assert main(["serve", "--loop", "uvloop", "--port", "0"]) == EXIT_USAGE
