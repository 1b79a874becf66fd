"""The generated reference pages: Markdown built from ``schemas/`` on every build.

Nothing here is committed as output, so a reference page cannot fall behind the schemas.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from rep_site.related import related_requirements, rule_text
from rep_site.render import (
    DIRECTIONS,
    ERROR_CODES_PAGE,
    REQUIREMENT_INDEX,
    VERIFIED_BY,
    Vocabulary,
    answer_text,
    close_codes_table,
    error_codes_table,
    escape_markdown,
    features_table,
    field_rows_table,
    md_table,
    message_page,
    permissions_table,
    rel,
    roles_table,
)
from rep_site.schemas import describe, published_files, vector_example
from rep_spec import Catalog, RequirementIndex
from rep_spec.schema_files import load_json

Sender = Literal["client", "server"]
INDEX = "reference/index.md"
MESSAGES_INDEX = "reference/messages/index.md"
CLOSE_CODES_PAGE = "reference/close-codes.md"
ROLES_PAGE = "reference/roles.md"
SCHEMAS_PAGE = "reference/schemas.md"
PUBLISHED_ROOT = "schemas/1.0"
GROUP_TITLES = {
    "system": "System",
    "application": "Application",
    "data": "Data",
    "streams": "Streams",
    "responses": "Responses",
}
GENERATED_NOTE = (
    '!!! info "Generated page"\n'
    "    This page is generated from `schemas/` each time the site is built. It is an\n"
    "    informative view of the registries; the normative statements are in the\n"
    "    [specification]({overview}).\n"
)


def _note(page_src: str) -> str:
    return GENERATED_NOTE.format(overview=rel(page_src, "specification/overview.md"))


def _escape(text: str) -> str:
    return escape_markdown(text)


def _json_block(value: Any, title: str) -> str:
    body = json.dumps(value, indent=2, ensure_ascii=False)
    return f'```json title="{title}"\n{body}\n```'


class ReferenceBuilder:
    """Builds every generated page from the registries, the placement and the test coverage."""

    def __init__(
        self,
        catalog: Catalog,
        registry: RequirementIndex,
        vocabulary: Vocabulary,
        page_of: Mapping[str, str],
        mentions: Mapping[str, Sequence[str]],
        page_titles: Mapping[str, str],
        tests: Mapping[str, Sequence[str]] | None,
    ) -> None:
        self.catalog = catalog
        self.registry = registry
        self.vocabulary = vocabulary
        self.page_of = page_of
        self.mentions = mentions
        self.page_titles = page_titles
        self.tests = tests

    def pages(self) -> dict[str, str]:
        pages = {
            INDEX: self.index(),
            MESSAGES_INDEX: self.messages_index(),
            ERROR_CODES_PAGE: self.error_codes(),
            CLOSE_CODES_PAGE: self.close_codes(),
            ROLES_PAGE: self.roles(),
            REQUIREMENT_INDEX: self.requirement_index(),
            SCHEMAS_PAGE: self.schemas(),
        }
        for name in self.catalog.types:
            pages[message_page(name)] = self.message(name)
        return pages

    def message_nav(self) -> list[Any]:
        """The nav entries of the message pages, grouped as the registry groups them."""
        nav: list[Any] = [MESSAGES_INDEX]
        for group, title in GROUP_TITLES.items():
            names = [t.name for t in self.catalog.types.values() if t.group == group]
            if names:
                nav.append({title: [{n: message_page(n)} for n in names]})
        known = set(GROUP_TITLES)
        for group in sorted({t.group for t in self.catalog.types.values()} - known):
            names = [t.name for t in self.catalog.types.values() if t.group == group]
            nav.append({group.title(): [{n: message_page(n)} for n in names]})
        return nav

    # --- pages -------------------------------------------------------------------

    def index(self) -> str:
        src = INDEX
        links = [
            ("Message types", MESSAGES_INDEX, "every registered type, its fields and an example"),
            ("Error codes", ERROR_CODES_PAGE, "the closed registry of error codes"),
            ("Close codes", CLOSE_CODES_PAGE, "the WebSocket close codes a server uses"),
            ("Roles and permissions", ROLES_PAGE, "the built-in role table"),
            ("Requirement index", REQUIREMENT_INDEX, "every normative statement by id"),
            ("Schemas and downloads", SCHEMAS_PAGE, "the JSON Schemas at their `$id` URLs"),
        ]
        items = "\n".join(f"- [{t}]({rel(src, p)}): {what}." for t, p, what in links)
        return (
            "# Reference\n\n"
            f"REP {self.catalog.protocol_version} as data. Each page below is built from the\n"
            "registries in `schemas/`, which the reference server and the conformance kit read\n"
            "as well, so the three cannot disagree.\n\n"
            f"{items}\n\n"
            "## Features\n\n"
            "A server lists in its welcome the features it implements; each message type\n"
            "belongs to one feature.\n\n"
            f"{features_table(self.catalog, src)}\n" + _note(src)
        )

    def messages_index(self) -> str:
        src = MESSAGES_INDEX
        sections = []
        for group, title in GROUP_TITLES.items():
            names = [t.name for t in self.catalog.types.values() if t.group == group]
            if not names:
                continue
            rows = [
                [
                    f"[`{n}`]({rel(src, message_page(n))})",
                    DIRECTIONS[self.catalog.types[n].direction],
                    f"`{self.catalog.types[n].feature}`",
                    answer_text(self.catalog, n, src),
                    _escape(self._summary(n)),
                ]
                for n in names
            ]
            sections.append(
                f"## {title}\n\n"
                + md_table(["type", "direction", "feature", "answer on success", "summary"], rows)
            )
        return (
            "# Message types\n\n"
            f"REP {self.catalog.protocol_version} registers {len(self.catalog.types)} message"
            " types. Every message is an envelope whose `type` is one of them; the payload\n"
            "schema depends on the type and on who sends it.\n\n"
            + "\n\n".join(sections)
            + "\n"
            + _note(src)
        )

    def _summary(self, name: str) -> str:
        entry = self.catalog.types[name]
        relative = entry.client_payload or entry.server_payload
        return describe(relative).description if relative else ""

    def message(self, name: str) -> str:
        src = message_page(name)
        entry = self.catalog.types[name]
        both: tuple[Sender, ...] = ("client", "server")
        senders = [s for s in both if entry.payload_schema(s)]
        facts = [
            ["group", entry.group],
            ["direction", DIRECTIONS[entry.direction]],
            ["feature", f"`{entry.feature}`: {_escape(self.catalog.features[entry.feature])}"],
        ]
        if entry.answer_kind is not None:
            facts.append(["answer on success", answer_text(self.catalog, name, src)])
        requesters = [
            t.name for t in self.catalog.types.values() if t.answer_type == name and t.name != name
        ]
        if requesters:
            links = ", ".join(f"[`{r}`]({rel(src, message_page(r))})" for r in requesters)
            facts.append(["answers", links])
        for sender in senders:
            relative = entry.payload_schema(sender) or ""
            target = rel(src, f"{PUBLISHED_ROOT}/{relative.split('#')[0]}")
            fragment = f" (`#{relative.split('#')[1]}`)" if "#" in relative else ""
            facts.append(
                [f"{sender} payload schema", f"[{relative.split('#')[0]}]({target}){fragment}"]
            )
        parts = [f"# `{name}`\n", "\n".join(f"- **{k}**: {v}" for k, v in facts), ""]
        cited: list[str] = []
        for sender in senders:
            cited.extend(describe(entry.payload_schema(sender) or "").cited)
        for sender in senders:
            relative = entry.payload_schema(sender) or ""
            view = describe(relative)
            heading = (
                "Payload sent by a client" if sender == "client" else "Payload sent by a server"
            )
            if len(senders) == 2 and entry.client_payload == entry.server_payload:
                heading = "Payload (client and server)"
            parts.append(f"## {heading}\n")
            if view.description:
                parts.append(_escape(view.description) + "\n")
            parts.append(field_rows_table(view.fields, src))
            if view.closed:
                parts.append("\nNo other members are allowed.")
            example = vector_example(sender, name)
            if example is not None:
                title = f"vectors/{sender}/{name}.json: first valid case"
                parts.append(f"\n### Example\n\n{_json_block(example, title)}")
            parts.append("")
            if entry.client_payload == entry.server_payload and sender == "client":
                if (example_server := vector_example("server", name)) is not None:
                    title = f"vectors/server/{name}.json: first valid case"
                    parts.append(
                        f"### Example sent by a server\n\n{_json_block(example_server, title)}\n"
                    )
                break
        related = related_requirements(entry, self.registry, cited)
        if related:
            parts.append("## Requirements\n")
            parts.append(rule_text(entry, rel(src, REQUIREMENT_INDEX)) + "\n")
            for r in related:
                link = f"{rel(src, self.page_of[r.id])}#{r.id}"
                parts.append(f"- [{r.id}]({link}) **{r.level}**: {self.vocabulary.format(r.text)}")
            parts.append("")
        pages = self.mentions.get(name, [])
        if pages:
            parts.append("## Specified in\n")
            parts.extend(f"- [{self.page_titles[p]}]({rel(src, p)})" for p in pages)
            parts.append("")
        parts.append(_note(src))
        return "\n".join(parts)

    def error_codes(self) -> str:
        src = ERROR_CODES_PAGE
        errors_page = rel(src, "specification/errors.md")
        return (
            "# Error codes\n\n"
            "The closed registry of error codes. A WebSocket client receives them in the `code`\n"
            "member of an [`error`](messages/error.md) payload; HTTP endpoints answer with the\n"
            "HTTP status of the code and a JSON body whose `error` member holds `code` and\n"
            f"`message`. How a server chooses the code is specified in [Errors]({errors_page}).\n\n"
            f"{error_codes_table(self.catalog)}\n\n"
            "A *retryable* code means the same message may succeed later unchanged; for\n"
            "`rate_limited` the error's `retry_after_ms` says when.\n" + _note(src)
        )

    def close_codes(self) -> str:
        src = CLOSE_CODES_PAGE
        ws_page = rel(src, "specification/websocket.md")
        return (
            "# Close codes\n\n"
            "The WebSocket close codes a REP server uses: the codes of RFC 6455 where one fits,\n"
            "and codes in the private range 4000 to 4999 for reasons of REP's own. The\n"
            f"[WebSocket binding]({ws_page}) says when each is used.\n\n"
            f"{close_codes_table(self.catalog)}\n" + _note(src)
        )

    def roles(self) -> str:
        src = ROLES_PAGE
        document = load_json("roles.json")
        own = {name: entry["permissions"] for name, entry in document["roles"].items()}
        inherits = {name: entry["inherits"] for name, entry in document["roles"].items()}
        authz = rel(src, "specification/authorization.md")
        return (
            "# Roles and permissions\n\n"
            f"{_escape(' '.join(str(document.get('description', '')).split()))}\n"
            f"How a server uses this table is specified in [Authorization]({authz}).\n\n"
            "## Roles\n\n"
            f"{roles_table(self.catalog, own, inherits)}\n\n"
            "## Permissions\n\n"
            "A tick means the role grants the permission, directly or through the roles it\n"
            "inherits.\n\n"
            f"{permissions_table(self.catalog)}\n" + _note(src)
        )

    def requirement_index(self) -> str:
        src = REQUIREMENT_INDEX
        requirements = list(self.registry)
        levels: dict[str, int] = {}
        checks: dict[str, int] = {}
        for r in requirements:
            levels[r.level] = levels.get(r.level, 0) + 1
            checks[r.verified_by] = checks.get(r.verified_by, 0) + 1
        level_text = ", ".join(f"{n} {level}" for level, n in levels.items())
        check_text = "; ".join(f"{n} {VERIFIED_BY.get(k, k)}" for k, n in checks.items())
        header = ["id", "level", "applies to", "requirement", "verified by"]
        if self.tests is not None:
            header.append("conformance tests")
        sections = []
        for key, title in self.registry.sections.items():
            members = self.registry.in_section(key)
            if not members:
                continue
            page = self.page_of[members[0].id]
            rows = []
            for r in members:
                row = [
                    f'<span id="{r.id}"></span>[{r.id}]({rel(src, page)}#{r.id})',
                    f"**{r.level}**",
                    r.actor,
                    self.vocabulary.format(r.text),
                    r.verified_by,
                ]
                if self.tests is not None:
                    names = self.tests.get(r.id, [])
                    row.append("<br>".join(_test_name(n) for n in names) or "—")
                rows.append(row)
            sections.append(
                f"## {title}\n\nSpecified in [{self.page_titles[page]}]({rel(src, page)}).\n\n"
                + '<div class="rep-index" markdown>\n\n'
                + md_table(header, rows)
                + "\n\n</div>"
            )
        coverage = (
            "The last column lists the conformance-kit tests that check each requirement."
            if self.tests is not None
            else "The conformance kit's test list was not available when this page was built."
        )
        return (
            # The table needs the width: the page keeps its table of contents (one entry per
            # section) and drops the site navigation, which the top tabs still offer. Themes
            # that do not know this front matter key ignore it.
            "---\nhide:\n  - navigation\n---\n\n"
            "# Requirement index\n\n"
            f"REP {self.catalog.protocol_version} has {len(requirements)} requirements"
            f" ({level_text}): {check_text}. Each id links to the place in the specification\n"
            f"where the statement applies. {coverage}\n\n"
            + "\n\n".join(sections)
            + "\n"
            + _note(src)
        )

    def schemas(self) -> str:
        src = SCHEMAS_PAGE
        rows = []
        vectors = []
        for relative, path in published_files():
            link = f"[{relative}]({rel(src, f'{PUBLISHED_ROOT}/{relative}')})"
            if relative.startswith("vectors/"):
                vectors.append(f"- {link}")
                continue
            rows.append([link, _escape(_describe_file(relative, path))])
        parts = [
            "# Schemas and downloads\n",
            "Every file of `schemas/` is published under `/schemas/1.0/`, so each JSON Schema\n"
            "can be fetched at the URL of its `$id`, for example\n"
            "`https://rep-protocol.dev/schemas/1.0/envelope.schema.json`. Relative `$ref`s\n"
            "between the files resolve against those URLs.\n",
            md_table(["file", "contents"], rows),
        ]
        if vectors:
            parts.append(
                "\n## Test vectors\n\n"
                "Language-neutral cases in the style of the JSON-Schema-Test-Suite: each file\n"
                "holds `tests: [{description, data, valid}]` for one message type and sender.\n"
            )
            parts.append("\n".join(vectors))
        return "\n".join(parts) + "\n" + _note(src)


def _test_name(name: str) -> str:
    """A test id as code that may wrap after ``::`` and ``_``, so the column stays narrow."""
    escaped = html.escape(name, quote=False).replace("|", "&#124;")
    breakable = escaped.replace("::", "::<wbr>").replace("_", "_<wbr>")
    return f'<code class="rep-test">{breakable}</code>'


def _describe_file(relative: str, path: Any) -> str:
    if relative.endswith(".json"):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            return ""
        if isinstance(document, dict):
            title = str(document.get("title", "")).strip()
            description = " ".join(str(document.get("description", "")).split())
            text = f"{title}: {description}" if title and description else title or description
            return text[:240] + ("…" if len(text) > 240 else "")
    if relative == "asyncapi.yaml":
        return "AsyncAPI 3.0 description of the WebSocket and SSE endpoints."
    if relative == "requirements.yaml":
        return "The requirements registry: every normative statement with its id."
    return ""
