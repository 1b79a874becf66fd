"""Processes of a benchmark: servers under test, client workers, and what /proc says of them.

Servers and load generators run in separate processes so that, on a two-core machine,
each gets a core and the figures measure the server rather than the client's share of
one interpreter.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOST = "127.0.0.1"
SECRET_ENV = "REP_JWT_SECRET"

#: The reference server's settings for benchmarks: the rate limit would otherwise refuse
#: a load generator after 100 messages, and idle clients must outlive a long run.
REFERENCE_CONFIG: dict[str, Any] = {
    "rate_limit": {"window_ms": 1000, "max_messages": 1_000_000_000},
    "heartbeat_interval_ms": 600_000,
    "streams": [{"id": "bench", "buffer_size": 100}],
}


class BenchError(RuntimeError):
    """A server or worker failed to start or answer; the message carries its log tail."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def raise_nofile_limit() -> int:
    """Raise the soft open-files limit to the hard one; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def pin(pid: int, role: str) -> None:
    """Servers on the first CPU, clients on the others.

    A ping-pong workload otherwise invites the scheduler to wake both ends on one core
    (wake-affine), which halves both and makes run-to-run figures swing by 2x.
    """
    cpus = _cpus()
    if len(cpus) < 2:
        return
    chosen = {cpus[0]} if role == "server" else set(cpus[1:])
    with contextlib.suppress(OSError):
        os.sched_setaffinity(pid, chosen)


def cpu_seconds(pid: int) -> float:
    """CPU time of a process: nanosecond run time of its threads from /proc/<pid>/task/*/
    schedstat, or, where the kernel has no schedstat, user + system clock ticks from stat
    (10 ms steps, too coarse for the short windows of the tiny profile)."""
    if Path(f"/proc/{pid}/schedstat").exists():
        total = 0
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                total += int((task / "schedstat").read_text().split()[0])
        return total / 1e9
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise BenchError(f"no VmRSS for pid {pid}")


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class ServerProcess:
    """A server under test, started with ``argv``, ready once ``ready_path`` answers 200."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        *,
        env: dict[str, str] | None = None,
        ready_path: str | None = "/health",
        workdir: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.ready_path = ready_path
        self._env = child_env(env)
        self._workdir = workdir or Path(tempfile.mkdtemp(prefix="rep-bench-"))
        self.log_path = self._workdir / f"{name.replace(' ', '-')}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "server not started"
        return self._process.pid

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}/ws"

    def start(self, timeout: float = 20.0) -> ServerProcess:
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        pin(self._process.pid, "server")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BenchError(f"{self.name} exited at start:\n{_tail(self.log_path)}")
            if self._ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise BenchError(f"{self.name} not ready within {timeout} s:\n{_tail(self.log_path)}")

    def _ready(self) -> bool:
        if self.ready_path is None:
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 0.2):
                return True
            return False
        try:
            with urllib.request.urlopen(self.http_url + self.ready_path, timeout=0.5) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(grace)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)

    def kill(self) -> None:
        """End at once, when a graceful stop would only measure the shutdown."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(5)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def reference_server(
    secret: str,
    workdir: Path,
    *,
    config: dict[str, Any] | None = None,
    name: str = "reference",
    extra_args: Sequence[str] = (),
    loop: str = "auto",
) -> ServerProcess:
    """``python -m reference_server serve`` on a free port, as an operator would start it
    (``loop``: its --loop; auto is uvloop when installed, as for an operator)."""
    config_path = workdir / f"{name}.yaml"
    config_path.write_text(yaml.safe_dump(config or REFERENCE_CONFIG), encoding="utf-8")
    port = free_port()
    argv = [
        PYTHON,
        "-m",
        "reference_server",
        "serve",
        "--loop",
        loop,
        "--host",
        HOST,
        "--port",
        str(port),
        "--config",
        str(config_path),
        "--log-level",
        "WARNING",
        *extra_args,
    ]
    return ServerProcess(name, argv, port, env={SECRET_ENV: secret}, workdir=workdir)


def redis_server(workdir: Path) -> ServerProcess | None:
    """A throw-away redis-server on a free loopback port, or None when none is installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = free_port()
    argv = [binary, "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no"]
    return ServerProcess("redis", argv, port, ready_path=None, workdir=workdir)


def baseline_server(kind: str, workdir: Path) -> ServerProcess:
    """One of ``bench.baselines``: echo, broadcast, sse or picows-echo."""
    port = free_port()
    argv = [PYTHON, "-m", "bench.baselines", kind, "--host", HOST, "--port", str(port)]
    ready = None if kind == "picows-echo" else "/health"
    return ServerProcess(kind, argv, port, ready_path=ready, workdir=workdir)


class Worker:
    """A load generator in its own process, driven by JSON lines on stdin and stdout.

    The worker does its setup (connect, authenticate, join) once, answers ``ready``, then
    runs one measurement window per ``run`` command, so windows of different targets can
    alternate in time without paying the setup again.
    """

    def __init__(self, role: str, params: dict[str, Any], workdir: Path, name: str) -> None:
        self.role = role
        self.name = name
        self.log_path = workdir / f"worker-{name.replace(' ', '-')}.log"
        self._buffer = b""
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [PYTHON, "-m", "bench.worker", role],
                cwd=ROOT,
                env=child_env(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        pin(self._process.pid, "client")
        self._send(params)

    @property
    def pid(self) -> int:
        return self._process.pid

    def _send(self, message: dict[str, Any]) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(message).encode() + b"\n")
        self._process.stdin.flush()

    def _readline(self, timeout: float) -> dict[str, Any]:
        assert self._process.stdout is not None
        fd = self._process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"worker {self.name}: no answer in {timeout} s")
            readable, _, _ = select.select([fd], [], [], left)
            if readable:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise BenchError(f"worker {self.name} exited:\n{_tail(self.log_path)}")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise BenchError(f"worker {self.name}: {answer['error']}\n{_tail(self.log_path)}")
        return answer

    def ready(self, timeout: float = 120.0) -> dict[str, Any]:
        return self._readline(timeout)

    def request(self, command: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        self._send(command)
        return self._readline(timeout)

    def close(self, timeout: float = 10.0) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                self._send({"cmd": "quit"})
                assert self._process.stdin is not None
                self._process.stdin.close()
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        if self._process.stdout is not None:
            self._process.stdout.close()


@contextlib.contextmanager
def workers(*items: Worker) -> Iterator[list[Worker]]:
    """Close every worker on the way out, whatever happened."""
    try:
        yield list(items)
    finally:
        for item in items:
            item.close()


def cpu_us_per_delivery(answer: dict[str, Any]) -> float:
    """The server's CPU time per delivery of a fan-out window, in microseconds."""
    return float(answer["server_cpu_s"]) / max(1, int(answer["deliveries"])) * 1e6


def measure(server: ServerProcess, worker: Worker, command: dict[str, Any]) -> dict[str, Any]:
    """One measurement window, with the server's CPU time spent during it."""
    before = cpu_seconds(server.pid)
    answer = worker.request(command, timeout=float(command.get("seconds", 5)) + 60)
    answer["server_cpu_s"] = cpu_seconds(server.pid) - before
    return answer
