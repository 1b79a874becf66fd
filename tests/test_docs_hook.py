"""Unit tests of the spec-site rules on tiny synthetic pages, without running MkDocs.

The rules are what keep the site honest: a requirement's text lives only in the registry,
and every id is placed exactly once, in its section's page.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rep_spec import MessageType, MessageValidator, Requirement, catalog, requirements
from rep_spec.catalog import Direction

HOOKS = Path(__file__).resolve().parents[1] / "docs" / "hooks"
if str(HOOKS) not in sys.path:
    sys.path.insert(0, str(HOOKS))

from rep_site.examples import (  # noqa: E402
    check_example,
    find_examples,
    rewrite_fences,
)
from rep_site.pages import Page, SiteError, check_placement, find_macros  # noqa: E402
from rep_site.related import action_forms, related_requirements, rule_text  # noqa: E402
from rep_site.render import (  # noqa: E402
    Vocabulary,
    action_inputs,
    expand_macros,
    render_requirement,
)
from rep_site.schemas import describe, describe_file, published_files  # noqa: E402


def requirement(req_id: str, section: str, text: str, level: str = "MUST") -> Requirement:
    return Requirement(
        id=req_id, level=level, section=section, actor="server", verified_by="review", text=text
    )


REGISTRY = {
    "TST-001": requirement("TST-001", "alpha", "A server answers every probe with one reply."),
    "TST-002": requirement("TST-002", "alpha", "A server keeps probes in order.", "SHOULD"),
    "TST-003": requirement("TST-003", "beta", "A client sends at most one probe per second."),
}


def page(src: str, section: str | None, body: str) -> Page:
    front = f"---\nrep_section: {section}\n---\n\n" if section else ""
    return Page(src, front + body)


def good_pages() -> list[Page]:
    return [
        page("spec/alpha.md", "alpha", '# Alpha\n\n{{ req("TST-001") }}\n\n{{ req("TST-002") }}\n'),
        page("spec/beta.md", "beta", '# Beta\n\nProse.\n\n{{ req("TST-003") }}\n'),
    ]


def problems_of(pages: list[Page]) -> list[str]:
    with pytest.raises(SiteError) as caught:
        check_placement(pages, REGISTRY)
    return caught.value.problems


def test_every_id_placed_once_in_its_section_passes() -> None:
    placement = check_placement(good_pages(), REGISTRY)
    assert placement.page_of == {
        "TST-001": "spec/alpha.md",
        "TST-002": "spec/alpha.md",
        "TST-003": "spec/beta.md",
    }


def test_unknown_id_fails() -> None:
    pages = [*good_pages(), page("spec/gamma.md", "alpha", '{{ req("TST-404") }}\n')]
    problems = problems_of(pages)
    assert any("unknown requirement id 'TST-404'" in p for p in problems), problems


def test_missing_id_fails() -> None:
    pages = [good_pages()[0], page("spec/beta.md", "beta", "# Beta\n\nNo marker here.\n")]
    problems = problems_of(pages)
    assert problems == [
        'TST-003 (beta) is placed in no page: add {{ req("TST-003") }} where the statement applies'
    ]


def test_duplicate_id_fails_across_pages_and_within_one() -> None:
    across = [*good_pages(), page("spec/alpha2.md", "alpha", '{{ req("TST-001") }}\n')]
    assert any("TST-001 is placed more than once" in p for p in problems_of(across))
    within = [
        page(
            "spec/alpha.md",
            "alpha",
            '{{ req("TST-001") }}\n\n{{ req("TST-002") }}\n\n{{ req("TST-001") }}\n',
        ),
        good_pages()[1],
    ]
    problems = problems_of(within)
    assert any("spec/alpha.md:5, spec/alpha.md:9" in p for p in problems), problems


def test_restated_text_fails_even_when_reflowed_or_formatted() -> None:
    restated = page(
        "spec/notes.md", None, "As said: A server answers every\n**probe** with one `reply`.\n"
    )
    problems = problems_of([*good_pages(), restated])
    assert problems == [
        "spec/notes.md: restates the text of TST-001 instead of placing it with"
        ' {{ req("TST-001") }}'
    ]


def test_marker_in_another_sections_page_fails() -> None:
    pages = [
        page(
            "spec/alpha.md",
            "alpha",
            '{{ req("TST-001") }}\n\n{{ req("TST-002") }}\n\n{{ req("TST-003") }}\n',
        ),
    ]
    problems = problems_of(pages)
    assert any("TST-003 belongs to section 'beta'" in p for p in problems), problems


def test_marker_inside_a_sentence_fails() -> None:
    pages = [
        page("spec/alpha.md", "alpha", 'So {{ req("TST-001") }} holds.\n\n{{ req("TST-002") }}\n'),
        good_pages()[1],
    ]
    assert any("must stand alone on its line" in p for p in problems_of(pages))


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        ("{{ req(TST-001) }}", "cannot read the macro"),
        ('{{ requirement("TST-001") }}', "unknown macro 'requirement'"),
        ('{{ req("TST-001", "TST-002") }}', "req() takes 1..1 arguments"),
    ],
)
def test_malformed_macros_fail(marker: str, expected: str) -> None:
    _, problems = find_macros(Page("p.md", f"text\n\n{marker}\n"))
    assert len(problems) == 1 and expected in problems[0], problems


def test_braces_in_code_are_not_macros() -> None:
    text = (
        'Use `{{ req("X") }}` in prose.\n\n```yaml\nenv:\n  S: ${{ secrets.S }}\n```\n\n'
        '{{ req("TST-001") }}\n'
    )
    macros, problems = find_macros(Page("p.md", text))
    assert problems == [] and [m.args for m in macros] == [("TST-001",)]
    out = expand_macros(text, "p.md", {"req": lambda src, args: f"<{args[0]}>"})
    assert "${{ secrets.S }}" in out and '`{{ req("X") }}`' in out and "<TST-001>" in out


def test_rendered_requirement_is_an_anchored_spec_sentence() -> None:
    vocabulary = Vocabulary(catalog(), {"retry_after_ms", "roomId"})
    text = "A server sends error code forbidden with retry_after_ms for *roomId* in room_join."
    rendered = render_requirement(
        requirement("TST-009", "alpha", text), "specification/rooms.md", vocabulary
    )
    first, attributes = rendered.split("\n")
    assert first.startswith("[TST-009](../reference/requirements.md#TST-009)")
    assert " **MUST**{ .rep-kw }: " in first
    assert "`forbidden`" in first and "`retry_after_ms`" in first and "`room_join`" in first
    assert "\\*`roomId`\\*" in first, "markdown specials are escaped, names are code"
    assert attributes == "{ #TST-009 .rep-req .rep-req--must }"


def test_macros_keep_the_indentation_of_their_line() -> None:
    text = '!!! note\n    {{ req("TST-001") }}\n'
    out = expand_macros(text, "spec/a.md", {"req": lambda src, args: f"line one\n{{ #{args[0]} }}"})
    assert out == "!!! note\n    line one\n    { #TST-001 }\n"


ENVELOPE = {
    "id": "s-1",
    "type": "pong",
    "timestamp": "2025-06-02T10:00:00Z",
    "payload": {"timestamp": 1},
    "metadata": {"version": "1.0", "source": "server", "correlation_id": "a-1"},
}


def fenced(info: str, body: str, indent: str = "") -> str:
    lines = [
        f"{indent}```{info}",
        *(f"{indent}{line}" for line in body.splitlines()),
        f"{indent}```",
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def validator() -> MessageValidator:
    return MessageValidator()


def test_valid_server_example_passes_and_is_titled(validator: MessageValidator) -> None:
    text = "Intro\n\n" + fenced("json rep To Alice", json.dumps(ENVELOPE, indent=2), "    ")
    (example,) = find_examples("p.md", text)
    assert example.tag == "rep" and example.label == "To Alice"
    assert check_example(example, validator) is None
    assert '    ``` json title="To Alice · pong"' in rewrite_fences(text)


def test_invalid_example_is_reported(validator: MessageValidator) -> None:
    broken = {**ENVELOPE, "payload": {}}
    (example,) = find_examples("p.md", fenced("json rep", json.dumps(broken)))
    problem = check_example(example, validator)
    assert problem is not None and "p.md:1: invalid server message at /payload/timestamp" in problem


def test_refused_example_must_be_refused_with_the_named_code(validator: MessageValidator) -> None:
    frame = '{"id": "a-1", "type": "pong", "timestamp": "2025-06-02T10:00:00Z", "payload": {}}'
    (right,) = find_examples("p.md", fenced("json rep-invalid invalid_direction", frame))
    assert check_example(right, validator) is None
    (wrong,) = find_examples("p.md", fenced("json rep-invalid unknown_type", frame))
    assert "refused with invalid_direction, the tag says unknown_type" in str(
        check_example(wrong, validator)
    )


def test_untagged_envelope_is_reported(validator: MessageValidator) -> None:
    (example,) = find_examples("p.md", fenced("json", json.dumps(ENVELOPE)))
    assert "tag it `json rep`" in str(check_example(example, validator))


def test_sse_example_checks_each_event(validator: MessageValidator) -> None:
    good = "\n".join(
        [
            "retry: 3000",
            "",
            "event: connection",
            'data: {"clientId": "c-1"}',
            "",
            ": keep-alive",
            "",
            "event: pong",
            "id: 7",
            "data: " + json.dumps(ENVELOPE),
        ]
    )
    (example,) = find_examples("p.md", fenced("text rep-sse", good))
    assert check_example(example, validator) is None
    mislabelled = good.replace("event: pong", "event: heartbeat")
    (example,) = find_examples("p.md", fenced("text rep-sse", mislabelled))
    assert "event name and envelope type differ" in str(check_example(example, validator))


def test_schema_walk_resolves_refs_and_flattens_nested_members() -> None:
    rows = {row.path: row for row in describe("payloads/chat_message.schema.json").fields}
    room = rows["roomId"]
    assert room.required and room.type == "string" and room.requirement == "ROOM-001"
    assert any(c.startswith("pattern `^[A-Za-z0-9]") for c in room.constraints), room
    assert "metadata.attachments[].url" in rows
    assert rows["content"].constraints[0] == "1 to 1000 characters"


def test_every_schema_file_is_published_at_its_id() -> None:
    published = dict(published_files())
    assert "envelope.schema.json" in published
    assert "requirements.yaml" in published
    assert not any(name.endswith((".md", ".py")) for name in published)


def test_a_schema_outside_schemas_is_walked_with_its_own_refs(tmp_path: Path) -> None:
    schema = {
        "$id": "https://example.test/target.schema.json",
        "type": "object",
        "required": ["url"],
        "properties": {"url": {"$ref": "#/$defs/url"}, "room": {"$ref": "REF"}},
        "$defs": {"url": {"type": "string", "pattern": "^wss?://", "description": "Where."}},
    }
    schema["properties"]["room"]["$ref"] = (
        "https://rep-protocol.dev/schemas/1.0/defs.schema.json#/$defs/roomId"
    )
    path = tmp_path / "target.schema.json"
    path.write_text(json.dumps(schema), encoding="utf-8")
    rows = {row.path: row for row in describe_file(path).fields}
    assert rows["url"].required and rows["url"].description == "Where."
    assert rows["room"].requirement == "ROOM-001", "refs into the REP schemas resolve too"


def test_action_inputs_are_read_from_action_yml(tmp_path: Path) -> None:
    path = tmp_path / "action.yml"
    path.write_text(
        "inputs:\n  target:\n    description: Path of the target | file.\n    required: true\n"
        "  strict:\n    description: Fail on SHOULDs.\n    default: 'false'\n",
        encoding="utf-8",
    )
    table = action_inputs(path).splitlines()
    assert table[2] == "| `target` | yes | — | Path of the target &#124; file. |"
    assert table[3] == "| `strict` | no | `false` | Fail on SHOULDs. |"


# --- which requirements a message type's page lists -------------------------------------


def message_type(
    name: str, direction: Direction = "client_to_server", feature: str = "rooms"
) -> MessageType:
    return MessageType(
        name=name,
        group="application",
        direction=direction,
        feature=feature,
        client_payload=None,
        server_payload=None,
        answer_kind=None,
        answer_type=None,
    )


def featured(req_id: str, text: str, feature: str | None = "rooms") -> Requirement:
    return Requirement(
        id=req_id,
        level="MUST",
        section="rooms",
        actor="server",
        verified_by="review",
        text=text,
        feature=feature,
    )


RELATED = [
    featured("T-1", "A room_join names one room."),
    featured("T-2", "The room_join_response lists the members."),
    featured("T-3", "Joining a locked room needs the permission room:join_locked."),
    featured("T-4", "A client that joins twice gets no second notice."),
    featured("T-5", "Joining is logged.", feature="cluster"),
    featured("T-6", "Room ids are slugs."),
    featured("T-7", "A joiner is greeted."),
]


def ids(found: list[Requirement]) -> list[str]:
    return [r.id for r in found]


def test_a_request_lists_what_names_it_uses_its_action_or_its_schema_cites() -> None:
    found = related_requirements(message_type("room_join"), RELATED, cited=["T-6"])
    # T-2 names another type, T-5 is another feature's, "joiner" is not a form of join.
    assert ids(found) == ["T-1", "T-3", "T-4", "T-6"]


def test_the_action_rule_is_for_types_a_client_sends() -> None:
    event = message_type("user_join", direction="server_to_client")
    assert action_forms(event) == ()
    assert ids(related_requirements(event, RELATED, cited=[])) == []
    assert action_forms(message_type("ping", feature="core")) == ()
    assert action_forms(message_type("data_update", direction="both")) == (
        "update",
        "updates",
        "updated",
        "updating",
    )


def test_the_rule_is_stated_with_the_types_own_words() -> None:
    text = rule_text(message_type("room_join"), "../../requirements.md")
    assert "names `room_join`" in text and "`x-requirement`" in text
    assert "`rooms` feature" in text and "join, joins, joined, joining" in text
    assert "[requirement index](../../requirements.md)" in text
    assert "action" not in rule_text(message_type("user_join", "server_to_client"), "x")


def test_room_joins_page_lists_its_permission_password_and_invitation_rules() -> None:
    registry = requirements()
    rooms = [r for r in registry if r.section == "rooms"]

    def the_one(*words: str) -> str:
        (match,) = [r.id for r in rooms if all(w in r.text for w in words)]
        return match

    permission = the_one("permission room:join;")
    password = the_one("password")
    invitation = the_one("invitation list")
    assert (permission, password, invitation) == ("ROOM-010", "ROOM-011", "ROOM-012")
    cited = describe("payloads/room_join.schema.json").cited
    listed = ids(related_requirements(catalog().types["room_join"], registry, cited))
    assert {permission, password, invitation, "ROOM-002", "ROOM-007"} <= set(listed)
    event = ids(related_requirements(catalog().types["user_join"], registry, cited=[]))
    assert password not in event and invitation not in event


def test_a_schema_view_names_the_requirements_it_cites() -> None:
    view = describe("payloads/chat_message.schema.json")
    assert view.requirement == "CHAT-007"
    assert view.cited[0] == "CHAT-007" and "ROOM-001" in view.cited
    assert len(set(view.cited)) == len(view.cited)
