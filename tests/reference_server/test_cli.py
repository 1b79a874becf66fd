"""rep-server as a user runs it: token minting, start-up errors, logs, graceful stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jwt
import orjson
import pytest
import websockets.sync.client

from reference_server.cli import DEV_SECRET, main

pytestmark = pytest.mark.network


def test_token_command_mints_a_verifiable_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--dev", "--user", "alice", "--role", "admin", "--ttl", "60"]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), DEV_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["roles"] == ["admin"]
    assert 0 < claims["exp"] - time.time() <= 60


def test_serving_without_a_secret_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REP_JWT_SECRET", raising=False)
    assert main(["serve", "--port", "0"]) == 2
    assert "REP_JWT_SECRET" in capsys.readouterr().err


def test_bad_configuration_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REP_JWT_SECRET", "s" * 32)
    config = tmp_path / "rooms.yaml"
    config.write_text("heartbeat_interval_ms: -1\n")
    assert main(["serve", "--config", str(config)]) == 2
    assert "heartbeat_interval_ms" in capsys.readouterr().err
    config.write_text("jwt_algorithms: [none]\n")
    assert main(["serve", "--config", str(config)]) == 2
    config.write_text("surprise: 1\n")
    assert main(["serve", "--config", str(config)]) == 2


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_server_process_serves_logs_without_tokens_and_stops_gracefully(tmp_path: Path) -> None:
    port = _free_port()
    secret = "cli-test-secret-" + "x" * 32
    config = tmp_path / "rooms.yaml"
    config.write_text("rooms:\n  - id: staff\n    private: true\n")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reference_server",
            "serve",
            "--port",
            str(port),
            "--config",
            str(config),
        ],
        env={**os.environ, "REP_JWT_SECRET": secret},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "server did not start"
                assert process.poll() is None, "server exited"
                time.sleep(0.1)
        token = jwt.encode({"sub": "alice", "roles": ["user"]}, secret, algorithm="HS256")
        with websockets.sync.client.connect(f"ws://127.0.0.1:{port}/ws?token={token}") as ws:
            welcome = orjson.loads(ws.recv(timeout=5))
            assert welcome["type"] == "auth"
            process.send_signal(signal.SIGINT)
            goodbye = orjson.loads(ws.recv(timeout=5))
            assert goodbye["type"] == "disconnect"
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
        logs = process.communicate(timeout=5)[1]
    lines = [orjson.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert any("listening" in line["message"] for line in lines)
    assert any(line["message"].startswith("GET /ws") for line in lines)
    assert token not in logs
    assert token.split(".")[1] not in logs


def test_the_readme_example_configuration_loads() -> None:
    from reference_server.config import load_config

    config = load_config(Path(__file__).resolve().parents[2] / "examples" / "rooms.yaml")
    assert {room.id for room in config.rooms} == {"staff", "vault", "announcements", "board"}
    assert config.stream("announcements") is not None


def test_unreachable_broker_fails_the_start_with_exit_code_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REP_JWT_SECRET", "s" * 32)
    port = _free_port()  # nothing listens there
    code = main(["serve", "--port", str(_free_port()), "--broker", f"redis://127.0.0.1:{port}/0"])
    assert code == 3
    assert "broker unavailable" in capsys.readouterr().err


def test_unknown_broker_scheme_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REP_JWT_SECRET", "s" * 32)
    assert main(["serve", "--broker", "amqp://localhost"]) == 2
    assert "redis://" in capsys.readouterr().err
