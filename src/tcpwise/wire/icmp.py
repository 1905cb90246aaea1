"""ICMP (RFC 792) and ICMPv6 (RFC 4443) messages: echo and the error messages a TCP host meets.

Theory of operation
-------------------
Both protocols share one header layout: type (1 byte), code (1 byte), checksum (2 bytes), four bytes whose
meaning depends on the type (identifier and sequence number of an echo; unused, or the next-hop MTU of
"fragmentation needed" / "packet too big", for errors) and a body (the echo data, or the start of the datagram
that caused an error). :class:`IcmpMessage` keeps those four bytes as one 32-bit ``rest``.

The checksums differ: ICMP sums the message alone (RFC 792), ICMPv6 adds the IPv6 pseudo-header with next
header 58 (RFC 4443 §2.3, RFC 8200 §8.1) — the same residue arithmetic as TCP's (:mod:`.checksum`).

Error messages quote the invoking packet (RFC 1812 §4.3.2.3: as much as fits in 576 bytes for IPv4; RFC 4443
§2.4(c): as much as fits in the minimum IPv6 MTU of 1280) so that the receiver can find the transport connection
from the quoted ports; :func:`quoted_tcp_ports` reads them back. Sans-IO, like the rest of :mod:`tcpwise.wire`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tcpwise.wire.checksum import internet_checksum, partial_sum, pseudo_header_sum
from tcpwise.wire.errors import WireError
from tcpwise.wire.ip import IPv4Header, IPv6Header, addr_str, emit_ip
from tcpwise.wire.tcp import addr_bytes

__all__ = [
    "IcmpMessage",
    "IPPROTO_ICMP",
    "IPPROTO_ICMPV6",
    "ICMP_ECHO_REPLY",
    "ICMP_DEST_UNREACH",
    "ICMP_ECHO_REQUEST",
    "ICMP_TIME_EXCEEDED",
    "ICMP6_DEST_UNREACH",
    "ICMP6_PACKET_TOO_BIG",
    "ICMP6_TIME_EXCEEDED",
    "ICMP6_PARAM_PROBLEM",
    "ICMP6_ECHO_REQUEST",
    "ICMP6_ECHO_REPLY",
    "UNREACH_ERRNO_V4",
    "UNREACH_ERRNO_V6",
    "parse_icmp",
    "emit_icmp",
    "icmp_packet",
    "echo_reply",
    "unreachable",
    "quoted_tcp_ports",
]

IPPROTO_ICMP = 1
IPPROTO_ICMPV6 = 58

# RFC 792 types.
ICMP_ECHO_REPLY = 0
ICMP_DEST_UNREACH = 3
ICMP_ECHO_REQUEST = 8
ICMP_TIME_EXCEEDED = 11
# RFC 4443 types (errors below 128, informational from 128).
ICMP6_DEST_UNREACH = 1
ICMP6_PACKET_TOO_BIG = 2
ICMP6_TIME_EXCEEDED = 3
ICMP6_PARAM_PROBLEM = 4
ICMP6_ECHO_REQUEST = 128
ICMP6_ECHO_REPLY = 129

# Destination-unreachable code -> the errno a socket user sees (Linux icmp_err_convert[] in net/ipv4/icmp.c and
# icmpv6_err_convert() in net/ipv6/icmp.c). Codes not listed map to EHOSTUNREACH.
UNREACH_ERRNO_V4: dict[int, str] = {
    0: "ENETUNREACH",  # net unreachable
    1: "EHOSTUNREACH",  # host unreachable
    2: "ENOPROTOOPT",  # protocol unreachable
    3: "ECONNREFUSED",  # port unreachable
    4: "EMSGSIZE",  # fragmentation needed and DF set
    9: "ENETUNREACH",  # net administratively prohibited
    10: "EHOSTUNREACH",  # host administratively prohibited
    13: "EHOSTUNREACH",  # communication administratively prohibited (RFC 1812)
}
UNREACH_ERRNO_V6: dict[int, str] = {
    0: "ENETUNREACH",  # no route to destination
    1: "EACCES",  # communication administratively prohibited
    3: "EHOSTUNREACH",  # address unreachable
    4: "ECONNREFUSED",  # port unreachable
}

_HDR = struct.Struct("!BBHI")
_V4_QUOTE_LIMIT = 576  # RFC 1812 §4.3.2.3: the whole ICMP error datagram stays within 576 bytes
_V6_QUOTE_LIMIT = 1280  # RFC 4443 §2.4(c): within the minimum IPv6 MTU


@dataclass(frozen=True, slots=True)
class IcmpMessage:
    """One ICMP or ICMPv6 message. ``rest`` is the 32-bit word after the checksum (echo: id << 16 | seq)."""

    type: int
    code: int
    rest: int = 0
    body: bytes = b""

    @property
    def ident(self) -> int:
        return self.rest >> 16

    @property
    def sequence(self) -> int:
        return self.rest & 0xFFFF


def _sum6(src: str, dst: str, length: int) -> int:
    return pseudo_header_sum(addr_bytes(src), addr_bytes(dst), length, IPPROTO_ICMPV6)


def parse_icmp(
    buf: bytes | bytearray | memoryview, v6: bool, src: str = "", dst: str = "", verify: bool = True
) -> IcmpMessage:
    """Parse the ICMP(v6) message in ``buf`` (the IP payload). ``src``/``dst`` are needed to verify an ICMPv6
    checksum (pseudo-header). Raises :class:`WireError` when short or when the checksum does not verify."""
    if len(buf) < _HDR.size:
        raise WireError(f"ICMP message is {len(buf)} bytes, shorter than its 8-byte header")
    mtype, code, _, rest = _HDR.unpack_from(buf, 0)
    if verify:
        total = partial_sum(buf)
        if v6:
            total += _sum6(src, dst, len(buf))
        if total % 0xFFFF != 0:
            raise WireError("ICMP checksum does not verify")
    return IcmpMessage(mtype, code, rest, bytes(buf[_HDR.size :]))


def emit_icmp(msg: IcmpMessage, v6: bool, src: str = "", dst: str = "") -> bytes:
    """Wire bytes of ``msg`` with its checksum (ICMPv6 needs ``src``/``dst`` for the pseudo-header)."""
    try:
        raw = bytearray(_HDR.pack(msg.type, msg.code, 0, msg.rest)) + msg.body
    except struct.error as e:
        raise WireError(f"cannot encode {msg!r}: {e}") from None
    if v6:
        csum = ~((_sum6(src, dst, len(raw)) + partial_sum(raw)) % 0xFFFF) & 0xFFFF
    else:
        csum = internet_checksum(raw)
    struct.pack_into("!H", raw, 2, csum)
    return bytes(raw)


def icmp_packet(src: str, dst: str, msg: IcmpMessage, ttl: int = 64) -> bytes:
    """A whole IPv4 or IPv6 packet (family from the addresses) carrying ``msg``."""
    v6 = ":" in src
    payload = emit_icmp(msg, v6, src, dst)
    if v6:
        hdr6 = IPv6Header(src, dst, IPPROTO_ICMPV6, ttl, next_header=IPPROTO_ICMPV6)
        return emit_ip(hdr6, payload)
    # ICMP errors and echo replies go without DF (Linux icmp_push_reply leaves frag_off 0).
    return emit_ip(IPv4Header(src, dst, IPPROTO_ICMP, ttl, flags=0), payload)


def echo_reply(request: IcmpMessage, v6: bool) -> IcmpMessage:
    """The reply to an echo request: same identifier, sequence number and data (RFC 792, RFC 4443 §4.2)."""
    return IcmpMessage(ICMP6_ECHO_REPLY if v6 else ICMP_ECHO_REPLY, 0, request.rest, request.body)


def unreachable(invoking: bytes, code: int, v6: bool) -> IcmpMessage:
    """A destination-unreachable error quoting the start of ``invoking`` (the whole IP packet)."""
    if v6:
        return IcmpMessage(ICMP6_DEST_UNREACH, code, 0, bytes(invoking[: _V6_QUOTE_LIMIT - 48]))
    return IcmpMessage(ICMP_DEST_UNREACH, code, 0, bytes(invoking[: _V4_QUOTE_LIMIT - 28]))


def quoted_tcp_ports(msg: IcmpMessage) -> tuple[str, str, int, int] | None:
    """From an error message's quoted datagram: (src, dst, sport, dport) of the TCP segment that caused it, or
    None when the quote is not TCP or too short (RFC 792 guarantees the IP header plus 8 bytes: the ports).

    The quote is usually cut short of the length its IP header claims, so the header is read field by field
    here instead of through :func:`parse_ip`, which would call the truncation an error."""
    b = msg.body
    if len(b) < 20:
        return None
    version = b[0] >> 4
    if version == 4:
        off = (b[0] & 0x0F) * 4
        proto = b[9]
        src, dst = addr_str(b[12:16]), addr_str(b[16:20])
    elif version == 6 and len(b) >= 40:
        off, proto = 40, b[6]  # extension headers before TCP are not followed in a quote
        src, dst = addr_str(b[8:24]), addr_str(b[24:40])
    else:
        return None
    if proto != 6 or len(b) < off + 4:
        return None
    sport, dport = struct.unpack_from("!HH", b, off)
    return src, dst, sport, dport
