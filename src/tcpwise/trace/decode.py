"""Batch field extraction: a :class:`~tcpwise.trace.reader.RecordBatch` -> the TCP/IP header fields the tracker needs.

Theory of operation
-------------------
This is the fast path DESIGN.md's perf notes call for: per-packet Python objects cannot reach twice tshark's speed,
so the fixed-position header fields of a whole batch are read with numpy gathers over the memory-mapped file
(``buf[offsets + k]``) and combined into integers column by column. It reads *fields*, it is not a codec: it never
builds segments, parses options or checks checksums. Anything off the common path — IPv6 extension headers, odd
headers — goes through the one codec, :mod:`tcpwise.wire`, one packet at a time (:func:`_slow_decode`).

Every gather index is first checked against the record's captured length, so a snaplen-truncated or corrupt
packet can never read past its record: it is counted under a reason in :class:`DecodeStats` and dropped (a counted
warning, not an abort). Payload lengths come from the IP length fields, not the captured length, so snaplen
truncation does not change byte counts (IPv4 total length 0 — TSO on the capturing host — falls back to the
original length on the wire).

Flow keys: each endpoint becomes ``addr_id << 16 | port`` (``addr_id`` = the IPv4 address itself, or 2^32 + an
interned index for IPv6), the pair is ordered (low, high) so both directions share a key, and ``np.unique`` turns
the batch's keys into small integers. ``dirbit`` says whether the packet travels high -> low.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from tcpwise.trace import linktypes as lt
from tcpwise.trace.reader import RecordBatch

__all__ = ["AddrTable", "DecodeStats", "Decoded", "decode_batch"]

_V6_BASE = 1 << 32
# IPv6 extension headers that may precede TCP (RFC 8200 §4, IANA "IPv6 Extension Header Types").
_V6_EXT = (0, 43, 44, 50, 51, 60, 135, 139, 140, 253, 254)


class AddrTable:
    """Address ids <-> text. IPv4 ids are the address as an integer; IPv6 addresses are interned."""

    def __init__(self) -> None:
        self._v6: dict[bytes, int] = {}
        self._v6_names: list[str] = []
        self._cache: dict[int, str] = {}

    def intern_v6(self, raw: bytes) -> int:
        i = self._v6.get(raw)
        if i is None:
            i = self._v6[raw] = _V6_BASE + len(self._v6_names)
            self._v6_names.append(str(ipaddress.IPv6Address(raw)))
        return i

    def name(self, addr_id: int) -> str:
        s = self._cache.get(addr_id)
        if s is None:
            if addr_id >= _V6_BASE:
                s = self._v6_names[addr_id - _V6_BASE]
            else:
                s = str(ipaddress.IPv4Address(addr_id))
            self._cache[addr_id] = s
        return s


@dataclass(slots=True)
class DecodeStats:
    packets: int = 0
    tcp: int = 0
    non_ip: int = 0
    non_tcp: int = 0
    fragments: int = 0
    bad: Counter[str] = field(default_factory=Counter)  # reason -> count

    def warnings(self) -> list[str]:
        return [f"{n} packet(s) skipped: {reason}" for reason, n in sorted(self.bad.items())]


@dataclass(slots=True)
class Decoded:
    """The TCP packets of a batch, as Python lists (the tracker loops over them) in capture order."""

    ts: list[float]
    fidx: list[int]  # batch-local flow index into ``keys``
    dirbit: list[int]  # 1 when the packet goes from the key's high endpoint to its low one
    seq: list[int]
    ack: list[int]
    flags: list[int]
    win: list[int]
    plen: list[int]  # TCP payload bytes (from IP lengths)
    iplen: list[int]  # IP total length (header + payload), Zeek's *_ip_bytes
    keys: list[tuple[int, int]]  # (low endpoint, high endpoint)
    index: list[int]  # 1-based packet number in the file
    # Time of the batch's last TCP packet *before* any partition filter (the tracker's clock for expiry), or
    # None for a batch without TCP.
    last_ts: float | None = None


def _be16(buf: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return np.asarray((buf[idx].astype(np.int64) << 8) | buf[idx + 1])


def _be32(buf: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return np.asarray(
        (buf[idx].astype(np.int64) << 24)
        | (buf[idx + 1].astype(np.int64) << 16)
        | (buf[idx + 2].astype(np.int64) << 8)
        | buf[idx + 3]
    )


def _unique_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique`` of the rows ``(a[i], b[i])`` with the inverse, via one lexsort (much faster than axis=0)."""
    order = np.lexsort((b, a))
    sa, sb = a[order], b[order]
    new = np.empty(a.shape[0], dtype=bool)
    new[:1] = True
    new[1:] = (sa[1:] != sa[:-1]) | (sb[1:] != sb[:-1])
    group = np.cumsum(new) - 1
    inv = np.empty(a.shape[0], dtype=np.int64)
    inv[order] = group
    return sa[new], sb[new], inv


