"""Scenario 2: room fan-out, one sender and N members, against the raw aiohttp broadcast loop.

Every member, the sender included, receives each chat message: REP distributes the copy
to the whole room, and the baseline sends its copy to every connection. A message counts
once all N members have it; at most ``fanout_window`` messages are open at once, so the
server's bounded queues never overflow. Figures: deliveries/s and sender-to-receiver
latency, measured in the client process that holds both ends.
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from typing import Any

from bench.procs import ServerProcess, Worker, baseline_server, measure, reference_server, workers
from bench.report import INFO, Row, at_least, make_row, unavailable
from bench.scenarios import Context

ROOM = "bench"
BASELINE = "aiohttp broadcast"
REDIS_BROKER = "reference_server.broker.redis"
TARGET_MEMBERS = 1000


def _worker(ctx: Context, server: ServerProcess, members: int, reference: bool) -> Worker:
    params: dict[str, Any] = {
        "url": server.ws_url,
        "members": members,
        "welcome": reference,
        "join": reference,
        "room": ROOM,
    }
    if reference:
        params["secret"] = ctx.secret
    name = f"fanout-{'reference' if reference else 'baseline'}-{members}"
    return Worker("fanout", params, ctx.workdir, name)


def _summary(answers: list[dict[str, Any]]) -> dict[str, Any]:
    p50 = statistics.median(a["p50_us"] or 0.0 for a in answers)
    p99 = statistics.median(a["p99_us"] or 0.0 for a in answers)
    return {
        "p50_us": p50,
        "p99_us": p99,
        "server_cpu_share": statistics.median(a["server_cpu_s"] / a["elapsed"] for a in answers),
        "extra": f"p99 {p99 / 1000:.1f} ms",
    }


def measure_pair(
    ctx: Context, baseline: ServerProcess, reference: ServerProcess, members: int
) -> Row:
    profile = ctx.profile
    command = {
        "cmd": "run",
        "seconds": profile.seconds,
        "max_messages": profile.max_messages,
        "window": profile.fanout_window,
    }
    base_worker = _worker(ctx, baseline, members, reference=False)
    ref_worker = _worker(ctx, reference, members, reference=True)
    answers: dict[str, list[dict[str, Any]]] = {"baseline": [], "value": []}
    with workers(base_worker, ref_worker):
        began = time.monotonic()
        base_worker.ready()
        ref_worker.ready(timeout=300)
        ctx.log(f"  {members} members connected and joined in {time.monotonic() - began:.1f} s")
        warm = {**command, "seconds": min(0.3, profile.seconds)}
        base_worker.request(warm)
        ref_worker.request(warm)
        for _ in range(profile.runs):
            answers["baseline"].append(measure(baseline, base_worker, command))
            answers["value"].append(measure(reference, ref_worker, command))
    base, value = (_summary(answers[side]) for side in ("baseline", "value"))
    return make_row(
        f"room fan-out {members} members",
        "deliveries/s",
        BASELINE,
        [a["deliveries"] / a["elapsed"] for a in answers["baseline"]],
        [a["deliveries"] / a["elapsed"] for a in answers["value"]],
        at_least(0.70) if members == TARGET_MEMBERS else INFO,
        details={
            **{f"baseline_{k}": v for k, v in base.items()},
            **{f"value_{k}": v for k, v in value.items()},
        },
    )


def redis_row(members: int) -> Row:
    """Two nodes on Redis need the Redis broker; until it exists there is nothing to run."""
    scenario = f"room fan-out {members} members, two nodes on Redis"
    if importlib.util.find_spec(REDIS_BROKER) is None:
        return unavailable(scenario, "deliveries/s", f"{REDIS_BROKER} does not exist yet")
    return unavailable(
        scenario,
        "deliveries/s",
        "the Redis broker exists but rep-server has no option to select it yet",
    )


def run(ctx: Context) -> list[Row]:
    rows = []
    baseline = baseline_server("broadcast", ctx.workdir).start()
    reference = reference_server(ctx.secret, ctx.workdir).start()
    try:
        for members in ctx.profile.fanout_members:
            ctx.log(f"room fan-out {members} members")
            rows.append(measure_pair(ctx, baseline, reference, members))
    finally:
        baseline.stop()
        reference.stop()
    rows.append(redis_row(max(ctx.profile.fanout_members)))
    return rows
