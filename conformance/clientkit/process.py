"""Starting the client under test for one scenario, and stopping it with everything it
started (a browser starts many processes): it runs in a process group of its own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from conformance.clientkit.target import ClientTarget

STOP_GRACE_S = 3.0


@dataclass(frozen=True)
class Endpoints:
    server_url: str
    sse_url: str
    control_url: str
    http_url: str
    token: str


def placeholders(
    target: ClientTarget, where: Endpoints, scenario: str, tmpdir: str
) -> dict[str, str]:
    return {
        "server_url": where.server_url,
        "sse_url": where.sse_url,
        "control_url": where.control_url,
        "http_url": where.http_url,
        "token": where.token,
        "base_ms": str(round(target.reconnect.base_s * 1000)),
        "cap_ms": str(round(target.reconnect.cap_s * 1000)),
        "max_attempts": str(target.reconnect.max_attempts),
        "request_timeout_ms": str(round(target.request_timeout_s * 1000)),
        "scenario": scenario,
        "tmpdir": tmpdir,
        "python": sys.executable,
    }


def _fill(argument: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        argument = argument.replace("{" + name + "}", value)
    return argument


class ClientProcess:
    """The command of the target, started with the scenario's endpoints."""

    def __init__(self, target: ClientTarget, where: Endpoints, scenario: str, log: Path) -> None:
        self.target, self.where, self.scenario, self.log_path = target, where, scenario, log
        self._process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    async def start(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="rep-client-")
        values = placeholders(self.target, self.where, self.scenario, self._tmp.name)
        argv = [_fill(a, values) for a in self.target.command]
        env = {
            **os.environ,
            **self.target.env,
            **{f"REP_{k.upper()}": v for k, v in values.items() if k not in ("tmpdir", "python")},
            "REP_RECONNECT_BASE_MS": values["base_ms"],
            "REP_RECONNECT_CAP_MS": values["cap_ms"],
            "REP_RECONNECT_MAX_ATTEMPTS": values["max_attempts"],
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self._process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=self.target.workdir,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def exit_code(self) -> int | None:
        return self._process.returncode if self._process is not None else None

    async def stop(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        elif process is not None:
            # The leader exited; children it left in its group go too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""
