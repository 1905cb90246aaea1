"""Connection tracker: decoded TCP packets -> one :class:`Conn` per Zeek conn.log row, with its story.

Theory of operation
-------------------
Connections are keyed on the unordered pair of endpoints (an int, see :mod:`tcpwise.trace.decode`). Which packets
make up one *row* follows Zeek's rules, so that a conn.log written by tcpwise lines up with Zeek's (docs/trace.md
cites each rule and the file it comes from):

* **Orientation** (``TCPAnalyzer::WantConnection``): the originator is the sender of the first packet, flipped when
  that packet is not a bare SYN and its source port is a likely server port.
* **Endpoint states** (``TCPSessionAdapter::UpdateStateMachine``): each side runs Zeek's INACTIVE, SYN_SENT,
  SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET machine; :mod:`tcpwise.trace.zeek` turns the two into
  ``conn_state``. A side *closes* (``did_close``) on its FIN or RST (``ConnectionClosed``).
* **Several rows per 4-tuple**: a connection ends when a timer removes it — the attempt timer (an unanswered SYN,
  5 s), the close/reset delay (5 s after the close completed), the inactivity timeout (5 min; 1 min before the
  handshake completed) — or when a SYN arrives that ``IsReuse`` calls a new connection (any SYN once a side has
  closed, or a SYN whose sequence number is not the originator's ISN). Later packets of the 4-tuple start a new
  row. Timers are evaluated lazily: before a packet of connection ``c`` is processed, ``c``'s timers due at or
  before it fire first (their conditions depend only on ``c``'s own packets, so this equals Zeek's timer queue);
  at the end of each batch, due timers of idle connections are swept so memory stays bounded.
* **Counting** (``TCP_Endpoint::Size``, ``SetLastTime``): bytes are ``max(LastSeq, AckSeq) - ISN`` minus the SYN and
  FIN octets; ``duration`` ends at the last packet seen before both sides had closed (the final ACK is not in it).
* **History letters** (``update_history``, ``TCP_Endpoint::DidRxmit/ZeroWindow/Gap/ChecksumError``): S H A D F R
  I Q as Zeek records them; ``t`` for a payload-carrying segment that does not advance the sender's highest
  sequence number; ``w`` for a zero window; ``g`` for a content gap — data the peer acknowledged that the capture
  never delivered (a hole, or a payload cut by the snaplen), counted only while both sides are established or
  cleanly closing, as are ``missed_bytes``; ``c`` for a bad checksum (the packet is then ignored). ``t w g c`` are
  logarithmic: at the 1st, 10th, 100th ... occurrence.

On top of that, tcpwise infers each host's RFC 9293 state as far as packets prove it (``transitions``: a SYN moves
its sender to SYN_SENT, a SYN+ACK its sender to SYN_RCVD and the SYN's sender to ESTABLISHED once it acknowledges,
FINs and their ACKs walk the close, a RST closes both; TIME_WAIT's end never shows on the wire) and keeps its own
counters for the story: retransmissions (re-sent bytes only, never out-of-order fills or keepalives), out-of-order
segments, keepalive and window probes (a 0/1-byte segment at ``SND.NXT - 1``), zero windows and who reset.

Memory is bounded by design: a connection whose only packets so far are the originator's bare SYNs is held as a
few packed bytes (a SYN flood or a scan costs ~200 B per attempt) and becomes a full :class:`Conn` only when
anything else arrives; it is judged and written when its attempt timer fires.

Hot path: a packet of a known connection with only ACK among SYN/FIN/RST/ACK, from a side in ESTABLISHED or PARTIAL
whose stream has no holes, touches only counters, ``LastSeq`` and the window inline in :meth:`Tracker.feed`.
Everything else goes through :meth:`Tracker._slow`, the literal rule-by-rule path; ``Tracker(reference=True)``
sends every packet there and keeps no compact state, which ``tests/trace/test_trace_fast.py`` uses as the
reference the fast path must equal byte for byte.

Native path: with the ``_ctrack`` extension built (and ``TCPWISE_NATIVE`` not 0), :meth:`Tracker.feed` runs the batch
loop in C. It holds a connection in a C struct from the bare SYN that :meth:`Tracker._slow` would give to ``_new`` +
``_open`` for as long as each of its packets is one that ``_synack``, ``_hs_ack``, the inline hot path, ``_fin1`` or
``_ack_fin`` takes (same preconditions, same effects, the same timer entries on ``_tq``), and judges its timers as
:meth:`Tracker._expired` does. At any other packet it materializes the connection (the Conn these rules would
hold) into ``conns`` and hands that packet and the rest to the Python path (``_native_one``); rows are written by
:meth:`Tracker._finish` only. ``tests/trace/test_trace_native_track.py`` holds it equal to the reference.
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from tcpwise.trace.decode import AddrTable, Decoded
from tcpwise.trace.native import load

# The native fast path (_ctrack.c): connections in their common life held in C structs, handed over to the
# rules below (materialized as Conn objects) at the first packet none of the straight-line handlers takes.
_ctrack = load("_ctrack")
if TYPE_CHECKING:
    from tcpwise.trace._ctrack import Fast

__all__ = [
    "Side",
    "Conn",
    "Tracker",
    "ZeekTimers",
    "INACTIVE",
    "SYN_SENT",
    "SYN_ACK_SENT",
    "PARTIAL",
    "ESTABLISHED",
    "CLOSED",
    "RESET",
    "ZEEK_STATE_NAMES",
    "BADSUM",
    "TRUNC",
    "likely_server_port",
]

M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1
HALF = 1 << 31
BIG = 1 << 20  # TCPSessionAdapter's TOO_LARGE_SEQ_DELTA: SYN/RST sequence jumps beyond it are not trusted
INF = float("inf")
RECENT_ROWS = 16384  # finished rows remembered for the next row of the same 4-tuple
COMPACT_AFTER = 20000  # open connections beyond which new ones are held compact (a flood, a scan)
FIN, SYN, RST, PSH, ACK, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x40, 0x80
CTL = FIN | SYN | RST
# Set by the decoder on top of the TCP flags: the TCP checksum is wrong, or the payload was cut by the snaplen.
BADSUM, TRUNC = 0x100, 0x200
FASTMASK = FIN | SYN | RST | ACK | BADSUM | TRUNC  # hot-path packets have (flags & FASTMASK) == ACK

# Zeek's TCP endpoint states (analyzer/protocol/tcp/TCP_Endpoint.h), used only to derive conn_state.
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)
ZEEK_STATE_NAMES = ("INACTIVE", "SYN_SENT", "SYN_ACK_SENT", "PARTIAL", "ESTABLISHED", "CLOSED", "RESET")

# History bits for the letters recorded once per direction (S and H share one: Zeek's HIST_SYN_PKT).
_LETTERS = "SADFRIQ^"
_HBIT = {(ch, d): 1 << (i * 2 + d) for i, ch in enumerate(_LETTERS) for d in (0, 1)}
_BIT_D = (_HBIT["D", 0], _HBIT["D", 1])
_BIT_S0, _BIT_S1 = _HBIT["S", 0], _HBIT["S", 1]
_BIT_A = (_HBIT["A", 0], _HBIT["A", 1])
_CH_D = ("D", "d")
_CH_A = ("A", "a")

# Zeek's likely_server_ports comes from its loaded analyzers; we approximate it with the well-known range plus
# common service ports so that mid-stream connections get the same orientation in the usual cases.
_SERVER_PORTS = frozenset(range(1, 1024)) | {
    1080, 1433, 1521, 2049, 2379, 3128, 3306, 3389, 4222, 5000, 5432, 5672, 5900, 6379, 6443, 8000, 8008, 8080,
    8081, 8443, 8888, 9000, 9042, 9090, 9092, 9200, 9300, 11211, 27017,
}  # fmt: skip


def likely_server_port(port: int) -> bool:
    return port in _SERVER_PORTS


@dataclass(frozen=True, slots=True)
class ZeekTimers:
    """Zeek's TCP timeouts in seconds (scripts/base/init-bare.zeek defaults). 0 disables a timer."""

    attempt: float = 5.0  # tcp_attempt_delay: an unanswered SYN's row is written this long after it
    close: float = 5.0  # tcp_close_delay: after a completed close (both FINs, or a RST)
    reset: float = 5.0  # tcp_reset_delay: after a RST that followed the sender's own FIN
    inactivity: float = 300.0  # tcp_inactivity_timeout, once the handshake is done
    handshake_inactivity: float = (
        60.0  # udp_inactivity_timeout: TCPAnalyzer::MakeSessionAdapter's initial one
    )
    syn_timeout: float = 5.0  # tcp_SYN_timeout: first ExpireTimer check
    session_timer: float = 6.0  # tcp_session_timer: ExpireTimer period
    linger: float = 5.0  # tcp_connection_linger: idle time ExpireTimer requires

    def __post_init__(self) -> None:
        for name in self.__slots__:
            v = getattr(self, name)
            if not (isinstance(v, int | float) and 0 <= v < float("inf")):
                raise ValueError(f"{name} must be a finite number of seconds >= 0, not {v!r}")


