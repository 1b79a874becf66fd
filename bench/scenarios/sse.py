"""Scenario 3: SSE fan-out, N subscribers of one stream, against a raw aiohttp SSE loop.

Events are published with ``POST /streams/bench/events`` and read from
``GET /events?channels=bench``; an event counts once all subscribers have it, with at most
``fanout_window`` events open. A reference server without ``/events`` is reported as not
available rather than measured.
"""

from __future__ import annotations

import statistics
import urllib.error
import urllib.request
from typing import Any

from bench.procs import (
    ServerProcess,
    Worker,
    baseline_server,
    cpu_us_per_delivery,
    measure,
    reference_server,
    workers,
)
from bench.report import (
    CPU_FLOOR,
    INFO,
    P99_CEILING,
    Row,
    at_least,
    efficiency_row,
    latency_row,
    make_row,
    unavailable,
)
from bench.scenarios import Context
from reference_server.auth import mint_token

STREAM = "bench"
BASELINE = "aiohttp SSE"
TARGET_SUBSCRIBERS = 1000


def events_available(ctx: Context, server: ServerProcess) -> bool:
    """Whether ``GET /events`` exists: anything but 404 means the endpoint is there."""
    token = mint_token(ctx.secret, "probe", ["user"])
    request = urllib.request.Request(
        f"{server.http_url}/events?channels={STREAM}",
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return bool(answer.status != 404)
    except urllib.error.HTTPError as error:
        return error.code != 404


def _worker(ctx: Context, server: ServerProcess, subscribers: int, reference: bool) -> Worker:
    params: dict[str, Any] = {
        "base_url": server.http_url,
        "subscribers": subscribers,
        "stream": STREAM,
    }
    if reference:
        params["secret"] = ctx.secret
    name = f"sse-{'reference' if reference else 'baseline'}-{subscribers}"
    return Worker("sse", params, ctx.workdir, name)


def _details(side: str, answers: list[dict[str, Any]]) -> dict[str, Any]:
    p99 = statistics.median(a["p99_us"] or 0.0 for a in answers)
    cpu = statistics.median(cpu_us_per_delivery(a) for a in answers)
    return {
        f"{side}_cpu_us_per_delivery": cpu,
        f"{side}_p50_us": statistics.median(a["p50_us"] or 0.0 for a in answers),
        f"{side}_p99_us": p99,
        f"{side}_server_cpu_share": statistics.median(
            a["server_cpu_s"] / a["elapsed"] for a in answers
        ),
        f"{side}_extra": f"p99 {p99 / 1000:.1f} ms, server CPU {cpu:.1f} us/delivery",
    }


def _rate(answers: list[dict[str, Any]]) -> list[float]:
    return [a["deliveries"] / a["elapsed"] for a in answers]


def measure_sizes(
    ctx: Context, baseline: ServerProcess, reference: ServerProcess | None
) -> list[Row]:
    profile = ctx.profile
    command = {
        "cmd": "run",
        "seconds": profile.seconds,
        "max_messages": profile.max_messages,
        "window": profile.fanout_window,
    }
    rows = []
    for subscribers in profile.sse_subscribers:
        ctx.log(f"SSE fan-out {subscribers} subscribers")
        scenario = f"SSE fan-out {subscribers} subscribers"
        targeted = subscribers == TARGET_SUBSCRIBERS
        target = at_least(0.80) if targeted else INFO
        made = {"baseline": _worker(ctx, baseline, subscribers, reference=False)}
        if reference is not None:
            made["value"] = _worker(ctx, reference, subscribers, reference=True)
        servers = {"baseline": baseline, "value": reference}
        answers: dict[str, list[dict[str, Any]]] = {side: [] for side in made}
        with workers(*made.values()):
            for worker in made.values():
                worker.ready()
            for worker in made.values():
                worker.request({**command, "seconds": min(0.3, profile.seconds)})
            for _ in range(profile.runs):
                for side, worker in made.items():
                    server = servers[side]
                    assert server is not None
                    answers[side].append(measure(server, worker, command))
        if reference is None:
            rows.append(
                unavailable(
                    scenario,
                    "events/s",
                    "the reference server has no GET /events",
                    target,
                    baselines=_rate(answers["baseline"]),
                    baseline_name=BASELINE,
                    details=_details("baseline", answers["baseline"]),
                )
            )
            continue
        rows.append(
            make_row(
                scenario,
                "events/s",
                BASELINE,
                _rate(answers["baseline"]),
                _rate(answers["value"]),
                target,
                details={
                    **_details("baseline", answers["baseline"]),
                    **_details("value", answers["value"]),
                },
            )
        )
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
        rows.append(
            latency_row(
                scenario,
                BASELINE,
                [(a["p99_us"] or 0.0) / 1000 for a in answers["baseline"]],
                [(a["p99_us"] or 0.0) / 1000 for a in answers["value"]],
                P99_CEILING if targeted else None,
            )
        )
    return rows


def run(ctx: Context) -> list[Row]:
    baseline = baseline_server("sse", ctx.workdir).start()
    reference = reference_server(ctx.secret, ctx.workdir).start()
    try:
        available = events_available(ctx, reference)
        if not available:
            ctx.log("the reference server has no GET /events: SSE measured on the baseline only")
        return measure_sizes(ctx, baseline, reference if available else None)
    finally:
        baseline.stop()
        reference.stop()
