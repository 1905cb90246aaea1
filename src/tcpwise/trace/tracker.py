"""Connection tracker: decoded TCP packets -> one :class:`Conn` per connection, with its story.

Theory of operation
-------------------
Connections are keyed on the unordered pair of endpoints (see :mod:`tcpwise.trace.decode`). The *originator* is
the sender of the first bare SYN; when the capture starts mid-connection, it is guessed from the ports the way Zeek
does (a likely server port receives), and a first SYN+ACK always marks its sender as the responder. Direction
``0`` is originator -> responder, ``1`` the reverse.

Each packet updates, in this order (read RFC 9293 §3.10.7 for the receive-side rules the inference follows):

1. the Zeek endpoint state machine of the sender (INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED,
   RESET), which :mod:`tcpwise.trace.zeek` turns into ``conn_state``;
2. the Zeek ``history`` letters (upper case = originator; S H A D F R once per direction, S/F/R again when the
   sequence number changes; T and W on a 1, 10, 100, ... scale);
3. sequence-space accounting per direction: ``nxt`` is the highest sequence number seen; a segment at ``nxt``
   extends it, one beyond it leaves a *hole* (bytes the capture missed, or reordering), one inside a hole fills it
   (out of order), anything else re-sends seen bytes (a retransmission, never double-counted). A zero- or one-byte
   segment at ``nxt - 1`` is a keepalive probe (RFC 9293 §3.8.4; Linux sends seq = SND.UNA - 1), or a zero-window
   probe when the peer's last advertised window was zero;
4. the RFC 9293 state of *both* hosts as far as the packet proves it (``transitions``): a SYN moves its sender to
   SYN_SENT; a SYN+ACK its sender to SYN_RCVD and the SYN's sender to ESTABLISHED; the ACK of a SYN its owner to
   ESTABLISHED; a FIN moves its sender to FIN_WAIT_1 / LAST_ACK and the receiver to CLOSE_WAIT (or CLOSING /
   TIME_WAIT when it had closed first); the ACK of a FIN its sender on to FIN_WAIT_2 / TIME_WAIT / CLOSED; a RST
   closes both. TIME_WAIT's end (2*MSL) never shows on the wire, so the active closer stays in TIME_WAIT.

Hot path: a packet of a known connection that carries no SYN/FIN/RST, from a side already past the handshake, with
nothing pending acknowledgement, touches only counters and ``nxt`` inline in :meth:`Tracker.feed`; everything else
goes through :meth:`Tracker._slow`.

Streaming: a connection that has finished (a RST, or both FINs seen) is handed to the sink ``linger`` seconds of
capture time after its last packet (Zeek's tcp_close_delay idea, so retransmitted FINs and last ACKs still land on
it); a new SYN on a finished 4-tuple starts a new connection at once (reuse). Memory therefore follows the number
of open connections, not the size of the file. Connections still open when the capture ends are flushed last.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from tcpwise.trace.decode import AddrTable, Decoded

__all__ = [
    "Side",
    "Conn",
    "Tracker",
    "INACTIVE",
    "SYN_SENT",
    "SYN_ACK_SENT",
    "PARTIAL",
    "ESTABLISHED",
    "CLOSED",
    "RESET",
    "ZEEK_STATE_NAMES",
]

M32 = 0xFFFFFFFF
HALF = 1 << 31
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10

# Zeek's TCP endpoint states (analyzer/protocol/tcp/TCP_Endpoint.h), used only to derive conn_state.
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)
ZEEK_STATE_NAMES = ("INACTIVE", "SYN_SENT", "SYN_ACK_SENT", "PARTIAL", "ESTABLISHED", "CLOSED", "RESET")

# History bits: one per (letter, direction); letters repeat only by the rules in _hist_* below.
_LETTERS = "SHADFRTWIQ^"
_HBIT = {(ch, d): 1 << (i * 2 + d) for i, ch in enumerate(_LETTERS) for d in (0, 1)}
_BIT_D = (_HBIT["D", 0], _HBIT["D", 1])
_BIT_A = (_HBIT["A", 0], _HBIT["A", 1])
_CH_D = ("D", "d")
_CH_A = ("A", "a")

# Zeek likely_server_ports is built from the loaded analyzers; we approximate it with the well-known range plus
# common service ports so that mid-stream connections get the same orientation in the usual cases.
_SERVER_PORTS = frozenset(range(1, 1024)) | {
    1080, 1433, 1521, 2049, 2379, 3128, 3306, 3389, 4222, 5000, 5432, 5672, 5900, 6379, 6443, 8000, 8008, 8080,
    8081, 8443, 8888, 9000, 9042, 9090, 9092, 9200, 9300, 11211, 27017,
}  # fmt: skip


def likely_server_port(port: int) -> bool:
    return port in _SERVER_PORTS


class Side:
    """One direction of a connection, named after its sender."""

    __slots__ = (
        "pkts", "ipbytes", "z", "zprev", "nxt", "isn", "bytes", "holes", "rxmt", "rxmt_th", "zw", "zw_th",
        "ooo", "keepalive", "winprobe", "last_syn", "last_fin", "last_rst", "fin_end", "fin_t", "fin_pending",
        "syn_pending", "state", "fast", "win0", "rst_t", "rst_state", "est_at", "last_ack", "ctl_rxmt", "t_last",
    )  # fmt: skip

    def __init__(self) -> None:
        self.pkts = 0
        self.ipbytes = 0
        self.z = INACTIVE
        self.zprev = INACTIVE
        self.nxt: int | None = None  # highest sequence number seen + 1 (mod 2^32)
        self.isn: int | None = None
        self.bytes = 0  # payload bytes covered by the sequence range (incl. holes)
        self.holes: list[list[int]] = []  # [start, end) ranges not yet seen
        self.rxmt = 0
        self.rxmt_th = 1
        self.zw = 0
        self.zw_th = 1
        self.ooo = 0
        self.keepalive = 0
        self.winprobe = 0
        self.last_syn: int | None = None
        self.last_fin: int | None = None
        self.last_rst: int | None = None
        self.fin_end: int | None = None  # sequence number after our FIN
        self.fin_t: float | None = None
        self.fin_pending = False  # our FIN is not yet acknowledged
        self.syn_pending = False  # our SYN is not yet acknowledged
        self.state: str | None = None  # inferred RFC 9293 state of this host (None: not known)
        self.fast = False
        self.win0 = False  # our last advertised window was zero
        self.rst_t: float | None = None
        self.rst_state: str | None = None
        # SYN_SENT host whose SYN was answered by a SYN+ACK: (time, index in transitions) of that SYN+ACK. It
        # becomes ESTABLISHED there only once its own next segment proves it accepted it (an ACK, not a RST).
        self.est_at: tuple[float, int, int] | None = None
        self.t_last: float | None = None  # time of our last segment
        self.ctl_rxmt = 0  # SYNs and FINs sent again with the same sequence number (RTO / lost ACK)
        self.last_ack: int | None = None  # acknowledgment number of our last control / watched segment

    @property
    def missed(self) -> int:
        return sum((b - a) & M32 for a, b in self.holes)


class Conn:
    """A connection and everything the tracker learnt about it."""

    __slots__ = (
        "n", "key", "odir", "o", "r", "sides", "ts", "last", "hist", "hseen", "watch", "done", "flipped",
        "transitions", "trans_pkt", "partial", "syn_t", "synack_t", "ack_t", "orig_ep", "resp_ep", "rst_by", "first_fin",
        "first_index", "last_index", "rst_silence", "rst_reply", "peer_bytes_at_fin",
    )  # fmt: skip

    def __init__(self, n: int, key: tuple[int, int], odir: int, ts: float) -> None:
        self.n = n
        self.key = key
        self.odir = odir  # dirbit of the originator's packets
        self.o = Side()
        self.r = Side()
        self.sides = (self.o, self.r)
        self.ts = ts
        self.last = ts
        self.hist: list[str] = []
        self.hseen = 0
        self.watch = False  # something awaits acknowledgement: keep this connection on the slow path
        self.done = False
        self.flipped = False
        self.transitions: list[tuple[float, int, str, str]] = []  # (t, side 0=orig 1=resp, from, to)
        self.trans_pkt: list[int] = []  # number of the packet in the file that caused each transition
        self.partial = False
        self.syn_t: float | None = None
        self.synack_t: float | None = None
        self.ack_t: float | None = None
        lo, hi = key
        self.orig_ep = hi if odir else lo
        self.resp_ep = lo if odir else hi
        self.rst_by: int | None = None
        self.first_fin: int | None = None
        self.first_index = 0
        self.last_index = 0
        self.rst_silence: float | None = None  # how long the RST's sender had been silent before it
        self.rst_reply = False
        self.peer_bytes_at_fin = 0  # bytes the other side had sent when the first FIN appeared (half-close)

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
    """Zeek's logarithmic history entries: the letter is added at the 1st, 10th, 100th, ... occurrence."""
    cnt = getattr(s, count_attr) + 1
    setattr(s, count_attr, cnt)
    th = getattr(s, th_attr)
    if cnt == th:
        c.hist.append(letter if d == 0 else letter.lower())
        setattr(s, th_attr, th * 10)


