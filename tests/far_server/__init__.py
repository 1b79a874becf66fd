"""A deliberately far-from-conformant REP server, for the project's own tests.

It mimics a first implementation written from naive Node patterns (``ws`` +
``jsonwebtoken``), on aiohttp, independent of ``reference_server`` and ``conformance``: a
target the conformance kit must judge harshly. Deliberate deviations:

- a WebSocket handshake with no token at all kills the process (``os._exit(1)``);
- the welcome carries only ``status``, ``clientId`` and ``user: {id}``: no ``userId``,
  ``protocolVersion``, ``heartbeatIntervalMs``, ``limits`` or ``features``;
- errors have no ``code``; ``room_join``/``room_leave`` (and every other unknown type) get
  ``Unknown message type: <type>``;
- ``chat_message`` goes to every client, whatever its ``roomId``, unsanitised;
- ``data_update`` ignores ``expectedVersion``; ``data_sync`` has no revisions worth the
  name and no tombstones; ``stream_subscribe`` replays nothing and ignores filters;
- ``GET /events`` needs no token, starts with a bare ``data:`` block (no ``retry``, no
  ``event: connection``) and ignores ``Last-Event-ID``;
- any valid token may publish; numbers are re-serialised the JavaScript way
  (``5.677767015998854e+16`` becomes ``56777670159988540``, ``3.0`` becomes ``3``);
- a heartbeat every 30 s; no ``/stats``.

Correct parts: token lookup order (header, query, cookie) and 401 for a bad token, pong
with ``correlation_id``, server metadata, ``/health``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 15.0
STOP_TIMEOUT = 3.0


@dataclass(frozen=True)
class FarServer:
    """Where a running far server listens, and the secret its tokens must be signed with."""

    ws_url: str
    http_url: str
    secret: str
    port: int


def free_port() -> int:
    """A loopback port free right now (the server binds it with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_token(secret: str, sub: str = "alice", *, ttl_seconds: int = 300, **claims: Any) -> str:
    """An HS256 token the far server accepts."""
    now = int(time.time())
    body = {"sub": sub, "iat": now, "exp": now + ttl_seconds, **claims}
    return jwt.encode(body, secret, algorithm="HS256")


def _read_announcement(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    """The first stdout line, within timeout; raw reads so nothing is buffered past it."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buffer = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"far server did not announce itself within {timeout} s")
            if not selector.select(remaining):
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(
                    f"far server exited (code {proc.wait(STOP_TIMEOUT)}) before listening"
                )
            buffer += chunk
    announced: dict[str, Any] = json.loads(buffer.split(b"\n", 1)[0])
    return announced


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Close stdin (the polite stop), terminate, then kill; bounded waits throughout."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)
    # The process leads its own session: anything left in it (a supervised child whose
    # parent had to be killed) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.stdout is not None:
        proc.stdout.close()


@contextlib.contextmanager
def far_server_process(
    *, supervised: bool = False, secret: str | None = None
) -> Iterator[tuple[FarServer, subprocess.Popen[bytes]]]:
    """Like running_far_server, but also yields the process (the supervisor if supervised)."""
    secret = secret if secret is not None else secrets.token_hex(32)
    port = free_port()
    command = [sys.executable, "-m", "tests.far_server", "--port", str(port),
               "--secret", secret]
    if supervised:
        command.append("--supervised")
    proc = subprocess.Popen(
        command, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        announced = _read_announcement(proc, STARTUP_TIMEOUT)
        server = FarServer(
            ws_url=str(announced["ws_url"]), http_url=str(announced["http_url"]),
            secret=secret, port=int(announced["port"]),
        )
        yield server, proc
    finally:
        _stop(proc)


@contextlib.contextmanager
def running_far_server(
    *, supervised: bool = False, secret: str | None = None
) -> Iterator[FarServer]:
    """Start the far server in a subprocess on a free loopback port; stop it on exit."""
    with far_server_process(supervised=supervised, secret=secret) as (server, _proc):
        yield server
