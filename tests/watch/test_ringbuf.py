"""The ring-buffer page decoder against pages built here from the documented layout (include/linux/ring_buffer.h,
events/header_page), and the format-file parser against this kernel's own format text."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpwise.linux import ringbuf
from tcpwise.linux.ringbuf import RB_MISSED_EVENTS, RB_MISSED_STORED, decode_page
from tcpwise.linux.tcpevents import symbols
from tcpwise.linux.tracefs import PageLayout, parse_format, parse_header_page

SET_STATE_FORMAT = """name: inet_sock_set_state
ID: 2287
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;
\tfield:int newstate;\toffset:20;\tsize:4;\tsigned:1;
\tfield:__u16 sport;\toffset:24;\tsize:2;\tsigned:0;
\tfield:__u16 dport;\toffset:26;\tsize:2;\tsigned:0;
\tfield:__u16 family;\toffset:28;\tsize:2;\tsigned:0;
\tfield:__u16 protocol;\toffset:30;\tsize:2;\tsigned:0;
\tfield:__u8 saddr[4];\toffset:32;\tsize:4;\tsigned:0;
\tfield:__u8 daddr[4];\toffset:36;\tsize:4;\tsigned:0;
\tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;
\tfield:__u8 daddr_v6[16];\toffset:56;\tsize:16;\tsigned:0;