class Side:
    """One endpoint of a connection, named after its sender: Zeek's bookkeeping, then tcpwise's."""

    __slots__ = (
        # Zeek: counters, endpoint state, sequence bookkeeping (TCP_Endpoint), content delivery (TCP_Reassembler)
        "pkts", "ipbytes", "z", "zprev", "did_close", "start", "nxt", "ackseq", "top", "acc", "cend", "blocks",
        "fin_cnt", "fin_seq", "hls", "hlf", "hlr", "zrx", "zrx_th", "gap", "gap_th", "chk", "chk_th", "zw",
        "zw_th", "missed", "fast",
        # tcpwise: story counters and RFC 9293 inference
        "isn", "holes", "rxmt", "ooo", "keepalive", "winprobe", "fin_end", "fin_t", "fin_pending", "syn_pending",
        "state", "win0", "rst_t", "rst_state", "est_at", "t_last", "ctl_rxmt", "last_ack",
        # windows (RFC 7323 scaling)
        "win", "wmax", "wsyn", "woffer", "wshift", "prev_t",
    )  # fmt: skip

    def __init__(self) -> None:
        self.pkts = 0
        self.ipbytes = 0
        self.z = INACTIVE
        self.zprev = INACTIVE
        self.did_close = False
        self.start = 0  # StartSeq: the ISN (or first seq - 1 mid-stream), absolute
        self.nxt = 0  # LastSeq: one past the highest sequence number seen (update_last_seq rules)
        self.ackseq = 0  # AckSeq: highest acknowledgment the peer sent for our data
        self.top = 0  # max(LastSeq, AckSeq), and acc = top - start counted in 64 bits (Size)
        self.acc = 0
        self.cend = 0  # content delivered (or declared a gap) up to here; blocks = seen ranges above it
        self.blocks: list[list[int]] = []
        self.fin_cnt = 0
        self.fin_seq = 0  # absolute sequence number one past our FIN
        self.hls: int | None = None  # relative seq of the last SYN / FIN end / RST (history repeat rules)
        self.hlf: int | None = None
        self.hlr: int | None = None
        self.zrx = 0  # Zeek retransmissions ('T'), gaps ('G'), checksum errors ('C'), zero windows ('W')
        self.zrx_th = 1
        self.gap = 0
        self.gap_th = 1
        self.chk = 0
        self.chk_th = 1
        self.zw = 0
        self.zw_th = 1
        self.missed = 0  # bytes in reported content gaps (missed_bytes)
        self.fast = False
        self.isn: int | None = None
        self.holes: list[list[int]] = []  # [start, end) never seen below nxt (tcpwise: out-of-order fills)
        self.rxmt = 0
        self.ooo = 0
        self.keepalive = 0
        self.winprobe = 0
        self.fin_end: int | None = None  # sequence number after our first FIN
        self.fin_t: float | None = None
        self.fin_pending = False  # our FIN is not yet acknowledged
        self.syn_pending = False  # our SYN is not yet acknowledged
        self.state: str | None = None  # inferred RFC 9293 state of this host (None: not known)
        self.win0 = False  # our last advertised window was zero
        self.rst_t: float | None = None
        self.rst_state: str | None = None
        # SYN_SENT host whose SYN was answered by a SYN+ACK: (time, index in transitions, packet) of that SYN+ACK.
        # It becomes ESTABLISHED there only once its own next segment proves it accepted it (an ACK, not a RST).
        self.est_at: tuple[float, int, int] | None = None
        self.t_last: float | None = None  # time of our last segment
        self.ctl_rxmt = 0  # SYNs and FINs sent again with the same sequence number (RTO / lost ACK)
        self.last_ack: int | None = None  # acknowledgment number of our last segment
        self.win: int | None = None  # raw window of our last non-SYN segment
        self.wmax = 0  # largest raw window of a non-SYN segment
        self.wsyn: int | None = None  # window of our SYN (never scaled)
        self.woffer = -2  # window-scale option in our SYN: -2 no SYN seen, -1 none, else the shift
        self.wshift: int | None = None  # scale in effect for our windows (None: handshake not seen)
        self.prev_t: float | None = None  # our last segment in the earlier row this one continues

    @property
    def size(self) -> int:
        """Zeek's ``TCP_Endpoint::Size``: payload bytes by sequence numbers, SYN and FIN octets excluded."""
        n = self.acc
        if n:
            n -= 1
        if self.fin_cnt and n:
            n -= 1
        return n

    @property
    def bytes(self) -> int:
        return self.size

    @property
    def window_scaled(self) -> int | None:
        w = self.win if self.win is not None else self.wsyn
        if w is None:
            return None
        return w << self.wshift if self.win is not None and self.wshift else w

    @property
    def window_max_scaled(self) -> int:
        m = self.wmax << self.wshift if self.wshift else self.wmax
        return max(m, self.wsyn or 0)


class Conn:
    """A connection (one conn.log row) and everything the tracker learnt about it."""

    __slots__ = (
        "n", "key", "odir", "o", "r", "sides", "ts", "last", "hist", "hseen", "watch", "flipped", "transitions",
        "trans_pkt", "partial", "syn_t", "syn_last_t", "synack_t", "ack_t", "orig_ep", "resp_ep", "rst_by", "first_fin",
        "first_index", "last_index", "rst_silence", "rst_reply", "peer_bytes_at_fin", "attempt_due",
        "delete_due", "reset_due", "idle", "due", "gone", "end", "prev_n", "prev_end", "prev_first",
    )  # fmt: skip

    def __init__(self, n: int, key: int, odir: int, ts: float) -> None:
        self.n = n
        self.key = key
        self.odir = odir  # dirbit of the originator's packets
        self.o = Side()
        self.r = Side()
        self.sides = (self.o, self.r)
        self.ts = ts
        self.last = ts  # Zeek's LastTime: not advanced once both sides have closed
        self.hist: list[str] = []
        self.hseen = 0
        self.watch = False  # a SYN or FIN awaits acknowledgement: keep this connection on the slow path
        self.flipped = False
        self.transitions: list[tuple[float, int, str, str]] = []  # (t, side 0=orig 1=resp, from, to)
        self.trans_pkt: list[int] = []  # number of the packet in the file that caused each transition
        self.partial = False
        self.syn_t: float | None = None  # the originator's first SYN
        self.syn_last_t: float | None = None  # its last SYN before the SYN+ACK: the one that was answered
        self.synack_t: float | None = None
        self.ack_t: float | None = None
        lo, hi = key >> 64, key & M64
        self.orig_ep = hi if odir else lo
        self.resp_ep = lo if odir else hi
        self.rst_by: int | None = None
        self.first_fin: int | None = None
        self.first_index = 0
        self.last_index = 0
        self.rst_silence: float | None = None  # how long the RST's sender had been silent before it
        self.rst_reply = False
        self.peer_bytes_at_fin = 0  # bytes the other side had sent when the first FIN appeared (half-close)
        self.attempt_due = INF  # Zeek's AttemptTimer, ConnDeleteTimer, ResetTimer (one-shot)
        self.delete_due = INF
        self.reset_due = INF
        self.idle = 0.0  # inactivity timeout in force (0: none)
        self.due = INF  # earliest moment a timer may remove this connection (lazy check on each packet)
        self.gone = False
        self.end = "end of capture"  # what ended the row: a Zeek timer, a reusing SYN, or the capture's end
        self.prev_n: int | None = None  # the earlier row of this 4-tuple that this one continues
        self.prev_end: str | None = None
        self.prev_first = 0  # its first packet (the --jobs merge renumbers prev_n from it)

    @property
    def history(self) -> str:
        return "".join(self.hist)

    def add_hist(self, letter: str, d: int) -> None:
        """Add ``letter`` for direction ``d`` unless that (letter, direction) was already recorded."""
        bit = _HBIT[letter, d]
        if not self.hseen & bit:
            self.hseen |= bit
            self.hist.append(letter if d == 0 else letter.lower())

    def _set(self, d: int, to: str, t: float) -> None:
        s = self.sides[d]
        if s.state != to:
            self.transitions.append((t, d, s.state or "CLOSED", to))
            self.trans_pkt.append(self.last_index)
            s.state = to


def _scaled(c: Conn, s: Side, letter: str, d: int, count_attr: str, th_attr: str) -> None:
    """Zeek's ``Session::ScaledHistoryEntry``: the letter at the 1st, 10th, 100th, ... occurrence."""
    cnt = getattr(s, count_attr) + 1
    setattr(s, count_attr, cnt)
    th = getattr(s, th_attr)
    if cnt == th:
        c.hist.append(letter if d == 0 else letter.lower())
        setattr(s, th_attr, th * 10)


def _sdiff(a: int, b: int) -> int:
    """``a - b`` as a signed 32-bit sequence-number difference (Zeek's ``seq_delta``)."""
    return ((a - b + HALF) & M32) - HALF


def _clean(x: Side) -> bool:
    """TCP_Reassembler's ``is_clean``: established, or closed with FIN after being established."""
    return x.z == ESTABLISHED or (x.z == CLOSED and x.zprev == ESTABLISHED)


def _content_clean(x: Side) -> bool:
    """Nothing of ``x``'s stream waits for delivery: an ACK up to ``LastSeq`` can reveal no gap."""
    if x.blocks:
        return False
    return x.cend == x.nxt or (x.fin_cnt > 0 and x.fin_seq == x.nxt and ((x.nxt - x.cend) & M32) == 1)


class _Left(NamedTuple):
    """How a finished row left one host: RFC 9293 state, ISN, time of its last segment, the scale of its
    windows."""

    state: str | None
    isn: int | None
    t_last: float | None
    wshift: int | None


class _PrevRow(NamedTuple):
    """A finished row, remembered for the next row of the same 4-tuple (see Tracker._continues)."""

    n: int
    orig_ep: int
    orig: _Left
    resp: _Left
    end: str
    first_index: int


# A finished row as remembered for the next row of its 4-tuple (a plain tuple: made once per connection):
# n, orig endpoint, orig (state, isn, last time, window scale), resp (the same), how it ended, first packet.
_Prev = tuple[
    int, int, str | None, int | None, float | None, int | None, str | None, int | None, float | None, int | None,
    str, int,
]  # fmt: skip


class _Held(NamedTuple):
    """A connection held natively (_ctrack.c) that is to be written: materialized only just before, so that a
    sweep's or the flush's worth of them never exists at once as Conn objects next to the C structs."""

    n: int
    key: int


def _by_n(c: Conn | _Held) -> int:
    return c.n


def _first(t: tuple[int, int, bytes]) -> int:
    return t[0]


# A compact connection (see "compact connections" in Tracker): a header (connection number, dirbit of its first
# packet, when a timer ends it), then per packet (time, seq, flags, window, IP length, packet number, window-scale
# option or -1, ack, payload length).
_HALF_HEAD = struct.Struct("<qBd")
_HALF_PKT = struct.Struct("<dIHHIqhII")


