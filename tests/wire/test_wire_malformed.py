"""Truncated, impossible-length and malformed input: every case must raise WireError with a useful message."""

from __future__ import annotations

import pytest

from tcpwise.wire import TcpSegment, WireError, build_packet, emit_tcp, parse_ip, parse_packet, parse_tcp
from tcpwise.wire.segment import MssOption, SackOption, UnknownOption

BASE = bytes.fromhex("1f90d431 00000064 000000c8 5010 0100 0000 0000")  # doff 5, ACK, no options


def with_options(opts_hex: str) -> bytes:
    """BASE with the given option bytes and the data offset set to cover them (must be a multiple of 4)."""
    opts = bytes.fromhex(opts_hex)
    assert len(opts) % 4 == 0
    doff = 5 + len(opts) // 4
    return BASE[:12] + bytes([doff << 4, BASE[13]]) + BASE[14:] + opts


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "shorter than the 20-byte"),
        (BASE[:19], "shorter than the 20-byte"),
        (BASE[:12] + b"\x40" + BASE[13:], "below the minimum"),  # data offset 4
        (BASE[:12] + b"\x00" + BASE[13:], "below the minimum"),  # data offset 0
        (BASE[:12] + b"\x60" + BASE[13:], "runs past"),  # data offset 6 but only 20 bytes
        (BASE[:12] + b"\xf0" + BASE[13:] + b"\x01" * 36, "runs past"),  # 15 words claimed, 56 bytes given
    ],
    ids=["empty", "19-bytes", "doff-4", "doff-0", "doff-past-end", "doff-15-short"],
)
def test_header_lengths(data: bytes, match: str) -> None:
    with pytest.raises(WireError, match=match):
        parse_tcp(data)


@pytest.mark.parametrize(
    ("opts", "match"),
    [
        ("01010102", "no room for its length byte"),  # MSS kind as the last option byte
        ("02000000", "illegal length 0"),  # RFC 9293 MUST-7's example: zero length
        ("02010000", "illegal length 1"),
        ("020505b4", "runs past"),  # MSS claims 5 bytes, 4 left
        ("0209000000000000", "runs past"),  # MSS-kind length 9, only 8 bytes of option space
        ("02030500", "must be 4"),  # MSS length 3
        ("03040700", "must be 3"),  # WS length 4
        ("04030000", "must be 2"),  # SACK-permitted length 3
        ("080800000001000000000000", "must be 10"),  # TS length 8
        ("0101050200000000", r"2 \+ 8n"),  # SACK with no blocks
        ("01010506000000000000", r"2 \+ 8n"),  # SACK length 6 (padded to 12 below)
        ("fe300000", "runs past"),  # unknown kind, length 48
    ],
)
def test_malformed_options(opts: str, match: str) -> None:
    raw = bytes.fromhex(opts)
    raw += b"\x00" * (-len(raw) % 4)
    with pytest.raises(WireError, match=match):
        parse_tcp(with_options(raw.hex()))


def test_option_length_limited_by_header_not_buffer() -> None:
    """An option may not run into the payload even when the buffer is long enough."""
    data = with_options("020a05b4") + b"payload!"  # MSS with length 10 would reach into the payload
    with pytest.raises(WireError, match="runs past the header end"):
        parse_tcp(data)


def test_bad_checksum_only_raises_when_verifying() -> None:
    seg = TcpSegment(1, 2, 3, 4, 0x10, 5, payload=b"abc")
    good = emit_tcp(seg, "198.18.0.1", "198.18.1.1")
    bad = good[:16] + bytes([good[16] ^ 0x01, good[17]]) + good[18:]
    assert parse_tcp(bad).payload == b"abc"
    with pytest.raises(WireError, match="does not verify"):
        parse_tcp(bad, "198.18.0.1", "198.18.1.1", verify_checksum=True)
    # Wrong pseudo-header (another address) also fails: the checksum covers the addresses.
    with pytest.raises(WireError, match="does not verify"):
        parse_tcp(good, "198.18.0.2", "198.18.1.1", verify_checksum=True)
    parse_tcp(good, "198.18.0.1", "198.18.1.1", verify_checksum=True)


