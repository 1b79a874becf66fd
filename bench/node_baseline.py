"""The Node.js ``ws`` baseline: the stack a user would otherwise pick for a REP server.

``bench/baselines/node_ws/server.js`` is the ping/pong server the usual Node.js recipe
gives (``ws`` plus a ``jsonwebtoken`` check in ``verifyClient``). Its dependencies come
from the npm registry, installed by :func:`prepare` from the committed lock file on first
use, so a machine without Node.js (or without the registry) reports the row as not
available instead of failing the run.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.procs import HOST, SECRET_ENV, BenchError, ServerProcess, free_port

PACKAGE_DIR = Path(__file__).resolve().parent / "baselines" / "node_ws"
SERVER_JS = PACKAGE_DIR / "server.js"
LOCK_FILE = PACKAGE_DIR / "package-lock.json"
#: npm writes this at the end of every install; its age says which lock file it installed.
INSTALLED_MARKER = PACKAGE_DIR / "node_modules" / ".package-lock.json"
NPM_TIMEOUT = 300.0
#: The reasons :func:`prepare` gives when a tool is absent, as opposed to a failed install.
NO_NODE = "node is not on PATH (install Node.js to measure the ws baseline)"
NO_NPM = "npm is not on PATH: cannot install the ws baseline's dependencies"


def _installed() -> bool:
    marker, lock = INSTALLED_MARKER, LOCK_FILE
    return marker.is_file() and marker.stat().st_mtime >= lock.stat().st_mtime


@contextlib.contextmanager
def _install_lock(timeout: float) -> Iterator[bool]:
    """An exclusive lock per checkout, so a bench and a test preparing at once do not run
    two ``npm ci`` into one node_modules; yields False when not had within ``timeout``."""
    key = hashlib.sha256(str(PACKAGE_DIR).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"rep-bench-node-ws-{key}.lock"
    with path.open("a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.2)
                continue
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
            return


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def prepare() -> Path | str:
    """The path of server.js, ready to run; or a one-line reason why it cannot run here.

    Installs the locked dependencies (``npm ci``) when node_modules is missing or older
    than package-lock.json; the install is bounded by ``NPM_TIMEOUT`` seconds.
    """
    timeout = NPM_TIMEOUT
    if shutil.which("node") is None:
        return NO_NODE
    if _installed():
        return SERVER_JS
    npm = shutil.which("npm")
    if npm is None:
        return NO_NPM
    with _install_lock(timeout) as locked:
        if not locked:
            return f"another npm ci of {PACKAGE_DIR} did not finish within {timeout:.0f} s"
        if _installed():  # done by whoever held the lock
            return SERVER_JS
        try:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--silent"],
                cwd=PACKAGE_DIR,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"npm ci in {PACKAGE_DIR} took more than {timeout:.0f} s"
        except OSError as exc:
            return f"npm ci in {PACKAGE_DIR} could not start: {exc}"
    if done.returncode != 0:
        return (
            f"npm ci in {PACKAGE_DIR} failed (exit {done.returncode}): "
            f"{_last_line(done.stderr or done.stdout)}"
        )
    if not _installed():
        return f"npm ci in {PACKAGE_DIR} left no node_modules/.package-lock.json"
    return SERVER_JS


def node_ws_server(secret: str, workdir: Path) -> ServerProcess:
    """``node server.js`` on a free port, authenticating with ``secret``; call
    :func:`prepare` first, as this neither installs nor checks the dependencies."""
    node = shutil.which("node")
    if node is None:
        raise BenchError("node is not on PATH")
    port = free_port()
    argv = [node, str(SERVER_JS), "--host", HOST, "--port", str(port)]
    return ServerProcess(
        "node-ws", argv, port, env={SECRET_ENV: secret}, ready_path="/health", workdir=workdir
    )
