"""Drive ServerCore without a network: every message it emits is checked against the schemas."""

from __future__ import annotations

import itertools
from typing import Any

from reference_server.auth import Principal
from reference_server.broker.memory import MemoryBroker
from reference_server.config import ServerConfig, parse_config
from reference_server.core.driver import run_step_sync
from reference_server.core.effects import Close, Send, Step
from reference_server.core.server import ServerCore
from rep_spec import MessageValidator, catalog

VALIDATOR = MessageValidator()
START_MS = 1_800_000_000_000


class SchemaViolation(AssertionError):
    pass


class Harness:
    def __init__(self, config: ServerConfig | dict[str, Any] | None = None, **core_kwargs: Any):
        if not isinstance(config, ServerConfig):
            config = parse_config(config)
        self.config = config
        self.broker = MemoryBroker()
        self.core = ServerCore(config, **core_kwargs)
        self.now = START_MS
        self._effects: list[Send | Close] = []
        self._ids = itertools.count(1)
        self.broker.on_publication(lambda pub: self._effects.extend(self.core.deliver(pub)))

    # -- running steps ----------------------------------------------------------
    def run(self, step: Step[Any]) -> Any:
        result = run_step_sync(step, self.broker, self._effects)
        for effect in self._effects:
            if isinstance(effect, Send):
                problem = VALIDATOR.check_server_message(effect.message)
                if problem is not None:
                    raise SchemaViolation(f"server sent an invalid message: {problem}: {effect}")
        return result

    def connect(
        self,
        user: str,
        roles: tuple[str, ...] = ("user",),
        permissions: tuple[str, ...] = (),
        expires_at: float | None = None,
    ) -> str:
        principal = Principal(
            user_id=user,
            roles=roles,
            permissions=catalog().permissions_of(roles) | frozenset(permissions),
            expires_at=expires_at,
            token_source="header",
        )
        client_id, step = self.core.connect(principal, self.now)
        self.run(step)
        (welcome,) = self.take(client_id)
        assert welcome["type"] == "auth"
        return client_id

    def envelope(self, message_type: str, payload: Any, **fields: Any) -> dict[str, Any]:
        message = {
            "id": fields.pop("id", f"m{next(self._ids)}"),
            "type": message_type,
            "timestamp": "2026-11-26T12:00:00Z",
            "payload": payload,
        }
        message.update(fields)
        return message

    def send(self, client_id: str, message_type: str, payload: Any, **fields: Any) -> str:
        message = self.envelope(message_type, payload, **fields)
        self.send_raw(client_id, message)
        return str(message["id"])

    def send_raw(self, client_id: str, message: Any) -> None:
        import orjson

        data = message if isinstance(message, str | bytes) else orjson.dumps(message)
        self.run(self.core.receive_text(client_id, data, self.now))

    def disconnect(self, client_id: str) -> None:
        self.run(self.core.disconnected(client_id))

    def tick(self, advance_ms: int = 0) -> None:
        self.now += advance_ms
        self.run(self.core.tick(self.now))

    # -- reading what happened ----------------------------------------------------
    def take(self, client_id: str) -> list[dict[str, Any]]:
        """Messages queued for ``client_id`` since the last take, in order."""
        mine = [e for e in self._effects if isinstance(e, Send) and e.client_id == client_id]
        self._effects = [e for e in self._effects if e not in mine]
        return [e.message for e in mine]

    def take_one(self, client_id: str) -> dict[str, Any]:
        messages = self.take(client_id)
        assert len(messages) == 1, f"expected exactly one message, got {messages}"
        return messages[0]

    def closes(self, client_id: str) -> list[Close]:
        mine = [e for e in self._effects if isinstance(e, Close) and e.client_id == client_id]
        self._effects = [e for e in self._effects if e not in mine]
        return mine

    def error_of(self, client_id: str) -> dict[str, Any]:
        message = self.take_one(client_id)
        assert message["type"] == "error", message
        return message
