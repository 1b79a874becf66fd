"""The scenarios of issue 8, each a function of a :class:`Context` returning table rows."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.profiles import Profile
from bench.report import Row


@dataclass
class Context:
    """What scenarios share: the profile, a scratch folder, a token secret, and figures one
    scenario measures for another (validation needs the server's CPU per message)."""

    profile: Profile
    workdir: Path
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    shared: dict[str, Any] = field(default_factory=dict)
    verbose: bool = True

    def log(self, text: str) -> None:
        if self.verbose:
            print(f"[bench] {text}", file=sys.stderr, flush=True)


Scenario = Callable[[Context], list[Row]]


def registry() -> dict[str, Scenario]:
    """Scenario names in run order: ping/pong first, since validation reuses its CPU figure."""
    from bench.scenarios import conformance, fanout, idle, kitload, pingpong, sse, validation

    return {
        "pingpong": pingpong.run,
        "validation": validation.run,
        "fanout": fanout.run,
        "sse": sse.run,
        "idle": idle.run,
        "conformance": conformance.run,
        "kitload": kitload.run,
    }
