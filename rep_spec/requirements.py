"""The requirements registry: each normative statement of REP by stable id."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache

from rep_spec.schema_files import load_yaml

NORMATIVE_LEVELS = ("MUST", "MUST NOT")


@dataclass(frozen=True)
class Requirement:
    id: str
    level: str
    section: str
    actor: str
    verified_by: str
    text: str
    feature: str | None = None

    @property
    def is_mandatory(self) -> bool:
        return self.level in NORMATIVE_LEVELS


@dataclass(frozen=True)
class RequirementIndex:
    sections: Mapping[str, str]
    by_id: Mapping[str, Requirement]

    def __iter__(self) -> Iterator[Requirement]:
        return iter(self.by_id.values())

    def __contains__(self, requirement_id: object) -> bool:
        return requirement_id in self.by_id

    def __getitem__(self, requirement_id: str) -> Requirement:
        return self.by_id[requirement_id]

    def in_section(self, section: str) -> list[Requirement]:
        return [r for r in self.by_id.values() if r.section == section]


@cache
def requirements() -> RequirementIndex:
    doc = load_yaml("requirements.yaml")
    by_id: dict[str, Requirement] = {}
    for entry in doc["requirements"]:
        if entry["id"] in by_id:
            raise ValueError(f"duplicate requirement id {entry['id']}")
        by_id[entry["id"]] = Requirement(**entry)
    return RequirementIndex(sections=doc["sections"], by_id=by_id)
