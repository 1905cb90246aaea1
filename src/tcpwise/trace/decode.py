"""Batch field extraction: a :class:`~tcpwise.trace.reader.RecordBatch` -> the TCP/IP header fields the tracker needs.

Theory of operation
-------------------
The fast path: per-packet Python objects cannot reach twice tshark's speed,
so the fixed-position header fields of a whole batch are read with numpy gathers over the capture's bytes
(``buf[offsets + k]``) and combined into integers column by column. It reads *fields*, it is not a codec: it never
builds segments. Anything off the common path — IPv6 extension headers — goes through the one codec,
:mod:`tcpwise.wire`, one packet at a time (:func:`_slow_decode`).

Every gather index is first checked against the record's captured length, so a snaplen-truncated or corrupt
packet can never read past its record: it is counted under a reason in :class:`DecodeStats` and dropped (a counted
warning, not an abort). Payload lengths come from the IP length fields, not the captured length, so snaplen
truncation does not change byte counts; an IP length larger than the packet was *on the wire* is a counted
warning and the packet is dropped, as Zeek's IP analyzer does (``truncated_IP_len``). IPv4 total length 0 (TSO on
the capturing host) falls back to the length on the wire, except with ``--checksums verify`` where Zeek drops it.

Zeek's checks, vectorised: the IPv4 header checksum (a bad one drops the packet), the TCP checksum of every fully
captured segment (a bad one sets :data:`BADSUM_FLAG`; the tracker then records only the history letter ``C``) —
with the offload exception of ``--checksums auto`` — and :data:`TRUNC_FLAG` for a payload the snaplen cut (Zeek
gives such payloads no content, so a later ACK of them is a content gap). The window-scale option of SYNs
(RFC 7323) is read with a vectorised walk of the option lists.

Flow keys: each endpoint becomes ``addr_id << 16 | port`` (``addr_id`` = the IPv4 address itself, or 2^32 + an
interned index for IPv6), the pair is ordered (low, high) so both directions share a key ``low << 64 | high``, and
``np.unique`` turns the batch's keys into small integers. ``dirbit`` says whether the packet travels high -> low.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from tcpwise.trace import linktypes as lt
from tcpwise.trace.native import cdecode
from tcpwise.trace.reader import RecordBatch

__all__ = ["AddrTable", "DecodeStats", "Decoded", "Packets", "decode_batch", "decode_arrays", "to_decoded"]

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

    def v6_since(self, k: int) -> list[str]:
        """The IPv6 addresses interned after the first ``k`` (a --jobs parent ships them to its workers)."""
        return self._v6_names[k:]

    def add_v6(self, names: list[str]) -> None:
        """Intern addresses a --jobs parent interned, in its order (so that the ids agree)."""
        for n in names:
            self.intern_v6(ipaddress.IPv6Address(n).packed)

    def name(self, addr_id: int) -> str:
        s = self._cache.get(addr_id)
        if s is None:
            if addr_id >= _V6_BASE:
                s = self._v6_names[addr_id - _V6_BASE]
            else:
                s = str(ipaddress.IPv4Address(addr_id))
            if len(self._cache) > 65536:  # a flood from many sources must not grow it without bound
                self._cache.clear()
            self._cache[addr_id] = s
        return s


@dataclass(slots=True)
class DecodeStats:
    packets: int = 0
    tcp: int = 0
    non_ip: int = 0
    non_tcp: int = 0
    fragments: int = 0
    bad_checksums: int = 0  # TCP packets ignored for a bad checksum (Zeek's 'C' history letter)
    offloaded: int = 0  # TCP checksums accepted as checksum offload (--checksums auto)
    bad: Counter[str] = field(default_factory=Counter)  # reason -> count

    def warnings(self) -> list[str]:
        out = [f"{n} packet(s) skipped: {reason}" for reason, n in sorted(self.bad.items())]
        if self.bad_checksums:
            out.append(
                f"{self.bad_checksums} TCP packet(s) with a bad checksum were ignored, as Zeek does (history "
                "letter C/c); --checksums ignore (-C) counts them"
            )
        return out


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
    keys: list[int]  # low endpoint << 64 | high endpoint
    index: list[int]  # 1-based packet number in the file
    # Time of the batch's last TCP packet *before* any partition filter (the tracker's clock for expiry), or
    # None for a batch without TCP.
    last_ts: float | None = None
    wscale: dict[int, int] = field(default_factory=dict)  # packet number -> window-scale option (SYNs)


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


CHECKSUM_MODES = ("auto", "verify", "ignore")


def decode_batch(
    buf: np.ndarray,
    rb: RecordBatch,
    addrs: AddrTable,
    stats: DecodeStats,
    path: str = "",
    part: tuple[int, int] | None = None,
    checksums: str = "auto",
) -> Decoded:
    """Extract the TCP/IP fields of every packet in ``rb``; ``buf`` is the array ``rb.data_off`` indexes.

    ``part=(index, jobs)`` keeps only the packets of connections whose endpoint pair falls in partition
    ``index`` of ``jobs`` (see :func:`partition_of`); statistics still count every packet. ``checksums`` is
    ``verify`` (Zeek's default: a bad IPv4 header checksum drops the packet, a bad TCP checksum marks it
    :data:`BADSUM`), ``auto`` (the same, except that a TCP checksum holding only the pseudo-header sum — what
    checksum offload leaves in a capture taken on the sending host — counts as good) or ``ignore`` (``zeek -C``).
    """
    return to_decoded(decode_arrays(buf, rb, addrs, stats, path, part, checksums))


def decode_arrays(
    buf: np.ndarray,
    rb: RecordBatch,
    addrs: AddrTable,
    stats: DecodeStats,
    path: str = "",
    part: tuple[int, int] | None = None,
    checksums: str = "auto",
) -> Packets:
    """:func:`decode_batch` before the conversion to lists: the batch's TCP packets as numpy columns."""
    n = len(rb)
    stats.packets += n
    l3, fam = _link_layer(buf, rb, stats)
    _timestamps_in_range(rb.ts, fam, stats)
    f = _Fields(n)
    _ipv4(buf, rb, l3, fam, f, stats, checksums)
    _ipv6(buf, rb, l3, fam, f, stats, addrs)
    return _tcp(buf, rb, l3, f, stats, addrs, part, checksums)


