"""``rep-server``: run the reference server, or mint a development token.

Every start-up failure is one line on standard error, ``rep-server: <what is wrong>``, and
an exit status the ``--help`` epilog documents (see :data:`EXIT_STATUSES`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import logging
import os
import socket
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import jwt
from aiohttp import web

from reference_server.auth import HMAC_MIN_SECRET_BYTES, WeakSecret, check_secret_length, mint_token
from reference_server.broker.base import BrokerUnavailable
from reference_server.broker.factory import broker_from_url
from reference_server.config import ConfigError, load_config
from reference_server.logs import PathOnlyAccessLogger, configure_logging
from reference_server.transport.app import create_app
from reference_server.transport.loops import LOOPS, LoopUnavailable, loop_factory
from reference_server.transport.runner import serve
from rep_spec import catalog

PROG = "rep-server"
SECRET_ENV = "REP_JWT_SECRET"
DEV_SECRET = "rep-dev-secret-do-not-use-in-production"
NO_SECRET = f"set {SECRET_ENV} (or pass --dev for a development secret)"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
BACKLOG = 128  # aiohttp's default
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

EXIT_OK = 0
EXIT_USAGE = 2  # argparse's status for a bad command line; also a refused configuration
EXIT_BROKER = 3
EXIT_LISTEN = 4
EXIT_STATUSES = {
    EXIT_OK: "success (serve: stopped by SIGINT or SIGTERM)",
    EXIT_USAGE: f"usage or configuration error: options, the --config file, {SECRET_ENV}, roles",
    EXIT_BROKER: "cannot reach the broker (--broker) at start",
    EXIT_LISTEN: "cannot listen on HOST:PORT (address in use, permission denied, unknown host)",
}
log = logging.getLogger("reference_server")


class Refused(Exception):
    """A start that cannot go on: ``message`` is the one line to print, ``status`` the exit."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def version() -> str:
    """The installed distribution's version, else the source tree's one ``__version__``."""
    try:
        return importlib.metadata.version("rep-kit")
    except importlib.metadata.PackageNotFoundError:
        try:  # pyproject's [tool.hatch.version] reads it from there
            from conformance import __version__
        except ImportError:
            return "unknown"
        return str(__version__)


def _secret(dev: bool) -> str | None:
    secret = os.environ.get(SECRET_ENV)
    if secret:
        return secret
    return DEV_SECRET if dev else None


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def _checked_secret(
    dev: bool, algorithms: Iterable[str], warn: Callable[[str], None] = _warn
) -> str:
    """The secret to sign and verify with; outside ``--dev`` it must be long enough."""
    secret = _secret(dev)
    if secret is None:
        raise Refused(NO_SECRET)
    try:
        check_secret_length(secret, algorithms)
    except WeakSecret as exc:
        if not dev:
            needed = max(HMAC_MIN_SECRET_BYTES.values())
            raise Refused(
                f"{SECRET_ENV}: {exc}; make one with: python -c 'import secrets; "
                f"print(secrets.token_urlsafe({needed}))'"
            ) from None
        warn(f"{SECRET_ENV}: {exc}; accepted only because of --dev")
        # Said once above; PyJWT would repeat it as a Python warning on every signature.
        warnings.filterwarnings("ignore", category=jwt.InsecureKeyLengthWarning)
    return secret


# --- the command line ----------------------------------------------------------------------


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is not in 0-65535")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def _role(text: str) -> str:
    """A role of ``schemas/roles.json``; an empty ROLE (an empty ``{role}``) grants none."""
    known = catalog().roles
    if text and text not in known:
        raise argparse.ArgumentTypeError(f"unknown role {text!r}; known roles: {', '.join(known)}")
    return text


def _permission(text: str) -> str:
    """A permission of ``schemas/roles.json``: a misspelt one would sign a token that
    silently grants nothing."""
    known = catalog().permissions
    if text not in known:
        raise argparse.ArgumentTypeError(
            f"unknown permission {text!r}; known permissions: {', '.join(known)}"
        )
    return text


def _exit_statuses(*codes: int) -> str:
    shown = codes or tuple(EXIT_STATUSES)
    return "exit status:\n" + "\n".join(f"  {code}  {EXIT_STATUSES[code]}" for code in shown)


_MIN_LENGTHS = ", ".join(f"{alg} {n} bytes" for alg, n in HMAC_MIN_SECRET_BYTES.items())
MAIN_EPILOG = f"""\
examples:
  {PROG} serve --config rooms.yaml         serve on {DEFAULT_HOST}:{DEFAULT_PORT}
  {PROG} --dev                             serve with the development secret (serve is the
                                             default command)
  {PROG} token --user alice --role admin   print a token for a test user
  {PROG} serve --help                      every option of serve, and {SECRET_ENV}

{_exit_statuses()}
"""

SECRET_HELP = f"""\
environment:
  {SECRET_ENV}  the shared secret that signs and verifies tokens (HMAC). Required
                  outside --dev, and at least as long as the hash output (RFC 7518
                  section 3.2): {_MIN_LENGTHS}.
                  Make one with:
                    python -c 'import secrets; print(secrets.token_urlsafe(64))'
                  --dev uses a fixed, published development secret instead when it is
                  unset, and accepts a short one: never in production."""


