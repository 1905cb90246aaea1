"""Hand-built captures for the trace tests: packets from :func:`tcpwise.wire.build_packet`, files from
:class:`tcpwise.wire.PcapWriter`, plus a minimal pcapng writer and link-layer wrappers (test-only code)."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable

from tcpwise.vocab import str_to_flags
from tcpwise.wire import PcapWriter, TcpOption, TcpSegment, build_packet, ethernet_frame

A, B = "198.18.0.1", "198.18.1.1"
A6, B6 = "fd00::1", "fd00:1::1"
CPORT, SPORT = 40000, 80


class Conv:
    """A two-party conversation builder. ``c(...)`` = client -> server, ``s(...)`` = server -> client.

    Sequence numbers advance automatically (payload, SYN, FIN) unless ``seq=`` is given."""

    def __init__(self, a: str = A, b: str = B, cport: int = CPORT, sport: int = SPORT, isn_c: int = 1000,
                 isn_s: int = 5000, t0: float = 1_700_000_000.0, dt: float = 0.001) -> None:  # fmt: skip
        self.a, self.b, self.cport, self.sport = a, b, cport, sport
        self.nxt = [isn_c, isn_s]
        self.t = t0
        self.dt = dt
        self.pkts: list[tuple[float, bytes]] = []

    def _pkt(self, d: int, flags: str, data: bytes = b"", seq: int | None = None, ack: int | None = None,
             win: int = 65535, adv: bool = True, gap: float | None = None, opts: tuple[TcpOption, ...] = (),
             csum: str = "good", keep: bool = True) -> None:  # fmt: skip
        fl = str_to_flags(flags)
        s = self.nxt[d] if seq is None else seq
        a = self.nxt[1 - d] if ack is None else ack
        seg = TcpSegment(
            sport=self.cport if d == 0 else self.sport,
            dport=self.sport if d == 0 else self.cport,
            seq=s & 0xFFFFFFFF,
            ack=(a if "A" in flags else 0) & 0xFFFFFFFF,
            flags=fl,
            window=win,
            options=opts,
            payload=data,
        )
        src, dst = (self.a, self.b) if d == 0 else (self.b, self.a)
        self.t += self.dt if gap is None else gap
        pkt = build_packet(src, dst, seg)
        if csum != "good":
            pkt = with_tcp_checksum(pkt, csum)
        if keep:  # keep=False: the packet was sent but the capture missed it
            self.pkts.append((self.t, pkt))
        if adv and seq is None:
            self.nxt[d] = (s + len(data) + ("S" in flags) + ("F" in flags)) & 0xFFFFFFFF

    def c(self, flags: str, data: bytes = b"", **kw: object) -> Conv:
        self._pkt(0, flags, data, **kw)  # type: ignore[arg-type]
        return self

    def s(self, flags: str, data: bytes = b"", **kw: object) -> Conv:
        self._pkt(1, flags, data, **kw)  # type: ignore[arg-type]
        return self

    def handshake(self) -> Conv:
        return self.c("S").s("SA").c("A")

    def write(self, path: str, linktype: int = 101, wrap: object = None, nanosecond: bool = False) -> str:
        write_pcap(path, self.pkts, linktype, wrap, nanosecond)
        return path


def with_tcp_checksum(pkt: bytes, kind: str) -> bytes:
    """The packet with a wrong TCP checksum: ``bad`` (corrupt) or ``offload`` (only the pseudo-header sum, as a
    capture on a sending host with checksum offload holds it)."""
    b = bytearray(pkt)
    v6 = b[0] >> 4 == 6
    at = 40 if v6 else (b[0] & 15) * 4
    tcp_len = len(b) - at
    if kind == "bad":
        b[at + 16] ^= 0x5A
        return bytes(b)
    addrs = b[8:40] if v6 else b[12:20]
    total = sum(struct.unpack(f"!{len(addrs) // 2}H", addrs)) + 6 + tcp_len
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    struct.pack_into("!H", b, at + 16, total)
    return bytes(b)


def write_pcap(path: str, pkts: Iterable[tuple[float, bytes]], linktype: int = 101, wrap: object = None,
               nanosecond: bool = False) -> None:  # fmt: skip
    with open(path, "wb") as f:
        w = PcapWriter(f, linktype=linktype, nanosecond=nanosecond)
        for t, p in pkts:
            w.write_packet(t, wrap(p) if callable(wrap) else p)


# -- link layers (tcpdump.org linktypes) ----------------------------------------------------------------------
def eth(p: bytes) -> bytes:
    return ethernet_frame(p)


def eth_vlan(p: bytes, tags: int = 1) -> bytes:
    et = 0x86DD if p[0] >> 4 == 6 else 0x0800
    hdr = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01"
    for i in range(tags):
        hdr += struct.pack("!HH", 0x88A8 if i == 0 and tags > 1 else 0x8100, 100 + i)
    return hdr + struct.pack("!H", et) + p


def sll(p: bytes) -> bytes:
    et = 0x86DD if p[0] >> 4 == 6 else 0x0800
    return struct.pack("!HHH8sH", 0, 772, 6, b"\x00" * 8, et) + p


def sll2(p: bytes) -> bytes:
    et = 0x86DD if p[0] >> 4 == 6 else 0x0800
    return struct.pack("!HHIHBB8s", et, 0, 1, 772, 0, 6, b"\x00" * 8) + p


def null_le(p: bytes) -> bytes:
    return struct.pack("<I", 30 if p[0] >> 4 == 6 else 2) + p


def loop_be(p: bytes) -> bytes:
    return struct.pack(">I", 24 if p[0] >> 4 == 6 else 2) + p


# -- a minimal pcapng writer (draft-ietf-opsawg-pcapng) -----------------------------------------------------------
def _block(btype: int, body: bytes, e: str) -> bytes:
    body += b"\x00" * (-len(body) & 3)
    n = len(body) + 12
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def pcapng(
    path: str,
    ifaces: list[tuple[int, int | None]],
    pkts: list[tuple[int, float, bytes]],
    big_endian: bool = False,
    simple: bool = False,
) -> None:
    """``ifaces``: (linktype, if_tsresol byte or None); ``pkts``: (iface, ts, data). ``simple`` writes the
    packets of interface 0 as Simple Packet Blocks."""
    e = ">" if big_endian else "<"
    out = _block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1), e)
    out += _block(0xABCD, b"unknown block", e)  # must be skipped
    res = []
    for lt, tsresol in ifaces:
        opts = b""
        if tsresol is not None:
            opts += struct.pack(e + "HH", 9, 1) + bytes([tsresol]) + b"\x00\x00\x00"
        opts += struct.pack(e + "HH", 0, 0)
        out += _block(1, struct.pack(e + "HHI", lt, 0, 0) + opts, e)
        if tsresol is None:
            res.append(1e-6)
        elif tsresol & 0x80:
            res.append(2.0 ** -(tsresol & 0x7F))
        else:
            res.append(10.0**-tsresol)
    for iface, ts, data in pkts:
        if simple and iface == 0:
            out += _block(3, struct.pack(e + "I", len(data)) + data, e)
            continue
        units = round(ts / res[iface])
        out += _block(
            6,
            struct.pack(e + "IIIII", iface, units >> 32, units & 0xFFFFFFFF, len(data), len(data)) + data,
            e,
        )
    with open(path, "wb") as f:
        f.write(out)


def syn_flood(path: str | os.PathLike[str], n: int, flags: int = 0x02) -> None:
    """n unanswered SYNs within one second (all compact at once: the worst case for memory); ``flags`` sends
    one packet of another kind per 4-tuple instead (0x10 an ACK scan, 0x04 resets, 0x12 SYN-ACK backscatter)."""
    from tcpwise.wire import internet_checksum

    rec = struct.Struct("<IIII")
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))  # Ethernet
        out = bytearray()
        for i in range(n):
            src, dst = bytes([198, 19, (i >> 8) & 0xFF, i & 0xFF]), bytes([198, 18, 1, 1])
            ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0x4000, 64, 6, 0, src, dst))
            struct.pack_into("!H", ip, 10, internet_checksum(ip))
            tcp = bytearray(
                struct.pack("!HHIIBBHHH", 1024 + (i >> 16), 80, i * 7919, 0, 0x50, flags, 64240, 0, 0)
            )
            struct.pack_into("!H", tcp, 16, internet_checksum(src + dst + b"\x00\x06\x00\x14" + tcp))
            out += (
                rec.pack(1_700_000_000, i % 1_000_000, 54, 54)
                + b"\x02" * 6
                + b"\x04" * 6
                + b"\x08\x00"
                + ip
                + tcp
            )
        f.write(out)
