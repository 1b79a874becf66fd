"""``rep-conformance init``: write a first target file from what a running server says.

It connects once (:func:`conformance.harness.probe_profile`, the probe every run starts
with), reads the welcome, and writes a target file that the kit accepts as it is: the
URLs, a token source, the features the welcome advertises, the limits it advertises (as
comments, measured against the kit's budgets), and every other member commented out with
its default or with what the server must be configured with. Defaults and the list of
fixtures come from ``target.schema.json``, so the file follows the schema as it changes.

The secret given with ``--secret`` is not written: the file names an environment variable
(``secret_env``) unless ``--secret-inline`` asks otherwise. A single ``--token`` lets the
kit read the welcome but not mint tokens for its test users, so the file gets a
placeholder ``tokens.command`` to replace.

Exit status: 0 written, 3 the server cannot be reached or refuses the token, 4 usage
error (a bad option, an existing file without ``--force``, an unset ``--secret-env``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from websockets.exceptions import WebSocketException

from conformance.harness import probe_profile
from conformance.profile import ServerProfile, known_features
from conformance.redact import redact, remember
from conformance.target import TargetError, http_base_of, parse_target, target_schema
from conformance.tokens import TokenUnavailable, token_source

EXIT_WRITTEN = 0
EXIT_UNREACHABLE = 3
EXIT_USAGE = 4

DEFAULT_OUTPUT = Path("target.yaml")
#: The variable the file names when the secret was given with ``--secret``.
SECRET_VARIABLE = "REP_JWT_SECRET"
#: A command that does not exist: a run stops on it (exit 4) naming it, until replaced.
PLACEHOLDER_COMMAND = (
    "replace-with-a-command-that-prints-a-token "
    "--user {user} --roles {roles} --permissions {permissions} --ttl {ttl}"
)

#: Per fixture: an example value and what the server must be configured with. A fixture
#: the schema adds later still gets a line, from its schema description.
FIXTURE_NOTES: dict[str, tuple[str, str]] = {
    "private_room": ("ROOM_ID", "a private room: joining it needs room:join_private"),
    "password_room": (
        "{id: ROOM_ID, password: PASSWORD}",
        "a room that admits whoever gives this password",
    ),
    "moderated_room": ("ROOM_ID", "a moderated room: sending to it needs room:moderate"),
    "invite_only_room": (
        "{id: ROOM_ID, invited_user: USER_ID}",
        "an invite-only room and a user on its invitation list",
    ),
    "stream": ("STREAM_ID", "a configured event stream (stream_subscribe, SSE, HTTP publish)"),
    "allowed_origin": (
        "https://app.example.com",
        "an Origin on the server's allow-list (cookie tokens, CORS)",
    ),
}

#: Comments for the timeouts the schema does not describe.
TIMEOUT_NOTES = {
    "answer": "to wait for an answer the spec requires",
    "connect": "to open a connection",
}


class InitError(Exception):
    """Why ``init`` wrote nothing, with its exit status."""

    def __init__(self, message: str, exit_status: int) -> None:
        super().__init__(message)
        self.exit_status = exit_status


class FixedToken:
    """The one token given with ``--token``: enough to read the welcome, nothing more."""

    def __init__(self, token: str) -> None:
        self.token = token
        remember(token)

    def mint(
        self,
        user: str,
        roles: Sequence[str],
        permissions: Sequence[str] = (),
        ttl: int = 3600,
    ) -> str:
        return self.token

    def sign(
        self, claims: Mapping[str, Any], *, algorithm: str | None = None, secret: str | None = None
    ) -> str:
        raise TokenUnavailable("a single token cannot sign claims")

    def refused_algorithms(self) -> list[str]:
        raise TokenUnavailable("a single token cannot probe the algorithm allow-list")


# -- arguments ------------------------------------------------------------------------------


def _jwt_schema() -> dict[str, Any]:
    found: dict[str, Any] = target_schema()["properties"]["tokens"]["properties"]["jwt"]
    return found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        required=True,
        metavar="WS_URL",
        help="the server's WebSocket URL, ws://HOST:PORT/ws",
    )
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--secret-env",
        metavar="VAR",
        help="the environment variable holding the server's JWT secret (written to the file)",
    )
    how.add_argument(
        "--secret",
        help=f"the server's JWT secret; the file names ${SECRET_VARIABLE} instead "
        "(unless --secret-inline)",
    )
    how.add_argument(
        "--token",
        help="one token the server accepts: enough to read the welcome; the file then needs "
        "a token command",
    )
    algorithm = _jwt_schema()["properties"]["algorithm"]
    parser.add_argument(
        "--algorithm",
        choices=algorithm["enum"],
        help="with --secret or --secret-env: the signing algorithm "
        f"(default {algorithm['default']})",
    )
    parser.add_argument(
        "--secret-inline",
        action="store_true",
        help="with --secret: write the secret itself into the file (keep the file private)",
    )
    parser.add_argument("--name", help="a label for reports (default: the server's address)")
    parser.add_argument(
        "--output",
        "-o",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"the file to write (default: {DEFAULT_OUTPUT})",
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")


def _check_arguments(args: argparse.Namespace) -> None:
    parts = urlsplit(args.url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        hint = ""
        if parts.scheme in ("http", "https") and parts.netloc:
            hint = (
                f" (did you mean {'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}/ws?)"
            )
        raise InitError(f"--url must be a ws:// or wss:// URL, not {args.url!r}{hint}", EXIT_USAGE)
    if args.secret_inline and args.secret is None:
        raise InitError("--secret-inline needs --secret", EXIT_USAGE)
    if args.algorithm and args.token is not None:
        raise InitError("--algorithm needs --secret or --secret-env, not --token", EXIT_USAGE)
    output: Path = args.output
    if output.exists() and not args.force:
        raise InitError(f"{output} exists; pass --force to overwrite it", EXIT_USAGE)
    if output.exists() and output.is_dir():
        raise InitError(f"{output} is a directory; name a file with --output", EXIT_USAGE)


# -- the probe -------------------------------------------------------------------------------


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def read_welcome(args: argparse.Namespace) -> ServerProfile:
    """The server's welcome, read with the credentials given; raises :class:`InitError`."""
    algorithm = args.algorithm or _jwt_schema()["properties"]["algorithm"]["default"]
    tokens: dict[str, Any]
    if args.token is not None:
        tokens = {"command": PLACEHOLDER_COMMAND}
    elif args.secret is not None:
        remember(args.secret, "JWT secret")
        tokens = {"jwt": {"secret": args.secret, "algorithm": algorithm}}
    else:
        tokens = {"jwt": {"secret_env": args.secret_env, "algorithm": algorithm}}
    try:
        target = parse_target({"ws_url": args.url, "tokens": tokens})
    except TargetError as exc:
        raise InitError(str(exc), EXIT_USAGE) from exc
    source = FixedToken(args.token) if args.token is not None else token_source(target.tokens)
    try:
        return probe_profile(target, source)
    except (ConnectionError, OSError, WebSocketException, TokenUnavailable) as exc:
        reason = _one_line(redact(str(exc)))
        hint = ""
        if str(exc).startswith("the server refused"):  # the handshake's HTTP refusal
            reason = "the server refused the token: " + reason.split(": ", 1)[-1]
            hint = (
                " (is the token valid and unexpired?)"
                if args.token is not None
                else " (is it the server's secret and algorithm?)"
            )
        raise InitError(
            f"cannot read the welcome of {args.url}: {reason}{hint}", EXIT_UNREACHABLE
        ) from exc