# 10000-01-01: a timestamp past it (a pcapng if_tsresol/if_tsoffset gone wrong, a corrupt record) is damage, and
# no date type downstream (Parquet's, Python's datetime) could hold it.
_TS_END = 253_402_300_800.0


def _timestamps_in_range(ts: np.ndarray, fam: np.ndarray, stats: DecodeStats) -> None:
    """Skip IP packets stamped before 1970 or after 9999 (NaN too): counted and warned, never tracked."""
    odd = ~((ts >= 0.0) & (ts < _TS_END)) & (fam != 0)
    if odd.any():
        stats.bad["timestamp before 1970 or after 9999"] += int(odd.sum())
        fam[odd] = 0


class _Fields:
    """Per-packet network-layer results, filled by _ipv4/_ipv6 and read by _tcp."""

    __slots__ = ("ok", "tcp_at", "iplen", "l4len", "src", "dst", "psum", "slow")

    def __init__(self, n: int) -> None:
        self.ok = np.zeros(n, dtype=bool)  # a TCP header follows at tcp_at
        self.tcp_at = np.zeros(n, dtype=np.int64)  # absolute offset of the TCP header in buf
        self.iplen = np.zeros(n, dtype=np.int64)  # IP total length (header + payload), Zeek's *_ip_bytes
        self.l4len = np.zeros(n, dtype=np.int64)  # TCP header + payload
        self.src = np.zeros(n, dtype=np.int64)
        self.dst = np.zeros(n, dtype=np.int64)
        self.psum = np.zeros(n, dtype=np.int64)  # sum of the 16-bit words of both addresses (pseudo-header)
        self.slow: list[int] = []  # packets for the codec (IPv6 extension headers)


