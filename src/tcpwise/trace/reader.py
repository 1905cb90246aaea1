"""Streaming pcap and pcapng reader: capture file or pipe -> batches of record offsets into a byte array.

Theory of operation
-------------------
A regular file is ``mmap``-ed once and nothing is copied. A pipe, a FIFO, ``-`` (standard input) or ``/dev/stdin``
is read as a stream: bytes are appended to a buffer as they arrive, every complete record is handed on, and the
incomplete tail waits for more — so ``tcpdump -w - | tcpwise trace -`` works while tcpdump runs. Either way a small
Python loop walks the record (pcap) or block (pcapng) headers — the only part of a capture that must be read
sequentially, because each header says where the next one starts — and collects, for up to ``batch`` packets at a
time, the byte offset of each packet's data, its captured and original length, its link type and its timestamp.
:mod:`tcpwise.trace.decode` then pulls the IP/TCP header fields of the whole batch out of the batch's byte array
(:attr:`RecordBatch.buf`) with numpy gathers. Memory therefore depends on the batch size, never on the file size.

Formats (both byte orders everywhere):

* pcap (draft-ietf-opsawg-pcap §4): magic ``0xA1B2C3D4`` (microsecond) or ``0xA1B23C4D`` (nanosecond) timestamps;
  one link type for the file, in the low 16 bits of the ``LinkType`` field (the upper bits carry FCS info).
* pcapng (draft-ietf-opsawg-pcapng): Section Header Blocks (each may switch byte order), Interface Description
  Blocks (link type, ``if_tsresol`` option 9, ``if_tsoffset`` option 14, per interface), Enhanced Packet Blocks,
  Simple Packet Blocks (no timestamp: they inherit the previous packet's) and the obsolete Packet Block; every
  other block type is skipped by its length.

Errors: a file that is not a capture, or whose headers are inconsistent, raises :class:`CaptureError` (a
:class:`tcpwise.errors.UsageError`: one line, exit 2). An unsupported link type is such an error as soon as the
header (pcap) or the interface description (pcapng) names it, whether or not packets follow. A file that ends in
the middle of a record yields every complete record first and then raises :class:`CaptureTruncated`, so callers
can finish their output before reporting it.

Interruption: a :class:`StopFlag` shared with the caller (set by its SIGINT handler) ends a stream cleanly: after
the first Ctrl-C the reader drains what the writer still sends (until it closes the pipe or stays silent for a
second), after the second it stops at once; either way the stream ends there as if it had ended normally (a record
cut by the interruption is dropped, not reported). A FIFO is opened without blocking, so waiting for its writer
can be interrupted too.
"""

from __future__ import annotations

import mmap
import os
import select
import stat
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from tcpwise.errors import UsageError
from tcpwise.trace import linktypes as lt
from tcpwise.trace.native import cdecode

__all__ = [
    "CaptureError",
    "CaptureTruncated",
    "RecordBatch",
    "Capture",
    "StopFlag",
    "open_capture",
    "MAX_CAPLEN",
]

# libpcap's MAXIMUM_SNAPLEN is 262144; a record claiming more than this is corruption, not a big packet.
MAX_CAPLEN = 262144 * 4
MAX_BLOCK = 16 << 20  # the largest pcapng block we accept (name resolution and secrets blocks can be big)

_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_SHB = 0x0A0D0D0A
_BOM = 0x1A2B3C4D
_STREAM_CAP = 32 << 20  # bytes buffered from a stream before a batch is cut, whatever its record count
_WAIT_NOTICE_S = 1.0  # a stream silent this long at the start gets a one-line "waiting" notice on stderr
_DRAIN_S = 1.0  # after Ctrl-C, a stream is read until it has been silent this long
_DRAIN_MAX_S = 5.0  # ... and in all, from the first Ctrl-C


class CaptureError(UsageError):
    """Not a capture, or a corrupt one: reported in one line, exit 2."""


class CaptureTruncated(CaptureError):
    """The file ends inside a record; every complete record before it has been delivered."""


class StopFlag:
    """Set by the caller's SIGINT handler: ``requested`` counts the Ctrl-Cs so far."""

    __slots__ = ("requested",)

    def __init__(self) -> None:
        self.requested = 0


