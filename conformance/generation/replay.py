"""``rep-conformance replay FILE --target T``: re-run a saved failure and say FIXED or FAILED.

A replay file (written by a generated or stateful check when it fails) holds the steps of
the shrunk example: the frames each client sent and everything the spec required in
answer. Replaying performs the same steps against the target with fresh users, rooms and
collections. Exit status: 0 FIXED (every expectation met), 1 FAILED (the first unmet one
is printed with its transcript), 3 the server cannot be reached, 4 the file or target is
unusable. What it prints is redacted (:mod:`conformance.redact`): it lands in CI logs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import orjson
import pytest

from conformance.failures import ConformanceFailure
from conformance.generation.data_runner import DataRunner
from conformance.generation.explore import REPLAY_FORMAT
from conformance.harness import Harness, Run, probe_profile
from conformance.redact import redact
from conformance.target import Target, TargetError, load_target
from conformance.tokens import token_source

FIXED, FAILED, UNREACHABLE, UNUSABLE = 0, 1, 3, 4


def say(text: str) -> None:
    """Print for people and CI logs, never with a credential."""
    print(redact(text))


class ReplayFileError(ValueError):
    """The file is not a replay file this kit can run."""


def load_replay(path: Path) -> dict[str, Any]:
    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ReplayFileError(f"cannot read {path}: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != REPLAY_FORMAT:
        raise ReplayFileError(f"{path} is not a replay file (format {REPLAY_FORMAT})")
    steps = document.get("steps")
    if not isinstance(steps, list) or not all(isinstance(s, dict) and "do" in s for s in steps):
        raise ReplayFileError(f"{path} has no list of steps")
    return document


def replay(document: dict[str, Any], target: Target) -> tuple[bool, str, str]:
    """(fixed?, what failed, transcript) for one replay against ``target``.

    Raises ConnectionError when the server cannot be reached at all.
    """
    tokens = token_source(target.tokens)
    run = Run(target, probe_profile(target, tokens), tokens)
    requirements = [str(r) for r in document.get("requirements", [])]
    rep = Harness(run, requirements or ["ERR-001"], f"replay of {document.get('check')}")
    runner = DataRunner(rep)  # every step a generated check records, data steps too
    try:
        runner.replay(document["steps"])
        problem = runner.frame_problems()
        if problem is not None:
            raise problem
    except ConformanceFailure as found:
        return False, str(found), rep.transcript.render()
    finally:
        runner.close_all()
        rep.close()
    return True, "", rep.transcript.render()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="a replay file from a failed generated check")
    parser.add_argument("--target", type=Path, required=True, help="target file of the server")


def run_replay(args: argparse.Namespace) -> int:
    try:
        document = load_replay(args.file)
        target = load_target(args.target)
    except (ReplayFileError, TargetError) as exc:
        say(f"rep-conformance replay: {exc}")
        return UNUSABLE
    say(f"replaying {document.get('check')}: {len(document['steps'])} steps from {args.file}")
    if document.get("failure"):
        say(f"  it failed with: {document['failure']}")
    if document.get("seed") is not None:
        say(f"  found with hypothesis seed {document['seed']}")
    try:
        fixed, failure, transcript = replay(document, target)
    except ConnectionError as exc:
        say(f"rep-conformance replay: cannot reach {target.node.ws_url}: {exc}")
        return UNREACHABLE
    except pytest.skip.Exception as exc:
        say(f"rep-conformance replay: the target cannot run this replay: {exc}")
        return UNUSABLE
    except (ValueError, KeyError, TypeError) as exc:
        say(f"rep-conformance replay: {args.file} does not replay: {exc!r}")
        return UNUSABLE
    if fixed:
        say("FIXED: every expectation of the saved failure is met")
        return FIXED
    say(f"FAILED: {failure}")
    say("transcript:")
    say(transcript)
    return FAILED
