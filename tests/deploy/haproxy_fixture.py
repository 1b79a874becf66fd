"""HAProxy as a subprocess, run from deploy/haproxy/haproxy.cfg with its addresses rendered.

The configuration reads every address from the environment (``"${REP_NODE1}"``...), so the
test runs the very file the deployment guide documents. The admin socket is on a free
loopback TCP port; :class:`Balancer` reads server states from it, which is how the tests
learn where HAProxy sent a connection and when it marked a node down. Tests that need
HAProxy skip when it is not installed, unless ``REP_REQUIRE_ALL=1`` (as CI sets): then they
fail, so a missing HAProxy is never mistaken for a pass.
"""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.reference_server.redis_fixture import stop_process

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
BACKEND = "rep_nodes"
SERVERS = ("node1", "node2")
HOST = "127.0.0.1"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
POLL_S = 0.05


def haproxy_executable() -> str:
    """The path of haproxy, or skip (fail under REP_REQUIRE_ALL=1) with the reason."""
    import pytest

    path = shutil.which("haproxy")
    if path is None:
        reason = "haproxy is not on PATH (Debian: apt-get install haproxy)"
        if os.environ.get("REP_REQUIRE_ALL") == "1":
            pytest.fail(f"REP_REQUIRE_ALL=1 but {reason}")
        pytest.skip(reason)
    return path


def config_environment(bind: str, nodes: tuple[str, str], stats: str) -> dict[str, str]:
    """The variables deploy/haproxy/haproxy.cfg reads, for an unprivileged run."""
    return {
        "REP_HAPROXY_BIND": bind,
        "REP_NODE1": nodes[0],
        "REP_NODE2": nodes[1],
        "REP_HAPROXY_STATS": stats,
        "REP_HAPROXY_LOG": "stdout",
        "REP_HAPROXY_MAXCONN": "1000",  # within an ordinary user's file descriptor limit
        "REP_HAPROXY_UNPRIVILEGED": "1",
    }


@dataclass(frozen=True)
class ServerState:
    """One row of ``show stat`` for a server of the backend."""

    status: str  # UP, DOWN, "UP 1/2" (going down), "DOWN 1/2" (going up), MAINT...
    check: str  # the last check's result: L7OK, L4CON (connection refused), ...
    current: int  # sessions open now (scur)
    total: int  # sessions since start (stot)


class Balancer:
    """``haproxy -f deploy/haproxy/haproxy.cfg -db`` on a free port, and its admin socket."""

    def __init__(
        self, executable: str, workdir: Path, port: int, stats_port: int, nodes: tuple[str, str]
    ) -> None:
        self.executable = executable
        self.port = port
        self.stats_port = stats_port
        self.env = config_environment(f"{HOST}:{port}", nodes, f"ipv4@{HOST}:{stats_port}")
        self.log_path = workdir / "haproxy.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}/ws"

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [self.executable, "-f", str(CONFIG), "-db"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
            )
        try:
            self.wait_until(lambda states: all(s.check == "L7OK" for s in states.values()))
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        process, self._process = self._process, None
        stop_process(process, STOP_TIMEOUT_S)

    def log(self, tail: int = 4000) -> str:
        """The end of haproxy's output: its messages, and one access-log line per session."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-tail:]
        except OSError:
            return "(no log)"

    def command(self, line: str) -> str:
        """One admin-socket command; HAProxy answers and closes (non-interactive mode)."""
        with socket.create_connection((HOST, self.stats_port), timeout=2.0) as conn:
            conn.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def states(self) -> dict[str, ServerState]:
        """The backend's servers as ``show stat`` reports them now."""
        text = self.command("show stat").removeprefix("# ")
        rows = csv.DictReader(text.splitlines())
        return {
            row["svname"]: ServerState(
                row["status"], row["check_status"], int(row["scur"]), int(row["stot"])
            )
            for row in rows
            if row["pxname"] == BACKEND and row["svname"] in SERVERS
        }

    def wait_until(
        self,
        condition: Callable[[Mapping[str, ServerState]], bool],
        timeout: float = START_TIMEOUT_S,
    ) -> dict[str, ServerState]:
        """Poll the admin socket until ``condition(states)``; fail with the log if it never is."""
        deadline = time.monotonic() + timeout
        last: dict[str, ServerState] = {}
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self._process.returncode}:\n{self.log()}")
            try:
                last = self.states()
            except OSError:  # the admin socket is not listening yet
                last = {}
            if len(last) == len(SERVERS) and condition(last):
                return last
            if time.monotonic() > deadline:
                raise TimeoutError(f"haproxy states after {timeout:g} s: {last}\n{self.log()}")
            time.sleep(POLL_S)