def _link_layer(buf: np.ndarray, rb: RecordBatch, stats: DecodeStats) -> tuple[np.ndarray, np.ndarray]:
    """Where the network header starts in each packet, and its family (4, 6, or 0: not IP)."""
    n = len(rb)
    off, cl = rb.data_off, rb.caplen
    l3 = np.full(n, -1, dtype=np.int64)  # network header position relative to the packet start
    fam = np.zeros(n, dtype=np.int64)
    bad = np.zeros(n, dtype=bool)
    for linktype in np.unique(rb.linktype).tolist():
        m = np.nonzero(rb.linktype == linktype)[0]
        if linktype not in lt.LINKTYPE_NAMES:  # the reader refuses these; defensive
            stats.bad[f"link type {linktype} not supported"] += int(m.size)
            continue
        o, c = off[m], cl[m]
        pos, fams, ok = _link_one(buf, int(linktype), o, c)
        bad[m[~ok]] = True
        fams[~ok] = 0
        l3[m] = pos
        fam[m] = fams
    if bad.any():
        stats.bad["truncated link-layer header"] += int(bad.sum())
    stats.non_ip += int(((fam == 0) & ~bad & (l3 >= 0)).sum())
    return l3, fam


def _link_one(buf: np.ndarray, linktype: int, o: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, ...]:
    k = o.shape[0]
    if linktype == lt.EN10MB:
        pos = np.full(k, 14, dtype=np.int64)
        ok = c >= 14
        et = np.where(ok, _be16(buf, np.where(ok, o + 12, 0)), 0)
        for _ in range(2):  # up to two stacked tags (802.1ad QinQ)
            tagged = ok & np.isin(et, lt.VLAN_TPIDS)
            ok &= ~tagged | (c >= pos + 4)
            et = np.where(tagged & ok, _be16(buf, np.where(tagged & ok, o + pos + 2, 0)), et)
            pos = np.where(tagged, pos + 4, pos)
        return pos, _family(et), ok
    if linktype in (lt.LINUX_SLL, lt.LINUX_SLL2):
        hl, at = (16, 14) if linktype == lt.LINUX_SLL else (20, 0)
        ok = c >= hl
        et = np.where(ok, _be16(buf, np.where(ok, o + at, 0)), 0)
        return np.full(k, hl, dtype=np.int64), _family(et), ok
    if linktype in (lt.NULL, lt.LOOP):
        ok = c >= 4
        i = np.where(ok, o, 0)
        be = _be32(buf, i)
        le = buf[i].astype(np.int64) | (buf[i + 1].astype(np.int64) << 8)
        # NULL is host order of the capturing machine (either), LOOP is network order.
        af = be if linktype == lt.LOOP else np.where(be < 256, be, le)
        fams = np.where(np.isin(af, lt.NULL_AF_INET), 4, np.where(np.isin(af, lt.NULL_AF_INET6), 6, 0))
        return np.full(k, 4, dtype=np.int64), fams, ok
    # raw IP: the version nibble says which
    ok = c >= 1
    v = np.where(ok, buf[np.where(ok, o, 0)] >> 4, 0).astype(np.int64)
    fams = np.where(v == 4, 4, np.where(v == 6, 6, 0))
    if linktype == lt.IPV4:
        fams = np.where(ok, 4, 0)
    elif linktype == lt.IPV6:
        fams = np.where(ok, 6, 0)
    return np.zeros(k, dtype=np.int64), fams, ok


def _family(et: np.ndarray) -> np.ndarray:
    return np.asarray(np.where(et == lt.ETHERTYPE_IPV4, 4, np.where(et == lt.ETHERTYPE_IPV6, 6, 0)))


