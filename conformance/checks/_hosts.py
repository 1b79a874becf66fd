"""Attachment hosts CHAT-004 refuses, generated in every notation URL parsers accept.

A server that only parses dotted quads passes a fixed list of a dozen URLs; the same
internal address written as an integer, in hex or octal, shortened, IPv4-mapped or with
a trailing dot must be refused as well. The forms are generated from one address of each
refused range, so every range meets every notation.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from hypothesis import strategies as st

#: One address of each IPv4 range CHAT-004 refuses, by range.
REFUSED_V4 = {
    "loopback": "127.0.0.1",
    "private-10": "10.1.2.3",
    "private-172": "172.16.5.4",
    "private-192": "192.168.0.10",
    "link-local": "169.254.169.254",
    "unspecified": "0.0.0.0",
    "multicast": "224.0.0.1",
    "reserved": "240.0.0.1",
}

#: Each IPv4 range CHAT-004 refuses, whole: a generated host may be any address in it.
REFUSED_V4_NETWORKS = {
    "loopback": "127.0.0.0/8",
    "private-10": "10.0.0.0/8",
    "private-172": "172.16.0.0/12",
    "private-192": "192.168.0.0/16",
    "link-local": "169.254.0.0/16",
    "unspecified": "0.0.0.0/32",
    "multicast": "224.0.0.0/4",
    "reserved": "240.0.0.0/4",
}

#: IPv6 addresses of the refused ranges.
REFUSED_V6 = ["::1", "0:0:0:0:0:0:0:1", "fe80::1", "fd12:3456::1", "::", "ff02::1"]

#: The blocks the IANA IPv6 Address Space registry lists as "Reserved by IETF": the
#: spec's reserved IPv6 range (security.md). ``::/8`` holds loopback, unspecified and the
#: IPv4-mapped block too; a mapped address is judged by its IPv4 range, so none is drawn.
RESERVED_V6_BLOCKS = (
    "::/8",
    "100::/8",
    "200::/7",
    "400::/6",
    "800::/5",
    "1000::/4",
    "4000::/3",
    "6000::/3",
    "8000::/3",
    "a000::/3",
    "c000::/3",
    "e000::/4",
    "f000::/5",
    "f800::/6",
    "fe00::/9",
)

#: One address of three reserved blocks: outside every named range, so a server that
#: refuses only those is caught by the fixed list too.
RESERVED_V6 = ["100::1", "4000::1", "fe00::1"]

#: Each IPv6 range CHAT-004 refuses, whole (IPv4-mapped addresses go with their IPv4 range).
REFUSED_V6_NETWORKS: dict[str, tuple[str, ...]] = {
    "loopback": ("::1/128",),
    "unspecified": ("::/128",),
    "link-local": ("fe80::/10",),
    "unique-local": ("fc00::/7",),
    "multicast": ("ff00::/8",),
    "reserved": RESERVED_V6_BLOCKS,
}
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")

#: Host names CHAT-004 refuses (localhost and its subdomains), spelled as parsers accept.
REFUSED_NAMES = ["localhost", "LOCALHOST", "localhost.", "api.localhost", "api.localhost."]


def ipv4_forms(address: str) -> Iterator[tuple[str, str]]:
    """(notation, host) for every spelling of one IPv4 address."""
    parts = [int(p) for p in address.split(".")]
    number = int(ipaddress.IPv4Address(address))
    yield "dotted", address
    yield "trailing-dot", address + "."
    yield "integer", str(number)
    yield "hex", f"0x{number:x}"
    yield "dotted-hex", ".".join(f"0x{p:x}" for p in parts)
    yield "dotted-octal", ".".join(f"0{p:o}" for p in parts)
    yield "short", f"{parts[0]}.{number & 0xFFFFFF}"
    yield "mapped-v6", f"[::ffff:{address}]"
    yield "mapped-v6-hex", f"[::ffff:{number >> 16:x}:{number & 0xFFFF:x}]"


def refused_urls(range_name: str) -> list[tuple[str, str]]:
    """(label, url) for one IPv4 range in every notation, plus its scheme variants."""
    address = REFUSED_V4[range_name]
    urls = [(form, f"http://{host}/cat.png") for form, host in ipv4_forms(address)]
    urls.append(("https-port", f"https://{address}:8443/cat.png"))
    return urls


def other_refused_urls() -> list[tuple[str, str]]:
    """IPv6 ranges, localhost names, and schemes other than http(s)."""
    urls = [(f"v6 {host}", f"http://[{host}]/cat.png") for host in REFUSED_V6]
    urls += [(f"v6 reserved {host}", f"http://[{host}]/cat.png") for host in RESERVED_V6]
    urls += [(f"name {host}", f"https://{host}/cat.png") for host in REFUSED_NAMES]
    urls += [
        ("ftp", "ftp://example.com/cat.png"),
        ("javascript", "javascript:alert(1)"),
        ("file", "file:///etc/passwd"),
    ]
    return urls


@st.composite
def _refused_v4(draw: st.DrawFn) -> tuple[str, str]:
    name = draw(st.sampled_from(sorted(REFUSED_V4_NETWORKS)))
    network = ipaddress.IPv4Network(REFUSED_V4_NETWORKS[name])
    number = draw(st.integers(int(network.network_address), int(network.broadcast_address)))
    notation, host = draw(st.sampled_from(list(ipv4_forms(str(ipaddress.IPv4Address(number))))))
    return f"{name} {notation}", host


@st.composite
def _refused_v6(draw: st.DrawFn) -> tuple[str, str]:
    name = draw(st.sampled_from(sorted(REFUSED_V6_NETWORKS)))
    network = ipaddress.IPv6Network(draw(st.sampled_from(REFUSED_V6_NETWORKS[name])))
    number = draw(
        st.integers(int(network.network_address), int(network.broadcast_address)).filter(
            lambda n: ipaddress.IPv6Address(n) not in _MAPPED
        )
    )
    address = ipaddress.IPv6Address(number)
    notation, host = draw(
        st.sampled_from(
            [
                ("compressed", address.compressed),
                ("exploded", address.exploded),
                ("upper-case", address.compressed.upper()),
            ]
        )
    )
    return f"v6 {name} {notation}", f"[{host}]"


@st.composite
def refused_attachment_urls(draw: st.DrawFn) -> tuple[str, str]:
    """(label, url): any address of a refused range in any notation, IPv4 or IPv6, or a
    localhost name, under http or https, with or without a port and path."""
    names = [(f"name {n}", n) for n in REFUSED_NAMES]
    label, host = draw(st.one_of(_refused_v4(), _refused_v6(), st.sampled_from(names)))
    scheme = draw(st.sampled_from(["http", "https", "HTTP"]))
    port = draw(st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}")))
    path = draw(st.sampled_from(["/cat.png", "/", "", "/a/b?x=1#f"]))
    return label, f"{scheme}://{host}{port}{path}"
