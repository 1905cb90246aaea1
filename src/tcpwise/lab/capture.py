"""Capture at the router R: an AF_PACKET socket sees every frame on R's veths, in and out.

Theory of operation
-------------------
One ``AF_PACKET``/``SOCK_RAW`` socket with protocol ``ETH_P_ALL`` is opened inside R's namespace and bound to no
interface (packet(7)), so it receives a copy of every Ethernet frame on ``ra`` and ``rb``:

* ``PACKET_HOST`` on ``ra``/``rb``: a frame a host *sent* (A and B are wired straight to R, so this is the
  moment the host put it on the wire) -> a ``send`` event at that host, and a record in the pcap;
* ``PACKET_OUTGOING`` on ``ra``/``rb``: the router delivering a frame after its delay line -> a ``recv`` event
  at the destination host.

A sent segment that never comes out the other side was dropped by a fault rule at R -> a ``drop`` event
(matched on the full TCP header, which forwarding does not change: only the IP TTL and checksum do).

The pcap holds each segment once, as sent (LINKTYPE_ETHERNET), written through the shared writer in
:mod:`tcpwise.wire.pcap`.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass
from typing import BinaryIO

from tcpwise.events import SegmentInfo
from tcpwise.vocab import flags_to_str

__all__ = ["Frame", "Capture", "parse_frame", "write_pcap", "segment_key", "ETH_P_ALL"]

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
PACKET_HOST = 0
PACKET_OUTGOING = 4
LINKTYPE_ETHERNET = 1

_ETH = struct.Struct("!6s6sH")
_TCP = struct.Struct("!HHIIBBHHH")


@dataclass(slots=True)
class Frame:
    t: float  # time.monotonic() when read
    wall: float  # time.time() when read (pcap timestamps)
    ifname: str
    outgoing: bool
    data: bytes  # the whole Ethernet frame


def _tcp_options(raw: bytes) -> dict[str, object]:
    """Decode the options the schema shows (RFC 9293 §3.1, RFC 7323, RFC 2018); stop at anything malformed."""
    opts: dict[str, object] = {}
    i = 0
    while i < len(raw):
        kind = raw[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(raw) or raw[i + 1] < 2 or i + raw[i + 1] > len(raw):
            break
        length = raw[i + 1]
        body = raw[i + 2 : i + length]
        if kind == 2 and length == 4:
            opts["mss"] = struct.unpack("!H", body)[0]
        elif kind == 3 and length == 3:
            opts["ws"] = body[0]
        elif kind == 4:
            opts["sackok"] = True
        elif kind == 8 and length == 10:
            opts["ts"] = list(struct.unpack("!II", body))
        elif kind == 5:
            opts["sack"] = [list(struct.unpack_from("!II", body, j)) for j in range(0, len(body) - 7, 8)]
        i += length
    return opts


def parse_frame(data: bytes) -> SegmentInfo | None:
    """Ethernet + IPv4/IPv6 + TCP -> SegmentInfo; None for anything else (ARP, ICMP, truncated frames)."""
    if len(data) < 14:
        return None
    etype = _ETH.unpack_from(data)[2]
    off = 14
    if etype == ETH_P_IP:
        if len(data) < off + 20 or data[off + 9] != socket.IPPROTO_TCP:
            return None
        ihl = (data[off] & 0x0F) * 4
        total = struct.unpack_from("!H", data, off + 2)[0]
        src = socket.inet_ntop(socket.AF_INET, data[off + 12 : off + 16])
        dst = socket.inet_ntop(socket.AF_INET, data[off + 16 : off + 20])
        tcp_off = off + ihl
        end = off + total
    elif etype == ETH_P_IPV6:
        if len(data) < off + 40 or data[off + 6] != socket.IPPROTO_TCP:
            return None  # extension headers are not used in the lab
        plen = struct.unpack_from("!H", data, off + 4)[0]
        src = socket.inet_ntop(socket.AF_INET6, data[off + 8 : off + 24])
        dst = socket.inet_ntop(socket.AF_INET6, data[off + 24 : off + 40])
        tcp_off = off + 40
        end = tcp_off + plen
    else:
        return None
    if len(data) < tcp_off + 20:
        return None
    sport, dport, seq, ack, doff, flags, win, _csum, _urg = _TCP.unpack_from(data, tcp_off)
    hlen = (doff >> 4) * 4
    end = min(end, len(data))
    opts = _tcp_options(data[tcp_off + 20 : tcp_off + hlen]) if hlen > 20 else {}
    return SegmentInfo(
        src=src,
        dst=dst,
        sport=sport,
        dport=dport,
        seq=seq,
        ack=ack,
        flags=flags_to_str(flags),
        len=max(0, end - tcp_off - hlen),
        win=win,
        opts=opts or None,
    )


def segment_key(seg: SegmentInfo) -> tuple[object, ...]:
    """What identifies a segment on both sides of R (forwarding changes only TTL and the IP checksum)."""
    return (seg.src, seg.dst, seg.sport, seg.dport, seg.seq, seg.ack, seg.flags, seg.len, seg.win)


class Capture:
    """The AF_PACKET capture socket; create it inside R's namespace (``netns.in_netns``)."""

    def __init__(self, ifnames: tuple[str, ...]) -> None:
        self.ifnames = set(ifnames)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.setblocking(False)
        self.frames: list[Frame] = []

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> int:
        """Drain every queued frame; returns how many were kept."""
        n = 0
        while True:
            try:
                data, addr = self.sock.recvfrom(65535)
            except BlockingIOError:
                return n
            except OSError:
                # ENXIO etc. while an interface is being re-created by a Reboot step: the frame is gone.
                continue
            ifname, _proto, pkttype = addr[0], addr[1], addr[2]
            if ifname not in self.ifnames:
                continue
            self.frames.append(Frame(time.monotonic(), time.time(), ifname, pkttype == PACKET_OUTGOING, data))
            n += 1

    def close(self) -> None:
        self.sock.close()


def write_pcap(frames: list[Frame], fileobj: BinaryIO) -> int:
    """Write the TCP frames the hosts sent (not the router's deliveries) as a pcap; returns the count."""
    from tcpwise.wire.pcap import PcapWriter  # the one pcap writer (wire area)

    writer = PcapWriter(fileobj, linktype=LINKTYPE_ETHERNET)
    n = 0
    for f in frames:
        # TCP only: IPv6 neighbour discovery / MLD chatter on the veths is not part of the scenario.
        if not f.outgoing and parse_frame(f.data) is not None:
            writer.write_packet(f.wall, f.data)
            n += 1
    return n
