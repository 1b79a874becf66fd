"""rep-server nodes as subprocesses: the command line the deployment guide shows.

Each node is ``python -m reference_server serve --broker redis://...`` on a free loopback
port, with the cluster's one secret in ``REP_JWT_SECRET`` and the same configuration
file. A node can be stopped (SIGTERM) or killed (SIGKILL, a crash: no goodbye to its
clients, nothing cleaned up in Redis).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conformance.reference import healthy
from tests.reference_server.redis_fixture import HOST, free_port, stop_process

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


class NodeProcess:
    """One ``rep-server serve`` process; its log goes to ``<workdir>/<name>.log``."""

    def __init__(self, name: str, workdir: Path, config: Path, broker: str, secret: str) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = workdir / f"{name}.log"
        self.command = [
            sys.executable,
            "-m",
            "reference_server",
            "serve",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--config",
            str(config),
            "--broker",
            broker,
        ]
        self.env = {"REP_JWT_SECRET": secret}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.address}"

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not healthy(self.port):
            if self._process.poll() is not None:
                status = self._process.returncode
                raise RuntimeError(f"{self.name} exited with {status}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                waited = f"{START_TIMEOUT_S:g} s"
                raise RuntimeError(f"{self.name} not healthy after {waited}:\n{self.log()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: the node dies as in a crash; the kernel closes its sockets."""
        assert self._process is not None, f"{self.name} is not running"
        self._process.send_signal(signal.SIGKILL)
        self._process.wait(STOP_TIMEOUT_S)
        self._process = None

    def stop(self) -> None:
        process, self._process = self._process, None
        stop_process(process, STOP_TIMEOUT_S)

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
        except OSError:
            return "(no log)"
