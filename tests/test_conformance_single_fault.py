"""One fault, one finding: a server with a single bug fails that requirement and no other.

The whole ci run against the reference server with one deliberate fault (the joiner hears
its own user_join, ROOM-004). The stray notice sits unread on the joiner's connection;
checks that then ask whether a refused message caused anything must not count it, or the
report blames ERR-004, ERR-006, AUTHZ-002 and RATE-002 ahead of the real cause.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance_variants.cores import JoinerHearsItsOwnJoin
from tests.conformance_variants.kit import run_kit
from tests.test_conformance_reference import served

pytestmark = pytest.mark.network


def test_a_single_fault_is_the_only_failed_requirement_and_first_to_fix(tmp_path: Path) -> None:
    with served(JoinerHearsItsOwnJoin) as target:
        code, report, _ = run_kit(target, tmp_path)
    assert code == 1
    failed = sorted(r["id"] for r in report["requirements"] if r["verdict"] == "fail")
    assert failed == ["ROOM-004"], [
        (r["id"], r["failures"][0]["message"][:300])
        for r in report["requirements"]
        if r["verdict"] == "fail"
    ]
    assert [cause["key"] for cause in report["fix_first"]] == ["ROOM-004"]
