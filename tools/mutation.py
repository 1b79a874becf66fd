"""Mutation-testing helpers for scripts/mutation.sh: sample a session, report its score.

``sample`` keeps a seeded random share of a cosmic-ray session's mutants and marks the
rest skipped, so a run is bounded. ``report`` prints the score (killed / judged), how the
kit killed each (a failed requirement or a server that would not start), and the diff of
every survivor, for triage in docs/conformance-guide.md (Mutation testing).
"""

from __future__ import annotations

import argparse
import ast
import random
import re
from collections import Counter
from functools import cache
from pathlib import Path

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult

EXIT = re.compile(r"REP-EXIT (\d+)")
#: The kit's summary line when only SHOULD requirements failed.
WARNED = re.compile(r"^requirements:.* \d+ warn", re.M)
#: Kit exit statuses by meaning (conformance/README.md).
STATUS = {"0": "passed", "1": "a requirement failed", "3": "server did not start or went away"}


@cache
def annotation_lines(module: str) -> frozenset[int]:
    """Lines of a module that hold type annotations: with ``from __future__ import
    annotations`` they are never evaluated, so a mutant there is equivalent."""
    tree = ast.parse(Path(module).read_text(encoding="utf-8"))
    found: set[int] = set()
    for node in ast.walk(tree):
        annotations: list[ast.expr | None] = []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            annotations.append(node.returns)
            arguments = node.args
            every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
            every += [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
            annotations += [a.annotation for a in every]
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
        for annotation in annotations:
            if annotation is not None and annotation.end_lineno is not None:
                found.update(range(annotation.lineno, annotation.end_lineno + 1))
    return frozenset(found)


def in_annotation(mutation: object) -> bool:
    module = str(getattr(mutation, "module_path", ""))
    line = getattr(mutation, "start_pos", (0, 0))[0]
    return Path(module).is_file() and line in annotation_lines(module)


def sample(session: Path, keep: int, seed: int) -> None:
    with use_db(str(session), WorkDB.Mode.open) as db:
        pending = sorted(db.pending_work_items, key=lambda item: item.job_id)
        # Annotation mutants are equivalent (never evaluated): not worth a kit run.
        items = [item for item in pending if not in_annotation(item.mutations[0])]
        chosen = {item.job_id for item in random.Random(seed).sample(items, min(keep, len(items)))}
        skipped = WorkResult(worker_outcome=WorkerOutcome.SKIPPED)
        db.set_multiple_results(
            [item.job_id for item in pending if item.job_id not in chosen], skipped
        )
    print(
        f"{len(chosen)} of {len(items)} mutants kept (seed {seed}); "
        f"{len(pending) - len(items)} in type annotations left out as equivalent"
    )


def report(session: Path) -> None:
    killed = survived = warned = 0
    how: Counter[str] = Counter()
    survivors = []
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome is WorkerOutcome.SKIPPED:
                continue
            found = EXIT.search(result.output or "")
            status = found.group(1) if found else ("timeout" if result.output == "timeout" else "?")
            if result.test_outcome is TestOutcome.SURVIVED and in_annotation(item.mutations[0]):
                how["survived, equivalent: a type annotation (never evaluated)"] += 1
            elif result.test_outcome is TestOutcome.SURVIVED:
                survived += 1
                survivors.append((item, result))
                if WARNED.search(result.output or ""):
                    warned += 1
            elif result.test_outcome is TestOutcome.KILLED:
                killed += 1
                how["killed: " + STATUS.get(status, f"exit {status}")] += 1
        pending = db.num_work_items - db.num_results
    judged = killed + survived
    score = 100 * killed / judged if judged else 0.0
    print(f"mutants judged: {judged}, killed: {killed}, survived: {survived}, pending: {pending}")
    print(f"score: {score:.1f} % (equivalent annotation mutants not counted)")
    if warned:
        strict = 100 * (killed + warned) / judged
        print(f"  {warned} survivor(s) broke only a SHOULD (a warning; fails with --strict)")
        print(f"score with --strict: {strict:.1f} %")
    for reason, count in how.most_common():
        print(f"  {reason}: {count}")
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
