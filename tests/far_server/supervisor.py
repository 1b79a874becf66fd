"""A pm2/systemd-like parent: runs the far server as a child and restarts it when it dies.

A crashing Node server is usually deployed this way, so a client sees the connection
drop and the server come back a moment later with its memory wiped.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

from tests.far_server.lifecycle import log, stop_event

RESTART_DELAY = 0.3
ANNOUNCE_TIMEOUT = 15.0
STOP_TIMEOUT = 2.0
REPO_ROOT = Path(__file__).resolve().parents[2]


async def _start_child(port: int, secret: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.far_server", "--port", str(port), "--secret", secret,
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.PIPE,  # closing it stops the child, even if we are killed
        stdout=asyncio.subprocess.PIPE,
    )


async def _stop_child(child: asyncio.subprocess.Process) -> None:
    if child.stdin is not None:
        child.stdin.close()
    if child.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            child.terminate()
        try:
            await asyncio.wait_for(child.wait(), STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()


async def _first(
    awaitable: asyncio.Future[Any], stop: asyncio.Event, within: float | None = None
) -> bool:
    """Wait for awaitable or stop (at most `within` s); True when awaitable finished first."""
    stopper = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({awaitable, stopper}, timeout=within,
                                 return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    return awaitable in done


async def supervise(port: int, secret: str) -> None:
    """Keep a child serving on the fixed port; announce once, when the first one listens."""
    stop = stop_event()
    announced = False
    while not stop.is_set():
        child = await _start_child(port, secret)
        try:
            assert child.stdout is not None
            line_task = asyncio.ensure_future(child.stdout.readline())
            if await _first(line_task, stop, ANNOUNCE_TIMEOUT) and line_task.result():
                if not announced:
                    sys.stdout.write(line_task.result().decode())
                    sys.stdout.flush()
                    announced = True
                else:
                    log(f"child {child.pid} is back on port {port}")
            else:
                line_task.cancel()
            exited = asyncio.ensure_future(child.wait())
            if not await _first(exited, stop):
                exited.cancel()
                break
            log(f"child {child.pid} exited with {child.returncode}; restarting")
        finally:
            await _stop_child(child)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RESTART_DELAY)
