"""What the client raises to its application."""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Base class of the client's own errors."""


class NotConnected(ClientError):
    """There is no open connection to send on (the client reconnects by itself, or gave up)."""


class InvalidMessage(ClientError):
    """The application asked to send a message the client schemas refuse (CLIENT-001)."""

    def __init__(self, code: str, message: str, pointer: str | None) -> None:
        self.code, self.pointer = code, pointer
        where = f" at {pointer}" if pointer else ""
        super().__init__(f"{code}{where}: {message}")


class RequestTimeout(ClientError):
    """No answer correlated to the request arrived within its timeout (CLIENT-002)."""

    def __init__(self, message_id: str, type_name: str, timeout_s: float) -> None:
        self.message_id, self.type_name, self.timeout_s = message_id, type_name, timeout_s
        super().__init__(f"{type_name} {message_id!r}: no answer within {timeout_s:g} s")


class RequestFailed(ClientError):
    """The server answered the request with an error (an unknown code is not retryable)."""

    def __init__(self, message_id: str, error: dict[str, Any], retryable: bool) -> None:
        self.message_id = message_id
        self.error = error
        self.code = str(error.get("code"))
        self.retryable = retryable
        self.retry_after_ms = error.get("retry_after_ms")
        super().__init__(f"{self.code}: {error.get('message', '')}")
