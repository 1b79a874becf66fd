"""Deliberately broken servers, and which check must catch each.

A variant is the reference server with one behaviour broken, either by a core subclass
(``core``) or, for behaviour outside the core (token checks, the sanitizer), by patching
one function of the reference server for the duration of the run (``patch``). Each names
the requirement the kit must report as failed and the checks to run.
"""

from __future__ import annotations

import re
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
    #: Features the variant's target claims, when not the usual list (a variant that
    #: hides a feature from its welcome must not be claimed to have it).
    unclaimed: tuple[str, ...] = ()


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


def other_subprotocol() -> Any:
    """WS-001: the server offers another subprotocol than rep.v1."""
    return _replaced_everywhere("SUBPROTOCOL", "chat.v2")


def query_token_first() -> Any:
    """AUTH-002: the token query parameter wins over the Authorization header."""
    original = auth.extract_token

    def extract(headers: Any, query: Any, cookies: Any) -> Any:
        if query.get("token"):
            return query["token"], "query"
        return original(headers, query, cookies)

    return _replaced_everywhere("extract_token", extract)


def any_attachment_host() -> Any:
    """CHAT-004: attachment URLs to internal hosts are distributed."""
    return _replaced_everywhere("refused_attachment_host", lambda url: None)


def no_sanitizer() -> Any:
    """CHAT-003: chat content is distributed exactly as sent."""
    return _replaced_everywhere("sanitize_chat_content", lambda content: content)


def empty_rooms_kept() -> Any:
    """ROOM-009: the memory broker keeps a room after its last member leaves."""
    from reference_server.broker import memory

    original = memory.MemoryBroker.leave_room

    async def leave_room(self: Any, room_id: str, client_id: str, *args: Any, **kw: Any) -> Any:
        result = await original(self, room_id, client_id, *args, **kw)
        if result.was_member and room_id not in self._rooms:
            self._rooms[room_id] = {}  # the empty room stays behind
        return result

    return _replaced(memory.MemoryBroker, "leave_room", leave_room)


def dotted_hosts_only() -> Any:
    """CHAT-004: only dotted IPv4, bracketed IPv6 and the exact name localhost are
    recognised; integer, hex, octal, short, trailing-dot and mapped forms slip through."""
    import ipaddress
    from urllib.parse import urlsplit

    def refused(url: str) -> str | None:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https"):
            return "only http and https URLs are allowed"
        host = parts.hostname or ""
        if host == "localhost" or host.endswith(".localhost"):
            return "localhost is not allowed"
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return None
        internal = (
            address.is_loopback
            or address.is_private
            or address.is_link_local
            or address.is_unspecified
            or address.is_reserved
            or address.is_multicast
        )
        return "internal address" if internal else None

    return _replaced_everywhere("refused_attachment_host", refused)


def rep_v1_always_selected() -> Any:
    """WS-010: the answer names rep.v1 even when the client did not offer it."""
    from aiohttp import web

    from reference_server.transport import app

    class AlwaysRepV1(web.WebSocketResponse):
        def _handshake(self, request: Any) -> Any:
            headers, protocol, *rest = super()._handshake(request)
            if protocol is None:
                headers["Sec-WebSocket-Protocol"] = app.SUBPROTOCOL
                protocol = app.SUBPROTOCOL
            return (headers, protocol, *rest)

    return _replaced(web, "WebSocketResponse", AlwaysRepV1)


def offer_echoed_back() -> Any:
    """WS-001: the answer echoes the client's whole offer (``chat.v2, rep.v1``) instead of
    selecting one subprotocol; right for a single offer, and RFC 6455 makes the client fail
    the handshake otherwise."""
    from aiohttp import web

    class EchoesTheOffer(web.WebSocketResponse):
        def _handshake(self, request: Any) -> Any:
            headers, protocol, *rest = super()._handshake(request)
            offer = request.headers.get("Sec-WebSocket-Protocol")
            if protocol is not None and offer:
                headers["Sec-WebSocket-Protocol"] = offer
            return (headers, protocol, *rest)

    return _replaced(web, "WebSocketResponse", EchoesTheOffer)


#: An escaped surrogate pair, or an escaped surrogate standing alone.
_SURROGATE_ESCAPE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[dD][89a-fA-F][0-9a-fA-F]{2}"
)