@dataclass(slots=True)
class RecordBatch:
    """Up to ``batch`` packets: parallel numpy arrays. ``data_off`` indexes :attr:`buf`."""

    ts: np.ndarray  # float64 seconds since the epoch
    data_off: np.ndarray  # int64
    caplen: np.ndarray  # int64
    origlen: np.ndarray  # int64
    linktype: np.ndarray  # int64
    first_index: int  # 1-based number of the first packet in the file
    buf: np.ndarray  # uint8: the whole mapped file, or this batch's bytes of a stream

    def __len__(self) -> int:
        return int(self.data_off.shape[0])


class _Stream:
    """Bytes from a pipe/FIFO as they arrive. ``need(n)`` blocks until ``n`` bytes are buffered (False at the end)."""

    def __init__(self, fd: int, path: str, stop: StopFlag) -> None:
        self.fd = fd
        self.path = path
        self.stop = stop
        self.buf = bytearray()
        self.eof = False
        self.total = 0  # bytes consumed before buf[0]
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        self._noticed = False
        self._drain_until: float | None = None
        self._drain_last = 0.0  # the drain's hard end, set by the first Ctrl-C

    def more(self, started: float | None = None) -> bool:
        """Block until at least one more byte (True), or the end of the stream (False); then take whatever else
        is already waiting, up to a cap. After one Ctrl-C the stream is drained — read until its writer closes
        it or it stays silent for a second (tcpdump flushes its last packets when interrupted too), and never
        longer than a few seconds in all (a writer that keeps trickling did not get the Ctrl-C: a FIFO fed by
        another program); a second Ctrl-C ends it at once."""
        if self.eof:
            return False
        got = False
        while not got:
            req = self.stop.requested
            if req:
                now = time.monotonic()
                if self._drain_until is None:
                    self._drain_until = now + _DRAIN_S
                    self._drain_last = now + _DRAIN_MAX_S
                if req >= 2 or now > self._drain_until:
                    self.eof = True
                    return False
            if not self._poll.poll(200):
                if started is not None and not self._noticed and time.monotonic() - started > _WAIT_NOTICE_S:
                    self._noticed = True
                    print(
                        f"tcpwise: waiting for capture data on {self.path} (Ctrl-C to stop)", file=sys.stderr
                    )
                continue
            got = self._read_once()
            if self.eof:
                return got
        if self._drain_until is not None:
            self._drain_until = min(time.monotonic() + _DRAIN_S, self._drain_last)
        while len(self.buf) < _STREAM_CAP and self._poll.poll(0):
            if not self._read_once():
                break
        return True

    def _read_once(self) -> bool:
        try:
            chunk = os.read(self.fd, 1 << 20)
        except BlockingIOError:
            return False
        except OSError as exc:
            raise UsageError(f"cannot read capture {self.path!r}: {exc.strerror}") from None
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def need(self, n: int, started: float | None = None) -> bool:
        while len(self.buf) < n:
            if not self.more(started):
                return len(self.buf) >= n
        return True

    def take(self, n: int) -> bytes:
        out = bytes(self.buf[:n])
        del self.buf[:n]
        self.total += n
        return out


