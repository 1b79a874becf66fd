"""Scenario: the conformance kit's own load generator, and where its ceiling lies.

``rep-conformance run --profile load`` measures servers in any language, so a user of a
fast server must know when a figure is the kit's and not the server's. Here the kit's
client (``conformance.client.Client``: a reader thread per connection, every frame checked
against the schemas) pings, as its load profile's held connections do, first the raw
aiohttp echo (which costs next to nothing: the rate the kit reaches there is its
ceiling) and then the reference server, in alternating windows, with the kit's CPU share
beside each figure.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Iterator

from bench.procs import ServerProcess, baseline_server, cpu_seconds, reference_server
from bench.report import INFO, Row, make_row
from bench.scenarios import Context
from conformance.client import Client, open_websocket
from conformance.target import Timeouts
from conformance.transcript import Transcript
from reference_server.auth import mint_token
from rep_spec import catalog

CONNECTIONS = 10
BASELINE = "kit against the aiohttp echo"
TIMEOUTS = Timeouts(answer=10.0, silence=0.5, connect=10.0, heartbeat_tolerance=1.0)


@contextlib.contextmanager
def on_client_cores() -> Iterator[None]:
    """The kit runs here, in the bench's own process: keep it off the server's core."""
    before = os.sched_getaffinity(0)
    cpus = sorted(before)
    if len(cpus) > 1:
        os.sched_setaffinity(0, set(cpus[1:]))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def open_clients(server: ServerProcess, secret: str, reference: bool) -> list[Client]:
    transcript = Transcript()
    clients = []
    for index in range(CONNECTIONS):
        label = f"kit-{index}"
        handshake = open_websocket(
            server.ws_url,
            transcript=transcript,
            channel=label,
            token=mint_token(secret, label) if reference else None,
            timeout=TIMEOUTS.connect,
        )
        if handshake.connection is None:
            raise RuntimeError(f"{server.name} refused the kit: HTTP {handshake.status}")
        client = Client(
            handshake.connection,
            label=label,
            user_id=label,
            transcript=transcript,
            timeouts=TIMEOUTS,
            default_requirements=(),
            protocol_version=catalog().protocol_version,
        )
        if reference:
            client.expect("auth", within=TIMEOUTS.answer)
        clients.append(client)
    return clients


def window(clients: list[Client], server: ServerProcess, seconds: float) -> dict[str, float]:
    """Rounds of one ping per connection, all sent, then all awaited (the load profile's
    pattern), for ``seconds``: round trips per second and both sides' CPU shares."""
    answered = 0
    kit_before, server_before = time.process_time(), cpu_seconds(server.pid)
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        sent = [(client, client.send("ping")) for client in clients]
        for client, ping in sent:
            client.expect("pong", correlation_id=ping, within=TIMEOUTS.answer)
            answered += 1
    elapsed = time.monotonic() - started
    return {
        "rate": answered / elapsed,
        "kit_cpu_share": (time.process_time() - kit_before) / elapsed,
        "server_cpu_share": (cpu_seconds(server.pid) - server_before) / elapsed,
    }


def _extra(windows: list[dict[str, float]]) -> str:
    kit = statistics.median(w["kit_cpu_share"] for w in windows)
    server = statistics.median(w["server_cpu_share"] for w in windows)
    return f"kit CPU {kit:.2f} of a core, server CPU {server:.2f}"


def run(ctx: Context) -> list[Row]:
    profile = ctx.profile
    found: dict[str, list[dict[str, float]]] = {"baseline": [], "value": []}
    with (
        baseline_server("echo", ctx.workdir) as echo,
        reference_server(ctx.secret, ctx.workdir, name="kitload") as reference,
        on_client_cores(),
    ):
        targets = {"baseline": (echo, False), "value": (reference, True)}
        opened = {side: open_clients(s, ctx.secret, ref) for side, (s, ref) in targets.items()}
        try:
            for side, (server, _) in targets.items():
                window(opened[side], server, min(0.3, profile.seconds))  # warm-up
            for _ in range(profile.runs):
                for side, (server, _) in targets.items():
                    found[side].append(window(opened[side], server, profile.seconds))
        finally:
            for clients in opened.values():
                for client in clients:
                    client.close()
    return [
        make_row(
            f"conformance kit ping load, {CONNECTIONS} connections",
            "round trips/s",
            BASELINE,
            [w["rate"] for w in found["baseline"]],
            [w["rate"] for w in found["value"]],
            INFO,
            details={
                "baseline_extra": _extra(found["baseline"]),
                "value_extra": _extra(found["value"]),
                "baseline_kit_cpu_share": statistics.median(
                    w["kit_cpu_share"] for w in found["baseline"]
                ),
                "value_kit_cpu_share": statistics.median(
                    w["kit_cpu_share"] for w in found["value"]
                ),
            },
            note="the baseline figure is the kit's own ceiling",
        )
    ]
