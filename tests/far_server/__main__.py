"""``python -m tests.far_server --port P --secret S [--supervised]``.

Prints one JSON line (``ws_url``, ``http_url``, ``port``) once it listens on 127.0.0.1,
then serves until its standard input closes or it receives SIGTERM. With ``--supervised``
a parent process runs the server as a child on the same port and restarts it whenever it
exits.
"""

from __future__ import annotations

import argparse
import asyncio
import socket


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.far_server", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--secret", required=True, help="HS256 key for the JWTs")
    parser.add_argument("--supervised", action="store_true",
                        help="run the server as a child and restart it when it exits")
    args = parser.parse_args(argv)
    if args.supervised:
        from tests.far_server.supervisor import supervise

        # Restarts must find the server where it was: fix the port now.
        asyncio.run(supervise(args.port or _free_port(), args.secret))
    else:
        from tests.far_server.app import serve

        asyncio.run(serve(args.port, args.secret))


if __name__ == "__main__":
    main()
