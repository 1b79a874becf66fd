"""The normative changelog stays in step with the requirements registry.

Every id of schemas/requirements.yaml was added by some version, and the last entry of each
id records the fingerprint of its current level, actor, feature and text: a requirement
added or reworded without an entry fails here, whatever ids the registry holds.
"""

from __future__ import annotations

from dataclasses import replace

import yaml
from jsonschema import Draft202012Validator

from rep_spec import catalog, requirements, schema_dir, schema_registry
from rep_spec.changelog import (
    CHANGELOG_FILE,
    Change,
    Version,
    dump,
    fingerprint,
    load,
    parse,
    problems,
    record,
)
from rep_spec.requirements import Requirement
from rep_spec.schema_files import load_json

FIX = "run `python -m rep_spec.changelog record` and complete any note it marks TODO"


def test_the_changelog_matches_its_meta_schema() -> None:
    document = yaml.safe_load((schema_dir() / CHANGELOG_FILE).read_text(encoding="utf-8"))
    meta = load_json("meta/requirements-changelog.schema.json")
    validator = Draft202012Validator(
        meta, registry=schema_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    errors = [error.message for error in validator.iter_errors(document)]
    assert not errors, errors


def test_every_requirement_has_an_entry_for_its_current_text() -> None:
    found = problems(load(), requirements(), catalog().protocol_version)
    assert not found, f"{FIX}:\n" + "\n".join(found)


def test_every_registry_id_was_added_in_a_version_of_the_changelog() -> None:
    added = {c.id: c.version for v in load() for c in v.changes if c.change == "added"}
    missing = [r.id for r in requirements() if r.id not in added]
    assert not missing, f"{FIX}: {missing}"
    assert all(tuple(map(int, version.split("."))) >= (1, 0) for version in added.values())


def test_the_file_is_written_as_the_recorder_writes_it() -> None:
    """One entry per line, so a review sees each normative change as one line."""
    text = (schema_dir() / CHANGELOG_FILE).read_text(encoding="utf-8")
    assert dump(load()) == text
    in_step = not problems(load(), requirements(), catalog().protocol_version)
    if in_step:  # then recording has nothing to add
        assert dump(record(load(), requirements(), catalog().protocol_version)) == text


# --- the rules, on small registries -------------------------------------------------------


def requirement(rid: str, text: str = "A server answers.", level: str = "MUST") -> Requirement:
    return Requirement(
        id=rid, level=level, section="s", actor="server", verified_by="review", text=text
    )


def released(*changes: Change, version: str = "1.0") -> Version:
    return Version(version, "2026-01-01", "", changes)


def added(r: Requirement, version: str = "1.0") -> Change:
    return Change(r.id, "added", fingerprint(r), None, version)


def test_an_added_requirement_without_an_entry_is_reported_and_recorded() -> None:
    old, new = requirement("AB-001"), requirement("AB-002")
    versions = [Version("1.0", None, "", (added(old),))]
    assert problems(versions, [old, new], "1.0") == [
        "AB-002 is in the registry but the changelog never added it"
    ]
    fixed = record(versions, [old, new], "1.0")
    assert problems(fixed, [old, new], "1.0") == []
    assert fixed[-1].changes[-1] == added(new)


def test_a_reworded_requirement_needs_an_entry() -> None:
    old = requirement("AB-001")
    reworded = replace(old, text="A server answers at once.")
    versions = [released(added(old)), Version("1.1", None, "", ())]
    (line,) = problems(versions, [reworded], "1.1")
    assert line.startswith("AB-001 changed since its last entry (added in 1.0)")
    # A released version is never edited: the draft gets a "changed" entry whose note a
    # person writes; until then the note itself is reported.
    recorded = record(versions, [reworded], "1.1")
    assert recorded[0] == versions[0]
    (entry,) = recorded[-1].changes
    assert (entry.change, entry.fingerprint) == ("changed", fingerprint(reworded))
    assert problems(recorded, [reworded], "1.1") == [
        "AB-001: write the note of its 'changed' entry"
    ]
    written = replace(entry, note="The answer is immediate.")
    final = [recorded[0], replace(recorded[-1], changes=(written,))]
    assert problems(final, [reworded], "1.1") == []


def test_a_level_change_is_a_normative_change() -> None:
    old = requirement("AB-001", level="SHOULD")
    assert fingerprint(old) != fingerprint(replace(old, level="MUST"))
    assert fingerprint(old) != fingerprint(replace(old, feature="rooms"))
    assert fingerprint(old) == fingerprint(replace(old, verified_by="conformance", section="t"))


def test_a_requirement_reworded_in_its_own_draft_is_updated_in_place() -> None:
    old = requirement("AB-001")
    reworded = replace(old, text="A server answers twice.")
    recorded = record([Version("1.0", None, "", (added(old),))], [reworded], "1.0")
    assert recorded[-1].changes == (added(reworded),)


def test_removed_and_deprecated_requirements() -> None:
    kept, gone = requirement("AB-001"), requirement("AB-002")
    deprecated = Change(kept.id, "deprecated", fingerprint(kept), "Use AB-003.", "1.1")
    removal = Change(gone.id, "removed", None, "Folded into AB-001.", "1.1")
    versions = [released(added(kept), added(gone)), Version("1.1", None, "", (deprecated,))]
    assert problems(versions, [kept], "1.1") == [
        "AB-002 is not in the registry but its last entry is added"
    ]
    versions[-1] = Version("1.1", None, "", (deprecated, removal))
    assert problems(versions, [kept], "1.1") == []
    assert problems(versions, [kept, gone], "1.1") == [
        "AB-002 is in the registry but its last entry is 'removed'"
    ]
    silent = Change(gone.id, "removed", None, None, "1.1")
    versions[-1] = Version("1.1", None, "", (deprecated, silent))
    assert problems(versions, [kept], "1.1") == ["AB-002: the 'removed' entry of 1.1 needs a note"]


def test_versions_are_ordered_and_only_the_newest_is_a_draft() -> None:
    r = requirement("AB-001")
    drafts = [Version("1.0", None, "", (added(r),)), Version("1.1", None, "", ())]
    assert problems(drafts, [r], "1.1") == ["1.0: only the newest version may be unreleased"]
    backwards = [Version("1.1", None, "", ()), released(added(r))]
    assert "versions must be listed once each, oldest first" in problems(backwards, [r], "1.0")[0]
    assert problems([released(added(r))], [r], "1.1") == [
        "the newest version must be the registry's protocol version 1.1"
    ]


def test_dump_and_parse_round_trip() -> None:
    r = requirement("AB-001")
    versions = [
        released(added(r)),
        Version(
            "1.1",
            None,
            "It's next.",
            (Change(r.id, "deprecated", "0" * 12, "Why: it's old.", "1.1"),),
        ),
    ]
    assert parse(yaml.safe_load(dump(versions))) == versions


def test_recording_a_removal() -> None:
    kept, gone, brief = requirement("AB-001"), requirement("AB-002"), requirement("AB-003")
    versions = [
        released(added(kept), added(gone)),
        Version("1.1", None, "", (added(brief, "1.1"),)),
    ]
    # AB-003 came and went within the draft: no trace. AB-002 was published: a removal.
    recorded = record(versions, [kept], "1.1")
    assert [(c.id, c.change) for c in recorded[-1].changes] == [("AB-002", "removed")]
    assert problems(recorded, [kept], "1.1") == ["AB-002: write the note of its 'removed' entry"]
    assert record(recorded, [kept], "1.1") == recorded, "recording twice changes nothing"
