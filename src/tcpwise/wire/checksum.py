"""The Internet checksum (RFC 1071) and the TCP pseudo-header sums for IPv4 and IPv6.

Theory of operation
-------------------
The Internet checksum is the 16-bit ones' complement of the ones' complement sum of the data taken as big-endian
16-bit words (RFC 1071 §1; an odd trailing byte is padded with a zero byte on the right). Because
``2**16 ≡ 1 (mod 0xFFFF)``, the ones' complement sum of the words of a byte string equals the big-endian integer
that the string spells, taken modulo ``0xFFFF`` (RFC 1071 §2(B): the sum is independent of grouping, so the whole
string can be one "word"). CPython reduces a big int by a small divisor in one linear pass in C, so::

    int.from_bytes(data, "big") % 0xFFFF

is the sum in one call. Measured on this 2-core box (bench/bench_wire.py): 0.5 µs for a 20-byte header and
4 µs for 1500 bytes, 3-6x faster than ``sum(memoryview(data).cast("H"))`` with a carry fold (which also needs a
byte swap on little-endian hosts).

The one subtlety is ones' complement's two zeros: modulo arithmetic gives 0 where the real end-around-carry sum
gives 0xFFFF ("negative zero"). A sum of non-negative words can only be +0 when every word is zero, so
:func:`ones_sum` maps "residue 0 but data not all zero" to 0xFFFF. Partial sums over pieces that each have even
length combine by plain addition modulo 0xFFFF, which is how the pseudo-header, the TCP header and the payload are
summed without concatenating them.

Pseudo-headers: IPv4 (RFC 9293 §3.1) is src(4) dst(4) zero(1) proto(1) tcp-length(2); IPv6 (RFC 8200 §8.1) is
src(16) dst(16) upper-layer-length(4) zero(3) next-header(1). Both reduce to the same residue
``src + dst + proto + length (mod 0xFFFF)``, since a 32-bit length is two words whose sum is its residue.

Verification (RFC 1071 §1): summing the segment *including* its checksum field gives all ones (0xFFFF), i.e.
residue 0; this also accepts a sender that transmitted 0xFFFF instead of 0x0000, both being ones' complement zero.
"""

from __future__ import annotations

__all__ = [
    "internet_checksum",
    "ones_sum",
    "partial_sum",
    "pseudo_header_sum",
    "tcp_checksum",
    "verify_tcp_checksum",
    "IPPROTO_TCP",
]

IPPROTO_TCP = 6
_M = 0xFFFF


def partial_sum(data: bytes | bytearray | memoryview) -> int:
    """Residue modulo 0xFFFF of the ones' complement sum of ``data`` (odd length: zero-padded on the right).

    Residues of pieces combine by addition; only the *last* piece may have odd length (padding is positional).
    """
    n = int.from_bytes(data, "big")
    if len(data) & 1:
        n <<= 8  # RFC 1071 §4.1: the odd byte is the high half of a last word padded with zero
    return n % _M


def ones_sum(data: bytes | bytearray | memoryview) -> int:
    """The 16-bit ones' complement sum of ``data`` (RFC 1071 §1), in 0..0xFFFF."""
    r = partial_sum(data)
    if r == 0 and any(data):
        return _M  # negative zero: the only way a non-zero sum can be congruent to 0
    return r


def internet_checksum(data: bytes | bytearray | memoryview) -> int:
    """The Internet checksum of ``data``: ones' complement of :func:`ones_sum` (what goes in a header field).

    IPv4 header use: compute with the checksum field zeroed, store the result (RFC 791 §3.1 "Header Checksum").
    """
    return ~ones_sum(data) & _M


def pseudo_header_sum(src: bytes, dst: bytes, length: int, proto: int = IPPROTO_TCP) -> int:
    """Residue of the TCP/UDP pseudo-header for 4-byte (IPv4) or 16-byte (IPv6) addresses, given as packed bytes."""
    return (int.from_bytes(src, "big") + int.from_bytes(dst, "big") + proto + length) % _M


def _fold(residue: int, nonzero: bool) -> int:
    """Residue -> checksum field value, honouring the two-zeros rule (see module docstring)."""
    residue %= _M
    if residue == 0 and nonzero:
        return 0  # the sum is 0xFFFF (negative zero); its complement is 0x0000, as Linux's csum_fold gives
    return ~residue & _M


def tcp_checksum(
    src: bytes, dst: bytes, segment: bytes | bytearray | memoryview, proto: int = IPPROTO_TCP
) -> int:
    """Checksum field value for ``segment`` (header with checksum field zero, plus payload) between two packed
    addresses. The pseudo-header always contains ``proto`` != 0, so the total sum is never +0."""
    return _fold(pseudo_header_sum(src, dst, len(segment), proto) + partial_sum(segment), True)


def verify_tcp_checksum(
    src: bytes, dst: bytes, segment: bytes | bytearray | memoryview, proto: int = IPPROTO_TCP
) -> bool:
    """True when the checksum field inside ``segment`` is correct (the whole sum is ones' complement zero)."""
    return (pseudo_header_sum(src, dst, len(segment), proto) + partial_sum(segment)) % _M == 0