def _ipv4(
    buf: np.ndarray,
    rb: RecordBatch,
    l3: np.ndarray,
    fam: np.ndarray,
    f: _Fields,
    stats: DecodeStats,
    checksums: str,
) -> None:
    """IPv4 (RFC 791 §3.1) with Zeek's IP-layer checks (packet_analysis/protocol/ip/IP.cc)."""
    m4 = np.nonzero(fam == 4)[0]
    if not m4.size:
        return
    off, cl = rb.data_off, rb.caplen
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
    wire = rb.origlen[m4] - l3[m4]  # the IP packet's length on the wire
    zero = ok & (tot == 0)
    if zero.any():
        if checksums == "verify":
            # IP.cc: a total length of 0 (segmentation offload) is dropped when checksums are validated.
            stats.bad[
                "IPv4 total length 0 (segmentation offload: --checksums auto or ignore accepts it)"
            ] += int(zero.sum())
            ok &= ~zero
        tot = np.where(zero, wire, tot)  # TSO: total length left 0 by the sender
    ok_hdr = ok & (ihl >= 20) & (tot >= ihl)
    nb = ~short & ~ok_hdr & ~(zero if checksums == "verify" else False)
    if nb.any():
        stats.bad["bad IPv4 header (version, IHL or total length)"] += int(nb.sum())
    ok_hdr &= cl[m4] >= l3[m4] + ihl
    # IP.cc "truncated_IP_len": the header claims more bytes than the packet had on the wire.
    long_ = ok_hdr & (tot > wire)
    if long_.any():
        stats.bad["IPv4 total length larger than the packet on the wire"] += int(long_.sum())
        ok_hdr &= ~long_
    if checksums != "ignore" and ok_hdr.any():
        badsum = ok_hdr & ~_ipv4_header_ok(buf, a0, ihl)
        if badsum.any():
            stats.bad["bad IPv4 header checksum"] += int(badsum.sum())
            ok_hdr &= ~badsum
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
    f.ok[sel] = True
    f.tcp_at[sel] = (a + ihl)[has_tcp]
    f.iplen[sel] = tot[has_tcp]
    f.l4len[sel] = (tot - ihl)[has_tcp]
    sa, da = _be32(buf, a0 + 12)[has_tcp], _be32(buf, a0 + 16)[has_tcp]
    f.src[sel] = sa
    f.dst[sel] = da
    f.psum[sel] = (sa >> 16) + (sa & 0xFFFF) + (da >> 16) + (da & 0xFFFF)


def _ipv4_header_ok(buf: np.ndarray, a0: np.ndarray, ihl: np.ndarray) -> np.ndarray:
    """RFC 791 header checksum: the ones' complement sum of the header's 16-bit words is 0xFFFF."""
    if cdecode is not None:  # the same word sums as the loop below, one pass in C
        return np.asarray(_segment_sums(buf, a0, ihl) % 0xFFFF == 0)
    total = np.zeros(a0.shape[0], dtype=np.int64)
    for k in range(0, 60, 2):
        inside = k < ihl
        if not inside.any():
            break
        total += np.where(inside, _be16(buf, np.where(inside, a0 + k, 0)), 0)
    return np.asarray(total % 0xFFFF == 0)