def test_verify_without_addresses_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="needs src_ip and dst_ip"):
        parse_tcp(BASE, verify_checksum=True)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "shorter than any IP header"),
        (b"\x45" + b"\x00" * 18, "shorter than any IP header"),
        (b"\x55" + b"\x00" * 39, "IP version 5"),
        (b"\x00" * 40, "IP version 0"),
        (bytes.fromhex("44000014") + b"\x00" * 16, "IHL 4"),
        (bytes.fromhex("4f000014") + b"\x00" * 16, "runs past"),
        (bytes.fromhex("45000010") + b"\x00" * 16, "shorter than the 20-byte header"),
        (bytes.fromhex("45000100") + b"\x00" * 16, "truncated"),
        (b"\x60" + b"\x00" * 20, "shorter than the 40-byte"),
        (bytes.fromhex("60000000 0010 06 40") + b"\x00" * 32, "truncated"),
    ],
)
def test_ip_malformed(data: bytes, match: str) -> None:
    with pytest.raises(WireError, match=match):
        parse_ip(data)


def test_ipv4_header_checksum_verified_on_request() -> None:
    pkt = bytearray(build_packet("198.18.0.1", "198.18.1.1", TcpSegment(1, 2, 3, 4, 0x10, 5)))
    pkt[8] -= 1  # TTL decremented without fixing the checksum (what a broken middlebox does)
    parse_ip(bytes(pkt))
    with pytest.raises(WireError, match="IPv4 header checksum"):
        parse_ip(bytes(pkt), verify=True)


def test_parse_packet_refuses_non_tcp() -> None:
    pkt = bytearray(build_packet("198.18.0.1", "198.18.1.1", TcpSegment(1, 2, 3, 4, 0x10, 5)))
    pkt[9] = 17  # UDP
    with pytest.raises(WireError, match="protocol 17 is not TCP"):
        parse_packet(bytes(pkt))


def test_emit_refuses_what_cannot_be_encoded() -> None:
    with pytest.raises(WireError, match="at most 40"):
        emit_tcp(TcpSegment(1, 2, 3, 4, 0x10, 5, (UnknownOption(99, b"x" * 40),)), "198.18.0.1", "198.18.1.1")
    with pytest.raises(WireError, match="cannot encode"):
        emit_tcp(TcpSegment(70000, 2, 3, 4, 0x10, 5), "198.18.0.1", "198.18.1.1")
    with pytest.raises(WireError, match="cannot encode"):
        emit_tcp(TcpSegment(1, 2, 2**32, 4, 0x10, 5), "198.18.0.1", "198.18.1.1")
    with pytest.raises(WireError, match="cannot encode"):
        emit_tcp(TcpSegment(1, 2, 3, 4, 0x10, 5, (MssOption(-1),)), "198.18.0.1", "198.18.1.1")
    with pytest.raises(WireError, match="cannot encode"):
        emit_tcp(TcpSegment(1, 2, 3, 4, 0x10, 5, (SackOption(((1, 2**32),)),)), "198.18.0.1", "198.18.1.1")
    with pytest.raises(WireError, match="12-bit"):
        emit_tcp(TcpSegment(1, 2, 3, 4, 0x1000, 5), "198.18.0.1", "198.18.1.1")
    with pytest.raises(WireError, match="12-bit"):
        emit_tcp(TcpSegment(1, 2, 3, 4, -1, 5), "198.18.0.1", "198.18.1.1")
    with pytest.raises(WireError, match="16 bits"):
        emit_tcp(
            TcpSegment(1, 2, 3, 4, 0x10, 5, checksum=0x10000), "198.18.0.1", "198.18.1.1", keep_checksum=True
        )
    with pytest.raises(WireError, match="invalid IP address"):
        emit_tcp(TcpSegment(1, 2, 3, 4, 0x10, 5), "198.18.0.300", "198.18.1.1")
    with pytest.raises(WireError, match="families differ"):
        build_packet("198.18.0.1", "fd00::1", TcpSegment(1, 2, 3, 4, 0x10, 5))


def test_byte_by_byte_prefixes_never_escape_wireerror() -> None:
    """Every prefix of a valid packet either parses or raises WireError (h11's ``tr()`` idea, exhaustively)."""
    from tcpwise.wire import NopOption, SackPermittedOption, TimestampsOption, WindowScaleOption

    seg = TcpSegment(
        1, 2, 3, 4, 0x12, 5,
        (MssOption(1460), SackPermittedOption(), TimestampsOption(1, 2), NopOption(), WindowScaleOption(7)),
        b"data",
    )  # fmt: skip
    for src, dst in (("198.18.0.1", "198.18.1.1"), ("fd00::1", "fd00::2")):
        pkt = build_packet(src, dst, seg)
        for i in range(len(pkt)):
            with pytest.raises(WireError):
                parse_packet(pkt[:i], verify=True)
        tcp = emit_tcp(seg, src, dst)
        for i in range(len(tcp)):
            try:
                parse_tcp(tcp[:i])
            except WireError:
                pass
