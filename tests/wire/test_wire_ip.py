"""IPv4 (options, fragments) and IPv6 (extension-header chains, fragments) parsing and emitting."""

from __future__ import annotations

import struct

import pytest

from tcpwise.wire import (
    IPv4Header,
    IPv6Header,
    TcpSegment,
    WireError,
    addr_bytes,
    build_packet,
    emit_ip,
    emit_tcp,
    internet_checksum,
    parse_ip,
    parse_packet,
)
from tcpwise.wire.ip import IPPROTO_AH, IPPROTO_DSTOPTS, IPPROTO_FRAGMENT, IPPROTO_HOPOPTS, IPPROTO_ROUTING

SEG = TcpSegment(40000, 443, 1000, 2000, 0x18, 512, payload=b"payload")
A4, B4 = "198.18.0.1", "198.18.1.1"
A6, B6 = "fd00::1", "fd00:0:0:1::1"


def v4_packet(
    options: bytes = b"", flags: int = 0x2, frag: int = 0, proto: int = 6, payload: bytes | None = None
) -> bytes:
    """Build an IPv4 packet by hand (independently of emit_ip) around a TCP segment."""
    body = emit_tcp(SEG, A4, B4) if payload is None else payload
    hl = 20 + len(options)
    head = bytearray(
        struct.pack("!BBHHHBBH4s4s", 0x40 | hl // 4, 0, hl + len(body), 7, flags << 13 | frag, 64, proto, 0,
                    addr_bytes(A4), addr_bytes(B4)) + options
    )  # fmt: skip
    struct.pack_into("!H", head, 10, internet_checksum(head))
    return bytes(head) + body


def v6_packet(exts: list[tuple[int, bytes]], payload: bytes | None = None) -> bytes:
    """Build an IPv6 packet by hand; each ext is (its type, bytes with next-header byte to be filled in)."""
    body = emit_tcp(SEG, A6, B6) if payload is None else payload
    chain = b""
    types = [t for t, _ in exts] + [6]
    for i, (_, raw) in enumerate(exts):
        chain += bytes([types[i + 1]]) + raw[1:]
    first = types[0]
    head = struct.pack(
        "!IHBB16s16s", 6 << 28, len(chain) + len(body), first, 64, addr_bytes(A6), addr_bytes(B6)
    )
    return head + chain + body


def test_ipv4_options_parsed_and_reemitted() -> None:
    ra = bytes.fromhex("94040000")  # Router Alert (RFC 2113), one word: IHL 6
    pkt = v4_packet(ra)
    hdr, seg = parse_packet(pkt, verify=True)
    assert isinstance(hdr, IPv4Header)
    assert hdr.options == ra and hdr.ihl == 6 and hdr.header_len == 24
    assert seg.payload == b"payload"
    assert emit_ip(hdr, emit_tcp(seg, hdr.src, hdr.dst)) == pkt


@pytest.mark.parametrize(("flags", "frag", "is_frag"), [(0x1, 0, True), (0x0, 185, True), (0x2, 0, False)])
def test_ipv4_fragments_flagged(flags: int, frag: int, is_frag: bool) -> None:
    pkt = v4_packet(flags=flags, frag=frag)
    hdr, _ = parse_ip(pkt, verify=True)
    assert hdr.is_fragment is is_frag and hdr.frag_offset == frag and hdr.flags == flags
    if is_frag:
        with pytest.raises(WireError, match="fragment"):
            parse_packet(pkt)
    else:
        parse_packet(pkt, verify=True)


def test_ipv6_extension_chain_reaches_tcp() -> None:
    hbh = bytes.fromhex("00 00 0104 00000000")  # Hop-by-Hop: PadN(4), 8 octets
    dst = bytes.fromhex(
        "00 01 0000 00000000 01060000 00000000"
    )  # Destination Options: Hdr Ext Len 1 = 16 octets
    rt = bytes.fromhex("00 02 04 00 00000000") + bytes(16)  # Routing type 4 (SRH) stub, 24 octets
    ah = bytes.fromhex("00 03 0000 00000001 00000002") + bytes(8)  # AH, Payload Len 3 -> (3+2)*4 = 20 octets
    frag = bytes.fromhex("00 00 0000 12345678")  # atomic fragment: offset 0, M=0 (RFC 6946)
    exts = [(IPPROTO_HOPOPTS, hbh), (IPPROTO_DSTOPTS, dst), (IPPROTO_ROUTING, rt), (IPPROTO_AH, ah),
            (IPPROTO_FRAGMENT, frag)]  # fmt: skip
    pkt = v6_packet(exts)
    hdr, seg = parse_packet(pkt, verify=True)
    assert isinstance(hdr, IPv6Header)
    assert hdr.next_header == IPPROTO_HOPOPTS and hdr.proto == 6
    assert [t for t, _ in hdr.ext_headers] == [t for t, _ in exts]
    assert [len(r) for _, r in hdr.ext_headers] == [8, 16, 24, 20, 8]
    assert hdr.header_len == 40 + 76
    assert hdr.frag_id == 0x12345678 and not hdr.is_fragment
    assert seg == SEG.with_(checksum=seg.checksum)
    assert emit_ip(hdr, emit_tcp(seg, hdr.src, hdr.dst)) == pkt