def _ipv6(
    buf: np.ndarray, rb: RecordBatch, l3: np.ndarray, fam: np.ndarray, f: _Fields, stats: DecodeStats,
    addrs: AddrTable,
) -> None:  # fmt: skip
    """IPv6 (RFC 8200 §3); extension headers go through the codec one packet at a time."""
    m6 = np.nonzero(fam == 6)[0]
    if not m6.size:
        return
    off, cl = rb.data_off, rb.caplen
    a = off[m6] + l3[m6]
    ok = cl[m6] >= l3[m6] + 40
    a0 = np.where(ok, a, 0)
    ok &= (buf[a0] >> 4) == 6
    nv = (fam[m6] == 6) & ~ok
    if nv.any():
        stats.bad["bad or truncated IPv6 header"] += int(nv.sum())
    wire = rb.origlen[m6] - l3[m6]
    plen = _be16(buf, a0 + 4)
    plen = np.where(plen == 0, wire - 40, plen)  # jumbogram / TSO
    long_ = ok & (plen + 40 > wire)
    if long_.any():
        stats.bad["IPv6 payload length larger than the packet on the wire"] += int(long_.sum())
        ok &= ~long_
    nh = buf[a0 + 6]
    is_tcp = ok & (nh == 6)
    ext = ok & np.isin(nh, _V6_EXT)
    f.slow.extend(m6[ext].tolist())
    stats.non_tcp += int((ok & ~is_tcp & ~ext).sum())
    has_tcp = is_tcp & (cl[m6] >= l3[m6] + 60)
    tr = is_tcp & ~has_tcp
    if tr.any():
        stats.bad["TCP header cut off by the capture's snaplen"] += int(tr.sum())
    sel = m6[has_tcp]
    if not sel.size:
        return
    f.ok[sel] = True
    f.tcp_at[sel] = (a + 40)[has_tcp]
    f.iplen[sel] = (plen + 40)[has_tcp]
    f.l4len[sel] = plen[has_tcp]
    a1 = a0[has_tcp]
    cols = buf[(a1[:, None] + np.arange(8, 40)[None, :])]  # src (16) + dst (16)
    f.psum[sel] = np.ascontiguousarray(cols).view(">u2").astype(np.int64).sum(axis=1)
    both = np.ascontiguousarray(np.concatenate([cols[:, :16], cols[:, 16:]])).view(">u8")
    ua, ub, inv = _unique_pairs(both[:, 0].astype(np.uint64), both[:, 1].astype(np.uint64))
    ids = np.array(
        [
            addrs.intern_v6(int(x).to_bytes(8, "big") + int(y).to_bytes(8, "big"))
            for x, y in zip(ua, ub, strict=False)
        ],
        dtype=np.int64,
    )[inv]
    f.src[sel] = ids[: sel.size]
    f.dst[sel] = ids[sel.size :]


