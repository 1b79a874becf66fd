"""Scenario 1: ``ping`` -> ``pong`` round trips, 1 connection and 50 connections x 10 in flight.

The reference server is compared with the raw aiohttp JSON-envelope echo (the target) and,
for information, with a picows echo. Windows of the targets alternate in time. The server's
CPU time per round trip, read from /proc during the windows, feeds the validation scenario.
"""

from __future__ import annotations

import contextlib
import importlib.util
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench.node_baseline import node_ws_server
from bench.node_baseline import prepare as prepare_node
from bench.procs import (
    ServerProcess,
    Worker,
    baseline_server,
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

SHAPES = (("1 conn", 1, 1), ("50x10", 50, 10))
TARGET = at_least(0.80)
REFERENCE = "reference"
ECHO = "aiohttp echo"
PICOWS = "picows echo"
ASYNCIO = "reference on asyncio"
NODE = "Node ws"
NODE_TARGET = at_least(0.90)
CPU_KEY = "reference_cpu_us_per_message"


@dataclass
class Window:
    rate: float
    p50_us: float
    p99_us: float
    cpu_us_per_message: float
    server_cpu_share: float

    @classmethod
    def of(cls, answer: dict[str, Any]) -> Window:
        messages = max(1, int(answer["messages"]))
        return cls(
            rate=answer["messages"] / answer["elapsed"],
            p50_us=answer["p50_us"] or 0.0,
            p99_us=answer["p99_us"] or 0.0,
            cpu_us_per_message=answer["server_cpu_s"] / messages * 1e6,
            server_cpu_share=answer["server_cpu_s"] / answer["elapsed"],
        )


@contextlib.contextmanager
def servers(ctx: Context, names: tuple[str, ...]) -> Iterator[dict[str, ServerProcess]]:
    started: dict[str, ServerProcess] = {}
    try:
        for name in names:
            if name in (REFERENCE, ASYNCIO):
                process = reference_server(
                    ctx.secret,
                    ctx.workdir,
                    name=name.replace(" ", "-"),
                    loop="asyncio" if name == ASYNCIO else "auto",
                )
            elif name == NODE:
                process = node_ws_server(ctx.secret, ctx.workdir)
            else:
                process = baseline_server("echo" if name == ECHO else "picows-echo", ctx.workdir)
            started[name] = process.start()
        yield started
    finally:
        for process in started.values():
            process.stop()


def worker_for(ctx: Context, name: str, server: ServerProcess, conns: int, depth: int) -> Worker:
    reference = name in (REFERENCE, ASYNCIO, NODE)  # these authenticate and welcome
    params: dict[str, Any] = {
        "url": server.ws_url,
        "connections": conns,
        "in_flight": depth,
        "welcome": reference,
    }
    if reference:
        params["secret"] = ctx.secret
    label = name.replace(" ", "-")
    return Worker("pingpong", params, ctx.workdir, f"pingpong-{label}-{conns}x{depth}")


def alternate(
    ctx: Context, targets: dict[str, ServerProcess], conns: int, depth: int
) -> dict[str, list[Window]]:
    """Set up one worker per target, then measure the targets in turn, ``runs`` times."""
    profile = ctx.profile
    command = {"cmd": "run", "seconds": profile.seconds, "max_messages": profile.max_messages}
    found: dict[str, list[Window]] = {name: [] for name in targets}
    made = {name: worker_for(ctx, name, server, conns, depth) for name, server in targets.items()}
    with workers(*made.values()):
        for worker in made.values():
            worker.ready()
        warm = {**command, "seconds": min(0.3, profile.seconds)}
        for worker in made.values():  # first connections pay for lazy imports
            worker.request(warm)
        for _ in range(profile.runs):
            for name, worker in made.items():
                found[name].append(Window.of(measure(targets[name], worker, command)))
    return found


def _latency(windows: list[Window]) -> str:
    p50 = statistics.median(w.p50_us for w in windows) / 1000
    p99 = statistics.median(w.p99_us for w in windows) / 1000
    cpu = statistics.median(w.cpu_us_per_message for w in windows)
    return f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, server CPU {cpu:.1f} us/msg"


def _details(windows: list[Window], prefix: str) -> dict[str, Any]:
    return {
        f"{prefix}_p50_us": statistics.median(w.p50_us for w in windows),
        f"{prefix}_p99_us": statistics.median(w.p99_us for w in windows),
        f"{prefix}_server_cpu_share": statistics.median(w.server_cpu_share for w in windows),
        f"{prefix}_cpu_us_per_message": statistics.median(w.cpu_us_per_message for w in windows),
        f"{prefix}_extra": _latency(windows),
    }


#: (row suffix, reference side, baseline side): the target row, then information rows.
COMPARISONS = (
    ("", REFERENCE, ECHO),
    (" vs Node ws", REFERENCE, NODE),
    (" vs picows", REFERENCE, PICOWS),
    (", reference on asyncio", ASYNCIO, ECHO),
)


def rows_for(label: str, found: dict[str, list[Window]]) -> list[Row]:
    rows = []
    for suffix, value_side, base_side in COMPARISONS:
        if value_side not in found or base_side not in found:
            continue
        base, value = found[base_side], found[value_side]
        judged = label == "50x10" and value_side == REFERENCE and base_side in (ECHO, NODE)
        target = (TARGET if base_side == ECHO else NODE_TARGET) if judged else INFO
        scenario = f"ping/pong {label}{suffix}"
        rows.append(
            make_row(
                scenario,
                "msg/s",
                base_side,
                [w.rate for w in base],
                [w.rate for w in value],
                target,
                details={**_details(base, "baseline"), **_details(value, "value")},
            )
        )
        if not judged:
            continue
        rows.append(
            efficiency_row(
                scenario,
                "us/msg",
                base_side,
                [w.cpu_us_per_message for w in base],
                [w.cpu_us_per_message for w in value],
                CPU_FLOOR if base_side == ECHO else None,
            )
        )
        if base_side == ECHO:
            rows.append(
                latency_row(
                    scenario,
                    base_side,
                    [w.p99_us / 1000 for w in base],
                    [w.p99_us / 1000 for w in value],
                    P99_CEILING,
                )
            )
    return rows


def run(ctx: Context) -> list[Row]:
    names: tuple[str, ...] = (ECHO, REFERENCE)
    node = prepare_node()
    if isinstance(node, str):
        ctx.log(f"Node ws baseline not available: {node}")
    else:
        names += (NODE,)
    if ctx.profile.extras:
        names += tuple(
            name
            for name, module in ((PICOWS, "picows"), (ASYNCIO, "uvloop"))
            if importlib.util.find_spec(module) is not None
        )
    rows: list[Row] = []
    with servers(ctx, names) as targets:
        for label, conns, depth in SHAPES:
            ctx.log(f"ping/pong {label}: {', '.join(targets)}")
            found = alternate(ctx, targets, conns, depth)
            rows += rows_for(label, found)
            if label == "50x10":
                per_message = [w.cpu_us_per_message for w in found[REFERENCE]]
                ctx.shared[CPU_KEY] = statistics.median(per_message)
                if isinstance(node, str):
                    rows.append(
                        unavailable(f"ping/pong {label} vs Node ws", "msg/s", node, NODE_TARGET)
                    )
    return rows


def reference_cpu_per_message(ctx: Context) -> float:
    """The reference server's CPU per round trip at 50x10, measured now if not yet known."""
    if CPU_KEY not in ctx.shared:
        with servers(ctx, (REFERENCE,)) as targets:
            found = alternate(ctx, targets, 50, 10)
        ctx.shared[CPU_KEY] = statistics.median(w.cpu_us_per_message for w in found[REFERENCE])
    value: float = ctx.shared[CPU_KEY]
    return value
