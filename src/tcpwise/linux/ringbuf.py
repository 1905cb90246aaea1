"""Decoder of the kernel's binary trace ring-buffer pages (what ``per_cpu/cpuN/trace_pipe_raw`` hands out).

Theory of operation
-------------------
A page (a "sub-buffer", ``buffer_subbuf_size_kb``) starts with a header described by ``events/header_page``:
``u64 timestamp`` (the time of the page's first event), ``local_t commit`` (bytes of event data; bit 31
``RB_MISSED_EVENTS`` says events were lost before this page, bit 30 ``RB_MISSED_STORED`` says their count is
stored as an ``unsigned long`` right after the data), then the data. The data is a sequence of entries, each with
a 32-bit header (``events/header_event``; include/linux/ring_buffer.h ``struct ring_buffer_event``):
``type_len:5, time_delta:27`` (type_len in the low bits on little-endian hosts), followed by ``array[]``:

- ``type_len`` 1..28: a record of ``type_len * 4`` bytes at ``array[0]``; its time is the previous one plus
  ``time_delta``;
- ``type_len`` 0: a larger record; ``array[0]`` holds its length plus 4 (it counts itself), data at ``array[1]``;
- 29 (padding): ``time_delta`` 0 means the rest of the page is empty; otherwise a discarded record of
  ``array[0]`` bytes after the header (time unchanged, as the kernel's own reader does);
- 30 (time extend): add ``time_delta + (array[0] << 27)`` to the running time (8 bytes);
- 31 (absolute time stamp): the time becomes ``(array[0] << 27) | time_delta``, with the top 5 bits taken from
  the page's time stamp (kernel ``rb_fix_abs_ts``) (8 bytes).

Each record starts with the common fields of every event (``common_type`` u16 = the event ID from its
``format`` file, ``common_flags`` u8, ``common_preempt_count`` u8, ``common_pid`` s32); the decoder looks the
ID up and unpacks the record with that event's precompiled :class:`struct.Struct`
(:meth:`tcpwise.linux.tracefs.EventFormat.struct_for`). Unknown IDs are skipped, never misread.

The loop is the hot path of ``tcpwise watch``: locals only, one ``unpack_from`` for the header and one for the
record, no object per entry beyond the decoded tuple.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from tcpwise.linux.tracefs import PageLayout

__all__ = [
    "RB_MISSED_EVENTS",
    "RB_MISSED_STORED",
    "PageResult",
    "decode_page",
    "TYPE_PADDING",
    "TYPE_TIME_EXTEND",
    "TYPE_TIME_STAMP",
    "FLAG_HARDIRQ",
    "FLAG_SOFTIRQ",
    "FLAG_NMI",
    "FLAG_BH_OFF",
    "IRQ_CONTEXT",
]

RB_MISSED_EVENTS = 1 << 31
RB_MISSED_STORED = 1 << 30
_LEN_MASK = (1 << 30) - 1
TYPE_PADDING, TYPE_TIME_EXTEND, TYPE_TIME_STAMP = 29, 30, 31
_TS_MSB = 0xF8 << 56  # kernel TS_MSB: the 5 bits an absolute time stamp entry cannot hold

# common_flags (include/linux/trace_events.h enum trace_flag_type): the context the event fired in.
FLAG_HARDIRQ = 0x08
FLAG_SOFTIRQ = 0x10
FLAG_NMI = 0x40
FLAG_BH_OFF = 0x80  # bottom halves disabled in process context (still the calling task)
IRQ_CONTEXT = FLAG_HARDIRQ | FLAG_SOFTIRQ | FLAG_NMI  # common_pid is whoever was interrupted

_U32 = struct.Struct("<I")
_U32x2 = struct.Struct("<II")
_U64 = struct.Struct("<Q")

Unpacker = tuple[Callable[[Any, int], tuple[Any, ...]], int]  # (Struct.unpack_from, Struct.size)


class PageResult:
    """What one page held besides its records: entries decoded, skipped (unknown IDs), lost before it."""

    __slots__ = ("decoded", "skipped", "missed", "missed_count", "last_ts")

    def __init__(self) -> None:
        self.decoded = 0
        self.skipped = 0
        self.missed = False
        self.missed_count = 0  # 0 with missed=True: lost, count unknown (not stored on the page)
        self.last_ts = 0


def _page_header(
    page: bytes | bytearray | memoryview, layout: PageLayout, res: PageResult
) -> tuple[int, int, int] | None:
    """(page timestamp, first data byte, end of committed data) — None for a page too short to hold a header.
    Records in ``res`` whether the kernel dropped events before this page (and how many, when it says)."""
    n = len(page)
    if n < layout.data_offset:
        return None
    ts = _U64.unpack_from(page, layout.ts_offset)[0]
    if layout.commit_size == 8:
        commit = _U64.unpack_from(page, layout.commit_offset)[0]
    else:
        commit = _U32.unpack_from(page, layout.commit_offset)[0]
    start = layout.data_offset
    end = min(start + (commit & _LEN_MASK), n)
    if commit & RB_MISSED_EVENTS:
        res.missed = True
        if commit & RB_MISSED_STORED and end + 8 <= n:
            res.missed_count = _U64.unpack_from(page, end)[0]
    return ts, start, end


def _absolute_ts(hi: int, delta: int, page_ts: int) -> int:
    """A TIME_STAMP entry's absolute time: 59 bits split over the entry; the top bits come from the page."""
    ab = (hi << 27) | delta
    if page_ts & _TS_MSB:
        ab |= page_ts & _TS_MSB
        if ab < page_ts:
            ab += 1 << 59
    return ab


