"""The sans-I/O protocol core: decoded input in, effects out.

Nothing here touches a socket or an event loop. Each entry point of :class:`ServerCore`
returns a *step*: a generator that yields :mod:`effects` in the order they must happen.
Output effects (``Send``, ``Publish``, ``Close``) are carried out by the transport; an
``Ask`` is a question for the broker whose answer the driver sends back into the step.
"""

from reference_server.core.effects import Ask, Close, Effect, Publish, Send, Step
from reference_server.core.server import ServerCore

__all__ = ["Ask", "Close", "Effect", "Publish", "Send", "ServerCore", "Step"]
