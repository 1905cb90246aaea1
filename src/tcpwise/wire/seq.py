"""32-bit sequence-number arithmetic (RFC 9293 §3.4, RFC 1982 serial-number comparisons).

Sequence numbers live modulo 2**32; ``a < b`` means "b is ahead of a by less than 2**31". These are plain
functions on ints rather than a ``SeqNum`` class: the simulator pushes millions of segments through the endpoint
and an int subclass per comparison costs ~5x (measured in bench/bench_sim.py). Raw ``<`` on sequence numbers is
never used outside this module.
"""

from __future__ import annotations

__all__ = [
    "MOD",
    "MASK",
    "seq_add",
    "seq_diff",
    "seq_lt",
    "seq_le",
    "seq_gt",
    "seq_ge",
    "seq_between",
    "seq_max",
]

MOD = 1 << 32
MASK = MOD - 1
_HALF = 1 << 31


def seq_add(a: int, n: int) -> int:
    """``a + n`` modulo 2**32 (n may be negative)."""
    return (a + n) & MASK


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` in (-2**31, 2**31]: positive when ``a`` is ahead of ``b``."""
    d = (a - b) & MASK
    return d - MOD if d > _HALF else d


def seq_lt(a: int, b: int) -> bool:
    return 0 < ((b - a) & MASK) < _HALF


def seq_le(a: int, b: int) -> bool:
    return ((b - a) & MASK) < _HALF


def seq_gt(a: int, b: int) -> bool:
    return 0 < ((a - b) & MASK) < _HALF


def seq_ge(a: int, b: int) -> bool:
    return ((a - b) & MASK) < _HALF


def seq_between(left: int, x: int, right: int) -> bool:
    """``left <= x < right`` on the circle (the RFC 9293 §3.4 window test); false when the window is empty."""
    return ((x - left) & MASK) < ((right - left) & MASK)


def seq_max(a: int, b: int) -> int:
    return b if seq_lt(a, b) else a
