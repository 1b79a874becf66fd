"""Schema-driven fuzzing: generated valid messages are answered, generated invalid ones refused.

Both checks run a boundary phase first (every schema limit at and one past it, one at a
time) and then seeded random examples from :mod:`conformance.generation`. Every example
uses fresh users and connections, so examples cannot disturb each other and each replay
file stands alone. Payloads are anchored at random to a room the example's clients joined
and to a collection a bystander watches, so success paths and leaks are both reachable.
"""

from __future__ import annotations

import pytest

from conformance.generation import settings as run_settings
from conformance.generation.explore import explore, run_cases
from conformance.generation.messages import (
    Anchors,
    Boundary,
    Message,
    any_valid_message,
    boundary_cases,
    client_types,
    frame_text,
)
from conformance.generation.mutations import (
    KINDS,
    Mutant,
    applies,
    confirm,
    dumps,
    mutants,
)
from conformance.generation.mutations import Draft as MutationDraft
from conformance.generation.scenario import ANNOUNCE, Runner
from conformance.harness import Harness
from rep_spec import catalog

SENDER = "sender"
BYSTANDER = "bystander"


def supported_types(rep: Harness) -> list[str]:
    """Client types of the features the server advertises (others are MSG-006's business)."""
    return [t for t in client_types() if rep.profile.supports(catalog().types[t].feature)]


def anchors_for(rep: Harness) -> Anchors:
    """A room and a collection of this check, and the target's stream when it names one."""
    return Anchors(
        room=rep.name("fuzz-room") if rep.profile.supports("rooms") else None,
        collection=rep.name("fuzz-col") if rep.profile.supports("data") else None,
        stream=rep.target.fixtures.stream if rep.profile.supports("streams") else None,
    )


def _register(runner: Runner, anchors: Anchors) -> None:
    """Anchor names are the check's inventions: a replay uses fresh ones."""
    runner.created.extend(name for name in (anchors.room, anchors.collection) if name)


def _has_attachments(message: Message) -> bool:
    payload = message.get("payload")
    metadata = payload.get("metadata") if isinstance(payload, dict) else None
    return isinstance(metadata, dict) and bool(metadata.get("attachments"))


def answer_valid(runner: Runner, anchors: Anchors, message: Message) -> None:
    """One valid message from a fresh member of the anchor room, and its answer judged."""
    _register(runner, anchors)
    runner.connect(SENDER, runner.name("fuzzer"), permissions=[ANNOUNCE])
    if anchors.room is not None:
        runner.request(SENDER, "room_join", {"roomId": anchors.room})
    runner.send(SENDER, frame_text(message))
    runner.expect_answer(
        SENDER,
        str(message["id"]),
        str(message["type"]),
        payload_rules=message.get("type") == "chat_message" and _has_attachments(message),
    )


def refuse_invalid(runner: Runner, anchors: Anchors, mutant: Mutant) -> None:
    """One invalid frame from a member of the room a bystander is in and whose collection it
    watches: refused with the documented code, the sender still served, the bystander told
    nothing."""
    _register(runner, anchors)
    runner.connect(BYSTANDER, runner.name("bystander"))
    runner.connect(SENDER, runner.name("fuzzer"), permissions=[ANNOUNCE])
    if anchors.room is not None:
        runner.request(BYSTANDER, "room_join", {"roomId": anchors.room})
        runner.request(SENDER, "room_join", {"roomId": anchors.room})
        runner.expect_delivery(
            BYSTANDER,
            {"type": "user_join", "about": SENDER, "roomId": anchors.room},
            requirement="ROOM-004",
        )
    if anchors.collection is not None:
        runner.request(BYSTANDER, "data_sync", {"collection": anchors.collection})
    runner.send(SENDER, mutant.frame)
    what = f"{mutant.kind}: {mutant.description}"
    runner.expect_refusal(
        SENDER,
        mutant.code,
        mutant.correlation_id,
        code_requirement=mutant.code_requirement,
        violates=mutant.violates,
        description=what,
    )
    runner.expect_quiet(BYSTANDER, requirement="ERR-006", about=what)


def boundary_mutant(case: Boundary) -> Mutant:
    """A one-past-the-limit boundary case as a mutant: the validator gives its refusal."""
    draft = MutationDraft(case.label, dumps(case.message), frozenset(), case.pointer)
    found = confirm(draft, "boundary", case.type_name)
    if found is None:
        raise RuntimeError(f"kit error: {case!r} is valid, yet one past a limit")
    return found


@pytest.mark.requirements(
    "MSG-003",
    "MSG-004",
    "MSG-005",
    "ERR-001",
    "ERR-002",
    "ERR-005",
    "ENV-009",
    "ENV-013",
    "VER-003",
    "LIFE-006",
)
def test_generated_valid_messages_get_an_answer_the_spec_allows(rep: Harness) -> None:
    """Every schema limit reached, then random valid messages of every advertised type: each
    gets its registered response or copy, or a registered error, correlated, once, in time,
    schema-valid, and the connection stays open (except after a disconnect)."""
    types = supported_types(rep)
    anchors = anchors_for(rep)
    check = "test_fuzz.py::test_generated_valid_messages_get_an_answer_the_spec_allows"
    cases = [c for t in types for c in boundary_cases(t, anchors) if c.at_limit]
    run_cases(
        rep,
        check=check,
        cases=cases,
        body=lambda runner, case: answer_valid(runner, anchors, case.message),
    )
    explore(
        rep,
        check=check,
        strategy=any_valid_message(types, anchors),
        body=lambda runner, message: answer_valid(runner, anchors, message),
        max_examples=run_settings.budget().valid_examples,
        describe=lambda message: f"valid {message.get('type')}: {frame_text(message)[:400]}",
    )
    rep.record("fuzz.valid.boundary_cases", len(cases))


@pytest.mark.requirements(
    "ENV-009",
    "ERR-001",
    "ERR-003",
    "ERR-005",
    "ERR-006",
    "ERR-007",
    "ERR-008",
    "ERR-009",
    "ERR-011",
    "MSG-001",
    "MSG-002",
    "VER-002",
    "WS-003",
)
def test_generated_invalid_messages_are_refused_with_the_documented_code(rep: Harness) -> None:
    """Every schema limit one past, then every mutation kind: the frame gets one error with
    the code the schemas give, the sender is still served, a bystander sees nothing."""
    types = supported_types(rep)
    anchors = anchors_for(rep)
    check = "test_fuzz.py::test_generated_invalid_messages_are_refused_with_the_documented_code"
    cases = [
        boundary_mutant(c) for t in types for c in boundary_cases(t, anchors) if not c.at_limit
    ]
    run_cases(
        rep,
        check=check,
        cases=cases,
        body=lambda runner, mutant: refuse_invalid(runner, anchors, mutant),
    )
    kinds = [k for k in KINDS if any(applies(k, t) for t in types)]
    for kind in kinds:
        explore(
            rep,
            check=check,
            strategy=mutants(types, anchors, [kind]),
            body=lambda runner, mutant: refuse_invalid(runner, anchors, mutant),
            max_examples=run_settings.budget().invalid_examples_per_kind,
        )
    rep.record("fuzz.invalid.boundary_cases", len(cases))
    rep.record("fuzz.invalid.kinds", len(kinds))
