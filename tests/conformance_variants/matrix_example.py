"""Write the report of the conformance matrix's example failing server.

``python -m tests.conformance_variants.matrix_example OUT.json`` serves the reference
server with two deliberate faults (the joiner hears its own ``user_join``; updates ignore
the expected version), runs the whole kit against it with the second fault accepted in
the target's baseline, and copies the report to OUT.json. The matrix shows the entry as a
test entry: a failed section, a baselined one, and the skipped cluster section.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from tests.conformance_variants.cores import JoinerHearsItsOwnJoin, UpdateIgnoresExpectedVersion
from tests.conformance_variants.kit import run_kit
from tests.test_conformance_reference import served


class JoinEchoAndBlindUpdates(JoinerHearsItsOwnJoin, UpdateIgnoresExpectedVersion):
    """ROOM-004 and DATA-004 broken at once (the two faults override different steps)."""


BASELINE = [
    {
        "requirement": "DATA-004",
        "reason": "Optimistic concurrency lands in the next release; accepted until then.",
    }
]


def write_example(out: Path) -> int:
    """Run the kit; return its exit status (1: the run failed, as it must)."""
    with served(JoinEchoAndBlindUpdates) as target, tempfile.TemporaryDirectory() as tmp:
        target["name"] = "example broken server 0.1.0"
        target["baseline"] = BASELINE
        code, _, _ = run_kit(target, Path(tmp))
        shutil.copyfile(Path(tmp) / "reports" / "report.json", out)
    return code


if __name__ == "__main__":
    raise SystemExit(0 if write_example(Path(sys.argv[1])) == 1 else 1)
