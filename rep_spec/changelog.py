"""The normative changelog: which requirements each REP version added, changed, deprecated.

It is kept beside the registry in ``schemas/requirements-changelog.yaml`` (validated by
``meta/requirements-changelog.schema.json``). Each entry records a fingerprint of the
requirement's normative content as the version states it, so a test can tell when the
registry moved on without an entry: a requirement added, reworded, made a MUST, moved to
another feature. ``python -m rep_spec.changelog record`` writes the missing entries into
the version being drafted (the registry's protocol version).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rep_spec.requirements import Requirement

CHANGELOG_FILE = "requirements-changelog.yaml"
#: How ``record`` marks a note it cannot write; ``problems`` reports it until a person does.
TODO = "TODO:"
HEADER = """\
# The normative changelog of REP: for each protocol version, the requirements it added,
# changed, deprecated or removed, by id. The software changelog is CHANGELOG.md.
# Validated by meta/requirements-changelog.schema.json; tests/test_spec_changelog.py fails
# when schemas/requirements.yaml moves on without an entry here.
# fingerprint: what the entry's version states, hashed (rep_spec/changelog.py: level, actor,
# feature and text; a reworded requirement is a changed one). The newest version is the one
# being drafted: `python -m rep_spec.changelog record` writes the missing entries into it
# (as "added", or as "changed" with a note to complete). A released version's entries are
# never edited.
"""


def fingerprint(requirement: Requirement) -> str:
    """A short hash of what binds an implementation; the wording of ``text`` included."""
    normative = "\n".join(
        (requirement.level, requirement.actor, requirement.feature or "", requirement.text)
    )
    return hashlib.sha256(normative.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class Change:
    id: str
    change: str
    fingerprint: str | None
    note: str | None
    version: str


@dataclass(frozen=True)
class Version:
    version: str
    released: str | None
    summary: str
    changes: tuple[Change, ...]


def parse(document: Mapping[str, Any]) -> list[Version]:
    versions = []
    for entry in document.get("versions", []):
        name = str(entry["version"])
        changes = tuple(
            Change(
                id=str(c["id"]),
                change=str(c["change"]),
                fingerprint=c.get("fingerprint"),
                note=c.get("note"),
                version=name,
            )
            for c in entry.get("changes", [])
        )
        versions.append(
            Version(
                version=name,
                released=None if entry.get("released") is None else str(entry["released"]),
                summary=str(entry.get("summary", "")),
                changes=changes,
            )
        )
    return versions


def load(path: Path | None = None) -> list[Version]:
    from rep_spec.schema_files import schema_dir

    source = path if path is not None else schema_dir() / CHANGELOG_FILE
    return parse(yaml.safe_load(source.read_text(encoding="utf-8")))


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def history(versions: Iterable[Version]) -> dict[str, list[Change]]:
    """Every id's entries, oldest first."""
    found: dict[str, list[Change]] = {}
    for version in sorted(versions, key=lambda v: _key(v.version)):
        for change in version.changes:
            found.setdefault(change.id, []).append(change)
    return found


def problems(
    versions: Sequence[Version], registry: Iterable[Requirement], protocol_version: str
) -> list[str]:
    """Where the changelog and the registry disagree, one line each (none: in step)."""
    found: list[str] = []
    names = [v.version for v in versions]
    if names != sorted(names, key=_key) or len(set(names)) != len(names):
        found.append(f"versions must be listed once each, oldest first: {names}")
    if not versions or versions[-1].version != protocol_version:
        found.append(
            f"the newest version must be the registry's protocol version {protocol_version}"
        )
    for version in versions[:-1]:
        if version.released is None:
            found.append(f"{version.version}: only the newest version may be unreleased")
    current = {r.id: r for r in registry}
    for rid, changes in history(versions).items():
        kinds = [c.change for c in changes]
        if kinds[0] != "added" or kinds.count("added") != 1:
            found.append(f"{rid}: the first entry must be its only 'added' ({kinds})")
        if "removed" in kinds[:-1]:
            found.append(f"{rid}: entries after 'removed' ({kinds})")
        for change in changes:
            if change.change in ("changed", "deprecated", "removed") and not change.note:
                found.append(f"{rid}: the '{change.change}' entry of {change.version} needs a note")
            if change.note and change.note.startswith(TODO):
                found.append(f"{rid}: write the note of its '{change.change}' entry")
        last = changes[-1]
        requirement = current.get(rid)
        if requirement is None:
            if last.change != "removed":
                found.append(f"{rid} is not in the registry but its last entry is {last.change}")
        elif last.change == "removed":
            found.append(f"{rid} is in the registry but its last entry is 'removed'")
        elif last.fingerprint != fingerprint(requirement):
            found.append(
                f"{rid} changed since its last entry ({last.change} in {last.version}):"
                f" fingerprint {last.fingerprint}, now {fingerprint(requirement)}"
            )
    for rid in current:
        if rid not in history(versions):
            found.append(f"{rid} is in the registry but the changelog never added it")
    return found


