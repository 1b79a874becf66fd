"""Which requirements a message type's reference page lists, and the rule in words.

The rule uses only the registries (``messages.json``, ``requirements.yaml``) and the
payload schemas, never a hand-kept list. A requirement is listed on the page of a type
when at least one of these holds:

- **name**: its text names the type (``room_join``, not ``room_join_response``);
- **schema**: one of the type's payload schemas cites it with ``x-requirement``;
- **action**: a client sends the type, the type's name ends in an action word
  (``room_join``: *join*), the requirement belongs to the type's feature, and its text
  uses that word in a regular form (join, joins, joined, joining). This is how the
  specification words the permission, password and invitation rules of a request
  ("Joining a password-protected room ...").

Rules that apply to every message (the envelope, errors, authorization in general) name
no type and stay in the requirement index.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from rep_spec import MessageType, Requirement


def names_type(text: str, name: str) -> bool:
    """The text names the type itself: ``room_join`` but not ``room_join_response``."""
    return re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", text) is not None


def action_forms(entry: MessageType) -> tuple[str, ...]:
    """The forms of the type's action word, or () when the rule does not apply to it.

    The rule applies to types a client sends whose name has at least two words: the last
    is the action (``stream_subscribe``: subscribe, subscribes, subscribed, subscribing).
    """
    if entry.direction == "server_to_client" or "_" not in entry.name:
        return ()
    word = entry.name.rsplit("_", 1)[1]
    stem = word[:-1] if word.endswith("e") else word
    return tuple(dict.fromkeys((word, f"{word}s", f"{stem}ed", f"{stem}ing")))


def uses_action(text: str, forms: Sequence[str]) -> bool:
    if not forms:
        return False
    words = "|".join(re.escape(form) for form in forms)
    return re.search(rf"(?<![\w])(?:{words})(?![\w])", text, re.IGNORECASE) is not None


def related_requirements(
    entry: MessageType, requirements: Iterable[Requirement], cited: Iterable[str]
) -> list[Requirement]:
    """The requirements the type's page lists, in registry order (see the module's rule)."""
    cited_ids = set(cited)
    forms = action_forms(entry)
    return [
        r
        for r in requirements
        if names_type(r.text, entry.name)
        or r.id in cited_ids
        or (r.feature == entry.feature and uses_action(r.text, forms))
    ]


def rule_text(entry: MessageType, index_link: str) -> str:
    """The rule as the page states it, for this type, as Markdown."""
    clauses = [
        f"its text names `{entry.name}`",
        "a payload schema of the type cites it (`x-requirement`, as in the member tables)",
    ]
    forms = action_forms(entry)
    if forms:
        clauses.append(
            f"it belongs to the `{entry.feature}` feature and its text uses the type's action,"
            f" *{forms[0]}* ({', '.join(forms)}), as a request's permission, password,"
            " invitation and error rules do"
        )
    joined = ", when ".join(clauses[:-1]) + ", or when " + clauses[-1]
    return (
        f"A requirement is listed here when {joined}. Rules for every message (the envelope,"
        f" errors and authorization in general) are in the [requirement index]({index_link})."
    )
