"""The load profile says what bounded its figures: the server, the rate limit, or the kit."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from conformance.checks.test_load import (
    KIT_BOUND_SHARE,
    KitMeter,
    LoadShortfall,
    judge_throughput,
    limited_by,
)


def test_a_kit_that_used_a_whole_core_is_named_as_the_limit() -> None:
    assert limited_by(KIT_BOUND_SHARE + 0.01, rate=10.0, paced_ceiling=1000.0) == "kit"
    assert limited_by(0.2, rate=950.0, paced_ceiling=1000.0) == "rate limit"
    assert limited_by(0.2, rate=500.0, paced_ceiling=1000.0) == "server"
    assert limited_by(0.2, rate=500.0, paced_ceiling=None) == "server"


def test_the_meter_counts_the_kit_s_own_cpu_time() -> None:
    meter = KitMeter()
    total = 0
    for number in range(300_000):  # a bounded busy loop: CPU time, not sleep
        total += number * number
    assert total and 0.3 < meter.share() <= 1.5


class _Rep:
    def __init__(self) -> None:
        self.figures: dict[str, Any] = {}
        self.target = SimpleNamespace(
            load=SimpleNamespace(
                max_duration=10.0,
                min_messages_per_second=100.0,
                max_p95_latency_ms=None,
                max_p99_latency_ms=None,
            )
        )

    def record(self, name: str, value: Any) -> None:
        self.figures[name] = value


@pytest.mark.parametrize(
    ("bound", "said"),
    [("kit", "kit's own load generator"), ("rate limit", "rate limit"), ("server", None)],
)
def test_a_shortfall_names_what_bounded_the_figure(bound: str, said: str | None) -> None:
    rep = _Rep()
    with pytest.raises(LoadShortfall) as raised:
        judge_throughput(rep, 10, 10, 5.0, [1.0], 0, bound)  # type: ignore[arg-type]
    message = str(raised.value)
    assert "below the threshold" in message
    if said is None:
        assert "(" not in message, message
    else:
        assert said in message, message
    assert rep.figures["load.thresholds_met"] is False
