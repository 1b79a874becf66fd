"""The normative changelog as Markdown, from ``schemas/requirements-changelog.yaml``.

An entry shows the requirement's current text only while its fingerprint still matches
it; an older entry of a requirement that changed since says so and names the version.
"""

from __future__ import annotations

from collections.abc import Sequence

from rep_site.render import REQUIREMENT_INDEX, Vocabulary, escape_markdown, md_table, rel
from rep_spec import RequirementIndex
from rep_spec.changelog import Version, fingerprint, history

CHANGE_TITLES = {
    "added": "Added",
    "changed": "Changed",
    "deprecated": "Deprecated",
    "removed": "Removed",
}


def changelog_markdown(
    versions: Sequence[Version], registry: RequirementIndex, vocabulary: Vocabulary, src: str
) -> str:
    later = history(versions)
    parts: list[str] = []
    for version in reversed(versions):
        status = f"released {version.released}" if version.released else "draft, not released"
        parts.append(f"## REP {version.version} ({status}) {{ #v{version.version} }}\n")
        if version.summary:
            parts.append(escape_markdown(version.summary) + "\n")
        counts = ", ".join(
            f"{sum(1 for c in version.changes if c.change == kind)} {kind}"
            for kind in CHANGE_TITLES
            if any(c.change == kind for c in version.changes)
        )
        parts.append(f"This version: {counts or 'no normative change'}.\n")
        for kind, title in CHANGE_TITLES.items():
            changes = [c for c in version.changes if c.change == kind]
            if not changes:
                continue
            rows = []
            for change in changes:
                requirement = registry.by_id.get(change.id)
                if requirement is None:
                    ident, level, text = f"`{change.id}`", "", ""
                else:
                    ident = f"[{change.id}]({rel(src, REQUIREMENT_INDEX)}#{change.id})"
                    level = requirement.level
                    if change.fingerprint == fingerprint(requirement):
                        text = vocabulary.format(requirement.text)
                    else:
                        entries = later[change.id]
                        newer = entries[entries.index(change) + 1 :]
                        text = f"*changed since, in {newer[-1].version}*" if newer else ""
                note = escape_markdown(change.note or "")
                rows.append([ident, level, text, note] if kind != "added" else [ident, level, text])
            header = ["id", "level", "requirement"] + (["note"] if kind != "added" else [])
            parts.append(f"### {title}\n\n" + md_table(header, rows) + "\n")
    return "\n".join(parts)
