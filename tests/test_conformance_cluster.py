"""The cluster checks against two reference nodes sharing a Redis broker.

Uses ``rep-conformance run --reference --cluster REDIS_URL``, the command users run; skips
without redis-server (fails instead under REP_REQUIRE_ALL=1, as in CI).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reference_server import redis_fixture

pytestmark = pytest.mark.network
redis_server = redis_fixture.redis_server


def test_the_cluster_checks_pass_on_two_reference_nodes(
    redis_server: redis_fixture.RedisProcess, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance.cli",
            "run",
            "--reference",
            "--cluster",
            redis_server.url,
            "--report-dir",
            str(reports),
            "-k",
            "test_cluster",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    report = json.loads((reports / "report.json").read_text())
    verdicts = {t["id"]: t["verdict"] for t in report["tests"]}
    assert len(verdicts) == 5 and set(verdicts.values()) == {"pass"}, (
        verdicts,
        done.stdout[-3000:],
    )
    by_id = {r["id"]: r["verdict"] for r in report["requirements"]}
    assert [by_id[f"CLUSTER-00{n}"] for n in range(1, 6)] == ["pass"] * 5
    assert done.returncode == 0
    assert "nodes:" in (reports / "target.yaml").read_text()
