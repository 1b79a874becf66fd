"""The message-type, error-code, close-code and role registries, read from ``schemas/``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Literal

from rep_spec.schema_files import load_json

Direction = Literal["client_to_server", "server_to_client", "both"]
Sender = Literal["client", "server"]


@dataclass(frozen=True)
class MessageType:
    name: str
    group: str
    direction: Direction
    feature: str
    client_payload: str | None
    server_payload: str | None
    answer_kind: Literal["response", "copy"] | None
    answer_type: str | None

    def sendable_by(self, sender: Sender) -> bool:
        return (self.client_payload if sender == "client" else self.server_payload) is not None

    def payload_schema(self, sender: Sender) -> str | None:
        return self.client_payload if sender == "client" else self.server_payload


@dataclass(frozen=True)
class ErrorCode:
    code: str
    retryable: bool
    http_status: int
    meaning: str


@dataclass(frozen=True)
class CloseCode:
    code: int
    name: str
    meaning: str
    #: What a client does after this close when it did not ask for it: backoff, never,
    #: new_token (CLIENT-012).
    client_reconnect: str = "backoff"


@dataclass(frozen=True)
class Catalog:
    protocol_version: str
    features: Mapping[str, str]
    types: Mapping[str, MessageType]
    error_codes: Mapping[str, ErrorCode]
    close_codes: Mapping[str, CloseCode]
    roles: Mapping[str, frozenset[str]]
    permissions: Mapping[str, str]

    @property
    def major_version(self) -> int:
        return int(self.protocol_version.split(".")[0])

    def types_for(self, sender: Sender) -> list[MessageType]:
        return [t for t in self.types.values() if t.sendable_by(sender)]

    def error_code(self, code: str) -> ErrorCode:
        return self.error_codes[code]

    def close_code(self, name: str) -> int:
        return self.close_codes[name].code

    def permissions_of(self, roles: Iterable[str]) -> frozenset[str]:
        granted: set[str] = set()
        for role in roles:
            granted |= self.roles.get(role, frozenset())
        return frozenset(granted)


def _resolve_roles(table: Mapping[str, Mapping[str, list[str]]]) -> dict[str, frozenset[str]]:
    resolved: dict[str, frozenset[str]] = {}

    def resolve(name: str, seen: tuple[str, ...]) -> frozenset[str]:
        if name in resolved:
            return resolved[name]
        if name in seen:
            raise ValueError(f"role inheritance cycle through {name!r}")
        entry = table[name]
        perms = set(entry["permissions"])
        for parent in entry["inherits"]:
            perms |= resolve(parent, (*seen, name))
        resolved[name] = frozenset(perms)
        return resolved[name]

    for role in table:
        resolve(role, ())
    return resolved


@cache
def catalog() -> Catalog:
    messages = load_json("messages.json")
    types = {}
    for entry in messages["types"]:
        answer = entry.get("answer") or {}
        types[entry["type"]] = MessageType(
            name=entry["type"],
            group=entry["group"],
            direction=entry["direction"],
            feature=entry["feature"],
            client_payload=entry["payload"]["client"],
            server_payload=entry["payload"]["server"],
            answer_kind=answer.get("kind"),
            answer_type=answer.get("type"),
        )
    errors = {
        e["code"]: ErrorCode(e["code"], e["retryable"], e["httpStatus"], e["meaning"])
        for e in load_json("error-codes.json")["codes"]
    }
    closes = {
        c["name"]: CloseCode(c["code"], c["name"], c["meaning"], c["clientReconnect"])
        for c in load_json("close-codes.json")["codes"]
    }
    roles_doc = load_json("roles.json")
    return Catalog(
        protocol_version=messages["protocolVersion"],
        features=messages["features"],
        types=types,
        error_codes=errors,
        close_codes=closes,
        roles=_resolve_roles(roles_doc["roles"]),
        permissions=roles_doc["permissions"],
    )
