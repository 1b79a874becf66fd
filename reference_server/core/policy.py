"""Content rules the schemas cannot express: HTML sanitizing and the attachment URL policy."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import nh3

ALLOWED_TAGS = frozenset({"b", "i", "em", "strong", "u"})


def sanitize_chat_content(content: str) -> str:
    """CHAT-003: keep only the allowed elements, without attributes; escape the rest."""
    # "*": no generic attributes either (ammonia would keep lang and title by default).
    return nh3.clean(content, tags=set(ALLOWED_TAGS), attributes={"*": set()}, link_rel=None)


def _literal_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Read a host as an IP literal the way URL parsers do, without any DNS (SEC-003)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    # Legacy IPv4 spellings browsers still accept: 2130706433, 0x7f.1, 127.1, 0177.0.0.1
    if host and all(c in "0123456789abcdefx." for c in host.lower()):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def refused_attachment_host(url: str) -> str | None:
    """CHAT-004: why this URL is refused, or None when it may be distributed."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
    except ValueError:
        return "the URL cannot be parsed"
    if parts.scheme.lower() not in ("http", "https"):
        return "only http and https URLs are allowed"
    if not host:
        return "the URL has no host"
    if host == "localhost" or host.endswith(".localhost"):
        return "localhost is not allowed"
    address = _literal_ip(host)
    if address is None:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_unspecified
        or address.is_reserved
        or address.is_multicast
    ):
        return f"{address} is a loopback, private, link-local or reserved address"
    return None
