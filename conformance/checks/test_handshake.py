"""Authentication: which handshakes are refused with which status, and the welcome."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from conformance import spec
from conformance.client import json_text
from conformance.harness import Attempt, Harness
from conformance.tokens import DEFAULT_TTL, standard_claims, tampered, unsigned_token
from rep_spec import catalog

UNAUTHORIZED = catalog().error_code(spec.error_code("unauthorized")).http_status
FORBIDDEN = catalog().error_code(spec.error_code("forbidden")).http_status
CONNECT = spec.permission("websocket:connect")
TOKEN_EXPIRED = spec.close_code("token_expired")
DISALLOWED_ORIGIN = "https://attacker.example.invalid"


def token_expiry(token: str) -> float | None:
    """The exp claim of a JWT (read, not verified), or None when it has none."""
    try:
        body = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (IndexError, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) else None


def refused(rep: Harness, attempt: Attempt, status: int, requirement: str, sent: str) -> None:
    """The handshake must have been refused with ``status`` and not upgraded."""
    if attempt.status != status:
        upgraded = " (the connection was upgraded)" if attempt.client is not None else ""
        raise rep.fail(
            requirement,
            sent=sent,
            expected=f"HTTP {status} without upgrading",
            received=f"HTTP {attempt.status}{upgraded}",
        )


def accepted_as(rep: Harness, attempt: Attempt, user: str, requirement: str, sent: str) -> None:
    if attempt.client is None:
        raise rep.fail(
            requirement,
            sent=sent,
            expected="HTTP 101 and a welcome",
            received=f"HTTP {attempt.status}",
        )
    payload = attempt.client.welcome.get("payload")
    if not isinstance(payload, dict) or "userId" not in payload:
        raise rep.fail(
            "AUTH-010",
            sent=sent,
            expected="a welcome with userId, which tells whose token the server used",
            received="a welcome without userId",
        )
    got = payload.get("userId")
    if got != user:
        raise rep.fail(
            requirement,
            sent=sent,
            expected=f"the welcome's userId to be {json_text(user)}",
            received=f"userId {json_text(got)}",
        )


@pytest.mark.requirements("AUTH-001")
def test_a_handshake_without_a_token_is_refused_with_401(rep: Harness) -> None:
    """No Authorization header, no token parameter, no cookie: 401, no upgrade."""
    refused(rep, rep.attempt(None), UNAUTHORIZED, "AUTH-001", "a handshake without a token")


@pytest.mark.requirements("AUTH-002")
@pytest.mark.parametrize(
    ("placed", "winner"),
    [
        (("header", "query"), "header"),
        (("header", "cookie"), "header"),
        (("query", "cookie"), "query"),
        (("cookie",), "cookie"),
    ],
    ids=["header-over-query", "header-over-cookie", "query-over-cookie", "cookie-alone"],
)
def test_the_first_token_present_is_used(
    rep: Harness, placed: tuple[str, ...], winner: str
) -> None:
    """With valid tokens for different users in several places, the first place wins."""
    users = {where: rep.user(where) for where in placed}
    placements = [(where, rep.token(users[where])) for where in placed]
    origin = rep.target.fixtures.allowed_origin
    if "cookie" in placed and origin is None and winner == "cookie":
        pytest.skip("a cookie token needs fixtures.allowed_origin (AUTH-009)")
    attempt = rep.attempt(None, placements=placements, origin=origin)
    sent = f"valid tokens for different users in {' and '.join(placed)}"
    accepted_as(rep, attempt, users[winner], "AUTH-002", sent)


@pytest.mark.requirements("AUTH-002")
@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Token abc"])
def test_an_authorization_header_of_another_scheme_counts_as_absent(
    rep: Harness, header: str
) -> None:
    """Authorization with another scheme (or Bearer without credentials) and a valid token
    in the query: the query token is used."""
    user = rep.user("query")
    attempt = rep.attempt(
        None, placements=[("query", rep.token(user))], headers=[("Authorization", header)]
    )
    scheme = header.split()[0]
    sent = f"Authorization: {scheme} ... and a valid token in the query parameter"
    accepted_as(rep, attempt, user, "AUTH-002", sent)


@pytest.mark.requirements("AUTH-002", "AUTH-003")
@pytest.mark.parametrize(
    ("first", "second"), [("header", "query"), ("query", "cookie")], ids=lambda v: v
)
def test_only_the_first_token_counts_even_when_it_is_invalid(
    rep: Harness, first: str, second: str
) -> None:
    """A bad token in the first place is not rescued by a good one in the next: 401."""
    good = rep.token(rep.user())
    attempt = rep.attempt(
        None,
        placements=[(first, tampered(good)), (second, good)],
        origin=rep.target.fixtures.allowed_origin,
    )
    refused(
        rep,
        attempt,
        UNAUTHORIZED,
        "AUTH-002",
        f"a tampered token in {first}, a valid one in {second}",
    )


@pytest.mark.requirements("AUTH-003")
@pytest.mark.parametrize("kind", ["garbage", "two-parts", "tampered-signature", "empty"])
def test_malformed_or_badly_signed_tokens_are_refused_with_401(rep: Harness, kind: str) -> None:
    """Tokens that are not JWTs, or whose signature does not verify: 401."""
    good = rep.token(rep.user())
    token = {
        "garbage": "not-a-token",
        "two-parts": ".".join(good.split(".")[:2]),
        "tampered-signature": tampered(good),
        "empty": "",
    }[kind]
    refused(rep, rep.attempt(token), UNAUTHORIZED, "AUTH-003", f"a {kind} token")


@pytest.mark.requirements("AUTH-003")
@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_time_claims_that_are_not_numbers_are_refused_with_401(rep: Harness, claim: str) -> None:
    """A time claim written as a numeric string is not a NumericDate: 401.

    A server that converts it (as some JWT libraries do) would accept a token whose expiry
    it then never enforces (AUTH-012).
    """
    claims = standard_claims(rep.user(), ["user"], [], DEFAULT_TTL)
    claims[claim] = str(claims.get(claim, int(time.time())))
    token = rep.sign(claims)
    refused(
        rep,
        rep.attempt(token),
        UNAUTHORIZED,
        "AUTH-003",
        f"a correctly signed token whose {claim} claim is the string {json_text(claims[claim])}",
    )


@pytest.mark.requirements("AUTH-004")
def test_an_expired_token_is_refused_with_401(rep: Harness) -> None:
    """A correctly signed token whose exp passed a minute ago: 401."""
    token = rep.token(rep.user(), ttl=-60)
    refused(rep, rep.attempt(token), UNAUTHORIZED, "AUTH-004", "a token that expired 60 s ago")


@pytest.mark.requirements("AUTH-005")
@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["", "c2lnbmF0dXJl"], ids=["unsigned", "bogus-signature"])
def test_tokens_with_algorithm_none_are_refused_with_401(
    rep: Harness, alg: str, signature: str
) -> None:
    """alg none, in any spelling, with or without a signature part: 401."""
    claims = standard_claims(rep.user(), ["user"], [], DEFAULT_TTL)
    token = unsigned_token(claims, alg=alg, signature=signature)
    refused(rep, rep.attempt(token), UNAUTHORIZED, "AUTH-005", f"a token with alg {json_text(alg)}")


@pytest.mark.requirements("AUTH-006")
def test_tokens_signed_with_an_algorithm_off_the_allow_list_are_refused(rep: Harness) -> None:
    """Signed with the right secret but another HMAC algorithm: 401."""
    try:
        algorithms = rep.run.tokens.refused_algorithms()
    except Exception as exc:
        pytest.skip(str(exc))
    if not algorithms:
        pytest.skip("the server accepts every HMAC algorithm the kit can sign with")
    for algorithm in algorithms:
        token = rep.sign(standard_claims(rep.user(), ["user"], [], DEFAULT_TTL), algorithm)
        refused(
            rep, rep.attempt(token), UNAUTHORIZED, "AUTH-006", f"a token signed with {algorithm}"
        )


@pytest.mark.requirements("AUTH-007")
def test_a_token_without_websocket_connect_is_refused_with_403(rep: Harness) -> None:
    """Valid, but neither its roles nor its permissions grant websocket:connect: 403."""
    token = rep.token(rep.user(), roles=(), permissions=(spec.permission("room:join"),))
    refused(
        rep, rep.attempt(token), FORBIDDEN, "AUTH-007", "a valid token without websocket:connect"
    )


@pytest.mark.requirements("AUTH-008")
@pytest.mark.parametrize("sub", ["missing", "", 42], ids=["missing", "empty", "number"])
def test_a_token_without_a_string_subject_is_refused_with_401(rep: Harness, sub: Any) -> None:
    """sub absent, empty or not a string: 401."""
    claims: dict[str, Any] = standard_claims("placeholder", ["user"], [], DEFAULT_TTL)
    if sub == "missing":
        del claims["sub"]
    else:
        claims["sub"] = sub
    refused(
        rep,
        rep.attempt(rep.sign(claims)),
        UNAUTHORIZED,
        "AUTH-008",
        f"a token with sub {json_text(sub)}",
    )


@pytest.mark.requirements("AUTH-009")
@pytest.mark.parametrize("origin", [None, DISALLOWED_ORIGIN], ids=["no-origin", "foreign-origin"])
def test_cookie_tokens_from_unlisted_origins_are_refused_with_403(
    rep: Harness, origin: str | None
) -> None:
    """A cookie token with no Origin, or an Origin off the allow-list: 403."""
    token = rep.token(rep.user())
    attempt = rep.attempt(token, via="cookie", origin=origin)
    shown = f"Origin {json_text(origin)}" if origin is not None else "no Origin"
    refused(rep, attempt, FORBIDDEN, "AUTH-009", f"a cookie token with {shown}")


@pytest.mark.requirements("AUTH-009")
def test_cookie_tokens_from_an_allowed_origin_are_accepted(rep: Harness) -> None:
    """The same cookie token from an allowed Origin connects."""
    origin = rep.target.fixtures.allowed_origin
    if origin is None:
        pytest.skip("the target file names no fixtures.allowed_origin")
    user = rep.user()
    attempt = rep.attempt(rep.token(user), via="cookie", origin=origin)
    accepted_as(rep, attempt, user, "AUTH-009", f"a cookie token with Origin {json_text(origin)}")


@pytest.mark.requirements("AUTH-010")
def test_the_welcome_describes_the_connection_and_the_server(rep: Harness) -> None:
    """First message: auth, connected, this clientId, the token's user, version, limits."""
    user = rep.user()
    client = rep.connect(user)
    payload = client.welcome.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    checks = {
        "status": (payload.get("status"), "connected"),
        "userId": (payload.get("userId"), user),
        "protocolVersion major": (
            str(payload.get("protocolVersion", "")).split(".")[0],
            str(catalog().major_version),
        ),
    }
    wrong = [
        f"{name} = {json_text(got)} (expected {json_text(want)})"
        for name, (got, want) in checks.items()
        if got != want
    ]
    if not isinstance(payload.get("clientId"), str) or not payload.get("clientId"):
        wrong.append(f"clientId = {json_text(payload.get('clientId'))} (expected a clientId)")
    if wrong:
        raise rep.fail(
            "AUTH-010",
            expected="a welcome with status connected, the token's userId, a clientId and "
            "the protocol's major version",
            received="; ".join(wrong),
        )


