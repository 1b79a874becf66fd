"""Chat: members only, one copy each, sanitized content, safe attachment URLs, permissions."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from conformance import spec, steps
from conformance.checks import _hosts
from conformance.client import Client, Message, json_text
from conformance.generation import settings as run_settings
from conformance.generation.explore import explore
from conformance.generation.scenario import Runner
from conformance.harness import Harness
from conformance.jsonvalues import same_json

FORBIDDEN = spec.error_code("forbidden")
INVALID_PAYLOAD = spec.error_code("invalid_payload")
CONNECT = spec.permission("websocket:connect")
JOIN = spec.permission("room:join")
DEFAULT_CHAT_TYPE = spec.payload_default("chat_message", "type")


class _Markup(HTMLParser):
    """Collects the elements and attributes a browser would build from a text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, attrs))


def markup_in(content: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    parser = _Markup()
    parser.feed(content)
    parser.close()
    return parser.elements


def chat(client: Client, room: str, content: str, **extra: object) -> str:
    return client.send("chat_message", {"roomId": room, "content": content, **extra})


@pytest.mark.requirements("CHAT-001")
def test_a_non_member_cannot_chat_in_a_room(rep: Harness) -> None:
    """A chat_message to a room the sender has not joined: forbidden, nobody receives it."""
    member, outsider = rep.connect(label="member"), rep.connect(label="outsider")
    room = steps.populated_room(rep, member)
    sent = chat(outsider, room, "let me in")
    outsider.expect_refusal(FORBIDDEN, of=sent, requirement="CHAT-001")
    member.expect_none("chat_message", requirement="CHAT-001", description="the outsider's chat")


@pytest.mark.requirements("CHAT-001")
def test_chat_to_a_room_that_does_not_exist_is_forbidden(rep: Harness) -> None:
    """No such room: the sender is not a member of it, so forbidden (not not_found)."""
    client = rep.connect()
    sent = chat(client, rep.slug("nowhere"), "anyone?")
    client.expect_refusal(FORBIDDEN, of=sent, requirement="CHAT-001")


@pytest.mark.requirements("MSG-007", "MSG-005")
def test_other_members_copies_carry_the_senders_correlation_id(rep: Harness) -> None:
    """The member's copy, found by its content, names the original id and the sender."""
    sender, member = rep.connect(label="sender"), rep.connect(label="member")
    room = steps.populated_room(rep, member, sender)
    content = rep.name("marker")
    sent = chat(sender, room, content)
    copy = member.expect(
        "chat_message",
        where=lambda m: m.get("payload", {}).get("content") == content,
        requirement="CHAT-002",
        description=f"the copy of chat {json_text(content)}",
    )
    got = copy.get("metadata", {}).get("correlation_id")
    if got != sent:
        raise rep.fail(
            "MSG-007",
            sent=f"chat_message id={json_text(sent)} from {sender.label}",
            expected=f"{member.label}'s copy with metadata.correlation_id = {json_text(sent)}",
            received=f"metadata.correlation_id = {json_text(got)}",
        )
    steps.check_sender(rep, copy, sender)


@pytest.mark.requirements("CHAT-002", "MSG-004", "MSG-005")
def test_every_member_gets_exactly_one_copy_and_no_one_else(rep: Harness) -> None:
    """Sender and member each get one copy naming the sender; other rooms get nothing."""
    sender, member = rep.connect(label="sender"), rep.connect(label="member")
    elsewhere, lobby = rep.connect(label="elsewhere"), rep.connect(label="lobby")
    room = steps.populated_room(rep, member, sender)
    steps.populated_room(rep, elsewhere)
    sent = chat(sender, room, "hello room")
    for client in (sender, member):
        copy = steps.delivered(client, "chat_message", sent, requirement="CHAT-002")
        steps.check_sender(rep, copy, sender)
        if not same_json(copy["payload"].get("content"), "hello room"):
            raise rep.fail(
                "CHAT-002", expected="content 'hello room'", received=json_text(copy["payload"])
            )
    rep.quiet(
        [sender, member, elsewhere, lobby],
        "chat_message",
        correlation_id=sent,
        requirement="CHAT-002",
        description="another copy",
    )


MARKUP = {
    "script": "<b>hi</b><script>alert(1)</script>",
    "event-handler": '<i onclick="alert(1)">click</i>',
    "javascript-link": '<a href="javascript:alert(1)">link</a>',
    "image-onerror": "<img src=x onerror=alert(1)>",
    "svg-onload": "<svg onload=alert(1)></svg>",
    "iframe": '<iframe src="https://evil.example"></iframe>',
    "allowed-with-style": '<strong style="color:red">loud</strong><u title="x">u</u>',
    "nested-trick": "<<script>script>alert(1)<</script>/script>",
    "uppercase": "<SCRIPT>alert(1)</SCRIPT><B>ok</B>",
    "nothing-left": "<script>alert(1)</script>",
}


@pytest.mark.requirements("CHAT-003", "CHAT-008")
@pytest.mark.parametrize("content", MARKUP.values(), ids=MARKUP.keys())
def test_chat_content_is_sanitized_before_distribution(rep: Harness, content: str) -> None:
    """Only the allowed elements survive, without attributes, in every member's copy."""
    sender, member = rep.connect(label="sender"), rep.connect(label="member")
    room = steps.populated_room(rep, member, sender)
    sent = chat(sender, room, content)
    allowed = set(spec.ALLOWED_CHAT_ELEMENTS)
    for client in (member, sender):
        copy = steps.delivered(client, "chat_message", sent, requirement=("CHAT-002", "CHAT-008"))
        received = str(copy["payload"].get("content", ""))
        for tag, attrs in markup_in(received):
            if tag.lower() not in allowed or attrs:
                raise rep.fail(
                    "CHAT-003",
                    sent=f"chat content {json_text(content)}",
                    expected=f"only <{'>, <'.join(sorted(allowed))}> without attributes",
                    received=f"{client.label} got content {json_text(received)} "
                    f"(element <{tag}> with attributes {attrs})",
                )


#: The refused hosts, one parameter per IPv4 range (every notation) and one for the rest.
HOST_GROUPS = [*_hosts.REFUSED_V4, "v6-names-schemes"]


def refused_urls(group: str) -> list[tuple[str, str]]:
    if group in _hosts.REFUSED_V4:
        return _hosts.refused_urls(group)
    return _hosts.other_refused_urls()


@pytest.mark.requirements("CHAT-004", "ERR-009", "ERR-004")
@pytest.mark.parametrize("group", HOST_GROUPS)
def test_attachment_urls_to_internal_hosts_or_other_schemes_are_refused(
    rep: Harness, group: str
) -> None:
    """Every notation of every refused range (dotted, integer, hex, octal, short,
    IPv4-mapped, trailing dot), IPv6 ranges, localhost names, other schemes: refused."""
    sender, member = rep.connect(label="sender"), rep.connect(label="member")
    room = steps.populated_room(rep, member, sender)
    urls = refused_urls(group)
    rep.needs_messages(len(urls) + 2)
    for form, url in urls:
        attachments = [{"type": "image", "url": url}]
        sent = chat(sender, room, f"look ({form})", metadata={"attachments": attachments})
        sender.expect_refusal(INVALID_PAYLOAD, of=sent, requirement="CHAT-004")
    member.expect_none("chat_message", within=0.0, requirement="ERR-004", description="a copy")


@pytest.mark.requirements("CHAT-004", "ERR-004")
def test_generated_internal_attachment_hosts_are_refused(rep: Harness) -> None:
    """Random addresses anywhere in each refused range, in random notations, ports and
    paths: every one refused, and the room gets no copy (a fixed list of one address per
    range misses a server whose ranges are too narrow)."""
    check = "test_chat.py::test_generated_internal_attachment_hosts_are_refused"

    def body(runner: Runner, case: tuple[str, str]) -> None:
        form, url = case
        room = runner.name("hosts-room")
        runner.connect("member", runner.name("member"))
        runner.connect("sender", runner.name("sender"))
        runner.request("member", "room_join", {"roomId": room})
        runner.request("sender", "room_join", {"roomId": room})
        runner.expect_delivery(
            "member",
            {"type": "user_join", "about": "sender", "roomId": room},
            requirement="ROOM-004",
        )
        payload = {
            "roomId": room,
            "content": f"look ({form})",
            "metadata": {"attachments": [{"type": "image", "url": url}]},
        }
        sent = runner.send_message("sender", "chat_message", payload)
        runner.expect_refusal(
            "sender",
            INVALID_PAYLOAD,
            sent,
            code_requirement="CHAT-004",
            violates="CHAT-004",
            description=f"an attachment URL {url} ({form})",
        )
        runner.expect_quiet("member", requirement="ERR-004", about=f"the refused chat ({url})")

    explore(
        rep,
        check=check,
        strategy=_hosts.refused_attachment_urls(),
        body=body,
        max_examples=run_settings.budget().valid_examples,
        describe=lambda case: f"attachment URL {case[1]} ({case[0]})",
    )


@pytest.mark.requirements("CHAT-004")
@pytest.mark.parametrize(
    "url", ["https://example.com/cat.png", "http://93.184.216.34/cat.png"], ids=["name", "ip"]
)
def test_attachment_urls_to_public_hosts_are_accepted(rep: Harness, url: str) -> None:
    """An http(s) URL on a public host name or public address is distributed."""
    sender = rep.connect(label="sender")
    room = steps.populated_room(rep, sender)
    attachments = [{"type": "image", "url": url, "size": 1024}]
    sent = chat(sender, room, "look", metadata={"attachments": attachments})
    steps.copy_of(sender, "chat_message", sent, requirement="CHAT-004")


@pytest.mark.requirements("CHAT-005", "AUTHZ-002")
def test_chatting_needs_message_send(rep: Harness) -> None:
    """A member whose token lacks message:send is refused; the room hears nothing."""
    member = rep.connect(label="member")
    mute = rep.connect(label="mute", roles=(), permissions=(CONNECT, JOIN))
    room = steps.populated_room(rep, member, mute)
    sent = chat(mute, room, "hello?")
    mute.expect_refusal(FORBIDDEN, of=sent, requirement="CHAT-005")
    member.expect_none("chat_message", requirement="AUTHZ-002", description="the refused chat")


@pytest.mark.requirements("CHAT-005")
def test_a_moderated_room_needs_room_moderate(rep: Harness) -> None:
    """In the moderated room a plain member is refused and a moderator is distributed."""
    room = rep.target.fixtures.moderated_room
    if room is None:
        pytest.skip("the target file names no fixtures.moderated_room")
    plain, moderator = rep.connect(label="plain"), rep.connect(label="mod", roles=("moderator",))
    steps.join(plain, room)
    steps.join(moderator, room)
    sent = chat(plain, room, "may I?")
    plain.expect_refusal(FORBIDDEN, of=sent, requirement="CHAT-005")
    allowed = chat(moderator, room, "yes")
    steps.copy_of(moderator, "chat_message", allowed, requirement="CHAT-005")


@pytest.mark.requirements("CHAT-006")
@pytest.mark.parametrize("given", [None, "emoji"], ids=["omitted", "emoji"])
def test_the_copy_always_carries_the_chat_type(rep: Harness, given: str | None) -> None:
    """payload.type is on every copy: the schema's default when the sender left it out."""
    sender = rep.connect()
    room = steps.populated_room(rep, sender)
    sent = chat(sender, room, ":)", **({"type": given} if given else {}))
    copy: Message = steps.copy_of(sender, "chat_message", sent)
    want = given or DEFAULT_CHAT_TYPE
    if copy["payload"].get("type") != want:
        raise rep.fail(
            "CHAT-006",
            expected=f"payload.type = {json_text(want)}",
            received=f"payload {json_text(copy['payload'])}",
        )
