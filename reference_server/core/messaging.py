"""Chat, presence and notifications: what clients say to rooms and to everyone."""

from __future__ import annotations

from typing import Any

from reference_server.broker.base import (
    Publication,
)
from reference_server.core.base import (
    BROADCAST_TOPIC,
    DIRECT_TOPIC,
    CoreBase,
    Refused,
    room_members_call,
    room_topic,
)
from reference_server.core.connection import Connection
from reference_server.core.effects import Publish, Step, ask
from reference_server.core.policy import refused_attachment_host, sanitize_chat_content


class MessagingHandlers(CoreBase):
    def on_chat_message(
        self, connection: Connection, message: dict[str, Any], now_ms: int
    ) -> Step[None]:
        payload = message["payload"]
        for index, attachment in enumerate(payload.get("metadata", {}).get("attachments", ())):
            reason = refused_attachment_host(attachment["url"])
            if reason is not None:
                raise Refused(
                    "invalid_payload",
                    f"attachment {index} URL refused: {reason}",
                    "CHAT-004",
                )
        self._require(connection, "message:send", "CHAT-005")
        room_id: str = payload["roomId"]
        if room_id not in connection.rooms:
            raise Refused("forbidden", f"not a member of room {room_id}", "CHAT-001")
        room = self.config.room(room_id)
        if room is not None and room.moderated:
            self._require(connection, "room:moderate", "CHAT-005")
        copy_payload = {
            **payload,
            "content": sanitize_chat_content(payload["content"]),
            "type": payload.get("type", "text"),
        }
        yield Publish(
            Publication(room_topic(room_id), self._copy(connection, message, copy_payload))
        )

    def on_status_update(
        self, connection: Connection, message: dict[str, Any], now_ms: int
    ) -> Step[None]:
        status: str = message["payload"]["status"]
        yield from ask(lambda b: b.set_status(connection.user_id, status))
        recipients = {connection.client_id}
        for room_id in sorted(connection.rooms):
            members = yield from ask(room_members_call(room_id))
            recipients.update(m.client_id for m in members)
        yield Publish(
            Publication(
                DIRECT_TOPIC,
                self._copy(connection, message, message["payload"]),
                recipients=frozenset(recipients),
            )
        )

    def on_notification(
        self, connection: Connection, message: dict[str, Any], now_ms: int
    ) -> Step[None]:
        payload = message["payload"]
        copy = self._copy(connection, message, payload)
        room_id = payload.get("roomId")
        if room_id is None:
            self._require(connection, "message:broadcast", "NOTIF-001")
            yield Publish(Publication(BROADCAST_TOPIC, copy))
            return
        self._require(connection, "message:announce", "NOTIF-002")
        members = yield from ask(lambda b: b.room_members(room_id))
        if not members and self.config.room(room_id) is None:
            raise Refused("not_found", f"no room {room_id}", "NOTIF-003")
        recipients = frozenset({connection.client_id, *(m.client_id for m in members)})
        yield Publish(Publication(DIRECT_TOPIC, copy, recipients=recipients))
