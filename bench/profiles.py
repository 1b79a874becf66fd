"""How long and how big: the full run, ``--quick``, and the tiny mode the smoke test uses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    runs: int  # measurement windows per target; figures are medians over them
    seconds: float  # length of one window
    max_messages: int  # cap on the messages of one window, whatever its length
    fanout_window: int  # broadcasts (or SSE events) in flight at once
    fanout_members: tuple[int, ...]
    cluster_members: int  # the two-node-on-Redis variant of the room fan-out
    sse_subscribers: tuple[int, ...]
    idle_connections: int
    idle_batches: int  # connections are added in batches; RSS per connection is their median
    validation_iterations: int
    conformance_timeout: float
    conformance_selection: tuple[str, ...] = ()  # extra ``rep-conformance run`` arguments
    #: Information-only measurements: picows echo, server on uvloop, the two-node fan-out,
    #: the conformance kit's fixed cost.
    extras: bool = True


FULL = Profile(
    name="full",
    runs=5,
    seconds=2.0,
    max_messages=5_000_000,
    fanout_window=8,
    fanout_members=(100, 1000),
    cluster_members=1000,
    sse_subscribers=(100, 1000),
    idle_connections=10_000,
    idle_batches=4,
    validation_iterations=20_000,
    conformance_timeout=300.0,
)

QUICK = Profile(
    name="quick",
    runs=3,
    seconds=0.8,
    max_messages=5_000_000,
    fanout_window=8,
    fanout_members=(1000,),
    cluster_members=100,
    sse_subscribers=(1000,),
    idle_connections=1_000,
    idle_batches=2,
    validation_iterations=5_000,
    conformance_timeout=120.0,
    extras=False,
)

#: Every code path, a few hundred messages, one run: for tests, not for figures.
TINY = Profile(
    name="tiny",
    runs=1,
    seconds=0.3,
    max_messages=300,
    fanout_window=4,
    fanout_members=(5,),
    cluster_members=5,
    sse_subscribers=(5,),
    idle_connections=30,
    idle_batches=1,
    validation_iterations=100,
    conformance_timeout=120.0,
    conformance_selection=("-k", "lifecycle"),
)

PROFILES = {profile.name: profile for profile in (FULL, QUICK, TINY)}
