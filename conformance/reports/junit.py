"""junit.xml as CI viewers should read it: the kit's verdicts, not pytest's mechanics.

pytest writes junit.xml; this rewrites it afterwards so that

* every test name carries its requirement ids (viewers show names, rarely properties);
* a failure's text is the kit's own message (sent / expected / received / requirement /
  replay), never a traceback of kit internals;
* a SHOULD not met is a ``failure`` of type ``warn`` (not a skip a dashboard hides); it
  still does not fail the run unless ``--strict``;
* an inconclusive check is a ``skipped`` of type ``inconclusive`` naming what blocked it,
  and the check during which the server went away is an ``error``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from conformance.redact import redact
from conformance.results import first_line as _first_line

OUTCOME_TAGS = ("failure", "error", "skipped")


def junit_address(nodeid: str) -> tuple[str, str]:
    """``(classname, name)`` pytest's junitxml gives a node id (its ``mangle_test_address``)."""
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    return ".".join(names[:-1]), names[-1]


def _outcome(test: Mapping[str, Any], strict: bool) -> tuple[str, str, str, str] | None:
    """``(tag, type, message, text)`` of the element that says how the check ended."""
    verdict = str(test.get("verdict"))
    message = str(test.get("message") or "")
    blocked = ", ".join(test.get("blocked_by") or [])
    if verdict == "fail" or (verdict == "warn" and strict):
        return "failure", "fail", _first_line(message), message
    if verdict == "warn":
        return "failure", "warn", "SHOULD not met: " + _first_line(message), message
    if verdict == "stale":
        return "failure", "stale", "stale baseline entry", str(test.get("baseline_reason"))
    if verdict == "inconclusive" and test.get("server_went_away"):
        return "error", "server-unreachable", _first_line(message), message
    if verdict == "inconclusive":
        return "skipped", "inconclusive", f"blocked by {blocked}: {_first_line(message)}", message
    if verdict == "skip":
        return "skipped", "skip", _first_line(message), message
    if verdict == "baselined":
        return "skipped", "baselined", f"baselined: {test.get('baseline_reason')}", message
    return None


def rewrite_junit(path: Path, tests: Sequence[Mapping[str, Any]], strict: bool) -> None:
    """Rewrite pytest's junit.xml in place from the checks' verdicts."""
    tree = ET.parse(path)
    by_address = {junit_address(str(t.get("nodeid"))): t for t in tests}
    for suite in tree.getroot().iter("testsuite"):
        for case in suite.iter("testcase"):
            test = by_address.get((case.get("classname", ""), case.get("name", "")))
            if test is None:
                continue
            ids = " ".join(test.get("requirements") or [])
            if ids:
                case.set("name", f"{case.get('name')} [{ids}]")
            for child in list(case):
                if child.tag in OUTCOME_TAGS:
                    case.remove(child)
            outcome = _outcome(test, strict)
            if outcome is not None:
                tag, kind, message, text = outcome
                element = ET.SubElement(case, tag, {"type": kind, "message": message})
                element.text = text
        for attribute, tag in (
            ("failures", "failure"),
            ("errors", "error"),
            ("skipped", "skipped"),
        ):
            suite.set(
                attribute,
                str(sum(1 for case in suite.iter("testcase") if case.find(tag) is not None)),
            )
    tree.write(path, encoding="utf-8", xml_declaration=True)
    path.write_text(redact(path.read_text(encoding="utf-8")), encoding="utf-8")