def _by_n(c: Conn) -> int:
    return c.n


class Tracker:
    """Feed :class:`~tcpwise.trace.decode.Decoded` batches; finished connections go to ``sink``."""

    def __init__(self, sink: Callable[[Conn], None], addrs: AddrTable, linger: float = 5.0) -> None:
        self.sink = sink
        self.addrs = addrs
        self.linger = linger
        self.conns: dict[tuple[int, int], Conn] = {}
        self.closing: deque[Conn] = deque()
        self.count = 0
        self.now = 0.0
        self.peak = 0  # most connections held at once (streaming check)
        self._isn_jump = False  # the SYN being processed carries a new ISN for its sender
        self.want: int | None = None  # keep a reference to connection number ``want`` in ``wanted``
        self.wanted: Conn | None = None
        self.wanted_done = False  # the wanted connection is finished: a caller may stop reading
        self.fin_pno = 0  # packet that ended a connection by reusing its 4-tuple (ordering for --jobs merges)

    # -- the per-packet loop ----------------------------------------------------------------------------------
    def feed(self, dec: Decoded) -> None:
        conns = self.conns
        keys = dec.keys
        bconn: list[Conn | None] = [conns.get(k) for k in keys]
        slow = self._slow
        watch_ack = self._watch_ack
        data = self._data
        odd_ack = self._odd_ack
        zero = self._zero
        bit_d, bit_a, ch_d, ch_a = _BIT_D, _BIT_A, _CH_D, _CH_A
        for ts, fi, db, seq, ack, fl, win, pl, ipl, pno in zip(
            dec.ts,
            dec.fidx,
            dec.dirbit,
            dec.seq,
            dec.ack,
            dec.flags,
            dec.win,
            dec.plen,
            dec.iplen,
            dec.index,
            strict=False,
        ):
            c = bconn[fi]
            if c is None or fl & 7:
                slow(bconn, fi, keys[fi], ts, db, seq, ack, fl, win, pl, ipl, pno)
                continue
            d = db ^ c.odir
            s = c.r if d else c.o
            if not s.fast:
                slow(bconn, fi, keys[fi], ts, db, seq, ack, fl, win, pl, ipl, pno)
                continue
            if c.watch:
                watch_ack(c, d, s, ts, seq, ack, fl, win, pl, ipl, pno)
                continue
            c.last = s.t_last = ts
            c.last_index = pno
            s.pkts += 1
            s.ipbytes += ipl
            if pl:
                if seq == s.nxt:
                    s.nxt = (seq + pl) & M32
                    s.bytes += pl
                    if not c.hseen & bit_d[d]:
                        c.hseen |= bit_d[d]
                        c.hist.append(ch_d[d])
                else:
                    data(c, s, d, seq, pl, fl)
            elif seq != s.nxt:
                odd_ack(c, s, d, seq, fl)
            elif fl & ACK and not c.hseen & bit_a[d]:
                c.hseen |= bit_a[d]
                c.hist.append(ch_a[d])
            if win == 0:
                zero(c, s, d, fl)
            elif s.win0:
                s.win0 = False
        if dec.last_ts is not None:
            self.now = dec.last_ts
        if len(conns) > self.peak:
            self.peak = len(conns)
        self.expire(self.now)

    # -- sequence space ---------------------------------------------------------------------------------------
    def _data(self, c: Conn, s: Side, d: int, seq: int, pl: int, fl: int) -> None:
        """A payload-carrying segment that does not start at ``nxt``."""
        nxt = s.nxt
        if nxt is None:  # first segment we see from this side (mid-stream start)
            s.nxt = (seq + pl) & M32
            s.bytes += pl
            if not fl & (SYN | FIN | RST):
                c.add_hist("D", d)
            return
        end = (seq + pl) & M32
        ahead = (seq - nxt) & M32
        if ahead < HALF:  # beyond everything seen: the capture missed [nxt, seq) (or it comes later)
            if len(s.holes) < 64:
                s.holes.append([nxt, seq])
            s.bytes += ahead + pl
            s.nxt = end
            if not fl & (SYN | FIN | RST):
                c.add_hist("D", d)
            return
        beyond = (end - nxt) & M32
        if pl == 1 and ((nxt - seq) & M32) == 1 and not fl & (SYN | FIN | RST):
            self._probe(c, s, d)
            return
        for h in s.holes:  # does it fill a hole? (reordering, not a re-send)
            if ((seq - h[0]) & M32) < HALF and ((h[1] - end) & M32) < HALF:
                s.ooo += 1
                if seq == h[0]:
                    h[0] = end
                elif end == h[1]:
                    h[1] = seq
                if h[0] == h[1]:
                    s.holes.remove(h)
                if not fl & (SYN | FIN | RST):
                    c.add_hist("D", d)
                return
        if beyond and beyond < HALF:  # partly new: re-sent head plus fresh tail
            s.bytes += beyond
            s.nxt = end
        _scaled(c, s, "T", d, "rxmt", "rxmt_th")

    def _probe(self, c: Conn, s: Side, d: int) -> None:
        peer = c.sides[1 - d]
        if peer.win0:
            s.winprobe += 1  # RFC 9293 §3.8.6.1: probing a zero window
        else:
            s.keepalive += 1  # RFC 9293 §3.8.4 / RFC 1122 §4.2.3.6: keep-alive probe (seq = SND.NXT - 1)

    def _odd_ack(self, c: Conn, s: Side, d: int, seq: int, fl: int) -> None:
        """A segment without payload whose sequence number is not ``nxt``."""
        nxt = s.nxt
        if nxt is None:
            s.nxt = seq
        elif ((nxt - seq) & M32) == 1 and not fl & (SYN | FIN | RST):
            self._probe(c, s, d)
        elif ((seq - nxt) & M32) < HALF:  # the sender is ahead of what we saw: missed segments
            if len(s.holes) < 64:
                s.holes.append([nxt, seq])
            s.bytes += (seq - nxt) & M32
            s.nxt = seq
        if fl & ACK and not fl & (SYN | FIN | RST):
            c.add_hist("A", d)

    def _zero(self, c: Conn, s: Side, d: int, fl: int) -> None:
        """Zero window advertised. Zeek ignores it with or after a RST and after the peer's FIN."""
        s.win0 = True
        if fl & (RST | SYN):
            return
        if c.sides[1 - d].z != CLOSED and s.z != RESET:
            _scaled(c, s, "W", d, "zw", "zw_th")

    # -- everything else ---------------------------------------------------------------------------------------
    def _new(self, key: tuple[int, int], db: int, fl: int, ts: float, pno: int) -> Conn:
        lo, hi = key
        src = hi if db else lo
        dst = lo if db else hi
        flip = False
        if fl & SYN and fl & ACK:
            flip = True  # a SYN+ACK's sender is the responder
        elif not (fl & SYN):
            # Zeek TCPAnalyzer::WantConnection: guess the server from the ports for mid-stream starts.
            sp, dp = src & 0xFFFF, dst & 0xFFFF
            if likely_server_port(sp):
                flip = (not (fl & SYN) and sp < dp) if likely_server_port(dp) else True
        odir = db ^ 1 if flip else db
        self.count += 1
        c = Conn(self.count, key, odir, ts)
        c.first_index = pno
        if flip:
            c.flipped = True
            c.add_hist("^", 0)
        if fl & SYN and not fl & ACK:
            c.o.state = "CLOSED"
            c.r.state = "LISTEN"
        elif fl & SYN:
            c.o.state = "SYN_SENT"  # assumed: we did not see its SYN
            c.r.state = "LISTEN"
        else:
            c.partial = True
            c.o.state = c.r.state = "ESTABLISHED"  # assumed: the capture started mid-connection
        self.conns[key] = c
        if c.n == self.want:
            self.wanted = c
        return c

    def _slow(
        self,
        bconn: list[Conn | None],
        fi: int,
        key: tuple[int, int],
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
        if c is None:
            c = self._new(key, db, fl, ts, pno)
            bconn[fi] = c
            if fl == SYN and not pl:
                self._open(c, ts, seq, win, ipl)
                return
        elif fl & SYN and not fl & ACK:
            s0 = c.sides[db ^ c.odir]
            ended = c.done or (c.o.fin_end is not None and c.r.fin_end is not None)
            if ended and seq != s0.isn:
                # RFC 9293 §3.10.7.4 / RFC 6191: a new SYN on a finished 4-tuple is a new incarnation.
                self.fin_pno = pno
                self._finish(c)
                c = self._new(key, db, fl, ts, pno)
                bconn[fi] = c
        d = db ^ c.odir
        s = c.sides[d]
        p = c.sides[1 - d]
        # The two control segments every connection has get straight-line handlers (same results as below).
        if fl == SYN | ACK:
            if (
                d == 1 and not pl and win and s.isn is None and s.z == INACTIVE and p.z == SYN_SENT
                and p.state == "SYN_SENT" and s.state == "LISTEN" and p.syn_pending
                and ack == ((p.isn + 1) & M32)  # type: ignore[operator]
            ):  # fmt: skip
                self._synack(c, s, p, ts, seq, ack, ipl, pno)
                return
        elif (
            fl & (SYN | FIN | RST | ACK) == FIN | ACK and win and not s.win0 and s.fin_end is None
            and seq == s.nxt and (s.z == ESTABLISHED or s.z == PARTIAL) and s.est_at is None
        ):  # fmt: skip
            self._first_fin(c, d, s, p, ts, seq, ack, pl, ipl, pno)
            return
        c.last = ts
        c.last_index = pno
        s.pkts += 1
        s.ipbytes += ipl
        syn, fin, rst = fl & SYN, fl & FIN, fl & RST
        self._isn_jump = False
        if rst and c.rst_silence is None and s.t_last is not None:
            # How long the RST's sender had been silent, and whether the peer spoke in between (then the RST
            # answers it: a host that lost the connection; otherwise the sender aborted on its own, e.g. idle kill).
            c.rst_silence = ts - s.t_last
            rtt = (c.ack_t - c.syn_t) if c.ack_t is not None and c.syn_t is not None else 0.0
            c.rst_reply = p.t_last is not None and p.t_last > s.t_last and ts - p.t_last <= max(1.0, 4 * rtt)
        s.t_last = ts

        ctl = fl & (SYN | FIN | RST)
        if (
            ctl or s.z < PARTIAL
        ):  # without SYN/FIN/RST, Zeek's machine moves only from INACTIVE/SYN_SENT states
            self._zeek_update(c, d, s, p, fl, pl)
        if ctl:
            self._history(c, d, s, seq, fl, pl)
        elif pl:
            c.add_hist("D", d)
        elif fl & ACK:
            c.add_hist("A", d)

        # -- sequence space --
        if syn:
            if s.isn is None or seq != s.isn:
                self._isn_jump = s.isn is not None and not fl & ACK
                s.isn = seq
                s.nxt = (seq + 1) & M32
                s.holes.clear()
            if pl:
                self._data(c, s, d, (seq + 1) & M32, pl, fl)
        elif pl:
            if seq == s.nxt:
                s.nxt = (seq + pl) & M32
                s.bytes += pl
            else:
                self._data(c, s, d, seq, pl, fl)
        elif s.nxt is None or seq != s.nxt:
            self._odd_ack(c, s, d, seq, fl)
        if fin:
            fe = (seq + (1 if syn else 0) + pl + 1) & M32
            if s.nxt is not None and ((fe - s.nxt) & M32) < HALF:
                s.nxt = fe
            if s.fin_end is None:
                s.fin_end = fe
                s.fin_t = ts
                s.fin_pending = True
        if win == 0:
            self._zero(c, s, d, fl)
        elif s.win0:
            s.win0 = False

        self._states(c, d, s, p, ts, seq, ack, fl)
        if fl & ACK:
            s.last_ack = ack
        c.watch = c.o.syn_pending or c.r.syn_pending or c.o.fin_pending or c.r.fin_pending
        s.fast = s.nxt is not None and s.z >= PARTIAL
        p.fast = p.nxt is not None and p.z >= PARTIAL
        if not c.done and (rst or (c.o.fin_end is not None and c.r.fin_end is not None and not c.watch)):
            c.done = True
            self.closing.append(c)

    def _synack(self, c: Conn, s: Side, p: Side, ts: float, seq: int, ack: int, ipl: int, pno: int) -> None:
        """The responder's SYN+ACK answering the originator's SYN (what :meth:`_slow` does for it, directly)."""
        c.last = s.t_last = ts
        c.last_index = pno
        s.pkts += 1
        s.ipbytes += ipl
        p.zprev, p.z = SYN_SENT, ESTABLISHED  # Zeek: the SYN-ACK establishes both endpoints
        s.zprev, s.z = INACTIVE, ESTABLISHED
        bit = _HBIT["S", 1]  # S and H share Zeek's one "SYN seen" bit per direction
        if not c.hseen & bit:
            c.hseen |= bit
            c.hist.append("h")
        s.last_syn = s.isn = seq
        s.nxt = (seq + 1) & M32
        if c.synack_t is None:
            c.synack_t = ts
        c._set(1, "SYN_RCVD", ts)
        s.syn_pending = True
        p.syn_pending = False
        p.est_at = (ts, len(c.transitions), pno)
        s.last_ack = ack
        c.watch = True
        s.fast = True
        p.fast = p.nxt is not None

    def _first_fin(
        self, c: Conn, d: int, s: Side, p: Side, ts: float, seq: int, ack: int, pl: int, ipl: int, pno: int
    ) -> None:
        """A side's first FIN(+ACK), in order, past the handshake (what :meth:`_slow` does for it, directly)."""
        c.last = s.t_last = ts
        c.last_index = pno
        s.pkts += 1
        s.ipbytes += ipl
        s.zprev, s.z = s.z, CLOSED
        if p.z == RESET and p.zprev == CLOSED:
            p.zprev, p.z = RESET, CLOSED
        end = (seq + pl) & M32
        c.add_hist("F", d)
        s.last_fin = end
        s.bytes += pl
        fe = (end + 1) & M32
        s.nxt = s.fin_end = fe
        s.fin_t = ts
        s.fin_pending = True
        self._acks(c, d, p, ts, ack, 0)
        self._fin_states(c, d, s, p, ts, ack)
        s.last_ack = ack
        o, r = c.o, c.r
        c.watch = o.syn_pending or r.syn_pending or o.fin_pending or r.fin_pending
        s.fast = True
        if not c.done and o.fin_end is not None and r.fin_end is not None and not c.watch:
            c.done = True
            self.closing.append(c)

    def _open(self, c: Conn, ts: float, seq: int, win: int, ipl: int) -> None:
        """The usual first packet: a bare SYN opening a new connection (what :meth:`_slow` would do, directly)."""
        o = c.o
        o.pkts = 1
        o.t_last = ts
        o.ipbytes = ipl
        o.z = SYN_SENT
        c.hseen |= _HBIT["S", 0]
        c.hist.append("S")
        o.last_syn = o.isn = seq
        o.nxt = (seq + 1) & M32
        o.syn_pending = True
        o.state = "SYN_SENT"
        c.transitions.append((ts, 0, "CLOSED", "SYN_SENT"))
        c.trans_pkt.append(c.first_index)
        c.syn_t = ts
        c.watch = True
        if win == 0:
            o.win0 = True

    def _zeek_update(self, c: Conn, d: int, s: Side, p: Side, fl: int, pl: int) -> None:
        """Zeek's per-endpoint state machine (TCP_Analyzer::UpdateStateMachine and its Update*State helpers).

        ``zprev`` keeps the state before the last change, as Zeek's ``prev_state`` does."""
        z = s.z
        if z == INACTIVE:
            new = INACTIVE
            if fl & SYN:
                if d == 0:
                    new = SYN_ACK_SENT if fl & ACK else SYN_SENT
                else:
                    if p.z == SYN_SENT:
                        p.zprev, p.z = p.z, ESTABLISHED
                    new = ESTABLISHED
            if fl & FIN:
                new = CLOSED
            if fl & RST:
                new = RESET
            if new == INACTIVE:
                if d == 1 and pl == 0 and c.o.z == SYN_SENT:
                    return  # an ACK of the SYN before the SYN+ACK: not a partial connection
                new = ESTABLISHED if fl & ACK and p.z == ESTABLISHED else PARTIAL
            s.zprev, s.z = z, new
        elif z == SYN_SENT or z == SYN_ACK_SENT:
            if fl & RST:
                s.zprev, s.z = z, RESET
            elif fl & FIN:
                s.zprev, s.z = z, CLOSED
        elif z == PARTIAL or z == ESTABLISHED:
            if fl & SYN and z == PARTIAL and p.z == INACTIVE:
                s.zprev, s.z = z, (SYN_ACK_SENT if fl & ACK else SYN_SENT)
            if fl & RST:
                s.zprev, s.z = s.z, RESET
            elif fl & FIN:
                s.zprev, s.z = s.z, CLOSED
                if p.z == RESET and p.zprev == CLOSED:
                    p.zprev, p.z = RESET, CLOSED  # the peer's FIN then RST was a normal close after all
        elif z == CLOSED:
            if fl & RST:
                s.zprev, s.z = z, RESET

    def _history(self, c: Conn, d: int, s: Side, seq: int, fl: int, pl: int) -> None:
        """Zeek's update_history: letters for control packets, D/A for the rest."""
        nset = (1 if fl & SYN else 0) + (1 if fl & FIN else 0) + (1 if fl & RST else 0)
        if nset > 1:
            c.add_hist("I" if fl & FIN and fl & RST else "Q", d)
        elif nset == 1:
            if fl & SYN:
                code = "H" if fl & ACK else "S"
                bit = _HBIT["S", d]  # S and H share one "SYN seen" bit per direction
                if not c.hseen & bit:
                    c.hseen |= bit
                    c.hist.append(code if d == 0 else code.lower())
                elif seq != s.last_syn:
                    c.hist.append(code if d == 0 else code.lower())
                else:
                    s.ctl_rxmt += 1
                s.last_syn = seq
            elif fl & FIN:
                end = (seq + pl) & M32  # a FIN's number comes after its data
                if c.hseen & _HBIT["F", d] and end != s.last_fin:
                    c.hist.append("F" if d == 0 else "f")
                elif c.hseen & _HBIT["F", d]:
                    s.ctl_rxmt += 1
                else:
                    c.add_hist("F", d)
                s.last_fin = end
            else:
                if c.hseen & _HBIT["R", d] and seq != s.last_rst:
                    c.hist.append("R" if d == 0 else "r")
                else:
                    c.add_hist("R", d)
                s.last_rst = seq
        elif pl:
            c.add_hist("D", d)
        elif fl & ACK:
            c.add_hist("A", d)

    def _states(self, c: Conn, d: int, s: Side, p: Side, ts: float, seq: int, ack: int, fl: int) -> None:
        """Infer both hosts' RFC 9293 states from one packet sent by side ``d``."""
        syn, fin, rst, ackf = fl & SYN, fl & FIN, fl & RST, fl & ACK
        if s.est_at is not None and not rst:
            self._confirm_established(c, d)
        if rst:
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
            accepted = s.nxt is None or ((seq - s.nxt) & M32) < HALF or seq == p.last_ack
            if accepted and p.state not in (None, "CLOSED", "LISTEN"):
                c._set(1 - d, "CLOSED", ts)
                p.syn_pending = p.fin_pending = False
                p.est_at = None
            s.syn_pending = s.fin_pending = False
            return
        if syn and not ackf:
            if c.syn_t is None and d == 0:
                c.syn_t = ts
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
        if fin and s.fin_t == ts and s.fin_pending:
            self._fin_states(c, d, s, p, ts, ack)

    def _fin_states(self, c: Conn, d: int, s: Side, p: Side, ts: float, ack: int) -> None:
        """Side ``d`` sent its first FIN: its own close and the receiver's (RFC 9293 §3.10.4, §3.10.7.4)."""
        if c.first_fin is None:
            c.first_fin = d
            c.peer_bytes_at_fin = p.bytes
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

    def _watch_ack(
        self,
        c: Conn,
        d: int,
        s: Side,
        ts: float,
        seq: int,
        ack: int,
        fl: int,
        win: int,
        pl: int,
        ipl: int,
        pno: int,
    ) -> None:
        """A segment without SYN/FIN/RST on a connection waiting for the ACK of a SYN or FIN (the common
        handshake-completing and FIN-acknowledging packets): :meth:`_slow` minus what cannot apply."""
        c.last = s.t_last = ts
        c.last_index = pno
        s.pkts += 1
        s.ipbytes += ipl
        if pl:
            if seq == s.nxt:
                s.nxt = (seq + pl) & M32
                s.bytes += pl
            else:
                self._data(c, s, d, seq, pl, fl)
            c.add_hist("D", d)
        elif seq != s.nxt:
            self._odd_ack(c, s, d, seq, fl)
        elif fl & ACK:
            c.add_hist("A", d)
        if win == 0:
            self._zero(c, s, d, fl)
        elif s.win0:
            s.win0 = False
        if s.est_at is not None:
            self._confirm_established(c, d)
        o, r = c.o, c.r
        if fl & ACK:
            s.last_ack = ack
            self._acks(c, d, r if d == 0 else o, ts, ack, 0)
        c.watch = o.syn_pending or r.syn_pending or o.fin_pending or r.fin_pending
        if not c.watch and not c.done and o.fin_end is not None and r.fin_end is not None:
            c.done = True
            self.closing.append(c)

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

    # -- expiry ---------------------------------------------------------------------------------------------------
    def _finish(self, c: Conn) -> None:
        for d in (0, 1):
            if c.sides[d].est_at is not None:  # the capture ended before its ACK: most likely it was accepted
                self._confirm_established(c, d)
        if self.conns.get(c.key) is c:
            del self.conns[c.key]
            self.sink(c)
            if c is self.wanted:
                self.wanted_done = True

    def expire(self, now: float) -> None:
        """Hand finished connections idle for ``linger`` seconds of capture time to the sink."""
        q = self.closing
        if not q:
            return
        # Each connection on its own (no head-of-line wait behind a connection that got more packets), in
        # connection-number order: that order depends only on each connection's own packets, so workers that
        # track disjoint sets of connections (--jobs) finish each one exactly when a single tracker would.
        linger = self.linger
        due = [c for c in q if c.last + linger < now]
        if not due:
            return
        self.closing = deque(c for c in q if not c.last + linger < now)
        due.sort(key=_by_n)
        for c in due:
            self._finish(c)

    def flush(self) -> None:
        """End of capture: every connection still held, in order of first packet."""
        for c in sorted(self.conns.values(), key=lambda c: c.n):
            self._finish(c)
        self.closing.clear()
