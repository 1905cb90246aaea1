"""Internet checksum known vectors and a textbook reference implementation to compare against."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tcpwise.wire import addr_bytes, internet_checksum, ones_sum, tcp_checksum, verify_tcp_checksum
from tcpwise.wire.checksum import partial_sum, pseudo_header_sum


def reference_ones_sum(data: bytes) -> int:
    """RFC 1071 §4.1 written as the RFC's C loop: 16-bit big-endian words, end-around carry."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


def test_rfc1071_example() -> None:
    # RFC 1071 §3 numerical example: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert ones_sum(data) == 0xDDF2
    assert internet_checksum(data) == 0x220D


def test_ipv4_header_vector() -> None:
    # A classic IPv4 header (UDP, 192.168.0.1 -> 192.168.0.199) whose header checksum is 0xb861.
    head = bytes.fromhex("4500 0073 0000 4000 4011 0000 c0a8 0001 c0a8 00c7")
    assert internet_checksum(head) == 0xB861
    filled = head[:10] + b"\xb8\x61" + head[12:]
    assert ones_sum(filled) == 0xFFFF and internet_checksum(filled) == 0


def test_odd_length_and_zeros() -> None:
    assert ones_sum(b"") == 0 and internet_checksum(b"") == 0xFFFF
    assert ones_sum(b"\x00" * 7) == 0
    assert ones_sum(b"\x01") == 0x0100  # the odd byte is the high half of a zero-padded word
    assert ones_sum(b"\x12\x34\x56") == 0x1234 + 0x5600


def test_negative_zero() -> None:
    # Words summing to 0xFFFF, and to 0xFFFF + 0xFFFF: ones' complement gives 0xFFFF (-0), never 0x0000.
    assert ones_sum(b"\x00\x01\xff\xfe") == 0xFFFF
    assert ones_sum(b"\xff\xff\xff\xff") == 0xFFFF
    assert internet_checksum(b"\xff\xff") == 0


def test_pseudo_header_matches_explicit_layouts() -> None:
    seg = bytes.fromhex("1f90 d431 0000 0064 0000 00c8 5010 0100 0000 0000") + b"odd"
    for src, dst, pseudo in (
        ("198.18.0.1", "198.18.1.1", lambda s, d, n: s + d + bytes([0, 6]) + n.to_bytes(2, "big")),
        ("fd00::1", "fd00::2", lambda s, d, n: s + d + n.to_bytes(4, "big") + bytes([0, 0, 0, 6])),
    ):
        s, d = addr_bytes(src), addr_bytes(dst)
        explicit = pseudo(s, d, len(seg))  # RFC 9293 §3.1 / RFC 8200 §8.1 byte layouts
        assert pseudo_header_sum(s, d, len(seg)) == partial_sum(explicit)
        want = ~reference_ones_sum(explicit + seg) & 0xFFFF
        assert tcp_checksum(s, d, seg) == want
        filled = seg[:16] + want.to_bytes(2, "big") + seg[18:]
        assert verify_tcp_checksum(s, d, filled)
        assert not verify_tcp_checksum(s, d, filled[:-1] + b"e")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_matches_reference(data: bytes) -> None:
    assert ones_sum(data) == reference_ones_sum(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=60).map(lambda b: b + b"\x00" * (len(b) % 2)), st.binary(max_size=60))
def test_partial_sums_combine(a: bytes, b: bytes) -> None:
    """RFC 1071 §2(B): sums of even-length pieces add up to the sum of the concatenation."""
    assert (partial_sum(a) + partial_sum(b)) % 0xFFFF == partial_sum(a + b)
