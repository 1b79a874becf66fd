from __future__ import annotations

import pytest

from tests.reference_server.harness import Harness

ROOMS = {
    "rooms": [
        {"id": "staff", "private": True},
        {"id": "vault", "password": "open-sesame"},
        {"id": "stage", "moderated": True},
        {"id": "board", "invite_only": True, "invited": ["carol"]},
    ],
    "streams": [{"id": "prices", "buffer_size": 5, "retention_ms": 60_000}],
    "rate_limit": {"window_ms": 1000, "max_messages": 20},
    "heartbeat_interval_ms": 1000,
}


@pytest.fixture
def h() -> Harness:
    return Harness(ROOMS)
