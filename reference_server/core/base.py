"""What every part of the core shares: state, topics, refusals and reply builders."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from reference_server.broker.base import (
    Broker,
    LeaveResult,
    Member,
    Publication,
)
from reference_server.config import ServerConfig
from reference_server.core.connection import Connection
from reference_server.core.effects import Send, Step
from reference_server.core.messages import MessageFactory
from rep_spec import MessageValidator, catalog

log = logging.getLogger("reference_server.core")

CORE_FEATURES = ("core", "rooms", "chat", "presence", "notifications", "data", "streams")
BROADCAST_TOPIC = "broadcast"
DIRECT_TOPIC = "direct"


def room_topic(room_id: str) -> str:
    return f"room:{room_id}"


def collection_topic(collection: str) -> str:
    return f"collection:{collection}"


def stream_topic(stream_id: str) -> str:
    return f"stream:{stream_id}"


def leave_room_call(
    room_id: str, client_id: str, announce: Publication | None = None
) -> Callable[[Broker], Awaitable[LeaveResult]]:
    return lambda broker: broker.leave_room(room_id, client_id, announce)


def room_members_call(room_id: str) -> Callable[[Broker], Awaitable[tuple[Member, ...]]]:
    return lambda broker: broker.room_members(room_id)


class Refused(Exception):
    """A behaviour check failed: answer with one error and change nothing (ERR-004)."""

    def __init__(self, code: str, message: str, requirement: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.requirement = requirement


Handler = Callable[[Connection, dict[str, Any], int], Step[None]]


class CoreBase:
    """State and helpers shared by the handler groups that make up :class:`ServerCore`."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        features: Iterable[str] = CORE_FEATURES,
        validator: MessageValidator | None = None,
        messages: MessageFactory | None = None,
    ) -> None:
        self.config = config
        self.features = tuple(dict.fromkeys(features))
        self.validator = validator or MessageValidator()
        self.messages = messages or MessageFactory()
        self.connections: dict[str, Connection] = {}
        self._client_counter = 0

    def _new_client_id(self, kind: str) -> str:
        """``<node>-<kind><n>``: unique across a cluster, since node ids differ."""
        self._client_counter += 1
        return f"{self.messages.node_id}-{kind}{self._client_counter}"

    def _error(self, connection: Connection, refusal: Refused, correlation: str | None) -> Send:
        details = {"requirement": refusal.requirement} if refusal.requirement else None
        return Send(
            connection.client_id,
            self.messages.error(
                refusal.code, refusal.message, correlation_id=correlation, details=details
            ),
        )

    def _copy(
        self, connection: Connection, message: dict[str, Any], payload: dict[str, Any]
    ) -> dict[str, Any]:
        """The distributed copy of a client's message (MSG-004, MSG-005)."""
        return self.messages.build(
            message["type"],
            payload,
            correlation_id=message["id"],
            sender={"userId": connection.user_id, "clientId": connection.client_id},
        )

    def _respond(
        self, connection: Connection, message: dict[str, Any], payload: dict[str, Any]
    ) -> Send:
        response_type = catalog().types[message["type"]].answer_type
        assert response_type is not None
        return Send(
            connection.client_id,
            self.messages.build(response_type, payload, correlation_id=message["id"]),
        )

    @staticmethod
    def _require(connection: Connection, permission: str, requirement: str) -> None:
        if not connection.principal.can(permission):
            raise Refused(
                "forbidden", f"this action needs the permission {permission}", requirement
            )

    def _user_leave(self, room_id: str, connection: Connection, reason: str) -> Publication:
        """The notice a leave publishes, atomically with it (Broker.leave_room)."""
        return Publication(
            room_topic(room_id),
            self.messages.build(
                "user_leave",
                {
                    "roomId": room_id,
                    "userId": connection.user_id,
                    "clientId": connection.client_id,
                    "reason": reason,
                },
            ),
            exclude=frozenset({connection.client_id}),
        )