@pytest.mark.requirements("AUTH-010")
def test_the_features_the_target_claims_are_advertised(rep: Harness) -> None:
    """The welcome lists its features, and every feature the target file claims is there."""
    claimed = rep.target.claimed_features
    listed = rep.profile.advertised
    if listed is None:
        raise rep.fail(
            "AUTH-010",
            expected="the welcome to list the features the server implements "
            "(payload.features, an array of feature names)",
            received=f"features = {json_text(rep.profile.payload.get('features'))}; the kit "
            + ("checks the claimed features" if claimed is not None else "checks every feature"),
        )
    if claimed is None:
        pytest.skip("the target file claims no features; the welcome's list is taken as is")
    missing = sorted(f for f in claimed if not rep.profile.advertises(f))
    rep.record("features advertised but not claimed", sorted(rep.profile.features - claimed))
    if missing:
        raise rep.fail(
            "AUTH-010",
            expected=f"the welcome to list the claimed features {json_text(sorted(claimed))}",
            received=f"it lists {json_text(sorted(listed))}; missing {json_text(missing)} "
            "(checked anyway, as claimed)",
        )


@pytest.mark.requirements("AUTH-011")
def test_client_ids_are_unique_among_open_connections(rep: Harness) -> None:
    """Six connections, two of them for the same user: six different clientIds."""
    shared = rep.user("shared")
    clients = [rep.connect(shared), rep.connect(shared)] + [rep.connect() for _ in range(4)]
    ids = [c.client_id for c in clients]
    if len(set(ids)) != len(ids):
        raise rep.fail(
            "AUTH-011", expected="a different clientId per open connection", received=f"{ids}"
        )


