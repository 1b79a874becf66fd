"""The real spec pages against the real registries: placement and worked examples.

These run on the Markdown sources, so a misplaced id or an invalid example is reported
with its file and line without building the site.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rep_spec import MessageValidator, catalog, requirements

DOCS = Path(__file__).resolve().parents[1] / "docs"
HOOKS = DOCS / "hooks"
if str(HOOKS) not in sys.path:
    sys.path.insert(0, str(HOOKS))

from rep_site.examples import check_example, find_examples  # noqa: E402
from rep_site.pages import Page, check_placement  # noqa: E402


def doc_pages() -> list[Page]:
    return [
        Page(path.relative_to(DOCS).as_posix(), path.read_text(encoding="utf-8"))
        for path in sorted(DOCS.rglob("*.md"))
        if HOOKS not in path.parents
    ]


SPEC_PAGES = [p for p in doc_pages() if p.src.startswith("specification/")]
SECTION_PAGES = [p for p in SPEC_PAGES if p.section is not None]


def test_every_registry_id_is_placed_exactly_once_in_its_sections_page() -> None:
    registry = requirements()
    placement = check_placement(doc_pages(), registry.by_id)
    assert set(placement.page_of) == set(registry.by_id)
    sections = {p.src: p.section for p in doc_pages()}
    for req_id, src in placement.page_of.items():
        assert sections[src] == registry[req_id].section


def test_every_registry_section_has_one_page() -> None:
    declared = [p.section for p in SECTION_PAGES]
    assert sorted(declared) == sorted(requirements().sections)


@pytest.mark.parametrize("spec_page", SECTION_PAGES, ids=lambda p: p.src)
def test_each_section_closes_with_worked_examples(spec_page: Page) -> None:
    headings = [line for line in spec_page.text.splitlines() if line.startswith("## ")]
    assert headings[-1] == "## Examples", f"{spec_page.src}: the last section is {headings[-1]}"
    tagged = [e for e in find_examples(spec_page.src, spec_page.text) if e.tag is not None]
    assert tagged, f"{spec_page.src} has no tagged REP example"


def test_every_rep_example_validates() -> None:
    validator = MessageValidator()
    examples = [e for page in doc_pages() for e in find_examples(page.src, page.text)]
    tagged = [e for e in examples if e.tag is not None]
    assert len(tagged) > 50, "the examples were not found; did the tag syntax change?"
    problems = [p for p in (check_example(e, validator) for e in examples) if p is not None]
    assert problems == []


def test_every_message_type_appears_in_a_worked_example() -> None:
    text = "\n".join(e.body for page in SPEC_PAGES for e in find_examples(page.src, page.text))
    missing = [name for name in catalog().types if f'"type": "{name}"' not in text]
    assert missing == []
