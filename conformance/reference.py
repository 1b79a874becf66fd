"""Run the bundled reference server as a subprocess and describe it as a target.

The kit never imports the server: it starts ``python -m reference_server serve`` with a
generated configuration (short heartbeat, the fixture rooms and a stream) and a random
secret, waits for ``GET /health``, and writes the target file for it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HEARTBEAT_INTERVAL_MS = 1000
RATE_WINDOW_MS = 2000
RATE_MAX_MESSAGES = 60
ALLOWED_ORIGIN = "https://app.example.test"


class ReferenceServerError(RuntimeError):
    """The reference server could not be started (the message carries its log)."""


@dataclass(frozen=True)
class ReferenceServer:
    port: int
    secret: str
    workdir: Path
    log_path: Path
    fixtures: dict[str, Any]

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def target(self, others: Sequence[ReferenceServer] = ()) -> dict[str, Any]:
        """The target file content for this server (and other nodes of its cluster)."""
        found: dict[str, Any] = {
            "name": "rep-server (reference)" + (f", {1 + len(others)} nodes" if others else ""),
            "ws_url": self.ws_url,
            "http_url": self.http_url,
            "sse_url": f"{self.http_url}/events",
            "tokens": {"jwt": {"secret": self.secret, "algorithm": "HS256"}},
            "fixtures": self.fixtures,
            "timeouts": {"answer": 2.0, "silence": 0.25},
        }
        if others:
            found["nodes"] = [
                {"ws_url": o.ws_url, "http_url": o.http_url, "sse_url": f"{o.http_url}/events"}
                for o in others
            ]
        return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fixtures(run_id: str) -> dict[str, Any]:
    return {
        "private_room": "conf-private",
        "password_room": {"id": "conf-password", "password": f"pw-{run_id}"},
        "moderated_room": "conf-moderated",
        "invite_only_room": {"id": "conf-invite", "invited_user": f"invitee-{run_id}"},
        "stream": "conf-stream",
        "allowed_origin": ALLOWED_ORIGIN,
    }


def server_config(found: dict[str, Any]) -> dict[str, Any]:
    """The reference server's YAML configuration that provides the fixtures."""
    return {
        "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS,
        "rate_limit": {"window_ms": RATE_WINDOW_MS, "max_messages": RATE_MAX_MESSAGES},
        "allowed_origins": [found["allowed_origin"]],
        "rooms": [
            {"id": found["private_room"], "private": True},
            {"id": found["password_room"]["id"], "password": found["password_room"]["password"]},
            {"id": found["moderated_room"], "moderated": True},
            {
                "id": found["invite_only_room"]["id"],
                "invite_only": True,
                "invited": [found["invite_only_room"]["invited_user"]],
            },
        ],
        "streams": [{"id": found["stream"], "buffer_size": 100, "retention_ms": 3_600_000}],
    }


def healthy(port: int) -> bool:
    """Whether a server on this loopback port answers GET /health with 200."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def reference_server(
    workdir: Path,
    startup_timeout: float = 20.0,
    *,
    broker: str | None = None,
    secret: str | None = None,
    found: dict[str, Any] | None = None,
    name: str = "reference-server",
) -> Iterator[ReferenceServer]:
    """Start the reference server on a free loopback port; stop it on exit.

    With ``broker`` (a Redis URL) the server runs as one node of a cluster; nodes that
    share the broker must also share ``secret`` and ``found`` (the fixtures).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    found = found or fixtures(secrets.token_hex(3))
    config_path = workdir / f"{name}.yaml"
    config_path.write_text(yaml.safe_dump(server_config(found), sort_keys=False), encoding="utf-8")
    log_path = workdir / f"{name}.log"
    secret = secret or secrets.token_hex(32)
    port = free_port()
    env = {**os.environ, "REP_JWT_SECRET": secret}
    command = [
        sys.executable,
        "-m",
        "reference_server",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--config",
        str(config_path),
        *(["--broker", broker] if broker else []),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + startup_timeout
            while not healthy(port):
                if process.poll() is not None:
                    raise ReferenceServerError(
                        f"the reference server exited with {process.returncode}:\n{_tail(log_path)}"
                    )
                if time.monotonic() > deadline:
                    raise ReferenceServerError(
                        f"the reference server was not healthy after {startup_timeout:g} s:\n"
                        f"{_tail(log_path)}"
                    )
                time.sleep(0.1)
            yield ReferenceServer(port, secret, workdir, log_path, found)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@contextlib.contextmanager
def reference_cluster(
    workdir: Path, broker: str, nodes: int = 2
) -> Iterator[list[ReferenceServer]]:
    """Several reference nodes sharing one Redis broker, secret and configuration."""
    found = fixtures(secrets.token_hex(3))
    secret = secrets.token_hex(32)
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(
                reference_server(
                    workdir, broker=broker, secret=secret, found=found, name=f"node-{index + 1}"
                )
            )
            for index in range(nodes)
        ]