def lone_surrogates_replaced() -> Any:
    """ENV-016: escaped lone surrogates are decoded as U+FFFD (as some JSON decoders do)
    instead of making the frame invalid JSON."""
    from rep_spec import validation

    def decode(data: str | bytes) -> Any:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        text = _SURROGATE_ESCAPE.sub(
            lambda m: m.group(0) if len(m.group(0)) == 12 else "\\ufffd", text
        )
        return validation.decode_text_frame(text)

    return _replaced_everywhere("decode_text_frame", decode)


def publish_stream_checked_first() -> Any:
    """HTTP-005: a publish to an unknown stream is answered 404 before the body is read."""
    from reference_server.transport import app
    from reference_server.transport.node import NODE_KEY, authenticate_request, error_response

    original = app.publish_handler

    async def publish(request: Any) -> Any:
        node = request.app[NODE_KEY]
        try:
            authenticate_request(request, node, "stream:publish")
        except auth.AuthRejected as rejected:
            return error_response(rejected.code, rejected.reason)
        if node.config.stream(request.match_info["streamId"]) is None:
            return error_response("not_found", "no such stream")
        return await original(request)

    return _replaced(app, "publish_handler", publish)


def any_authorization_scheme() -> Any:
    """AUTH-002: whatever follows the scheme of any Authorization header is the token."""
    original = auth.extract_token

    def extract(headers: Any, query: Any, cookies: Any) -> Any:
        authorization = headers.get("Authorization", "")
        if authorization:
            return authorization.split(" ", 1)[-1].strip(), "header"
        return original(headers, query, cookies)

    return _replaced_everywhere("extract_token", extract)


#: Variants of the classes of bugs the kit once missed, each caught by a check of its own.
BLIND_CLASS_VARIANTS = [
    Variant(
        "timestamps-in-local-time-labelled-utc",
        "ENV-004",
        ("test_server_timestamps_say_when_the_message_was_made",),
        core=cores.TimestampsInLocalTimeLabelledUtc,
    ),
    Variant(
        "member-list-one-entry-per-user",
        "ROOM-003",
        ("test_a_user_with_two_connections_is_listed_once_per_connection",),
        core=cores.OneEntryPerUser,
    ),
    Variant(
        "status-cleared-by-any-close",
        "PRES-002",
        ("test_a_status_outlives_the_close_of_one_of_the_users_connections",),
        core=cores.StatusClearedByAnyClose,
    ),
    Variant(
        "status-skips-the-users-other-connections",
        "PRES-001",
        ("test_a_users_other_connections_get_a_status_only_as_room_members",),
        core=cores.StatusSkipsTheUsersOtherConnections,
    ),
    Variant(
        "ghost-member-after-wrong-password",
        "ERR-004",
        ("test_a_refused_join_leaves_no_member_behind",),
        core=cores.GhostMemberOnWrongPassword,
    ),
    Variant(
        "rooms-matched-by-prefix",
        "CHAT-002",
        ("test_every_member_gets_exactly_one_copy_and_no_one_else",),
        core=cores.RoomsMatchedByPrefix,
    ),
    Variant(
        "version-from-collection-revision",
        "DATA-004",
        ("test_versions_are_per_record_not_the_collection_revision",),
        core=cores.VersionFromCollectionRevision,
    ),
    Variant(
        "sync-since-inclusive",
        "DATA-011",
        ("test_sync_since_is_strictly_after_and_bounded_by_the_current_revision",),
        core=cores.SyncSinceInclusive,
    ),
    Variant(
        "old-ids-replay-the-buffer",
        "STREAM-005",
        ("test_a_last_event_id_older_than_the_buffer_is_a_gap_or_a_full_replay",),
        core=cores.OldIdsReplayTheBuffer,
    ),
    Variant(
        "beyond-newest-is-no-gap",
        "STREAM-005",
        ("test_a_last_event_id_beyond_the_stream_is_a_gap_with_live_delivery",),
        core=cores.BeyondNewestIsNoGap,
    ),
    Variant(
        "refused-messages-count",
        "RATE-001",
        ("test_the_window_admits_messages_again_after_retry_after_ms",),
        core=cores.RefusedMessagesCount,
    ),
    Variant(
        "per-connection-rate-window",
        "RATE-001",
        ("test_the_limit_counts_every_message_of_a_user_across_connections",),
        core=cores.PerConnectionWindow,
    ),
    Variant(
        "heartbeats-six-percent-late",
        "LIFE-002",
        ("test_heartbeats_arrive_at_least_once_per_advertised_interval",),
        core=cores.HeartbeatsSixPercentLate,
    ),
    Variant(
        "empty-rooms-kept",
        "ROOM-009",
        ("test_an_empty_room_is_removed_and_created_afresh",),
        patch=empty_rooms_kept,
    ),
    Variant(
        "client-ids-from-open-count",
        "AUTH-011",
        ("test_client_ids_stay_unique_after_connections_close",),
        core=cores.ClientIdFromOpenCount,
    ),
    Variant(
        "attachment-hosts-dotted-only",
        "CHAT-004",
        ("test_attachment_urls_to_internal_hosts_or_other_schemes_are_refused",),
        patch=dotted_hosts_only,
    ),
]

