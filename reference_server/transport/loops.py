"""Which event loop runs the server: uvloop when it is installed, asyncio's own otherwise.

uvloop answers the same asyncio API with a libuv core; the reference server passes every
conformance check on both, and the benchmark measures both (bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable

LOOPS = ("auto", "asyncio", "uvloop")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


class LoopUnavailable(RuntimeError):
    """The loop asked for by name is not installed."""


def uvloop_installed() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def loop_factory(name: str) -> tuple[str, LoopFactory]:
    """The loop's resolved name (``auto`` becomes one of the others) and its factory."""
    if name not in LOOPS:
        raise ValueError(f"unknown event loop {name!r}; one of {', '.join(LOOPS)}")
    if name == "auto":
        name = "uvloop" if uvloop_installed() else "asyncio"
    if name == "asyncio":
        return name, asyncio.new_event_loop
    if not uvloop_installed():
        raise LoopUnavailable("uvloop is not installed (pip install uvloop)")
    import uvloop

    factory: LoopFactory = uvloop.new_event_loop
    return name, factory
