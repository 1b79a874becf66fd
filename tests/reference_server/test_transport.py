"""The aiohttp transport over loopback, with a real websockets client."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import jwt
import orjson
import pytest
import websockets

from reference_server.auth import mint_token
from reference_server.config import parse_config
from reference_server.testing import RunningServer, running_server
from tests.reference_server.conftest import ROOMS
from tests.reference_server.netclient import Client, connect

pytestmark = pytest.mark.network

ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    config = parse_config({**ROOMS, "allowed_origins": [ORIGIN], "max_message_bytes": 65536})
    # 64 bytes: long enough that signing test tokens with HS512 raises no key-length warning.
    with running_server(config, secret=secrets.token_urlsafe(64)) as running:
        yield running


def _unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "ann", "roles": ["user"], "exp": int(time.time()) + 60, **extra}


async def _handshake_status(
    server: RunningServer,
    *,
    headers: dict[str, str] | None = None,
    query: str = "",
) -> int:
    try:
        ws = await websockets.connect(server.ws_url + query, additional_headers=headers or {})
    except websockets.InvalidStatus as refused:
        return refused.response.status_code
    await ws.close()
    return 101


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("header", 101),
        ("query", 101),
        ("cookie_allowed_origin", 101),
        ("header_wins_over_bad_query", 101),
        ("missing", 401),
        ("expired", 401),
        ("wrong_secret", 401),
        ("alg_none", 401),
        ("wrong_algorithm", 401),
        ("garbage", 401),
        ("no_sub", 401),
        ("missing_permission", 403),
        ("cookie_without_origin", 403),
        ("cookie_foreign_origin", 403),
    ],
)
async def test_handshake_auth_matrix(server: RunningServer, case: str, expected: int) -> None:
    good = jwt.encode(_claims(), server.secret, algorithm="HS256")
    cases: dict[str, dict[str, Any]] = {
        "header": {"headers": bearer(good)},
        "query": {"query": f"?token={good}"},
        "cookie_allowed_origin": {"headers": {"Cookie": f"token={good}", "Origin": ORIGIN}},
        "header_wins_over_bad_query": {"headers": bearer(good), "query": "?token=bad"},
        "missing": {},
        "expired": {
            "headers": bearer(
                jwt.encode(_claims(exp=int(time.time()) - 10), server.secret, algorithm="HS256")
            )
        },
        "wrong_secret": {"headers": bearer(jwt.encode(_claims(), "x" * 32, algorithm="HS256"))},
        "alg_none": {"headers": bearer(_unsigned(_claims()))},
        "wrong_algorithm": {
            "headers": bearer(jwt.encode(_claims(), server.secret, algorithm="HS512"))
        },
        "garbage": {"headers": bearer("not.a.jwt")},
        "no_sub": {
            "headers": bearer(
                jwt.encode({"roles": ["user"], "exp": int(time.time()) + 60}, server.secret)
            )
        },
        "missing_permission": {
            "headers": bearer(jwt.encode(_claims(roles=[]), server.secret, algorithm="HS256"))
        },
        "cookie_without_origin": {"headers": {"Cookie": f"token={good}"}},
        "cookie_foreign_origin": {
            "headers": {"Cookie": f"token={good}", "Origin": "https://evil.example"}
        },
    }
    assert await _handshake_status(server, **cases[case]) == expected


async def test_subprotocol_is_selected(server: RunningServer) -> None:
    client = await connect(server, "sub-user")
    assert client.ws.subprotocol == "rep.v1"
    await client.ws.close()


async def test_three_clients_share_a_room(server: RunningServer) -> None:
    a, b, c = [await connect(server, f"room-{n}") for n in "abc"]
    for client in (a, b, c):
        await client.send("room_join", {"roomId": "net-lobby"})
        await client.recv_type("room_join_response")
    assert (await a.recv_type("user_join"))["payload"]["userId"] == "room-b"
    assert (await a.recv_type("user_join"))["payload"]["userId"] == "room-c"
    assert (await b.recv_type("user_join"))["payload"]["userId"] == "room-c"
    chat_id = await b.send("chat_message", {"roomId": "net-lobby", "content": "<i>hey</i><svg/>"})
    for client in (a, b, c):
        copy = await client.recv_type("chat_message")
        assert copy["payload"]["content"] == "<i>hey</i>"
        assert copy["metadata"]["correlation_id"] == chat_id
    await c.ws.close()
    for client in (a, b):
        leave = await client.recv_type("user_leave")
        assert leave["payload"]["reason"] == "disconnected"
    await a.ws.close()
    await b.ws.close()


async def test_attachment_to_metadata_service_is_refused(server: RunningServer) -> None:
    a = await connect(server, "ssrf-user")
    await a.send("room_join", {"roomId": "net-ssrf"})
    await a.recv_type("room_join_response")
    attachment = {"type": "file", "url": "http://169.254.169.254/latest"}
    await a.send(
        "chat_message",
        {"roomId": "net-ssrf", "content": "x", "metadata": {"attachments": [attachment]}},
    )
    assert (await a.recv_type("error"))["payload"]["code"] == "invalid_payload"
    await a.ws.close()


async def test_data_conflict_over_the_network(server: RunningServer) -> None:
    a, b = await connect(server, "data-a"), await connect(server, "data-b")
    await a.send("data_create", {"collection": "net-docs", "recordId": "d1", "data": {"v": 1}})
    assert (await a.recv_type("data_create"))["payload"]["version"] == 1
    update = {"collection": "net-docs", "recordId": "d1", "expectedVersion": 1}
    await a.send("data_update", {**update, "data": {"v": 2}})
    await b.send("data_update", {**update, "data": {"v": 3}})
    assert (await a.recv_type("data_update"))["payload"]["version"] == 2
    assert (await b.recv_type("error"))["payload"]["code"] == "conflict"
    await a.ws.close()
    await b.ws.close()


async def test_rate_limit_over_the_network(server: RunningServer) -> None:
    a = await connect(server, "flood-user")
    for _ in range(25):
        await a.send("ping", {})
    kinds = [(await a.recv())["type"] for _ in range(25)]
    assert kinds.count("pong") == 20
    assert kinds.count("error") == 5
    await a.ws.close()


async def test_binary_frame_then_ping(server: RunningServer) -> None:
    a = await connect(server, "binary-user")
    await a.ws.send(b"\x01\x02")
    assert (await a.recv_type("error"))["payload"]["code"] == "unsupported_frame"
    await a.send("ping", {})
    await a.recv_type("pong")
    await a.ws.close()


async def test_oversized_message_closes_1009(server: RunningServer) -> None:
    a = await connect(server, "big-user", max_size=None)
    await a.ws.send("x" * 70_000)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await a.recv(3)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_message_of_exactly_the_maximum_is_processed(server: RunningServer) -> None:
    a = await connect(server, "large-user")
    message = {
        "id": "big",
        "type": "data_create",
        "timestamp": "2026-11-26T12:00:00Z",
        "payload": {"collection": "net-large", "data": {"blob": ""}},
    }
    padding = 65536 - len(orjson.dumps(message))
    message["payload"]["data"]["blob"] = "y" * padding
    frame = orjson.dumps(message).decode()
    assert len(frame.encode()) == 65536
    await a.ws.send(frame)
    copy = await a.recv_type("data_create")
    assert len(copy["payload"]["data"]["blob"]) == padding
    await a.ws.close()


async def test_heartbeat_then_timeout_close_4000(server: RunningServer) -> None:
    a = await connect(server, "quiet-user", ping_interval=None)
    assert a.welcome["payload"]["heartbeatIntervalMs"] == 1000
    first = await a.recv(1.5)
    assert first["type"] == "heartbeat"
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await a.recv(3)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000


async def test_disconnect_is_answered_and_closed_1000(server: RunningServer) -> None:
    a = await connect(server, "bye-user")
    disconnect_id = await a.send("disconnect", {})
    reply = await a.recv_type("disconnect")
    assert reply["metadata"]["correlation_id"] == disconnect_id
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await a.recv(2)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


async def test_graceful_shutdown_sends_disconnect_and_1001() -> None:
    with running_server(parse_config(ROOMS)) as own:
        client = await connect(own, "shutdown-user")
        stopper = asyncio.get_running_loop().run_in_executor(None, lambda: own.call(_shutdown(own)))
        reply = await client.recv_type("disconnect", within=5)
        assert reply["payload"]["reason"] == "server shutting down"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await client.recv(5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        await stopper


async def _shutdown(server: RunningServer) -> None:
    for callback in server.app.on_shutdown:
        await callback(server.app)


async def test_health_and_stats(server: RunningServer) -> None:
    a = await connect(server, "stats-user")
    await a.send("room_join", {"roomId": "net-stats"})
    await a.recv_type("room_join_response")
    async with aiohttp.ClientSession() as http:
        async with http.get(server.http_url + "/health") as response:
            assert (response.status, await response.json()) == (200, {"status": "ok"})
        async with http.get(server.http_url + "/stats") as response:
            stats = await response.json()
    assert stats["connections"] >= 1 and stats["rooms"] >= 1 and stats["streams"] == 1
    await a.ws.close()


@pytest.mark.parametrize(
    ("stream", "token_roles", "body", "status", "code"),
    [
        ("prices", ("admin",), b'{"type": "tick", "data": 1}', 201, None),
        ("prices", None, b'{"type": "tick", "data": 1}', 401, "unauthorized"),
        ("prices", ("user",), b'{"type": "tick", "data": 1}', 403, "forbidden"),
        ("nope", ("admin",), b'{"type": "tick", "data": 1}', 404, "not_found"),
        ("prices", ("admin",), b"{oops", 400, "invalid_json"),
        ("prices", ("admin",), b'{"type": "tick"}', 400, "invalid_payload"),
        (
            "prices",
            ("admin",),
            b'{"type": "t", "data": "' + b"z" * 70_000 + b'"}',
            413,
            "message_too_large",
        ),
    ],
)
async def test_http_publish(
    server: RunningServer,
    stream: str,
    token_roles: tuple[str, ...] | None,
    body: bytes,
    status: int,
    code: str | None,
) -> None:
    headers = {"Content-Type": "application/json"}
    if token_roles is not None:
        headers.update(bearer(mint_token(server.secret, "producer", token_roles)))
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.http_url}/streams/{stream}/events", data=body, headers=headers) as r,
    ):
        answer = await r.json()
    assert r.status == status
    if code is None:
        assert set(answer) == {"id"}
    else:
        assert answer["error"]["code"] == code


async def test_published_event_reaches_websocket_subscriber(server: RunningServer) -> None:
    a = await connect(server, "stream-user")
    await a.send("stream_subscribe", {"streamId": "prices", "filter": {"eventTypes": ["quote"]}})
    response = await a.recv_type("stream_subscribe_response")
    for _ in range(response["payload"]["replayed"]):  # events other tests published
        await a.recv_type("stream_event")
    headers = bearer(mint_token(server.secret, "producer", ("admin",)))
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{server.http_url}/streams/prices/events",
            json={"type": "quote", "tags": ["eu"], "data": {"p": 1.5}},
            headers=headers,
        ) as response,
    ):
        event_id = (await response.json())["id"]
    event = await a.recv_type("stream_event")
    assert event["payload"]["event"]["id"] == event_id
    assert event["payload"]["event"]["data"] == {"p": 1.5}
    await a.ws.close()


def test_other_clients_are_unaffected_by_a_dropped_connection(server: RunningServer) -> None:
    async def scenario() -> None:
        survivor: Client = await connect(server, "survivor")
        victim = await connect(server, "victim")
        victim.ws.transport.abort()  # no close handshake at all
        await survivor.send("ping", {})
        await survivor.recv_type("pong")
        await survivor.ws.close()

    asyncio.run(scenario())


async def test_text_frame_that_is_not_utf8_closes_1007(server: RunningServer) -> None:
    a = await connect(server, "utf8-user")
    await a.ws.send(b"\xff\xfe", text=True)  # a text frame whose bytes are not UTF-8
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await a.recv(3)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