#: Variants that take one side of a choice the spec now pins.
PINNED_CHOICE_VARIANTS = [
    Variant(
        "refused-joins-answered-not-found",
        "ROOM-015",
        ("test_joining_a_private_room_needs_room_join_private",),
        core=cores.PrivateRoomsHiddenAsNotFound,
    ),
    Variant(
        "chat-to-a-missing-room-not-found",
        "CHAT-001",
        ("test_chat_to_a_room_that_does_not_exist_is_forbidden",),
        core=cores.ChatToMissingRoomNotFound,
    ),
    Variant(
        "announcement-room-checked-first",
        "NOTIF-004",
        ("test_the_announce_permission_is_checked_before_the_room",),
        core=cores.AnnouncementRoomCheckedFirst,
    ),
    Variant(
        "other-members-copies-uncorrelated",
        "MSG-007",
        ("test_other_members_copies_carry_the_senders_correlation_id",),
        core=cores.OthersCopiesUncorrelated,
    ),
    Variant(
        "gap-omitted-when-resumable",
        "STREAM-013",
        ("test_resuming_from_the_newest_event_is_no_gap_and_replays_nothing",),
        core=cores.GapOmittedWhenResumable,
    ),
    Variant(
        "sse-tokens-never-expire",
        "SSE-013",
        ("test_an_sse_stream_ends_when_its_token_expires",),
        core=cores.SseTokensNeverExpire,
    ),
    Variant(
        "welcome-lists-only-the-permissions-claim",
        "AUTH-013",
        ("test_the_welcome_lists_the_effective_permissions",),
        core=cores.WelcomeListsOnlyTheClaim,
    ),
]

#: Variants of rules the spec pins for interoperability, each caught by its own check.
PINNED_RULE_VARIANTS = [
    Variant(
        "rep-v1-selected-when-not-offered",
        "WS-010",
        ("test_a_handshake_without_rep_v1_is_served_without_a_subprotocol",),
        patch=rep_v1_always_selected,
    ),
    Variant(
        "lone-surrogates-replaced",
        "ENV-016",
        ("test_a_lone_surrogate_is_answered_with_invalid_json",),
        patch=lone_surrogates_replaced,
    ),
    Variant(
        "errors-held-until-the-next-pong",
        "MSG-008",
        ("test_answers_come_in_the_order_of_the_messages",),
        core=cores.ErrorsHeldUntilTheNextPong,
    ),
    Variant(
        "publish-stream-checked-first",
        "HTTP-005",
        ("test_publish_refusals_follow_the_order_of_checks",),
        patch=publish_stream_checked_first,
    ),
    Variant(
        "sse-channels-checked-before-subscribe",
        "SSE-014",
        ("test_sse_refusals_follow_the_order_of_checks",),
        core=cores.SseChannelsCheckedBeforeSubscribe,
    ),
    Variant(
        "sse-requests-count-toward-the-rate-limit",
        "SSE-015",
        ("test_sse_requests_do_not_count_toward_the_rate_limit",),
        core=cores.SseRequestsCountTowardTheRateLimit,
    ),
    Variant(
        "event-numbers-rounded-to-fifteen-digits",
        "STREAM-012",
        ("test_event_data_arrives_as_the_same_json_value",),
        core=cores.EventNumbersRoundedToFifteenDigits,
    ),
    Variant(
        "empty-chat-after-sanitizing-refused",
        "CHAT-008",
        ("test_chat_content_is_sanitized_before_distribution",),
        core=cores.EmptyChatAfterSanitizingRefused,
    ),
    Variant(
        "leaving-needs-room-leave",
        "ROOM-013",
        ("test_leaving_needs_no_permission",),
        core=cores.LeavingNeedsRoomLeave,
    ),
    Variant(
        "rejoin-skips-the-room-rules",
        "ROOM-014",
        ("test_rejoining_is_judged_by_the_room_rules_again",),
        core=cores.RejoinSkipsTheRoomRules,
    ),
    Variant(
        "any-authorization-scheme-is-a-token",
        "AUTH-002",
        ("test_an_authorization_header_of_another_scheme_counts_as_absent",),
        patch=any_authorization_scheme,
    ),
    Variant(
        "tokens-expire-a-second-early",
        "AUTH-014",
        ("test_a_connection_is_closed_with_4001_when_its_token_expires",),
        core=cores.TokensExpireASecondEarly,
    ),
    Variant(
        "cleanup-awaits-the-closing-handshake",
        "LIFE-009",
        ("test_cleanup_does_not_wait_for_the_peers_closing_handshake",),
        core=cores.CleanupAwaitsTheClosingHandshake,
    ),
]

