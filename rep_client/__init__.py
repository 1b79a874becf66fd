"""rep_client: the REP 1.0 reference client (asyncio).

It implements the client behaviour section of the specification (CLIENT-001..019):
validated, uniquely numbered messages; requests with timeouts matched by correlation_id;
handlers per message type; reconnection with exponential backoff and jitter that follows
the close-code table; rooms rejoined and streams resumed without duplicates; an SSE client
that resumes with Last-Event-ID and honours ``retry``.

Public surface::

    RepClient(url, token)      the WebSocket client
    SseClient(url, token, channels)
    Backoff                    the reconnection schedule (base, cap, attempts)
    RequestFailed, RequestTimeout, InvalidMessage, NotConnected
"""

from rep_client.backoff import Backoff
from rep_client.errors import (
    ClientError,
    InvalidMessage,
    NotConnected,
    RequestFailed,
    RequestTimeout,
)
from rep_client.sse import SseClient, SseEvent
from rep_client.ws import RepClient, TokenMode

__all__ = [
    "Backoff",
    "ClientError",
    "InvalidMessage",
    "NotConnected",
    "RepClient",
    "RequestFailed",
    "RequestTimeout",
    "SseClient",
    "SseEvent",
    "TokenMode",
]
