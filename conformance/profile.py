"""What the server says about itself: the welcome of a probe connection, read once a run.

Checks size their expectations from it (heartbeat interval, message size limit, rate
limit). The features the kit checks are those the target claims together with those the
welcome advertises (``core`` always): with a target that claims its features, a server
cannot pass more of the kit by advertising less; without claims, the messages of every
feature the welcome leaves out must be refused as unknown (MSG-006). When neither side
says anything usable (no ``features`` in the target, no valid list
in the welcome), every feature is checked, and the report says so first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rep_spec import catalog

#: The feature every server implements, whether or not its welcome lists it.
CORE_FEATURE = "core"


def known_features() -> frozenset[str]:
    return frozenset(catalog().features)


@dataclass(frozen=True)
class ServerProfile:
    welcome: dict[str, Any]
    claimed: frozenset[str] | None = None

    @property
    def payload(self) -> dict[str, Any]:
        payload = self.welcome.get("payload")
        return payload if isinstance(payload, dict) else {}

    @property
    def advertised(self) -> frozenset[str] | None:
        """The welcome's feature list, or None when it is missing or not a list of names."""
        listed = self.payload.get("features")
        if not isinstance(listed, list) or not all(isinstance(f, str) for f in listed):
            return None
        return frozenset(listed)

    @property
    def features(self) -> frozenset[str]:
        """What the welcome advertises (empty when its list is missing or invalid)."""
        return self.advertised or frozenset()

    def advertises(self, feature: str) -> bool:
        return feature == CORE_FEATURE or feature in self.features

    @property
    def checks_every_feature(self) -> bool:
        """Neither the target nor the welcome says which features exist: check them all."""
        return self.claimed is None and self.advertised is None

    @property
    def checked_features(self) -> frozenset[str]:
        if self.checks_every_feature:
            return known_features()
        return frozenset({CORE_FEATURE}) | self.features | (self.claimed or frozenset())

    def supports(self, feature: str) -> bool:
        """Whether the kit checks the feature: claimed, advertised, or nothing said."""
        return feature in self.checked_features

    def feature_basis(self) -> str:
        """One sentence for the report: where the checked features come from."""
        if self.checks_every_feature:
            return (
                "every feature is checked: the target file claims none and the welcome "
                "lists no valid features"
            )
        if self.claimed is not None and self.advertised is None:
            return "the claimed features are checked: the welcome lists no valid features"
        unadvertised = sorted((self.claimed or frozenset()) - self.features - {CORE_FEATURE})
        if unadvertised:
            return (
                "claimed and advertised features are checked; claimed but not advertised: "
                + ", ".join(unadvertised)
            )
        return "the claimed and advertised features are checked"

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
            "featuresListed": self.advertised is not None,
            "checkedFeatures": sorted(self.checked_features),
            "claimedFeatures": sorted(self.claimed) if self.claimed is not None else None,
            "featureBasis": self.feature_basis(),
            "heartbeatIntervalMs": self.heartbeat_interval_ms,
            "maxMessageBytes": self.max_message_bytes,
            "rateLimitWindowMs": self.rate_window_ms,
            "rateLimitMaxMessages": self.rate_max_messages,
        }
