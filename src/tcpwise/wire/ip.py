"""IPv4 and IPv6 header codec and whole TCP/IP packets (RFC 791, RFC 8200).

Theory of operation
-------------------
:func:`parse_ip` reads the network header of a raw IP packet (what a ``LINKTYPE_RAW`` pcap record or a TUN device
carries) and returns a header value plus a zero-copy view of its upper-layer payload:

* IPv4 (RFC 791 §3.1): version, IHL >= 5, total length (the payload stops there, so Ethernet minimum-frame
  padding after it is ignored), identification, the 3 flag bits (reserved, DF, MF), fragment offset, TTL,
  protocol, header checksum (checked only when ``verify=True``) and raw options.
* IPv6 (RFC 8200 §3): fixed 40-byte header, then the extension-header chain is walked to the upper-layer header:
  Hop-by-Hop (0, only directly after the fixed header, §4.3), Routing (43), Destination Options (60), Fragment
  (44) and Authentication (51, RFC 4302 §2.2 length in 4-octet units). Their raw bytes are kept so that
  :func:`emit_ip` reproduces the packet.

Fragments are parsed and flagged (``is_fragment``); :func:`parse_packet` refuses them because a fragment does not
carry a whole TCP segment (reassembly is out of scope). An RFC 6946 "atomic fragment" (offset 0, M=0) is not a
fragment.

Addresses are strings in the API (``"198.18.0.1"``, ``"fd00::1"``); conversion in both directions is cached, since
a capture or a simulation talks between few addresses. Everything is pure: no sockets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv6Address
from typing import TypeAlias

from tcpwise.wire.checksum import IPPROTO_TCP, internet_checksum, partial_sum
from tcpwise.wire.errors import WireError
from tcpwise.wire.segment import TcpSegment
from tcpwise.wire.tcp import addr_bytes, emit_tcp, fast_constructor, parse_tcp

__all__ = [
    "IPv4Header",
    "IPv6Header",
    "IpHeader",
    "parse_ip",
    "emit_ip",
    "build_packet",
    "parse_packet",
    "addr_str",
    "final_destination",
    "IPV4_HEADER_LEN",
    "IPV6_HEADER_LEN",
    "IPPROTO_TCP",
    "IPPROTO_HOPOPTS",
    "IPPROTO_ROUTING",
    "IPPROTO_FRAGMENT",
    "IPPROTO_AH",
    "IPPROTO_NONE",
    "IPPROTO_DSTOPTS",
]

IPV4_HEADER_LEN = 20
IPV6_HEADER_LEN = 40

# IANA protocol numbers used as IPv6 Next Header values (RFC 8200 §4).
IPPROTO_HOPOPTS = 0
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_AH = 51
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60
_EXT_HEADERS = frozenset((IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_AH, IPPROTO_DSTOPTS))

# RFC 791 §3.1: version/IHL, TOS, total length, identification, flags/fragment offset, TTL, protocol, checksum.
_V4 = struct.Struct("!BBHHHBBH4s4s")
# RFC 8200 §3: version/traffic class/flow label (32 bits), payload length, next header, hop limit.
_V6 = struct.Struct("!IHBB16s16s")
_FRAG6 = struct.Struct("!BBHI")  # RFC 8200 §4.5: next header, reserved, offset<<3 | res | M, identification

_IPV4_DF = 0x2
_IPV4_MF = 0x1


@dataclass(frozen=True, slots=True)
class IPv4Header:
    """An IPv4 header (RFC 791 §3.1). ``flags`` is the raw 3-bit field (reserved, DF=0x2, MF=0x1);
    ``frag_offset`` is in 8-octet units as on the wire; ``checksum`` is the wire value (None when built)."""

    src: str
    dst: str
    proto: int = IPPROTO_TCP
    ttl: int = 64
    ident: int = 0
    tos: int = 0
    flags: int = _IPV4_DF
    frag_offset: int = 0
    total_length: int = 0
    checksum: int | None = None
    options: bytes = b""

    version = 4

    @property
    def ihl(self) -> int:
        """Header length in 32-bit words."""
        return 5 + (len(self.options) + 3) // 4

    @property
    def header_len(self) -> int:
        return self.ihl * 4

    @property
    def df(self) -> bool:
        return bool(self.flags & _IPV4_DF)

    @property
    def mf(self) -> bool:
        return bool(self.flags & _IPV4_MF)

    @property
    def is_fragment(self) -> bool:
        """True for any piece of a fragmented datagram (MF set or a non-zero offset, RFC 791 §2.3)."""
        return bool(self.flags & _IPV4_MF) or self.frag_offset != 0

    @property
    def hop_limit(self) -> int:
        return self.ttl

    @property
    def dscp(self) -> int:
        return self.tos >> 2

    @property
    def ecn(self) -> int:
        return self.tos & 3  # RFC 3168 §5


@dataclass(frozen=True, slots=True)
class IPv6Header:
    """An IPv6 header (RFC 8200 §3) plus its extension-header chain.

    ``next_header`` is the fixed header's field; ``proto`` is the upper-layer protocol found at the end of the
    chain. ``ext_headers`` holds ``(type, raw bytes)`` for each extension header, in order. Fragment header
    fields are lifted into ``frag_offset`` (8-octet units), ``mf`` and ``frag_id`` (None without one)."""

    src: str
    dst: str
    proto: int = IPPROTO_TCP
    hop_limit: int = 64
    traffic_class: int = 0
    flow_label: int = 0
    payload_length: int = 0
    next_header: int = IPPROTO_TCP
    ext_headers: tuple[tuple[int, bytes], ...] = ()
    frag_offset: int = 0
    mf: bool = False
    frag_id: int | None = None

    version = 6

    @property
    def header_len(self) -> int:
        """Fixed header plus extension headers: where the upper-layer header starts."""
        return IPV6_HEADER_LEN + sum(len(raw) for _, raw in self.ext_headers)

    @property
    def is_fragment(self) -> bool:
        return self.mf or self.frag_offset != 0

    @property
    def pseudo_dst(self) -> str:
        """The destination the TCP pseudo-header uses: ``dst``, or the final hop of a Routing header that still
        has segments left (RFC 8200 §8.1; see :func:`final_destination`)."""
        packed = addr_bytes(self.dst)
        for kind, raw in self.ext_headers:
            if kind == IPPROTO_ROUTING:
                packed = final_destination(raw, packed)
        return addr_str(packed)

    @property
    def ttl(self) -> int:
        return self.hop_limit

    @property
    def ecn(self) -> int:
        return self.traffic_class & 3


IpHeader: TypeAlias = IPv4Header | IPv6Header

_make_v4 = fast_constructor(
    IPv4Header,
    (
        "src",
        "dst",
        "proto",
        "ttl",
        "ident",
        "tos",
        "flags",
        "frag_offset",
        "total_length",
        "checksum",
        "options",
    ),
)
_make_v6 = fast_constructor(
    IPv6Header,
    ("src", "dst", "proto", "hop_limit", "traffic_class", "flow_label", "payload_length", "next_header",
     "ext_headers", "frag_offset", "mf", "frag_id"),
)  # fmt: skip


@lru_cache(maxsize=4096)
def addr_str(packed: bytes) -> str:
    """Packed 4- or 16-byte address -> its usual text form (RFC 5952 for IPv6), cached."""
    if len(packed) == 4:
        return f"{packed[0]}.{packed[1]}.{packed[2]}.{packed[3]}"
    return IPv6Address(packed).compressed


# -- parse -------------------------------------------------------------------------------------------------------
def _parse_v4(
    buf: bytes | bytearray | memoryview, n: int, verify: bool
) -> tuple[IPv4Header, memoryview, bytes, bytes]:
    vihl, tos, total, ident, ffo, ttl, proto, csum, src, dst = _V4.unpack_from(buf, 0)
    hl = (vihl & 0x0F) * 4
    if hl < IPV4_HEADER_LEN:
        raise WireError(f"IPv4 IHL {hl // 4} is below the minimum of 5 words")
    if hl > n:
        raise WireError(f"IPv4 IHL {hl // 4} ({hl} bytes) runs past the {n}-byte packet")
    if total < hl:
        raise WireError(f"IPv4 total length {total} is shorter than the {hl}-byte header")
    if total > n:
        raise WireError(f"IPv4 total length {total} runs past the {n}-byte packet (truncated capture?)")
    mv = memoryview(buf)
    # A correct header sums to ones' complement zero (0xFFFF, residue 0); an all-zero header cannot reach here.
    if verify and partial_sum(mv[:hl]):
        raise WireError(f"IPv4 header checksum 0x{csum:04x} does not verify")
    hdr = _make_v4(
        addr_str(src),
        addr_str(dst),
        proto,
        ttl,
        ident,
        tos,
        ffo >> 13,
        ffo & 0x1FFF,
        total,
        csum,
        bytes(mv[IPV4_HEADER_LEN:hl]) if hl > IPV4_HEADER_LEN else b"",
    )
    return hdr, mv[hl:total], src, dst


def _parse_v6(buf: bytes | bytearray | memoryview, n: int) -> tuple[IPv6Header, memoryview, bytes, bytes]:
    if n < IPV6_HEADER_LEN:
        raise WireError(f"IPv6 packet is {n} bytes, shorter than the 40-byte fixed header")
    vtf, plen, nh, hlim, src, dst = _V6.unpack_from(buf, 0)
    end = IPV6_HEADER_LEN + plen
    if end > n:
        raise WireError(f"IPv6 payload length {plen} runs past the {n}-byte packet (truncated capture?)")
    mv = memoryview(buf)
    exts: list[tuple[int, bytes]] = []
    off = IPV6_HEADER_LEN
    proto = nh
    final_dst = dst
    frag_offset = 0
    mf = False
    frag_id: int | None = None
    while proto in _EXT_HEADERS:
        if proto == IPPROTO_HOPOPTS and off != IPV6_HEADER_LEN:
            raise WireError(f"IPv6 Hop-by-Hop header at offset {off}; it may only follow the fixed header")
        if off + 8 > end:  # every extension header is at least 8 octets
            raise WireError(f"IPv6 extension header {proto} at offset {off} is truncated")
        if proto == IPPROTO_FRAGMENT:
            ln = 8
        elif proto == IPPROTO_AH:
            ln = (mv[off + 1] + 2) * 4  # RFC 4302 §2.2: 32-bit words minus 2
        else:
            ln = (mv[off + 1] + 1) * 8  # RFC 8200 §4.3/4.4/4.6: 8-octet units, not counting the first 8
        if off + ln > end:
            raise WireError(
                f"IPv6 extension header {proto} at offset {off} with length {ln} runs past the payload"
            )
        raw = bytes(mv[off : off + ln])
        exts.append((proto, raw))
        next_proto = raw[0]
        off += ln
        if proto == IPPROTO_FRAGMENT:
            _, _, offm, ident = _FRAG6.unpack(raw)
            frag_offset, mf, frag_id = offm >> 3, bool(offm & 1), ident
            proto = next_proto
            if frag_offset:
                break  # RFC 8200 §4.5: a non-first fragment carries fragment data, not the next header
        else:
            if proto == IPPROTO_ROUTING:
                final_dst = final_destination(raw, final_dst)
            proto = next_proto
    hdr = _make_v6(
        addr_str(src),
        addr_str(dst),
        proto,
        hlim,
        (vtf >> 20) & 0xFF,
        vtf & 0xFFFFF,
        plen,
        nh,
        tuple(exts),
        frag_offset,
        mf,
        frag_id,
    )
    return hdr, mv[off:end], src, final_dst


def final_destination(routing: bytes, dst: bytes) -> bytes:
    """The final destination named by a Routing header ``routing`` (raw bytes) given the packed IPv6 destination.

    RFC 8200 §8.1: the upper-layer pseudo-header uses the *final* destination. While segments are left it is not
    the Destination Address field but the Routing header's last hop: the last address for type 0 (RFC 2460,
    deprecated by RFC 5095 but still seen in captures) and type 2 (RFC 6275, one address), and Segment List[0]
    for the Segment Routing Header, type 4 (RFC 8754 §2: the list is stored in reverse order). Other types and
    ``Segments Left == 0`` leave ``dst`` as it is.
    """
    rtype, segs_left = routing[2], routing[3]
    if segs_left == 0 or len(routing) < 24:
        return dst
    if rtype in (0, 2):
        count = (len(routing) - 8) // 16
        return routing[8 + 16 * (count - 1) : 8 + 16 * count]
    if rtype == 4:
        return routing[8:24]
    return dst


def _parse(buf: bytes | bytearray | memoryview, verify: bool) -> tuple[IpHeader, memoryview, bytes, bytes]:
    n = len(buf)
    if n < IPV4_HEADER_LEN:
        raise WireError(f"IP packet is {n} bytes, shorter than any IP header")
    version = buf[0] >> 4
    if version == 4:
        return _parse_v4(buf, n, verify)
    if version == 6:
        return _parse_v6(buf, n)
    raise WireError(f"IP version {version} (first byte 0x{buf[0]:02x}); only 4 and 6 are IP")


def parse_ip(buf: bytes | bytearray | memoryview, verify: bool = False) -> tuple[IpHeader, memoryview]:
    """Parse a raw IPv4 or IPv6 packet.

    Returns:
        ``(header, payload)`` where ``payload`` is a memoryview of the upper-layer bytes (after any IPv6 extension
        headers, cut at the IPv4 total length / IPv6 payload length).

    Raises:
        WireError: unknown version, impossible lengths, truncation, a misplaced Hop-by-Hop header, or (with
        ``verify``) a bad IPv4 header checksum. IPv6 has no header checksum (RFC 8200 §8.1 relies on upper layers).
    """
    hdr, payload, _, _ = _parse(buf, verify)
    return hdr, payload


def parse_packet(buf: bytes | bytearray | memoryview, verify: bool = False) -> tuple[IpHeader, TcpSegment]:
    """Parse a raw IP packet carrying one TCP segment; ``verify`` checks the IPv4 and TCP checksums.

    Raises:
        WireError: anything :func:`parse_ip` or :func:`~tcpwise.wire.tcp.parse_tcp` rejects, a protocol other
        than TCP, or a fragment (no reassembly).
    """
    hdr, payload, src, dst = _parse(buf, verify)
    if hdr.is_fragment:
        raise WireError(
            f"IP fragment (offset {hdr.frag_offset * 8}, MF={int(hdr.mf)}): reassembly is not supported"
        )
    if hdr.proto != IPPROTO_TCP:
        raise WireError(f"IP protocol {hdr.proto} is not TCP (6)")
    return hdr, parse_tcp(payload, src, dst, verify)


# -- emit --------------------------------------------------------------------------------------------------------
def emit_ip(hdr: IpHeader, payload: bytes, keep_lengths: bool = False) -> bytes:
    """Wire bytes of ``hdr`` followed by ``payload``.

    Lengths (IPv4 total length, IPv6 payload length) and the IPv4 header checksum are computed from what is
    emitted unless ``keep_lengths=True``, which writes the header's own ``total_length``/``payload_length`` and
    ``checksum`` (when not None) for a verbatim re-emit. IPv4 options are zero-padded to a 32-bit word.
    """
    try:
        if isinstance(hdr, IPv4Header):
            opts = hdr.options + b"\x00" * (-len(hdr.options) & 3)
            hl = IPV4_HEADER_LEN + len(opts)
            if hl > 60:
                raise WireError(f"IPv4 options take {len(opts)} bytes; at most 40 fit (4-bit IHL)")
            if not (0 <= hdr.flags <= 7 and 0 <= hdr.frag_offset <= 0x1FFF):
                raise WireError(
                    f"IPv4 flags {hdr.flags} / fragment offset {hdr.frag_offset} do not fit 3 + 13 bits"
                )
            total = hdr.total_length if keep_lengths else hl + len(payload)
            head = bytearray(
                _V4.pack(
                    0x40 | (hl >> 2),
                    hdr.tos,
                    total,
                    hdr.ident,
                    (hdr.flags << 13) | hdr.frag_offset,
                    hdr.ttl,
                    hdr.proto,
                    0,
                    addr_bytes(hdr.src),
                    addr_bytes(hdr.dst),
                )
            )
            head += opts
            csum = hdr.checksum if keep_lengths and hdr.checksum is not None else internet_checksum(head)
            struct.pack_into("!H", head, 10, csum)
            return bytes(head) + payload
        ext = b"".join(raw for _, raw in hdr.ext_headers)
        plen = hdr.payload_length if keep_lengths else len(ext) + len(payload)
        if not (0 <= hdr.traffic_class <= 0xFF and 0 <= hdr.flow_label <= 0xFFFFF):
            raise WireError(
                f"IPv6 traffic class {hdr.traffic_class} / flow label {hdr.flow_label} do not fit"
            )
        vtf = (6 << 28) | (hdr.traffic_class << 20) | hdr.flow_label
        return (
            _V6.pack(vtf, plen, hdr.next_header, hdr.hop_limit, addr_bytes(hdr.src), addr_bytes(hdr.dst))
            + ext
            + payload
        )
    except struct.error as e:
        raise WireError(f"cannot encode {hdr!r}: {e}") from None


def build_packet(
    src: str, dst: str, seg: TcpSegment, ttl: int = 64, ident: int = 0, df: bool = True, tos: int = 0
) -> bytes:
    """A complete raw IP packet carrying ``seg``, IPv4 or IPv6 by the addresses' family, valid checksums.

    IPv4 sets DF by default, as Linux does for TCP (path MTU discovery, RFC 1191); ``ttl`` is the IPv6 hop limit
    and ``tos`` the traffic class for IPv6.
    """
    s = addr_bytes(src)
    d = addr_bytes(dst)
    if len(s) != len(d):
        raise WireError(f"address families differ: {src!r} -> {dst!r}")
    tcp = emit_tcp(seg, s, d)
    if len(s) == 4:
        total = IPV4_HEADER_LEN + len(tcp)
        try:
            head = bytearray(
                _V4.pack(0x45, tos, total, ident, _IPV4_DF << 13 if df else 0, ttl, IPPROTO_TCP, 0, s, d)
            )
        except struct.error as e:
            raise WireError(f"cannot encode IPv4 header: {e}") from None
        struct.pack_into("!H", head, 10, internet_checksum(head))
        return bytes(head) + tcp
    if not 0 <= tos <= 0xFF:
        raise WireError(f"traffic class {tos} does not fit 8 bits")
    try:
        return _V6.pack((6 << 28) | (tos << 20), len(tcp), IPPROTO_TCP, ttl, s, d) + tcp
    except struct.error as e:
        raise WireError(f"cannot encode IPv6 header: {e}") from None
