"""Run ``rep-conformance`` several times in one process (imports paid once).

Usage: ``python -m tests.conformance_variants.run_many JOBS.json``, where the file holds a
list of argument lists for ``conformance.cli.main``; prints the exit codes as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conformance.cli import main as kit


def run(jobs_file: Path) -> list[int]:
    return [kit(argv) for argv in json.loads(jobs_file.read_text())]


if __name__ == "__main__":
    codes = run(Path(sys.argv[1]))
    print("EXIT-CODES " + json.dumps(codes))
