"""aiohttp transports: they move bytes between sockets and the core, nothing more."""

from reference_server.transport.app import create_app
from reference_server.transport.node import NODE_KEY, Node

__all__ = ["NODE_KEY", "Node", "create_app"]
