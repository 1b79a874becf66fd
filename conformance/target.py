"""The target file: which server to check and how, validated by ``target.schema.json``.

Loading never touches the network. Defaults live in the schema (``default`` keywords) and
are applied here, so the schema stays the one description of the format.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from conformance.redact import remember
from rep_spec import requirements

SCHEMA_PATH = Path(__file__).with_name("target.schema.json")


class TargetError(ValueError):
    """The target file is unreadable, invalid, or refers to something that does not exist."""


@dataclass(frozen=True)
class Node:
    """One server node: its WebSocket endpoint and HTTP base."""

    ws_url: str
    http_url: str
    sse_url: str | None = None


@dataclass(frozen=True)
class JwtTokens:
    #: Never in a repr (tracebacks show locals), and registered for redaction on load.
    secret: str = field(repr=False)
    algorithm: str
    accepted_algorithms: tuple[str, ...]


@dataclass(frozen=True)
class CommandTokens:
    command: str


@dataclass(frozen=True)
class Timeouts:
    answer: float
    silence: float
    connect: float
    heartbeat_tolerance: float


@dataclass(frozen=True)
class Budgets:
    max_heartbeat_wait: float
    max_rate_wait: float
    max_rate_messages: int
    max_expiry_wait: float


@dataclass(frozen=True)
class PasswordRoom:
    id: str
    password: str


@dataclass(frozen=True)
class InviteOnlyRoom:
    id: str
    invited_user: str | None = None


@dataclass(frozen=True)
class Fixtures:
    private_room: str | None = None
    password_room: PasswordRoom | None = None
    moderated_room: str | None = None
    invite_only_room: InviteOnlyRoom | None = None
    stream: str | None = None
    allowed_origin: str | None = None


@dataclass(frozen=True)
class LoadSettings:
    """The load profile's size, time bound and thresholds (``load`` in the target file)."""

    connections: int = 100
    messages: int = 1000
    senders: int = 10
    hold: float = 1.0
    max_duration: float = 60.0
    min_messages_per_second: float = 100.0
    max_p95_latency_ms: float | None = None
    max_p99_latency_ms: float | None = None


@dataclass(frozen=True)
class BaselineEntry:
    """An accepted failure: one check (``test``) or every failure of one ``requirement``."""

    reason: str
    test: str | None = None
    requirement: str | None = None

    @property
    def key(self) -> str:
        return f"test {self.test}" if self.test else f"requirement {self.requirement}"


@dataclass(frozen=True)
class Target:
    node: Node
    tokens: JwtTokens | CommandTokens
    timeouts: Timeouts
    budgets: Budgets
    fixtures: Fixtures = Fixtures()
    name: str = "REP server"
    other_nodes: tuple[Node, ...] = ()
    claimed_features: frozenset[str] | None = None
    baseline: tuple[BaselineEntry, ...] = ()
    source: Path | None = field(default=None, compare=False)
    load: LoadSettings = LoadSettings()

    def describe(self) -> dict[str, Any]:
        """The parts of the target a report may show (never the token secret)."""
        return {
            "name": self.name,
            "ws_url": self.node.ws_url,
            "http_url": self.node.http_url,
            "sse_url": self.node.sse_url,
            "other_nodes": [n.ws_url for n in self.other_nodes],
            "claimed_features": sorted(self.claimed_features)
            if self.claimed_features is not None
            else None,
            "tokens": "jwt" if isinstance(self.tokens, JwtTokens) else "command",
            "source": str(self.source) if self.source else None,
        }


@cache
def target_schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def _defaults(section: str) -> dict[str, Any]:
    properties = target_schema()["properties"][section]["properties"]
    return {name: spec["default"] for name, spec in properties.items() if "default" in spec}


def http_base_of(ws_url: str) -> str:
    """``ws://host:port/ws`` -> ``http://host:port``: the HTTP endpoints share the port."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, "", "", ""))


def _node(raw: Mapping[str, Any]) -> Node:
    ws_url = str(raw["ws_url"])
    http_url = str(raw.get("http_url") or http_base_of(ws_url)).rstrip("/")
    return Node(ws_url=ws_url, http_url=http_url, sse_url=raw.get("sse_url"))


def _tokens(raw: Mapping[str, Any]) -> JwtTokens | CommandTokens:
    if "command" in raw:
        return CommandTokens(command=str(raw["command"]))
    jwt_raw = raw["jwt"]
    secret = jwt_raw.get("secret")
    if secret is None:
        variable = jwt_raw["secret_env"]
        secret = os.environ.get(variable)
        if not secret:
            raise TargetError(f"tokens.jwt.secret_env names {variable}, which is not set")
    default_algorithm = target_schema()["properties"]["tokens"]["properties"]["jwt"]["properties"][
        "algorithm"
    ]["default"]
    algorithm = str(jwt_raw.get("algorithm", default_algorithm))
    accepted = tuple(jwt_raw.get("accepted_algorithms", [algorithm]))
    remember(str(secret), "JWT secret")
    return JwtTokens(secret=str(secret), algorithm=algorithm, accepted_algorithms=accepted)


def _fixtures(raw: Mapping[str, Any]) -> Fixtures:
    password = raw.get("password_room")
    invite = raw.get("invite_only_room")
    return Fixtures(
        private_room=raw.get("private_room"),
        password_room=PasswordRoom(password["id"], password["password"]) if password else None,
        moderated_room=raw.get("moderated_room"),
        invite_only_room=InviteOnlyRoom(invite["id"], invite.get("invited_user"))
        if invite
        else None,
        stream=raw.get("stream"),
        allowed_origin=raw.get("allowed_origin"),
    )


def _baseline(raw: list[Mapping[str, Any]]) -> tuple[BaselineEntry, ...]:
    known = requirements()
    entries = []
    for item in raw:
        requirement = item.get("requirement")
        if requirement is not None and requirement not in known:
            raise TargetError(f"baseline names unknown requirement {requirement}")
        entries.append(
            BaselineEntry(
                reason=str(item["reason"]), test=item.get("test"), requirement=requirement
            )
        )
    return tuple(entries)


def parse_target(raw: Any, source: Path | None = None) -> Target:
    """Validate a decoded target file against the schema and build a :class:`Target`."""
    where = f"{source}: " if source else ""
    error = best_match(Draft202012Validator(target_schema()).iter_errors(raw))
    if error is not None:
        path = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise TargetError(f"{where}invalid target file at {path}: {error.message}")
    features = raw.get("features")
    return Target(
        name=str(raw.get("name", "REP server")),
        node=_node(raw),
        other_nodes=tuple(_node(n) for n in raw.get("nodes", ())),
        tokens=_tokens(raw["tokens"]),
        claimed_features=frozenset(features) if features is not None else None,
        timeouts=Timeouts(**{**_defaults("timeouts"), **raw.get("timeouts", {})}),
        budgets=Budgets(**{**_defaults("budgets"), **raw.get("budgets", {})}),
        fixtures=_fixtures(raw.get("fixtures", {})),
        baseline=_baseline(raw.get("baseline", [])),
        load=LoadSettings(**{**_defaults("load"), **raw.get("load", {})}),
        source=source,
    )


def load_target(path: str | Path) -> Target:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TargetError(f"cannot read target file {path}: {exc}") from exc
    return parse_target(raw, source=path)
