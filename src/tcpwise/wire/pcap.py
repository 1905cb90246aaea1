"""Classic libpcap file writer (the tcpdump.org "pcap" format; no pcapng, and no reader: that is trace's job).

Theory of operation
-------------------
A pcap file is a 24-byte global header followed by records, each a 16-byte record header and the captured bytes
(https://www.tcpdump.org/manpages/pcap-savefile.5.html, draft-ietf-opsawg-pcap):

* global header: magic ``0xa1b2c3d4`` (microsecond timestamps) or ``0xa1b23c4d`` (nanosecond), version 2.4,
  two reserved zero words (formerly thiszone/sigfigs), snaplen, and the link-layer header type;
* record header: timestamp seconds, timestamp fraction (µs or ns), captured length, original length.

We write little-endian files (readers detect byte order from the magic). The link type defaults to
``LINKTYPE_RAW`` (101): each record is a bare IPv4/IPv6 packet, which is what simulator exports and
:func:`tcpwise.wire.ip.build_packet` produce. ``LINKTYPE_ETHERNET`` (1) is available together with
:func:`ethernet_frame` for tools that insist on Ethernet. Records longer than ``snaplen`` are cut to it with the
original length kept, as a capture would.

Timestamps are floats in seconds (simulated time starts near 0, where a double is exact to well below 1 ns) or
integer nanoseconds via :meth:`PcapWriter.write_packet_ns`. The writer only formats bytes into a file object the
caller owns: still sans-IO in spirit (no sockets, no clock).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from types import TracebackType
from typing import BinaryIO

__all__ = [
    "PcapWriter",
    "write_pcap",
    "ethernet_frame",
    "LINKTYPE_ETHERNET",
    "LINKTYPE_RAW",
    "PCAP_MAGIC_US",
    "PCAP_MAGIC_NS",
    "DEFAULT_SNAPLEN",
]

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = (
    101  # the file-format value; DLT_RAW differs between platforms (12 or 14), LINKTYPE_RAW does not
)
PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
DEFAULT_SNAPLEN = 262144  # tcpdump's default (MAXIMUM_SNAPLEN)

_GLOBAL = struct.Struct("<IHHiIII")  # magic, major, minor, thiszone, sigfigs, snaplen, linktype
_RECORD = struct.Struct("<IIII")  # ts_sec, ts_frac, incl_len, orig_len

_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_IPV6 = 0x86DD


class PcapWriter:
    """Append packets to a pcap file object opened in binary mode; the global header is written at once.

    Usable as a context manager (closes nothing it did not open: it flushes the file object on exit).
    """

    def __init__(
        self,
        fileobj: BinaryIO,
        linktype: int = LINKTYPE_RAW,
        nanosecond: bool = False,
        snaplen: int = DEFAULT_SNAPLEN,
    ) -> None:
        if snaplen <= 0:
            raise ValueError(f"snaplen must be positive, got {snaplen}")
        self._f = fileobj
        self.linktype = linktype
        self.nanosecond = nanosecond
        self.snaplen = snaplen
        self._scale = 1_000_000_000 if nanosecond else 1_000_000
        self.count = 0
        magic = PCAP_MAGIC_NS if nanosecond else PCAP_MAGIC_US
        fileobj.write(_GLOBAL.pack(magic, 2, 4, 0, 0, snaplen, linktype))

    def write_packet(
        self, ts: float, data: bytes | bytearray | memoryview, orig_len: int | None = None
    ) -> None:
        """Write one record at ``ts`` seconds (>= 0). ``orig_len`` defaults to ``len(data)``."""
        if ts < 0:
            raise ValueError(f"pcap timestamps cannot be negative, got {ts}")
        # Round to the file's resolution once, then split, so 0.9999999 s never becomes "0 s + 1000000 µs".
        units = round(ts * self._scale)
        self._write(units, data, orig_len)

    def write_packet_ns(
        self, ts_ns: int, data: bytes | bytearray | memoryview, orig_len: int | None = None
    ) -> None:
        """Write one record at ``ts_ns`` integer nanoseconds (exact in nanosecond files, rounded in µs files)."""
        if ts_ns < 0:
            raise ValueError(f"pcap timestamps cannot be negative, got {ts_ns}")
        units = ts_ns if self.nanosecond else (ts_ns + 500) // 1000
        self._write(units, data, orig_len)

    def _write(self, units: int, data: bytes | bytearray | memoryview, orig_len: int | None) -> None:
        sec, frac = divmod(units, self._scale)
        if sec > 0xFFFFFFFF:
            raise ValueError("pcap timestamps end in 2106 (32-bit seconds)")
        n = len(data)
        incl = min(n, self.snaplen)
        self._f.write(_RECORD.pack(sec, frac, incl, n if orig_len is None else orig_len))
        self._f.write(data if incl == n else bytes(data[:incl]))
        self.count += 1

    def flush(self) -> None:
        self._f.flush()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.flush()


def write_pcap(
    path: str,
    packets: Iterable[tuple[float, bytes]],
    linktype: int = LINKTYPE_RAW,
    nanosecond: bool = False,
    snaplen: int = DEFAULT_SNAPLEN,
) -> int:
    """Write ``(ts, bytes)`` records to a new pcap file at ``path``; returns the number of records."""
    with open(path, "wb") as f:
        w = PcapWriter(f, linktype=linktype, nanosecond=nanosecond, snaplen=snaplen)
        for ts, data in packets:
            w.write_packet(ts, data)
        return w.count


def ethernet_frame(
    ip_packet: bytes,
    src_mac: bytes = b"\x02\x00\x00\x00\x00\x01",
    dst_mac: bytes = b"\x02\x00\x00\x00\x00\x02",
) -> bytes:
    """Wrap a raw IP packet in an Ethernet II header (EtherType from the IP version; locally administered MACs by
    default). No FCS, as captures normally omit it."""
    if len(src_mac) != 6 or len(dst_mac) != 6:
        raise ValueError("MAC addresses are 6 bytes")
    etype = _ETHERTYPE_IPV6 if ip_packet and ip_packet[0] >> 4 == 6 else _ETHERTYPE_IPV4
    return dst_mac + src_mac + etype.to_bytes(2, "big") + ip_packet
