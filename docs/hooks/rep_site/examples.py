"""Worked examples in the spec pages are real messages, checked against the schemas.

A fenced block whose info string is ``json rep`` holds one envelope that must validate
(as a server message when its ``metadata.source`` says so, else as a client message: a
server message always names its source). A block tagged ``json rep-invalid <code>`` holds
what a client sent that a server must refuse with ``<code>`` at the schema level. A block
tagged ``text rep-sse`` is an SSE stream whose ``data:`` lines (after the ``connection``
event) must each be a valid server envelope. Untagged ``json`` blocks that look like
envelopes are reported, so no example escapes the check by accident.

Anything after the tag is a label shown as the block's title.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rep_spec import MessageValidator, decode_text_frame

FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w-]*)(?P<info>[^\n`]*)\n"
    r"(?P<body>.*?)\n?^(?P=indent)(?P=fence)[ \t]*$",
    re.M | re.S,
)
TAGS = ("rep", "rep-invalid", "rep-sse")
LANG_OF_TAG = {"rep": "json", "rep-invalid": "json", "rep-sse": "text"}
ARROWS = {"client": "client → server", "server": "server → client"}


@dataclass(frozen=True)
class Example:
    """One tagged block: where it is, how it is tagged, and its text without indentation."""

    page: str
    line: int
    tag: str | None
    label: str
    body: str

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def _dedent(body: str, indent: str) -> str:
    return "\n".join(
        line[len(indent) :] if line.startswith(indent) else line for line in body.splitlines()
    )


def find_examples(page: str, text: str) -> list[Example]:
    """Every ``json`` fenced block of a page, tagged or not."""
    found = []
    for match in FENCE.finditer(text):
        lang = match.group("lang")
        info = match.group("info").strip()
        tag, _, label = info.partition(" ")
        if lang != "json" and not (tag in TAGS and LANG_OF_TAG[tag] == lang):
            continue
        found.append(
            Example(
                page=page,
                line=text.count("\n", 0, match.start()) + 1,
                tag=tag if tag in TAGS else None,
                label=label.strip() if tag in TAGS else info,
                body=_dedent(match.group("body"), match.group("indent")),
            )
        )
    return found


def _looks_like_envelope(value: Any) -> bool:
    return isinstance(value, dict) and {"id", "type", "payload"} <= value.keys()


def check_example(example: Example, validator: MessageValidator) -> str | None:
    """Why this block is not what its tag says, or None when it is."""
    if example.tag is None:
        try:
            value = json.loads(example.body)
        except ValueError:
            return None
        if _looks_like_envelope(value):
            return f"{example.where}: an envelope in a plain json block; tag it `json rep`"
        return None
    if example.tag == "rep-sse":
        return _check_sse(example, validator)
    if example.tag == "rep-invalid":
        expected = example.label.split(" ")[0]
        if expected not in validator.catalog.error_codes:
            return f"{example.where}: rep-invalid needs an error code first, got {expected!r}"
        message, problem = decode_text_frame(example.body)
        if problem is None:
            problem = validator.check_client_message(message)
        if problem is None:
            return f"{example.where}: tagged rep-invalid but a server would accept it"
        if problem.code != expected:
            return f"{example.where}: refused with {problem.code}, the tag says {expected}"
        return None
    try:
        message = json.loads(example.body)
    except ValueError as exc:
        return f"{example.where}: not JSON: {exc}"
    return _check_message(example.where, message, validator)


def _check_message(where: str, message: Any, validator: MessageValidator) -> str | None:
    metadata = message.get("metadata") if isinstance(message, dict) else None
    source = metadata.get("source") if isinstance(metadata, dict) else None
    if source == "server":
        problem = validator.check_server_message(message)
    else:
        source = "client"
        problem = validator.check_client_message(message)
    if problem is not None:
        at = f" at {problem.pointer}" if problem.pointer else ""
        return f"{where}: invalid {source} message{at}: {problem.message}"
    return None


def _check_sse(example: Example, validator: MessageValidator) -> str | None:
    """Each event of the stream: ``connection`` first with a clientId, then envelopes."""
    events = [block for block in example.body.split("\n\n") if block.strip()]
    problems = []
    seen_connection = False
    for number, block in enumerate(events, 1):
        fields: dict[str, list[str]] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))
        where = f"{example.where} event {number}"
        if "data" not in fields:
            continue
        if len(fields["data"]) != 1:
            problems.append(f"{where}: an event carries exactly one data line")
            continue
        try:
            data = json.loads(fields["data"][0])
        except ValueError as exc:
            problems.append(f"{where}: data is not JSON: {exc}")
            continue
        if fields.get("event") == ["connection"]:
            seen_connection = True
            if not isinstance(data, dict) or "clientId" not in data:
                problems.append(f"{where}: the connection event carries the clientId")
            continue
        if not _looks_like_envelope(data) or data.get("type") not in fields.get("event", []):
            problems.append(f"{where}: event name and envelope type differ")
            continue
        if (problem := _check_message(where, data, validator)) is not None:
            problems.append(problem)
        elif (data.get("metadata") or {}).get("source") != "server":
            problems.append(f"{where}: an SSE event carries a server envelope")
    if not seen_connection and "retry:" in example.body:
        problems.append(f"{example.where}: a fresh stream starts with the connection event")
    return "; ".join(problems) or None


def check_examples(examples: Iterable[Example], validator: MessageValidator) -> list[str]:
    return [p for p in (check_example(e, validator) for e in examples) if p is not None]


def _title(tag: str, label: str, body: str) -> str:
    if tag == "rep-sse":
        return label or "server → client · text/event-stream"
    if tag == "rep-invalid":
        code, _, rest = label.partition(" ")
        lead = rest.strip() or ARROWS["client"]
        return f"{lead} · refused with {code}"
    try:
        message = json.loads(body)
        source = (message.get("metadata") or {}).get("source", "client")
        kind = message["type"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return label
    lead = label or ARROWS.get(source, source)
    return f"{lead} · {kind}"


def rewrite_fences(text: str) -> str:
    """Turn ``json rep`` info strings into plain ``json`` fences with a descriptive title."""

    def replace(match: re.Match[str]) -> str:
        tag, _, label = match.group("info").strip().partition(" ")
        if tag not in TAGS or LANG_OF_TAG[tag] != match.group("lang"):
            return match.group(0)
        body = _dedent(match.group("body"), match.group("indent"))
        title = _title(tag, label.strip(), body).replace('"', "'")
        indent, fence = match.group("indent"), match.group("fence")
        head = f'{indent}{fence} {match.group("lang")} title="{title}"\n'
        return head + match.group("body") + "\n" + indent + fence

    return FENCE.sub(replace, text)
