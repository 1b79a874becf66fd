"""The benchmark harness runs every scenario end to end in its tiny profile.

A few hundred messages and one window per target: enough to prove that every scenario's
servers, workers and rows work, far too little for figures. Nothing here asserts a
timing; the shape of the rows is the contract that ``--json`` readers rely on.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import run
from bench.procs import ROOT
from bench.profiles import TINY
from bench.report import Row, markdown, write_json
from bench.scenarios import registry

pytestmark = pytest.mark.network

VERDICTS = {"pass", "miss", "info", "not available"}
ROW_KEYS = {
    "scenario",
    "unit",
    "baseline_name",
    "baseline",
    "value",
    "ratio",
    "target",
    "verdict",
    "runs",
    "details",
    "note",
}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_row(row: Row) -> None:
    data = row.as_json()
    assert set(data) == ROW_KEYS
    assert data["scenario"] and isinstance(data["scenario"], str)
    assert data["verdict"] in VERDICTS, f"{row.scenario}: {row.verdict} {row.note}"
    assert isinstance(data["target"], str) and data["target"]
    for key in ("baseline", "value", "ratio"):
        assert data[key] is None or _number(data[key]), (row.scenario, key, data[key])
    if data["verdict"] == "not available":
        assert data["value"] is None and data["note"], row.scenario
    else:
        assert data["value"] is not None and data["value"] > 0, row.scenario
        assert len(data["runs"]["value"]) == TINY.runs
    if data["baseline"] is not None and data["value"] is not None:
        assert data["ratio"] is not None and data["ratio"] > 0
    json.dumps(data)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("scenario", list(registry()))
def test_scenario_runs_and_rows_have_the_documented_shape(scenario: str) -> None:
    rows = run(TINY, [scenario], verbose=False)
    assert rows, f"{scenario} produced no rows"
    for row in rows:
        check_row(row)
    table = markdown(rows)
    assert table.count("\n") == len(rows) + 1
    for row in rows:
        assert row.scenario in table


def test_command_line_prints_the_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    argv = ["-m", "bench", "--profile", "tiny", "--only", "validation", "-q", "--json", str(out)]
    done = subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("| scenario | baseline | reference server | ratio |")
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["meta"]["profile"] == "tiny"
    rows = {row["scenario"]: row for row in document["rows"]}
    assert set(rows) == {
        "validation share of server CPU (ping)",
        "validation, mix of 5 client types",
    }
    share = rows["validation share of server CPU (ping)"]
    assert share["ratio"] == pytest.approx(share["value"] / share["baseline"])
    assert share["details"]["backend"]
    for row in rows.values():
        assert set(row) == ROW_KEYS


def test_write_json_round_trips(tmp_path: Path) -> None:
    row = Row("s", "msg/s", "b", 2.0, 1.0, 0.5, ">= 0.70x", "miss")
    write_json([row], tmp_path / "x.json", {"profile": "tiny"})
    document = json.loads((tmp_path / "x.json").read_text(encoding="utf-8"))
    assert document["rows"] == [row.as_json()]
