"""The far server's deviations really are on the wire, so tests built on it can rely on them."""

from __future__ import annotations

import asyncio
import http.client
import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

from tests.far_server import FarServer, far_server_process, jsjson, make_token, running_far_server

RECV_TIMEOUT = 3.0
RESTART_DEADLINE = 5.0


@pytest.fixture(scope="module")
def far() -> Iterator[FarServer]:
    with running_far_server() as server:
        yield server


def _open(server: FarServer) -> ClientConnection:
    token = make_token(server.secret)
    return connect(f"{server.ws_url}?token={token}", open_timeout=RECV_TIMEOUT)


def _recv(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.recv(timeout=RECV_TIMEOUT))
    return message


def _health_pid(server: FarServer) -> int:
    with urllib.request.urlopen(f"{server.http_url}/health", timeout=1) as response:
        assert json.loads(response.read()) == {"status": "ok"}
        return int(response.headers["X-Far-Server-Pid"])


def _tokenless_handshake(server: FarServer) -> None:
    """The handshake never completes: the process dies under it."""
    with pytest.raises((WebSocketException, OSError)):
        connect(server.ws_url, open_timeout=RECV_TIMEOUT).close()


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (5.677767015998854e16, "56777670159988540"),
        (3.0, "3"),
        (-0.0, "0"),
        (0.5, "0.5"),
        (1e21, "1e+21"),
        (1e-7, "1e-7"),
        (float(2**53 + 1), "9007199254740992"),
        (float("nan"), "null"),
    ],
)
def test_js_number_serialisation(value: float, written: str) -> None:
    assert jsjson.number(value) == written


@pytest.mark.network
def test_welcome_lacks_features(far: FarServer) -> None:
    with _open(far) as ws:
        welcome = _recv(ws)
    assert welcome["type"] == "auth"
    assert welcome["metadata"] == {"version": "1.0", "source": "server"}
    assert set(welcome["payload"]) == {"status", "clientId", "user"}
    assert "features" not in welcome["payload"]
    assert welcome["payload"]["user"] == {"id": "alice"}


@pytest.mark.network
def test_bad_token_is_refused_with_401(far: FarServer) -> None:
    token = make_token("another-secret-of-at-least-32-bytes!!")
    with pytest.raises(WebSocketException) as refused:
        connect(f"{far.ws_url}?token={token}", open_timeout=RECV_TIMEOUT).close()
    response = getattr(refused.value, "response", None)
    assert response is not None and response.status_code == 401
    _health_pid(far)  # still alive: only a missing token is fatal


@pytest.mark.network
def test_room_join_gets_an_error_without_code(far: FarServer) -> None:
    with _open(far) as ws:
        _recv(ws)
        ws.send(json.dumps({"id": "j-1", "type": "room_join", "timestamp": "2025-06-02T10:00:00Z",
                            "payload": {"roomId": "lobby"}}))
        answer = _recv(ws)
        assert answer["type"] == "error"
        assert answer["payload"] == {"message": "Unknown message type: room_join"}
        assert answer["metadata"]["correlation_id"] == "j-1"
        # The connection stays open, and ping is answered correctly.
        ws.send(json.dumps({"id": "p-1", "type": "ping", "timestamp": "2025-06-02T10:00:00Z",
                            "payload": {}}))
        pong = _recv(ws)
    assert pong["type"] == "pong"
    assert pong["metadata"]["correlation_id"] == "p-1"
    assert isinstance(pong["payload"]["timestamp"], int)


@pytest.mark.network
def test_tokenless_handshake_kills_an_unsupervised_server() -> None:
    with far_server_process() as (server, proc):
        _tokenless_handshake(server)
        assert proc.wait(timeout=RESTART_DEADLINE) == 1


@pytest.mark.network
def test_supervised_server_answers_again_after_the_crash() -> None:
    with far_server_process(supervised=True) as (server, supervisor):
        before = _health_pid(server)
        _tokenless_handshake(server)
        deadline = time.monotonic() + RESTART_DEADLINE
        while True:
            try:
                after = _health_pid(server)
                if after != before:
                    break
            except (OSError, http.client.HTTPException):
                pass  # down, or not listening yet
            assert time.monotonic() < deadline, "the supervisor did not restart the server"
            time.sleep(0.05)
        assert supervisor.poll() is None
        with _open(server) as ws:
            assert _recv(ws)["type"] == "auth"


@pytest.mark.network
async def test_sse_first_block_has_no_event_line(far: FarServer) -> None:
    headers = {"Authorization": f"Bearer {make_token(far.secret, 'producer')}"}
    events_url = f"{far.http_url}/events?channels=sse-a"
    async with (
        asyncio.timeout(RECV_TIMEOUT),
        aiohttp.ClientSession() as session,
        session.get(events_url) as sse,  # no token at all, and still a stream
    ):
        assert sse.status == 200
        assert sse.headers["Content-Type"].startswith("text/event-stream")
        first = (await sse.content.readuntil(b"\n\n")).decode()
        assert first.startswith("data: ")
        assert "event:" not in first and "retry:" not in first
        assert "clientId" in json.loads(first.removeprefix("data: "))
        async with session.post(
            f"{far.http_url}/streams/sse-a/events", json={"type": "t", "data": {}},
            headers=headers,
        ) as published:
            assert published.status == 201
            event_id = (await published.json())["id"]
        block = (await sse.content.readuntil(b"\n\n")).decode().splitlines()
    assert block[0] == f"id: sse-a={event_id}"
    assert block[1] == "event: stream_event"


@pytest.mark.network
def test_published_numbers_are_reserialised_the_javascript_way(far: FarServer) -> None:
    token = make_token(far.secret)
    body = b'{"type": "reading", "data": {"big": 5.677767015998854e+16, "three": 3.0, "x": 0.5}}'
    with _open(far) as ws:
        _recv(ws)
        ws.send(json.dumps({"id": "s-1", "type": "stream_subscribe",
                            "timestamp": "2025-06-02T10:00:00Z", "payload": {"streamId": "nums"}}))
        subscribed = _recv(ws)
        assert subscribed["type"] == "stream_subscribe_response"
        assert subscribed["payload"] == {"streamId": "nums", "replayed": 0}
        request = urllib.request.Request(
            f"{far.http_url}/streams/nums/events", data=body, method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=RECV_TIMEOUT) as response:
            assert response.status == 201
        raw = ws.recv(timeout=RECV_TIMEOUT)
    assert isinstance(raw, str)
    assert '"data":{"big":56777670159988540,"three":3,"x":0.5}' in raw
    assert json.loads(raw)["type"] == "stream_event"
