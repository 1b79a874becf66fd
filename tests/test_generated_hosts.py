"""The generated CHAT-004 hosts: every one is refused by the spec's rule, and they reach
beyond the fixed list, so a server with cut-down ranges is caught (IPv6 included)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from hypothesis import HealthCheck, find, given, settings

from conformance.checks._hosts import REFUSED_V6, refused_attachment_urls
from reference_server.core.policy import refused_attachment_host
from tests.conformance_variants.fuzz_variants import NARROW_V6_RANGES, _narrow_refusal


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(refused_attachment_urls())
def test_every_generated_url_is_one_the_spec_refuses(drawn: tuple[str, str]) -> None:
    label, url = drawn
    assert refused_attachment_host(url) is not None, (label, url)


def _v6(url: str) -> ipaddress.IPv6Address | None:
    host = urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return address if isinstance(address, ipaddress.IPv6Address) else None


def test_the_fixed_list_fits_inside_the_cut_down_ipv6_ranges() -> None:
    """So only the generated check can tell such a server from a conformant one (the
    reserved blocks, which the cut-down table leaves out altogether, aside)."""
    for host in REFUSED_V6:
        assert any(ipaddress.IPv6Address(host) in net for net in NARROW_V6_RANGES), host


def test_generated_ipv6_hosts_reach_outside_cut_down_ranges() -> None:
    def slips_through(drawn: tuple[str, str]) -> bool:
        address = _v6(drawn[1])
        return (
            address is not None
            and address.ipv4_mapped is None
            and (_narrow_refusal(drawn[1]) is None)
        )

    label, url = find(refused_attachment_urls(), slips_through, settings=settings(deadline=None))
    assert label.startswith("v6 "), (label, url)
    assert refused_attachment_host(url) is not None


def test_generated_ipv6_hosts_include_the_ietf_reserved_space() -> None:
    """A server that refuses the named IPv6 ranges but not the reserved blocks (4000::1,
    100::1 ...) is caught: the generator draws from every reserved block."""

    def only_reserved(drawn: tuple[str, str]) -> bool:
        address = _v6(drawn[1])
        return address is not None and not (
            address.is_loopback
            or address.is_unspecified
            or address.is_link_local
            or address.is_multicast
            or address in ipaddress.IPv6Network("fc00::/7")
            or address.ipv4_mapped is not None
        )

    label, url = find(refused_attachment_urls(), only_reserved, settings=settings(deadline=None))
    assert label.startswith("v6 reserved"), (label, url)
    assert refused_attachment_host(url) is not None
