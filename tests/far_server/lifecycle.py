"""When to stop: standard input closes, or SIGTERM/SIGINT arrives.

Watching stdin lets the parent (a test, or the supervisor) stop a process just by
closing the pipe, and it also stops the process when the parent dies without cleaning up,
so that no server is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import threading


def stop_event() -> asyncio.Event:
    """An event set on stdin EOF or on SIGTERM/SIGINT; call it inside the running loop."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def watch_stdin() -> None:
        # os.read, not sys.stdin: a daemon thread blocked in a buffered reader can hold
        # its lock at interpreter shutdown.
        with contextlib.suppress(OSError):
            while os.read(0, 65536):
                pass
        with contextlib.suppress(RuntimeError):  # the loop may be closed already
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, name="far-stdin-eof", daemon=True).start()
    return stop


def announce(port: int) -> None:
    """Print the one JSON line the parent waits for before it talks to the server."""
    line = {
        "ws_url": f"ws://127.0.0.1:{port}/ws",
        "http_url": f"http://127.0.0.1:{port}",
        "port": port,
    }
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def log(message: str) -> None:
    """Diagnostics go to stderr: stdout carries only the announcement."""
    print(f"[far_server {os.getpid()}] {message}", file=sys.stderr, flush=True)
