"""What the server says about itself: the welcome of a probe connection, read once a run.

Checks size their expectations from it (heartbeat interval, message size limit, rate
limit) and skip features the server does not advertise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rep_spec import catalog

#: The feature every server implements, whether or not its welcome lists it.
CORE_FEATURE = "core"


@dataclass(frozen=True)
class ServerProfile:
    welcome: dict[str, Any]

    @property
    def payload(self) -> dict[str, Any]:
        payload = self.welcome.get("payload")
        return payload if isinstance(payload, dict) else {}

    @property
    def features(self) -> frozenset[str]:
        listed = self.payload.get("features")
        return (
            frozenset(f for f in listed if isinstance(f, str))
            if isinstance(listed, list)
            else frozenset()
        )

    def supports(self, feature: str) -> bool:
        return feature == CORE_FEATURE or feature in self.features

    @property
    def protocol_version(self) -> str:
        version = self.payload.get("protocolVersion")
        return version if isinstance(version, str) else catalog().protocol_version

    def _limit(self, *path: str) -> int | None:
        node: Any = self.payload
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        return node if isinstance(node, int) and not isinstance(node, bool) else None

    @property
    def heartbeat_interval_ms(self) -> int | None:
        return self._limit("heartbeatIntervalMs")

    @property
    def max_message_bytes(self) -> int | None:
        return self._limit("limits", "maxMessageBytes")

    @property
    def rate_window_ms(self) -> int | None:
        return self._limit("limits", "rateLimit", "windowMs")

    @property
    def rate_max_messages(self) -> int | None:
        return self._limit("limits", "rateLimit", "maxMessages")

    def figures(self) -> dict[str, Any]:
        return {
            "protocolVersion": self.protocol_version,
            "features": sorted(self.features),
            "heartbeatIntervalMs": self.heartbeat_interval_ms,
            "maxMessageBytes": self.max_message_bytes,
            "rateLimitWindowMs": self.rate_window_ms,
            "rateLimitMaxMessages": self.rate_max_messages,
        }