@pytest.mark.requirements("AUTH-013")
def test_the_welcome_lists_the_effective_permissions(rep: Harness) -> None:
    """roles [user] plus a permissions claim: the welcome lists every permission of the
    role table's user role and the claimed one, and the roles claim as given."""
    extra = spec.permission("room:join_private")
    roles = ("user",)
    client = rep.connect(roles=roles, permissions=(extra,))
    payload = client.welcome.get("payload", {})
    want = sorted(catalog().permissions_of(roles) | {extra})
    got = payload.get("permissions")
    if (
        not isinstance(got, list)
        or sorted(map(str, got)) != want
        or payload.get("roles") != list(roles)
    ):
        raise rep.fail(
            "AUTH-013",
            sent=f"a token with roles {json_text(list(roles))} and permissions "
            f"{json_text([extra])}",
            expected=f"welcome permissions {json_text(want)} and roles {json_text(list(roles))}",
            received=f"permissions {json_text(got)}, roles {json_text(payload.get('roles'))}",
        )


@pytest.mark.requirements("AUTH-011")
def test_client_ids_stay_unique_after_connections_close(rep: Harness) -> None:
    """Open three, close the first, open two more: the four open ones differ (a server
    that numbers connections by how many are open hands out a clientId in use)."""
    clients = [rep.connect() for _ in range(3)]
    clients[0].close()
    clients[1].expect_open(requirement="AUTH-011")
    held = clients[1:] + [rep.connect() for _ in range(2)]
    ids = [c.client_id for c in held]
    if len(set(ids)) != len(ids):
        raise rep.fail(
            "AUTH-011",
            sent="three connections, the first closed, then two more",
            expected="a different clientId for each of the four open connections",
            received=f"clientIds {json_text(ids)} (the closed one had "
            f"{json_text(clients[0].client_id)})",
        )


