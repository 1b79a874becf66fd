"""The requirements registry: well-formed, unique ids, and every schema annotation known."""

from __future__ import annotations

import re
from typing import Any

from rep_spec import requirements
from rep_spec.schema_files import load_yaml, schema_paths
from tests.test_schemas import load, walk

ID_PATTERN = re.compile(r"^[A-Z]{2,8}-[0-9]{3}$")


def test_ids_are_unique_and_well_formed() -> None:
    raw: list[dict[str, Any]] = load_yaml("requirements.yaml")["requirements"]
    ids = [entry["id"] for entry in raw]
    assert len(ids) == len(set(ids)), "duplicate requirement ids"
    for requirement_id in ids:
        assert ID_PATTERN.match(requirement_id), requirement_id


def test_id_prefix_is_stable_per_section() -> None:
    prefixes: dict[str, str] = {}
    for requirement in requirements():
        prefix = requirement.id.split("-")[0]
        assert prefixes.setdefault(prefix, requirement.section) == requirement.section, (
            f"{requirement.id} is in {requirement.section}, but {prefix}- ids belong to "
            f"{prefixes[prefix]}"
        )


def test_every_requirement_is_in_a_declared_section() -> None:
    index = requirements()
    for requirement in index:
        assert requirement.section in index.sections, requirement.id


def test_normative_text_uses_no_rfc2119_keywords_of_its_own() -> None:
    """The level field carries the keyword; text that says 'MUST' again would conflict."""
    for requirement in requirements():
        assert not re.search(r"\b(MUST|SHOULD|MAY|SHALL|REQUIRED)\b", requirement.text), (
            requirement.id
        )


def test_schema_annotations_name_known_requirements() -> None:
    known = requirements()
    for path in schema_paths():
        for key, value in walk(load(path)):
            if key == "x-requirement":
                assert value in known, f"{path.name} names unknown requirement {value}"


def test_features_named_by_requirements_exist() -> None:
    from rep_spec import catalog

    for requirement in requirements():
        if requirement.feature is not None:
            assert requirement.feature in catalog().features, requirement.id