def _tcp(
    buf: np.ndarray,
    rb: RecordBatch,
    l3: np.ndarray,
    f: _Fields,
    stats: DecodeStats,
    addrs: AddrTable,
    part: tuple[int, int] | None,
    checksums: str,
) -> Packets:
    """TCP (RFC 9293 §3.1): header fields, checksum and snaplen flags, window-scale options, endpoint pairs."""
    off, cl = rb.data_off, rb.caplen
    seq_s: dict[int, tuple[int, ...]] = {}
    for k in f.slow:  # off the fast path: through the one codec
        o1, c1, l3i = int(off[k]), int(cl[k]), int(l3[k])
        r = _slow_decode(bytes(buf[o1 + l3i : o1 + c1]), int(rb.origlen[k]) - l3i, addrs, checksums)
        if isinstance(r, str):
            if r:
                stats.bad[r] += 1
            else:
                stats.non_tcp += 1
        else:
            seq_s[k] = r
    idx = np.nonzero(f.ok)[0]
    t = f.tcp_at[idx]
    doff = (buf[t + 12] >> 4).astype(np.int64) * 4
    plen_t = f.l4len[idx] - doff
    # Deliberately more lenient than Zeek (TCPAnalyzer::ExtractTCP_Header drops a packet whose options the
    # snaplen cut): the 20-byte base header is all the tracker needs.
    good = (doff >= 20) & (plen_t >= 0)
    if not good.all():
        stats.bad["bad TCP data offset"] += int((~good).sum())
        idx, t, plen_t, doff = idx[good], t[good], plen_t[good], doff[good]
    sport = _be16(buf, t)
    dport = _be16(buf, t + 2)
    sep = (f.src[idx] << 16) | sport
    dep = (f.dst[idx] << 16) | dport
    stats.tcp += int(idx.shape[0]) + len(seq_s)
    last_k = max(int(idx[-1]) if idx.size else -1, max(seq_s) if seq_s else -1)
    last_ts = float(rb.ts[last_k]) if last_k >= 0 else None  # the batch clock: before any partition filter
    if part is not None and idx.size:
        # A worker keeps its own connections before the costlier per-packet work (checksums, options).
        keep = np.nonzero(partition_of(np.minimum(sep, dep), np.maximum(sep, dep), part[1]) == part[0])[0]
        idx, t, plen_t, doff, sep, dep = idx[keep], t[keep], plen_t[keep], doff[keep], sep[keep], dep[keep]
    flg = buf[t + 13].astype(np.int64)
    full = cl[idx] - (t - off[idx]) >= f.l4len[idx]  # the whole segment is in the capture
    flg |= np.where(full, 0, TRUNC_FLAG)  # payload cut by the snaplen: Zeek delivers no content for it
    if checksums != "ignore" and idx.size:
        bad = _tcp_checksum_bad(buf, t, f.l4len[idx], f.psum[idx], full, checksums, stats)
        flg |= np.where(bad, BADSUM_FLAG, 0)
    syn = np.nonzero((flg & 2) != 0)[0]
    if syn.size:
        opt_end = np.minimum(t[syn] + doff[syn], off[idx[syn]] + cl[idx[syn]])  # options inside the capture
        wscale = _window_scales(buf, t[syn], opt_end, (idx[syn] + rb.first_index).tolist())
    else:
        wscale = {}
    seq = _be32(buf, t + 4)
    ack = _be32(buf, t + 8)
    win = _be16(buf, t + 14)
    ipl = f.iplen[idx]
    ts = rb.ts[idx]
    pno = idx + rb.first_index
    if seq_s:
        extra = np.array(sorted(seq_s), dtype=np.int64)
        rows = np.array([seq_s[i][:10] for i in extra.tolist()], dtype=np.int64)
        xsep = (rows[:, 0] << 16) | rows[:, 2]
        xdep = (rows[:, 1] << 16) | rows[:, 3]
        if part is not None:
            xk = partition_of(np.minimum(xsep, xdep), np.maximum(xsep, xdep), part[1]) == part[0]
            extra, rows, xsep, xdep = extra[xk], rows[xk], xsep[xk], xdep[xk]
        for i in extra.tolist():
            if seq_s[i][10] >= 0:
                wscale[i + rb.first_index] = seq_s[i][10]
        order = np.argsort(np.concatenate([idx, extra]), kind="stable")

        def cat(x: np.ndarray, col: np.ndarray) -> np.ndarray:
            return np.concatenate([x, col])[order]

        sep, dep = cat(sep, xsep), cat(dep, xdep)
        seq, ack, flg, win = (
            cat(seq, rows[:, 4]),
            cat(ack, rows[:, 5]),
            cat(flg, rows[:, 6]),
            cat(win, rows[:, 7]),
        )
        plen_t, ipl = cat(plen_t, rows[:, 8]), cat(ipl, rows[:, 9])
        ts = cat(ts, rb.ts[extra])
        pno = cat(pno, extra + rb.first_index)
    stats.bad_checksums += int(((flg & BADSUM_FLAG) != 0).sum())
    return Packets(
        lo=np.minimum(sep, dep),
        hi=np.maximum(sep, dep),
        dirbit=(sep > dep).astype(np.int64),
        seq=seq,
        ack=ack,
        flags=flg,
        win=win,
        plen=plen_t,
        iplen=ipl,
        ts=ts,
        index=pno,
        last_ts=last_ts,
        wscale=wscale,
    )


@dataclass(slots=True)
class Packets:
    """A batch's TCP packets as numpy columns (what :func:`decode_arrays` returns; picklable, cheap to ship)."""

    lo: np.ndarray
    hi: np.ndarray
    dirbit: np.ndarray
    seq: np.ndarray
    ack: np.ndarray
    flags: np.ndarray
    win: np.ndarray
    plen: np.ndarray
    iplen: np.ndarray
    ts: np.ndarray
    index: np.ndarray
    last_ts: float | None
    wscale: dict[int, int]

    def take(self, rows: np.ndarray) -> Packets:
        """These rows only (a --jobs worker's share); the batch clock and option map stay whole."""
        return Packets(
            self.lo[rows], self.hi[rows], self.dirbit[rows], self.seq[rows], self.ack[rows], self.flags[rows],
            self.win[rows], self.plen[rows], self.iplen[rows], self.ts[rows], self.index[rows], self.last_ts,
            self.wscale,
        )  # fmt: skip


