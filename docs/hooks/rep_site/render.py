"""Turn the macros of a page into Markdown: requirement statements and registry tables.

Requirement statements are rendered as one paragraph carrying the id as its anchor, the
BCP 14 keyword in bold and a link to the requirement index, so a reader sees a spec
sentence and a tool sees a stable target (``page#ENV-001``).
"""

from __future__ import annotations

import html
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import yaml

from rep_site.pages import macro_matches, parse_call
from rep_site.schemas import FieldRow, describe, describe_file
from rep_spec import Catalog, Requirement

REQUIREMENT_INDEX = "reference/requirements.md"
MESSAGE_PAGES = "reference/messages"
ERROR_CODES_PAGE = "reference/error-codes.md"

VERIFIED_BY = {
    "conformance": "checked by the conformance kit",
    "vectors": "checked by the schema test vectors",
    "client-conformance": "checked by the conformance kit's client run (rep-conformance client)",
    "review": "not observable from outside; checked by review and the reference server's tests",
}
ACTORS = {"server": "servers", "client": "clients", "both": "clients and servers"}
DIRECTIONS = {
    "client_to_server": "client → server",
    "server_to_client": "server → client",
    "both": "both",
}

TOKEN = re.compile(r"(?<![\w`/{])([A-Za-z][\w]*(?:[.:][A-Za-z_]\w*)*)(?![\w`}])")
CODE_OF = re.compile(r"\bcode (\w+)")
MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]#])")
ENTITIES = {"<": "&lt;", ">": "&gt;", "|": "&#124;"}


def escape_markdown(text: str) -> str:
    """Plain text as Markdown that renders to the same characters, tables included."""
    escaped = MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return re.sub(r"[<>|]", lambda m: ENTITIES[m.group(0)], escaped)


def rel(from_src: str, to_src: str) -> str:
    """A Markdown link from one page source to another, as MkDocs resolves them."""
    return posixpath.relpath(to_src, posixpath.dirname(from_src) or ".")


def message_page(type_name: str) -> str:
    return f"{MESSAGE_PAGES}/{type_name}.md"


class Vocabulary:
    """Protocol names that read better as code when a requirement's text mentions them."""

    def __init__(self, catalog: Catalog, property_names: Iterable[str]) -> None:
        self.terms = (
            set(catalog.types)
            | set(catalog.error_codes)
            | set(catalog.permissions)
            | set(property_names)
        )
        self.error_codes = set(catalog.error_codes)

    def is_code(self, token: str) -> bool:
        if token.startswith(("metadata.", "payload.")) or token == "rep.v1":
            return True
        looks_technical = bool(re.search(r"[_:]|[a-z][A-Z]", token))
        return looks_technical and token in self.terms

    def format(self, text: str) -> str:
        """Escape the text for Markdown and put protocol names in code spans."""
        coded = {m.group(1) for m in CODE_OF.finditer(text) if m.group(1) in self.error_codes}
        pieces: list[str] = []
        last = 0
        for match in TOKEN.finditer(text):
            token = match.group(1)
            if not (self.is_code(token) or token in coded):
                continue
            pieces.append(escape_markdown(text[last : match.start()]))
            pieces.append(f"`{token}`")
            last = match.end()
        pieces.append(escape_markdown(text[last:]))
        return "".join(pieces)


def render_requirement(requirement: Requirement, page_src: str, vocabulary: Vocabulary) -> str:
    """One requirement as a spec sentence: anchor, id link, bold keyword, registry text."""
    level_class = requirement.level.lower().replace(" ", "-")
    tip = f"{requirement.id}: applies to {ACTORS.get(requirement.actor, requirement.actor)}"
    tip += f"; {VERIFIED_BY.get(requirement.verified_by, requirement.verified_by)}"
    link = rel(page_src, REQUIREMENT_INDEX)
    return (
        f'[{requirement.id}]({link}#{requirement.id}){{ .rep-req__id title="{tip}" }}'
        f" **{requirement.level}**{{ .rep-kw }}: {vocabulary.format(requirement.text)}\n"
        f"{{ #{requirement.id} .rep-req .rep-req--{level_class} }}"
    )


