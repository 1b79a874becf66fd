"""Deliberately broken servers, and which check must catch each.

A variant is the reference server with one behaviour broken, either by a core subclass
(``core``) or, for behaviour outside the core (token checks, the sanitizer), by patching
one function of the reference server for the duration of the run (``patch``). Each names
the requirement the kit must report as failed and the checks to run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import jwt

import reference_server.core.server  # noqa: F401 - loads every core module to patch
from reference_server import auth
from reference_server.core.server import ServerCore
from rep_spec import catalog
from tests.conformance_variants import cores


@dataclass(frozen=True)
class Variant:
    name: str
    breaks: str
    checks: tuple[str, ...]
    core: type[ServerCore] = ServerCore
    patch: Callable[[], Any] | None = None


@contextmanager
def _replaced(owner: Any, name: str, replacement: Any) -> Iterator[None]:
    original = getattr(owner, name)
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextmanager
def _replaced_everywhere(name: str, replacement: Any) -> Iterator[None]:
    """Replace a function in every reference_server module that imported it by name."""
    holders = [
        module
        for module_name, module in list(sys.modules.items())
        if module_name.startswith("reference_server") and hasattr(module, name)
    ]
    with ExitStack() as stack:
        for module in holders:
            stack.enter_context(_replaced(module, name, replacement))
        yield


def accept_alg_none() -> Any:
    """AUTH-005: tokens whose header says alg none are taken at their word."""
    original = auth.TokenVerifier.verify

    def verify(self: auth.TokenVerifier, token: str, source: auth.TokenSource) -> auth.Principal:
        header = jwt.get_unverified_header(token)
        if str(header.get("alg", "")).lower() != "none":
            return original(self, token, source)
        claims = jwt.decode(token, options={"verify_signature": False})
        return auth.Principal(
            user_id=claims["sub"],
            roles=tuple(claims.get("roles", [])),
            permissions=frozenset(
                catalog().permissions_of(claims.get("roles", []))
                | set(claims.get("permissions", []))
            ),
            expires_at=None,
            token_source=source,
        )

    return _replaced(auth.TokenVerifier, "verify", verify)


def no_sanitizer() -> Any:
    """CHAT-003: chat content is distributed exactly as sent."""
    return _replaced_everywhere("sanitize_chat_content", lambda content: content)


VARIANTS = [
    Variant(
        "envelope-version-disagrees-with-welcome",
        "ENV-008",
        ("test_server_messages_carry_the_version_it_speaks_and_source_server",),
        core=cores.VersionDisagreesWithWelcome,
    ),
    Variant(
        "unknown-type-answered-with-silence",
        "MSG-001",
        ("test_an_unregistered_type_is_answered_with_unknown_type",),
        core=cores.UnknownTypeIgnored,
    ),
    Variant(
        "copies-without-sender",
        "MSG-005",
        ("test_the_sender_receives_one_copy_naming_it_as_sender",),
        core=cores.CopiesWithoutSender,
    ),
    Variant(
        "unadvertised-feature-served",
        "MSG-006",
        ("test_types_of_an_unadvertised_feature_are_answered_with_unknown_type",),
        core=cores.HidesNotificationsButServesThem,
    ),
    Variant(
        "errors-without-correlation-id",
        "ERR-003",
        ("test_errors_carry_the_refused_messages_id_as_correlation_id",),
        core=cores.ErrorsWithoutCorrelation,
    ),
    Variant(
        "invalid-json-closes-the-connection",
        "ERR-005",
        ("test_the_connection_survives_every_kind_of_refusal",),
        core=cores.ClosesOnInvalidJson,
    ),
    Variant(
        "any-major-version-accepted",
        "VER-002",
        ("test_another_major_version_is_answered_with_unsupported_version",),
        core=cores.AnyMajorVersion,
    ),
    Variant(
        "binary-frames-ignored",
        "WS-003",
        ("test_a_binary_frame_is_answered_with_unsupported_frame",),
        core=cores.BinaryIgnored,
    ),
    Variant(
        "alg-none-accepted",
        "AUTH-005",
        ("test_tokens_with_algorithm_none_are_refused_with_401",),
        patch=accept_alg_none,
    ),
    Variant(
        "permissions-claim-ignored",
        "AUTHZ-001",
        ("test_the_permissions_claim_alone_grants_permissions",),
        core=cores.PermissionsClaimIgnored,
    ),
    Variant(
        "pong-without-correlation-id",
        "LIFE-001",
        ("test_ping_is_answered_by_a_correlated_pong",),
        core=cores.PongWithoutCorrelation,
    ),
    Variant(
        "no-heartbeats",
        "LIFE-002",
        ("test_heartbeats_arrive_at_least_once_per_advertised_interval",),
        core=cores.NoHeartbeats,
    ),
    Variant(
        "joiner-receives-its-own-user-join",
        "ROOM-004",
        ("test_others_are_told_of_a_join_and_the_joiner_is_not",),
        core=cores.JoinerHearsItsOwnJoin,
    ),
    Variant(
        "unsanitized-chat",
        "CHAT-003",
        ("test_chat_content_is_sanitized_before_distribution",),
        patch=no_sanitizer,
    ),
    Variant(
        "status-echoed-to-sender-only",
        "PRES-001",
        ("test_a_status_update_reaches_each_member_of_the_senders_rooms_once",),
        core=cores.StatusToSenderOnly,
    ),
    Variant(
        "broadcast-without-permission",
        "NOTIF-001",
        ("test_a_broadcast_needs_message_broadcast",),
        core=cores.BroadcastWithoutPermission,
    ),
    Variant(
        "update-ignores-expected-version",
        "DATA-004",
        ("test_an_update_with_a_stale_expected_version_is_a_conflict",),
        core=cores.UpdateIgnoresExpectedVersion,
    ),
    Variant(
        "no-replay-for-new-subscribers",
        "STREAM-004",
        ("test_buffered_events_are_replayed_in_order_then_live_events_follow",),
        core=cores.NoReplay,
    ),
    Variant(
        "published-events-not-delivered",
        "HTTP-003",
        ("test_a_published_event_is_stored_and_delivered_live",),
        core=cores.PublishNotDelivered,
    ),
    Variant(
        "no-rate-limit",
        "RATE-002",
        ("test_a_message_over_the_limit_is_not_processed",),
        core=cores.NoRateLimit,
    ),
]
