"""Golden bytes both ways (smoltcp style): parse real packets and check every field, emit and compare bytes.

The packets are Linux 6.x loopback captures (tcpdump on lo) with the TCP checksum replaced by the full checksum:
loopback skips checksumming (CHECKSUM_PARTIAL), so the captured field held only the pseudo-header sum. The
corrected values were checked independently with ``tshark -o tcp.check_checksum:TRUE`` (status "Good").
"""

from __future__ import annotations

import struct

import pytest

from tcpwise.vocab import ACK, PSH, SYN
from tcpwise.wire import (
    EolOption,
    IPv4Header,
    IPv6Header,
    MssOption,
    NopOption,
    SackOption,
    SackPermittedOption,
    TcpSegment,
    TimestampsOption,
    UnknownOption,
    WindowScaleOption,
    WireError,
    build_packet,
    emit_ip,
    emit_tcp,
    parse_ip,
    parse_packet,
    parse_tcp,
    tcp_header_len,
)
from tcpwise.wire import tcp as tcpmod

# 127.0.0.1:36480 -> 127.0.0.1:47123 SYN, mss 65495, sackOK, TS val 3279947072 ecr 0, nop, wscale 10
SYN_V4 = bytes.fromhex(
    "4500003c97ce40004006a4eb7f0000017f000001"
    "8e80b813850c7ba200000000a002ffd73ffb0000"
    "0204ffd70402080ac3800540000000000103030a"
)
# same connection, PSH|ACK with 15 bytes "hello, tcpwise!" (odd length: exercises the checksum's padding byte)
DATA_V4 = bytes.fromhex(
    "4500004397d040004006a4e27f0000017f000001"
    "8e80b813850c7ba39e82d3d980180040f7ec0000"
    "0101080ac3800541e4f5456d"
    "68656c6c6f2c207463707769736521"
)
# ::1.58774 -> ::1.47123 SYN, mss 65476, sackOK, TS val 3567312427 ecr 0, nop, wscale 10; flow label 0x106c8
SYN_V6 = bytes.fromhex(
    "600106c8002806400000000000000000000000000000000100000000000000000000000000000001"
    "e596b8131cc4648f00000000a002ffc47c5b0000"
    "0204ffc40402080ad4a0de2b000000000103030a"
)

SYN_OPTS = (
    MssOption(65495),
    SackPermittedOption(),
    TimestampsOption(3279947072, 0),
    NopOption(),
    WindowScaleOption(10),
)


def test_field_offsets_match_the_struct() -> None:
    """The named offsets and the fixed-header struct describe the same layout (RFC 9293 §3.1)."""
    fields = [
        tcpmod.SRC_PORT,
        tcpmod.DST_PORT,
        tcpmod.SEQ_NUM,
        tcpmod.ACK_NUM,
        tcpmod.FLAGS,
        tcpmod.WIN_SIZE,
        tcpmod.CHECKSUM,
        tcpmod.URGENT,
    ]
    sizes = [struct.calcsize("!" + c) for c in "HHIIHHHH"]
    pos = 0
    for f, size in zip(fields, sizes, strict=True):
        assert (f.start, f.stop) == (pos, pos + size)
        pos += size
    assert pos == tcpmod.OPTIONS == tcpmod.TCP_HEADER_LEN


