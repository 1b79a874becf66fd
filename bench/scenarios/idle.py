"""Scenario 4: idle authenticated WebSocket connections; server RSS per connection.

Each server starts fresh; a few warm-up connections pay for lazy imports and caches, then
connections are added in batches (one client process per batch, so no process needs more
descriptors than it has) and the server's RSS is read from /proc after each. The figure is
the median of the per-batch increments; the raw aiohttp server holding the same
connections is the baseline. The limit the issue sets is absolute: 30 kB per connection.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.procs import ServerProcess, Worker, baseline_server, reference_server, rss_bytes, workers
from bench.report import Row, at_most, make_row
from bench.scenarios import Context

LIMIT_KB = 30.0
WARM_UP = 20
SETTLE_SECONDS = 0.5


def settled_rss(server: ServerProcess, seconds: float = SETTLE_SECONDS) -> int:
    """The median of a few RSS readings after a pause, once the server has gone quiet."""
    time.sleep(seconds)
    readings = []
    for _ in range(5):
        readings.append(rss_bytes(server.pid))
        time.sleep(0.1)
    return int(statistics.median(readings))


def _params(
    ctx: Context, server: ServerProcess, reference: bool, count: int, first: int
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "url": server.ws_url,
        "connections": count,
        "first_user": first,
        "welcome": reference,
    }
    if reference:
        params["secret"] = ctx.secret
    return params


def hold(ctx: Context, server: ServerProcess, reference: bool) -> dict[str, Any]:
    """Per-connection RSS increments of each batch, with every connection of all batches
    still open at the end."""
    profile = ctx.profile
    label = "reference" if reference else "baseline"
    warm = Worker("idle", _params(ctx, server, reference, WARM_UP, 10**6), ctx.workdir, "warm")
    with workers(warm):
        warm.ready()
    before = settled_rss(server)
    batch = profile.idle_connections // profile.idle_batches
    increments: list[float] = []
    held: list[Worker] = []
    try:
        last = before
        for index in range(profile.idle_batches):
            params = _params(ctx, server, reference, batch, index * batch)
            worker = Worker("idle", params, ctx.workdir, f"idle-{label}-{index}")
            held.append(worker)
            worker.ready(timeout=300)
            now = settled_rss(server)
            increments.append((now - last) / batch)
            last = now
        still_open = sum(w.request({"cmd": "run", "seconds": 0})["open"] for w in held)
    finally:
        server.kill()  # before the clients go: 10,000 disconnects would only measure teardown
        for worker in held:
            worker.close(timeout=30)
    return {
        "increments": increments,
        "overall": (last - before) / (batch * profile.idle_batches),
        "open": still_open,
        "rss_before": before,
        "rss_after": last,
    }


def run(ctx: Context) -> list[Row]:
    profile = ctx.profile
    total = profile.idle_connections // profile.idle_batches * profile.idle_batches
    found = {}
    for reference in (False, True):
        ctx.log(f"idle: {total} connections to the {'reference' if reference else 'baseline'}")
        server = (
            reference_server(ctx.secret, ctx.workdir)
            if reference
            else baseline_server("echo", ctx.workdir)
        ).start()
        try:
            found[reference] = hold(ctx, server, reference)
        finally:
            server.kill()  # a graceful stop would measure the shutdown of every connection
    base, value = found[False], found[True]
    return [
        make_row(
            f"{total:,} idle connections, RSS each",
            "kB",
            "aiohttp echo",
            [x / 1024 for x in base["increments"]],
            [x / 1024 for x in value["increments"]],
            at_most(LIMIT_KB, "kB"),
            details={
                "connections": total,
                "baseline_open_at_end": base["open"],
                "value_open_at_end": value["open"],
                "baseline_overall_kb": base["overall"] / 1024,
                "value_overall_kb": value["overall"] / 1024,
                "value_rss_before_mb": value["rss_before"] / 2**20,
                "value_rss_after_mb": value["rss_after"] / 2**20,
            },
        )
    ]
