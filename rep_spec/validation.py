"""Classify a client message (which error code, if any) and check a server message.

The order of checks is the one requirement ERR-011 fixes, so every implementation answers
the same malformed input with the same code: JSON, envelope, type, direction, version,
payload. Schema checking sits behind :class:`SchemaBackend` so a compiled validator can
replace ``jsonschema`` without touching the callers: when ``jsonschema-rs`` is installed,
:class:`JsonschemaRsBackend` answers "valid?" in about a microsecond and hands invalid
instances to ``jsonschema``, so every code, pointer and message stays the same.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

import orjson
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry

from rep_spec.catalog import Catalog, MessageType, Sender, catalog
from rep_spec.schema_files import schema_dir, schema_paths, schema_registry, schema_uri

CLIENT_ENVELOPE = "client-envelope.schema.json"
SERVER_ENVELOPE = "server-envelope.schema.json"
PAYLOAD_REQUIREMENT = "ENV-005"


@dataclass(frozen=True)
class Violation:
    """One schema violation, located in the checked instance."""

    pointer: str
    message: str
    requirement: str | None


@dataclass(frozen=True)
class Problem:
    """Why a message is refused: the registered error code and where the fault lies."""

    code: str
    message: str
    pointer: str | None = None
    requirement: str | None = None
    correlation_id: str | None = None

    def details(self) -> dict[str, str]:
        found = {"pointer": self.pointer, "requirement": self.requirement}
        return {k: v for k, v in found.items() if v is not None}


SchemaCheck = Callable[[Any], Violation | None]


class SchemaBackend(Protocol):
    def compile(self, uri: str) -> SchemaCheck: ...


def _pointer(parts: Iterable[str | int]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _violation(error: ValidationError) -> Violation:
    path = list(error.absolute_path)
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    instance = error.instance
    # Point at the member that is missing or unexpected, not at the object holding it.
    if error.validator == "required" and isinstance(instance, Mapping):
        required: list[str] = list(schema.get("required", []))
        missing = [name for name in required if name not in instance]
        if missing:
            path.append(missing[0])
    elif error.validator == "additionalProperties" and isinstance(instance, Mapping):
        known = schema.get("properties", {})
        extra = sorted(name for name in instance if name not in known)
        if extra:
            path.append(extra[0])
    requirement = schema.get("x-requirement")
    return Violation(_pointer(path), _shorten(error.message), requirement)


def _shorten(text: str, limit: int = 300) -> str:
    """Schema messages quote the instance; keep error payloads small whatever was sent."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


