"""Negative generation: every mutant is refused by the validator with the code the spec leads
one to expect, and each mutation kind really produces invalid frames."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from conformance.generation.messages import Anchors, client_types, frame_text
from conformance.generation.mutations import (
    CODE_REQUIREMENT,
    KINDS,
    Mutant,
    applies,
    mutants,
    outside_strings,
    refusal,
)
from rep_spec import catalog, requirements

ANCHORS = Anchors(room="room-a", collection="col-a", stream="stream-a")
CHECK = settings(
    max_examples=40,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_mutant_is_refused_with_the_code_its_kind_anticipates(kind: str) -> None:
    """The validator (the oracle) and the mutation kind (what the spec's order of checks
    predicts) agree on every frame; the code a server must send is the validator's."""
    types = [t for t in client_types() if applies(kind, t)]

    @given(mutants(types, ANCHORS, [kind]))
    @CHECK
    def refused(mutant: Mutant) -> None:
        problem = refusal(mutant.frame)
        assert problem is not None, mutant
        assert problem.code == mutant.code
        assert mutant.code in mutant.anticipated, mutant
        assert mutant.code_requirement == CODE_REQUIREMENT[mutant.code]
        assert mutant.violates in requirements(), mutant

    refused()


def test_every_kind_applies_to_some_type() -> None:
    for kind in KINDS:
        assert any(applies(kind, t) for t in client_types()), kind


def test_only_kinds_with_a_limit_are_restricted() -> None:
    assert not applies("huge-number", "stream_unsubscribe")
    assert applies("huge-number", "chat_message")
    assert applies("invalid-json", "stream_unsubscribe")


def _sample(kind: str, type_name: str = "chat_message") -> list[Mutant]:
    found: list[Mutant] = []

    @given(mutants([type_name], ANCHORS, [kind]))
    @CHECK
    def collect(mutant: Mutant) -> None:
        found.append(mutant)

    collect()
    return found


def test_huge_numbers_go_past_64_bits_on_the_wire() -> None:
    """Integers of 20 digits and more, written as JSON numbers, refused for their bound."""
    for mutant in _sample("huge-number"):
        assert isinstance(mutant.frame, str)
        assert re.search(r"[:\[,]-?[0-9]{20,}[,}\]]", mutant.frame), mutant
        assert mutant.code == "invalid_payload", mutant


def test_binary_frames_are_unsupported_frame_without_correlation() -> None:
    for mutant in _sample("binary-frame"):
        assert isinstance(mutant.frame, bytes)
        assert (mutant.code, mutant.correlation_id, mutant.violates) == (
            "unsupported_frame",
            None,
            "WS-003",
        )


def test_invalid_json_is_never_parsed() -> None:
    for mutant in _sample("invalid-json"):
        assert isinstance(mutant.frame, str)
        try:
            decoded: Any = orjson.loads(mutant.frame)
        except orjson.JSONDecodeError:
            continue
        assert not isinstance(decoded, dict), mutant


def test_wrong_direction_uses_server_only_types() -> None:
    server_only = {t.name for t in catalog().types.values() if not t.sendable_by("client")}
    for mutant in _sample("wrong-direction", "ping"):
        assert orjson.loads(mutant.frame)["type"] in server_only
        assert mutant.code == "invalid_direction"


def test_deep_nesting_reaches_hundreds_of_levels_within_parser_limits() -> None:
    """Deep, but under 1024 levels: past that, common parsers (orjson among them) refuse
    well-formed JSON, and which code a server owes would be a matter of its parser."""
    frames = [str(mutant.frame) for mutant in _sample("deep-nesting")]
    depths = [max(frame.count("["), frame.count("{")) for frame in frames]
    assert max(depths) > 32
    assert max(depths) < 1000


def test_mutants_keep_a_readable_id_when_they_do_not_break_it() -> None:
    """Payload faults keep the id, so the refusal must be correlated (ERR-003)."""
    for mutant in _sample("too-many"):
        assert mutant.correlation_id is not None, mutant


def test_insertions_outside_strings_never_land_in_a_string() -> None:
    text = frame_text({"a": 'x,{}"y', "b": [1, 2], "c": {"d": "\\"}})
    positions = outside_strings(text)
    for index in positions:
        broken = text[:index] + "@" + text[index:]
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(broken)
