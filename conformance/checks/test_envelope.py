"""Envelope: what every server message carries, and validation of every client message."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from conformance.checks._samples import (
    CODE_REQUIREMENT,
    ENVELOPE_DEFECTS,
    PAYLOAD_DEFECTS,
    Sample,
    expected,
)
from conformance.client import json_text, summarize
from conformance.harness import Harness


@pytest.mark.requirements("ENV-008", "ENV-013")
def test_server_messages_carry_the_version_it_speaks_and_source_server(rep: Harness) -> None:
    """The welcome, a pong and an error all carry metadata.version and source server."""
    client = rep.connect()
    ping = client.send("ping")
    pong = client.expect("pong", correlation_id=ping, requirement="LIFE-001")
    bad = client.send("no_such_message_type")
    error = client.expect("error", correlation_id=bad, requirement="MSG-001")
    speaks = rep.profile.protocol_version
    for message in (client.welcome, pong, error):
        metadata = message.get("metadata")
        found = (
            (metadata.get("version"), metadata.get("source"))
            if isinstance(metadata, dict)
            else None
        )
        if found != (speaks, "server"):
            raise rep.fail(
                "ENV-008",
                expected=f"metadata.version = {json_text(speaks)} and metadata.source = 'server'",
                received=f"{summarize(message)} has metadata {json_text(metadata)}",
            )


#: How far a server's clock may be from the kit's (clocks on different machines drift); a
#: frozen, stale or mislabelled clock is off by more: local time labelled UTC by hours.
CLOCK_ALLOWANCE_S = 300.0


def _moment(stamp: object) -> float | None:
    """Seconds since the epoch, or None for a malformed timestamp (the schema audit's)."""
    if not isinstance(stamp, str):
        return None
    try:
        moment = datetime.fromisoformat(stamp.upper())
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


@pytest.mark.requirements("ENV-004")
def test_server_timestamps_say_when_the_message_was_made(rep: Harness) -> None:
    """The welcome and a pong carry the time they were made: within five minutes of the
    kit's clock between the handshake and the pong (not a fixed, stale or shifted time)."""
    began = time.time()
    client = rep.connect()
    ping = client.send("ping")
    pong = client.expect("pong", correlation_id=ping, requirement="LIFE-001")
    ended = time.time()
    for message in (client.welcome, pong):
        moment = _moment(message.get("timestamp"))
        if moment is None:
            continue
        if not began - CLOCK_ALLOWANCE_S <= moment <= ended + CLOCK_ALLOWANCE_S:
            off = moment - (ended if moment > ended else began)
            raise rep.fail(
                "ENV-004",
                expected=(
                    "timestamp = when the server made the message, within "
                    f"{CLOCK_ALLOWANCE_S:.0f} s of the kit's clock ({_utc(began)} to {_utc(ended)})"
                ),
                received=f"{summarize(message)} stamped {json_text(message.get('timestamp'))}, "
                f"{off:+.0f} s off",
            )


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


@pytest.mark.requirements("ENV-009", "ERR-001", "ERR-003", "ERR-005", "ERR-008")
@pytest.mark.parametrize("sample", ENVELOPE_DEFECTS, ids=lambda s: s.name)
def test_invalid_envelopes_are_refused_with_the_code_the_schemas_give(
    rep: Harness, sample: Sample
) -> None:
    """A ping broken in one envelope member is refused (one correlated error), not processed."""
    client = rep.connect()
    message = sample.make(client.envelope("ping"))
    want = expected(message)
    client.send_json(message)
    client.expect_refusal(
        want.code, of=want.correlation_id, requirement=CODE_REQUIREMENT[want.code]
    )
    # expect_refusal's barrier consumed its own pong; any other pong answered the refused ping.
    client.expect_none("pong", within=0.0, requirement="ENV-009", description="pong for it")


@pytest.mark.requirements("ENV-009", "ERR-001", "ERR-003", "ERR-009")
@pytest.mark.parametrize("sample", PAYLOAD_DEFECTS, ids=lambda s: s.name)
def test_invalid_payloads_are_refused_with_invalid_payload(rep: Harness, sample: Sample) -> None:
    """A ping whose payload breaks its schema gets invalid_payload, and no pong."""
    client = rep.connect()
    message = sample.make(client.envelope("ping"))
    want = expected(message)
    client.send_json(message)
    client.expect_refusal(
        want.code, of=want.correlation_id, requirement=CODE_REQUIREMENT[want.code]
    )
    client.expect_none("pong", within=0.0, requirement="ENV-009", description="pong for it")


@pytest.mark.requirements("ENV-010")
def test_server_message_ids_are_unique_on_a_connection(rep: Harness) -> None:
    """Twenty pings and their pongs, the welcome, any heartbeat: no id repeats."""
    rep.needs_messages(20)
    client = rep.connect()
    sent = [client.send("ping") for _ in range(20)]
    for ping in sent:
        client.expect("pong", correlation_id=ping, requirement="LIFE-001")
    seen: dict[str, str] = {}
    for _, message in client.received():
        message_id = str(message.get("id"))
        if message_id in seen:
            raise rep.fail(
                "ENV-010",
                expected="a different id on every server message of the connection",
                received=f"id {json_text(message_id)} on a {seen[message_id]} "
                f"and on {summarize(message)}",
            )
        seen[message_id] = str(message.get("type"))


@pytest.mark.requirements("ENV-013", "AUTH-010")
def test_the_welcome_pong_and_error_match_the_server_schemas(rep: Harness) -> None:
    """Schema conformance of the core messages, checked here on purpose (and on every
    message of every check by the frame checker)."""
    client = rep.connect()
    ping = client.send("ping", {"timestamp": 1})
    client.expect("pong", correlation_id=ping, requirement="LIFE-001")
    client.send_raw("[]")
    client.expect("error", requirement="ERR-007")
    client.sync()
    problems = [text for c in rep.clients for _, text in c.problems]
    if problems:
        raise rep.fail(
            "ENV-013",
            expected="every message to match the server envelope and payload schemas",
            received="; ".join(problems[:5]),
        )


@pytest.mark.requirements("ENV-014")
@pytest.mark.parametrize(
    "metadata", [None, {"source": "client"}, {}], ids=["none", "no-version", "empty"]
)
def test_messages_without_a_version_are_taken_as_the_servers(
    rep: Harness, metadata: dict[str, str] | None
) -> None:
    """A ping without metadata, or with metadata but no version, is answered normally."""
    client = rep.connect()
    envelope = client.envelope("ping")
    if metadata is None:
        del envelope["metadata"]
    else:
        envelope["metadata"] = metadata
    client.send_json(envelope)
    client.expect("pong", correlation_id=envelope["id"])
