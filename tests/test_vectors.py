"""The test vectors in schemas/vectors: well-formed, complete, and in agreement with rep_spec.

The vectors are the language-neutral contract, in the style of the JSON-Schema-Test-Suite:
each file holds whole messages of one type from one sender, each marked valid or invalid.
An invalid case names the requirement it breaks, the JSON pointer of the fault and, for a
client message, the error code a server answers it with. These tests keep the files honest
(meta schema, sanity rules, coverage of the registry and of fault kinds) and run every case
through :class:`rep_spec.MessageValidator`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from rep_spec import MessageValidator, Problem, catalog, requirements, schema_dir
from rep_spec.schema_files import load_json

VECTOR_DIR = schema_dir() / "vectors"
VECTOR_FILES = sorted(VECTOR_DIR.rglob("*.json"))
META_SCHEMA = "meta/vectors.schema.json"
SENDERS = ("client", "server")
MIXED = "*"
MIN_VALID = 3
MIN_INVALID = 5
REQUIRED_FAULTS = {"missing_required", "wrong_type", "over_limit", "unknown_property", "bad_format"}
# Fault kinds that have an error code of their own when a client commits them.
FAULT_CODES = {
    "bad_version": "unsupported_version",
    "wrong_direction": "invalid_direction",
    "unknown_type": "unknown_type",
}


def relative(path: Path) -> str:
    return path.relative_to(VECTOR_DIR).as_posix()


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


DOCS: dict[str, dict[str, Any]] = {relative(path): load(path) for path in VECTOR_FILES}
TYPED = {name: doc for name, doc in DOCS.items() if doc.get("type") != MIXED}


@dataclass(frozen=True)
class Case:
    file: str
    sender: str
    body: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.file}::{self.body.get('description')}"

    @property
    def valid(self) -> bool:
        return bool(self.body.get("valid"))


CASES = [
    Case(name, doc.get("sender", ""), case)
    for name, doc in DOCS.items()
    for case in doc.get("tests", [])
]
INVALID_CASES = [case for case in CASES if not case.valid]


@pytest.fixture(scope="module")
def validator() -> MessageValidator:
    return MessageValidator()


@pytest.fixture(scope="module")
def meta_validator() -> Draft202012Validator:
    return Draft202012Validator(
        load_json(META_SCHEMA), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


# --------------------------------------------------------------------------- the files


def test_vector_files_are_found_and_filed_by_sender() -> None:
    assert len(VECTOR_FILES) >= 32
    for path in VECTOR_FILES:
        parts = path.relative_to(VECTOR_DIR).parts
        assert len(parts) == 2 and parts[0] in SENDERS, f"misplaced vector file {relative(path)}"


@pytest.mark.parametrize("name", sorted(DOCS))
def test_file_matches_the_meta_schema(name: str, meta_validator: Draft202012Validator) -> None:
    errors = sorted(meta_validator.iter_errors(DOCS[name]), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def _file(sender: str, *cases: dict[str, Any]) -> dict[str, Any]:
    return {"description": "d", "type": "ping", "sender": sender, "tests": list(cases)}


GOOD_INVALID = {
    "description": "x",
    "data": {},
    "valid": False,
    "requirement": "ENV-001",
    "code": "invalid_envelope",
    "pointer": "/id",
    "fault": "missing_required",
}


def _without(case: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in case.items() if k != key}


@pytest.mark.parametrize(
    ("document", "why"),
    [
        (_file("client", _without(GOOD_INVALID, "requirement")), "invalid without requirement"),
        (_file("client", _without(GOOD_INVALID, "pointer")), "invalid without pointer"),
        (_file("client", _without(GOOD_INVALID, "code")), "client invalid without code"),
        (_file("server", GOOD_INVALID), "server case with a code"),
        (_file("client", {**GOOD_INVALID, "valid": True}), "valid case naming a fault"),
        (_file("client", {**GOOD_INVALID, "pointer": "id"}), "pointer without leading slash"),
        (_file("client", {**GOOD_INVALID, "fault": "typo"}), "unknown fault kind"),
        (_file("bot", GOOD_INVALID), "unknown sender"),
        ({**_file("client", GOOD_INVALID), "type": "Ping"}, "type that is no type name"),
        (_file("client"), "no cases"),
    ],
)
def test_meta_schema_rejects_malformed_files(
    document: dict[str, Any], why: str, meta_validator: Draft202012Validator
) -> None:
    assert not meta_validator.is_valid(document), why


def test_meta_schema_accepts_the_smallest_files(meta_validator: Draft202012Validator) -> None:
    meta_validator.validate(_file("client", GOOD_INVALID))
    meta_validator.validate(_file("server", _without(GOOD_INVALID, "code")))
    meta_validator.validate(_file("server", {"description": "v", "data": None, "valid": True}))
    meta_validator.validate({**_file("client", GOOD_INVALID), "type": MIXED})


@pytest.mark.parametrize("name", sorted(DOCS))
def test_file_sits_under_its_sender_and_type(name: str) -> None:
    doc = DOCS[name]
    sender, filename = name.split("/")
    assert doc["sender"] == sender
    if doc["type"] != MIXED:
        assert filename == f"{doc['type']}.json"


@pytest.mark.parametrize("name", sorted(DOCS))
def test_descriptions_are_unique_within_a_file(name: str) -> None:
    descriptions = [case["description"] for case in DOCS[name]["tests"]]
    repeated = sorted({d for d in descriptions if descriptions.count(d) > 1})
    assert not repeated, f"repeated descriptions: {repeated}"


@pytest.mark.parametrize("name", sorted(TYPED))
def test_file_has_enough_valid_and_invalid_cases(name: str) -> None:
    cases = TYPED[name]["tests"]
    valid = sum(1 for case in cases if case["valid"])
    assert valid >= MIN_VALID, f"{valid} valid cases"
    assert len(cases) - valid >= MIN_INVALID, f"{len(cases) - valid} invalid cases"


@pytest.mark.parametrize("name", sorted(TYPED))
def test_typed_file_holds_messages_of_its_type_only(name: str) -> None:
    doc = TYPED[name]
    for case in doc["tests"]:
        data = case["data"]
        assert isinstance(data, dict), case["description"]
        assert data.get("type") == doc["type"], case["description"]


def test_every_type_and_sender_the_catalogue_allows_has_a_file() -> None:
    expected = {
        f"{sender}/{entry.name}.json"
        for entry in catalog().types.values()
        for sender in SENDERS
        if entry.sendable_by(sender)
    }
    assert expected - set(TYPED) == set(), "pairs without vectors"
    assert set(TYPED) - expected == set(), "vector files for pairs the catalogue does not allow"


def test_every_server_only_type_has_a_misdirected_client_case() -> None:
    misdirected = {
        case.body["data"].get("type")
        for case in INVALID_CASES
        if case.sender == "client" and case.body.get("code") == "invalid_direction"
    }
    server_only = {
        entry.name for entry in catalog().types.values() if not entry.sendable_by("client")
    }
    assert server_only - misdirected == set()


def test_unknown_type_cases_use_unregistered_types() -> None:
    unknown = [case for case in INVALID_CASES if case.body.get("code") == "unknown_type"]
    assert unknown
    for case in unknown:
        assert case.body["data"]["type"] not in catalog().types, case.id


# --------------------------------------------------------------------------- the registries


def test_named_requirements_exist() -> None:
    known = requirements()
    unknown = sorted({c.body["requirement"] for c in INVALID_CASES} - set(known.by_id))
    assert not unknown, f"unknown requirement ids: {unknown}"


def test_named_codes_are_registered() -> None:
    codes = {c.body["code"] for c in INVALID_CASES if "code" in c.body}
    assert codes, "no client case names an error code"
    assert codes <= set(catalog().error_codes), sorted(codes - set(catalog().error_codes))


def test_requirements_verified_by_vectors_are_exercised() -> None:
    named = {c.body["requirement"] for c in INVALID_CASES}
    claimed = {r.id for r in requirements() if r.verified_by == "vectors"}
    assert claimed, "requirements.yaml names no requirement verified by vectors"
    assert claimed - named == set(), "verified_by: vectors, but no vector breaks them"


# --------------------------------------------------------------------------- fault kinds


@pytest.mark.parametrize("name", sorted(TYPED))
def test_invalid_cases_cover_every_fault_kind(name: str) -> None:
    faults = {case.get("fault") for case in TYPED[name]["tests"] if not case["valid"]}
    missing = REQUIRED_FAULTS - faults
    assert not missing, f"no invalid case of kind {sorted(missing)}"


@pytest.mark.parametrize(
    "case", [c for c in INVALID_CASES if c.sender == "client"], ids=lambda c: c.id
)
def test_fault_kind_agrees_with_the_client_code(case: Case) -> None:
    fault, code = case.body.get("fault"), case.body["code"]
    if fault in FAULT_CODES:
        assert code == FAULT_CODES[fault]
    else:
        assert code not in FAULT_CODES.values(), f"{code} case tagged {fault}"


# --------------------------------------------------------------------------- rep_spec


def _check(validator: MessageValidator, case: Case) -> Problem | None:
    data = copy.deepcopy(case.body["data"])
    if case.sender == "client":
        return validator.check_client_message(data)
    return validator.check_server_message(data)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_vector_agrees_with_message_validator(case: Case, validator: MessageValidator) -> None:
    problem = _check(validator, case)
    if case.valid:
        assert problem is None, f"refused as {problem}"
        return
    assert problem is not None, "accepted, but the vector says invalid"
    assert problem.pointer == case.body["pointer"], problem
    if case.sender == "client":
        assert problem.code == case.body["code"], problem