def test_parse_syn_v4_every_field() -> None:
    hdr, seg = parse_packet(SYN_V4, verify=True)
    assert isinstance(hdr, IPv4Header)
    assert (hdr.src, hdr.dst, hdr.proto, hdr.ttl, hdr.ident, hdr.tos) == (
        "127.0.0.1",
        "127.0.0.1",
        6,
        64,
        0x97CE,
        0,
    )
    assert hdr.df and not hdr.mf and not hdr.is_fragment and hdr.frag_offset == 0
    assert (hdr.total_length, hdr.checksum, hdr.options, hdr.ihl) == (60, 0xA4EB, b"", 5)
    assert seg.sport == 36480 and seg.dport == 47123
    assert seg.seq == 2232187810 and seg.ack == 0
    assert seg.flags == SYN and seg.flag_str == "S"
    assert seg.window == 65495 and seg.urgent == 0 and seg.checksum == 0x3FFB
    assert seg.options == SYN_OPTS
    assert seg.payload == b""
    assert seg.mss == 65495 and seg.wscale == 10 and seg.sack_permitted
    assert seg.timestamps == (3279947072, 0)
    assert seg.seg_len == 1
    assert tcp_header_len(seg) == 40


def test_parse_data_v4_every_field() -> None:
    hdr, seg = parse_packet(DATA_V4, verify=True)
    assert hdr.total_length == 67 and hdr.ident == 0x97D0
    assert (seg.seq, seg.ack, seg.flags, seg.window) == (2232187811, 2659374041, PSH | ACK, 64)
    assert seg.options == (NopOption(), NopOption(), TimestampsOption(3279947073, 3841279341))
    assert seg.payload == b"hello, tcpwise!"
    assert seg.seg_len == 15 and seg.checksum == 0xF7EC


def test_parse_syn_v6_every_field() -> None:
    hdr, seg = parse_packet(SYN_V6, verify=True)
    assert isinstance(hdr, IPv6Header)
    assert (hdr.src, hdr.dst, hdr.proto, hdr.next_header, hdr.hop_limit) == ("::1", "::1", 6, 6, 64)
    assert (hdr.traffic_class, hdr.flow_label, hdr.payload_length, hdr.ext_headers) == (0, 0x106C8, 40, ())
    assert not hdr.is_fragment and hdr.header_len == 40
    assert (seg.sport, seg.dport, seg.seq, seg.flags, seg.window) == (58774, 47123, 482632847, SYN, 65476)
    assert seg.options == (
        MssOption(65476),
        SackPermittedOption(),
        TimestampsOption(3567312427, 0),
        NopOption(),
        WindowScaleOption(10),
    )


@pytest.mark.parametrize("packet", [SYN_V4, DATA_V4, SYN_V6], ids=["syn4", "data4", "syn6"])
def test_emit_reproduces_golden_bytes(packet: bytes) -> None:
    hdr, payload = parse_ip(packet)
    seg = parse_tcp(payload)
    # Emit from a segment with no stored checksum: the codec must compute the very same value.
    tcp = emit_tcp(seg.with_(checksum=None), hdr.src, hdr.dst)
    assert tcp == bytes(payload)
    assert emit_ip(hdr, tcp) == packet


def test_build_packet_from_scratch_matches_golden_syn() -> None:
    seg = TcpSegment(36480, 47123, 2232187810, 0, SYN, 65495, SYN_OPTS)
    assert build_packet("127.0.0.1", "127.0.0.1", seg, ident=0x97CE) == SYN_V4
    seg6 = TcpSegment(
        58774,
        47123,
        482632847,
        0,
        SYN,
        65476,
        (
            MssOption(65476),
            SackPermittedOption(),
            TimestampsOption(3567312427, 0),
            NopOption(),
            WindowScaleOption(10),
        ),
    )
    built = build_packet("::1", "::1", seg6)
    # build_packet writes flow label 0; the kernel chose 0x106c8. Everything after the first word is identical.
    assert built[4:] == SYN_V6[4:] and built[:4] == bytes.fromhex("60000000")


def test_emit_tcp_with_keep_checksum_writes_stored_value() -> None:
    seg = parse_tcp(parse_ip(DATA_V4)[1]).with_(checksum=0x1234)
    out = emit_tcp(seg, "127.0.0.1", "127.0.0.1", keep_checksum=True)
    assert out[16:18] == b"\x12\x34"
    with pytest.raises(WireError, match="checksum"):
        parse_tcp(out, "127.0.0.1", "127.0.0.1", verify_checksum=True)