def to_decoded(p: Packets) -> Decoded:
    """The tracker's form: Python lists, and the batch's flows numbered (``np.unique`` of the endpoint pairs)."""
    if p.lo.size:
        ulo, uhi, inv = _unique_pairs(p.lo, p.hi)
        keys = [(a << 64) | b for a, b in zip(ulo.tolist(), uhi.tolist(), strict=False)]
        fidx = inv.tolist()
    else:
        keys, fidx = [], []
    return Decoded(
        ts=p.ts.tolist(),
        fidx=fidx,
        dirbit=p.dirbit.tolist(),
        seq=p.seq.tolist(),
        ack=p.ack.tolist(),
        flags=p.flags.tolist(),
        win=p.win.tolist(),
        plen=p.plen.tolist(),
        iplen=p.iplen.tolist(),
        keys=keys,
        index=p.index.tolist(),
        last_ts=p.last_ts,
        wscale=p.wscale,
    )


# Bits the decoder adds above the 8 TCP flag bits (tcpwise.trace.tracker.BADSUM / TRUNC).
BADSUM_FLAG = 0x100
TRUNC_FLAG = 0x200


def _fold_eac(x: np.ndarray) -> np.ndarray:
    """End-around-carry fold of a positive ones' complement sum into 1..0xFFFF (RFC 1071)."""
    return np.asarray(np.where(x == 0, 0, (x - 1) % 0xFFFF + 1))


def _tcp_checksum_bad(
    buf: np.ndarray,
    t: np.ndarray,
    l4len: np.ndarray,
    psum: np.ndarray,
    full: np.ndarray,
    mode: str,
    stats: DecodeStats,
) -> np.ndarray:
    """Which TCP checksums are wrong (RFC 9293 §3.1: pseudo-header + segment sum to ones' complement zero).
    Only fully captured segments are judged, as Zeek does (``caplen >= len``)."""
    bad = np.zeros(t.shape[0], dtype=bool)
    sel = np.nonzero(full)[0]
    if not sel.size:
        return bad
    ts_, ln = t[sel], l4len[sel]
    pseudo = psum[sel] + 6 + ln
    wrong = (_segment_sums(buf, ts_, ln) + pseudo) % 0xFFFF != 0
    if mode == "auto" and wrong.any():
        # Checksum offload: a capture on the sending host holds the pseudo-header sum, not the final checksum
        # (Linux CHECKSUM_PARTIAL: __tcp_v4_send_check stores ~tcp_v4_check(len, saddr, daddr, 0)).
        offload = wrong & (_be16(buf, ts_ + 16) == _fold_eac(pseudo))
        if offload.any():
            stats.offloaded += int(offload.sum())
            wrong &= ~offload
    bad[sel] = wrong
    return bad