VARIANTS = [
    Variant(
        "pong-breaks-its-schema",
        "ENV-013",
        ("test_ping_is_answered_by_a_correlated_pong",),
        core=cores.PongWithoutTimestamp,
    ),
    Variant(
        "silent-clients-never-closed",
        "LIFE-003",
        ("test_a_silent_client_is_closed_with_4000_after_two_intervals",),
        core=cores.SilentClientsLiveForever,
    ),
    Variant(
        "tokens-never-expire-on-open-connections",
        "AUTH-012",
        ("test_a_connection_is_closed_with_4001_when_its_token_expires",),
        core=cores.TokensNeverExpireOnOpenConnections,
    ),
    Variant(
        "errors-without-details",
        "ERR-010",
        ("test_schema_errors_point_at_the_offending_member",),
        core=cores.ErrorsWithoutDetails,
    ),
    Variant(
        "no-user-leave-on-disconnect",
        "ROOM-006",
        ("test_a_dropped_member_is_announced_with_reason_disconnected",),
        core=cores.NoLeaveNoticeOnDisconnect,
    ),
    Variant(
        "collection-changes-delivered-twice",
        "DATA-008",
        ("test_subscribers_get_each_change_exactly_once",),
        core=cores.CollectionChangesTwice,
    ),
    Variant(
        "unsubscribe-keeps-delivering",
        "STREAM-009",
        ("test_after_unsubscribing_no_event_arrives",),
        core=cores.UnsubscribeKeepsDelivering,
    ),
    Variant(
        "rate-limited-without-retry-after",
        "RATE-003",
        ("test_the_limit_counts_every_message_of_a_user_across_connections",),
        core=cores.RetryAfterMissing,
    ),
    Variant(
        "member-lists-always-online",
        "PRES-002",
        ("test_member_lists_carry_the_last_status",),
        core=cores.StatusesAlwaysOnline,
    ),
    Variant(
        "another-subprotocol-selected",
        "WS-001",
        ("test_the_rep_subprotocol_is_selected_when_offered",),
        patch=other_subprotocol,
    ),
    Variant(
        "whole-offer-echoed-back",
        "WS-001",
        ("test_the_rep_subprotocol_is_selected_when_offered",),
        patch=offer_echoed_back,
    ),
    Variant(
        "query-token-wins-over-header",
        "AUTH-002",
        ("test_the_first_token_present_is_used",),
        patch=query_token_first,
    ),
    Variant(
        "attachments-to-internal-hosts-distributed",
        "CHAT-004",
        ("test_attachment_urls_to_internal_hosts_or_other_schemes_are_refused",),
        patch=any_attachment_host,
    ),
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
        unclaimed=("notifications",),
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
        "numeric-string-time-claims",
        "AUTH-003",
        ("test_time_claims_that_are_not_numbers_are_refused_with_401",),
        patch=lambda: _replaced(auth, "NUMERIC_DATE_CLAIMS", ()),
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
    Variant(
        "sse-last-event-id-ignored",
        "SSE-008",
        ("test_a_channel_the_cursor_does_not_name_gets_replay_unavailable",),
        core=cores.IgnoresLastEventId,
    ),
    *BLIND_CLASS_VARIANTS,
    *PINNED_CHOICE_VARIANTS,
    *PINNED_RULE_VARIANTS,
]
