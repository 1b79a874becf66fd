"""The reconnection schedule of CLIENT-009..011: exponential backoff with equal jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

#: The specification's defaults (CLIENT-009, CLIENT-011).
DEFAULT_BASE_S = 1.0
DEFAULT_CAP_S = 30.0
DEFAULT_MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Backoff:
    """Delay before the n-th consecutive attempt: uniform in [d/2, d], d = min(cap, base*2^(n-1)).

    ``max_attempts`` of None never gives up (an application choice the spec allows only
    when it configures it).
    """

    base_s: float = DEFAULT_BASE_S
    cap_s: float = DEFAULT_CAP_S
    max_attempts: int | None = DEFAULT_MAX_ATTEMPTS
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.cap_s < self.base_s:
            raise ValueError("backoff needs 0 < base <= cap")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def ceiling(self, attempt: int) -> float:
        """d for the given attempt (1-based)."""
        if attempt < 1:
            raise ValueError("attempts count from 1")
        # 2**(n-1) overflows nothing: the exponent is bounded before it grows large.
        exponent = min(attempt - 1, 62)
        return min(self.cap_s, self.base_s * 2.0**exponent)

    def delay(self, attempt: int) -> float:
        """A fresh random delay for the attempt, independent of every other draw."""
        high = self.ceiling(attempt)
        return self.rng.uniform(high / 2, high)

    def exhausted(self, failed_attempts: int) -> bool:
        """Whether the client gives up after this many consecutive failed attempts."""
        return self.max_attempts is not None and failed_attempts >= self.max_attempts
