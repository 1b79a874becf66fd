"""Site versions: which build this is, and the banner of the development version.

A published site holds one build per protocol version (``/1.0/``) plus the development
version (``/dev/``), side by side (scripts/site.py deploy). A build knows its version
name from the deploy tool; a plain build has none and shows no banner.
"""

from __future__ import annotations

import re

PROTOCOL_VERSION = re.compile(r"^[0-9]+\.[0-9]+$")
CHANGELOG_PAGE = "spec-changelog.md"

BANNER = """\
!!! warning "Development version: not normative"
    This is the development version of the REP specification, built from the main
    branch: it shows what the next version may say and changes without notice. Implement
    and cite a released version instead; the version selector at the top lists them, and
    <a href="{root}../">the site's root</a> opens the newest.
"""


def check_version(version: str | None, protocol_version: str) -> None:
    """A build named like a protocol version must be of that version's registry."""
    if version and PROTOCOL_VERSION.match(version) and version != protocol_version:
        raise ValueError(
            f"this build is deployed as version {version}, but schemas/ is REP"
            f" {protocol_version}: build {version} from its release tag"
        )


def is_development(version: str | None, protocol_version: str) -> bool:
    return bool(version) and version != protocol_version


def banner(page_url: str) -> str:
    """The development banner for the page at ``page_url`` (``specification/envelope/``).

    Plain HTML links, not Markdown ones: the target is outside this build's pages.
    """
    return BANNER.format(root="../" * page_url.count("/"))