def test_ipv6_fragments() -> None:
    first = bytes.fromhex("00 00 0001 00000009")  # offset 0, M=1: first fragment, TCP header follows
    hdr, payload = parse_ip(v6_packet([(IPPROTO_FRAGMENT, first)]))
    assert isinstance(hdr, IPv6Header)
    assert hdr.is_fragment and hdr.mf and hdr.frag_offset == 0 and hdr.proto == 6 and hdr.frag_id == 9
    later = bytes.fromhex("00 00 00b8 00000009")  # offset 23 (184 octets), M=0: only fragment data follows
    pkt = v6_packet([(IPPROTO_FRAGMENT, later)], payload=b"\x00" * 16)
    hdr, payload = parse_ip(pkt)
    assert hdr.is_fragment and hdr.frag_offset == 23 and not hdr.mf and len(payload) == 16
    with pytest.raises(WireError, match="fragment"):
        parse_packet(pkt)


def test_ipv6_misplaced_hop_by_hop_and_truncated_ext() -> None:
    dst = bytes.fromhex("00 00 0104 00000000")
    hbh = bytes.fromhex("00 00 0104 00000000")
    with pytest.raises(WireError, match="Hop-by-Hop"):
        parse_ip(v6_packet([(IPPROTO_DSTOPTS, dst), (IPPROTO_HOPOPTS, hbh)]))
    long_dst = bytes.fromhex("00 ff 0000 00000000")  # claims 2048 octets
    with pytest.raises(WireError, match="runs past"):
        parse_ip(v6_packet([(IPPROTO_DSTOPTS, long_dst)]))
    with pytest.raises(WireError, match="truncated"):
        parse_ip(v6_packet([(IPPROTO_DSTOPTS, dst)], payload=b"")[:-4] + b"")  # payload length now lies
    pkt = bytearray(v6_packet([], payload=b""))
    pkt[6] = IPPROTO_DSTOPTS  # next header says "ext header" but nothing follows
    with pytest.raises(WireError, match="truncated"):
        parse_ip(bytes(pkt))


def test_build_packet_v4_fields() -> None:
    pkt = build_packet(A4, B4, SEG, ttl=3, ident=0xBEEF, df=False, tos=0x02)
    hdr, seg = parse_packet(pkt, verify=True)
    assert isinstance(hdr, IPv4Header)
    assert (hdr.ttl, hdr.ident, hdr.df, hdr.tos, hdr.ecn) == (3, 0xBEEF, False, 2, 2)
    assert (hdr.src, hdr.dst, hdr.total_length) == (A4, B4, len(pkt))


def test_build_packet_v6_fields() -> None:
    pkt = build_packet(A6, B6, SEG, ttl=9)
    hdr, seg = parse_packet(pkt, verify=True)
    assert isinstance(hdr, IPv6Header)
    assert (hdr.src, hdr.dst, hdr.hop_limit, hdr.payload_length) == (A6, B6, 9, len(pkt) - 40)
    assert hdr.dst == "fd00:0:0:1::1"  # RFC 5952 canonical text


def test_emit_ip_keep_lengths_is_verbatim() -> None:
    pkt = v4_packet()
    hdr, payload = parse_ip(pkt)
    odd = IPv4Header(**{f: getattr(hdr, f) for f in IPv4Header.__dataclass_fields__} | {"total_length": 99})
    out = emit_ip(odd, bytes(payload), keep_lengths=True)
    assert out[2:4] == b"\x00\x63" and out[10:12] == pkt[10:12]  # stored (now stale) checksum kept as is


@pytest.mark.parametrize("rtype", [0, 2, 4])
def test_ipv6_routing_header_final_destination_in_pseudo_header(rtype: int) -> None:
    """RFC 8200 §8.1: with segments left, the TCP checksum covers the Routing header's final destination."""
    final = "fd00::99"
    if rtype == 4:  # SRH: Segment List[0] is the final segment, list stored last-hop first
        seglist = addr_bytes(final) + addr_bytes(B6)
        rt = bytes([0, 4, 4, 1, 1, 0, 0, 0]) + seglist  # hdr ext len 4 = 40 octets, segments left 1
    elif rtype == 2:  # Mobile IPv6 type 2: exactly one address, the home address
        rt = bytes([0, 2, 2, 1, 0, 0, 0, 0]) + addr_bytes(final)
    else:  # type 0: addresses in path order, the last one is the final destination
        rt = bytes([0, 4, 0, 2, 0, 0, 0, 0]) + addr_bytes("fd00::50") + addr_bytes(final)
    body = emit_tcp(SEG, A6, final)
    pkt = v6_packet([(IPPROTO_ROUTING, rt)], payload=body)
    hdr, seg = parse_packet(pkt, verify=True)
    assert isinstance(hdr, IPv6Header) and hdr.pseudo_dst == final and hdr.dst == B6
    # With no segments left the Destination Address field is already the final destination.
    done = rt[:3] + b"\x00" + rt[4:]
    with pytest.raises(WireError, match="does not verify"):
        parse_packet(v6_packet([(IPPROTO_ROUTING, done)], payload=body), verify=True)


def test_emit_ip_refuses_fields_that_would_spill() -> None:
    v4 = IPv4Header(A4, B4, frag_offset=0x2000)
    with pytest.raises(WireError, match="fragment offset"):
        emit_ip(v4, b"")
    with pytest.raises(WireError, match="fragment offset"):
        emit_ip(IPv4Header(A4, B4, flags=8), b"")
    with pytest.raises(WireError, match="flow label"):
        emit_ip(IPv6Header(A6, B6, flow_label=1 << 20), b"")
    with pytest.raises(WireError, match="traffic class"):
        build_packet(A6, B6, SEG, tos=256)
    with pytest.raises(WireError, match="cannot encode"):
        build_packet(A4, B4, SEG, ttl=256)
