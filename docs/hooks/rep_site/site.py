"""The site as a whole: check the pages, render them, and build the generated pages."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rep_site.examples import check_examples, find_examples, rewrite_fences
from rep_site.matrix import Matrix, load_matrix
from rep_site.pages import Page, SiteError, check_placement, split_front_matter
from rep_site.reference import ReferenceBuilder
from rep_site.render import (
    MacroRenderer,
    Vocabulary,
    action_inputs,
    close_codes_table,
    error_codes_table,
    expand_macros,
    features_table,
    file_schema_fields,
    message_page,
    messages_table,
    permissions_table,
    render_requirement,
    roles_table,
    schema_fields,
)
from rep_site.schemas import published_files
from rep_site.spec_changelog import changelog_markdown
from rep_site.versions import banner, check_version, is_development
from rep_spec import Catalog, MessageValidator, RequirementIndex, catalog, requirements
from rep_spec import changelog as spec_changelog
from rep_spec.schema_files import load_json, schema_paths

SPEC_DIR = "specification/"
PROJECT_ROOT = Path(__file__).resolve().parents[3]
IMPLEMENTATIONS = "implementations"
#: The kit's own schemas, published at their ``$id``s (``schemas/conformance/…``).
KIT_SCHEMAS = ("conformance/target.schema.json", "conformance/report.schema.json")
TestIndex = Mapping[str, Sequence[str]]


def load_test_index() -> TestIndex | None:
    """The conformance kit's tests per requirement id, or None while the kit lacks the API."""
    try:
        from conformance.coverage import tests_by_requirement
    except ImportError:
        return None
    found = tests_by_requirement()
    return {str(key): [str(name) for name in names] for key, names in found.items()}


def _property_names(paths: Iterable[Path]) -> set[str]:
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            properties = node.get("properties")
            if isinstance(properties, dict):
                names.update(properties)
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    for path in paths:
        visit(json.loads(path.read_text(encoding="utf-8")))
    return names


def _title(page: Page) -> str:
    meta, body = split_front_matter(page.text)
    if isinstance(meta.get("title"), str):
        return str(meta["title"])
    heading = re.search(r"^#\s+(.+?)\s*$", body, re.M)
    return heading.group(1).strip("` ") if heading else page.src


@dataclass
class Site:
    """Everything the site needs from the registries, and the state of one build."""

    catalog: Catalog
    registry: RequirementIndex
    tests: TestIndex | None
    validator: MessageValidator
    vocabulary: Vocabulary
    root: Path
    page_of: dict[str, str] = field(default_factory=dict)
    mentions: dict[str, list[str]] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)
    #: The version this build is deployed as (``1.0``, ``dev``); None for a plain build.
    version: str | None = None
    #: The report.json of the reference server that the build made for the matrix.
    reference_report: Path | None = None
    _matrix: Matrix | None = None

    @classmethod
    def load(
        cls,
        root: Path = PROJECT_ROOT,
        tests: Callable[[], TestIndex | None] = load_test_index,
        version: str | None = None,
        reference_report: Path | None = None,
    ) -> Site:
        """Read the registries; ``root`` is the project, against which macro paths resolve."""
        spec = catalog()
        check_version(version, spec.protocol_version)
        return cls(
            root=root,
            catalog=spec,
            registry=requirements(),
            tests=tests(),
            validator=MessageValidator(),
            vocabulary=Vocabulary(spec, _property_names(schema_paths())),
            version=version,
            reference_report=reference_report,
        )

    @property
    def development(self) -> bool:
        """Whether this build is the development version (it carries the banner)."""
        return is_development(self.version, self.catalog.protocol_version)

    def matrix(self) -> Matrix:
        """The conformance matrix, every submitted report validated (SiteError if not)."""
        if self._matrix is None:
            from conformance.reports.schema import report_problems, requirement_verdicts

            self._matrix = load_matrix(
                self.root / IMPLEMENTATIONS,
                self.reference_report,
                self.registry,
                requirement_verdicts(),
                report_problems,
            )
        return self._matrix

    def check(self, pages: Iterable[Page]) -> None:
        """Enforce the placement rules and validate every worked example; raise SiteError."""
        page_list = list(pages)
        problems: list[str] = []
        try:
            placement = check_placement(page_list, self.registry.by_id)
            self.page_of = placement.page_of
        except SiteError as error:
            problems.extend(error.problems)
        for page in page_list:
            problems.extend(check_examples(find_examples(page.src, page.text), self.validator))
        if problems:
            raise SiteError(problems)
        self.titles = {page.src: _title(page) for page in page_list}
        self.mentions = {}
        for name in self.catalog.types:
            needles = (f"`{name}`", message_page(name).split("/")[-1], f'"type": "{name}"')
            self.mentions[name] = [
                page.src
                for page in page_list
                if page.src.startswith(SPEC_DIR) and any(n in page.text for n in needles)
            ]

    def reference(self) -> ReferenceBuilder:
        return ReferenceBuilder(
            catalog=self.catalog,
            registry=self.registry,
            vocabulary=self.vocabulary,
            page_of=self.page_of,
            mentions=self.mentions,
            page_titles=self.titles,
            tests=self.tests,
        )

    def generated_pages(self) -> dict[str, str]:
        return {**self.reference().pages(), **self.matrix().pages()}

    def generated_detail_pages(self) -> list[str]:
        """Generated pages reached from a page, not from the navigation."""
        return list(self.matrix().pages())

    def message_nav(self) -> list[Any]:
        return self.reference().message_nav()

    def published_files(self) -> list[tuple[str, Path]]:
        return published_files()

    def other_files(self) -> list[tuple[str, Path]]:
        """Files served as they are, by their path in the site: the kit's schemas at their
        ``$id``s and the matrix's reports beside their pages."""
        found = []
        for relative in KIT_SCHEMAS:
            path = self.root / relative
            schema_id = str(json.loads(path.read_text(encoding="utf-8"))["$id"])
            found.append((schema_id[schema_id.index("/schemas/") + 1 :], path))
        return found + self.matrix().published_files()

    def render(self, page_src: str, markdown: str) -> str:
        """A page's Markdown with its macros expanded and its examples titled."""
        document = load_json("roles.json")
        own = {name: entry["permissions"] for name, entry in document["roles"].items()}
        inherits = {name: entry["inherits"] for name, entry in document["roles"].items()}
        spec = self.catalog
        renderers: dict[str, MacroRenderer] = {
            "req": lambda src, args: render_requirement(
                self.registry[args[0]], src, self.vocabulary
            ),
            "messages": lambda src, args: messages_table(spec, src, args[0] if args else None),
            "features": lambda src, args: features_table(spec, src),
            "error_codes": lambda src, args: error_codes_table(spec),
            "close_codes": lambda src, args: close_codes_table(spec),
            "roles": lambda src, args: roles_table(spec, own, inherits),
            "permissions": lambda src, args: permissions_table(spec),
            "schema_fields": lambda src, args: schema_fields(args[0], src),
            "file_schema_fields": lambda src, args: file_schema_fields(self.root / args[0], src),
            "action_inputs": lambda src, args: action_inputs(self.root / args[0]),
            "matrix": lambda src, args: self.matrix().table(src),
            "spec_changelog": lambda src, args: changelog_markdown(
                spec_changelog.load(), self.registry, self.vocabulary, src
            ),
        }
        return rewrite_fences(expand_macros(markdown, page_src, renderers))

    def banner(self, page_url: str) -> str:
        """What goes above a page's text: the development banner, or nothing."""
        return banner(page_url) if self.development else ""
