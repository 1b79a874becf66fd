"""Shared state and fan-out behind one interface: in memory for one node, Redis for a cluster."""

from reference_server.broker.base import Broker
from reference_server.broker.memory import MemoryBroker

__all__ = ["Broker", "MemoryBroker"]
