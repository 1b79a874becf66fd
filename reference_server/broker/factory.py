"""The ``--broker`` setting as a broker: none means one node in memory, a Redis URL a cluster."""

from __future__ import annotations

from urllib.parse import urlsplit

from reference_server.broker.base import Broker
from reference_server.broker.memory import MemoryBroker
from reference_server.broker.redis import RedisBroker

REDIS_SCHEMES = ("redis", "rediss", "unix")


def broker_from_url(url: str | None, node_id: str) -> Broker:
    """Build (but do not start) the broker; ValueError names what a URL may look like.

    The caller awaits ``broker.start()`` before serving (``create_app`` does it at startup).
    """
    if url is None:
        return MemoryBroker()
    if urlsplit(url).scheme in REDIS_SCHEMES:
        return RedisBroker(url, node_id=node_id)
    raise ValueError(
        f"unsupported broker URL {url!r}: expected redis://host:port/db, rediss://... or "
        "unix:///path/to/redis.sock"
    )
