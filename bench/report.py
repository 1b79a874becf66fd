"""Rows of results, their verdicts, and the two outputs: a Markdown table and JSON."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Verdict = Literal["pass", "miss", "info", "not available", "error"]
Goal = Literal["min", "max", "info"]


@dataclass(frozen=True)
class Target:
    """What a row must reach: ``ratio >= threshold`` (min) or ``checked <= threshold`` (max).

    ``on`` names the figure a max target applies to: the ratio, or the reference value
    itself when the issue states an absolute limit (kB per connection, seconds).
    """

    goal: Goal
    threshold: float = 0.0
    on: Literal["ratio", "value"] = "ratio"
    text: str = "-"

    def verdict(self, value: float | None, ratio: float | None) -> Verdict:
        checked = ratio if self.on == "ratio" else value
        if self.goal == "info":
            return "info"
        if checked is None:
            return "not available"
        if self.goal == "min":
            return "pass" if checked >= self.threshold else "miss"
        return "pass" if checked <= self.threshold else "miss"


INFO = Target("info")
#: CPU efficiency against a raw baseline, and p99 latency as a multiple of the baseline's.
CPU_FLOOR = 0.80
P99_CEILING = 1.5


def at_least(ratio: float) -> Target:
    return Target("min", ratio, "ratio", f">= {ratio:.2f}x")


def at_most(limit: float, unit: str, on: Literal["ratio", "value"] = "value") -> Target:
    text = f"<= {limit:g} {unit}".rstrip() if on == "value" else f"<= {limit:g}x"
    return Target("max", limit, on, text)


@dataclass
class Row:
    """One line of the table and one object of the JSON output.

    ``baseline`` and ``value`` are medians in ``unit``; ``ratio`` is the median of the
    per-run ratios value/baseline (runs are paired in time, which cancels most drift).
    """

    scenario: str
    unit: str
    baseline_name: str
    baseline: float | None
    value: float | None
    ratio: float | None
    target: str
    verdict: Verdict
    runs: dict[str, list[float]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def paired_ratio(values: Sequence[float], baselines: Sequence[float]) -> float | None:
    """Median of value_i / baseline_i over the runs that have both."""
    ratios = [v / b for v, b in zip(values, baselines, strict=False) if b]
    return statistics.median(ratios) if ratios else None


def make_row(
    scenario: str,
    unit: str,
    baseline_name: str,
    baselines: Sequence[float],
    values: Sequence[float],
    target: Target,
    *,
    details: dict[str, Any] | None = None,
    note: str = "",
) -> Row:
    """Summarise paired runs into a row with its verdict."""
    value = median(values)
    ratio = paired_ratio(values, baselines) if baselines else None
    return Row(
        scenario=scenario,
        unit=unit,
        baseline_name=baseline_name,
        baseline=median(baselines),
        value=value,
        ratio=ratio,
        target=target.text,
        verdict=target.verdict(value, ratio),
        runs={"baseline": list(baselines), "value": list(values)},
        details=details or {},
        note=note,
    )


def unavailable(scenario: str, unit: str, why: str, target: Target = INFO, **kw: Any) -> Row:
    """A scenario whose reference side cannot run yet; says why instead of inventing a figure."""
    baselines: list[float] = kw.pop("baselines", [])
    baseline_name: str = kw.pop("baseline_name", "-")
    return Row(
        scenario=scenario,
        unit=unit,
        baseline_name=baseline_name,
        baseline=median(baselines),
        value=None,
        ratio=None,
        target=target.text,
        verdict="not available",
        runs={"baseline": baselines, "value": []},
        details=kw.pop("details", {}),
        note=why,
    )


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "not available"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def _cell(row: Row, side: Literal["baseline", "value"]) -> str:
    number = _number(row.baseline if side == "baseline" else row.value, row.unit)
    extra = row.details.get(f"{side}_extra")
    if side == "baseline" and row.baseline_name not in ("", "-"):
        number = (
            f"{number} ({row.baseline_name})" if row.baseline is not None else row.baseline_name
        )
    return f"{number}; {extra}" if extra and number != "not available" else number


def markdown(rows: Sequence[Row]) -> str:
    lines = [
        "| scenario | baseline | reference server | ratio | target | verdict |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
        verdict = row.verdict + (f" ({row.note})" if row.note else "")
        cells = [row.scenario, _cell(row, "baseline"), _cell(row, "value"), ratio, row.target]
        lines.append("| " + " | ".join([*cells, verdict]) + " |")
    return "\n".join(lines)


def write_json(rows: Sequence[Row], path: Path, meta: dict[str, Any]) -> None:
    document = {"meta": meta, "rows": [row.as_json() for row in rows]}
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def efficiency_row(
    scenario: str,
    unit: str,
    baseline_name: str,
    baseline_cpu: Sequence[float],
    value_cpu: Sequence[float],
    floor: float | None,
) -> Row:
    """CPU efficiency: the baseline's server CPU per message over the reference server's.

    Unlike a throughput ratio it holds whoever is the bottleneck (the load generator, the
    other core's neighbours); ``floor`` None makes the row information only.
    """
    ratio = paired_ratio(baseline_cpu, value_cpu)
    target = INFO if floor is None else at_least(floor)
    return Row(
        scenario=f"{scenario}, CPU efficiency",
        unit=unit,
        baseline_name=baseline_name,
        baseline=median(baseline_cpu),
        value=median(value_cpu),
        ratio=ratio,
        target=target.text,
        verdict=target.verdict(median(value_cpu), ratio),
        runs={"baseline": list(baseline_cpu), "value": list(value_cpu)},
        note="ratio: baseline CPU / reference CPU",
    )


def latency_row(
    scenario: str,
    baseline_name: str,
    baseline_p99_ms: Sequence[float],
    value_p99_ms: Sequence[float],
    ceiling: float | None,
) -> Row:
    """p99 latency of the reference server against the baseline's, paired by window."""
    target = INFO if ceiling is None else at_most(ceiling, "", on="ratio")
    return make_row(
        f"{scenario}, p99 latency", "ms", baseline_name, baseline_p99_ms, value_p99_ms, target
    )