def decode_batch(
    buf: np.ndarray,
    rb: RecordBatch,
    addrs: AddrTable,
    stats: DecodeStats,
    path: str = "",
    part: tuple[int, int] | None = None,
) -> Decoded:
    """Extract the TCP/IP fields of every packet in ``rb``; ``buf`` is the whole capture as a uint8 array.

    ``part=(index, jobs)`` keeps only the packets of connections whose endpoint pair falls in partition
    ``index`` of ``jobs`` (see :func:`partition_of`); statistics still count every packet.
    """
    n = len(rb)
    stats.packets += n
    off, cl = rb.data_off, rb.caplen
    l3 = np.full(n, -1, dtype=np.int64)  # network header position relative to the packet start
    fam = np.zeros(n, dtype=np.int64)  # 4, 6 or 0 (not IP)
    bad = np.zeros(n, dtype=bool)

    for linktype in np.unique(rb.linktype).tolist():
        lt.check_linktype(int(linktype), path)
        m = np.nonzero(rb.linktype == linktype)[0]
        o, c = off[m], cl[m]
        if linktype == lt.EN10MB:
            pos = np.full(m.shape[0], 14, dtype=np.int64)
            ok = c >= 14
            et = np.where(ok, _be16(buf, np.where(ok, o + 12, 0)), 0)
            for _ in range(2):  # up to two stacked tags (802.1ad QinQ)
                tagged = ok & np.isin(et, lt.VLAN_TPIDS)
                ok &= ~tagged | (c >= pos + 4)
                et = np.where(tagged & ok, _be16(buf, np.where(tagged & ok, o + pos + 2, 0)), et)
                pos = np.where(tagged, pos + 4, pos)
            bad[m[~ok]] = True
            fams = np.where(et == lt.ETHERTYPE_IPV4, 4, np.where(et == lt.ETHERTYPE_IPV6, 6, 0))
            fams[~ok] = 0
        elif linktype in (lt.LINUX_SLL, lt.LINUX_SLL2):
            hl, at = (16, 14) if linktype == lt.LINUX_SLL else (20, 0)
            ok = c >= hl
            et = np.where(ok, _be16(buf, np.where(ok, o + at, 0)), 0)
            pos = np.full(m.shape[0], hl, dtype=np.int64)
            bad[m[~ok]] = True
            fams = np.where(et == lt.ETHERTYPE_IPV4, 4, np.where(et == lt.ETHERTYPE_IPV6, 6, 0))
        elif linktype in (lt.NULL, lt.LOOP):
            ok = c >= 4
            i = np.where(ok, o, 0)
            be = _be32(buf, i)
            le = buf[i].astype(np.int64) | (buf[i + 1].astype(np.int64) << 8)
            # NULL is host order of the capturing machine (either), LOOP is network order.
            af = be if linktype == lt.LOOP else np.where(be < 256, be, le)
            pos = np.full(m.shape[0], 4, dtype=np.int64)
            bad[m[~ok]] = True
            fams = np.where(np.isin(af, lt.NULL_AF_INET), 4, np.where(np.isin(af, lt.NULL_AF_INET6), 6, 0))
            fams[~ok] = 0
        else:  # raw IP: the version nibble says which
            ok = c >= 1
            v = np.where(ok, buf[np.where(ok, o, 0)] >> 4, 0).astype(np.int64)
            pos = np.zeros(m.shape[0], dtype=np.int64)
            bad[m[~ok]] = True
            fams = np.where(v == 4, 4, np.where(v == 6, 6, 0))
            if linktype == lt.IPV4:
                fams = np.where(ok, 4, 0)
            elif linktype == lt.IPV6:
                fams = np.where(ok, 6, 0)
        l3[m] = pos
        fam[m] = fams
    if bad.any():
        stats.bad["truncated link-layer header"] += int(bad.sum())
    stats.non_ip += int(((fam == 0) & ~bad).sum())

    # -- IPv4 (RFC 791 §3.1) -------------------------------------------------------------------------------
    ts_ok = np.zeros(n, dtype=bool)
    tcp_at = np.zeros(n, dtype=np.int64)  # absolute file offset of the TCP header
    iplen = np.zeros(n, dtype=np.int64)
    l4len = np.zeros(n, dtype=np.int64)  # TCP header + payload
    src = np.zeros(n, dtype=np.int64)
    dst = np.zeros(n, dtype=np.int64)
    slow: list[int] = []

    m4 = np.nonzero(fam == 4)[0]
    if m4.size:
        a = off[m4] + l3[m4]
        ok = cl[m4] >= l3[m4] + 20
        a0 = np.where(ok, a, 0)
        b0 = buf[a0].astype(np.int64)
        short = ~ok
        if short.any():
            stats.bad["truncated IPv4 header"] += int(short.sum())
        ok &= (b0 >> 4) == 4
        ihl = (b0 & 15) * 4
        tot = _be16(buf, a0 + 2)
        tot = np.where(tot == 0, rb.origlen[m4] - l3[m4], tot)  # TSO: total length left 0 by the sender
        ok_hdr = ok & (ihl >= 20) & (tot >= ihl)
        nb = ~short & ~ok_hdr
        if nb.any():
            stats.bad["bad IPv4 header (version, IHL or total length)"] += int(nb.sum())
        frag = _be16(buf, a0 + 6)
        proto = buf[a0 + 9]
        is_tcp = ok_hdr & (proto == 6)
        stats.non_tcp += int((ok_hdr & (proto != 6)).sum())
        # Fragments (RFC 791: MF bit 0x2000 or a non-zero offset): not reassembled, counted and skipped.
        fr = is_tcp & ((frag & 0x3FFF) != 0)
        stats.fragments += int(fr.sum())
        is_tcp &= ~fr
        has_tcp = is_tcp & (cl[m4] >= l3[m4] + ihl + 20)
        tr = is_tcp & ~has_tcp
        if tr.any():
            stats.bad["TCP header cut off by the capture's snaplen"] += int(tr.sum())
        sel = m4[has_tcp]
        ts_ok[sel] = True
        tcp_at[sel] = (a + ihl)[has_tcp]
        iplen[sel] = tot[has_tcp]
        l4len[sel] = (tot - ihl)[has_tcp]
        src[sel] = _be32(buf, a0 + 12)[has_tcp]
        dst[sel] = _be32(buf, a0 + 16)[has_tcp]

    # -- IPv6 (RFC 8200 §3) ----------------------------------------------------------------------------------
    m6 = np.nonzero(fam == 6)[0]
    if m6.size:
        a = off[m6] + l3[m6]
        ok = cl[m6] >= l3[m6] + 40
        a0 = np.where(ok, a, 0)
        ok &= (buf[a0] >> 4) == 6
        nv = (fam[m6] == 6) & ~ok
        if nv.any():
            stats.bad["bad or truncated IPv6 header"] += int(nv.sum())
        plen = _be16(buf, a0 + 4)
        plen = np.where(plen == 0, rb.origlen[m6] - l3[m6] - 40, plen)  # jumbogram / TSO
        nh = buf[a0 + 6]
        is_tcp = ok & (nh == 6)
        ext = ok & np.isin(nh, _V6_EXT)
        slow.extend(m6[ext].tolist())
        stats.non_tcp += int((ok & ~is_tcp & ~ext).sum())
        has_tcp = is_tcp & (cl[m6] >= l3[m6] + 60)
        tr = is_tcp & ~has_tcp
        if tr.any():
            stats.bad["TCP header cut off by the capture's snaplen"] += int(tr.sum())
        sel = m6[has_tcp]
        if sel.size:
            ts_ok[sel] = True
            tcp_at[sel] = (a + 40)[has_tcp]
            iplen[sel] = (plen + 40)[has_tcp]
            l4len[sel] = plen[has_tcp]
            a1 = a0[has_tcp]
            cols = buf[(a1[:, None] + np.arange(8, 40)[None, :])]  # src (16) + dst (16)
            both = np.ascontiguousarray(np.concatenate([cols[:, :16], cols[:, 16:]])).view(">u8")
            ua, ub, inv = _unique_pairs(both[:, 0].astype(np.uint64), both[:, 1].astype(np.uint64))
            ids = np.array(
                [
                    addrs.intern_v6(int(x).to_bytes(8, "big") + int(y).to_bytes(8, "big"))
                    for x, y in zip(ua, ub, strict=False)
                ],
                dtype=np.int64,
            )[inv]
            src[sel] = ids[: sel.size]
            dst[sel] = ids[sel.size :]

    # -- off the fast path: through the one codec ---------------------------------------------------------
    seq_s: dict[int, tuple[int, int, int, int, int, int, int, int, int, int]] = {}
    for k in slow:
        o1, c1, l3i = int(off[k]), int(cl[k]), int(l3[k])
        r = _slow_decode(bytes(buf[o1 + l3i : o1 + c1]), int(rb.origlen[k]) - l3i, addrs)
        if isinstance(r, str):
            if r:
                stats.bad[r] += 1
            else:
                stats.non_tcp += 1
        else:
            seq_s[k] = r

    # -- TCP (RFC 9293 §3.1) ---------------------------------------------------------------------------------
    idx = np.nonzero(ts_ok)[0]
    t = tcp_at[idx]
    doff = (buf[t + 12] >> 4).astype(np.int64) * 4
    plen_t = l4len[idx] - doff
    good = (doff >= 20) & (plen_t >= 0)
    if not good.all():
        stats.bad["bad TCP data offset"] += int((~good).sum())
        idx, t, plen_t = idx[good], t[good], plen_t[good]
    sport = _be16(buf, t)
    dport = _be16(buf, t + 2)
    seq = _be32(buf, t + 4)
    ack = _be32(buf, t + 8)
    flg = buf[t + 13].astype(np.int64)
    win = _be16(buf, t + 14)
    sip, dip, ipl = src[idx], dst[idx], iplen[idx]
    ts = rb.ts[idx]
    pno = idx + rb.first_index
    if seq_s:
        extra = np.array(sorted(seq_s), dtype=np.int64)
        rows = np.array([seq_s[i] for i in extra.tolist()], dtype=np.int64)
        order = np.argsort(np.concatenate([idx, extra]), kind="stable")

        def cat(x: np.ndarray, col: np.ndarray) -> np.ndarray:
            return np.concatenate([x, col])[order]

        sip, dip = cat(sip, rows[:, 0]), cat(dip, rows[:, 1])
        sport, dport = cat(sport, rows[:, 2]), cat(dport, rows[:, 3])
        seq, ack, flg, win = (
            cat(seq, rows[:, 4]),
            cat(ack, rows[:, 5]),
            cat(flg, rows[:, 6]),
            cat(win, rows[:, 7]),
        )
        plen_t, ipl = cat(plen_t, rows[:, 8]), cat(ipl, rows[:, 9])
        ts = cat(ts, rb.ts[extra])
        pno = cat(pno, extra + rb.first_index)
    stats.tcp += int(ts.shape[0])

    sep = (sip << 16) | sport
    dep = (dip << 16) | dport
    lo = np.minimum(sep, dep)
    hi = np.maximum(sep, dep)
    dirbit = (sep > dep).astype(np.int64)
    last_ts = float(ts[-1]) if ts.shape[0] else None
    if part is not None and lo.size:
        keep = np.nonzero(partition_of(lo, hi, part[1]) == part[0])[0]
        lo, hi, dirbit, seq, ack = lo[keep], hi[keep], dirbit[keep], seq[keep], ack[keep]
        flg, win, plen_t, ipl, ts, pno = flg[keep], win[keep], plen_t[keep], ipl[keep], ts[keep], pno[keep]
    if lo.size:
        ulo, uhi, inv = _unique_pairs(lo, hi)
        keys = list(zip(ulo.tolist(), uhi.tolist(), strict=False))
        fidx = inv.tolist()
    else:
        keys, fidx = [], []
    return Decoded(
        ts=ts.tolist(),
        fidx=fidx,
        dirbit=dirbit.tolist(),
        seq=seq.tolist(),
        ack=ack.tolist(),
        flags=flg.tolist(),
        win=win.tolist(),
        plen=plen_t.tolist(),
        iplen=ipl.tolist(),
        keys=keys,
        index=pno.tolist(),
        last_ts=last_ts,
    )


