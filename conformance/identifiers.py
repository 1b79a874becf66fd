"""Identifiers that use the whole slug pattern of the schemas.

Room, collection and record ids like ``room-<run>-<n>`` exercise only letters, digits and
``-``; a server that splits ids at ``:``, escapes ``.`` or cuts them at 64 characters
would pass every check. :func:`slug` builds unique ids from the pattern the schemas give
(read, never copied): a digit first, every punctuation character the pattern admits, and
the longest length it admits.
"""

from __future__ import annotations

import itertools
import re
import string
from dataclasses import dataclass
from functools import cache

from conformance import spec

#: Characters tried against the pattern; the pattern decides which of them are allowed.
_CANDIDATES = string.ascii_letters + string.digits + string.punctuation + " "
#: How far the longest admitted length is searched.
_LENGTH_LIMIT = 1024


@dataclass(frozen=True)
class SlugRule:
    """What a slug pattern admits: first characters, later characters, longest length."""

    pattern: str
    first: str
    rest: str
    longest: int

    @property
    def punctuation(self) -> str:
        return "".join(c for c in self.rest if not c.isalnum())


def _matches(pattern: str, text: str) -> bool:
    return re.search(pattern, text) is not None and not text.endswith("\n")


@cache
def slug_rule(pointer: str = "defs.schema.json#/$defs/roomId") -> SlugRule:
    """The rule of one slug definition of the schemas (rooms, streams, collections)."""
    pattern = spec.schema_at(pointer)["pattern"]
    first = "".join(c for c in _CANDIDATES if _matches(pattern, c))
    if not first:
        raise spec.SpecDrift(f"{pointer}: the pattern admits no one-character id")
    lead = next(c for c in first if c.isdigit()) if any(c.isdigit() for c in first) else first[0]
    rest = "".join(c for c in _CANDIDATES if _matches(pattern, lead + c))
    longest = 1
    while longest < _LENGTH_LIMIT and _matches(pattern, lead * (longest + 1)):
        longest += 1
    return SlugRule(pattern, first, rest, longest)


def slug(
    unique: str, pointer: str = "defs.schema.json#/$defs/roomId", *, length_slack: int = 0
) -> str:
    """A unique id that starts with a digit, carries every punctuation character the
    pattern admits, and has the longest admitted length. ``unique`` (a run-unique name)
    is kept, with characters the pattern refuses replaced by its first punctuation;
    ``length_slack`` shortens the id by that many characters."""
    rule = slug_rule(pointer)
    length = max(len(unique) + 12, rule.longest - length_slack)
    marks = rule.punctuation or rule.rest[:1]
    digit = next((c for c in rule.first if c.isdigit()), rule.first[0])
    core = "".join(c if c in rule.rest else marks[0] for c in unique)
    text = digit + "".join(itertools.chain.from_iterable(zip(marks, "0aZ9", strict=False)))
    text += core
    filler = itertools.cycle(marks + "x7")
    while len(text) < length:
        text += next(filler)
    text = text[:length]
    if not _matches(rule.pattern, text) or core not in text:
        raise spec.SpecDrift(f"cannot build an id of {rule.pattern} around {unique!r}")
    return text
