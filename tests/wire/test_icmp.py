"""ICMP / ICMPv6 codec: round trips, checksums (the kernel is the independent judge in tests/stack)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcpwise.wire import TcpSegment, WireError, build_packet, parse_ip
from tcpwise.wire.icmp import (
    ICMP6_DEST_UNREACH,
    ICMP_DEST_UNREACH,
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    IcmpMessage,
    echo_reply,
    emit_icmp,
    icmp_packet,
    parse_icmp,
    quoted_tcp_ports,
    unreachable,
)

V4 = ("198.18.64.1", "198.18.64.254")
V6 = ("fd00:64::1", "fd00:64::fe")


@given(
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 2**32 - 1),
    st.binary(max_size=300),
    st.booleans(),
)
def test_round_trip(mtype: int, code: int, rest: int, body: bytes, v6: bool) -> None:
    src, dst = V6 if v6 else V4
    msg = IcmpMessage(mtype, code, rest, body)
    raw = emit_icmp(msg, v6, src, dst)
    assert parse_icmp(raw, v6, src, dst) == msg


def test_known_echo_request_checksum() -> None:
    # RFC 1071 by hand: words 0x0800 + 0x1234 + 0x0001 + 0x6162 + 0x6364 = 0xDEFB -> checksum ~0xDEFB = 0x2104.
    raw = emit_icmp(IcmpMessage(ICMP_ECHO_REQUEST, 0, 0x12340001, b"abcd"), False)
    assert raw[2:4] == bytes.fromhex("2104")


def test_corrupt_checksum_and_wrong_pseudo_header_are_rejected() -> None:
    raw = bytearray(emit_icmp(IcmpMessage(128, 0, 7, b"xyz"), True, *V6))
    with pytest.raises(WireError):
        parse_icmp(bytes(raw), True, V6[0], "fd00:64::2")  # ICMPv6 sums the addresses too
    raw[-1] ^= 1
    with pytest.raises(WireError):
        parse_icmp(bytes(raw), True, *V6)


def test_echo_reply_keeps_id_sequence_and_data() -> None:
    req = IcmpMessage(ICMP_ECHO_REQUEST, 0, 0xABCD0007, b"payload")
    rep = echo_reply(req, False)
    assert (rep.type, rep.ident, rep.sequence, rep.body) == (ICMP_ECHO_REPLY, 0xABCD, 7, b"payload")


@pytest.mark.parametrize("v6", [False, True])
def test_unreachable_quotes_the_tcp_ports(v6: bool) -> None:
    src, dst = V6 if v6 else V4
    invoking = build_packet(src, dst, TcpSegment(40000, 8080, 1, 0, 0x02, 65535, payload=b"x" * 2000))
    msg = unreachable(invoking, 3, v6)
    assert msg.type == (ICMP6_DEST_UNREACH if v6 else ICMP_DEST_UNREACH)
    pkt = icmp_packet(dst, src, msg)
    assert len(pkt) <= (1280 if v6 else 576)  # RFC 4443 §2.4(c), RFC 1812 §4.3.2.3
    hdr, payload = parse_ip(pkt, verify=True)
    back = parse_icmp(payload, v6, hdr.src, hdr.dst)
    assert quoted_tcp_ports(back) == (src, dst, 40000, 8080)
    assert quoted_tcp_ports(IcmpMessage(3, 3, 0, b"short")) is None