class Tracker:
    """Feed :class:`~tcpwise.trace.decode.Decoded` batches; each finished row (a :class:`Conn`) goes to ``sink``."""

    def __init__(
        self,
        sink: Callable[[Conn], None],
        addrs: AddrTable,
        timers: ZeekTimers | None = None,
        reference: bool = False,
    ) -> None:
        self.sink = sink
        self.addrs = addrs
        self.timers = timers or ZeekTimers()
        self.reference = reference
        self.conns: dict[int, Conn] = {}
        self.half: dict[int, bytes] = {}  # compact SYN-only connections
        # Timer queues (heaps): (due, key) of compact connections, (due, serial, conn) of one-shot timers. Exact
        # order matters: each connection must be written at the sweep after its own due time, whatever else is
        # queued, so that --jobs workers (each holding a share of the connections) write exactly as one tracker.
        # Compact connections by the whole second of their due time: second -> keys (8 bytes a record, where a
        # heap entry would cost 80); a sweep takes every second up to now, so it is exact all the same.
        self._half_buckets: dict[int, list[int]] = {}
        self._half_low = 0  # no bucket below this second holds keys
        self._tq: list[tuple[float, int, int, int]] = []  # (due, serial, key, n): no reference to the Conn
        self._serial = 0
        self._next_scan = -INF  # next full scan for inactivity / expire timers
        self.count = 0
        self.now = -INF
        self.peak = 0  # most connections held at once
        self._isn_jump = False  # the SYN being processed carries a new ISN for its sender
        self._wsc: dict[int, int] = {}  # packet number -> window-scale option of the batch's SYNs
        self.want: int | None = None  # keep a reference to connection number ``want`` in ``wanted``
        self.wanted: Conn | None = None
        self.wanted_done = False  # the wanted connection is finished: a caller may stop reading
        self.fin_pno = 0  # the packet whose arrival ended a connection (ordering for --jobs merges)
        self.recent: dict[int, _Prev] = {}  # key -> how its last row ended (see _continues)
        # Connections held natively (_ctrack.c): they count as open ones everywhere (peak, COMPACT_AFTER)
        # and are materialized into self.conns when a packet, a timer, a scan or the flush needs them.
        self._cfast: Fast | None = (
            _ctrack.Fast(heapq.heappush, Conn) if _ctrack is not None and not reference else None
        )
        self._bat: tuple[list[Conn | None], list[int], Decoded] | None = None  # the batch the C loop walks

    def _native_count(self) -> int:
        return len(self._cfast) if self._cfast is not None else 0

    def open_count(self) -> int:
        return len(self.conns) + len(self.half) + self._native_count()

    # -- the per-packet loop ----------------------------------------------------------------------------------
    def feed(self, dec: Decoded) -> None:
        conns = self.conns
        keys = dec.keys
        self._wsc = dec.wscale
        bconn: list[Conn | None] = [conns.get(k) for k in keys]
        slow = self._slow
        rows = zip(dec.ts, dec.fidx, dec.dirbit, dec.seq, dec.ack, dec.flags, dec.win, dec.plen, dec.iplen,
                   dec.index, strict=False)  # fmt: skip
        if self.reference:
            for ts, fi, db, seq, ack, fl, win, pl, ipl, pno in rows:
                slow(bconn, fi, keys[fi], ts, db, seq, ack, fl, win, pl, ipl, pno)
        elif self._cfast is not None:
            # The C loop takes the packets of the connections it holds; every other packet it hands to
            # _native_one, that is to the same _feed_fast, one packet at a time and in capture order.
            self._bat = (bconn, keys, dec)
            created = self._created if type(self)._created is not Tracker._created else None
            try:
                self._cfast.feed(self, dec, bconn, COMPACT_AFTER, created)
            finally:
                self._bat = None
        else:
            self._feed_fast(bconn, keys, rows)
        if dec.last_ts is not None and dec.last_ts > self.now:
            self.now = dec.last_ts
        n = len(conns) + len(self.half) + self._native_count()
        if n > self.peak:
            self.peak = n
        self.sweep(self.now)

    def _native_one(self, i: int) -> None:
        """Packet ``i`` of the batch the C loop walks, by the Python fast path (called from _ctrack.c)."""
        assert self._bat is not None
        bconn, keys, d = self._bat
        row = (d.ts[i], d.fidx[i], d.dirbit[i], d.seq[i], d.ack[i], d.flags[i], d.win[i], d.plen[i], d.iplen[i],
               d.index[i])  # fmt: skip
        self._feed_fast(bconn, keys, (row,))

    def _native_end(self, i: int) -> bool:
        """Packet ``i`` (a bare SYN) of a connection Python holds: the first step of :meth:`_slow` only — does a
        timer or this reusing SYN end that row? True: it was written, and the C loop may start the new one."""
        assert self._bat is not None
        bconn, _keys, d = self._bat
        fi = d.fidx[i]
        c = bconn[fi]
        assert c is not None
        ts, pno = d.ts[i], d.index[i]
        if ts >= c.due and self._expired(c, ts) is not None:
            self.fin_pno = pno
            self._finish(c)
        elif self._is_reuse(c, d.dirbit[i] ^ c.odir, d.seq[i], d.flags[i]):
            self.fin_pno = pno
            c.end = "reuse"
            self._finish(c)
        else:
            return False  # the row lives on (_expired found nothing due: calling it again changes nothing)
        bconn[fi] = None
        return True

    # The per-packet loop, inlined on purpose (C901 waived here only): every helper call it saves is measured in
    # bench/bench_trace.py, and tests/trace hold it equal to the reference tracker packet by packet.
    def _feed_fast(self, bconn: list[Conn | None], keys: list[int], rows: object) -> None:  # noqa: C901
        slow = self._slow
        beyond = self._acked_beyond
        data = self._data_fast
        zero = self._zero_fast
        bit_d, bit_a, ch_d, ch_a = _BIT_D, _BIT_A, _CH_D, _CH_A
        hs_ack, ack_fin, synack, fin1 = self._hs_ack, self._ack_fin, self._synack, self._fin1
        for ts, fi, db, seq, ack, fl, win, pl, ipl, pno in rows:  # type: ignore[attr-defined]
            c = bconn[fi]
            if c is None or ts >= c.due:
                slow(bconn, fi, keys[fi], ts, db, seq, ack, fl, win, pl, ipl, pno)
                continue
            d = db ^ c.odir
            if fl & FASTMASK != ACK:
                # The handshake's and the close's usual segments go straight to their handlers (neither can
                # be a reusing SYN: a SYN+ACK reuses only a connection whose originator never spoke).
                if fl == SYN | ACK:
                    if d == 1 and synack(c, ts, seq, ack, win, pl, ipl, pno):
                        continue
                elif fl & ~(PSH | ECE | CWR) == FIN | ACK and fin1(c, d, ts, seq, ack, win, pl, ipl, pno):
                    continue
                slow(bconn, fi, keys[fi], ts, db, seq, ack, fl, win, pl, ipl, pno)
                continue
            s = c.r if d else c.o
            if not s.fast:
                if fl == ACK and ((d == 0 and hs_ack(c, ts, seq, ack, win, pl, ipl, pno))
                                  or ack_fin(c, d, ts, seq, ack, win, pl, ipl, pno)):  # fmt: skip
                    continue
                slow(bconn, fi, keys[fi], ts, db, seq, ack, fl, win, pl, ipl, pno)
                continue
            # An ACK-only (or data) segment of an established side with a clean stream: what _process would do,
            # letters in its order (D/A, then W, then T).
            c.last = s.t_last = ts
            c.last_index = pno
            s.pkts += 1
            s.ipbytes += ipl
            if pl:
                if not c.hseen & bit_d[d]:
                    c.hseen |= bit_d[d]
                    c.hist.append(ch_d[d])
            elif not c.hseen & bit_a[d]:
                c.hseen |= bit_a[d]
                c.hist.append(ch_a[d])
            s.win = win
            if win > s.wmax:
                s.wmax = win
            if win == 0:
                zero(c, s, d)
            elif s.win0:
                s.win0 = False
            if pl:
                if seq == s.nxt:
                    s.nxt = s.top = s.cend = (seq + pl) & M32
                    s.acc += pl
                else:
                    data(c, s, d, seq, pl, fl)
            elif seq != s.nxt:
                self._odd_fast(c, s, d, seq)
            p = c.o if d else c.r
            if 0 < ((ack - p.nxt) & M32) < HALF:
                beyond(c, d, p, ack)
            s.last_ack = ack

    # -- fast-path helpers (each does exactly what _process does for that case) ---------------------------------
    def _data_fast(self, c: Conn, s: Side, d: int, seq: int, pl: int, fl: int) -> None:
        nxt0 = s.nxt
        self._update_last(c, d, s, fl, (seq + pl) & M32, pl)
        self._content(s, seq, pl)
        self._classify_data(c, s, d, seq, pl, fl, nxt0)
        self._refresh_fast(c)

    def _odd_fast(self, c: Conn, s: Side, d: int, seq: int) -> None:
        nxt0 = s.nxt
        self._update_last(c, d, s, ACK, seq, 0)
        self._classify_odd(c, s, d, seq, ACK, nxt0)
        self._refresh_fast(c)

    def _zero_fast(self, c: Conn, s: Side, d: int) -> None:
        s.win0 = True
        if c.sides[1 - d].z != CLOSED and s.z != RESET:
            _scaled(c, s, "W", d, "zw", "zw_th")

    def _acked_beyond(self, c: Conn, d: int, p: Side, ack: int) -> None:
        """Side ``d`` acknowledged more of ``p``'s stream than the capture showed: AckSeq moves, gaps appear."""
        self._update_ack(p, ack)
        self._ack_received(c, d, p, ack)
        self._refresh_fast(c)

    # -- everything else: the rules one by one --------------------------------------------------------------------
    def _slow(
        self,
        bconn: list[Conn | None],
        fi: int,
        key: int,
        ts: float,
        db: int,
        seq: int,
        ack: int,
        fl: int,
        win: int,
        pl: int,
        ipl: int,
        pno: int,
    ) -> None:
        c = bconn[fi]
        if c is None and self.half:
            h = self.half.get(key)
            if h is not None:
                if self._half_takes(h, ts, db, seq, fl, pl):
                    self.half[key] = h + _HALF_PKT.pack(
                        ts, seq, fl, win, ipl, pno, self._wsc.get(pno, -1), ack, pl
                    )
                    return
                del self.half[key]
                c = self._materialize(key, h)  # anything else: the full rules decide, as if never compacted
        if c is not None:
            if ts >= c.due and self._expired(c, ts) is not None:
                # A timer removed the connection before this packet (Zeek expires timers as time advances).
                self.fin_pno = pno
                self._finish(c)
                c = None
            elif fl & SYN and self._is_reuse(c, db ^ c.odir, seq, fl):
                self.fin_pno = pno
                c.end = "reuse"
                self._finish(c)
                c = None
        if c is None:
            if (
                not self.reference
                and len(self.conns) + self._native_count() >= COMPACT_AFTER
                and (fl & BADSUM or (fl & (FASTMASK | 0xFF00) == SYN and not pl) or key not in self.recent)
            ):
                # None: held compact; else a full Conn that has already taken this packet
                bconn[fi] = self._half_new(key, ts, db, seq, ack, fl, win, pl, ipl, pno)
                return
            c = self._new(key, db, fl, ts, pno, seq=seq)
            if fl == SYN and not pl and c.prev_n is None and not self.reference:
                # A connect()'s first SYN with nothing carried over from an earlier row of the 4-tuple (a new
                # one, or a reused port's new connection): the straight-line handler.
                bconn[fi] = c
                self._open(c, ts, seq, win, ipl, pno)
                return
        bconn[fi] = c
        if not self.reference and self._straight_line(c, db ^ c.odir, ts, seq, ack, fl, win, pl, ipl, pno):
            return
        self._process(c, db ^ c.odir, ts, seq, ack, fl, win, pl, ipl, pno)

    def _straight_line(
        self, c: Conn, d: int, ts: float, seq: int, ack: int, fl: int, win: int, pl: int, ipl: int, pno: int
    ) -> bool:  # fmt: skip
        """The handshake's and the close's usual segments, handled by their straight-line handlers (each held
        equal to :meth:`_process` by the differential test); False: the full rules must decide."""
        if fl == ACK:
            return (d == 0 and self._hs_ack(c, ts, seq, ack, win, pl, ipl, pno)) or self._ack_fin(
                c, d, ts, seq, ack, win, pl, ipl, pno
            )
        if fl == SYN | ACK:
            return d == 1 and self._synack(c, ts, seq, ack, win, pl, ipl, pno)
        return fl & ~(PSH | ECE | CWR) == FIN | ACK and self._fin1(c, d, ts, seq, ack, win, pl, ipl, pno)

    @staticmethod
    def _acked_within(p: Side, ack: int) -> bool:
        """``ack`` reveals no gap in ``p``'s stream: it is not beyond LastSeq and nothing waits for delivery."""
        return ((p.nxt - ack) & M32) < HALF and _content_clean(p)

    def _fin1(
        self, c: Conn, d: int, ts: float, seq: int, ack: int, win: int, pl: int, ipl: int, pno: int
    ) -> bool:  # fmt: skip
        """A side's first FIN (with ACK, maybe with data), in order, from ESTABLISHED."""
        s, p = c.sides[d], c.sides[1 - d]
        if not (
            win and s.z == ESTABLISHED and not s.fin_cnt and not s.did_close and seq == s.nxt and s.top == s.nxt
            and s.cend == s.nxt and not s.blocks and s.est_at is None and s.fin_end is None
            and (p.z == ESTABLISHED or p.z == CLOSED) and self._acked_within(p, ack)
        ):  # fmt: skip
            return False
        c.last_index = pno
        s.pkts += 1
        s.ipbytes += ipl
        end = (seq + pl + 1) & M32
        v = (seq - s.start + pl) & M32
        bit = _HBIT["F", d]
        if not c.hseen & bit:
            c.hseen |= bit
            c.hist.append("F" if d == 0 else "f")
        elif v != s.hlf:
            c.hist.append("F" if d == 0 else "f")
        s.hlf = v
        c.last = ts
        s.win = win
        if win > s.wmax:
            s.wmax = win
        s.fin_cnt = 1
        s.fin_seq = end
        self._update_ack(p, ack)
        s.nxt = s.top = end
        s.acc += pl + 1
        self._setz(c, s, p, CLOSED)
        if pl:
            s.cend = (seq + pl) & M32
        self._closed(c, s, p)
        s.t_last = ts
        s.fin_end = end
        s.fin_t = ts
        s.fin_pending = True
        if s.win0:
            s.win0 = False
        self._acks(c, d, p, ts, ack, 0)
        self._fin_states(c, d, s, p, ts, ack)
        s.last_ack = ack
        o, r = c.o, c.r
        c.watch = o.syn_pending or r.syn_pending or o.fin_pending or r.fin_pending
        self._refresh_fast(c)
        return True

    def _ack_fin(
        self, c: Conn, d: int, ts: float, seq: int, ack: int, win: int, pl: int, ipl: int, pno: int
    ) -> bool:  # fmt: skip
        """A bare ACK, in order, while a SYN or FIN awaits acknowledgement (typically the ACK of a FIN)."""
        s, p = c.sides[d], c.sides[1 - d]
        if not (
            not pl and win and (s.z == ESTABLISHED or s.z == CLOSED) and seq == s.nxt and s.est_at is None
            and not s.syn_pending and not p.syn_pending and (p.z == ESTABLISHED or p.z == CLOSED)
            and _content_clean(s) and self._acked_within(p, ack)
        ):  # fmt: skip
            return False
        c.last_index = pno
        s.pkts += 1
        s.ipbytes += ipl
        c.add_hist("A", d)
        if not (c.o.did_close and c.r.did_close):
            c.last = ts
        s.win = win
        if win > s.wmax:
            s.wmax = win
        self._update_ack(p, ack)
        s.t_last = ts
        if s.win0:
            s.win0 = False
        self._acks(c, d, p, ts, ack, 0)
        s.last_ack = ack
        o, r = c.o, c.r
        c.watch = o.syn_pending or r.syn_pending or o.fin_pending or r.fin_pending
        self._refresh_fast(c)
        return True

    # -- straight-line handlers for the handshake: each does exactly what _process does for its case (the
    # preconditions make every skipped branch of _process a no-op); test_trace_fast.py holds them equal. --------
    def _open(self, c: Conn, ts: float, seq: int, win: int, ipl: int, pno: int) -> None:
        """A bare SYN (flags exactly SYN, no payload) that created connection ``c``: the originator's first."""
        s = c.o
        c.last_index = pno
        s.pkts = 1
        s.ipbytes = ipl
        end = (seq + 1) & M32
        s.start = s.ackseq = seq
        s.nxt = s.top = s.cend = end
        s.acc = 1
        c.hseen |= _BIT_S0
        c.hist.append("S")
        s.hls = 0
        if win == 0:  # the responder is INACTIVE, not CLOSED; we are not RESET
            _scaled(c, s, "W", 0, "zw", "zw_th")
            s.win0 = True
        c.last = ts
        s.wsyn = win
        s.woffer = self._wsc.get(pno, -1)
        s.zprev, s.z = INACTIVE, SYN_SENT
        if self.timers.attempt:
            self._arm(c, ts + self.timers.attempt, "attempt_due")
        s.t_last = ts
        s.isn = seq
        c.syn_t = c.syn_last_t = ts
        c.transitions.append((ts, 0, s.state or "CLOSED", "SYN_SENT"))
        c.trans_pkt.append(pno)
        s.state = "SYN_SENT"
        s.syn_pending = True
        c.watch = True
        s.fast = c.r.fast = False

    def _synack(
        self, c: Conn, ts: float, seq: int, ack: int, win: int, pl: int, ipl: int, pno: int
    ) -> bool:  # fmt: skip
        """The responder's first packet, a SYN+ACK acknowledging the originator's SYN."""
        s, p = c.r, c.o
        if not (
            not pl and win and s.z == INACTIVE and s.pkts == 0 and s.isn is None and p.z == SYN_SENT
            and p.state == "SYN_SENT" and s.state == "LISTEN" and p.syn_pending and p.isn is not None
            and ack == (p.isn + 1) & M32 and p.ackseq == p.isn and p.top == ack and p.cend == ack
            and not p.fin_cnt and not p.fin_pending and not p.did_close and c.synack_t is None
        ):  # fmt: skip
            return False
        c.last_index = pno
        s.pkts = 1
        s.ipbytes = ipl
        end = (seq + 1) & M32
        s.start = s.ackseq = seq
        s.nxt = s.top = s.cend = end
        s.acc = 1
        s.blocks = []
        c.hseen |= _BIT_S1
        c.hist.append("h")
        s.hls = 0
        c.last = ts
        self._syn_window(s, p, SYN | ACK, win, pno)
        p.ackseq = ack
        self._setz(c, p, s, ESTABLISHED)
        self._setz(c, s, p, ESTABLISHED)
        s.t_last = ts
        s.isn = seq
        s.holes.clear()
        s.win0 = False
        c.synack_t = ts
        c._set(1, "SYN_RCVD", ts)
        s.syn_pending = True
        p.syn_pending = False
        p.est_at = (ts, len(c.transitions), c.last_index)
        s.last_ack = ack
        c.watch = True
        s.fast = p.fast = False
        return True

    def _hs_ack(
        self, c: Conn, ts: float, seq: int, ack: int, win: int, pl: int, ipl: int, pno: int
    ) -> bool:  # fmt: skip
        """The originator's bare ACK of the SYN+ACK (the third segment of the handshake)."""
        s, p = c.o, c.r
        if not (
            not pl and win and c.watch and s.z == ESTABLISHED and p.z == ESTABLISHED and s.est_at is not None
            and seq == s.nxt and s.top == s.nxt and s.cend == s.nxt and not s.blocks and not s.fin_pending
            and p.syn_pending and p.isn is not None and ack == (p.isn + 1) & M32 and p.ackseq == p.isn
            and p.nxt == ack and p.top == ack and p.cend == ack and not p.blocks and not p.fin_cnt
            and p.state == "SYN_RCVD" and not s.syn_pending and not s.did_close and not p.did_close
        ):  # fmt: skip
            return False
        c.last_index = pno
        s.pkts += 1
        s.ipbytes += ipl
        c.add_hist("A", 0)
        c.last = ts
        s.win = win
        if win > s.wmax:
            s.wmax = win
        p.ackseq = ack
        s.t_last = ts
        if s.win0:
            s.win0 = False
        self._confirm_established(c, 0)
        p.syn_pending = False
        if c.ack_t is None and c.synack_t is not None:
            c.ack_t = ts
        c._set(1, "ESTABLISHED", ts)
        s.last_ack = ack
        c.watch = False
        s.fast = p.fast = True
        return True

    def _is_reuse(self, c: Conn, d: int, seq: int, fl: int) -> bool:
        """``TCPSessionAdapter::IsReuse``: does this SYN start a new connection on the same 4-tuple?"""
        o, r = c.o, c.r
        if fl & ACK:
            if o.z != INACTIVE:
                return False  # a SYN+ACK reuses only a half connection (the originator never spoke)
            co = r
        else:
            co = o
        if o.did_close or r.did_close:
            return True
        if not fl & ACK and d == 1:
            # Deliberate difference: Zeek compares any bare SYN with the originator's ISN, so the responder's SYN
            # of a simultaneous open would start a new row; it is the same connection (RFC 9293 Figure 8).
            return False
        if seq == co.start:
            return False
        return not (not fl & ACK and co.z == SYN_ACK_SENT and r.z == INACTIVE and seq == r.start)

    def _new(
        self, key: int, db: int, fl: int, ts: float, pno: int, n: int | None = None, seq: int | None = None
    ) -> Conn:
        lo, hi = key >> 64, key & M64
        src = hi if db else lo
        dst = lo if db else hi
        flip = False
        if not fl & SYN or fl & ACK:
            # TCPAnalyzer::WantConnection: a connection starting without a bare SYN is oriented by the ports.
            sp, dp = src & 0xFFFF, dst & 0xFFFF
            if likely_server_port(sp):
                flip = (not fl & SYN and sp < dp) if likely_server_port(dp) else True
        odir = db ^ 1 if flip else db
        if n is None:
            self.count += 1
            n = self.count
            self._created(pno)
        c = Conn(n, key, odir, ts)
        c.first_index = pno
        ds = 1 if flip else 0  # side of the first packet's sender
        if flip:
            c.flipped = True
            c.add_hist("^", 0)
        if fl & SYN and not fl & ACK:
            c.sides[ds].state = "CLOSED"
            c.sides[1 - ds].state = "LISTEN"
        elif fl & SYN:
            c.sides[ds].state = "LISTEN"
            c.sides[1 - ds].state = "SYN_SENT"  # assumed: we did not see its SYN
        else:
            c.partial = True
            c.o.state = c.r.state = "ESTABLISHED"  # assumed: the capture started mid-connection
        prev = self.recent.pop(key, None)
        if prev is not None:
            self._continues(c, prev, ds, fl, seq)
        c.idle = self.timers.handshake_inactivity
        c.due = ts + c.idle if c.idle else INF
        self.conns[key] = c
        if n == self.want:
            self.wanted = c
        return c

    def _created(self, pno: int) -> None:
        """Hook: a new connection starts at packet ``pno`` (the --jobs workers log these)."""

    # -- compact connections -----------------------------------------------------------------------------------------
    # Beyond COMPACT_AFTER open connections (a flood, a scan, a capture started mid-way on a busy link), a new
    # connection's first packet is kept as packed bytes instead of a Conn and two Sides (~2.5 kB): a header (n,
    # dirbit of its first packet, the first time a timer may end it) and per packet (time, seq, flags, window, IP
    # length, packet number, window-scale option, ack, payload length). Only the originator's same bare SYN again
    # joins a record; anything else turns it into a full Conn by replaying its packets through the rules
    # (_materialize), which then judge the new packet — so compacting never changes a result
    # (tests/trace/test_trace_fast.py holds every path equal to the reference tracker).
    def _half_new(
        self, key: int, ts: float, db: int, seq: int, ack: int, fl: int, win: int, pl: int, ipl: int, pno: int
    ) -> Conn | None:
        """Hold a new connection compact (None), or return it as a full Conn that has taken its first packet
        when no timer can end it (it will only end with the capture, or by a later packet)."""
        self.count += 1
        self._created(pno)
        pkt = _HALF_PKT.pack(ts, seq, fl, win, ipl, pno, self._wsc.get(pno, -1), ack, pl)
        tm = self.timers
        if fl & BADSUM or (fl & (FASTMASK | 0xFF00) == SYN and not pl):
            # AttemptTimer after a SYN; ExpireTimer when it is off, or when nothing valid arrived (bad checksums)
            due = ts + (tm.attempt if not fl & BADSUM and tm.attempt else tm.syn_timeout + tm.session_timer)
        else:
            # Any other first packet: the rules say which timer ends it. Build it once to ask them (a key with
            # no recent row: building it consumes nothing), then keep only the bytes.
            c = self._materialize(key, _HALF_HEAD.pack(self.count, db, INF) + pkt)
            if self._expired(c, ts) is not None or c.due == INF:
                c.end = "end of capture"
                return c
            due = c.due
            del self.conns[key]
        self.half[key] = _HALF_HEAD.pack(self.count, db, due) + pkt  # finite: ZeekTimers are, INF left above
        sec = int(due)
        b = self._half_buckets.get(sec)
        if b is None:
            self._half_buckets[sec] = [key]
            if sec < self._half_low:
                self._half_low = sec
        else:
            b.append(key)
        return None

    @staticmethod
    def _half_wait(h: bytes) -> float:
        """When a timer may first end a compact connection (exact: its packets cannot move it)."""
        return float(_HALF_HEAD.unpack_from(h)[2])

    def _half_takes(self, h: bytes, ts: float, db: int, seq: int, fl: int, pl: int) -> bool:
        """Is this packet the same bare SYN again, inside the attempt delay (so the record stays compact)?"""
        hdb = _HALF_HEAD.unpack_from(h)[1]
        t0, hseq, hfl, _w, _i, _p, _o, _a, hpl = _HALF_PKT.unpack_from(h, _HALF_HEAD.size)
        attempt = self.timers.attempt
        return (
            db == hdb
            and seq == hseq
            and fl & (FASTMASK | 0xFF00) == SYN
            and hfl & (FASTMASK | 0xFF00) == SYN
            and not pl
            and not hpl
            and (not attempt or ts < t0 + attempt)
        )

    def _materialize(self, key: int, h: bytes, end: str = "end of capture") -> Conn:
        """Replay a compact connection through the full rules (same result as if never compacted)."""
        n, db, _due = _HALF_HEAD.unpack_from(h)
        pkts = list(_HALF_PKT.iter_unpack(h[_HALF_HEAD.size :]))
        ts0, seq0, fl0, _w, _i, pno0, _o, _a, pl0 = pkts[0]
        c = self._new(key, db, fl0, ts0, pno0, n=n, seq=seq0)
        saved = self._wsc
        self._wsc = {p: o for _t, _q, _f, _w2, _i2, p, o, _a2, _l in pkts if o >= 0}
        try:
            first = fl0 == SYN and not pl0 and c.prev_n is None and not self.reference
            for ts, seq, fl, win, ipl, pno, _off, ack, pl in pkts:
                if first:  # the usual single SYN: the same straight-line handler as when it arrived
                    self._open(c, ts, seq, win, ipl, pno)
                    first = False
                else:
                    self._process(c, db ^ c.odir, ts, seq, ack, fl, win, pl, ipl, pno)
        finally:
            self._wsc = saved
        c.end = end
        return c

    # -- one packet, rule by rule -------------------------------------------------------------------------------------
    def _process(
        self, c: Conn, d: int, ts: float, seq: int, ack: int, fl: int, win: int, pl: int, ipl: int, pno: int
    ) -> None:
        s = c.sides[d]
        p = c.sides[1 - d]
        if fl & BADSUM:
            # TCPAnalyzer::ValidateChecksum: a bad checksum stops the packet after the 'C' letter; it is not
            # counted and changes no state (Zeek still created the connection for it).
            _scaled(c, s, "C", d, "chk", "chk_th")
            if c.o.z == INACTIVE and c.r.z == INACTIVE:
                self._push(c, self._tick_after(c))  # ExpireTimer will find nothing valid ever arrived
            return
        c.last_index = pno
        s.pkts += 1
        s.ipbytes += ipl
        syn, fin, rst, ackf = fl & SYN, fl & FIN, fl & RST, fl & ACK
        seg = pl + (1 if syn else 0) + (1 if fin else 0) - (pl if rst else 0)
        end = (seq + seg) & M32
        self._init_endpoint(s, syn, seq, end)
        rel = (seq - s.start) & M32
        self._history(c, d, s, fl, rel, pl)
        # update_window: a zero window counts unless it comes with a RST, after our RST or the peer's FIN; the
        # states are those before this packet.
        if win == 0 and not rst and p.z != CLOSED and s.z != RESET:
            _scaled(c, s, "W", d, "zw", "zw_th")
        if not (c.o.did_close and c.r.did_close):
            c.last = ts
        if syn:
            self._syn_window(s, p, fl, win, pno)
        else:
            s.win = win
            if win > s.wmax:
                s.wmax = win
        if fin:
            s.fin_cnt += 1
            s.fin_seq = end
        peer_init = False
        if ackf:
            if p.z == INACTIVE:  # init_peer: number the silent peer's stream as if its SYN had been seen
                a = (ack - 1) & M32
                p.start = p.ackseq = p.nxt = p.top = a
                p.acc = 0
                p.cend = ack
                p.blocks = []
                peer_init = True
            elif not rst:  # update_ack_seq: ACK numbers in RSTs are not trusted
                self._update_ack(p, ack)
        nxt0 = s.nxt
        self._update_last(c, d, s, fl, end, pl)
        do_close = self._zeek_state(c, d, s, p, fl, seq, pl, ts)
        if ackf and not peer_init:
            self._ack_received(c, d, p, ack)
        if pl and not rst and not fl & TRUNC:
            self._content(s, (seq + 1) & M32 if syn else seq, pl)
        if do_close:
            self._closed(c, s, p)
        self._tcpwise(c, d, s, p, ts, seq, ack, fl, win, pl, nxt0)
        self._refresh_fast(c)

    def _init_endpoint(self, s: Side, syn: int, seq: int, end: int) -> None:
        """``init_endpoint``: (re)number a side's stream from its SYN, or from its first packet mid-stream."""
        z = s.z
        if z == INACTIVE:
            if syn:
                self._renumber(s, seq, end)
            else:
                self._renumber(
                    s, (seq - 1) & M32, seq
                )  # as though a SYN had been seen; first packet not a dup
        elif z == SYN_SENT or z == SYN_ACK_SENT:
            if syn and seq != s.start:
                self._renumber(s, seq, end)
        elif z == ESTABLISHED or z == PARTIAL:
            if syn:
                self._renumber(s, seq, end)
        elif z == RESET and syn and s.zprev == INACTIVE:
            self._renumber(s, seq, end)

    @staticmethod
    def _renumber(s: Side, start: int, last: int) -> None:
        s.start = s.ackseq = start
        s.nxt = s.top = last
        s.acc = (last - start) & M32
        s.cend = (start + 1) & M32
        s.blocks = []

    def _history(self, c: Conn, d: int, s: Side, fl: int, rel: int, pl: int) -> None:
        """``update_history``: one letter per control packet (again when its sequence number changes), D/A once."""
        nset = (1 if fl & SYN else 0) + (1 if fl & FIN else 0) + (1 if fl & RST else 0)
        if nset > 1:
            c.add_hist("I" if fl & FIN and fl & RST else "Q", d)
        elif nset == 1:
            if fl & SYN:
                code = "H" if fl & ACK else "S"
                bit = _HBIT["S", d]
                if not c.hseen & bit:
                    c.hseen |= bit
                    c.hist.append(code if d == 0 else code.lower())
                elif rel != s.hls:
                    c.hist.append(code if d == 0 else code.lower())
                s.hls = rel
            elif fl & FIN:
                v = (rel + pl) & M32  # a FIN's number comes after its data
                bit = _HBIT["F", d]
                if not c.hseen & bit:
                    c.hseen |= bit
                    c.hist.append("F" if d == 0 else "f")
                elif v != s.hlf:
                    c.hist.append("F" if d == 0 else "f")
                s.hlf = v
            else:
                bit = _HBIT["R", d]
                if not c.hseen & bit:
                    c.hseen |= bit
                    c.hist.append("R" if d == 0 else "r")
                elif rel != s.hlr:
                    c.hist.append("R" if d == 0 else "r")
                s.hlr = rel
        elif pl:
            c.add_hist("D", d)
        elif fl & ACK:
            c.add_hist("A", d)

    def _syn_window(self, s: Side, p: Side, fl: int, win: int, pno: int) -> None:
        """RFC 7323 §2.2: scaling is in effect only if both SYNs carried the option; SYN windows are unscaled."""
        s.wsyn = win
        offer = self._wsc.get(pno, -1)
        s.woffer = offer
        if fl & ACK:
            if p.woffer == -2:
                return  # the SYN was not captured: the scale is unknown
            if offer >= 0 and p.woffer >= 0:
                s.wshift, p.wshift = min(offer, 14), min(p.woffer, 14)
            else:
                s.wshift = p.wshift = 0

    def _update_ack(self, p: Side, ack: int) -> None:
        delta = _sdiff(ack, p.ackseq)
        if ack == 0 and delta > BIG:
            return  # a broken ACK rather than a connection landing on 0 (update_ack_seq)
        if delta > 0:
            p.ackseq = ack
            up = (ack - p.top) & M32
            if 0 < up < HALF:
                p.acc += up
                p.top = ack

    def _update_last(self, c: Conn, d: int, s: Side, fl: int, end: int, pl: int) -> None:
        """``update_last_seq``: advance LastSeq, or mark a retransmission (payload not beyond it)."""
        delta = _sdiff(end, s.nxt)
        if fl & (SYN | RST) and (delta > BIG or delta < -BIG):
            return
        if fl & FIN and s.nxt == (s.start + 1) & M32:
            self._set_last(s, end)  # > 2 GB connections of which only SYN and FIN were seen
        elif s.z == RESET:
            return
        elif delta > 0:
            self._set_last(s, end)
        elif pl > 0:
            _scaled(c, s, "T", d, "zrx", "zrx_th")

    @staticmethod
    def _set_last(s: Side, end: int) -> None:
        s.nxt = end
        up = (end - s.top) & M32
        if 0 < up < HALF:
            s.acc += up
            s.top = end

    def _zeek_state(self, c: Conn, d: int, s: Side, p: Side, fl: int, seq: int, pl: int, ts: float) -> bool:
        """``UpdateStateMachine``, dispatching to its ``Update*State`` helpers as Zeek does; returns ``do_close``."""
        z = s.z
        if z == INACTIVE:
            return self._zeek_inactive(c, d, s, p, fl, pl, ts)
        if z == SYN_SENT or z == SYN_ACK_SENT:
            return self._zeek_fin_rst(c, s, p, fl)  # UpdateSYN_SentState: only a FIN or RST moves it here
        if z == ESTABLISHED or z == PARTIAL:
            return self._zeek_established(c, s, p, fl, z)
        if z == CLOSED:
            return self._zeek_closed(c, s, p, fl, ts)
        return False

    def _zeek_fin_rst(self, c: Conn, s: Side, p: Side, fl: int) -> bool:
        do_close = False
        if fl & FIN:
            self._setz(c, s, p, CLOSED)
            do_close = True
        if fl & RST:
            self._setz(c, s, p, RESET)
            do_close = True
        return do_close

    def _zeek_inactive(self, c: Conn, d: int, s: Side, p: Side, fl: int, pl: int, ts: float) -> bool:
        """``UpdateInactiveState``: the first packet seen from this side."""
        ackf = fl & ACK
        if fl & SYN:
            if d == 0:
                self._setz(c, s, p, SYN_ACK_SENT if ackf else SYN_SENT)
                if self.timers.attempt:
                    self._arm(c, ts + self.timers.attempt, "attempt_due")
            else:
                if p.z == SYN_SENT:
                    self._setz(c, p, s, ESTABLISHED)
                self._setz(c, s, p, ESTABLISHED)
        do_close = self._zeek_fin_rst(c, s, p, fl)
        if s.z == INACTIVE:
            if d == 1 and pl == 0 and c.o.z == SYN_SENT:
                pass  # an ACK of the SYN before the SYN+ACK: not a partial connection
            elif ackf and p.z == ESTABLISHED:
                self._setz(c, s, p, ESTABLISHED)  # missed the SYN, saw the SYN+ACK
            else:
                self._setz(c, s, p, PARTIAL)
        return do_close

    def _zeek_established(self, c: Conn, s: Side, p: Side, fl: int, z: int) -> bool:
        """``UpdateEstablishedState`` (also for PARTIAL)."""
        if fl & SYN and z == PARTIAL and p.z == INACTIVE and not fl & ACK:
            self._setz(c, s, p, SYN_SENT)
        do_close = False
        if fl & FIN and not fl & RST:
            self._setz(c, s, p, CLOSED)
            if p.z == RESET and p.zprev == CLOSED:
                self._setz(c, p, s, CLOSED)  # the peer's FIN then RST was a normal close after all
            do_close = True
        if fl & RST:
            self._setz(c, s, p, RESET)
            do_close = True
        return do_close

    def _zeek_closed(self, c: Conn, s: Side, p: Side, fl: int, ts: float) -> bool:
        """``UpdateClosedState``: after both FINs a RST changes nothing (the connection stays SF); after only ours
        it resets."""
        do_close = False
        if fl & RST and p.z != CLOSED:
            self._setz(c, s, p, RESET)
            if not s.did_close:
                do_close = True
            if self.timers.reset:
                self._arm(c, ts + self.timers.reset, "reset_due")
        return do_close

    def _setz(self, c: Conn, x: Side, y: Side, new: int) -> None:
        """``TCP_Endpoint::SetState``; leaving the handshake switches to the TCP inactivity timeout."""
        if new != x.z:
            if new > SYN_ACK_SENT and x.z <= SYN_ACK_SENT and y.z <= SYN_ACK_SENT:
                c.idle = self.timers.inactivity
            x.zprev = x.z
            x.z = new

    def _closed(self, c: Conn, s: Side, p: Side) -> None:
        """``ConnectionClosed``: a completed close (RST, both FINs, or a silent peer) arms the delete timer."""
        if s.did_close:
            return
        s.did_close = True
        if s.z == RESET or p.did_close or p.z == INACTIVE:
            c.attempt_due = INF  # CancelTimers()
            self._arm(c, c.last + self.timers.close, "delete_due")

    def _ack_received(self, c: Conn, d: int, p: Side, ack: int) -> None:
        """``AckReceived`` -> ``TCP_Reassembler::TrimToSeq/Undelivered``: acknowledged data never delivered is a
        content gap (letter and missed_bytes only while both sides are established or cleanly closing)."""
        a = ack
        if p.fin_cnt and ((a - p.fin_seq) & M32) < HALF:
            a = (p.fin_seq - 1) & M32  # the FIN octet is not content
        ahead = (a - p.cend) & M32
        if ahead == 0 or ahead >= HALF:
            return
        clean = _clean(p) and _clean(c.sides[d])
        base = p.cend
        pos = 0
        keep: list[list[int]] = []
        for blk in sorted(p.blocks, key=lambda b: (b[0] - base) & M32):
            b0, b1 = (blk[0] - base) & M32, (blk[1] - base) & M32
            if b0 < ahead or b0 <= pos:
                if b0 > pos:
                    self._gap(c, p, 1 - d, b0 - pos, clean)
                pos = max(pos, b1)
            else:
                keep.append(blk)
        if ahead > pos:
            self._gap(c, p, 1 - d, ahead - pos, clean)
            pos = ahead
        p.cend = (base + pos) & M32
        p.blocks = [b for b in keep if ((b[1] - p.cend) & M32) < HALF and b[1] != p.cend]

    @staticmethod
    def _gap(c: Conn, p: Side, dp: int, n: int, clean: bool) -> None:
        if clean:
            p.missed += n
            _scaled(c, p, "G", dp, "gap", "gap_th")

    @staticmethod
    def _content(s: Side, a: int, n: int) -> None:
        """``TCP_Reassembler::DataSent``: data [a, a+n) fully captured; deliver it or keep it above a hole."""
        ra = (a - s.cend) & M32
        rb = (ra + n) & M32
        if ra >= HALF:  # starts before what was delivered
            if rb == 0 or rb >= HALF:
                return
            ra = 0
        if ra == 0:
            pos = rb
            if s.blocks:
                base = s.cend
                moved = True
                while moved:
                    moved = False
                    for blk in s.blocks:
                        b0, b1 = (blk[0] - base) & M32, (blk[1] - base) & M32
                        if b0 <= pos:
                            pos = max(pos, b1)
                            s.blocks.remove(blk)
                            moved = True
                            break
            s.cend = (s.cend + pos) & M32
        elif len(s.blocks) < 256:
            s.blocks.append([a, (a + n) & M32])

    # -- tcpwise's own view ---------------------------------------------------------------------------------------
    def _tcpwise(
        self, c: Conn, d: int, s: Side, p: Side, ts: float, seq: int, ack: int, fl: int, win: int, pl: int,
        nxt0: int,
    ) -> None:  # fmt: skip
        syn, fin, rst = fl & SYN, fl & FIN, fl & RST
        single = (1 if syn else 0) + (1 if fin else 0) + (1 if rst else 0) == 1
        self._isn_jump = False
        mine = s.t_last if s.t_last is not None else s.prev_t
        if rst and c.rst_silence is None and mine is not None:
            # How long the RST's sender had been silent, and whether the peer spoke in between (then the RST
            # answers it: a host that lost the connection; otherwise the sender aborted on its own, e.g. idle kill).
            c.rst_silence = ts - mine
            rtt = (c.ack_t - c.syn_last_t) if c.ack_t is not None and c.syn_last_t is not None else 0.0
            c.rst_reply = p.t_last is not None and p.t_last > mine and ts - p.t_last <= max(1.0, 4 * rtt)
        s.t_last = ts
        if syn:
            if s.isn is None or seq != s.isn:
                self._isn_jump = s.isn is not None and not fl & ACK
                s.isn = seq
                s.holes.clear()
            elif single:
                s.ctl_rxmt += 1  # the same SYN (or SYN+ACK) again: its retransmission timer fired
        elif pl:
            self._classify_data(c, s, d, seq, pl, fl, nxt0)
        elif seq != nxt0:
            self._classify_odd(c, s, d, seq, fl, nxt0)
        first_fin = False
        if fin:
            fe = (seq + (1 if syn else 0) + pl + 1) & M32
            if s.fin_end is None:
                s.fin_end = fe
                s.fin_t = ts
                s.fin_pending = True
                first_fin = True
            elif single and fe == s.fin_end:
                s.ctl_rxmt += 1  # the same FIN again (its ACK was lost or late)
        if win == 0:
            s.win0 = True
        elif s.win0:
            s.win0 = False
        self._states(c, d, s, p, ts, seq, ack, fl, nxt0, first_fin)
        if fl & ACK:
            s.last_ack = ack
        o, r = c.o, c.r
        c.watch = o.syn_pending or r.syn_pending or o.fin_pending or r.fin_pending

    def _classify_data(self, c: Conn, s: Side, d: int, seq: int, pl: int, fl: int, nxt0: int) -> None:
        """A payload-carrying segment against the sender's highest sequence number before it."""
        ahead = (seq - nxt0) & M32
        if ahead == 0:
            return
        if ahead < HALF:  # beyond everything seen: the capture missed [nxt0, seq) (or it comes later)
            if len(s.holes) < 64:
                s.holes.append([nxt0, seq])
            return
        if pl == 1 and ((nxt0 - seq) & M32) == 1 and not fl & CTL:
            self._probe(c, s, d)
            return
        end = (seq + pl) & M32
        for h in s.holes:  # does it fill a hole? (reordering, not a re-send)
            if ((seq - h[0]) & M32) < HALF and ((h[1] - end) & M32) < HALF:
                s.ooo += 1
                if seq == h[0]:
                    h[0] = end
                elif end == h[1]:
                    h[1] = seq
                if h[0] == h[1]:
                    s.holes.remove(h)
                return
        s.rxmt += 1  # re-sends bytes already seen (possibly with a fresh tail)

    def _classify_odd(self, c: Conn, s: Side, d: int, seq: int, fl: int, nxt0: int) -> None:
        """A segment without payload whose sequence number is not the sender's highest before it."""
        if ((nxt0 - seq) & M32) == 1 and not fl & CTL:
            self._probe(c, s, d)
        elif ((seq - nxt0) & M32) < HALF and len(s.holes) < 64:  # the sender is ahead: missed segments
            s.holes.append([nxt0, seq])

    @staticmethod
    def _probe(c: Conn, s: Side, d: int) -> None:
        if c.sides[1 - d].win0:
            s.winprobe += 1  # RFC 9293 §3.8.6.1: probing a zero window
        else:
            s.keepalive += 1  # RFC 9293 §3.8.4 / RFC 1122 §4.2.3.6: keep-alive probe (seq = SND.NXT - 1)

    def _states(
        self, c: Conn, d: int, s: Side, p: Side, ts: float, seq: int, ack: int, fl: int, nxt0: int,
        first_fin: bool,
    ) -> None:  # fmt: skip
        """Infer both hosts' RFC 9293 states from one packet sent by side ``d``."""
        syn, rst, ackf = fl & SYN, fl & RST, fl & ACK
        if s.est_at is not None and not rst:
            self._confirm_established(c, d)
        if rst:
            self._rst_states(c, d, s, p, ts, seq, nxt0)
            return
        if syn and not ackf:
            if c.syn_t is None and d == 0:
                c.syn_t = ts
            if d == 0 and c.synack_t is None:
                c.syn_last_t = ts  # a retransmitted SYN: the handshake's RTT runs from the one answered
            if s.state == "SYN_SENT" and self._isn_jump:
                # A SYN with a new ISN is a new connect(): the earlier attempt was given up without a segment.
                c._set(d, "CLOSED", ts)
            if s.state in (None, "CLOSED", "LISTEN"):
                c._set(d, "SYN_SENT", ts)
            if p.state == "SYN_SENT":  # simultaneous open: both sent a SYN (RFC 9293 Figure 8)
                c._set(1 - d, "SYN_RCVD", ts)
            s.syn_pending = True
        elif syn:  # SYN+ACK
            if c.synack_t is None and d == 1:
                c.synack_t = ts
            if s.state in (None, "LISTEN", "CLOSED", "SYN_SENT"):
                c._set(d, "SYN_RCVD", ts)
            s.syn_pending = True
        if ackf:
            self._acks(c, d, p, ts, ack, syn)
        if first_fin:
            self._fin_states(c, d, s, p, ts, ack)

    def _rst_states(self, c: Conn, d: int, s: Side, p: Side, ts: float, seq: int, nxt0: int) -> None:
        """Side ``d`` sent a RST: who reset in which state, and whether the receiver accepted it."""
        s.est_at = None  # a SYN_SENT host answering the SYN+ACK with RST never accepted it (why-three)
        if c.rst_by is None:
            c.rst_by = d
        s.rst_t = ts
        s.rst_state = s.state
        if s.state == "SYN_SENT" and s.syn_pending and p.isn is not None:
            # RFC 9293 §3.10.7.3: a SYN_SENT host answers a SYN+ACK that does not acknowledge its SYN with
            # <SEQ=SEG.ACK><CTL=RST> and stays in SYN_SENT (an old duplicate's SYN+ACK, why-three).
            pass
        elif s.state not in (None, "CLOSED", "LISTEN"):
            c._set(d, "CLOSED", ts)
        # RFC 9293 §3.10.7.4 first check: a RST is acceptable only in the receive window; one that lies behind
        # what its sender already sent (an answer to an old duplicate) is ignored by the receiver.
        accepted = ((seq - nxt0) & M32) < HALF or seq == p.last_ack
        if accepted and p.state not in (None, "CLOSED", "LISTEN"):
            c._set(1 - d, "CLOSED", ts)
            p.syn_pending = p.fin_pending = False
            p.est_at = None
        s.syn_pending = s.fin_pending = False

    def _fin_states(self, c: Conn, d: int, s: Side, p: Side, ts: float, ack: int) -> None:
        """Side ``d`` sent its first FIN: its own close and the receiver's (RFC 9293 §3.10.4, §3.10.7.4)."""
        if c.first_fin is None:
            c.first_fin = d
            c.peer_bytes_at_fin = p.size
        if s.state == "CLOSE_WAIT" and p.fin_pending and ((ack - p.fin_end) & M32) >= HALF:  # type: ignore[operator]
            # Simultaneous close (RFC 9293 Figure 13): this FIN left before the peer's FIN arrived, so the
            # CLOSE_WAIT we inferred when we saw the peer's FIN was never this host's state.
            for i in range(len(c.transitions) - 1, -1, -1):
                if c.transitions[i][1] == d and c.transitions[i][3] == "CLOSE_WAIT":
                    s.state = c.transitions[i][2]
                    del c.transitions[i]
                    del c.trans_pkt[i]
                    break
            c._set(d, "FIN_WAIT_1", ts)
            c._set(d, "CLOSING", ts)
        elif s.state in ("ESTABLISHED", "SYN_RCVD"):
            c._set(d, "FIN_WAIT_1", ts)
        elif s.state == "CLOSE_WAIT":
            c._set(d, "LAST_ACK", ts)
        # The receiver's side of the FIN (RFC 9293 §3.10.7.4, eighth step).
        if p.state in ("ESTABLISHED", "SYN_RCVD"):
            c._set(1 - d, "CLOSE_WAIT", ts)
        elif p.state == "FIN_WAIT_1":
            c._set(1 - d, "CLOSING", ts)
        elif p.state == "FIN_WAIT_2":
            c._set(1 - d, "TIME_WAIT", ts)

    def _acks(self, c: Conn, d: int, p: Side, ts: float, ack: int, syn: int) -> None:
        """What side ``d``'s acknowledgment number proves about the peer ``p``'s SYN and FIN."""
        # Our ACK of the peer's SYN: the peer's handshake is complete.
        if p.syn_pending and p.isn is not None and ((ack - p.isn - 1) & M32) < HALF:
            p.syn_pending = False
            if d == 0 and c.ack_t is None and c.synack_t is not None:
                c.ack_t = ts
            if p.state == "SYN_SENT" and syn:
                p.est_at = (ts, len(c.transitions), c.last_index)
            elif p.state in ("SYN_SENT", "SYN_RCVD"):
                c._set(1 - d, "ESTABLISHED", ts)
        # Our ACK of the peer's FIN.
        if p.fin_pending and p.fin_end is not None and ((ack - p.fin_end) & M32) < HALF:
            p.fin_pending = False
            if p.state == "FIN_WAIT_1":
                c._set(1 - d, "FIN_WAIT_2", ts)
            elif p.state == "CLOSING":
                c._set(1 - d, "TIME_WAIT", ts)
            elif p.state == "LAST_ACK":
                c._set(1 - d, "CLOSED", ts)

    def _confirm_established(self, c: Conn, d: int) -> None:
        """Side ``d`` accepted the SYN+ACK it got: record SYN_SENT -> ESTABLISHED at the SYN+ACK's time."""
        s = c.sides[d]
        t, i, pno = s.est_at  # type: ignore[misc]
        s.est_at = None
        if s.state == "SYN_SENT":
            if i == len(c.transitions):
                c.transitions.append((t, d, "SYN_SENT", "ESTABLISHED"))
                c.trans_pkt.append(pno)
            else:
                c.transitions.insert(i, (t, d, "SYN_SENT", "ESTABLISHED"))
                c.trans_pkt.insert(i, pno)
            s.state = "ESTABLISHED"

    def _refresh_fast(self, c: Conn) -> None:
        """Which sides may take the hot path: established/partial, nothing pending, both streams gap-free."""
        o, r = c.o, c.r
        if c.watch or (o.did_close and r.did_close):
            o.fast = r.fast = False
            return
        ok = _content_clean(o) and _content_clean(r)
        o.fast = ok and (o.z == ESTABLISHED or o.z == PARTIAL) and o.top == o.nxt
        r.fast = ok and (r.z == ESTABLISHED or r.z == PARTIAL) and r.top == r.nxt

    # -- timers ----------------------------------------------------------------------------------------------------
    def _arm(self, c: Conn, due: float, attr: str) -> None:
        setattr(c, attr, due)
        self._push(c, due)

    def _push(self, c: Conn, due: float) -> None:
        if due < c.due:
            c.due = due
        self._serial += 1
        heapq.heappush(self._tq, (due, self._serial, c.key, c.n))

    def _tick_after(self, c: Conn) -> float:
        """When ExpireTimer (first at start + tcp_SYN_timeout, then every tcp_session_timer) would first see the
        connection idle for longer than tcp_connection_linger."""
        tm = self.timers
        base = c.ts + tm.syn_timeout
        x = c.last + tm.linger
        if base > x or not tm.session_timer:
            return base
        return base + (int((x - base) // tm.session_timer) + 1) * tm.session_timer

    def _expired(self, c: Conn, now: float) -> float | None:
        """The time a timer removed ``c`` at or before ``now`` (states as after its last packet), else None;
        refreshes ``c.due``."""
        best, why = INF, ""
        if c.attempt_due <= now:
            # AttemptTimer: an attempt still unanswered is written as it is (S0; RSTOS0/SH if it gave up)
            if (c.o.z == SYN_SENT or c.o.z == SYN_ACK_SENT) and c.r.z == INACTIVE:
                best, why = c.attempt_due, "attempt"
            else:
                c.attempt_due = INF
        if c.delete_due < best and c.delete_due <= now:
            best, why = c.delete_due, "close"  # ConnDeleteTimer, tcp_close_delay after a completed close
        if c.reset_due < best and c.reset_due <= now:
            best, why = c.reset_due, "reset"
        if c.idle and c.last + c.idle <= now and c.last + c.idle < best:
            best, why = c.last + c.idle, "inactivity"  # Session::InactivityTimer
        both_inactive = c.o.z == INACTIVE and c.r.z == INACTIVE
        tick = self._tick_after(c) if both_inactive else INF
        if tick <= now and tick < best:
            best, why = tick, "expire"  # ExpireTimer: nothing valid ever arrived
        if best < INF:
            c.end = why
            return best
        c.due = min(c.attempt_due, c.delete_due, c.reset_due, c.last + c.idle if c.idle else INF, tick)
        return None

    def _conn_of(self, c: Conn | _Held) -> Conn:
        """``c`` itself, or the natively held connection it names, materialized into conns."""
        if isinstance(c, Conn):
            return c
        got = self._cfast.take(self, c.key, c.n) if self._cfast is not None else None
        assert got is not None, "a natively held connection to be written is gone"
        return got  # type: ignore[no-any-return]

    def _timers_due(self, now: float, gone: list[Conn | _Held]) -> None:
        """Pop the one-shot timers due by ``now``; the connections they removed go to ``gone``."""
        conns = self.conns
        q = self._tq
        cf = self._cfast
        while q and q[0][0] <= now:
            _due, _s, key, n = heapq.heappop(q)
            c = conns.get(key)
            if c is not None:
                if c.n == n and not c.gone and self._expired(c, now) is not None:
                    c.gone = True
                    gone.append(c)
            elif cf is not None and cf.expire(key, n, now):  # held natively: the same check, in C
                gone.append(_Held(n, key))

    def sweep(self, now: float) -> None:
        """Write the connections whose timers fired by ``now`` (end of a batch), in connection-number order."""
        gone: list[Conn | _Held] = []
        conns = self.conns
        cf = self._cfast
        self._timers_due(now, gone)
        halves: list[tuple[int, int, bytes]] = []
        if self._half_buckets:
            buckets = self._half_buckets
            top = int(now)
            low = self._half_low
            # Walk the seconds, or after a long jump in capture time only the seconds that have records.
            secs = range(low, top + 1) if top - low <= 4096 else sorted(k for k in buckets if k <= top)
            for sec in secs:
                keys = buckets.pop(sec, None)
                if keys is None:
                    continue
                later = []
                for key in keys:
                    h = self.half.get(key)
                    if h is None:
                        continue  # it became a full connection
                    w = self._half_wait(h)
                    if int(w) != sec:
                        continue  # it became a full connection, or a later record holds the 4-tuple
                    if w > now:
                        later.append(key)  # this second is not over yet
                        continue
                    # Exact for a compact connection: no packet joined it that could move its timers.
                    del self.half[key]
                    halves.append((_HALF_HEAD.unpack_from(h)[0], key, h))
                if later:
                    buckets[sec] = later
            self._half_low = top
        if now >= self._next_scan:
            # Inactivity (and ExpireTimer) due times move with every packet: a periodic scan finds idle rows.
            tm = self.timers
            self._next_scan = now + max(10.0, min(60.0, (tm.inactivity or 300.0) / 5))
            if cf is not None:
                gone.extend(_Held(n, key) for n, key in cf.expire_due(now))  # the same scan, in C
            for c in list(conns.values()):
                if not c.gone and c.due <= now and self._expired(c, now) is not None:
                    c.gone = True
                    gone.append(c)
        self._finish_in_order(gone, halves, now)

    def _finish_in_order(
        self, full: list[Conn | _Held], halves: list[tuple[int, int, bytes]], now: float | None
    ) -> None:
        """Write full connections and compact ones in connection-number order, turning each compact one into a
        Conn only just before it is written (a flood's worth of them never exists at once)."""
        full.sort(key=_by_n)
        halves.sort(key=_first)
        fi = hi = 0
        while fi < len(full) or hi < len(halves):
            if hi == len(halves) or (fi < len(full) and full[fi].n < halves[hi][0]):
                self._finish(self._conn_of(full[fi]))
                fi += 1
                continue
            _n, key, h = halves[hi]
            hi += 1
            c = self._materialize(key, h)
            if now is not None and self._expired(c, now) is None:  # sets c.end (the timer that wrote it)
                continue  # not due after all (a guard: the record's due is exact): it lives on as a full Conn
            self._finish(c)

    # -- the end of a row -----------------------------------------------------------------------------------------
    def _finish(self, c: Conn) -> None:
        for d in (0, 1):
            if c.sides[d].est_at is not None:  # the capture ended before its ACK: most likely it was accepted
                self._confirm_established(c, d)
        if self.conns.get(c.key) is c:
            del self.conns[c.key]
            c.gone = True
            self.sink(c)
            if c is self.wanted:
                self.wanted_done = True
            # Remember how this row left each host, for the next row of the same 4-tuple (bounded).
            recent = self.recent
            o, r = c.o, c.r
            recent[c.key] = (
                c.n,
                c.orig_ep,
                o.state,
                o.isn,
                o.t_last,
                o.wshift,
                r.state,
                r.isn,
                r.t_last,
                r.wshift,
                c.end,
                c.first_index,
            )
            if (
                len(recent) > RECENT_ROWS
            ):  # keep the newer half (deleting from a dict's front one by one is slow)
                self.recent = dict(list(recent.items())[RECENT_ROWS // 2 :])

    def _continues(self, c: Conn, prev: _Prev, ds: int, fl: int, seq: int | None) -> None:
        """A new row of a 4-tuple that had an earlier one: does it continue that connection (Zeek ended the row
        by a timer, or at a RST/FIN while the sockets lived on)? Then carry what the wire cannot show again."""
        pv = _PrevRow(prev[0], prev[1], _Left(*prev[2:6]), _Left(*prev[6:10]), prev[10], prev[11])
        other = c.key >> 64 if pv.orig_ep == c.key & M64 else c.key & M64
        left = {pv.orig_ep: pv.orig, other: pv.resp}
        fep = c.orig_ep if ds == 0 else c.resp_ep
        mine = left.get(fep, _Left(None, None, None, None))
        same_syn = (
            bool(fl & SYN)
            and not fl & ACK
            and seq is not None
            and seq == mine.isn
            and mine.state == "SYN_SENT"
        )
        if not (same_syn or not fl & SYN or pv.end == "inactivity"):
            return  # a new connect() on a reused 4-tuple: a new connection, nothing carries over
        c.prev_n = pv.n
        c.prev_end = pv.end
        c.prev_first = pv.first_index
        for side, ep in ((c.o, c.orig_ep), (c.r, c.resp_ep)):
            was = left.get(ep)
            if was is None:
                continue
            side.prev_t = was.t_last
            if side.wshift is None and not fl & SYN:
                # The same connection: the scale its SYNs negotiated still applies (RFC 7323 §2.2: for the life
                # of the connection), as Wireshark's calculated window keeps it across Zeek's row split.
                side.wshift = was.wshift
        if same_syn:
            # The same SYN again after Zeek closed the row (e.g. at the host's own RST to an old duplicate's
            # SYN+ACK, RFC 9293 Figure 9): the socket never left SYN_SENT.
            c.sides[ds].state = "SYN_SENT"
            c.sides[ds].isn = seq

    def flush(self) -> None:
        """End of capture: every connection still held, in connection-number order."""
        full: list[Conn | _Held] = list(self.conns.values())
        if self._cfast is not None:
            full.extend(_Held(n, key) for n, key in self._cfast.expire_due(None))
        halves = [(_HALF_HEAD.unpack_from(h)[0], key, h) for key, h in self.half.items()]
        self.half.clear()
        self._half_buckets.clear()
        self._tq.clear()
        self._finish_in_order(full, halves, None)
