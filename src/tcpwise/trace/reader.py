"""Streaming pcap and pcapng reader: capture file -> batches of record offsets into a memory map.

Theory of operation
-------------------
The file is ``mmap``-ed once; nothing is copied. A small Python loop walks the record (pcap) or block (pcapng)
headers — the only part of a capture that must be read sequentially, because each header says where the next one
starts — and collects, for up to ``batch`` packets at a time, the byte offset of each packet's data, its captured
and original length, its link type and its timestamp. :mod:`tcpwise.trace.decode` then pulls the IP/TCP header
fields of the whole batch out of the map with numpy gathers. Memory therefore depends on the batch size, never on
the file size.

Formats (both byte orders everywhere):

* pcap (draft-ietf-opsawg-pcap §4): magic ``0xA1B2C3D4`` (microsecond) or ``0xA1B23C4D`` (nanosecond) timestamps;
  one link type for the file, in the low 16 bits of the ``LinkType`` field (the upper bits carry FCS info).
* pcapng (draft-ietf-opsawg-pcapng): Section Header Blocks (each may switch byte order), Interface Description
  Blocks (link type, ``if_tsresol`` option 9, ``if_tsoffset`` option 14, per interface), Enhanced Packet Blocks,
  Simple Packet Blocks (no timestamp: they inherit the previous packet's) and the obsolete Packet Block; every
  other block type is skipped by its length.

Errors: a file that is not a capture, or whose headers are inconsistent, raises :class:`CaptureError` (a
:class:`tcpwise.errors.UsageError`: one line, exit 2). A file that ends in the middle of a record yields every
complete record first and then raises :class:`CaptureTruncated`, so callers can finish their output before
reporting it.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from tcpwise.errors import UsageError

__all__ = ["CaptureError", "CaptureTruncated", "RecordBatch", "Capture", "open_capture", "MAX_CAPLEN"]

# libpcap's MAXIMUM_SNAPLEN is 262144; a record claiming more than this is corruption, not a big packet.
MAX_CAPLEN = 262144 * 4

_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_SHB = 0x0A0D0D0A
_BOM = 0x1A2B3C4D


class CaptureError(UsageError):
    """Not a capture, or a corrupt one: reported in one line, exit 2."""


class CaptureTruncated(CaptureError):
    """The file ends inside a record; every complete record before it has been delivered."""


@dataclass(slots=True)
class RecordBatch:
    """Up to ``batch`` packets: parallel numpy arrays. ``data_off`` indexes the capture's memory map."""

    ts: np.ndarray  # float64 seconds since the epoch
    data_off: np.ndarray  # int64
    caplen: np.ndarray  # int64
    origlen: np.ndarray  # int64
    linktype: np.ndarray  # int64
    first_index: int  # 1-based number of the first packet in the file

    def __len__(self) -> int:
        return int(self.data_off.shape[0])