def decode_page(
    page: bytes | bytearray | memoryview,
    layout: PageLayout,
    unpackers: dict[int, Unpacker],
    out: list[tuple[int, tuple[Any, ...]]],
) -> PageResult:
    """Append ``(time_ns, record_tuple)`` for every known record of ``page`` to ``out``.

    ``unpackers`` maps an event ID to ``(Struct.unpack_from, Struct.size)``; the tuple starts with ``common_type,
    common_flags, common_preempt_count, common_pid``. A truncated or corrupt page ends the walk at the first
    entry that would run past the committed data (no exception).
    """
    res = PageResult()
    head = _page_header(page, layout, res)
    if head is None:
        return res
    page_ts, start, end = head
    ts = page_ts
    u32 = _U32.unpack_from
    u32x2 = _U32x2.unpack_from
    get = unpackers.get
    append = out.append
    off = start
    decoded = skipped = 0
    while off + 4 <= end:
        hdr = u32(page, off)[0]
        tl = hdr & 31
        delta = hdr >> 5
        if tl and tl <= 28:
            data = off + 4
            nxt = data + (tl << 2)
        elif tl == 0:
            if off + 8 > end:
                break
            size = u32(page, off + 4)[0]
            if size < 4:
                break
            data = off + 8
            nxt = off + 4 + size
        elif tl == TYPE_TIME_EXTEND:
            if off + 8 > end:
                break
            ts += delta + (u32(page, off + 4)[0] << 27)
            off += 8
            continue
        elif tl == TYPE_TIME_STAMP:
            if off + 8 > end:
                break
            ts = _absolute_ts(u32x2(page, off)[1], delta, page_ts)
            off += 8
            continue
        else:  # padding
            if delta == 0 or off + 8 > end:
                break
            off += 4 + u32(page, off + 4)[0]
            continue
        if nxt > end:
            break
        ts += delta
        ent = get(page[data] | (page[data + 1] << 8))
        if ent is None or data + ent[1] > nxt:
            skipped += 1  # unknown event, or a record shorter than its format says: skip, never misread
        else:
            append((ts, ent[0](page, data)))
            decoded += 1
        off = nxt
    res.decoded = decoded
    res.skipped = skipped
    res.last_ts = ts
    return res