def test_sack_blocks_and_eol_padding_golden() -> None:
    """Hand-built ACK carrying 2 SACK blocks after NOP NOP, then MSS + EOL + zero padding."""
    sack = bytes.fromhex("0101 0512 000003e8 000007d0 00000bb8 00000fa0")  # 20 bytes -> doff 10
    head = bytes.fromhex("1f90d431 00000064 000000c8 a010 0100 0000 0000")
    seg = parse_tcp(head + sack)
    assert seg.options == (NopOption(), NopOption(), SackOption(((1000, 2000), (3000, 4000))))
    assert seg.sack_blocks == ((1000, 2000), (3000, 4000))
    assert emit_tcp(seg, "198.18.0.1", "198.18.1.1", keep_checksum=True) == head + sack

    eol = bytes.fromhex("1f90d431 00000064 000000c8 7012 0100 0000 0000 020405b4 00000000")
    seg = parse_tcp(eol)
    assert seg.options == (MssOption(1460), EolOption())
    assert emit_tcp(seg, "198.18.0.1", "198.18.1.1", keep_checksum=True) == eol


def test_nonzero_bytes_after_eol_kept_raw() -> None:
    raw = bytes.fromhex("1f90d431 00000064 000000c8 6010 0100 0000 0000 00dead00")
    seg = parse_tcp(raw)
    assert seg.options == (UnknownOption(0, bytes.fromhex("dead00")),)
    assert emit_tcp(seg, "198.18.0.1", "198.18.1.1", keep_checksum=True) == raw


def test_unknown_option_kept() -> None:
    # kind 30 (MPTCP, RFC 8684) length 4, then kind 254 experimental length 2, NOP NOP
    raw = bytes.fromhex("1f90d431 00000064 000000c8 7010 0100 0000 0000 1e041234 fe020101")
    seg = parse_tcp(raw)
    assert seg.options == (UnknownOption(30, b"\x12\x34"), UnknownOption(254, b""), NopOption(), NopOption())
    assert emit_tcp(seg, "198.18.0.1", "198.18.1.1", keep_checksum=True) == raw


def test_high_flag_bits_and_big_window_scale_kept_raw() -> None:
    # AE bit (0x100) and a reserved bit set; wscale 15 (> 14, RFC 7323 §2.3 clamps at the receiver, not here)
    raw = bytes.fromhex("1f90d431 00000064 000000c8 6312 0100 0000 0000 0303 0f00")
    seg = parse_tcp(raw)
    assert seg.flags == 0x312 and seg.flag_str == "SA"
    assert seg.wscale == 15
    assert emit_tcp(seg, "198.18.0.1", "198.18.1.1", keep_checksum=True) == raw


def test_trailing_ethernet_padding_is_ignored() -> None:
    hdr, seg = parse_packet(SYN_V4 + b"\x00" * 6, verify=True)  # 60-byte IP packet in a padded frame
    assert seg.payload == b"" and hdr.total_length == 60


def test_fast_constructor_builds_ordinary_instances_and_falls_back() -> None:
    from dataclasses import dataclass

    from tcpwise.wire.tcp import fast_constructor

    names = ("sport", "dport", "seq", "ack", "flags", "window", "options", "payload", "urgent", "checksum")
    make = fast_constructor(TcpSegment, names)
    values = (1, 2, 3, 4, SYN, 6, (MssOption(1460),), b"x", 0, 7)
    fast, slow = make(*values), TcpSegment(*values)
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    with pytest.raises(AttributeError):
        fast.seq = 9  # type: ignore[misc]  # still frozen

    @dataclass(frozen=True, slots=True)
    class Grown:  # a class whose fields no longer match what the caller passes: keyword fallback
        a: int
        b: int = 5
        c: int = 6

    assert fast_constructor(Grown, ("a", "c"))(1, 2) == Grown(1, 5, 2)
