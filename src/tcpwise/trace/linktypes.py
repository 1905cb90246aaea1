"""Link-layer types the trace reader understands (tcpdump.org linktypes list, pcap draft §8).

Theory of operation: for each supported link type we need only two things — where the network-layer header starts
and how the link layer says which network protocol follows. :mod:`tcpwise.trace.decode` applies these rules to a
whole batch at once; this module keeps the numbers and names in one place so that an unsupported link type can be
reported with the list of valid ones.
"""

from __future__ import annotations

from tcpwise.errors import UsageError

__all__ = [
    "NULL",
    "EN10MB",
    "RAW",
    "LOOP",
    "LINUX_SLL",
    "IPV4",
    "IPV6",
    "LINUX_SLL2",
    "RAW_BSD",
    "RAW_OPENBSD",
    "LINKTYPE_NAMES",
    "ETHERTYPE_IPV4",
    "ETHERTYPE_IPV6",
    "VLAN_TPIDS",
    "NULL_AF_INET",
    "NULL_AF_INET6",
    "check_linktype",
]

NULL = 0  # BSD loopback: 4-byte address family in the *capturing host's* byte order
EN10MB = 1  # Ethernet II (IEEE 802.1Q/802.1ad tags allowed)
RAW_BSD = 12  # DLT_RAW on most BSDs/Linux libpcap (pcap files sometimes carry the DLT value)
RAW_OPENBSD = 14  # DLT_RAW on OpenBSD
RAW = 101  # raw IPv4/IPv6, version nibble tells which
LOOP = 108  # OpenBSD loopback: address family in network byte order
LINUX_SLL = 113  # Linux "cooked" capture v1: 16-byte header, protocol at byte 14 (`tcpdump -i any`)
IPV4 = 228
IPV6 = 229
LINUX_SLL2 = 276  # Linux cooked v2: 20-byte header, protocol at byte 0

LINKTYPE_NAMES: dict[int, str] = {
    NULL: "NULL (BSD loopback)",
    EN10MB: "ETHERNET",
    RAW_BSD: "RAW (DLT 12)",
    RAW_OPENBSD: "RAW (DLT 14)",
    RAW: "RAW",
    LOOP: "LOOP",
    LINUX_SLL: "LINUX_SLL",
    IPV4: "IPV4",
    IPV6: "IPV6",
    LINUX_SLL2: "LINUX_SLL2",
}

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
# 802.1Q C-tag, 802.1ad S-tag, and the pre-standard QinQ value some switches still emit.
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
# BSD AF_INET is 2 everywhere; AF_INET6 differs by OS (24 NetBSD/OpenBSD, 28 FreeBSD, 30 macOS).
NULL_AF_INET = (2,)
NULL_AF_INET6 = (24, 28, 30)


def check_linktype(linktype: int, path: str = "capture") -> None:
    """Raise a one-line UsageError naming the supported link types when ``linktype`` is not one of them."""
    if linktype not in LINKTYPE_NAMES:
        valid = ", ".join(f"{n} {name}" for n, name in sorted(LINKTYPE_NAMES.items()))
        raise UsageError(f"{path}: unsupported link type {linktype} (supported: {valid})")
