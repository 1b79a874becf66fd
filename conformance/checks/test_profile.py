"""Figures about the server, for the report: what it advertises and how fast it answers."""

from __future__ import annotations

import statistics
import time

import pytest

from conformance.harness import Harness


@pytest.mark.informational
def test_server_profile(rep: Harness) -> None:
    """The welcome's figures, the claimed/advertised comparison, handshake and ping latency."""
    for name, value in rep.profile.figures().items():
        rep.record(f"advertised {name}", value)
    claimed = rep.target.claimed_features
    if claimed is not None:
        rep.record("claimed features", sorted(claimed))
        rep.record("advertised but not claimed", sorted(rep.profile.features - claimed))
    started = time.monotonic()
    client = rep.connect()
    rep.record("handshake and welcome (ms)", round((time.monotonic() - started) * 1000, 2))
    round_trips = []
    limit = rep.profile.rate_max_messages or 20
    for _ in range(max(1, min(20, limit // 2))):
        sent_at = time.monotonic()
        client.expect("pong", correlation_id=client.send("ping"), requirement="LIFE-001")
        round_trips.append((time.monotonic() - sent_at) * 1000)
    rep.record("ping round trip median (ms)", round(statistics.median(round_trips), 2))
    rep.record("ping round trip max (ms)", round(max(round_trips), 2))
