"""Versioning: the major version decides compatibility, the minor never does."""

from __future__ import annotations

import pytest

from conformance import spec
from conformance.checks._samples import other_major
from conformance.harness import Harness
from rep_spec import catalog

UNSUPPORTED_VERSION = spec.error_code("unsupported_version")


@pytest.mark.requirements("VER-002", "ERR-003")
@pytest.mark.parametrize("offset", [1, -1, 9], ids=lambda o: f"major{o:+d}")
def test_another_major_version_is_answered_with_unsupported_version(
    rep: Harness, offset: int
) -> None:
    """A ping whose metadata.version has another major number is refused, not answered."""
    client = rep.connect()
    version = other_major(offset)
    sent = client.send("ping", metadata={"version": version, "source": "client"})
    client.expect_refusal(UNSUPPORTED_VERSION, of=sent, requirement="VER-002")
    client.expect_none("pong", within=0.0, requirement="VER-002", description="pong for it")


@pytest.mark.requirements("VER-003")
@pytest.mark.parametrize("minor", [0, 1, 99])
def test_any_minor_of_the_servers_major_is_accepted(rep: Harness, minor: int) -> None:
    """Messages of the server's major version are processed whatever their minor number."""
    client = rep.connect()
    version = f"{catalog().major_version}.{minor}"
    sent = client.send("ping", metadata={"version": version, "source": "client"})
    client.expect("pong", correlation_id=sent)