# -- the file --------------------------------------------------------------------------------

_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./:@+-]*")


def scalar(value: Any) -> str:
    """A YAML scalar: plain where that reads back as the same string, JSON-quoted otherwise."""
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and yaml.safe_load(value) == value:
            return value
        return json.dumps(value)
    return json.dumps(value)


def flow_list(values: Sequence[Any]) -> str:
    return "[" + ", ".join(scalar(v) for v in values) + "]"


def _seconds(value: Any) -> str:
    return f"{value:g} s" if isinstance(value, int | float) else str(value)


def _section_defaults(section: str) -> list[tuple[str, Any, str]]:
    """(name, default, description) of a section's members, from the schema."""
    properties = target_schema()["properties"][section]["properties"]
    found = []
    for name, spec in properties.items():
        if "default" not in spec:
            continue
        note = spec.get("description") or TIMEOUT_NOTES.get(name, "")
        found.append((name, spec["default"], note))
    return found


def _defaults_block(section: str, intro: str) -> list[str]:
    rows = _section_defaults(section)
    width = max(len(name) + len(scalar(default)) for name, default, _ in rows) + 4
    lines = [f"# {intro}", f"# {section}:"]
    for name, default, note in rows:
        entry = f"{name}: {scalar(default)}"
        lines.append(f"#   {entry:<{width}}" + (f"# {note}" if note else "").rstrip())
    return lines


def _default(section: str, name: str) -> Any:
    return target_schema()["properties"][section]["properties"][name]["default"]


