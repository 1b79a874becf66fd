"""Serve one variant in a process of its own, so patched variants can run side by side.

``python -m tests.conformance_variants.serve NAME CONFIG.yaml`` prints one JSON line
(``ws_url``, ``http_url``, ``secret``) once the server listens, then serves until its
standard input is closed.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

from reference_server.config import load_config
from reference_server.testing import running_server
from tests.conformance_variants import VARIANTS


def serve(name: str, config_path: Path) -> None:
    variant = next(v for v in VARIANTS if v.name == name)
    patch = variant.patch() if variant.patch is not None else contextlib.nullcontext()
    with patch, running_server(load_config(config_path), core_class=variant.core) as server:
        address = {"ws_url": server.ws_url, "http_url": server.http_url, "secret": server.secret}
        print(json.dumps(address), flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    serve(sys.argv[1], Path(sys.argv[2]))