@pytest.mark.requirements("AUTH-012", "AUTH-014")
@pytest.mark.background
def test_a_connection_is_closed_with_4001_when_its_token_expires(rep: Harness) -> None:
    """A token valid for two more seconds: the open connection is closed with 4001."""
    ttl = 2
    budget = rep.target.budgets.max_expiry_wait
    if ttl + 1 > budget:
        pytest.skip(f"waiting for expiry needs {ttl + 1} s; budgets.max_expiry_wait is {budget} s")
    user = rep.user()
    token = rep.token(user, ttl=ttl)
    attempt = rep.attempt(token, user=user, label="user")
    if attempt.client is None:
        raise rep.fail(
            "AUTH-012", expected="HTTP 101 for a valid token", received=f"HTTP {attempt.status}"
        )
    client = attempt.client
    started = time.monotonic()
    wait = ttl + 1 + rep.timeouts.heartbeat_tolerance + rep.timeouts.answer
    interval = (rep.profile.heartbeat_interval_ms or 1000) / 1000
    client.keepalive(min(0.5, interval / 2), until=rep.transcript.now() + wait)
    closed = client.expect_close(
        TOKEN_EXPIRED,
        within=0.5,
        requirement="AUTH-012",
        sent=f"pings while the token ran out ({ttl} s after connecting)",
    )
    rep.record("token expiry close after (s)", round(time.monotonic() - started, 3))
    expiry = token_expiry(token)
    if expiry is None:
        return
    late = time.time() - rep.transcript.now() + closed.at - expiry
    tolerance = rep.timeouts.heartbeat_tolerance
    if late < -tolerance or late > 1 + tolerance:
        raise rep.fail(
            "AUTH-014",
            sent=f"a token with exp {expiry:.0f} (whole seconds)",
            expected=f"the close 4001 no earlier than exp and within one second after it "
            f"(tolerance {tolerance:g} s)",
            received=f"the close came {late:+.3f} s after exp",
        )
