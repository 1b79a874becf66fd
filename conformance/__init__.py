"""rep-conformance: a black-box conformance kit for REP 1.0 servers.

The kit judges a server only through the network (WebSocket, HTTP) and the schemas that
``rep_spec`` loads; it never imports a server implementation. See ``ARCHITECTURE.md``.
"""

from conformance.failures import ConformanceFailure

__all__ = ["ConformanceFailure", "__version__"]

#: The package version, written here only: pyproject.toml reads it ([tool.hatch.version]),
#: so the wheel's metadata, ``rep-conformance --version`` and report.json agree. A release
#: tag is ``v`` + this value (.github/workflows/release.yml checks that).
__version__ = "0.1.0"