print fmt: "family=%s ...", REC->family
"""

HEADER_PAGE = """\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;
\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;
\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;
\tfield: char data;\toffset:16;\tsize:4080;\tsigned:0;
"""

RESET_FMT_TAIL = (
    'print fmt: "state=%s reason=%s", REC->state ? "x" : "UNKNOWN", __print_symbolic(REC->reason, '
    '{ 0, "NOT_SPECIFIED" }, { 1, "NO_SOCKET" }, { 11, "TCP_ABORT_ON_CLOSE" })'
)

FMT = parse_format(SET_STATE_FORMAT, "sock", "inet_sock_set_state")
FIELDS = ("skaddr", "oldstate", "newstate", "sport", "dport", "family")
ST = FMT.struct_for(FIELDS)
UNP = {FMT.id: (ST.unpack_from, ST.size)}
LAYOUT = parse_header_page(HEADER_PAGE, 4096)


def record(
    sk: int, old: int, new: int, sport: int = 1, dport: int = 2, pid: int = 7, ev: int = 2287
) -> bytes:
    body = bytearray(72)
    struct.pack_into("<HBBiQiiHHHH", body, 0, ev, 0, 0, pid, sk, old, new, sport, dport, 2, 6)
    return bytes(body)


class Page:
    """Builds a page entry by entry, the way the kernel's writer lays it out."""

    def __init__(self, ts: int) -> None:
        self.ts = ts
        self.data = bytearray()

    def data_entry(self, delta: int, payload: bytes, big: bool = False) -> Page:
        if big or len(payload) > 112:
            n = (len(payload) + 3) & ~3
            self.data += struct.pack("<II", (delta << 5) | 0, n + 4) + payload.ljust(n, b"\0")
        else:
            n = (len(payload) + 3) & ~3
            self.data += struct.pack("<I", (delta << 5) | (n // 4)) + payload.ljust(n, b"\0")
        return self

    def extend(self, delta: int) -> Page:
        self.data += struct.pack("<II", ((delta & ((1 << 27) - 1)) << 5) | 30, delta >> 27)
        return self

    def absolute(self, ts: int) -> Page:
        self.data += struct.pack("<II", ((ts & ((1 << 27) - 1)) << 5) | 31, ts >> 27)
        return self

    def padding(self, length: int) -> Page:
        self.data += struct.pack("<II", (1 << 5) | 29, length) + b"\0" * (length - 4)
        return self

    def build(self, flags: int = 0, missed: int | None = None, size: int = 4096) -> bytes:
        commit = len(self.data) | flags
        page = bytearray(size)
        struct.pack_into("<QQ", page, 0, self.ts, commit)
        page[16 : 16 + len(self.data)] = self.data
        if missed is not None:
            struct.pack_into("<Q", page, 16 + len(self.data), missed)
        return bytes(page)


def decode(page: bytes) -> tuple[list[tuple[int, tuple[object, ...]]], ringbuf.PageResult]:
    out: list[tuple[int, tuple[object, ...]]] = []
    res = decode_page(page, LAYOUT, UNP, out)
    return out, res


def test_format_file_parsed_like_the_kernel_wrote_it() -> None:
    assert FMT.id == 2287 and FMT.name == "inet_sock_set_state"
    f = FMT.fields["saddr_v6"]
    assert (f.offset, f.size, f.array_len, f.struct_code()) == (40, 16, 16, "16s")
    assert FMT.fields["common_pid"].struct_code() == "i" and FMT.fields["skaddr"].struct_code() == "Q"
    assert ST.unpack_from(record(0xFFFF1, 7, 2), 0)[:7] == (2287, 0, 0, 7, 0xFFFF1, 7, 2)
    assert LAYOUT == PageLayout(0, 8, 8, 16, 4096)


def test_reset_reasons_come_from_the_print_format() -> None:
    assert symbols(RESET_FMT_TAIL, "reason") == {0: "NOT_SPECIFIED", 1: "NO_SOCKET", 11: "TCP_ABORT_ON_CLOSE"}


def test_time_deltas_extends_and_absolute_stamps() -> None:
    p = (
        Page(1_000)
        .data_entry(5, record(1, 7, 2))
        .extend(3 << 27)
        .data_entry(2, record(1, 2, 1))
        .absolute(5_000_000_000)
        .data_entry(1, record(1, 1, 4))
    )
    out, res = decode(p.build())
    assert [t for t, _ in out] == [1_005, 1_005 + (3 << 27) + 2, 5_000_000_001]
    assert [r[5:7] for _, r in out] == [(7, 2), (2, 1), (1, 4)]
    assert res.decoded == 3 and not res.missed


def test_large_records_padding_and_unknown_events() -> None:
    big = record(9, 1, 8) + b"\x01" * 60  # 132 bytes: stored with type_len 0 and its length in array[0]
    p = (
        Page(0)
        .data_entry(1, big)
        .padding(24)
        .data_entry(1, record(9, 8, 9, ev=999))
        .data_entry(1, record(9, 8, 9))
    )
    out, res = decode(p.build())
    assert [r[5:7] for _, r in out] == [(1, 8), (8, 9)]
    assert res.skipped == 1  # the unknown id, never misread
    assert [t for t, _ in out] == [1, 3]  # padding does not move time


def test_lost_events_are_reported_with_their_count() -> None:
    page = Page(0).data_entry(1, record(1, 7, 2)).build(RB_MISSED_EVENTS | RB_MISSED_STORED, missed=42)
    _, res = decode(page)
    assert res.missed and res.missed_count == 42
    _, res = decode(Page(0).data_entry(1, record(1, 7, 2)).build(RB_MISSED_EVENTS))
    assert res.missed and res.missed_count == 0


def test_truncated_and_corrupt_pages_never_raise() -> None:
    good = Page(0).data_entry(1, record(1, 7, 2)).data_entry(1, record(1, 2, 1)).build()
    for cut in range(0, 120, 3):
        decode(good[:cut])
    bad = bytearray(good)
    struct.pack_into("<I", bad, 16, 0)  # type_len 0 with a zero length: stop, do not loop
    struct.pack_into("<I", bad, 20, 0)
    out, _ = decode(bytes(bad))
    assert out == []


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, (1 << 27) - 1),
            st.integers(1, 12),
            st.integers(1, 12),
            st.booleans(),
            st.integers(0, 1 << 40),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_round_trip_of_any_event_sequence(events: list[tuple[int, int, int, bool, int]]) -> None:
    page = Page(123)
    want = []
    ts = 123
    for delta, old, new, use_extend, ext in events:
        if use_extend:
            page.extend(ext)
            ts += ext
        page.data_entry(delta, record(77, old, new))
        ts += delta
        want.append((ts, old, new))
    if len(page.data) > 4080:
        return
    out, res = decode(page.build())
    assert [(t, r[5], r[6]) for t, r in out] == want
    assert res.decoded == len(want)


def test_a_decoder_that_ignores_time_extends_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The time check can fail: plant the bug of not recognising time-extend entries."""
    p = Page(0).extend(1 << 30).data_entry(1, record(1, 7, 2)).build()
    out, _ = decode(p)
    assert [t for t, _ in out] == [(1 << 30) + 1]
    monkeypatch.setattr(ringbuf, "TYPE_TIME_EXTEND", -1)  # the decoder reads the module constant
    out, _ = decode(p)
    assert [t for t, _ in out] != [(1 << 30) + 1]