@functools.cache
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    """Python's ``$`` also matches before a final newline; ECMA-262's (JSON Schema's) does not.

    Our schemas anchor with a trailing ``$`` only, so ending the pattern with ``\\Z`` instead
    gives Python the standard meaning: ``"ping\\n"`` is not a valid type name.
    """
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _ecma_pattern(
    validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


EcmaValidator = validators.extend(  # type: ignore[no-untyped-call]  # untyped in jsonschema
    Draft202012Validator, {"pattern": _ecma_pattern}
)


class JsonschemaBackend:
    """The reference backend: ``jsonschema`` with format checking on (date-time, uri, ...)."""

    def __init__(self, registry: Registry | None = None) -> None:
        self._registry = registry if registry is not None else schema_registry(keep_dialect=False)

    def compile(self, uri: str) -> SchemaCheck:
        validator = EcmaValidator(
            {"$ref": uri},
            registry=self._registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        root = self._registry.resolver().lookup(uri).contents
        default_requirement = root.get("x-requirement") if isinstance(root, Mapping) else None

        def check(instance: Any) -> Violation | None:
            error = best_match(validator.iter_errors(instance))
            if error is None:
                return None
            found = _violation(error)
            if found.requirement is None and default_requirement is not None:
                return Violation(found.pointer, found.message, default_requirement)
            return found

        return check


def _compiled_module() -> ModuleType | None:
    try:
        return importlib.import_module("jsonschema_rs")
    except ImportError:
        return None


class JsonschemaRsBackend:
    """``jsonschema-rs`` as a fast "is it valid?" pre-check in front of ``jsonschema``.

    A valid instance costs one compiled check. An instance the compiled validator refuses,
    or cannot take at all, goes to :class:`JsonschemaBackend`, which has the last word and
    writes the details, so verdicts, pointers and messages are exactly the reference
    backend's (tests/test_bench_backend_agreement.py runs every vector through both). A
    compiled validator stricter than ``jsonschema`` costs time, never a different answer;
    only a laxer one could change behaviour, which is what the agreement test guards.
    """

    def __init__(self, registry: Registry | None = None) -> None:
        module = _compiled_module()
        if module is None:
            raise ImportError("JsonschemaRsBackend needs the jsonschema-rs package")
        self._module = module
        self._fallback = JsonschemaBackend(registry)
        resources = []
        for path in schema_paths():
            contents = json.loads(path.read_text(encoding="utf-8"))
            resources.append((contents["$id"], contents))
        self._registry = module.Registry(resources)

    def precheck(self, uri: str) -> Callable[[Any], bool]:
        """The compiled validator's bare verdict for the schema at ``uri``."""
        validator = self._module.Draft202012Validator(
            {"$ref": uri}, validate_formats=True, registry=self._registry
        )
        is_valid: Callable[[Any], bool] = validator.is_valid
        return is_valid

    def compile(self, uri: str) -> SchemaCheck:
        slow = self._fallback.compile(uri)
        is_valid = self.precheck(uri)

        def check(instance: Any) -> Violation | None:
            try:
                if is_valid(instance):
                    return None
            except (ValueError, TypeError, OverflowError):
                pass  # not representable for the compiled validator: jsonschema decides
            return slow(instance)

        return check


def default_backend() -> SchemaBackend:
    """The compiled pre-check when ``jsonschema-rs`` is installed, else plain ``jsonschema``."""
    return JsonschemaRsBackend() if _compiled_module() is not None else JsonschemaBackend()


def correlation_id_of(message: object) -> str | None:
    """The id to correlate an answer with, when the message has a readable one (ERR-003)."""
    if isinstance(message, Mapping):
        candidate = message.get("id")
        if isinstance(candidate, str) and 1 <= len(candidate) <= 128:
            return candidate
    return None


def decode_text_frame(data: str | bytes) -> tuple[Any, Problem | None]:
    """Parse one frame; anything but a JSON object is ``invalid_json`` (ERR-007)."""
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return None, Problem(
            "invalid_json", f"Frame is not valid JSON: {exc}", requirement="ERR-007"
        )
    if not isinstance(message, dict):
        return message, Problem(
            "invalid_json", "Frame must hold a JSON object", pointer="", requirement="ERR-007"
        )
    return message, None


class MessageValidator:
    """Compiled checks for every envelope and payload schema, dispatched on ``type``."""

    def __init__(self, backend: SchemaBackend | None = None, spec: Catalog | None = None) -> None:
        self.catalog = spec if spec is not None else catalog()
        backend = backend if backend is not None else default_backend()
        self.backend = backend
        self._envelope = {
            "client": backend.compile(schema_uri(CLIENT_ENVELOPE)),
            "server": backend.compile(schema_uri(SERVER_ENVELOPE)),
        }
        self._http = {
            path.name.removesuffix(".schema.json"): backend.compile(schema_uri(f"http/{path.name}"))
            for path in sorted((schema_dir() / "http").glob("*.schema.json"))
        }
        self._payloads: dict[tuple[str, Sender], SchemaCheck] = {}
        for message_type in self.catalog.types.values():
            for sender in ("client", "server"):
                relative = message_type.payload_schema(sender)
                if relative is not None:
                    self._payloads[(message_type.name, sender)] = backend.compile(
                        schema_uri(relative)
                    )

    def check_client_message(self, message: Any) -> Problem | None:
        """Return why a server must refuse this decoded client message, or None if valid."""
        return self._check(message, "client")

    def check_server_message(self, message: Any) -> Problem | None:
        """Return what is wrong with a message a server sent, or None (ENV-013)."""
        return self._check(message, "server")

    def check_payload(self, type_name: str, sender: Sender, payload: Any) -> Violation | None:
        return self._payloads[(type_name, sender)](payload)

    def check_http_body(self, name: str, body: Any) -> Violation | None:
        """Check an HTTP request or response body against ``schemas/http/<name>.schema.json``."""
        return self._http[name](body)

    def _check(self, message: Any, sender: Sender) -> Problem | None:
        correlation = correlation_id_of(message)
        if not isinstance(message, dict):
            return Problem(
                "invalid_json", "A message must be a JSON object", "", "ERR-007", correlation
            )
        envelope_violation = self._envelope[sender](message)
        if envelope_violation is not None:
            return Problem(
                "invalid_envelope",
                f"Invalid message format: {envelope_violation.message}",
                envelope_violation.pointer,
                envelope_violation.requirement or "ENV-001",
                correlation,
            )
        message_type: MessageType | None = self.catalog.types.get(message["type"])
        if message_type is None:
            return Problem(
                "unknown_type",
                f"Unknown message type {message['type']!r}",
                "/type",
                "MSG-001",
                correlation,
            )
        if not message_type.sendable_by(sender):
            return Problem(
                "invalid_direction",
                f"{message_type.name} may not be sent by a {sender}",
                "/type",
                "MSG-002",
                correlation,
            )
        version = (message.get("metadata") or {}).get("version")
        if isinstance(version, str) and int(version.split(".")[0]) != self.catalog.major_version:
            return Problem(
                "unsupported_version",
                f"Version {version} is not supported; "
                f"this peer speaks {self.catalog.protocol_version}",
                "/metadata/version",
                "VER-002",
                correlation,
            )
        payload_violation = self._payloads[(message_type.name, sender)](message["payload"])
        if payload_violation is not None:
            return Problem(
                "invalid_payload",
                f"Invalid {message_type.name} payload: {payload_violation.message}",
                "/payload" + payload_violation.pointer,
                payload_violation.requirement or PAYLOAD_REQUIREMENT,
                correlation,
            )
        return None