def _parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="The REP 1.0 reference server.",
        epilog=MAIN_EPILOG,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", metavar="{serve,token}")
    serve = commands.add_parser(
        "serve",
        help="run the server (the default command)",
        description="Run the REP 1.0 reference server until SIGINT or SIGTERM.",
        epilog=f"{SECRET_HELP}\n\n{_exit_statuses()}\n",
        formatter_class=formatter,
    )
    serve.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address or host name to listen on; 0.0.0.0 for every interface "
        "(default: %(default)s)",
    )
    serve.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help="TCP port to listen on; 0 picks a free one (default: %(default)s)",
    )
    serve.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="YAML file: limits, token algorithms, origins, rooms, streams; validated against "
        "schemas/server-config.schema.json (default: none, the built-in defaults)",
    )
    serve.add_argument(
        "--dev",
        action="store_true",
        help=f"use a fixed development secret when {SECRET_ENV} is unset (never in production)",
    )
    serve.add_argument(
        "--broker",
        metavar="URL",
        help="redis://host:port/db to run as one node of a cluster (default: in memory)",
    )
    serve.add_argument(
        "--loop",
        default="auto",
        choices=LOOPS,
        help="event loop: uvloop when installed (auto), or the one named (default: %(default)s)",
    )
    serve.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=LOG_LEVELS,
        metavar="LEVEL",
        help=f"{', '.join(LOG_LEVELS)}; logs are JSON lines on standard error "
        "(default: %(default)s)",
    )
    token = commands.add_parser(
        "token",
        help="print a signed token for development",
        description=f"Print a token signed (HS256) with {SECRET_ENV}, for tests and development.",
        epilog=f"{SECRET_HELP}\n\n{_exit_statuses(EXIT_OK, EXIT_USAGE)}\n",
        formatter_class=formatter,
    )
    token.add_argument("--user", required=True, metavar="NAME", help="the sub claim (required)")
    token.add_argument(
        "--role",
        action="append",
        dest="roles",
        type=_role,
        metavar="ROLE",
        help=f"a role of the role table ({', '.join(catalog().roles)}); repeat for several; "
        "an empty ROLE grants none (default: user)",
    )
    token.add_argument(
        "--permission",
        action="append",
        dest="permissions",
        default=[],
        type=_permission,
        metavar="PERM",
        help="an extra permission of the role table (e.g. room:join); repeat for several",
    )
    token.add_argument(
        "--ttl",
        type=_positive,
        default=3600,
        metavar="SECONDS",
        help="seconds until the token expires (default: %(default)s)",
    )
    token.add_argument(
        "--dev",
        action="store_true",
        help=f"sign with the development secret when {SECRET_ENV} is unset",
    )
    return parser


# --- serving -------------------------------------------------------------------------------


def listening_sockets(host: str, port: int) -> list[socket.socket]:
    """Bind and listen on every address ``host`` resolves to, as asyncio would; raise OSError
    if one fails.

    Doing it before the event loop starts lets a busy port be one line and exit 4, not a
    traceback, and "listening" be logged only once it is true: connections made before the
    server accepts them wait in the listen queue.
    """
    infos = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )
    bound: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            if os.name == "posix":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)  # from here on, connections wait in the queue
    except OSError:
        for sock in bound:
            sock.close()
        raise
    return bound


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _bind(host: str, port: int) -> list[socket.socket]:
    try:
        return listening_sockets(host, port)
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise Refused(f"cannot listen on {where}: {reason}", EXIT_LISTEN) from None


def _serve(args: argparse.Namespace) -> int:
    if _secret(args.dev) is None:  # before anything else, as the most common first mistake
        raise Refused(NO_SECRET)
    configure_logging(args.log_level)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise Refused(str(exc)) from None
    secret = _checked_secret(args.dev, config.jwt_algorithms, log.warning)
    if secret == DEV_SECRET:
        log.warning("using the development secret; tokens: rep-server token --dev --user NAME")
    node_id = os.urandom(4).hex()
    try:
        broker = broker_from_url(args.broker, node_id)
    except ValueError as exc:
        raise Refused(str(exc)) from None
    try:
        loop_name, new_loop = loop_factory(args.loop)
    except LoopUnavailable as exc:
        raise Refused(f"--loop {args.loop}: {exc}") from None
    sockets = _bind(args.host, args.port)
    app = create_app(
        config,
        secret,
        broker=broker,
        node_id=node_id,
        extra_features=("cluster",) if args.broker else (),
    )

    async def announce(_: web.Application) -> None:  # bound, and the broker is reachable
        for sock in sockets:
            log.info("listening on %s (WebSocket at /ws), %s loop", _url(sock), loop_name)

    app.on_startup.append(announce)
    try:
        serve(
            app,
            sockets,
            new_loop=new_loop,
            access_log_class=PathOnlyAccessLogger,
            shutdown_timeout=5,
        )
    except BrokerUnavailable as exc:
        raise Refused(f"cannot start: broker unavailable: {exc}", EXIT_BROKER) from None
    finally:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
    return EXIT_OK


def _token(args: argparse.Namespace) -> int:
    secret = _checked_secret(args.dev, ["HS256"])
    roles = ["user"] if args.roles is None else [role for role in args.roles if role]
    print(mint_token(secret, args.user, roles, args.permissions, args.ttl))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``rep-server``; returns the exit status (argparse itself exits on bad usage)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or (
        arguments[0].startswith("-") and arguments[0] not in ("-h", "--help", "--version")
    ):
        arguments.insert(0, "serve")
    args = _parser().parse_args(arguments)
    try:
        return _token(args) if args.command == "token" else _serve(args)
    except Refused as refused:
        print(f"{PROG}: {refused.message}", file=sys.stderr)
        return refused.status
