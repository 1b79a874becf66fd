"""``python -m bench.baselines KIND --host H --port P``: run one baseline server."""

from __future__ import annotations

import argparse
import sys

KINDS = ("echo", "broadcast", "sse", "picows-echo")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if args.kind == "picows-echo":
        from bench.baselines import picows_echo

        picows_echo.serve(args.host, args.port)
    else:
        from bench.baselines import aiohttp_servers

        aiohttp_servers.serve(args.kind, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
