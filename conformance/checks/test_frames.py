"""The frame audit: every problem in any server frame of the run, each kind listed once.

Every frame the server sends is judged by the frame checker. A problem that concerns a
check's own requirements fails that check; any other problem (a welcome without
``features`` seen by a ping check) is collected for this check, which runs last, so an
implementer reads "the welcome lacks features, in 212 frames" once, not in every check.
"""

from __future__ import annotations

import pytest

from conformance.harness import Harness

#: Kinds of problem listed in full; the rest are counted.
SHOWN = 20


@pytest.mark.frame_audit
@pytest.mark.requirements("ENV-013", "ENV-010", "ENV-008", "WS-002")
def test_every_frame_the_server_sent_matched_the_schemas_and_rules(rep: Harness) -> None:
    """No schema violation, reused id or wrong version in any frame of any other check."""
    findings = sorted(
        rep.run.frame_findings.values(), key=lambda f: (-f.count, f.requirement_ids, f.text)
    )
    if not findings:
        return
    lines = [
        f"{', '.join(f.requirement_ids)}: {f.text} ({f.count} frame{'s' if f.count > 1 else ''}, "
        f"first in {f.first_check} on {f.example})"
        for f in findings[:SHOWN]
    ]
    if len(findings) > SHOWN:
        lines.append(f"and {len(findings) - SHOWN} more kinds")
    raise rep.fail(
        sorted({rid for f in findings for rid in f.requirement_ids}),
        expected="every frame the server sent during the run to match the server schemas, "
        "with unique ids and the version of the welcome",
        received="; ".join(lines),
    )
