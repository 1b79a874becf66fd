"""Every MUST the kit is meant to verify has a check, and every check names real requirements."""

from __future__ import annotations

from conformance import coverage
from conformance.cli import list_requirements
from conformance.coverage import all_checks
from rep_spec import requirements

#: Requirement ids whose checks come with a later part of the kit: none since the SSE
#: binding's checks (checks/test_sse.py). Named one by one if ever used again, so that
#: adding a requirement to the registry never silently widens it.
NOT_YET_CHECKED: frozenset[str] = frozenset()


def conformance_requirements() -> list[str]:
    return [r.id for r in requirements() if r.verified_by == "conformance"]


def test_every_conformance_must_has_a_check() -> None:
    covered = coverage.tests_by_requirement()
    missing = [
        r.id
        for r in requirements()
        if r.verified_by == "conformance"
        and r.is_mandatory
        and r.id not in NOT_YET_CHECKED
        and not covered.get(r.id)
    ]
    assert not missing, f"MUST requirements verified by conformance without a check: {missing}"


def test_every_conformance_should_has_a_check() -> None:
    covered = coverage.tests_by_requirement()
    missing = [
        r.id
        for r in requirements()
        if r.verified_by == "conformance" and not r.is_mandatory and not covered.get(r.id)
    ]
    assert not missing, f"SHOULD requirements verified by conformance without a check: {missing}"


def test_the_exclusions_are_real() -> None:
    """Each excluded id exists and is verified by conformance (delete ids once their SSE
    checks exist; the list may only shrink)."""
    index = requirements()
    for requirement_id in NOT_YET_CHECKED:
        assert requirement_id in index, f"{requirement_id} is not in the registry"
        assert index[requirement_id].verified_by == "conformance", requirement_id
        assert requirement_id.startswith("SSE-"), "only the SSE binding may wait for its checks"


def test_checks_name_only_known_requirements() -> None:
    known = requirements()
    for check in all_checks():
        for requirement_id in check.requirement_ids:
            assert requirement_id in known, f"{check.check_id} names unknown {requirement_id}"


def test_checks_name_no_requirement_that_is_not_checked_from_outside() -> None:
    """A check claiming a vectors/review requirement would report a verdict it cannot give."""
    index = requirements()
    for check in all_checks():
        for requirement_id in check.requirement_ids:
            assert index[requirement_id].verified_by == "conformance", (
                f"{check.check_id} names {requirement_id}, "
                f"verified by {index[requirement_id].verified_by}"
            )


def test_every_check_has_requirements_or_is_informational() -> None:
    for check in all_checks():
        assert check.requirement_ids or check.informational, check.check_id
        assert check.doc, f"{check.check_id} has no docstring saying what it checks"


def test_check_names_are_unique() -> None:
    names = [check.check_id.split("::")[1] for check in all_checks()]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"check names must be unique across modules: {duplicates}"


def test_list_shows_every_requirement_and_the_coverage_line() -> None:
    text = list_requirements("text", uncovered_only=False)
    for requirement in requirements():
        assert requirement.id in text
    covered = sum(
        1 for rid in conformance_requirements() if coverage.tests_by_requirement().get(rid)
    )
    assert f"{covered}/{len(conformance_requirements())} requirements" in text
