"""Tokens for test users: minted with the server's secret, or printed by a command.

Checks ask for a user with roles and permissions; some also need a token with a chosen
lifetime or hand-crafted claims (no ``sub``, another algorithm). A source that cannot
produce what a check needs raises :class:`TokenUnavailable`, and the check is skipped
with that reason rather than guessed.

Tokens that need no secret (``alg: none``, malformed, tampered signature) are built here
for every source, because refusing them is what the server is checked for.

Every token made or received here, and every secret signed with, is registered with
:mod:`conformance.redact` so that no report or replay file carries it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from conformance.redact import redact, remember
from conformance.target import CommandTokens, JwtTokens

DEFAULT_TTL = 3600
#: The HMAC algorithms (RFC 7518) the kit signs with, including to probe an allow-list.
HMAC_DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
HMAC_ALGORITHMS = tuple(HMAC_DIGESTS)


class TokenUnavailable(Exception):
    """The target's token source cannot produce the token a check needs."""


class TokenSource(Protocol):
    def mint(
        self,
        user: str,
        roles: Sequence[str],
        permissions: Sequence[str] = (),
        ttl: int = DEFAULT_TTL,
    ) -> str:
        """A valid token for ``user``; ``ttl`` may be negative (already expired)."""
        ...

    def sign(
        self, claims: Mapping[str, Any], *, algorithm: str | None = None, secret: str | None = None
    ) -> str:
        """Sign arbitrary claims; raises :class:`TokenUnavailable` without the secret."""
        ...

    def refused_algorithms(self) -> list[str]:
        """Algorithms the kit can sign with that the server's allow-list excludes."""
        ...


def standard_claims(
    user: str, roles: Sequence[str], permissions: Sequence[str], ttl: int
) -> dict[str, Any]:
    now = int(time.time())
    return {
        "sub": user,
        "roles": list(roles),
        "permissions": list(permissions),
        "iat": now,
        "exp": now + ttl,
    }


class JwtTokenSource:
    """Signs tokens with the secret from the target file, like the server's issuer would."""

    def __init__(self, config: JwtTokens) -> None:
        self.config = config
        remember(config.secret, "JWT secret")

    def mint(
        self,
        user: str,
        roles: Sequence[str],
        permissions: Sequence[str] = (),
        ttl: int = DEFAULT_TTL,
    ) -> str:
        return self.sign(standard_claims(user, roles, permissions, ttl))

    def sign(
        self, claims: Mapping[str, Any], *, algorithm: str | None = None, secret: str | None = None
    ) -> str:
        return hmac_token(
            claims,
            secret if secret is not None else self.config.secret,
            algorithm or self.config.algorithm,
        )

    def refused_algorithms(self) -> list[str]:
        return [a for a in HMAC_ALGORITHMS if a not in self.config.accepted_algorithms]


class CommandTokenSource:
    """Runs the target's token command, filling in the placeholders it names."""

    def __init__(self, config: CommandTokens, timeout: float = 30.0) -> None:
        self.template = config.command
        self.timeout = timeout

    def mint(
        self,
        user: str,
        roles: Sequence[str],
        permissions: Sequence[str] = (),
        ttl: int = DEFAULT_TTL,
    ) -> str:
        if permissions and "{permissions}" not in self.template:
            raise TokenUnavailable("the token command has no {permissions} placeholder")
        if ttl != DEFAULT_TTL and "{ttl}" not in self.template:
            raise TokenUnavailable("the token command has no {ttl} placeholder")
        if len(roles) > 1 and "{roles}" not in self.template:
            raise TokenUnavailable("the token command takes one {role}, not a list of {roles}")
        values = {
            "user": user,
            "roles": ",".join(roles),
            "role": roles[0] if roles else "",
            "permissions": ",".join(permissions),
            "ttl": str(ttl),
        }
        argv = [part.format(**values) for part in shlex.split(self.template)]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=self.timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TokenUnavailable(f"token command failed: {exc}") from exc
        if done.returncode != 0 or not done.stdout.strip():
            raise TokenUnavailable(
                f"token command exited {done.returncode}: {redact(done.stderr.strip())[:300]}"
            )
        token = done.stdout.strip().splitlines()[-1].strip()
        remember(token)
        return token

    def sign(
        self, claims: Mapping[str, Any], *, algorithm: str | None = None, secret: str | None = None
    ) -> str:
        if secret is not None:
            return hmac_token(claims, secret, algorithm or HMAC_ALGORITHMS[0])
        raise TokenUnavailable("a token command cannot sign arbitrary claims (needs tokens.jwt)")

    def refused_algorithms(self) -> list[str]:
        raise TokenUnavailable("probing the algorithm allow-list needs tokens.jwt")


def token_source(config: JwtTokens | CommandTokens) -> TokenSource:
    if isinstance(config, JwtTokens):
        return JwtTokenSource(config)
    return CommandTokenSource(config)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hmac_token(claims: Mapping[str, Any], secret: str, algorithm: str) -> str:
    """A JWS compact token signed with HMAC (RFC 7515/7518), built here so that the kit
    can sign with any secret the target uses, however short, without library warnings."""
    if algorithm not in HMAC_DIGESTS:
        raise TokenUnavailable(f"the kit signs only with {', '.join(HMAC_ALGORITHMS)}")
    remember(secret, "JWT secret")
    header = _b64(json.dumps({"alg": algorithm, "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(dict(claims), separators=(",", ":")).encode())
    signing_input = f"{header}.{body}".encode("ascii")
    digest = hmac.new(secret.encode(), signing_input, HMAC_DIGESTS[algorithm]).digest()
    token = f"{header}.{body}.{_b64(digest)}"
    remember(token)
    return token


def unsigned_token(claims: Mapping[str, Any], alg: str = "none", signature: str = "") -> str:
    """A JWT whose header names ``alg`` (e.g. ``none``) with the given signature part."""
    header = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = _b64(json.dumps(dict(claims)).encode())
    token = f"{header}.{body}.{signature}"
    remember(token)
    return token


def tampered(token: str) -> str:
    """The same token with its signature changed, so verification must fail."""
    header, body, signature = token.split(".")
    flipped = "A" if not signature or signature[0] != "A" else "B"
    token = f"{header}.{body}.{flipped}{signature[1:]}"
    remember(token)
    return token
