"""Mutation-testing helpers for scripts/mutation.sh: sample a session, report its score.

``sample`` keeps a seeded random share of a cosmic-ray session's mutants and marks the
rest skipped, so a run is bounded. ``report`` prints the score (killed / judged), how the
kit killed each (a failed requirement or a server that would not start), and the diff of
every survivor, for triage in docs/detection-power.md.
"""

from __future__ import annotations

import argparse
import random
import re
from collections import Counter
from pathlib import Path

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult

EXIT = re.compile(r"REP-EXIT (\d+)")
#: Kit exit statuses by meaning (conformance/README.md).
STATUS = {"0": "passed", "1": "a requirement failed", "3": "server did not start or went away"}


def sample(session: Path, keep: int, seed: int) -> None:
    with use_db(str(session), WorkDB.Mode.open) as db:
        items = sorted(db.pending_work_items, key=lambda item: item.job_id)
        chosen = {item.job_id for item in random.Random(seed).sample(items, min(keep, len(items)))}
        skipped = WorkResult(worker_outcome=WorkerOutcome.SKIPPED)
        db.set_multiple_results(
            [item.job_id for item in items if item.job_id not in chosen], skipped
        )
    print(f"{len(chosen)} of {len(items)} mutants kept (seed {seed})")


def report(session: Path) -> None:
    killed = survived = 0
    how: Counter[str] = Counter()
    survivors = []
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome is WorkerOutcome.SKIPPED:
                continue
            found = EXIT.search(result.output or "")
            status = found.group(1) if found else ("timeout" if result.output == "timeout" else "?")
            if result.test_outcome is TestOutcome.SURVIVED:
                survived += 1
                survivors.append((item, result))
            elif result.test_outcome is TestOutcome.KILLED:
                killed += 1
                how[STATUS.get(status, f"exit {status}")] += 1
        pending = db.num_work_items - db.num_results
    judged = killed + survived
    score = 100 * killed / judged if judged else 0.0
    print(f"mutants judged: {judged}, killed: {killed}, survived: {survived}, pending: {pending}")
    print(f"score: {score:.1f} %")
    for reason, count in how.most_common():
        print(f"  killed because {reason}: {count}")
    for item, result in survivors:
        mutation = item.mutations[0]
        print(
            f"\nSURVIVED {item.job_id} {mutation.module_path}:{mutation.start_pos[0]} "
            f"{mutation.operator_name}"
        )
        print(result.diff or "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    sampling = commands.add_parser("sample")
    sampling.add_argument("session", type=Path)
    sampling.add_argument("--keep", type=int, required=True)
    sampling.add_argument("--seed", type=int, default=1)
    reporting = commands.add_parser("report")
    reporting.add_argument("session", type=Path)
    args = parser.parse_args()
    if args.command == "sample":
        sample(args.session, args.keep, args.seed)
    else:
        report(args.session)


if __name__ == "__main__":
    main()
