"""aiohttp transports: they move bytes between sockets and the core, nothing more."""

from reference_server.transport.app import NODE_KEY, Node, create_app

__all__ = ["NODE_KEY", "Node", "create_app"]
