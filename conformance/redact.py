"""Keeping credentials out of everything a run leaves behind: reports, replays, messages.

Reports are CI artifacts and step summaries, so they must never carry a credential the
kit used: tokens it minted or crafted, tokens a target's ``tokens.command`` printed, the
JWT secret, cookie values and ``Authorization`` header values. Two mechanisms cover that:

* a process-wide registry of secrets, filled where they come into being
  (:func:`remember`, called by ``target`` and ``tokens``);
* patterns that recognise credentials by their shape wherever they came from: JWTs
  (compact JWS, also alg-none tokens with an empty signature), ``Bearer``/``Basic``
  values, ``token=`` parameters and cookies, ``"token": "..."`` keys, and ``Cookie:`` /
  ``Set-Cookie:`` header values.

:func:`redact` replaces both with a fixed mask that keeps at most the last four
characters (of a JWT: of its signature, never of its payload), so that an implementer can
still tell two tokens apart: ``[redacted JWT …x4Zk]``, ``[redacted JWT, unsigned]``,
``[redacted token …ab12]``, ``[redacted JWT secret]``. The mask has no ``<``, ``&`` or
quote, so it stays inert in HTML, Markdown, JSON and XML; redacting twice changes nothing.

The transcript calls :func:`redact` for every frame: text that mentions no credential
costs a few substring searches.
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "MIN_SECRET_LENGTH", "clear", "mask", "redact", "redact_data", "remember"]

#: Every mask starts with this; nothing that starts with it is masked again.
MASK = "[redacted"
#: Registered secrets shorter than this are ignored: they would mask ordinary words.
MIN_SECRET_LENGTH = 8
#: A mask keeps at most this many trailing characters, and only of values this long.
TAIL = 4
_TAIL_FROM = 16

_B64 = "[A-Za-z0-9_-]"
#: Compact JWS: base64url header (``{"`` encodes as ``eyJ``), payload, signature (empty
#: for alg none). A header and payload without the signature part count too: a clipped
#: rendering may have cut the rest.
_JWT = rf"eyJ{_B64}{{7,}}\.{_B64}+(?:\.{_B64}*)?"
JWT = re.compile(_JWT)
#: RFC 6750 ``b64token``: what may follow ``Bearer``.
_B64TOKEN = r"[A-Za-z0-9\-._~+/]+=*"
#: A parameter value: up to the next separator, quote or bracket (so masks stay masked).
_VALUE = r"[^\s&;,#\"'<>\[\]\\]+"

#: A ``Cookie``/``Set-Cookie`` value: ``name=value`` pairs and attributes, ``;``-separated.
_COOKIE_CHAR = r"[^\s;,\"']"
_COOKIE_NAME = r"[^\s;,\"'=]+"
_COOKIES = rf"{_COOKIE_NAME}={_COOKIE_CHAR}*(?:;[ \t]*{_COOKIE_NAME}(?:={_COOKIE_CHAR}*)?)*"

_PATTERN = re.compile(
    "|".join(
        [
            rf"(?P<jwt>{_JWT})",
            rf"(?P<scheme>\b(?:[Bb]earer|BEARER|Basic|BASIC)\s+)(?P<credential>{_B64TOKEN})",
            # Only the name's ``token`` suffix is matched (``access_token=`` too): a
            # leading ``[A-Za-z0-9_-]*`` would make long frames quadratic to search.
            rf"(?P<param>(?i:token)=[\"']?)(?P<param_value>{_VALUE})",
            rf"(?P<key>(?i:token)[\"']\s*:\s*[\"'])(?P<key_value>{_VALUE})",
            # Any other scheme in an Authorization header (``Token x``, ``Digest ...``).
            r"(?P<authz>(?i:authorization)[\"']?\s*[:=]\s*[\"']?(?>(?:[A-Za-z][\w-]*\s+)?))"
            r"(?P<authz_value>(?!\[redacted)[^\s\"',;]{4,})",
            rf"(?P<header>\b(?i:set-cookie|cookie)[\"']?\s*[:,]\s*[\"']?)(?P<cookies>{_COOKIES})",
        ]
    )
)
#: Cheap pre-test: text containing none of these (lower-cased) needs no pattern search.
_HINTS = ("eyj", "bearer", "basic", "token", "cookie", "authorization")
_COOKIE_PAIR = re.compile(rf"({_COOKIE_NAME})=({_COOKIE_CHAR}*)")
#: ``Set-Cookie`` attributes, whose values are not credentials.
_COOKIE_ATTRIBUTES = frozenset(
    {"path", "domain", "expires", "max-age", "samesite", "secure", "httponly", "partitioned"}
)
#: What precedes the value of an Authorization header, in a header dump or a repr.
_AUTHORIZATION = re.compile(r"(?i:authorization)[\"']?\s*[:=,]\s*[\"']?\Z")
#: Cookie names that say their value is a credential, however short.
_CREDENTIAL_NAME = re.compile(r"(?i)token|sess|sid|auth|jwt|key|secret|csrf|xsrf")
#: Values after ``token=`` that are plainly not credentials (Python/JSON renderings).
_NOT_CREDENTIALS = frozenset({"None", "null", "undefined", "true", "false"})

_lock = threading.Lock()
_secrets: dict[str, str] = {}
#: (secret, mask) pairs, longest secret first; replaced whole, never mutated.
_snapshot: tuple[tuple[str, str], ...] = ()


def mask(value: str, label: str | None = None) -> str:
    """The mask for one credential. With ``label`` (e.g. ``JWT secret``) nothing of the
    value is kept; a token keeps its last four characters (a JWT: of the signature)."""
    if label is not None:
        return f"{MASK} {label}]"
    if JWT.fullmatch(value):
        parts = value.split(".")
        signature = parts[2] if len(parts) == 3 else ""
        if not signature:
            return f"{MASK} JWT, unsigned]"
        if len(signature) >= 2 * TAIL:
            return f"{MASK} JWT …{signature[-TAIL:]}]"
        return f"{MASK} JWT]"
    if len(value) >= _TAIL_FROM:
        return f"{MASK} token …{value[-TAIL:]}]"
    return f"{MASK} token]"


def _renderings(secret: str) -> set[str]:
    """The secret as it appears in JSON, HTML and URLs, where it is escaped or quoted."""
    return {
        secret,
        json.dumps(secret)[1:-1],
        html.escape(secret, quote=True),
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
    }


def remember(secret: str, label: str | None = None) -> None:
    """Register a credential so that :func:`redact` masks it wherever it appears.

    ``label`` names it in the mask and hides it completely (use it for keys such as the
    JWT secret); without one it is masked like a token. Secrets shorter than
    :data:`MIN_SECRET_LENGTH` are ignored. JWT-shaped secrets are recognised by their
    shape anyway and are not stored, so the registry stays small however many tokens a
    run mints.
    """
    global _snapshot
    secret = secret.strip()
    if len(secret) < MIN_SECRET_LENGTH or secret.startswith(MASK):
        return
    if label is None and JWT.fullmatch(secret):
        return
    shown = mask(secret, label)
    with _lock:
        added = False
        for rendering in _renderings(secret):
            if len(rendering) >= MIN_SECRET_LENGTH and _secrets.get(rendering) != shown:
                _secrets[rendering] = shown
                added = True
        if added:
            _snapshot = tuple(sorted(_secrets.items(), key=lambda item: -len(item[0])))


def clear() -> None:
    """Forget every registered secret (for tests)."""
    global _snapshot
    with _lock:
        _secrets.clear()
        _snapshot = ()


def _cookies(found: re.Match[str]) -> str:
    """One ``name=value`` of a cookie header: masked when it looks like a credential (a
    credential's name, or a value too long to be a preference such as ``theme=dark``)."""
    name, value = found.group(1), found.group(2)
    if not value or value.startswith(MASK) or name.lower() in _COOKIE_ATTRIBUTES:
        return found.group(0)
    if len(value) < MIN_SECRET_LENGTH and not _CREDENTIAL_NAME.search(name):
        return found.group(0)
    return f"{name}={mask(value)}"


def _looks_like_a_credential(value: str, before: str) -> bool:
    """After ``Bearer``/``Basic``: always in an Authorization header; elsewhere ("the
    Bearer scheme" is prose) only what does not read like a word."""
    if _AUTHORIZATION.search(before):
        return True
    return len(value) >= _TAIL_FROM or (len(value) >= MIN_SECRET_LENGTH and not value.isalpha())


def _masked(value: str) -> str:
    """The mask of a value found in text, and the punctuation that ended the sentence
    (``...?token=X: refused``), which is not part of it."""
    core = value.rstrip(".:!?)")
    if not core:
        return mask(value)
    return mask(core) + value[len(core) :]


def _replace(found: re.Match[str]) -> str:
    value = found.group("jwt")
    if value is not None:
        return mask(value)
    value = found.group("credential")
    if value is not None:
        before = found.string[max(0, found.start() - 32) : found.start()]
        if _looks_like_a_credential(value, before):
            return found.group("scheme") + _masked(value)
        return found.group(0)
    value = found.group("param_value")
    if value is not None:
        if value in _NOT_CREDENTIALS or value.startswith(MASK):
            return found.group(0)
        return found.group("param") + _masked(value)
    value = found.group("key_value")
    if value is not None:
        return found.group("key") + _masked(value)
    value = found.group("authz_value")
    if value is not None:
        return found.group("authz") + _masked(value)
    return found.group("header") + _COOKIE_PAIR.sub(_cookies, found.group("cookies"))


def redact(text: str) -> str:
    """``text`` with every credential masked; the same object when there is none."""
    if not text:
        return text
    for secret, shown in _snapshot:
        if secret in text:
            text = text.replace(secret, shown)
    lowered = text.lower()
    if not any(hint in lowered for hint in _HINTS):
        return text
    replaced, count = _PATTERN.subn(_replace, text)
    return replaced if count and replaced != text else text


T = TypeVar("T")


def redact_data(data: T) -> T:
    """A copy of a JSON-like structure (dicts, lists, tuples, strings) with every string,
    keys included, redacted; unchanged parts (and ``data`` itself, when nothing needed
    masking) are the same objects."""
    return _walk(data, redact)  # type: ignore[no-any-return]


def _walk(data: Any, scrub: Callable[[str], str]) -> Any:
    if isinstance(data, str):
        return scrub(data)
    if isinstance(data, dict):
        items = [(_walk(k, scrub), _walk(v, scrub)) for k, v in data.items()]
        changed = any(
            nk is not k or nv is not v for (nk, nv), (k, v) in zip(items, data.items(), strict=True)
        )
        return dict(items) if changed else data
    if isinstance(data, list | tuple):
        walked = [_walk(item, scrub) for item in data]
        if all(new is old for new, old in zip(walked, data, strict=True)):
            return data
        if isinstance(data, list):
            return walked
        return type(data)(*walked) if hasattr(data, "_fields") else tuple(walked)
    return data