class Capture:
    """An open capture. Use :meth:`batches` (fast) or :meth:`packets` (one tuple per packet)."""

    def __init__(self, path: str, stop: StopFlag | None = None) -> None:
        self.path = path
        self.stop = stop or StopFlag()
        self.linktypes: set[int] = set()
        self.packets_read = 0
        self.stream: _Stream | None = None
        self.mm: mmap.mmap | None = None
        self.arr: np.ndarray | None = None
        self.size = 0
        self._pcap_hdr: tuple[str, float, int] = ("<", 1e-6, 0)
        fd = self._open_fd(path)
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode):
                self._map(fd, st.st_size)
            elif stat.S_ISDIR(st.st_mode):
                raise UsageError(f"cannot read capture {path!r}: it is a directory")
            elif os.isatty(fd):
                raise UsageError(
                    f"{path}: a terminal, not a capture (pipe one in: tcpdump -i lo -w - | tcpwise trace -)"
                )
            else:
                os.set_blocking(fd, False)
                self.stream = _Stream(fd, path, self.stop)
                fd = -1  # owned by the stream now
        finally:
            if fd >= 0:
                os.close(fd)
        self.format = self._read_magic()

    @staticmethod
    def _open_fd(path: str) -> int:
        try:
            if path == "-":
                return os.dup(0)
            # O_NONBLOCK: opening a FIFO must not block until a writer appears (waiting happens, interruptibly,
            # in _Stream.more); for a regular file the flag has no effect.
            return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise UsageError(f"cannot open capture {path!r}: {exc.strerror}") from None

    def _map(self, fd: int, size: int) -> None:
        if size == 0:
            raise CaptureError(f"{self.path}: empty file, not a pcap/pcapng capture")
        try:
            self.mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise UsageError(f"cannot map capture {self.path!r}: {exc.strerror}") from None
        self.size = size
        self.arr = np.frombuffer(self.mm, dtype=np.uint8)

    def _read_magic(self) -> str:
        if self.stream is not None:
            if not self.stream.need(4, started=time.monotonic()):
                if self.stop.requested:
                    raise KeyboardInterrupt
                if not self.stream.buf:
                    raise CaptureError(f"{self.path}: empty input, not a pcap/pcapng capture")
            head = bytes(self.stream.buf[:4])
        else:
            assert self.mm is not None
            head = bytes(self.mm[:4])
        if head in _PCAP_MAGIC:
            self._pcap_hdr = self._pcap_header()  # a truncated header or bad link type fails at open
            return "pcap"
        if len(head) == 4 and struct.unpack("<I", head)[0] == _PCAPNG_SHB:
            return "pcapng"
        raise CaptureError(
            f"{self.path}: not a pcap or pcapng file (magic {head.hex() or 'none'}; expected a1b2c3d4, a1b23c4d or "
            "0a0d0d0a)"
        )

    def close(self) -> None:
        self.arr = None
        if self.mm is not None:
            try:
                self.mm.close()
            except BufferError:
                pass  # a view is still alive (e.g. in a traceback being handled): the map closes when it dies
        if self.stream is not None and self.stream.fd >= 0:
            os.close(self.stream.fd)
            self.stream.fd = -1

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _done_with(self, start: int, end: int) -> None:
        """Drop the pages of a batch already decoded from our resident set (they stay in the page cache): the
        RSS of a multi-GB capture stays that of one batch."""
        if self.mm is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        page = mmap.PAGESIZE
        lo = (start // page) * page
        hi = (end // page) * page
        if hi > lo:
            try:
                self.mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
            except (OSError, ValueError):
                pass

    @property
    def buf(self) -> np.ndarray | None:
        """The whole file as bytes (mapped files only; stream batches carry their own :attr:`RecordBatch.buf`)."""
        return self.arr

    # -- batches ---------------------------------------------------------------------------------------------
    def batches(self, batch: int = 65536) -> Iterator[RecordBatch]:
        """Yield record batches in file order; raises CaptureError/CaptureTruncated after the last good one."""
        if self.format == "pcap":
            yield from self._pcap_batches(batch)
        else:
            yield from self._pcapng_batches(batch)

    def packets(self) -> Iterator[tuple[float, int, bytes, int]]:
        """One ``(ts, linktype, data, origlen)`` per packet; simple and slow (tests, ``--conn`` detail)."""
        for b in self.batches(4096):
            for ts, off, cl, ol, ltp in zip(
                b.ts.tolist(),
                b.data_off.tolist(),
                b.caplen.tolist(),
                b.origlen.tolist(),
                b.linktype.tolist(),
                strict=False,
            ):
                yield ts, ltp, b.buf[off : off + cl].tobytes(), ol

    def _emit(
        self, arr: np.ndarray, ts: Any, offs: Any, cls: Any, ols: Any, lts: list[int] | int
    ) -> RecordBatch:
        n = len(offs)
        ltv = np.full(n, lts, dtype=np.int64) if isinstance(lts, int) else np.asarray(lts, dtype=np.int64)
        rb = RecordBatch(
            ts=np.asarray(ts, dtype=np.float64),
            data_off=np.asarray(offs, dtype=np.int64),
            caplen=np.asarray(cls, dtype=np.int64),
            origlen=np.asarray(ols, dtype=np.int64),
            linktype=ltv,
            first_index=self.packets_read + 1,
            buf=arr,
        )
        self.packets_read += n
        return rb

    def _check_linktype(self, linktype: int, where: str = "") -> None:
        if linktype not in lt.LINKTYPE_NAMES:
            valid = ", ".join(f"{n} {name}" for n, name in sorted(lt.LINKTYPE_NAMES.items()))
            raise CaptureError(f"{self.path}: unsupported link type {linktype}{where} (supported: {valid})")

    # -- pcap --------------------------------------------------------------------------------------------------
    def _pcap_header(self) -> tuple[str, float, int]:
        if self.stream is not None:
            self.stream.need(24)
            raw = bytes(self.stream.buf[:24])
        else:
            assert self.mm is not None
            raw = bytes(self.mm[:24])
        if len(raw) < 24:
            raise CaptureTruncated(f"{self.path}: truncated pcap file header ({len(raw)} of 24 bytes)")
        endian, unit = _PCAP_MAGIC[raw[:4]]
        major, _minor, _zone, _sigfigs, _snaplen, network = struct.unpack_from(endian + "HHiIII", raw, 4)
        if major != 2:
            raise CaptureError(f"{self.path}: unsupported pcap version {major} (expected 2)")
        linktype = network & 0xFFFF  # bits 16+ hold FCS length flags (pcap draft §4)
        self._check_linktype(linktype)
        self.linktypes.add(linktype)
        if self.stream is not None:
            self.stream.take(24)
        return endian, unit, linktype

    @staticmethod
    def _walk_pcap(data: Any, off: int, end: int, batch: int, caplen_at: Any) -> tuple[list[int], int, int]:
        """Offsets of up to ``batch`` complete records from ``off``; returns (offsets, next offset, bad caplen or
        -1). The only sequential part: each record header says where the next one starts."""
        offs: list[int] = []
        a_off = offs.append
        last_hdr = end - 16  # the last offset where a whole record header fits
        for _ in range(batch):
            if off > last_hdr:
                break
            cl = caplen_at(data, off + 8)[0]
            if cl > MAX_CAPLEN:
                return offs, off, cl
            nxt = off + 16 + cl
            if nxt > end:
                break
            a_off(off)
            off = nxt
        return offs, off, -1

    def _walk(
        self, data: Any, off: int, end: int, batch: int, endian: str, caplen_at: Any
    ) -> tuple[np.ndarray, np.ndarray | None, int, int]:
        """:meth:`_walk_pcap` as arrays: record offsets, their headers as (n, 4) words when the native walk
        copied them on the way (else None), next offset, bad caplen or -1."""
        if cdecode is not None:
            ob, hb, nxt, bad = cdecode.walk_pcap(data, off, end, batch, endian == ">", MAX_CAPLEN)
            hdr = np.frombuffer(hb, dtype=np.dtype(endian + "u4")).reshape(-1, 4)
            return np.frombuffer(ob, dtype=np.int64), hdr, nxt, bad
        offs, nxt, bad = self._walk_pcap(data, off, end, batch, caplen_at)
        return np.asarray(offs, dtype=np.int64), None, nxt, bad

    def _pcap_records(
        self, arr: np.ndarray, o: np.ndarray, hdr: np.ndarray | None, endian: str, unit: float, linktype: int
    ) -> RecordBatch:
        if hdr is None:  # (n, 4) words: ts, ts fraction, caplen, origlen
            hdr = arr[(o[:, None] + np.arange(16)[None, :])].copy().view(np.dtype(endian + "u4"))
        ts = hdr[:, 0].astype(np.float64) + hdr[:, 1].astype(np.float64) * unit
        return self._emit(arr, ts, o + 16, hdr[:, 2].astype(np.int64), hdr[:, 3].astype(np.int64), linktype)

    def _corrupt_pcap(self, at: int, cl: int) -> CaptureError:
        return CaptureError(
            f"{self.path}: corrupt pcap record {self.packets_read + 1} at byte {at}: captured length {cl} > "
            f"{MAX_CAPLEN}"
        )

    def _pcap_batches(self, batch: int) -> Iterator[RecordBatch]:
        endian, unit, linktype = self._pcap_hdr
        caplen_at = struct.Struct(endian + "I").unpack_from
        if self.stream is not None:
            yield from self._pcap_stream(batch, endian, unit, linktype, caplen_at)
            return
        assert self.mm is not None and self.arr is not None
        off, size = 24, self.size
        while True:
            start = off
            offs, hdr, off, bad_cl = self._walk(self.mm, off, size, batch, endian, caplen_at)
            if len(offs):
                yield self._pcap_records(self.arr, offs, hdr, endian, unit, linktype)
                self._done_with(start, off)
            if bad_cl >= 0:
                raise self._corrupt_pcap(off, bad_cl)
            if len(offs) < batch:
                break
        if off != size:
            raise CaptureTruncated(
                f"{self.path}: capture truncated at byte {off} of {size} (inside record {self.packets_read + 1}); "
                f"{self.packets_read} complete packets were read"
            )

    def _pcap_stream(
        self, batch: int, endian: str, unit: float, linktype: int, caplen_at: Any
    ) -> Iterator[RecordBatch]:
        s = self.stream
        assert s is not None
        while True:
            offs, hdr, pos, bad_cl = self._walk(s.buf, 0, len(s.buf), batch, endian, caplen_at)
            if len(offs):
                chunk = s.take(pos)
                yield self._pcap_records(
                    np.frombuffer(chunk, dtype=np.uint8), offs, hdr, endian, unit, linktype
                )
                pos = 0
            if bad_cl >= 0:
                raise self._corrupt_pcap(s.total + pos, bad_cl)
            if len(offs) == batch:
                continue
            if not s.more():
                if s.buf and not self.stop.requested:
                    raise CaptureTruncated(
                        f"{self.path}: capture stream ended inside record {self.packets_read + 1} "
                        f"({len(s.buf)} bytes of it); {self.packets_read} complete packets were read"
                    )
                return

    # -- pcapng ------------------------------------------------------------------------------------------------
    def _pcapng_batches(self, batch: int) -> Iterator[RecordBatch]:
        w = _NgWalker(self)
        if self.stream is None:
            assert self.mm is not None and self.arr is not None
            off = 0
            while True:
                start = off
                off, status = w.walk(self.mm, off, self.size, batch)
                if w.offs:
                    yield w.flush(self.arr)
                    self._done_with(start, off)
                if status == "full":
                    continue
                if status == "need" and off != self.size:
                    raise w.truncated(off, self.size)
                if w.error is not None:
                    raise w.error
                return
        s = self.stream
        while True:
            pos, status = w.walk(s.buf, 0, len(s.buf), batch)
            base = s.total
            chunk = s.take(pos)
            if w.offs:
                yield w.flush(np.frombuffer(chunk, dtype=np.uint8))
            if w.error is not None:
                raise w.error
            if status == "full":
                continue
            if not s.more():
                if s.buf and not self.stop.requested:
                    raise w.truncated(base + pos, None)
                return


class _NgWalker:
    """pcapng block walker; its state (byte order, interfaces, last timestamp) survives across calls so that a
    stream can be walked piece by piece."""

    def __init__(self, cap: Capture) -> None:
        self.cap = cap
        self.endian = "<"
        self.u32 = struct.Struct("<I").unpack_from
        # per interface: (linktype, seconds per tick, offset seconds, snaplen)
        self.ifaces: list[tuple[int, float, int, int]] = []
        self.last_ts = 0.0
        self.offs: list[int] = []
        self.tss: list[float] = []
        self.cls: list[int] = []
        self.ols: list[int] = []
        self.lts: list[int] = []
        self.error: CaptureError | None = None
        self.seen_shb = False

    def flush(self, arr: np.ndarray) -> RecordBatch:
        rb = self.cap._emit(arr, self.tss, self.offs, self.cls, self.ols, self.lts)
        self.offs, self.tss, self.cls, self.ols, self.lts = [], [], [], [], []
        return rb

    def truncated(self, off: int, size: int | None) -> CaptureTruncated:
        where = f"at byte {off} of {size}" if size is not None else f"at byte {off} (stream ended)"
        return CaptureTruncated(
            f"{self.cap.path}: pcapng truncated {where} (inside a block); {self.cap.packets_read + len(self.offs)} "
            "complete packets were read"
        )

    def walk(self, mm: Any, off: int, size: int, batch: int) -> tuple[int, str]:
        """Walk complete blocks from ``off``; returns (next offset, "full" | "need" | "error")."""
        path = self.cap.path
        while len(self.offs) < batch:
            if off + 12 > size:
                return off, "need"
            btype = self.u32(mm, off)[0]
            if btype == _PCAPNG_SHB:
                bom = struct.unpack_from("<I", mm, off + 8)[0]
                if bom == _BOM:
                    self.endian = "<"
                elif bom == 0x4D3C2B1A:
                    self.endian = ">"
                else:
                    self.error = CaptureError(
                        f"{path}: corrupt pcapng section header at byte {off} (byte-order magic)"
                    )
                    return off, "error"
                self.u32 = struct.Struct(self.endian + "I").unpack_from
                self.ifaces = []  # interface ids are per section
                self.seen_shb = True
            blen = self.u32(mm, off + 4)[0]
            if blen < 12 or blen % 4 or blen > MAX_BLOCK:
                # Over MAX_BLOCK: no capture tool writes such a block, and on a stream we would buffer up to 4 GiB
                # waiting for its end instead of saying the capture is damaged.
                self.error = CaptureError(f"{path}: corrupt pcapng block at byte {off}: block length {blen}")
                return off, "error"
            if off + blen > size:
                return off, "need"
            tail = self.u32(mm, off + blen - 4)[0]  # pcapng §3.1: the block length is repeated at its end
            if tail != blen:
                self.error = CaptureError(
                    f"{path}: corrupt pcapng block at byte {off}: block length {blen} at its start, {tail} at its end"
                )
                return off, "error"
            err = self._block(mm, btype, off, blen)
            if err is not None:
                self.error = CaptureError(f"{path}: {err}")
                return off, "error"
            off += blen
        return off, "full"

    def _block(self, mm: Any, btype: int, off: int, blen: int) -> str | None:
        """Handle one complete block; returns an error text or None."""
        body = off + 8
        end = off + blen - 4
        e = self.endian
        if btype == 6 or btype == 2:  # Enhanced Packet Block / obsolete Packet Block
            if end - body < 20:
                return f"corrupt pcapng packet block at byte {off}"
            if btype == 6:
                iface, hi, lo, cl, ol = struct.unpack_from(e + "IIIII", mm, body)
            else:
                iface, _drops, hi, lo, cl, ol = struct.unpack_from(e + "HHIIII", mm, body)
            if iface >= len(self.ifaces):
                return f"pcapng packet at byte {off} names interface {iface}, but only {len(self.ifaces)} are described"
            if body + 20 + cl > end:
                return f"corrupt pcapng packet block at byte {off}: captured length {cl}"
            ltp, tick, tsoff, _snap = self.ifaces[iface]
            self.last_ts = ((hi << 32) | lo) * tick + tsoff
            self._add(body + 20, self.last_ts, cl, ol, ltp)
        elif btype == 3:  # Simple Packet Block: interface 0, no timestamp
            if not self.ifaces or end - body < 4:
                return f"corrupt pcapng simple packet block at byte {off}"
            ol = self.u32(mm, body)[0]
            ltp, _tick, _tsoff, snap = self.ifaces[0]
            cl = min(ol, snap or ol, end - body - 4)
            self._add(body + 4, self.last_ts, cl, ol, ltp)
        elif btype == 1:  # Interface Description Block
            if end - body < 8:
                return f"corrupt pcapng interface block at byte {off}"
            ltp, _res, snap = struct.unpack_from(e + "HHI", mm, body)
            if ltp not in lt.LINKTYPE_NAMES:
                valid = ", ".join(f"{n} {name}" for n, name in sorted(lt.LINKTYPE_NAMES.items()))
                return (
                    f"unsupported link type {ltp} on pcapng interface {len(self.ifaces)} (supported: {valid})"
                )
            tick, tsoff = _idb_options(mm, body + 8, end, e)
            self.ifaces.append((ltp, tick, tsoff, snap))
            self.cap.linktypes.add(ltp)
        return None

    def _add(self, off: int, ts: float, cl: int, ol: int, ltp: int) -> None:
        self.offs.append(off)
        self.tss.append(ts)
        self.cls.append(cl)
        self.ols.append(ol)
        self.lts.append(ltp)


def _idb_options(mm: Any, p: int, end: int, endian: str) -> tuple[float, int]:
    """``if_tsresol`` (code 9: 10^-v, or 2^-v when the top bit is set) and ``if_tsoffset`` (code 14)."""
    tick, tsoff = 1e-6, 0
    while p + 4 <= end:
        code, olen = struct.unpack_from(endian + "HH", mm, p)
        if code == 0:
            break
        val = p + 4
        if val + olen > end:
            break  # a malformed option list: keep the defaults rather than fail the whole capture
        if code == 9 and olen >= 1:
            v = mm[val]
            tick = 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0**-v
        elif code == 14 and olen >= 8:
            tsoff = struct.unpack_from(endian + "q", mm, val)[0]
        p = val + ((olen + 3) & ~3)
    return tick, tsoff


def open_capture(path: str, stop: StopFlag | None = None) -> Capture:
    """Open ``path`` (a file, a FIFO, ``-`` for standard input) as a pcap or pcapng capture; raises
    :class:`CaptureError` in one line when it is not one."""
    return Capture(path, stop)
