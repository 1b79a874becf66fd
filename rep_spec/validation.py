"""Classify a client message (which error code, if any) and check a server message.

The order of checks is the one requirement ERR-011 fixes, so every implementation answers
the same malformed input with the same code: JSON, envelope, type, direction, version,
payload. Schema checking sits behind :class:`SchemaBackend` so a compiled validator can
replace ``jsonschema`` without touching the callers: when ``jsonschema-rs`` is installed,
:class:`JsonschemaRsBackend` answers "valid?" in about a microsecond and hands invalid
instances to ``jsonschema``, so every code, pointer and message stays the same.

Refusing a client message needs one reason; judging a server message (the conformance
kit) wants them all, so :meth:`MessageValidator.server_message_violations` lists every
violation, asking a backend's :meth:`~AllViolationsBackend.compile_all` check only for the
schemas whose fast check already said "invalid".
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
ViolationsCheck = Callable[[Any], list[Violation]]


class SchemaBackend(Protocol):
    def compile(self, uri: str) -> SchemaCheck: ...


class AllViolationsBackend(SchemaBackend, Protocol):
    """A backend that can also list every violation (:meth:`JsonschemaBackend.compile_all`).

    The list is only asked for after the ``compile`` check refused the instance, so it may
    be slow; a backend without ``compile_all`` reports that check's one violation.
    """

    def compile_all(self, uri: str) -> ViolationsCheck: ...


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


def _all_violations(
    errors: Iterable[ValidationError], default_requirement: str | None
) -> list[Violation]:
    """Every violation in ``errors``, one per fault an implementer would fix.

    * A ``required`` error becomes one violation per missing member, pointing at the
      member (``/userId``). jsonschema already yields one error per member without naming
      it, so the first error of an object's ``required`` keyword lists all of them and its
      siblings are skipped.
    * ``additionalProperties: false`` likewise becomes one violation per unexpected member.
    * An ``anyOf``/``oneOf`` failure is one violation: ``best_match`` within that error
      picks the most relevant fault of the closest branch (expanded as above when it is a
      ``required`` or ``additionalProperties`` error); when no branch stands out, the
      combinator's own message is kept. Listing every branch's errors would mostly name
      faults of branches the sender never meant.
    * Several keywords of one schema object refusing the same value (a timestamp that is
      neither a ``date-time`` nor matches the ``pattern``) are one violation: the first in
      schema order, as ``best_match`` would pick. Other schemas that apply to the value
      (the server envelope's ``const`` over the envelope's ``enum``) are listed too.
    * Keywords that only combine (``allOf``, ``$ref``, ``if``/``then``) already report the
      leaves. Identical (pointer, message) pairs are listed once.

    A violation's requirement is its schema's ``x-requirement``, else ``default_requirement``.
    """
    found: dict[tuple[str, str], Violation] = {}
    seen: set[tuple[tuple[str | int, ...], tuple[str | int, ...]]] = set()
    for top in errors:
        error = best_match([top]) if top.context else top
        if error is None:  # best_match of one error is that error or one below it
            continue
        path = list(error.absolute_path)
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        requirement = schema.get("x-requirement") or default_requirement
        instance = error.instance
        located: list[tuple[list[str | int], str]] = []
        members = error.validator in ("required", "additionalProperties")
        # Member faults are grouped per keyword, value faults per schema object.
        schema_path = tuple(error.absolute_schema_path)
        key = (tuple(path), schema_path if members else schema_path[:-1])
        if key in seen:
            continue
        seen.add(key)
        if members and isinstance(instance, Mapping):
            if error.validator == "required":
                located = [
                    ([*path, name], f"{name!r} is a required property")
                    for name in schema.get("required", [])
                    if name not in instance
                ]
            else:
                located = [
                    ([*path, name], _unexpected(name, schema))
                    for name in _extra_members(instance, schema)
                ]
        if not located:
            located = [(path, error.message)]
        for parts, message in located:
            violation = Violation(_pointer(parts), _shorten(message), requirement)
            found.setdefault((violation.pointer, violation.message), violation)
    return list(found.values())


def _extra_members(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """The members ``additionalProperties`` judges, as jsonschema finds them."""
    known = schema.get("properties", {})
    patterns = "|".join(schema.get("patternProperties", {}))
    return [
        name
        for name in instance
        if name not in known and not (patterns and re.search(patterns, name))
    ]


def _unexpected(name: str, schema: Mapping[str, Any]) -> str:
    if "patternProperties" in schema:
        patterns = ", ".join(repr(each) for each in sorted(schema["patternProperties"]))
        return f"{name!r} does not match any of the regexes: {patterns}"
    return f"Additional properties are not allowed ({name!r} was unexpected)"


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

    def _validator(self, uri: str) -> tuple[Any, str | None]:
        """The validator for the schema at ``uri`` and the requirement its root names."""
        validator = EcmaValidator(
            {"$ref": uri},
            registry=self._registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        root = self._registry.resolver().lookup(uri).contents
        default_requirement = root.get("x-requirement") if isinstance(root, Mapping) else None
        return validator, default_requirement

    def compile(self, uri: str) -> SchemaCheck:
        validator, default_requirement = self._validator(uri)

        def check(instance: Any) -> Violation | None:
            error = best_match(validator.iter_errors(instance))
            if error is None:
                return None
            found = _violation(error)
            if found.requirement is None and default_requirement is not None:
                return Violation(found.pointer, found.message, default_requirement)
            return found

        return check

    def compile_all(self, uri: str) -> ViolationsCheck:
        """Every violation of the schema at ``uri`` (see :func:`_all_violations`)."""
        validator, default_requirement = self._validator(uri)

        def check_all(instance: Any) -> list[Violation]:
            return _all_violations(validator.iter_errors(instance), default_requirement)

        return check_all


def _no_violations(instance: Any) -> list[Violation]:
    return []


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

    def compile_all(self, uri: str) -> ViolationsCheck:
        """jsonschema's list: callers ask for it only when :meth:`compile`'s check refused."""
        return self._fallback.compile_all(uri)


def default_backend() -> SchemaBackend:
    """The compiled pre-check when ``jsonschema-rs`` is installed, else plain ``jsonschema``."""
    return JsonschemaRsBackend() if _compiled_module() is not None else JsonschemaBackend()


def correlation_id_of(message: object) -> str | None:
    """The id to correlate an answer with, when the message has a readable one (ERR-003)."""
    if type(message) is dict or isinstance(message, Mapping):  # the first test is the cheap one
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
        self._payload_uris: dict[tuple[str, Sender], str] = {}
        for message_type in self.catalog.types.values():
            for sender in ("client", "server"):
                relative = message_type.payload_schema(sender)
                if relative is not None:
                    uri = schema_uri(relative)
                    self._payload_uris[(message_type.name, sender)] = uri
                    self._payloads[(message_type.name, sender)] = backend.compile(uri)
        self._all_checks: dict[str, ViolationsCheck] = {}

    def check_client_message(self, message: Any) -> Problem | None:
        """Return why a server must refuse this decoded client message, or None if valid."""
        return self._check(message, "client")

    def check_server_message(self, message: Any) -> Problem | None:
        """Return what is wrong with a message a server sent, or None (ENV-013)."""
        return self._check(message, "server")

    def server_message_violations(self, message: Any) -> list[Violation]:
        """Every reason a message a server sent breaks the schemas; empty when it is valid.

        Unlike :meth:`check_server_message`, which stops at the first fault (the order
        ERR-011 fixes), this lists the envelope's violations and, when the type is a known
        server type and the payload an object, the payload's too, with pointers from the
        message root (``/payload/userId``). An unknown type (MSG-001), a client-only type
        (MSG-002) or an unsupported major version (VER-002) is one more violation; the
        payload is not judged then. Requirements are attributed as in
        :meth:`check_server_message`: the schema's ``x-requirement``, else the schema
        root's, else ENV-001 for the envelope and ENV-005 for the payload.

        A valid message costs what :meth:`check_server_message` costs (one compiled check
        per schema with ``jsonschema-rs``); the full list is only computed for a schema
        whose fast check refused the instance.
        """
        return self._violations(message, "server")

    def check_payload(self, type_name: str, sender: Sender, payload: Any) -> Violation | None:
        return self._payloads[(type_name, sender)](payload)

    def check_http_body(self, name: str, body: Any) -> Violation | None:
        """Check an HTTP request or response body against ``schemas/http/<name>.schema.json``."""
        return self._http[name](body)

    def _all(self, uri: str, first: SchemaCheck, instance: Any) -> list[Violation]:
        """Every violation of ``instance``; ``first`` (the fast check) decides validity."""
        violation = first(instance)
        if violation is None:
            return []
        check_all = self._all_checks.get(uri)
        if check_all is None:
            compile_all = getattr(self.backend, "compile_all", None)
            # A backend without a list reports its one violation (the fallback below).
            check_all = compile_all(uri) if compile_all is not None else _no_violations
            self._all_checks[uri] = check_all
        # The fast check refused it, so a correct backend finds at least that violation.
        return check_all(instance) or [violation]

    def _violations(self, message: Any, sender: Sender) -> list[Violation]:
        if not isinstance(message, dict):
            return [Violation("", "A message must be a JSON object", "ERR-007")]
        envelope_uri = schema_uri(CLIENT_ENVELOPE if sender == "client" else SERVER_ENVELOPE)
        found = [
            Violation(v.pointer, v.message, v.requirement or "ENV-001")
            for v in self._all(envelope_uri, self._envelope[sender], message)
        ]
        faulty = {v.pointer for v in found}
        type_name = message.get("type")
        if not isinstance(type_name, str) or "/type" in faulty:
            return found
        message_type: MessageType | None = self.catalog.types.get(type_name)
        if message_type is None:
            return [*found, Violation("/type", f"Unknown message type {type_name!r}", "MSG-001")]
        if not message_type.sendable_by(sender):
            text = f"{message_type.name} may not be sent by a {sender}"
            return [*found, Violation("/type", text, "MSG-002")]
        metadata = message.get("metadata")
        version = metadata.get("version") if isinstance(metadata, dict) else None
        if (
            isinstance(version, str)
            and "/metadata/version" not in faulty
            and re.fullmatch(r"[0-9]+\.[0-9]+", version)
            and int(version.split(".")[0]) != self.catalog.major_version
        ):
            text = (
                f"Version {version} is not supported; "
                f"this peer speaks {self.catalog.protocol_version}"
            )
            return [*found, Violation("/metadata/version", text, "VER-002")]
        payload = message.get("payload")
        if isinstance(payload, dict):
            key = (message_type.name, sender)
            found += [
                Violation("/payload" + v.pointer, v.message, v.requirement or PAYLOAD_REQUIREMENT)
                for v in self._all(self._payload_uris[key], self._payloads[key], payload)
            ]
        return found

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
