"""What the core asks the outside world to do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from reference_server.broker.base import Broker, Publication

T = TypeVar("T")


# Not frozen: one is made per recipient of every delivery, and a frozen dataclass's
# __init__ sets each field through object.__setattr__.
@dataclass(slots=True)
class Send:
    """Queue ``message`` for the local client ``client_id``."""

    client_id: str
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Publish:
    """Hand ``publication`` to the broker, which delivers it on every node."""

    publication: Publication


@dataclass(frozen=True, slots=True)
class Close:
    """Close the local client's connection with a close code from close-codes.json."""

    client_id: str
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Ask(Generic[T]):
    """One broker operation; the driver awaits ``call(broker)`` and sends the result back."""

    call: Callable[[Broker], Awaitable[T]]


Effect = Send | Publish | Close | Ask[Any]
Step = Generator[Effect, Any, T]


def ask(call: Callable[[Broker], Awaitable[T]]) -> Step[T]:
    """``result = yield from ask(lambda broker: broker.room_members(room))``."""
    result = yield Ask(call)
    return cast(T, result)