def _limit_lines(profile: ServerProfile) -> list[str]:
    """The limits the welcome advertises, measured against the kit's default budgets."""
    heartbeat_budget = _default("budgets", "max_heartbeat_wait")
    rate_budget = _default("budgets", "max_rate_wait")
    message_budget = _default("budgets", "max_rate_messages")
    lines = [
        "# What the welcome advertised (the kit reads these from the welcome on every run):",
        f"#   protocolVersion: {profile.protocol_version}",
    ]
    interval = profile.heartbeat_interval_ms
    if interval is None:
        lines.append("#   heartbeatIntervalMs: not advertised")
    else:
        lines.append(f"#   heartbeatIntervalMs: {interval}")
        if interval / 1000 > heartbeat_budget:
            lines.append(
                f"#     longer than budgets.max_heartbeat_wait ({_seconds(heartbeat_budget)}): "
                "the heartbeat checks will be skipped"
            )
    size = profile.max_message_bytes
    lines.append(f"#   limits.maxMessageBytes: {size if size is not None else 'not advertised'}")
    window, most = profile.rate_window_ms, profile.rate_max_messages
    if window is None or most is None:
        lines.append("#   limits.rateLimit: not advertised")
    else:
        lines.append(f"#   limits.rateLimit: {most} messages per {window} ms")
        if window / 1000 > rate_budget:
            lines.append(
                f"#     the window is longer than budgets.max_rate_wait ({_seconds(rate_budget)}): "
                "the check that waits it out will be skipped"
            )
        if most > message_budget:
            lines.append(
                f"#     maxMessages is over budgets.max_rate_messages ({message_budget}): "
                "the checks that exhaust it will be skipped"
            )
    if any("skipped" in line for line in lines):
        lines.append(
            "# For a complete run, configure the server with shorter timers while it is checked,"
        )
        lines.append("# or raise the budgets below (the checks then wait that long).")
    return lines


def _token_lines(args: argparse.Namespace, output: Path) -> list[str]:
    jwt = _jwt_schema()["properties"]
    algorithm = args.algorithm or jwt["algorithm"]["default"]
    if args.token is not None:
        return [
            "# init read the welcome with the one token it was given (--token); that token is",
            "# not kept. The kit needs tokens for many test users, with chosen roles, permissions",
            "# and lifetimes, so replace the placeholder command below with one that prints such",
            "# a token. Placeholders: {user}, {roles} and {permissions} (comma-separated),",
            "# {role} (the first role), {ttl} (seconds). Until then a run stops on it (exit 4).",
            "# Or let the kit sign tokens itself with the server's secret:",
            f"#   jwt: {{secret_env: {SECRET_VARIABLE}, algorithm: {jwt['algorithm']['default']}}}",
            "tokens:",
            f"  command: {scalar(PLACEHOLDER_COMMAND)}",
        ]
    lines = ["# The kit signs tokens for its test users with the server's JWT secret."]
    if args.secret is not None and args.secret_inline:
        lines += [
            "# The secret is written here (--secret-inline): keep this file private; secret_env",
            "# (an environment variable's name) keeps it out of the file.",
            "tokens:",
            "  jwt:",
            f"    secret: {json.dumps(args.secret)}",
        ]
    else:
        variable = args.secret_env or SECRET_VARIABLE
        lines += [
            f"# It reads the secret from ${variable} when a run starts; the file does not hold it.",
            "tokens:",
            "  jwt:",
            f"    secret_env: {scalar(variable)}",
        ]
    lines += [
        f"    algorithm: {algorithm}",
        "    # The server's allow-list (default: [algorithm]); the kit checks others are refused:",
        f"    # accepted_algorithms: [{algorithm}]",
    ]
    return lines


def _feature_lines(profile: ServerProfile) -> list[str]:
    known = sorted(known_features())
    advertised = profile.payload.get("features")
    if profile.advertised is not None and advertised:
        return [
            "# The features the server claims: here, those its welcome advertises (auth.features).",
            "# The kit checks claimed and advertised features, and core; a claimed feature the",
            "# welcome does not list is checked anyway and fails AUTH-010.",
            f"features: {flow_list(list(dict.fromkeys(advertised)))}",
        ]
    why = (
        "an empty list of features"
        if profile.advertised is not None
        else "no valid list of features"
    )
    return [
        f"# The welcome has {why} (auth.features), so the kit checks every feature until",
        "# the file names those the server implements (and the welcome should list them). Known:",
        f"#   {', '.join(known)}",
        "# features: [core, rooms, chat]",
    ]


