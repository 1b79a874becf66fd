"""Scenario 2: room fan-out, one sender and N members, against the raw aiohttp broadcast loop.

Every member, the sender included, receives each chat message: REP distributes the copy
to the whole room, and the baseline sends its copy to every connection. A message counts
once all N members have it; at most ``fanout_window`` messages are open at once, so the
server's bounded queues never overflow. Figures: deliveries/s and sender-to-receiver
latency, measured in the client process that holds both ends. The two-node variant puts
the sender on one reference node and every other member on a second node sharing a Redis
broker, so every copy crosses Redis.
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from typing import Any

from bench.procs import (
    ServerProcess,
    Worker,
    baseline_server,
    cpu_us_per_delivery,
    measure,
    redis_server,
    reference_server,
    workers,
)
from bench.report import (
    CPU_FLOOR,
    INFO,
    Row,
    at_least,
    efficiency_row,
    make_row,
    unavailable,
)
from bench.scenarios import Context

ROOM = "bench"
BASELINE = "aiohttp broadcast"
REDIS_BROKER = "reference_server.broker.redis"
TARGET_MEMBERS = 1000


def _worker(
    ctx: Context,
    server: ServerProcess,
    members: int,
    reference: bool,
    member_server: ServerProcess | None = None,
) -> Worker:
    """The sender connects to ``server``; the other members to ``member_server`` if given."""
    params: dict[str, Any] = {
        "url": server.ws_url,
        "member_url": (member_server or server).ws_url,
        "members": members,
        "welcome": reference,
        "join": reference,
        "room": ROOM,
    }
    if reference:
        params["secret"] = ctx.secret
    side = "reference" if reference else "baseline"
    name = f"fanout-{side}-{members}{'-cluster' if member_server else ''}"
    return Worker("fanout", params, ctx.workdir, name)


def _summary(answers: list[dict[str, Any]]) -> dict[str, Any]:
    p50 = statistics.median(a["p50_us"] or 0.0 for a in answers)
    p99 = statistics.median(a["p99_us"] or 0.0 for a in answers)
    cpu = statistics.median(cpu_us_per_delivery(a) for a in answers)
    return {
        "p50_us": p50,
        "p99_us": p99,
        "server_cpu_share": statistics.median(a["server_cpu_s"] / a["elapsed"] for a in answers),
        "cpu_us_per_delivery": cpu,
        "extra": f"p99 {p99 / 1000:.1f} ms, server CPU {cpu:.1f} us/delivery",
    }


def measure_pair(
    ctx: Context,
    baseline: ServerProcess,
    reference: ServerProcess,
    members: int,
    *,
    other_node: ServerProcess | None = None,
) -> list[Row]:
    """The throughput row, then (one node only) the CPU-efficiency row."""
    profile = ctx.profile
    command = {
        "cmd": "run",
        "seconds": profile.seconds,
        "max_messages": profile.max_messages,
        "window": profile.fanout_window,
    }
    base_worker = _worker(ctx, baseline, members, reference=False)
    ref_worker = _worker(ctx, reference, members, reference=True, member_server=other_node)
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
    scenario = f"room fan-out {members} members"
    if other_node is not None:
        scenario += ", two nodes on Redis"
    targeted = members == TARGET_MEMBERS and other_node is None
    rows = [
        make_row(
            scenario,
            "deliveries/s",
            BASELINE,
            [a["deliveries"] / a["elapsed"] for a in answers["baseline"]],
            [a["deliveries"] / a["elapsed"] for a in answers["value"]],
            at_least(0.80) if targeted else INFO,
            details={
                **{f"baseline_{k}": v for k, v in base.items()},
                **{f"value_{k}": v for k, v in value.items()},
            },
        )
    ]
    if other_node is None:  # two nodes: the CPU is split over processes; no like for like
        rows.append(
            efficiency_row(
                scenario,
                "us/delivery",
                BASELINE,
                [cpu_us_per_delivery(a) for a in answers["baseline"]],
                [cpu_us_per_delivery(a) for a in answers["value"]],
                CPU_FLOOR if targeted else None,
            )
        )
    return rows


def cluster_row(ctx: Context, baseline: ServerProcess, members: int) -> Row:
    """Sender on one node, every other member on the second: each copy crosses Redis."""
    scenario = f"room fan-out {members} members, two nodes on Redis"
    if importlib.util.find_spec(REDIS_BROKER) is None:
        return unavailable(scenario, "deliveries/s", f"{REDIS_BROKER} does not exist yet")
    redis = redis_server(ctx.workdir)
    if redis is None:
        return unavailable(scenario, "deliveries/s", "redis-server is not installed")
    nodes: list[ServerProcess] = []
    try:
        redis.start()
        broker = ["--broker", f"redis://127.0.0.1:{redis.port}/0"]
        for name in ("node-a", "node-b"):
            node = reference_server(ctx.secret, ctx.workdir, name=name, extra_args=broker)
            nodes.append(node.start())
        ctx.log(f"room fan-out {members} members, two nodes on Redis")
        (row,) = measure_pair(ctx, baseline, nodes[0], members, other_node=nodes[1])
        return row
    finally:
        for node in nodes:
            node.stop()
        redis.stop()


def run(ctx: Context) -> list[Row]:
    rows = []
    baseline = baseline_server("broadcast", ctx.workdir).start()
    try:
        with reference_server(ctx.secret, ctx.workdir) as reference:
            for members in ctx.profile.fanout_members:
                ctx.log(f"room fan-out {members} members")
                rows += measure_pair(ctx, baseline, reference, members)
        if ctx.profile.extras:
            cluster = cluster_row(ctx, baseline, ctx.profile.cluster_members)
            rows.append(cluster)
            single = [r for r in rows if r.scenario == cluster.scenario.split(",")[0]]
            if single and cluster.value is not None:
                rows.append(cluster_to_single(cluster, single[0]))
    finally:
        baseline.stop()
    return rows


def cluster_to_single(cluster: Row, single: Row) -> Row:
    """Two nodes on Redis against one node, each against the same baseline in its own run:
    the ratio of the two paired ratios, so the baseline's drift between them cancels."""
    row = make_row(
        f"{cluster.scenario.split(',')[0]}, two nodes vs one",
        cluster.unit,
        "one node",
        single.runs["value"],
        cluster.runs["value"],
        INFO,
        note="ratio: (two nodes / baseline) / (one node / baseline)",
    )
    if cluster.ratio is not None and single.ratio:
        row.ratio = cluster.ratio / single.ratio
    return row
