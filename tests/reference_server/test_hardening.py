"""Requests built to make the server leak or lie: oversized, malformed, wrongly typed.

Each test here was a defect found by attacking the server from outside: a token fragment in
a log line or a response, a token that never expired, a non-ASCII cursor echoed back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

import orjson
import pytest
import websockets

from reference_server.auth import mint_token
from reference_server.broker.base import event_position
from reference_server.config import parse_config
from reference_server.testing import RunningServer, running_server
from reference_server.transport.node import NODE_KEY
from reference_server.transport.runner import MAX_HEADER_FIELD_BYTES
from tests.reference_server.conftest import ROOMS

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    config = parse_config({**ROOMS, "streams": [{"id": "prices"}]})
    with running_server(config) as running:
        yield running


async def _raw_request(server: RunningServer, request: bytes) -> bytes:
    """Send bytes as they are and read the whole answer (the server closes after errors)."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def _big_token(server: RunningServer) -> str:
    """A correctly signed token padded past the header limit with a permissions claim."""
    padding = [f"p{n:05d}" for n in range(MAX_HEADER_FIELD_BYTES // 8)]
    return mint_token(server.secret, "ann", ("user",), padding)


def _fragments(token: str) -> list[str]:
    """Every 12-character slice of the token: none may appear in a log or a response."""
    return [token[i : i + 12] for i in range(0, len(token) - 12, 6)]


def _assert_no_fragment(token: str, *texts: str) -> None:
    for text in texts:
        leaked = [f for f in _fragments(token) if f in text]
        assert not leaked, f"token fragment {leaked[0]!r} in: {text[:300]}"


@pytest.mark.parametrize("where", ["header", "query", "cookie"])
async def test_an_oversized_handshake_gets_a_json_413_and_no_byte_of_the_token_leaks(
    server: RunningServer, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = _big_token(server)
    target, header = "/ws", ""
    if where == "query":
        target = f"/ws?token={token}"
    else:
        name = "Authorization: Bearer " if where == "header" else "Cookie: token="
        header = f"{name}{token}\r\n"
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {server.host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{header}\r\n"
    ).encode()
    answer = await _raw_request(server, request)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"413", head
    assert b"application/json" in head
    assert orjson.loads(body)["error"]["code"] == "message_too_large"
    logged = [record.getMessage() for record in caplog.records]
    logged += [caplog.text]
    _assert_no_fragment(token, answer.decode(errors="replace"), *logged)
    assert any("refused an unparsable HTTP request" in line for line in logged)


async def test_a_malformed_request_is_refused_without_quoting_it(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = mint_token(server.secret, "ann")
    request = f"GET /ws?token={token} HTTP/1.1\r\nHost: x\r\nBad\x01Header: {token}\r\n\r\n"
    answer = await _raw_request(server, request.encode())
    assert answer.split(b" ")[1] == b"400", answer[:80]
    _assert_no_fragment(token, answer.decode(errors="replace"), caplog.text)


async def test_a_token_whose_exp_is_a_string_is_refused(server: RunningServer) -> None:
    """RFC 7519 NumericDate: a numeric string would otherwise never expire the connection."""
    import jwt

    claims = {"sub": "ann", "roles": ["user"], "exp": str(int(time.time()) + 2)}
    token = jwt.encode(claims, server.secret, algorithm="HS256")
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(
            server.ws_url, additional_headers={"Authorization": f"Bearer {token}"}
        )
    assert refused.value.response.status_code == 401
    assert b"NumericDate" in refused.value.response.body


async def test_health_says_unavailable_once_shutdown_has_begun(server: RunningServer) -> None:
    """HTTP-006: balancers stop routing new clients before the connections are closed."""
    import aiohttp

    node = server.app[NODE_KEY]

    async def stopping(value: bool) -> None:
        node.stopping = value

    async with aiohttp.ClientSession() as http:
        server.call(stopping(True))
        try:
            async with http.get(f"{server.http_url}/health") as health:
                assert health.status == 503
                assert (await health.json()) == {"status": "unavailable", "reason": "shutting down"}
        finally:
            server.call(stopping(False))
        async with http.get(f"{server.http_url}/health") as health:
            assert health.status == 200


def test_event_positions_take_ascii_digits_only() -> None:
    assert event_position("12-3") == (12, 3)
    # Arabic-Indic and fullwidth digits: isdigit() says yes, and int() reads them.
    for spelled in ("\u0661\u0662-\u0663", "12-\u0663", "\uff11\uff12-3", "12-", "-3", "x-1"):
        assert event_position(spelled) is None, spelled


async def test_a_cursor_in_other_digits_is_not_taken_for_an_event_id(
    server: RunningServer,
) -> None:
    """An event id spelled in Arabic-Indic digits names no event: no resume, no echo."""
    import aiohttp

    producer = mint_token(server.secret, "producer", ("admin",))
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{server.http_url}/streams/prices/events",
            json={"type": "tick", "data": {}},
            headers={"Authorization": f"Bearer {producer}"},
        ) as published,
    ):
        event_id = (await published.json())["id"]
    arabic = str.maketrans("0123456789", "".join(chr(0x0660 + d) for d in range(10)))
    cursor = f"prices={event_id.translate(arabic)}"
    token = mint_token(server.secret, "ann")
    request = (
        f"GET /events?channels=prices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Last-Event-ID: {cursor}\r\nConnection: close\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.split(b" ")[1] == b"200", head
        opening = await asyncio.wait_for(reader.readuntil(b"event: connection"), 10)
    finally:
        writer.close()
    assert opening.isascii(), f"the cursor was taken and echoed back: {opening!r}"


@pytest.mark.parametrize(
    ("what", "header", "target"),
    [
        ("a 10 kB Last-Event-ID", "Last-Event-ID: " + "1" * 10_000, "/events?channels=prices"),
        (
            "a 1,000-channel query",
            "",
            "/events?channels=" + ",".join(f"channel-{n:04d}" for n in range(1000)),
        ),
    ],
)
async def test_oversized_sse_requests_get_a_json_error(
    server: RunningServer, what: str, header: str, target: str
) -> None:
    token = mint_token(server.secret, "ann")
    extra = f"{header}\r\n" if header else ""
    request = (
        f"GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{extra}\r\n"
    ).encode()
    answer = await _raw_request(server, request)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"413", (what, head)
    assert orjson.loads(body)["error"]["code"] == "message_too_large", what
    _assert_no_fragment(token, answer.decode(errors="replace"))


async def test_a_browser_offering_compression_gets_none(server: RunningServer) -> None:
    """WS-011: the reference server declines permessage-deflate (memory per connection)."""
    token = mint_token(server.secret, "ann")
    ws = await websockets.connect(
        server.ws_url,
        additional_headers={"Authorization": f"Bearer {token}"},
        compression="deflate",  # what browsers offer on every connection
    )
    try:
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
    finally:
        await ws.close()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_publish_reads_json_whatever_the_content_type(
    server: RunningServer, content_type: str | None
) -> None:
    """HTTP-008: the body is JSON; the media type is not a reason to refuse."""
    import aiohttp

    token = mint_token(server.secret, "producer", ("admin",))
    headers = {"Authorization": f"Bearer {token}"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    body = orjson.dumps({"type": "tick", "data": {"n": 1}})
    async with (
        aiohttp.ClientSession(skip_auto_headers=["Content-Type"]) as http,
        http.post(f"{server.http_url}/streams/prices/events", data=body, headers=headers) as answer,
    ):
        assert answer.status == 201, await answer.text()