def record(
    versions: Sequence[Version], registry: Iterable[Requirement], protocol_version: str
) -> list[Version]:
    """The changelog with the missing entries written into the draft of ``protocol_version``.

    A requirement added in the draft itself gets its fingerprint updated in place, or its
    entry dropped when it left the registry again (nothing was published yet); one from a
    released version gets a ``changed`` or ``removed`` entry whose note a person writes.
    """
    ordered = list(versions)
    if not ordered or ordered[-1].version != protocol_version:
        ordered.append(Version(protocol_version, None, "", ()))
    draft = ordered[-1]
    if draft.released is not None:
        raise ValueError(f"{protocol_version} is released; raise the protocol version first")
    current = list(registry)
    present = {r.id for r in current}
    seen = history(ordered)
    # Added in the draft and gone again: nothing was published, so nothing to record.
    changes = [
        c for c in draft.changes if c.id in present or seen[c.id][0].version != draft.version
    ]
    for rid, past in seen.items():
        published = past[0].version != draft.version
        if rid not in present and published and past[-1].change != "removed":
            changes = [c for c in changes if c.id != rid]
            changes.append(Change(rid, "removed", None, f"{TODO} say why", draft.version))
    seen = history([*ordered[:-1], Version(draft.version, None, "", tuple(changes))])
    for requirement in current:
        now = fingerprint(requirement)
        past = seen.get(requirement.id, [])
        if past and past[-1].fingerprint == now and past[-1].change != "removed":
            continue
        in_draft = [i for i, c in enumerate(changes) if c.id == requirement.id]
        if in_draft:
            i = in_draft[-1]
            old = changes[i]
            changes[i] = Change(old.id, old.change, now, old.note, old.version)
        elif not past:
            changes.append(Change(requirement.id, "added", now, None, draft.version))
        else:
            note = f"{TODO} say what changed"
            changes.append(Change(requirement.id, "changed", now, note, draft.version))
    ordered[-1] = Version(draft.version, draft.released, draft.summary, tuple(changes))
    return ordered


def dump(versions: Sequence[Version]) -> str:
    """The file's text: the header, then one line per entry, so a diff shows one change."""
    lines = [HEADER.rstrip("\n"), "versions:"]
    for version in versions:
        lines.append(f"  - version: {_scalar(version.version)}")
        lines.append(f"    released: {_scalar(version.released)}")
        lines.append(f"    summary: {_scalar(version.summary)}")
        lines.append("    changes:")
        for c in version.changes:
            parts = [f"id: {c.id}", f"change: {c.change}"]
            if c.fingerprint is not None:
                parts.append(f"fingerprint: {_scalar(c.fingerprint)}")
            if c.note is not None:
                parts.append(f"note: {_scalar(c.note)}")
            lines.append("      - {" + ", ".join(parts) + "}")
    return "\n".join(lines) + "\n"


def _scalar(value: str | None) -> str:
    return "null" if value is None else "'" + value.replace("'", "''") + "'"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rep_spec.changelog",
        description="Check the normative changelog against the registry, or record what moved.",
    )
    parser.add_argument("command", choices=["check", "record"])
    args = parser.parse_args(argv)
    from rep_spec import catalog, requirements
    from rep_spec.schema_files import schema_dir

    path = schema_dir() / CHANGELOG_FILE
    versions = load(path)
    version = catalog().protocol_version
    if args.command == "record":
        path.write_text(dump(record(versions, requirements(), version)), encoding="utf-8")
        versions = load(path)
    found = problems(versions, requirements(), version)
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
