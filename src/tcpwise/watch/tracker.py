"""Socket lifecycles from the TCP tracepoint stream: one :class:`Conn` per kernel socket, a record when it ends.

Theory of operation
-------------------
Every record names its socket by ``skaddr`` (the kernel's ``struct sock *``). A socket's story starts with its
first state change — ``CLOSE -> SYN_SENT`` (``connect()``: a client), ``LISTEN -> SYN_RECV`` (the full socket a
listener creates when the handshake's last ACK arrives, inet_csk_clone_lock: a server), ``CLOSE -> LISTEN``
(``listen()``) or, for a socket older than the watch, whatever comes first (``partial``) — and ends when it
reaches ``TCP_CLOSE``. The kernel frees and reuses socket memory at once, so a state change *out of* CLOSE on an
address whose story has ended starts a new story.

What the tracepoints say and what we derive (net/ipv4/tcp.c tcp_set_state, tcp_input.c, tcp_minisocks.c):

- closer: ``-> FIN_WAIT_1`` means we sent the first FIN (``local``); ``ESTABLISHED -> CLOSE_WAIT`` means the peer
  did (``remote``); ``FIN_WAIT_1 -> CLOSING`` is a simultaneous close (both sides sent FIN first; each holds
  TIME_WAIT, so both records say ``local``).
- TIME_WAIT is a separate kernel object (``inet_timewait_sock``) that ``inet_sock_set_state`` never reports: the
  full socket goes ``FIN_WAIT_2 -> CLOSE`` or ``CLOSING -> CLOSE`` when tcp_time_wait() hands the connection over.
  ``CLOSING -> CLOSE`` means TIME_WAIT (the peer's FIN was already in). ``FIN_WAIT_2 -> CLOSE`` means TIME_WAIT
  when the socket had been in FIN_WAIT_2 for a while (the peer's FIN just arrived); right after
  ``FIN_WAIT_1 -> FIN_WAIT_2`` it is ambiguous: either a FIN+ACK arrived (TIME_WAIT) or, for a closed (orphaned)
  socket, a bare ACK of our FIN, and tcp_rcv_state_process moved the connection to a timewait socket *still in
  FIN_WAIT_2*. When the peer is on loopback (same namespace: its FIN arrives the moment it is sent) and traced,
  its own FIN decides: already sent -> TIME_WAIT; not yet -> the record waits (up to ``tcp_fin_timeout``) for it
  and then records ``FIN_WAIT_2 -> TIME_WAIT`` at that time. Otherwise the record ends with ``end_reason``
  ``handoff`` and ``time_wait`` null.
- resets: ``tcp_receive_reset`` fires before the state change it causes, in the state the socket was in;
  ``tcp_send_reset`` for an abortive close fires *after* ``-> CLOSE`` (tcp_close sets the state, then sends), so
  a sent reset in CLOSE is attributed to the state before it. A record is emitted ``grace`` after the socket
  reached CLOSE (or at ``tcp_destroy_sock``) so trailing resets are attached.
- process and namespace: only events in process context (``common_flags`` without hard/soft-IRQ/NMI bits) name
  the task that owns the socket — ``connect()``, ``listen()``, ``close()``, or a backlog run by release_sock().
  Softirq events (every received segment) run on behalf of whichever task was interrupted. A socket first seen
  in softirq (a server's accepted socket) gets its process from its next process-context event (usually the
  application's ``close()``), its namespace from that, from its loopback peer (loopback never leaves a
  namespace), or from the one traced listener it was born from; otherwise it stays unknown.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from tcpwise.linux import tcpevents as te
from tcpwise.linux.ringbuf import IRQ_CONTEXT
from tcpwise.linux.tasks import TaskCache
from tcpwise.vocab import kernel_state_name
from tcpwise.watch.record import ConnRecord, ResetInfo, Transition, fmt_addr

__all__ = ["Tracker", "Conn", "Filter"]

EST, SYN_SENT, SYN_RECV, FW1, FW2, TW, CLOSE, CW, LA, LISTEN, CLOSING, NEW_SYN_RECV = range(1, 13)
_FIN_SENT_STATES = (FW1, LA, CLOSING)  # entering one of these means this side sent its FIN
# States whose entry _close_roles and _where look at (they do nothing for any other new state).
_CLOSE_ROLE_STATES = frozenset((*_FIN_SENT_STATES, CW))
_WHERE_STATES = frozenset((EST, LISTEN, SYN_RECV))
_TCP = socket.IPPROTO_TCP
_S_SK, _S_OLD, _S_NEW, _S_SPORT, _S_DPORT, _S_PROTO = (
    te.S_SK,
    te.S_OLD,
    te.S_NEW,
    te.S_SPORT,
    te.S_DPORT,
    te.S_PROTO,
)
_MS = 1_000_000
_SAME_BURST_NS = _MS  # FIN_WAIT_1 -> FIN_WAIT_2 -> CLOSE within this: one segment did both (ambiguous)
_NAMES = [kernel_state_name(i) for i in range(16)]
_V4_LOOP = b"\x7f"
_V6_LOOP = b"\x00" * 15 + b"\x01"
_V4MAPPED = b"\x00" * 10 + b"\xff\xff"


def _is_loopback(family: int, raw: bytes) -> bool:
    if family == socket.AF_INET:
        return raw[:1] == _V4_LOOP
    return raw[:16] == _V6_LOOP or (raw[:12] == _V4MAPPED and raw[12:13] == _V4_LOOP)


class Conn:
    """The live state of one kernel socket."""

    __slots__ = (
        "sk",
        "family",
        "laddr",
        "lport",
        "raddr",
        "rport",
        "netns",
        "pid",
        "comm",
        "role",
        "t0",
        "trans",
        "resets",
        "retrans",
        "synack_retrans",
        "closer",
        "simultaneous",
        "partial",
        "state",
        "end_t",
        "destroyed",
        "fin_t",
        "hold_until",
        "time_wait",
        "end_reason",
        "key",
        "emitted",
        "probed",
    )

    def __init__(self, sk: int, t: int, family: int) -> None:
        self.sk = sk
        self.family = family
        self.laddr = b""
        self.lport = 0
        self.raddr = b""
        self.rport = 0
        self.netns: int | None = None
        self.pid: int | None = None
        self.comm: str | None = None
        self.role = "unknown"
        self.t0 = t
        self.trans: list[tuple[int, int, int]] = []
        self.resets: list[tuple[int, str, int, int | None]] = []
        self.retrans = 0
        self.synack_retrans = 0
        self.closer = "none"
        self.simultaneous = False
        self.partial = False
        self.state = 0
        self.end_t: int | None = None
        self.destroyed = False
        self.fin_t: int | None = None  # when this side sent its FIN
        self.hold_until: int | None = (
            None  # waiting for the local peer's FIN (FIN_WAIT_2 handed to a tw sock)
        )
        self.time_wait: bool | None = False
        self.end_reason = ""
        self.key: tuple[int, bytes, int, bytes, int] | None = None
        self.emitted = False
        self.probed = False


class Filter:
    """Which records to emit. ``None`` fields do not filter."""

    def __init__(
        self,
        ports: set[int] | None = None,
        addrs: set[str] | None = None,
        pids: set[int] | None = None,
        comms: set[str] | None = None,
        netns: int | None = None,
        states: set[str] | None = None,
        listeners: bool = True,
    ) -> None:
        self.ports = ports
        self.addrs = addrs
        self.pids = pids
        self.comms = comms
        self.netns = netns
        self.states = states
        self.listeners = listeners

    def match_conn(self, c: Conn) -> bool:
        """The checks a Conn can answer without building its record (cheap; match() decides the rest)."""
        if self.ports is not None and c.lport not in self.ports and c.rport not in self.ports:
            return False
        if self.netns is not None and c.netns != self.netns:
            return False
        if self.pids is not None and c.pid not in self.pids:
            return False
        if self.comms is not None and c.comm not in self.comms:
            return False
        return self.listeners or c.role != "listener"

    def match(self, r: ConnRecord) -> bool:
        if self.ports is not None and r.lport not in self.ports and r.rport not in self.ports:
            return False
        if self.addrs is not None and r.laddr not in self.addrs and r.raddr not in self.addrs:
            return False
        if self.pids is not None and r.pid not in self.pids:
            return False
        if self.comms is not None and r.comm not in self.comms:
            return False
        if self.netns is not None and r.netns != self.netns:
            return False
        if self.states is not None and not self.states.intersection(r.states()):
            return False
        return self.listeners or r.role != "listener"


Sink = Callable[[ConnRecord], None]


class Tracker:
    """Feed it time-ordered tracepoint records (:meth:`feed`), call :meth:`advance` after each batch."""

    def __init__(
        self,
        ids: dict[str, int],
        sink: Sink,
        wall_offset: float,
        filt: Filter | None = None,
        tasks: TaskCache | None = None,
        reset_reasons: dict[int, str] | None = None,
        fin_timeout_s: float = 60.0,
        grace_ms: float = 10.0,
        metrics: Any = None,
        limit: int = 1_000_000,
        probe: Callable[[int, bytes, int, bytes, int], int | None] | None = None,
    ) -> None:
        self.sink = sink
        self.wall = wall_offset  # epoch seconds = monotonic ns / 1e9 + wall
        self.filt = filt or Filter()
        self.tasks = tasks or TaskCache()
        self.reasons = reset_reasons or {}
        self.fin_timeout_ns = int(fin_timeout_s * 1e9)
        self.grace_ns = int(grace_ms * _MS)
        self.metrics = metrics
        self.limit = limit
        # probe(family, laddr, lport, raddr, rport) -> the inode of the namespace (among those the caller can
        # look into) that holds this 4-tuple right now, or None (sock_diag exact lookup). Used only for sockets
        # whose namespace the events could not name.
        self.probe = probe
        self.probes = 0
        self.conns: dict[int, Conn] = {}
        self.by_key: dict[tuple[int, bytes, int, bytes, int], Conn] = {}
        self.ended: list[Conn] = []  # reached CLOSE, waiting for grace / destroy / the peer's FIN
        self.listeners: dict[tuple[int, int], list[Conn]] = {}
        self.synack: dict[tuple[int, bytes, int, bytes, int], int] = {}
        # 4-tuple -> (end time, netns, FIN time) of sockets already emitted: their peers may still ask.
        self.recent: dict[tuple[int, bytes, int, bytes, int], tuple[int, int | None, int | None]] = {}
        self.now = 0
        self.emitted = 0
        self.filtered = 0
        self.unknown_netns = 0
        self.stray_resets = 0
        self.records = 0
        self.handlers: dict[int, Callable[[int, tuple[Any, ...]], None]] = {}
        for kind, fn in (
            ("state", self._state),
            ("send_reset", self._send_reset),
            ("receive_reset", self._receive_reset),
            ("retransmit", self._retransmit),
            ("retransmit_synack", self._synack),
            ("destroy", self._destroy),
        ):
            if kind in ids:
                self.handlers[ids[kind]] = fn

    # -- input ------------------------------------------------------------------------------------------
    def feed(self, records: list[tuple[int, tuple[Any, ...]]]) -> None:
        get = self.handlers.get
        for t, rec in records:
            h = get(rec[0])
            if h is not None:
                h(t, rec)
        self.records += len(records)
        if records:
            self.now = max(self.now, records[-1][0])

    def _ctx(self, c: Conn, t: int, rec: tuple[Any, ...]) -> None:
        """A process-context event names the task owning the socket: take its process and namespace."""
        if rec[te.FLAGS] & IRQ_CONTEXT:
            return
        info = self.tasks.get(rec[te.PID], t)
        if info is None:
            return
        if c.pid is None or c.pid != info[0]:
            c.pid, c.comm = info[0], info[1]
        if info[2] is not None:
            c.netns = info[2]

    def _new(self, sk: int, t: int, rec: tuple[Any, ...]) -> Conn:
        old = self.conns.get(sk)
        if old is not None:
            self._finish(old)
        c = Conn(sk, t, rec[te.S_FAMILY])
        self.conns[sk] = c
        if len(self.conns) > self.limit:
            self._shed(t)
        return c

    def _shed(self, t: int) -> None:
        """Too many live sockets (events were lost): emit the oldest tenth as open."""
        victims = sorted(self.conns.values(), key=lambda c: c.t0)[: max(1, len(self.conns) // 10)]
        for c in victims:
            self._emit(c, open_=True)

    def _set_tuple(self, c: Conn, rec: tuple[Any, ...]) -> None:
        fam = rec[te.S_FAMILY]
        if fam == socket.AF_INET6:
            la, ra = rec[te.S_SADDR6], rec[te.S_DADDR6]
        else:
            la, ra = rec[te.S_SADDR], rec[te.S_DADDR]
        c.family = fam
        if rec[te.S_SPORT]:
            c.lport = rec[te.S_SPORT]
        c.rport = rec[te.S_DPORT]
        c.laddr, c.raddr = la, ra
        if c.lport and c.rport:
            key = (fam, la, c.lport, ra, c.rport)
            if c.key != key:
                if c.key is not None and self.by_key.get(c.key) is c:
                    del self.by_key[c.key]
                c.key = key
                self.by_key[key] = c
                n = self.synack.pop(key, 0)
                if n:
                    c.synack_retrans += n

    def _state(self, t: int, rec: tuple[Any, ...]) -> None:
        # The hottest handler (every transition of every socket): field indexes and the states that need the
        # helpers below are module constants, and a helper is called only when its states are involved.
        if rec[_S_PROTO] != _TCP:
            return
        sk, old, new = rec[_S_SK], rec[_S_OLD], rec[_S_NEW]
        c = self.conns.get(sk)
        if c is None or c.end_t is not None:
            c = self._born(sk, t, rec, old, new)
        if rec[_S_SPORT] != c.lport or rec[_S_DPORT] != c.rport or c.key is None:
            self._set_tuple(c, rec)
        c.trans.append((t, old, new))
        c.state = new
        m = self.metrics
        if m is not None and not (new == CLOSE and old in (FW2, CLOSING)):
            m.transition(old, new)  # a hand-off to a timewait socket is counted once classified
        if not rec[1] & IRQ_CONTEXT:
            self._ctx(c, t, rec)
        if new in _CLOSE_ROLE_STATES:
            self._close_roles(c, t, old, new)
        if new in _WHERE_STATES:
            self._where(c, old, new)
        if new == CLOSE:
            c.end_t = t
            self.ended.append(c)

    def _born(self, sk: int, t: int, rec: tuple[Any, ...], old: int, new: int) -> Conn:
        """A socket we have not seen: its role follows from its first transition."""
        c = self._new(sk, t, rec)
        if old == CLOSE and new == SYN_SENT:
            c.role = "client"
        elif old == LISTEN and new == SYN_RECV:
            c.role = "server"
        elif new == LISTEN or old == LISTEN:
            c.role = "listener"
            c.partial = old != CLOSE
        else:
            c.partial = True
        return c

    def _close_roles(self, c: Conn, t: int, old: int, new: int) -> None:
        """Who sent the first FIN (and so holds TIME_WAIT), and whether both did at once."""
        if new in _FIN_SENT_STATES and c.fin_t is None:
            c.fin_t = t
            self._peer_fin(c, t)
        if new == FW1 and c.closer == "none":
            c.closer = "local"
        elif new == CW and c.closer == "none":
            c.closer = "remote"
        elif old == FW1 and new == CLOSING:
            c.simultaneous = True

    def _where(self, c: Conn, old: int, new: int) -> None:
        """The socket's namespace, when this transition can tell (a listener's child, or a probe)."""
        if new == EST and c.netns is None and self.probe is not None and not c.probed:
            self._probe(c)
        if new == LISTEN:
            self.listeners.setdefault((c.family, c.lport), []).append(c)
        elif new == SYN_RECV and old == LISTEN and c.netns is None:
            c.netns = self._listener_netns(c)

    def seed_listener(self, family: int, laddr: bytes, lport: int, netns: int) -> None:
        """A listener that existed before the tracepoints were on (found by :func:`tcpwise.watch.live.seed`).

        A listener's child is placed in a namespace by the listeners on its port: one that predates the watch,
        in another namespace on the same port (every container's :8080), would otherwise be unknown and the
        child credited to the one the watch saw open. A seeded listener has no kernel address, so its close is
        never matched to it: it stays, which only ever makes the placement more careful (two candidates: the
        namespace is left to the sock_diag probe, or unknown), never wrong."""
        c = Conn(0, 0, family)
        c.laddr, c.lport, c.netns, c.role = laddr, lport, netns, "listener"
        self.listeners.setdefault((family, lport), []).append(c)

    def _listener_netns(self, c: Conn) -> int | None:
        cands = {
            lc.netns
            for lc in self.listeners.get((c.family, c.lport), ())
            if lc.end_t is None and (lc.laddr == c.laddr or not any(lc.laddr))
        }
        return cands.pop() if len(cands) == 1 else None

    def _peer_fin(self, c: Conn, t: int) -> None:
        """``c`` sent its FIN: a local peer waiting in a FIN_WAIT_2 timewait socket now enters TIME_WAIT."""
        if c.key is None:
            return
        fam, la, lp, ra, rp = c.key
        if not (_is_loopback(fam, la) and _is_loopback(fam, ra)):
            return  # see _fin_wait_2_end: only a loopback FIN arrives when it is sent
        peer = self.by_key.get((fam, ra, rp, la, lp))
        if peer is not None and peer.hold_until is not None and not peer.emitted:
            peer.trans.append((t, FW2, TW))
            peer.time_wait = True
            peer.end_reason = "fin"
            peer.hold_until = None
            if self.metrics is not None:
                self.metrics.transition(FW2, TW)

    def _send_reset(self, t: int, rec: tuple[Any, ...]) -> None:
        sk = rec[te.R_SK]
        c = self.conns.get(sk) if sk else None
        reason = self.reasons.get(rec[te.R_REASON])
        st = rec[te.R_STATE]
        if c is None:
            self.stray_resets += 1
            if self.metrics is not None:
                self.metrics.reset("sent", st if st else 0, reason)
            return
        if st == CLOSE and c.trans and c.trans[-1][2] == CLOSE:
            st = c.trans[-1][1]  # tcp_close set CLOSE first, then sent the RST: report the state before
        c.resets.append((t, "sent", st, rec[te.R_REASON]))
        if self.metrics is not None:
            self.metrics.reset("sent", st, reason)
        self._ctx(c, t, rec)

    def _receive_reset(self, t: int, rec: tuple[Any, ...]) -> None:
        c = self.conns.get(rec[te.X_SK])
        if c is None:
            self.stray_resets += 1
            return
        c.resets.append((t, "received", c.state, None))
        if self.metrics is not None:
            self.metrics.reset("received", c.state, None)

    def _retransmit(self, t: int, rec: tuple[Any, ...]) -> None:
        c = self.conns.get(rec[te.T_SK])
        if c is not None:
            c.retrans += 1
        if self.metrics is not None:
            self.metrics.retransmit(rec[te.T_STATE])

    def _synack(self, t: int, rec: tuple[Any, ...]) -> None:
        fam = rec[te.Y_FAMILY]
        if fam == socket.AF_INET6:
            la, ra = rec[te.Y_SADDR6], rec[te.Y_DADDR6]
        else:
            la, ra = rec[te.Y_SADDR], rec[te.Y_DADDR]
        key = (fam, la, rec[te.Y_SPORT], ra, rec[te.Y_DPORT])
        if len(self.synack) > 65536:
            self.synack.clear()
        self.synack[key] = self.synack.get(key, 0) + 1
        if self.metrics is not None:
            self.metrics.retransmit(SYN_RECV)

    def _destroy(self, t: int, rec: tuple[Any, ...]) -> None:
        c = self.conns.get(rec[te.X_SK])
        if c is None:
            return
        self._ctx(c, t, rec)
        c.destroyed = True
        if c.end_t is None:
            c.end_t = t
            self.ended.append(c)

    # -- output -----------------------------------------------------------------------------------------
    def advance(self, now_ns: int | None = None) -> None:
        """Emit the sockets that ended at least ``grace`` ago (or were destroyed); expire waits."""
        now = self.now if now_ns is None else max(now_ns, self.now)
        self.now = now
        keep: list[Conn] = []
        for c in self.ended:
            if c.emitted:
                continue  # already emitted (its address was reused)
            assert c.end_t is not None
            if c.hold_until is not None:
                if now < c.hold_until:
                    keep.append(c)
                    continue
                c.hold_until = None
            elif now - c.end_t < self.grace_ns and not c.destroyed:
                keep.append(c)
                continue
            if self._finish(c) and c.hold_until is not None:
                keep.append(c)
        self.ended = keep

    def _finish(self, c: Conn) -> bool:
        """Classify the end of ``c``; emit it unless it must wait for its local peer's FIN (returns True)."""
        if not c.end_reason:
            self._classify(c)
            if c.hold_until is not None:
                # The full socket is gone (its memory may be reused at once); the connection lives on in a
                # timewait socket, found again through its 4-tuple when the peer sends its FIN.
                if self.conns.get(c.sk) is c:
                    del self.conns[c.sk]
                return (
                    True  # still in self.ended: advance() emits it when the peer's FIN or the timeout comes
                )
        self._emit(c, open_=False)
        return False

    def _classify(self, c: Conn) -> None:
        sent = any(r[1] == "sent" for r in c.resets)
        recv = any(r[1] == "received" for r in c.resets)
        last = c.trans[-1] if c.trans else None
        prev = last[1] if last is not None and last[2] == CLOSE else c.state
        if last is None or last[2] != CLOSE:
            c.end_reason = "aborted"
            return
        t = last[0]
        if sent or recv:
            c.end_reason = "refused" if prev == SYN_SENT and recv else "reset"
            c.time_wait = False
            if self.metrics is not None and prev in (FW2, CLOSING):
                self.metrics.transition(prev, CLOSE)
        elif prev == LISTEN:
            c.end_reason = "listener-closed"
        elif prev == LA:
            c.end_reason = "fin"
        elif prev == CLOSING:
            self._to_time_wait(c, t)
        elif prev == FW2:
            self._fin_wait_2_end(c, t)
        elif prev in (SYN_SENT, SYN_RECV, EST, CW, FW1) and (c.retrans or c.synack_retrans):
            c.end_reason = "timeout"
        else:
            c.end_reason = "aborted"

    def _to_time_wait(self, c: Conn, t: int) -> None:
        c.trans[-1] = (t, c.trans[-1][1], TW)
        c.time_wait = True
        c.end_reason = "fin"
        if self.metrics is not None:
            self.metrics.transition(CLOSING, TW)

    def _fin_wait_2_end(self, c: Conn, t: int) -> None:
        into = next((x[0] for x in reversed(c.trans) if x[2] == FW2), None)
        c.trans.pop()  # the full socket's "-> CLOSE" is the hand-off, not the connection's end
        m = self.metrics
        if into is not None and t - into > _SAME_BURST_NS:
            c.trans.append((t, FW2, TW))  # sat in FIN_WAIT_2 until the peer's FIN arrived
            c.time_wait = True
            c.end_reason = "fin"
            if m is not None:
                m.transition(FW2, TW)
            return
        peer = None
        peer_fin: int | None = None
        # Only on loopback does the peer's FIN arrive the moment it is sent (same namespace, no link): across
        # a real link the timewait socket moves to TIME_WAIT one path delay later, unseen.
        if c.key is not None and _is_loopback(c.key[0], c.key[1]) and _is_loopback(c.key[0], c.key[3]):
            fam, la, lp, ra, rp = c.key
            rkey = (fam, ra, rp, la, lp)
            peer = self.by_key.get(rkey)
            if peer is not None and peer is not c:
                peer_fin = peer.fin_t
            elif rkey in self.recent:
                peer_fin = self.recent[rkey][2]
                peer = None  # already gone: nothing to wait for
        if peer_fin is not None:
            # The local peer sent its FIN: TIME_WAIT from whichever came last, our hand-off or its FIN.
            c.trans.append((max(t, peer_fin), FW2, TW))
            c.time_wait = True
            c.end_reason = "fin"
            if m is not None:
                m.transition(FW2, TW)
            return
        if peer is not None and peer is not c:
            c.hold_until = t + self.fin_timeout_ns
            c.time_wait = None
            c.end_reason = "handoff"
            return
        c.time_wait = None
        c.end_reason = "handoff"

    def _probe(self, c: Conn) -> bool:
        """Ask sock_diag where ``c`` (or, on loopback, its peer) lives, among the namespaces we can look in."""
        if self.probe is None or c.key is None:
            return False
        c.probed = True
        fam, la, lp, ra, rp = c.key
        keys = [(fam, la, lp, ra, rp)]
        if _is_loopback(fam, la) and _is_loopback(fam, ra):
            keys.append((fam, ra, rp, la, lp))
        for k in keys:
            self.probes += 1
            try:
                found = self.probe(*k)
            except OSError:
                return False
            if found is not None:
                c.netns = found
                return True
        return False

    def _resolve_netns(self, c: Conn) -> None:
        if c.netns is not None or c.key is None:
            return
        fam, la, lp, ra, rp = c.key
        if _is_loopback(fam, la) and _is_loopback(fam, ra):
            peer = self.by_key.get((fam, ra, rp, la, lp))
            if peer is not None and peer.netns is not None:
                c.netns = peer.netns
                return
            hit = self.recent.get((fam, ra, rp, la, lp))
            if hit is not None and hit[1] is not None:
                c.netns = hit[1]
                return
        if c.role == "server":
            c.netns = self._listener_netns(c)
        if c.netns is None and self.probe is not None:
            self._probe(c)

    def _record(self, c: Conn, open_: bool) -> ConnRecord:
        w = self.wall
        fam = 6 if c.family == socket.AF_INET6 else 4
        names = _NAMES
        new = tuple.__new__
        trans = tuple(
            new(Transition, (t / 1e9 + w, names[a] if a < 16 else str(a), names[b] if b < 16 else str(b)))
            for t, a, b in c.trans
        )
        resets = tuple(
            ResetInfo(t / 1e9 + w, d, kernel_state_name(s), self.reasons.get(r) if r is not None else None)
            for t, d, s, r in c.resets
        )
        end = None
        if not open_:
            last_ns = max(c.trans[-1][0] if c.trans else c.t0, c.end_t or c.t0)
            end = last_ns / 1e9 + w
        return ConnRecord(
            laddr=fmt_addr(c.family, c.laddr) if c.laddr else "",
            lport=c.lport,
            raddr=fmt_addr(c.family, c.raddr) if c.raddr else "",
            rport=c.rport,
            family=fam,
            netns=c.netns,
            pid=c.pid,
            comm=c.comm,
            role=c.role,
            start=c.t0 / 1e9 + w,
            end=end,
            transitions=trans,
            closer=c.closer,
            simultaneous_close=c.simultaneous,
            time_wait=None if open_ else c.time_wait,
            resets=resets,
            retransmits=c.retrans,
            synack_retransmits=c.synack_retrans,
            end_reason="open" if open_ else c.end_reason,
            open=open_,
            partial=c.partial,
        )

    def _emit(self, c: Conn, open_: bool) -> None:
        if c.emitted:
            return
        c.emitted = True
        if self.conns.get(c.sk) is c:
            del self.conns[c.sk]
        if c.key is not None and self.by_key.get(c.key) is c:
            del self.by_key[c.key]
        if c.role == "listener":
            lst = self.listeners.get((c.family, c.lport))
            if lst is not None and c in lst:
                lst.remove(c)
                if not lst:
                    del self.listeners[(c.family, c.lport)]
        self._resolve_netns(c)
        if c.key is not None:
            if len(self.recent) > 65536:
                self.recent.clear()
            self.recent[c.key] = (c.end_t or c.t0, c.netns, c.fin_t)
        if c.netns is None:
            self.unknown_netns += 1
        if self.metrics is not None and not open_:
            last = max(c.trans[-1][0] if c.trans else c.t0, c.end_t or c.t0)
            raddr = fmt_addr(c.family, c.raddr) if c.raddr else ""
            self.metrics.ended_conn((last - c.t0) / 1e9, c.role, raddr, c.end_reason)
        if not self.filt.match_conn(c):
            self.filtered += 1
            return
        rec = self._record(c, open_)
        if self.filt.match(rec):
            self.emitted += 1
            self.sink(rec)
        else:
            self.filtered += 1

    def flush(self, open_too: bool = True) -> None:
        """End of the watch: emit what ended, then (``open_too``) every socket still open, marked open."""
        for c in list(self.ended):
            if not c.emitted:
                if not c.end_reason:
                    self._classify(c)
                c.hold_until = None
                self._emit(c, open_=False)
        self.ended = []
        if open_too:
            for c in sorted(self.conns.values(), key=lambda c: c.t0):
                self._emit(c, open_=True)
        self.conns.clear()

    def open_conns(self) -> list[Conn]:
        return [c for c in self.conns.values() if c.end_t is None]

    def open_records(self, min_age_ns: int = 0) -> list[ConnRecord]:
        """Interim records (``open``: true) of connections open at least ``min_age_ns`` (not listeners)."""
        cut = self.now - min_age_ns
        return [
            self._record(c, open_=True)
            for c in self.open_conns()
            if c.t0 <= cut and c.role != "listener" and self.filt.match(self._record(c, open_=True))
        ]
