"""RepClient's client rules against a hand-driven peer: timeouts, correlation, unknown
types and codes, rate limits and a silent server."""

from __future__ import annotations

import asyncio
import time

import pytest

from rep_client import Backoff, RepClient, RequestFailed, RequestTimeout
from tests.client.fakes import fake_peer, next_message, server_message

pytestmark = pytest.mark.network


async def test_answers_are_matched_by_correlation_id_not_by_order() -> None:
    async with fake_peer() as peer:
        client = RepClient(f"ws://127.0.0.1:{peer.port}", "t", ping_when_idle=False)
        await client.connect()
        ws = await peer.connections.get()
        first = asyncio.create_task(client.request("ping", {"timestamp": 1}))
        second = asyncio.create_task(client.request("ping", {"timestamp": 2}))
        a, b = await next_message(ws), await next_message(ws)
        await ws.send(server_message("pong", {"timestamp": 0, "echo": 2}, b["id"]))
        await ws.send(server_message("pong", {"timestamp": 0, "echo": 1}, a["id"]))
        assert (await first)["payload"]["echo"] == 1
        assert (await second)["payload"]["echo"] == 2
        await client.close()


async def test_a_request_times_out_and_a_late_answer_is_ignored() -> None:
    async with fake_peer() as peer:
        client = RepClient(f"ws://127.0.0.1:{peer.port}", "t", ping_when_idle=False)
        delivered: list[str] = []
        client.on("*", lambda m: delivered.append(m["type"]))
        await client.connect()
        ws = await peer.connections.get()
        started = time.monotonic()
        with pytest.raises(RequestTimeout):
            await client.request("room_join", {"roomId": "lobby"}, timeout_s=0.2)
        assert time.monotonic() - started >= 0.2
        asked = await next_message(ws)
        late = {"roomId": "lobby", "members": []}
        await ws.send(server_message("room_join_response", late, asked["id"]))
        pong_for = asyncio.create_task(client.request("ping", {"timestamp": 1}))
        ping = await next_message(ws)
        await ws.send(server_message("pong", {"timestamp": 0, "echo": 1}, ping["id"]))
        await pong_for
        assert delivered == []  # the late response reached no handler
        await client.close()


async def test_unknown_types_members_and_codes_pass_without_harm() -> None:
    async with fake_peer() as peer:
        client = RepClient(f"ws://127.0.0.1:{peer.port}", "t", ping_when_idle=False)
        await client.connect()
        ws = await peer.connections.get()
        await ws.send(server_message("hologram", {"x": 1}))
        pending = asyncio.create_task(client.request("ping", {"timestamp": 5}))
        asked = await next_message(ws)
        await ws.send(
            server_message("error", {"code": "quantum_flux", "message": "new"}, asked["id"])
        )
        with pytest.raises(RequestFailed) as failed:
            await pending
        assert failed.value.code == "quantum_flux" and not failed.value.retryable
        pending = asyncio.create_task(client.request("ping", {"timestamp": 6}))
        asked = await next_message(ws)
        extra = {"timestamp": 0, "echo": 6, "futureMember": True}
        await ws.send(server_message("pong", extra, asked["id"], trace="x"))
        assert (await pending)["payload"]["echo"] == 6
        assert client.connected
        await client.close()


async def test_nothing_is_sent_before_retry_after_ms() -> None:
    async with fake_peer() as peer:
        client = RepClient(f"ws://127.0.0.1:{peer.port}", "t", ping_when_idle=False)
        refused = asyncio.Event()
        client.on("error", lambda message: refused.set())
        await client.connect()
        ws = await peer.connections.get()
        first = await client.send("status_update", {"status": "away"})
        await next_message(ws)
        limited = {"code": "rate_limited", "message": "slow down", "retry_after_ms": 300}
        refused_at = time.monotonic()
        await ws.send(server_message("error", limited, first))
        await asyncio.wait_for(refused.wait(), 5)  # the client has read the error
        await client.send("status_update", {"status": "busy"})
        await next_message(ws)
        assert time.monotonic() - refused_at >= 0.3
        await client.close()


async def test_a_silent_server_is_left_and_the_client_reconnects() -> None:
    async with fake_peer(heartbeat_ms=200) as peer:
        client = RepClient(
            f"ws://127.0.0.1:{peer.port}",
            "t",
            ping_when_idle=False,
            backoff=Backoff(0.05, 0.1),
        )
        client_welcome = await client.connect()
        interval = client_welcome["heartbeatIntervalMs"] / 1000
        first = await peer.connections.get()
        started = time.monotonic()
        # The fake never sends a heartbeat: after two intervals the client leaves.
        async with asyncio.timeout(3 * interval + 5):
            await first.wait_closed()
        assert time.monotonic() - started >= 2 * interval
        async with asyncio.timeout(5):
            await peer.connections.get()
        await client.close()


async def test_after_4001_it_waits_for_a_new_token_and_after_1000_it_stays_away() -> None:
    async with fake_peer() as peer:
        client = RepClient(
            f"ws://127.0.0.1:{peer.port}", "old", ping_when_idle=False, backoff=Backoff(0.02, 0.05)
        )
        needed, stopped = asyncio.Event(), asyncio.Event()
        gave_up: list[str] = []
        client.on_event("token_needed", needed.set)

        def on_gave_up(reason: str) -> None:
            gave_up.append(reason)
            stopped.set()

        client.on_event("gave_up", on_gave_up)
        await client.connect()
        first = await peer.connections.get()
        await first.close(4001, "token expired")
        await asyncio.wait_for(needed.wait(), 5)
        client.set_token("new")
        # The next connection is the first since the close: none used the expired token.
        second = await asyncio.wait_for(peer.connections.get(), 5)
        assert second.request is not None
        assert second.request.headers["Authorization"] == "Bearer new"
        await second.close(1000, "done")
        await asyncio.wait_for(stopped.wait(), 5)
        assert peer.connections.empty() and "1000" in gave_up[0]
        await client.close()