def _fixture_lines() -> list[str]:
    properties: dict[str, Any] = target_schema()["properties"]["fixtures"]["properties"]
    rows = []
    for name, spec in properties.items():
        example, note = FIXTURE_NOTES.get(name, ("...", spec.get("description", "")))
        rows.append((f"{name}: {example}", note))
    width = max(len(entry) for entry, _ in rows) + 2
    lines = [
        "# Rooms and streams the server is configured with, for the checks of their rules;",
        "# those checks are skipped until their fixture is named. Uncomment what the server has,",
        "# with the ids of its configuration (a run checks that they exist):",
        "# fixtures:",
    ]
    lines += [f"#   {entry:<{width}}# {note}" for entry, note in rows]
    return lines


def render_target(args: argparse.Namespace, profile: ServerProfile) -> str:
    """The target file's text for the server whose welcome ``profile`` holds."""
    url: str = args.url
    http_url = http_base_of(url)
    output: Path = args.output
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    name = args.name or f"REP server at {urlsplit(url).netloc}"
    lines = [
        "# rep-conformance target file, written by `rep-conformance init` from the welcome of",
        f"# {url} on {stamp}. Every member: conformance/target.schema.json;",
        "# an example with every setting: conformance/target.example.yaml.",
        f"# Check the server: rep-conformance run --target {output.name}",
        f"name: {scalar(name)}",
        "",
        f"ws_url: {scalar(url)}",
        "# The HTTP endpoints (/health, /events, /streams/...) share the WebSocket's address:",
        f"http_url: {scalar(http_url)}",
    ]
    if "sse" in profile.features:
        lines += [
            "# The welcome advertises sse: the binding is assumed at /events.",
            f"sse_url: {scalar(http_url + '/events')}",
        ]
    else:
        lines += [
            "# The welcome does not advertise sse; if the server serves it anyway:",
            f"# sse_url: {scalar(http_url + '/events')}",
        ]
    sections = [
        _token_lines(args, output),
        _feature_lines(profile),
        _limit_lines(profile),
        _defaults_block(
            "timeouts", "Seconds the kit waits (the defaults, from target.schema.json):"
        ),
        _defaults_block(
            "budgets",
            "How long the kit waits to observe slow behaviours; checks that would need more are "
            "skipped:",
        ),
        _fixture_lines(),
        [
            "# Other nodes of the same cluster, for the multi-node checks:",
            "# nodes:",
            "#   - {ws_url: ws://HOST:PORT/ws}",
            "# The load profile (rep-conformance run --profile load): see target.schema.json.",
            "# Known failures, accepted for now; an entry whose check passes is stale (fails):",
            "# baseline:",
            "#   - {requirement: AUTH-012, reason: why it is accepted for now}",
        ],
    ]
    for section in sections:
        lines += ["", *section]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def validate(text: str) -> None:
    """The written file must be a target the kit accepts: check it against the schema."""
    raw = yaml.safe_load(text)
    error = best_match(Draft202012Validator(target_schema()).iter_errors(raw))
    if error is not None:  # a defect of init itself
        path = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise RuntimeError(f"init wrote an invalid target file at {path}: {error.message}")


def _advice(args: argparse.Namespace, output: Path) -> list[str]:
    said = []
    if args.token is not None:
        said.append(
            f"{output} has a placeholder tokens.command: one token cannot stand for the kit's "
            "test users; replace it (or rerun init with --secret-env) before a run"
        )
    elif args.secret is not None and not args.secret_inline:
        current = os.environ.get(SECRET_VARIABLE)
        if current == args.secret:
            said.append(f"{output} reads the secret from ${SECRET_VARIABLE}, set in this shell")
        else:
            state = "set to another value" if current else "not set"
            said.append(
                f"{output} reads the secret from ${SECRET_VARIABLE} ({state} here): "
                f"export {SECRET_VARIABLE}=<the secret given with --secret> before a run"
            )
    elif args.secret_env is not None:
        said.append(f"{output} reads the secret from ${args.secret_env} on every run")
    said.append(
        "name the fixtures the server is configured with (commented out in the file), then: "
        f"rep-conformance run --target {output}"
    )
    return said


def run_init(args: argparse.Namespace) -> int:
    try:
        _check_arguments(args)
        profile = read_welcome(args)
    except InitError as exc:
        print(f"rep-conformance init: {exc}", file=sys.stderr)
        return exc.exit_status
    text = render_target(args, profile)
    validate(text)
    output: Path = args.output
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        if args.secret_inline:
            output.chmod(0o600)
    except OSError as exc:
        print(f"rep-conformance init: cannot write {output}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    features = ", ".join(sorted(profile.features)) or "none listed"
    print(
        f"rep-conformance: wrote {output} for {args.url} "
        f"(protocol {profile.protocol_version}; features: {features})"
    )
    for line in _advice(args, output):
        print(f"rep-conformance: {line}")
    return EXIT_WRITTEN
