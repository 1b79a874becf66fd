"""``rep-server``: run the reference server, or mint a development token."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from reference_server.auth import mint_token
from reference_server.broker.base import BrokerUnavailable
from reference_server.broker.factory import broker_from_url
from reference_server.config import ConfigError, load_config
from reference_server.logs import PathOnlyAccessLogger, configure_logging
from reference_server.transport.app import create_app

SECRET_ENV = "REP_JWT_SECRET"
DEV_SECRET = "rep-dev-secret-do-not-use-in-production"
log = logging.getLogger("reference_server")


def _secret(dev: bool) -> str | None:
    secret = os.environ.get(SECRET_ENV)
    if secret:
        return secret
    return DEV_SECRET if dev else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rep-server", description="The REP 1.0 reference server.")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the server (the default command)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--config", type=Path, help="YAML file: rooms, streams, limits")
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
    serve.add_argument("--log-level", default="INFO")
    token = commands.add_parser("token", help="print a signed token for development")
    token.add_argument("--user", required=True)
    token.add_argument("--role", action="append", dest="roles", default=None)
    token.add_argument("--permission", action="append", dest="permissions", default=[])
    token.add_argument("--ttl", type=int, default=3600, help="seconds until the token expires")
    token.add_argument("--dev", action="store_true", help="sign with the development secret")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or (arguments[0].startswith("-") and arguments[0] not in ("-h", "--help")):
        arguments.insert(0, "serve")
    args = _parser().parse_args(arguments)
    secret = _secret(args.dev)
    if secret is None:
        print(f"error: set {SECRET_ENV} (or pass --dev for a development secret)", file=sys.stderr)
        return 2
    if args.command == "token":
        print(mint_token(secret, args.user, args.roles or ["user"], args.permissions, args.ttl))
        return 0
    configure_logging(args.log_level)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if secret == DEV_SECRET:
        log.warning("using the development secret; tokens: rep-server token --dev --user NAME")
    node_id = os.urandom(4).hex()
    try:
        broker = broker_from_url(args.broker, node_id)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app = create_app(
        config,
        secret,
        broker=broker,
        node_id=node_id,
        extra_features=("cluster",) if args.broker else (),
    )

    async def announce(_: web.Application) -> None:  # after the broker is reachable
        log.info("listening on http://%s:%s (WebSocket at /ws)", args.host, args.port)

    app.on_startup.append(announce)
    try:
        web.run_app(
            app,
            host=args.host,
            port=args.port,
            print=None,
            access_log_class=PathOnlyAccessLogger,
            shutdown_timeout=5,
        )
    except BrokerUnavailable as exc:
        log.error("cannot start: broker unavailable: %s", exc)
        print(f"error: broker unavailable: {exc}", file=sys.stderr)
        return 3
    return 0
