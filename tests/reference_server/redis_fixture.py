"""A throwaway redis-server on a free loopback port, for tests of the Redis broker.

Tests that need Redis skip when ``redis-server`` is not installed, unless the environment
sets ``REP_REQUIRE_ALL=1`` (as CI does): then they fail, so a missing Redis is never
mistaken for a pass. Test modules take the fixtures by assignment:
``redis_server = redis_fixture.redis_server``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def answers_ping(port: int, timeout: float = 0.5) -> bool:
    """A raw RESP PING, so the fixture does not depend on the client under test."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def redis_executable() -> str:
    """The path of redis-server, or skip (fail under REP_REQUIRE_ALL=1) with the reason."""
    path = shutil.which("redis-server")
    if path is None:
        reason = "redis-server is not on PATH (Debian: apt-get install redis-server)"
        if os.environ.get("REP_REQUIRE_ALL") == "1":
            pytest.fail(f"REP_REQUIRE_ALL=1 but {reason}")
        pytest.skip(reason)
    return path


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within ``timeout``."""
    if process is None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


class RedisProcess:
    """One redis-server without persistence; stop() and start() keep its port."""

    def __init__(self, executable: str, workdir: Path) -> None:
        self.executable = executable
        self.workdir = workdir
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--logfile",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not answers_ping(self.port):
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer PING on port {self.port}")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: Redis dies as in a crash, and comes back empty (no persistence)."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait(STOP_TIMEOUT_S)

    def stop(self) -> None:
        process, self._process = self._process, None
        stop_process(process)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """One Redis for the session; tests keep apart by using their own key namespace."""
    server = RedisProcess(redis_executable(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    """A Redis for one test alone, which it may stop and restart (fault tests)."""
    server = RedisProcess(redis_executable(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
