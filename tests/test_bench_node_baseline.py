"""The Node.js ws baseline answers like the echo baselines, so the bench worker can drive it.

Its dependencies come from the npm registry on first use (``bench.node_baseline.prepare``).
Without node or npm these tests skip, or fail under REP_REQUIRE_ALL=1 (as in CI); a failed
install always fails, since it means the lock file or the server is broken.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from bench.node_baseline import NO_NODE, NO_NPM, NPM_TIMEOUT, node_ws_server, prepare
from bench.procs import ServerProcess, Worker, workers
from reference_server.auth import mint_token

pytestmark = [pytest.mark.network, pytest.mark.timeout(NPM_TIMEOUT + 60)]

SECRET = "node-ws-baseline-test-secret-0123456789abcdef"
SUBPROTOCOL = "rep.v1"
TIMEOUT = 5.0
START_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    prepared = prepare()
    if isinstance(prepared, str):
        if prepared not in (NO_NODE, NO_NPM):
            pytest.fail(prepared)
        if os.environ.get("REP_REQUIRE_ALL") == "1":
            pytest.fail(f"REP_REQUIRE_ALL=1 but {prepared}")
        pytest.skip(prepared)
    assert prepared.is_file()
    process = node_ws_server(SECRET, tmp_path_factory.mktemp("node-ws"))
    process.start(timeout=START_TIMEOUT)
    try:
        yield process
    finally:
        process.stop()


def _open(server: ServerProcess, *, query: bool = False) -> ClientConnection:
    """Bearer header by default, ?token= with ``query``: the two places verifyClient reads."""
    token = mint_token(SECRET, "alice")
    if query:
        return connect(
            f"{server.ws_url}?token={token}", subprotocols=[SUBPROTOCOL], open_timeout=TIMEOUT
        )
    return connect(
        server.ws_url,
        subprotocols=[SUBPROTOCOL],
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
    )


def _recv(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.recv(timeout=TIMEOUT))
    return message


def _check_welcome(welcome: dict[str, Any]) -> None:
    assert set(welcome) == {"id", "type", "timestamp", "payload", "metadata"}
    assert welcome["type"] == "auth"
    assert welcome["payload"]["status"] == "connected"
    assert isinstance(welcome["payload"]["clientId"], str) and welcome["payload"]["clientId"]
    assert welcome["metadata"] == {"version": "1.0", "source": "server"}
    assert datetime.fromisoformat(welcome["timestamp"]).utcoffset() is not None


def test_health_answers_ok(server: ServerProcess) -> None:
    with urllib.request.urlopen(f"{server.http_url}/health", timeout=TIMEOUT) as answer:
        assert answer.status == 200
        assert json.loads(answer.read()) == {"status": "ok"}


def test_welcome_then_a_pong_per_ping(server: ServerProcess) -> None:
    with _open(server) as ws:
        assert ws.subprotocol == SUBPROTOCOL
        welcome = _recv(ws)
        _check_welcome(welcome)
        node = welcome["id"].rpartition("-")[0]
        seen = {welcome["id"]}
        for index in range(3):
            ping_id = f"ping-{index}"
            sent_at = 1_700_000_000_000 + index
            ws.send(
                json.dumps(
                    {
                        "id": ping_id,
                        "type": "ping",
                        "timestamp": "2026-11-26T12:00:00.000Z",
                        "payload": {"timestamp": sent_at},
                    }
                )
            )
            pong = _recv(ws)
            assert pong["type"] == "pong"
            assert pong["metadata"] == {
                "version": "1.0",
                "source": "server",
                "correlation_id": ping_id,
            }
            assert pong["payload"]["echo"] == sent_at
            assert isinstance(pong["payload"]["timestamp"], int)
            assert pong["id"].rpartition("-")[0] == node and pong["id"] not in seen
            seen.add(pong["id"])
            assert datetime.fromisoformat(pong["timestamp"]).utcoffset() is not None


def test_ping_without_timestamp_gets_no_echo(server: ServerProcess) -> None:
    with _open(server, query=True) as ws:
        _check_welcome(_recv(ws))
        ws.send(json.dumps({"id": "bare", "type": "ping", "payload": {}}))
        pong = _recv(ws)
    assert pong["metadata"]["correlation_id"] == "bare"
    assert set(pong["payload"]) == {"timestamp"}


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-jwt",
        mint_token("another-secret-that-is-long-enough-0123456789", "mallory"),
        mint_token(SECRET, "late", ttl_seconds=-60),
    ],
    ids=["missing", "malformed", "wrong-secret", "expired"],
)
@pytest.mark.parametrize("query", [False, True], ids=["bearer", "query"])
def test_bad_token_is_refused_with_401(server: ServerProcess, token: str, query: bool) -> None:
    url, headers = server.ws_url, {}
    if token and query:
        url = f"{url}?token={token}"
    elif token:
        headers = {"Authorization": f"Bearer {token}"}
    with pytest.raises(InvalidStatus) as refused:
        connect(
            url, subprotocols=[SUBPROTOCOL], additional_headers=headers, open_timeout=TIMEOUT
        ).close()
    assert refused.value.response.status_code == 401


def test_bench_worker_drives_it(server: ServerProcess, tmp_path: Path) -> None:
    params: dict[str, Any] = {
        "url": server.ws_url,
        "connections": 2,
        "in_flight": 2,
        "welcome": True,
        "secret": SECRET,
    }
    worker = Worker("pingpong", params, tmp_path, "pingpong-node-ws-test")
    with workers(worker):
        assert worker.ready(timeout=60)["connections"] == 2
        answer = worker.request({"cmd": "run", "seconds": 0.3, "max_messages": 200}, timeout=60)
    assert 0 < answer["messages"] <= 200
    assert answer["p50_us"] is not None and answer["p50_us"] > 0
