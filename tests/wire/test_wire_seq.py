"""Sequence-number arithmetic across the 2**32 wrap (RFC 9293 §3.4, RFC 1982)."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tcpwise.wire import MASK, seq_add, seq_between, seq_diff, seq_ge, seq_gt, seq_le, seq_lt, seq_max

u32 = st.integers(0, MASK)
# Values near the wrap point are where bugs live; mix them in on purpose.
near_wrap = st.integers(0, 2000).map(lambda k: (MASK - 1000 + k) & MASK)
seqs = st.one_of(u32, near_wrap)
deltas = st.integers(-(2**31) + 1, 2**31 - 1)


def test_examples_across_wrap() -> None:
    assert seq_lt(0xFFFFFFF0, 0x10) and seq_gt(0x10, 0xFFFFFFF0)
    assert seq_add(0xFFFFFFFF, 1) == 0 and seq_add(0, -1) == 0xFFFFFFFF
    assert seq_diff(0x10, 0xFFFFFFF0) == 0x20 and seq_diff(0xFFFFFFF0, 0x10) == -0x20
    assert seq_between(0xFFFFFFF0, 0x5, 0x10) and not seq_between(0xFFFFFFF0, 0x10, 0x10)
    assert not seq_between(5, 5, 5)  # empty window
    assert seq_max(0xFFFFFFF0, 0x10) == 0x10


@settings(max_examples=150, deadline=None)
@given(seqs, seqs)
def test_lt_gt_antisymmetry(a: int, b: int) -> None:
    assume((a - b) & MASK != 1 << 31)  # exactly half-way apart is undefined (RFC 1982 §3.2)
    assert seq_lt(a, b) == seq_gt(b, a)
    assert not (seq_lt(a, b) and seq_lt(b, a))
    assert seq_le(a, b) == (seq_lt(a, b) or a == b)
    assert seq_ge(a, b) == seq_le(b, a)
    if a != b:
        assert seq_lt(a, b) != seq_lt(b, a)


@settings(max_examples=150, deadline=None)
@given(seqs, deltas)
def test_add_diff_inverse(a: int, n: int) -> None:
    b = seq_add(a, n)
    assert 0 <= b <= MASK
    assert seq_diff(b, a) == n
    assert seq_add(b, -n) == a
    assert seq_gt(b, a) == (n > 0)


@settings(max_examples=150, deadline=None)
@given(seqs, st.integers(0, 2**31 - 1), st.integers(0, 2**31))
def test_between_matches_offsets(left: int, width: int, off: int) -> None:
    right = seq_add(left, width)
    x = seq_add(left, off)
    assert seq_between(left, x, right) == (off < width)
