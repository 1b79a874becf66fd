"""Rooms: joining under the room rules, leaving, membership notices (ROOM-*)."""

from __future__ import annotations

import hmac
from typing import Any

from reference_server.broker.base import (
    Member,
    Publication,
)
from reference_server.core.base import (
    CoreBase,
    Refused,
    room_topic,
)
from reference_server.core.connection import Connection
from reference_server.core.effects import Step, ask


class RoomHandlers(CoreBase):
    def on_room_join(
        self, connection: Connection, message: dict[str, Any], now_ms: int
    ) -> Step[None]:
        room_id: str = message["payload"]["roomId"]
        self._require(connection, "room:join", "ROOM-010")
        room = self.config.room(room_id)
        if room is not None:
            if room.private:
                self._require(connection, "room:join_private", "ROOM-010")
            if room.password is not None and not hmac.compare_digest(
                str(message["payload"].get("password", "")).encode(), room.password.encode()
            ):
                raise Refused("forbidden", "wrong or missing room password", "ROOM-011")
            if room.invite_only and not (
                connection.principal.can("room:join_invited") or connection.user_id in room.invited
            ):
                raise Refused("forbidden", "this room is invite-only", "ROOM-012")
        member = Member(connection.user_id, connection.client_id)
        announce = Publication(  # ROOM-004; published only if the join is new (ROOM-007)
            room_topic(room_id),
            self.messages.build(
                "user_join",
                {"roomId": room_id, "userId": connection.user_id, "clientId": connection.client_id},
            ),
            exclude=frozenset({connection.client_id}),
        )
        result = yield from ask(lambda b: b.join_room(room_id, member, announce))
        if room_id not in connection.rooms:
            connection.joined_at[room_id] = result.position
        connection.rooms.add(room_id)
        statuses = yield from ask(lambda b: b.statuses([m.user_id for m in result.members]))
        yield self._respond(
            connection,
            message,
            {
                "roomId": room_id,
                "members": [
                    {
                        "userId": m.user_id,
                        "clientId": m.client_id,
                        "status": statuses.get(m.user_id, "online"),
                    }
                    for m in result.members
                ],
                "room": {
                    "private": bool(room and room.private),
                    "moderated": bool(room and room.moderated),
                    "inviteOnly": bool(room and room.invite_only),
                },
            },
        )

    def on_room_leave(
        self, connection: Connection, message: dict[str, Any], now_ms: int
    ) -> Step[None]:
        room_id: str = message["payload"]["roomId"]
        if room_id not in connection.rooms:
            raise Refused("not_found", f"not a member of room {room_id}", "ROOM-008")
        connection.rooms.discard(room_id)
        connection.joined_at.pop(room_id, None)
        notice = self._user_leave(room_id, connection, "left")
        yield from ask(lambda b: b.leave_room(room_id, connection.client_id, notice))
        yield self._respond(connection, message, {"roomId": room_id})
