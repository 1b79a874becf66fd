"""Replayable steps without a server: placeholders out, fresh names in, settings profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.failures import ConformanceFailure
from conformance.generation import settings as run_settings
from conformance.generation.explore import first_failure
from conformance.generation.scenario import PLACEHOLDER, Runner
from conformance.harness import Harness, Run
from conformance.profile import ServerProfile
from conformance.target import parse_target
from conformance.tokens import token_source

TARGET = {"ws_url": "ws://127.0.0.1:9/ws", "tokens": {"jwt": {"secret": "s"}}}


@pytest.fixture
def rep() -> Harness:
    target = parse_target(TARGET)
    welcome = {"type": "auth", "payload": {"protocolVersion": "1.0", "features": ["rooms"]}}
    run = Run(target, ServerProfile(welcome), token_source(target.tokens))
    return Harness(run, ("ERR-001",), "unit")


def test_invented_names_become_placeholders_with_their_prefix(rep: Harness) -> None:
    runner = Runner(rep)
    room = runner.name("fuzz-room")
    user = runner.name("fuzzer")
    runner.steps.append(
        {"do": "send", "client": "c", "text": f'{{"roomId":"{room}","u":"{user}"}}'}
    )
    runner.steps.append({"do": "connect", "client": "c", "user": user, "roles": ["user"]})
    steps, placeholders = runner.recorded()
    assert placeholders == ["{{fuzz-room-1}}", "{{fuzzer-2}}"]
    assert room not in str(steps) and user not in str(steps)
    assert steps[0]["text"] == '{"roomId":"{{fuzz-room-1}}","u":"{{fuzzer-2}}"}'


def test_a_longer_name_is_never_cut_by_a_shorter_one(rep: Harness) -> None:
    runner = Runner(rep)
    names = [runner.name("room") for _ in range(12)]
    runner.steps.append({"do": "x", "names": names})
    steps, _ = runner.recorded()
    assert len(set(steps[0]["names"])) == 12
    assert all(PLACEHOLDER.fullmatch(n) for n in steps[0]["names"])


def test_a_replay_gets_fresh_names_the_same_each_time(rep: Harness) -> None:
    runner = Runner(rep)
    resolved = runner.resolve({"a": "{{room-1}}", "b": ["{{room-1}}", "x {{user-2}} y"]})
    first = resolved["a"]
    assert first.startswith("room-") and resolved["b"][0] == first
    assert resolved["b"][1].startswith("x user-") and resolved["b"][1].endswith(" y")
    assert first in runner.created  # a replay's names are inventions too


def test_an_unknown_step_is_refused(rep: Harness) -> None:
    with pytest.raises(ValueError, match="unknown step"):
        Runner(rep).replay([{"do": "format_disk"}])


def test_failures_are_found_inside_groups_and_contexts() -> None:
    inner = ConformanceFailure(["ERR-001"], expected="x", received="y")
    assert first_failure(ExceptionGroup("g", [ValueError("v"), inner])) is inner
    try:
        try:
            raise inner
        except ConformanceFailure as exc:
            raise RuntimeError("flaky") from exc
    except RuntimeError as outer:
        assert first_failure(outer) is inner
    assert first_failure(ValueError("v")) is None


def test_profiles_are_registered_and_seeds_are_fixed_or_drawn(tmp_path: Path) -> None:
    try:
        run_settings.configure("ci", None, tmp_path)
        assert run_settings.run_seed() == run_settings.CI_SEED
        assert run_settings.replay_dir() == tmp_path
        ci = run_settings.budget()
        run_settings.configure("thorough")
        drawn = run_settings.run_seed()
        assert drawn == run_settings.run_seed()  # one seed per run
        assert run_settings.budget().valid_examples > 10 * ci.valid_examples
        run_settings.configure("thorough", 42)
        assert run_settings.run_seed() == 42
        assert run_settings.hypothesis_settings(7).max_examples == 7
        with pytest.raises(ValueError, match="unknown profile"):
            run_settings.configure("fast")
    finally:
        run_settings.configure()
