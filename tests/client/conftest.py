from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.client.servers import CuttableProxy, RestartableServer


@pytest.fixture
def server() -> Iterator[RestartableServer]:
    handle = RestartableServer()
    handle.start()
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture
async def proxy(server: RestartableServer) -> AsyncIterator[CuttableProxy]:
    relay = CuttableProxy(server.port)
    await relay.start()
    try:
        yield relay
    finally:
        await relay.close()