def md_table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """A Markdown table; cells must already be escaped Markdown."""
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    lines += ["| " + " | ".join(cell.replace("\n", " ") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def answer_text(catalog: Catalog, type_name: str, page_src: str) -> str:
    entry = catalog.types[type_name]
    if entry.answer_kind == "response" and entry.answer_type:
        return f"[`{entry.answer_type}`]({rel(page_src, message_page(entry.answer_type))})"
    if entry.answer_kind == "copy":
        return "the server's copy"
    return "—"


def messages_table(catalog: Catalog, page_src: str, feature: str | None = None) -> str:
    rows = []
    for entry in catalog.types.values():
        if feature is not None and entry.feature != feature:
            continue
        rows.append(
            [
                f"[`{entry.name}`]({rel(page_src, message_page(entry.name))})",
                entry.group,
                DIRECTIONS[entry.direction],
                f"`{entry.feature}`",
                answer_text(catalog, entry.name, page_src),
            ]
        )
    if not rows:
        raise ValueError(f"no message type has the feature {feature!r}")
    return md_table(["type", "group", "direction", "feature", "answer on success"], rows)


def features_table(catalog: Catalog, page_src: str) -> str:
    rows = []
    for name, meaning in catalog.features.items():
        types = [t.name for t in catalog.types.values() if t.feature == name]
        listed = ", ".join(f"[`{t}`]({rel(page_src, message_page(t))})" for t in types)
        rows.append([f"`{name}`", escape_markdown(meaning), listed or "—"])
    return md_table(["feature", "what it covers", "message types"], rows)


def error_codes_table(catalog: Catalog) -> str:
    rows = [
        [
            f'<span id="{e.code}"></span>`{e.code}`',
            str(e.http_status),
            "yes" if e.retryable else "no",
            escape_markdown(e.meaning),
        ]
        for e in catalog.error_codes.values()
    ]
    return md_table(["code", "HTTP status", "retryable", "meaning"], rows)


def close_codes_table(catalog: Catalog) -> str:
    rows = [
        [f"`{c.code}`", f"`{c.name}`", escape_markdown(c.meaning), f"`{c.client_reconnect}`"]
        for c in sorted(catalog.close_codes.values(), key=lambda c: c.code)
    ]
    return md_table(["code", "name", "meaning", "client reconnects"], rows)


def roles_table(
    catalog: Catalog, own: Mapping[str, list[str]], inherits: Mapping[str, list[str]]
) -> str:
    rows = []
    for role, effective in catalog.roles.items():
        parents = ", ".join(f"`{p}`" for p in inherits.get(role, [])) or "—"
        added = ", ".join(f"`{p}`" for p in own.get(role, []))
        rows.append([f"`{role}`", parents, added, str(len(effective))])
    return md_table(["role", "inherits", "adds", "effective permissions"], rows)


def permissions_table(catalog: Catalog) -> str:
    roles = list(catalog.roles)
    rows = []
    for permission, meaning in catalog.permissions.items():
        marks = ["✓" if permission in catalog.roles[r] else "" for r in roles]
        rows.append([f"`{permission}`", escape_markdown(meaning), *marks])
    return md_table(["permission", "grants", *[f"`{r}`" for r in roles]], rows)


def field_rows_table(rows: Iterable[FieldRow], page_src: str) -> str:
    cells = []
    for row in rows:
        depth = row.path.count(".")
        breakable = html.escape(row.path).replace(".", ".<wbr>")
        name = "&nbsp;&nbsp;" * depth + f'<code class="rep-member">{breakable}</code>'
        notes = list(row.constraints)
        if row.requirement:
            notes.append(
                f"[{row.requirement}]({rel(page_src, REQUIREMENT_INDEX)}#{row.requirement})"
            )
        cells.append(
            [
                name,
                row.type,
                "yes" if row.required else "no",
                "; ".join(notes) or "—",
                escape_markdown(row.description) or "—",
            ]
        )
    if not cells:
        return "_No members: the payload is an empty object._"
    return md_table(["member", "type", "required", "limits", "description"], cells)


MacroRenderer = Callable[[str, tuple[str, ...]], str]


def expand_macros(text: str, page_src: str, renderers: Mapping[str, MacroRenderer]) -> str:
    """Replace every macro call by its rendering; the calls were checked by check_placement."""
    pieces: list[str] = []
    last = 0
    for match in macro_matches(text):
        parsed = parse_call(match.group("inner"))
        if parsed is None or parsed[0] not in renderers:
            raise ValueError(f"{page_src}: cannot expand {match.group(0)!r}")
        name, args = parsed
        line_start = text.rfind("\n", 0, match.start()) + 1
        indent = text[line_start : match.start()]
        indent = indent[: len(indent) - len(indent.lstrip(" \t"))]
        pieces.append(text[last : match.start()])
        pieces.append(renderers[name](page_src, args).replace("\n", "\n" + indent))
        last = match.end()
    pieces.append(text[last:])
    return "".join(pieces)


def schema_fields(relative: str, page_src: str) -> str:
    view = describe(relative)
    return field_rows_table(view.fields, page_src)


def file_schema_fields(path: Path, page_src: str) -> str:
    return field_rows_table(describe_file(path).fields, page_src)


def action_inputs(path: Path) -> str:
    """The inputs of a GitHub composite action, as its action.yml declares them."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    rows = []
    for name, spec in (document.get("inputs") or {}).items():
        default = spec.get("default", "")
        rows.append(
            [
                f"`{name}`",
                "yes" if spec.get("required") else "no",
                f"`{default}`" if default != "" else "—",
                escape_markdown(" ".join(str(spec.get("description", "")).split())),
            ]
        )
    return md_table(["input", "required", "default", "meaning"], rows)
