"""Before the first check: do the target file's fixtures exist on the server?

A target that names a stream the server does not have would otherwise show up as
server failures (AUTHZ-001, MSG-003, SSE-001 ...). The preflight asks the server about
each fixture it can verify unambiguously and returns one line per mistake, naming the
target-file key to fix; the run then stops with exit status 4.

A feature the server does not implement is not a target mistake: its fixture is not
judged here, and the feature-entry checks report it.
"""

from __future__ import annotations

from conformance import spec
from conformance.client import Client, Message, open_websocket
from conformance.failures import ConformanceFailure
from conformance.profile import ServerProfile
from conformance.target import Target
from conformance.tokens import TokenSource, TokenUnavailable
from conformance.transcript import Transcript

NOT_FOUND = spec.error_code("not_found")
FORBIDDEN_STATUS = 403


def _client(target: Target, tokens: TokenSource, profile: ServerProfile) -> Client | None:
    token = tokens.mint("preflight", ("admin",))
    transcript = Transcript()
    handshake = open_websocket(
        target.node.ws_url,
        transcript=transcript,
        channel="preflight",
        token=token,
        timeout=target.timeouts.connect,
    )
    if handshake.connection is None:
        return None
    return Client(
        handshake.connection,
        label="preflight",
        user_id="preflight",
        transcript=transcript,
        timeouts=target.timeouts,
        default_requirements=("MSG-003",),
        protocol_version=profile.protocol_version,
    )


def _answer(client: Client, type_: str, payload: dict[str, object]) -> Message | None:
    """The server's answer correlated to the request, or None when none came."""
    sent = client.send(type_, payload)
    try:
        return client.expect(lambda message: True, correlation_id=sent)
    except ConformanceFailure:
        return None


def _error_code(message: Message | None) -> str | None:
    if message is None or message.get("type") != spec.error_type():
        return None
    payload = message.get("payload")
    code = payload.get("code") if isinstance(payload, dict) else None
    return code if isinstance(code, str) else None


def preflight(target: Target, profile: ServerProfile, tokens: TokenSource) -> list[str]:
    """Mistakes in the target's fixtures, each naming its key; empty when all check out."""
    fixtures = target.fixtures
    problems: list[str] = []
    try:
        client = _client(target, tokens, profile)
    except (TokenUnavailable, ConnectionError):
        return problems
    if client is None:
        return problems
    try:
        if fixtures.stream is not None and profile.supports("streams"):
            answer = _answer(client, "stream_subscribe", {"streamId": fixtures.stream})
            if _error_code(answer) == NOT_FOUND:
                problems.append(
                    f'fixtures.stream: the server has no stream "{fixtures.stream}" '
                    "(stream_subscribe was answered with not_found)"
                )
            elif answer is not None and answer.get("type") != spec.error_type():
                client.send("stream_unsubscribe", {"streamId": fixtures.stream})
        room = fixtures.password_room
        if room is not None and profile.supports("rooms"):
            answer = _answer(client, "room_join", {"roomId": room.id, "password": room.password})
            code = _error_code(answer)
            if code is not None and code != spec.error_code("unknown_type"):
                problems.append(
                    f'fixtures.password_room: joining "{room.id}" with the configured password '
                    f"was refused with {code} (check the room id and password)"
                )
    except ConformanceFailure:
        pass  # the connection ended: no verdict on the fixtures; the checks will see why
    finally:
        client.close()
    if fixtures.allowed_origin is not None:
        try:
            handshake = open_websocket(
                target.node.ws_url,
                transcript=Transcript(),
                channel="preflight-origin",
                token=tokens.mint("preflight", ("user",)),
                via="cookie",
                origin=fixtures.allowed_origin,
                timeout=target.timeouts.connect,
            )
        except (TokenUnavailable, ConnectionError):
            return problems
        if handshake.connection is not None:
            handshake.connection.close()
        elif handshake.status == FORBIDDEN_STATUS:
            problems.append(
                f"fixtures.allowed_origin: a cookie token from Origin "
                f'"{fixtures.allowed_origin}" was refused with HTTP 403; name an Origin the '
                "server allows"
            )
    return problems
