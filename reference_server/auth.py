"""Handshake authentication: find the token, verify it, and compute effective permissions.

Kept free of any web framework so the same checks serve WebSocket, SSE and HTTP publish.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import jwt

from rep_spec import catalog

TokenSource = Literal["header", "query", "cookie"]
CONNECT_PERMISSION = "websocket:connect"
#: RFC 7518 section 3.2: an HMAC key at least as long as the hash output.
HMAC_MIN_SECRET_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
#: RFC 7519 section 2: these claims are NumericDates, JSON numbers. PyJWT converts a numeric
#: string with int(), so a string exp would pass it and never expire the connection.
NUMERIC_DATE_CLAIMS = ("exp", "nbf", "iat")


@dataclass(frozen=True)
class Principal:
    """Who is on the other end, as the verified token says."""

    user_id: str
    roles: tuple[str, ...]
    permissions: frozenset[str]
    expires_at: float | None
    token_source: TokenSource

    def can(self, permission: str) -> bool:
        return permission in self.permissions


class AuthRejected(Exception):
    """The handshake must be refused with ``status`` (401 or 403) before any upgrade."""

    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason


def extract_token(
    headers: Mapping[str, str], query: Mapping[str, str], cookies: Mapping[str, str]
) -> tuple[str, TokenSource] | None:
    """Authorization: Bearer first, then ?token=, then the token cookie (AUTH-002)."""
    authorization = headers.get("Authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip(), "header"
    if query.get("token"):
        return query["token"], "query"
    if cookies.get("token"):
        return cookies["token"], "cookie"
    return None


def _string_list(claims: Mapping[str, object], name: str) -> tuple[str, ...]:
    value = claims.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise AuthRejected(401, "unauthorized", f"claim {name!r} must be a list of strings")
    return tuple(value)


class WeakSecret(ValueError):
    """The shared secret is shorter than RFC 7518 section 3.2 allows for an algorithm."""


def check_secret_length(secret: str, algorithms: Iterable[str]) -> None:
    """Raise :class:`WeakSecret` unless ``secret`` is long enough for every HMAC algorithm.

    Length counts UTF-8 bytes, as the key is used; non-HMAC algorithms set no minimum.
    """
    needed, algorithm = max(
        ((HMAC_MIN_SECRET_BYTES.get(a.upper(), 0), a) for a in algorithms), default=(0, "")
    )
    length = len(secret.encode("utf-8"))
    if length < needed:
        raise WeakSecret(
            f"the secret is {length} bytes; {algorithm} needs at least {needed} "
            "(RFC 7518 section 3.2)"
        )


class TokenVerifier:
    def __init__(self, secret: str, algorithms: Iterable[str]) -> None:
        self._secret = secret
        self._algorithms = [a for a in algorithms if a.lower() != "none"]

    def verify(self, token: str, source: TokenSource) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise AuthRejected(401, "unauthorized", f"malformed token: {exc}") from exc
        if header.get("alg") not in self._algorithms:
            raise AuthRejected(
                401, "unauthorized", f"token algorithm {header.get('alg')!r} is not accepted"
            )
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=self._algorithms, options={"require": ["sub"]}
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthRejected(401, "unauthorized", "token expired") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthRejected(401, "unauthorized", f"invalid token: {exc}") from exc
        for name in NUMERIC_DATE_CLAIMS:
            value = claims.get(name)
            if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise AuthRejected(
                    401, "unauthorized", f"claim {name!r} must be a NumericDate (a JSON number)"
                )
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 128:
            raise AuthRejected(401, "unauthorized", "sub must be a non-empty string")
        roles = _string_list(claims, "roles")
        permissions = catalog().permissions_of(roles) | frozenset(
            _string_list(claims, "permissions")
        )
        expires = claims.get("exp")
        return Principal(
            user_id=subject,
            roles=roles,
            permissions=permissions,
            expires_at=float(expires) if isinstance(expires, int | float) else None,
            token_source=source,
        )


def authenticate(
    verifier: TokenVerifier,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    cookies: Mapping[str, str],
    allowed_origins: frozenset[str],
    required_permission: str = CONNECT_PERMISSION,
) -> Principal:
    """The whole handshake decision: 401 without a good token, 403 without the permission."""
    found = extract_token(headers, query, cookies)
    if found is None:
        raise AuthRejected(401, "unauthorized", "no token: send Authorization: Bearer <jwt>")
    principal = verifier.verify(*found)
    if principal.token_source == "cookie" and headers.get("Origin") not in allowed_origins:
        raise AuthRejected(403, "forbidden", "cookie token from an origin not in the allow-list")
    if not principal.can(required_permission):
        raise AuthRejected(403, "forbidden", f"token lacks the permission {required_permission}")
    return principal


def mint_token(
    secret: str,
    user: str,
    roles: Iterable[str] = ("user",),
    permissions: Iterable[str] = (),
    ttl_seconds: int = 3600,
    algorithm: str = "HS256",
) -> str:
    """A development token, as ``rep-server token`` prints it."""
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": user,
        "roles": list(roles),
        "iat": now,
        "exp": now + ttl_seconds,
    }
    extra = list(permissions)
    if extra:
        claims["permissions"] = extra
    return jwt.encode(claims, secret, algorithm=algorithm)