def _segment_sums(buf: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Sum of the big-endian 16-bit words of ``buf[start:start+length]`` for each row (odd tails zero-padded).

    ``np.add.reduceat`` over a 16-bit view of the region the segments live in, in slices of a few MB so that
    memory stays bounded; segments at odd offsets use the view that starts one byte later."""
    if cdecode is not None:  # the same sums, one pass in C (_cdecode.c)
        st, ln = np.ascontiguousarray(start, dtype=np.int64), np.ascontiguousarray(length, dtype=np.int64)
        return np.frombuffer(cdecode.segment_sums(buf, st, ln), dtype=np.int64)
    out = np.zeros(start.shape[0], dtype=np.int64)
    if not start.size:
        return out
    order = np.argsort(start, kind="stable")
    ss, ll = start[order], length[order]
    cid = (ss - ss[0]) >> 23  # 8 MB slices of the file
    cuts = [0, *(np.flatnonzero(np.diff(cid)) + 1).tolist(), int(ss.shape[0])]
    for a, b in zip(cuts[:-1], cuts[1:], strict=False):
        lo = int(ss[a])
        hi = int((ss[a:b] + ll[a:b]).max())
        region = np.zeros(hi - lo + 4, dtype=np.uint8)
        region[: hi - lo] = buf[lo:hi]
        rows = order[a:b]
        s, ln = ss[a:b] - lo, ll[a:b]
        for parity in (0, 1):
            pm = (s & 1) == parity
            if not pm.any():
                continue
            words = region[parity : parity + ((region.shape[0] - parity) // 2) * 2].view(">u2")
            w0 = (s[pm] - parity) // 2
            w1 = w0 + ln[pm] // 2
            bounds = np.empty(w0.shape[0] * 2, dtype=np.int64)
            bounds[0::2] = w0
            bounds[1::2] = w1
            sums = np.add.reduceat(words, bounds, dtype=np.uint64)[0::2].astype(np.int64)
            sums = np.where(w1 > w0, sums, 0)
            odd = (ln[pm] & 1) == 1
            tail = np.where(odd, region[np.where(odd, s[pm] + ln[pm] - 1, 0)].astype(np.int64) << 8, 0)
            out[rows[pm]] = sums + tail
    return out


def _window_scales(buf: np.ndarray, t: np.ndarray, end: np.ndarray, pnos: list[int]) -> dict[int, int]:
    """Window-scale option (RFC 7323 §2.2, kind 3) of SYN segments: packet number -> shift count.

    A vectorised walk of the option list: at each step every segment still inside its options advances by one
    (EOL ends, NOP is one byte) or by the option's length."""
    k = t.shape[0]
    pos = t + 20
    live = pos < end
    found = np.full(k, -1, dtype=np.int64)
    for _ in range(40):
        if not live.any():
            break
        p = np.where(live, pos, 0)
        kind = buf[p].astype(np.int64)
        live &= kind != 0  # EOL
        one = live & (kind == 1)
        has_len = live & ~one & (pos + 1 < end)
        olen = np.where(has_len, buf[np.where(has_len, p + 1, 0)], 0).astype(np.int64)
        ws = has_len & (kind == 3) & (olen == 3) & (pos + 3 <= end)
        found = np.where(ws & (found < 0), buf[np.where(ws, p + 2, 0)], found)
        live &= one | (has_len & (olen >= 2))
        pos = np.where(one, pos + 1, pos + olen)
        live &= pos < end
    return {pnos[i]: int(v) for i, v in enumerate(found.tolist()) if v >= 0}


def partition_of(lo: np.ndarray, hi: np.ndarray, jobs: int) -> np.ndarray:
    """Which of ``jobs`` workers tracks the connection of endpoint pair ``(lo, hi)``: a fixed multiplicative
    hash, so every batch (and every worker) agrees. Plain ``(lo + hi) % jobs`` would put every loopback
    connection in one partition: Linux hands out even ephemeral ports to connect() (ip_local_port_range)."""
    u64 = np.uint64
    h = (lo.astype(u64) * u64(0x9E3779B97F4A7C15)) ^ (hi.astype(u64) * u64(0xC2B2AE3D27D4EB4F))
    return ((h >> np.uint64(33)) % np.uint64(jobs)).astype(np.int64)


def _slow_decode(l3: bytes, l3_len: int, addrs: AddrTable, checksums: str = "auto") -> tuple[int, ...] | str:
    """One packet through the codec (:func:`tcpwise.wire.parse_packet`): its fields, or why not ('' = not TCP).

    Returns (src, dst, sport, dport, seq, ack, flags, window, payload length, IP length, window-scale or -1)."""
    from tcpwise.wire import WindowScaleOption, WireError, parse_packet

    if len(l3) >= 6 and l3[0] >> 4 == 6 and 40 + int.from_bytes(l3[4:6], "big") > l3_len:
        return "IPv6 payload length larger than the packet on the wire"
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
    flags = seg.flags
    if checksums != "ignore":
        try:
            parse_packet(l3, verify=True)
        except WireError:
            flags |= BADSUM_FLAG
    ws = -1
    for opt in seg.options:
        if isinstance(opt, WindowScaleOption):
            ws = opt.shift
    return (aid(hdr.src), aid(hdr.dst), seg.sport, seg.dport, seg.seq, seg.ack, flags, seg.window,
            len(seg.payload), iplen, ws)  # fmt: skip
