"""Find the requirement markers and macros in the spec pages and check their placement.

The rule this module enforces: a requirement's text lives only in the registry; a page
*places* it with ``{{ req("ID") }}``. Every id is placed exactly once, in the page whose
front matter names the requirement's section, and no page restates a text verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import yaml

from rep_spec import Requirement

# Anything between double braces is meant as a macro; a typo must fail, not print braces.
ANY_MACRO = re.compile(r"\{\{(?P<inner>.*?)\}\}", re.S)
CALL = re.compile(r"^\s*(?P<name>[a-z_][a-z0-9_]*)\s*\((?P<args>.*)\)\s*$", re.S)
STRING_ARG = re.compile(r'\s*"(?P<value>[^"\\]*)"\s*(?:,|$)')
REQ_LINE = re.compile(r"^(?P<indent>[ \t]*)\{\{[^{}]*\}\}[ \t]*$")
# Code is shown as written: double braces in a fenced block or a code span (a CI workflow's
# ${{ secrets.X }}, say) are not macros.
CODE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,}).*?^(?P=indent)(?P=fence)[ \t]*$"
    r"|(?P<ticks>`+)(?!`).+?(?<!`)(?P=ticks)(?!`)",
    re.M | re.S,
)

# Macros a page may call, with how many string arguments each accepts.
MACROS: Mapping[str, tuple[int, int]] = {
    "req": (1, 1),
    "messages": (0, 1),
    "features": (0, 0),
    "error_codes": (0, 0),
    "close_codes": (0, 0),
    "roles": (0, 0),
    "permissions": (0, 0),
    "schema_fields": (1, 1),
    "file_schema_fields": (1, 1),
    "action_inputs": (1, 1),
    "matrix": (0, 0),
    "spec_changelog": (0, 0),
}

SECTION_KEY = "rep_section"


class SiteError(Exception):
    """The pages break a site rule; ``problems`` lists every break found, not just the first."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            "the spec site breaks its rules:\n" + "\n".join(f"  - {p}" for p in self.problems)
        )


@dataclass(frozen=True)
class Page:
    """A documentation page as written: its path under docs/ and its full source text."""

    src: str
    text: str

    @property
    def front_matter(self) -> dict[str, object]:
        return split_front_matter(self.text)[0]

    @property
    def section(self) -> str | None:
        value = self.front_matter.get(SECTION_KEY)
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Macro:
    """One ``{{ name("arg") }}`` call found in a page."""

    page: str
    line: int
    name: str
    args: tuple[str, ...]
    raw: str
    alone_on_line: bool


@dataclass
class Placement:
    """Where each requirement id is placed: the result of a successful check."""

    page_of: dict[str, str] = field(default_factory=dict)


def split_front_matter(text: str) -> tuple[dict[str, object], str]:
    """Split MkDocs-style YAML front matter from the body, as MkDocs itself does."""
    match = re.match(r"^-{3}[ \t]*\n(.*?\n)(?:\.{3}|-{3})[ \t]*\n", text, re.S)
    if not match:
        return {}, text
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return {}, text
    if not isinstance(meta, dict):
        return {}, text
    return meta, text[match.end() :]


def parse_call(inner: str) -> tuple[str, tuple[str, ...]] | None:
    """Parse ``name("a", "b")``; None when the text is not a well-formed call."""
    call = CALL.match(inner)
    if call is None:
        return None
    rest = call.group("args").strip()
    args: list[str] = []
    while rest:
        arg = STRING_ARG.match(rest)
        if arg is None:
            return None
        args.append(arg.group("value"))
        rest = rest[arg.end() :].strip()
    return call.group("name"), tuple(args)


def macro_matches(text: str) -> list[re.Match[str]]:
    """The ``{{ ... }}`` spans of a text that lie outside code blocks and code spans."""
    code = [(m.start(), m.end()) for m in CODE.finditer(text)]
    return [m for m in ANY_MACRO.finditer(text) if not any(a <= m.start() < b for a, b in code)]


def find_macros(page: Page) -> tuple[list[Macro], list[str]]:
    """Every macro call in the page, and a problem for each one that cannot be understood."""
    macros: list[Macro] = []
    problems: list[str] = []
    lines = page.text.splitlines()
    for found in macro_matches(page.text):
        line_no = page.text.count("\n", 0, found.start()) + 1
        where = f"{page.src}:{line_no}"
        parsed = parse_call(found.group("inner"))
        if parsed is None:
            problems.append(f"{where}: cannot read the macro {found.group(0)!r}")
            continue
        name, args = parsed
        if name not in MACROS:
            problems.append(f"{where}: unknown macro {name!r} in {found.group(0)!r}")
            continue
        low, high = MACROS[name]
        if not low <= len(args) <= high:
            problems.append(f"{where}: {name}() takes {low}..{high} arguments, got {len(args)}")
            continue
        alone = bool(REQ_LINE.match(lines[line_no - 1])) and "\n" not in found.group(0)
        macros.append(Macro(page.src, line_no, name, args, found.group(0), alone))
    return macros, problems


def normalise(text: str) -> str:
    """Drop code and bold marks and collapse whitespace: a reformatted restatement still counts."""
    return " ".join(text.replace("`", "").replace("**", "").split())


def check_placement(pages: Iterable[Page], registry: Mapping[str, Requirement]) -> Placement:
    """Check the requirement rules over all pages; raise SiteError listing every break."""
    problems: list[str] = []
    seen: dict[str, list[Macro]] = {}
    page_list = list(pages)
    for page in page_list:
        macros, found_problems = find_macros(page)
        problems.extend(found_problems)
        for macro in macros:
            if macro.name != "req":
                continue
            where = f"{page.src}:{macro.line}"
            req_id = macro.args[0]
            requirement = registry.get(req_id)
            if requirement is None:
                problems.append(f"{where}: unknown requirement id {req_id!r}")
                continue
            seen.setdefault(req_id, []).append(macro)
            if not macro.alone_on_line:
                problems.append(f"{where}: {macro.raw} must stand alone on its line")
            if page.section != requirement.section:
                problems.append(
                    f"{where}: {req_id} belongs to section {requirement.section!r} but the page"
                    f" declares {SECTION_KEY}: {page.section!r}"
                )
    for req_id, places in seen.items():
        if len(places) > 1:
            where = ", ".join(f"{m.page}:{m.line}" for m in places)
            problems.append(f"{req_id} is placed more than once: {where}")
    for req_id, requirement in registry.items():
        if req_id not in seen:
            problems.append(
                f"{req_id} ({requirement.section}) is placed in no page: add"
                f' {{{{ req("{req_id}") }}}} where the statement applies'
            )
    for page in page_list:
        body = normalise(ANY_MACRO.sub(" ", page.text))
        for requirement in registry.values():
            if normalise(requirement.text) in body:
                problems.append(
                    f"{page.src}: restates the text of {requirement.id} instead of placing it"
                    f' with {{{{ req("{requirement.id}") }}}}'
                )
    if problems:
        raise SiteError(problems)
    return Placement({req_id: places[0].page for req_id, places in seen.items()})