class Capture:
    """An open capture file. Use :meth:`batches` (fast) or :meth:`packets` (one tuple per packet)."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise UsageError(f"cannot open capture {path!r}: {exc.strerror}") from None
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                raise CaptureError(f"{path}: empty file, not a pcap/pcapng capture")
            self.mm: mmap.mmap | bytes = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise UsageError(f"cannot map capture {path!r}: {exc.strerror}") from None
        finally:
            os.close(fd)
        self.size = size
        head = bytes(self.mm[:4])
        if head in _PCAP_MAGIC:
            self.format = "pcap"
        elif len(head) == 4 and struct.unpack("<I", head)[0] == _PCAPNG_SHB:
            self.format = "pcapng"
        else:
            raise CaptureError(
                f"{path}: not a pcap or pcapng file (magic {head.hex() or 'none'}; expected a1b2c3d4, a1b23c4d or "
                "0a0d0d0a)"
            )
        self.linktypes: set[int] = set()
        self.packets_read = 0
        self.buf: np.ndarray | None = np.frombuffer(self.mm, dtype=np.uint8)  # the whole file as bytes

    def close(self) -> None:
        self.buf = None
        if isinstance(self.mm, mmap.mmap):
            try:
                self.mm.close()
            except BufferError:
                pass  # a view is still alive (e.g. in a traceback being handled): the map closes when it dies

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- batches ---------------------------------------------------------------------------------------------
    def batches(self, batch: int = 65536) -> Iterator[RecordBatch]:
        """Yield record batches in file order; raises CaptureError/CaptureTruncated after the last good one."""
        if self.format == "pcap":
            yield from self._pcap_batches(batch)
        else:
            yield from self._pcapng_batches(batch)

    def packets(self) -> Iterator[tuple[float, int, bytes, int]]:
        """One ``(ts, linktype, data, origlen)`` per packet; simple and slow (tests, ``--conn`` detail)."""
        mm = self.mm
        for b in self.batches(4096):
            for ts, off, cl, ol, lt in zip(
                b.ts.tolist(),
                b.data_off.tolist(),
                b.caplen.tolist(),
                b.origlen.tolist(),
                b.linktype.tolist(),
                strict=False,
            ):
                yield ts, lt, bytes(mm[off : off + cl]), ol

    def _emit(self, ts: Any, offs: Any, cls: Any, ols: Any, lts: list[int] | int) -> RecordBatch:
        n = len(offs)
        lt = np.full(n, lts, dtype=np.int64) if isinstance(lts, int) else np.asarray(lts, dtype=np.int64)
        rb = RecordBatch(
            ts=np.asarray(ts, dtype=np.float64),
            data_off=np.asarray(offs, dtype=np.int64),
            caplen=np.asarray(cls, dtype=np.int64),
            origlen=np.asarray(ols, dtype=np.int64),
            linktype=lt,
            first_index=self.packets_read + 1,
        )
        self.packets_read += n
        return rb

    def _pcap_batches(self, batch: int) -> Iterator[RecordBatch]:
        mm, size, path = self.mm, self.size, self.path
        if size < 24:
            raise CaptureTruncated(f"{path}: truncated pcap file header ({size} of 24 bytes)")
        endian, unit = _PCAP_MAGIC[bytes(mm[:4])]
        major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(endian + "HHiIII", mm, 4)
        if major != 2:
            raise CaptureError(f"{path}: unsupported pcap version {major} (expected 2)")
        linktype = network & 0xFFFF  # bits 16+ hold FCS length flags (pcap draft §4)
        self.linktypes.add(linktype)
        caplen_at = struct.Struct(endian + "I").unpack_from
        buf = self.buf
        assert buf is not None
        dt = np.dtype(endian + "u4")
        off = 24
        rng = range(batch)
        last_hdr = size - 16  # the last offset where a whole record header fits
        try:
            while True:
                # The only sequential part: each record header says where the next one starts. Collect offsets
                # here and gather the header fields with numpy afterwards.
                offs: list[int] = []
                a_off = offs.append
                bad_cl = -1
                for _ in rng:
                    if off > last_hdr:
                        break
                    cl = caplen_at(mm, off + 8)[0]
                    if cl > MAX_CAPLEN:
                        bad_cl = cl
                        break
                    nxt = off + 16 + cl
                    if nxt > size:
                        break
                    a_off(off)
                    off = nxt
                k = len(offs)
                if offs:
                    o = np.asarray(offs, dtype=np.int64)
                    hdr = buf[(o[:, None] + np.arange(16)[None, :])].copy().view(dt)  # (n, 4) header words
                    ts = hdr[:, 0].astype(np.float64) + hdr[:, 1].astype(np.float64) * unit
                    yield self._emit(
                        ts, o + 16, hdr[:, 2].astype(np.int64), hdr[:, 3].astype(np.int64), linktype
                    )
                if bad_cl >= 0:
                    raise CaptureError(
                        f"{path}: corrupt pcap record {self.packets_read + 1} at byte {off}: "
                        f"captured length {bad_cl} > {MAX_CAPLEN}"
                    )
                if k < batch:
                    break
        finally:
            del buf
        if off != size:
            raise CaptureTruncated(
                f"{path}: capture truncated at byte {off} of {size} (inside record {self.packets_read + 1}); "
                f"{self.packets_read} complete packets were read"
            )

    def _pcapng_batches(self, batch: int) -> Iterator[RecordBatch]:
        mm, size, path = self.mm, self.size, self.path
        off = 0
        endian = "<"
        # per interface: (linktype, seconds per tick, offset seconds, snaplen)
        ifaces: list[tuple[int, float, int, int]] = []
        offs: list[int] = []
        tss: list[float] = []
        cls: list[int] = []
        ols: list[int] = []
        lts: list[int] = []
        last_ts = 0.0
        u32 = struct.Struct("<I").unpack_from
        while True:
            if off == size:
                break
            if off + 12 > size:
                yield from self._flush_ng(tss, offs, cls, ols, lts)
                raise CaptureTruncated(
                    f"{path}: pcapng truncated at byte {off} of {size} (inside a block header)"
                )
            btype = u32(mm, off)[0]
            if btype == _PCAPNG_SHB:
                bom = u32(mm, off + 8)[0]
                if bom == _BOM:
                    endian = "<"
                elif bom == 0x4D3C2B1A:
                    endian = ">"
                else:
                    raise CaptureError(
                        f"{path}: corrupt pcapng section header at byte {off} (byte-order magic)"
                    )
                u32 = struct.Struct(endian + "I").unpack_from
                ifaces = []  # interface ids are per section
            blen = u32(mm, off + 4)[0]
            if blen < 12 or blen % 4:
                yield from self._flush_ng(tss, offs, cls, ols, lts)
                raise CaptureError(f"{path}: corrupt pcapng block at byte {off}: block length {blen}")
            if off + blen > size:
                yield from self._flush_ng(tss, offs, cls, ols, lts)
                raise CaptureTruncated(
                    f"{path}: pcapng truncated at byte {off} of {size} (block of {blen} bytes); "
                    f"{self.packets_read} complete packets were read"
                )
            body = off + 8
            end = off + blen - 4
            if btype == 6 or btype == 2:  # Enhanced Packet Block / obsolete Packet Block
                if end - body < 20:
                    raise CaptureError(f"{path}: corrupt pcapng packet block at byte {off}")
                if btype == 6:
                    iface, hi, lo, cl, ol = struct.unpack_from(endian + "IIIII", mm, body)
                else:
                    iface, _drops, hi, lo, cl, ol = struct.unpack_from(endian + "HHIIII", mm, body)
                if iface >= len(ifaces):
                    yield from self._flush_ng(tss, offs, cls, ols, lts)
                    raise CaptureError(
                        f"{path}: pcapng packet at byte {off} names interface {iface}, "
                        f"but only {len(ifaces)} are described"
                    )
                if body + 20 + cl > end:
                    yield from self._flush_ng(tss, offs, cls, ols, lts)
                    raise CaptureError(
                        f"{path}: corrupt pcapng packet block at byte {off}: captured length {cl}"
                    )
                lt, tick, tsoff, _snap = ifaces[iface]
                last_ts = ((hi << 32) | lo) * tick + tsoff
                offs.append(body + 20)
                tss.append(last_ts)
                cls.append(cl)
                ols.append(ol)
                lts.append(lt)
            elif btype == 3:  # Simple Packet Block: interface 0, no timestamp
                if not ifaces or end - body < 4:
                    raise CaptureError(f"{path}: corrupt pcapng simple packet block at byte {off}")
                ol = u32(mm, body)[0]
                lt, _tick, _tsoff, snap = ifaces[0]
                cl = min(ol, snap or ol, end - body - 4)
                offs.append(body + 4)
                tss.append(last_ts)
                cls.append(cl)
                ols.append(ol)
                lts.append(lt)
            elif btype == 1:  # Interface Description Block
                if end - body < 8:
                    raise CaptureError(f"{path}: corrupt pcapng interface block at byte {off}")
                lt, _res, snap = struct.unpack_from(endian + "HHI", mm, body)
                tick, tsoff = self._idb_options(mm, body + 8, end, endian)
                ifaces.append((lt, tick, tsoff, snap))
                self.linktypes.add(lt)
            off += blen
            if len(offs) >= batch:
                yield from self._flush_ng(tss, offs, cls, ols, lts)
                offs, tss, cls, ols, lts = [], [], [], [], []
        yield from self._flush_ng(tss, offs, cls, ols, lts)

    def _idb_options(self, mm: mmap.mmap | bytes, p: int, end: int, endian: str) -> tuple[float, int]:
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

    def _flush_ng(
        self, tss: list[float], offs: list[int], cls: list[int], ols: list[int], lts: list[int]
    ) -> Iterator[RecordBatch]:
        if offs:
            yield self._emit(list(tss), list(offs), list(cls), list(ols), list(lts))
            tss.clear()
            offs.clear()
            cls.clear()
            ols.clear()
            lts.clear()


def open_capture(path: str) -> Capture:
    """Open ``path`` as a pcap or pcapng capture (raises :class:`CaptureError` in one line when it is not)."""
    return Capture(path)
