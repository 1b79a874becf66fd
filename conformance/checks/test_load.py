"""The load profile (``rep-conformance run --profile load``): figures, held to thresholds.

Informational: it names no requirement and runs only with the load profile. Two phases,
as the seed's load tests have them: N connections opened, held (kept alive with pings at
half the advertised heartbeat interval) and verified (each answers a ping); then M chat
messages from S senders to one receiver in one room. Each sender keeps under the rate
limit the server advertises, so the figures measure delivery, not refusals. The receiver's
delivered messages per second and the send-to-delivery latency percentiles go into the
JSON and HTML reports; a figure past a threshold of the target file's ``load`` section
fails the check. Every wait ends by ``load.max_duration``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from conformance import steps
from conformance.client import Client, correlation_of
from conformance.failures import ConformanceFailure
from conformance.harness import Harness

#: Share of the advertised rate limit the senders use, leaving room for clock differences.
RATE_SHARE = 0.8
#: The kit is one Python process: past this share of one core, its own load generator,
#: not the server, bounds the figures, and the report says so beside them.
KIT_BOUND_SHARE = 0.85
#: Delivery within this share of what the senders' pacing allows: the rate limit bounds it.
PACE_BOUND_SHARE = 0.9


class LoadShortfall(AssertionError):
    """The server did not carry the load the target file asks for."""


class KitMeter:
    """The kit's own CPU time over a phase, as a share of one core's wall-clock time."""

    def __init__(self) -> None:
        self._cpu = time.process_time()
        self._wall = time.monotonic()

    def share(self) -> float:
        wall = max(time.monotonic() - self._wall, 1e-9)
        return (time.process_time() - self._cpu) / wall


def limited_by(kit_share: float, rate: float, paced_ceiling: float | None) -> str:
    """What bounded a throughput figure: the kit, the advertised rate limit, or the server."""
    if kit_share >= KIT_BOUND_SHARE:
        return "kit"
    if paced_ceiling is not None and rate >= PACE_BOUND_SHARE * paced_ceiling:
        return "rate limit"
    return "server"


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def _connect(rep: Harness, label: str) -> Client:
    try:
        return rep.connect(rep.user(label), label=label)
    except (ConformanceFailure, ConnectionError, OSError) as exc:
        raise LoadShortfall(f"a {label} connection could not be opened: {exc}") from exc


def _ping_all(clients: Sequence[Client], within: float) -> int:
    """Ping every client at once; how many answered within ``within`` seconds."""
    sent = [(client, client.send("ping")) for client in clients]
    deadline = time.monotonic() + within
    answered = 0
    for client, ping in sent:
        remaining = max(0.0, deadline - time.monotonic())
        try:
            client.expect("pong", correlation_id=ping, within=remaining, requirement="LIFE-001")
        except ConformanceFailure:
            continue
        answered += 1
    return answered


def hold_connections(rep: Harness, count: int, hold: float, deadline: float) -> None:
    """Phase 1: open ``count`` connections, keep them alive ``hold`` seconds, verify each."""
    started = time.monotonic()
    meter = KitMeter()
    clients: list[Client] = []
    handshakes: list[float] = []
    for _ in range(count):
        if time.monotonic() > deadline:
            raise LoadShortfall(f"only {len(clients)} of {count} connections opened in time")
        opened = time.monotonic()
        clients.append(_connect(rep, "held"))
        handshakes.append((time.monotonic() - opened) * 1000)
    interval = (rep.profile.heartbeat_interval_ms or 30_000) / 2000
    hold_until = min(time.monotonic() + hold, deadline)
    while time.monotonic() < hold_until:
        time.sleep(max(0.0, min(interval, hold_until - time.monotonic())))
        _ping_all(clients, rep.timeouts.answer)
    open_now = [c for c in clients if c.is_open()]
    answered = _ping_all(open_now, rep.timeouts.answer)
    rep.record("load.connections", count)
    rep.record("load.connections.held", answered)
    rep.record("load.connections.handshake_ms.p50", round(percentile(handshakes, 0.5), 2))
    rep.record("load.connections.handshake_ms.p95", round(percentile(handshakes, 0.95), 2))
    rep.record("load.connections.seconds", round(time.monotonic() - started, 3))
    rep.record("load.connections.kit_cpu_share", round(meter.share(), 3))
    for client in clients:
        client.close()
    if answered < count:
        raise LoadShortfall(
            f"{count - answered} of {count} held connections did not answer a ping "
            f"after {hold:g} s (closed: {sum(not c.is_open() for c in clients)})"
        )


def _keep_alive(client: Client, interval: float, stop: threading.Event) -> None:
    """A client that only listens pings at half the heartbeat interval, so the server does
    not take it for dead (LIFE-003, LIFE-005)."""
    while not stop.wait(interval) and client.is_open():
        try:
            client.send("ping")
        except ConformanceFailure:
            return


def _pace(rep: Harness) -> float:
    """Seconds between two messages of one sender, under the advertised rate limit."""
    window = rep.profile.rate_window_ms
    allowed = rep.profile.rate_max_messages
    if not window or not allowed:
        return 0.0
    return window / 1000 / (allowed * RATE_SHARE)


def send_share(
    client: Client, room: str, count: int, pace: float, sent_at: dict[str, float], lock: Any
) -> None:
    """One sender's messages, evenly paced; records each message's send time."""
    next_slot = time.monotonic()
    for index in range(count):
        delay = next_slot - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        envelope = client.envelope(
            "chat_message", {"roomId": room, "content": f"load {client.label} {index}"}
        )
        with lock:
            sent_at[str(envelope["id"])] = client.transcript.now()
        client.send_json(envelope)
        next_slot += pace


def _await_arrivals(
    receiver: Client,
    threads: Sequence[threading.Thread],
    sent_at: dict[str, float],
    lock: Any,
    messages: int,
    deadline: float,
) -> dict[str, float]:
    """Arrival time at the receiver of each message sent, once all arrived or at the deadline."""
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    arrivals: dict[str, float] = {}
    while True:
        with lock:
            expected = set(sent_at)
        arrivals = {
            str(correlation_of(m)): at
            for at, m in receiver.received()
            if m.get("type") == "chat_message" and correlation_of(m) in expected
        }
        if len(arrivals) >= messages or time.monotonic() >= deadline:
            return arrivals
        time.sleep(0.02)


def room_throughput(rep: Harness, messages: int, senders: int, deadline: float) -> None:
    """Phase 2: ``messages`` chat messages from ``senders`` clients to a receiver's room."""
    room = rep.name("load-room")
    receiver = _connect(rep, "receiver")
    steps.join(receiver, room)
    writers = [_connect(rep, "sender") for _ in range(senders)]
    for writer in writers:
        steps.join(writer, room)
    pace = _pace(rep)
    shares = [messages // senders + (1 if i < messages % senders else 0) for i in range(senders)]
    sent_at: dict[str, float] = {}
    lock = threading.Lock()
    threads = [
        threading.Thread(
            target=send_share,
            args=(writer, room, share, pace, sent_at, lock),
            name=f"rep-load-{writer.label}",
            daemon=True,
        )
        for writer, share in zip(writers, shares, strict=True)
    ]
    stop = threading.Event()
    interval = (rep.profile.heartbeat_interval_ms or 30_000) / 2000
    listener = threading.Thread(
        target=_keep_alive, args=(receiver, interval, stop), name="rep-load-ping", daemon=True
    )
    listener.start()
    meter = KitMeter()
    for thread in threads:
        thread.start()
    try:
        arrivals = _await_arrivals(receiver, threads, sent_at, lock, messages, deadline)
    finally:
        stop.set()
        listener.join(2.0)
    refused = sum(1 for w in writers for _, m in w.received() if m.get("type") == "error")
    latencies = [(arrivals[i] - sent_at[i]) * 1000 for i in arrivals]
    first_send = min(sent_at.values(), default=0.0)
    last_arrival = max(arrivals.values(), default=first_send)
    elapsed = max(last_arrival - first_send, 1e-9)
    rate = len(arrivals) / elapsed
    kit_share = meter.share()
    paced_ceiling = senders / pace if pace else None
    bound = limited_by(kit_share, rate, paced_ceiling)
    rep.record("load.messages.sent", len(sent_at))
    rep.record("load.messages.delivered", len(arrivals))
    rep.record("load.messages.refused", refused)
    rep.record("load.messages.senders", senders)
    rep.record("load.messages.pace_ms", round(pace * 1000, 2))
    rep.record("load.messages.seconds", round(elapsed, 3))
    rep.record("load.messages_per_second", round(rate, 1))
    rep.record("load.messages.kit_cpu_share", round(kit_share, 3))
    if paced_ceiling is not None:
        rep.record("load.messages.paced_ceiling_per_second", round(paced_ceiling, 1))
    rep.record("load.messages.limited_by", bound)
    if latencies:
        for share, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            rep.record(f"load.latency_ms.{name}", round(percentile(latencies, share), 2))
    judge_throughput(rep, messages, len(arrivals), rate, latencies, refused, bound)


def judge_throughput(
    rep: Harness,
    messages: int,
    delivered: int,
    rate: float,
    latencies: list[float],
    refused: int,
    bound: str = "server",
) -> None:
    """Compare the figures with the target file's thresholds; all shortfalls in one message.

    A shortfall the kit itself or the advertised rate limit caused says so: the figure is
    then not the server's speed."""
    load = rep.target.load
    shortfalls = []
    if delivered < messages:
        shortfalls.append(
            f"{messages - delivered} of {messages} messages did not reach the receiver within "
            f"{load.max_duration:g} s ({refused} refused)"
        )
    if rate < load.min_messages_per_second:
        shortfalls.append(
            f"{rate:.1f} delivered messages/s, below the threshold of "
            f"{load.min_messages_per_second:g}"
        )
    limits = ((0.95, load.max_p95_latency_ms, "p95"), (0.99, load.max_p99_latency_ms, "p99"))
    for share, limit, name in limits:
        if limit is not None and latencies and percentile(latencies, share) > limit:
            shortfalls.append(
                f"{name} latency {percentile(latencies, share):.1f} ms above {limit:g} ms"
            )
    rep.record("load.thresholds_met", not shortfalls)
    if shortfalls:
        cause = {
            "kit": "the kit's own load generator used a whole core: it, not the server, was "
            "the limit; run the kit on a faster machine or lower the load",
            "rate limit": "the senders were paced by the server's advertised rate limit; "
            "more senders (load.senders) carry more",
        }.get(bound)
        raise LoadShortfall("; ".join(shortfalls) + (f" ({cause})" if cause else ""))


@pytest.mark.load
@pytest.mark.informational
@pytest.mark.features("rooms", "chat")
def test_load_connections_are_held_and_a_room_carries_the_message_load(rep: Harness) -> None:
    """N connections held and verified, then M messages from S senders to one receiver:
    throughput and latency percentiles against the target file's thresholds."""
    load = rep.target.load
    deadline = time.monotonic() + load.max_duration
    hold_connections(rep, load.connections, load.hold, deadline)
    room_throughput(rep, load.messages, min(load.senders, load.messages), deadline)