def partition_of(lo: np.ndarray, hi: np.ndarray, jobs: int) -> np.ndarray:
    """Which of ``jobs`` workers tracks the connection of endpoint pair ``(lo, hi)``: a fixed multiplicative
    hash, so every batch (and every worker) agrees. Plain ``(lo + hi) % jobs`` would put every loopback
    connection in one partition: Linux hands out even ephemeral ports to connect() (ip_local_port_range)."""
    u64 = np.uint64
    h = (lo.astype(u64) * u64(0x9E3779B97F4A7C15)) ^ (hi.astype(u64) * u64(0xC2B2AE3D27D4EB4F))
    return ((h >> np.uint64(33)) % np.uint64(jobs)).astype(np.int64)


def _slow_decode(
    l3: bytes, l3_len: int, addrs: AddrTable
) -> tuple[int, int, int, int, int, int, int, int, int, int] | str:
    """One packet through the codec (:func:`tcpwise.wire.parse_packet`): its fields, or why not ('' = not TCP)."""
    from tcpwise.wire import WireError, parse_packet

    try:
        hdr, seg = parse_packet(l3)
    except WireError as exc:
        msg = str(exc)
        if "is not TCP" in msg:
            return ""
        if "fragment" in msg:
            return "IP fragment (no reassembly)"
        return "undecodable IPv6 packet (" + msg.split(" at offset")[0].split(" (")[0] + ")"

    def aid(a: str) -> int:
        return addrs.intern_v6(ipaddress.IPv6Address(a).packed) if ":" in a else int(ipaddress.IPv4Address(a))

    iplen = 40 + hdr.payload_length if hdr.version == 6 else hdr.total_length  # type: ignore[union-attr]
    return (aid(hdr.src), aid(hdr.dst), seg.sport, seg.dport, seg.seq, seg.ack, seg.flags, seg.window,
            len(seg.payload), iplen)  # fmt: skip
