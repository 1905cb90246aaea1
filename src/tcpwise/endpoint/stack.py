"""A host's TCP: demultiplexing, listeners, ephemeral ports, TIME_WAIT reuse, RSTs for unknown connections.

Theory of operation
-------------------
The stack owns every :class:`Endpoint` and :class:`Listener` of one host and is still sans-IO: segments come in
with :meth:`receive` (with their IP source and destination), timers fire through :meth:`handle_timer`, and the
caller pulls :meth:`poll` for outgoing ``(src, dst, segment)`` and :meth:`take_events` for
``(endpoint or listener, event)`` pairs. One heap holds every endpoint's next deadline so :meth:`get_timer` is
O(1); equal deadlines are ordered by the endpoints' creation serials, never by memory address, so a run is a
pure function of its inputs. Every endpoint the stack creates is attached to it: user calls on the endpoint
(send, recv, shutdown, close, abort) tell the stack themselves, so callers never have to.

Segments for no connection follow RFC 9293 §3.10.7.1 (CLOSED state): RST unless the segment is a RST.
Ephemeral ports follow Linux: a local port may be reused towards a different destination (the 4-tuple must
be unique), TIME_WAIT tuples block a port unless ``tcp_tw_reuse`` allows taking it over (outgoing connections
only, needs timestamps, TIME_WAIT older than 1 s), and exhaustion is ``EADDRNOTAVAIL``.
"""

from __future__ import annotations

import hashlib
import heapq
import ipaddress

from tcpwise.endpoint.config import EndpointConfig
from tcpwise.endpoint.events import Closed, EndpointEvent
from tcpwise.endpoint.isn import isn_rfc6528
from tcpwise.endpoint.listener import Listener
from tcpwise.endpoint.tcb import Endpoint
from tcpwise.vocab import ACK, RST, SYN, TcpState, Trigger
from tcpwise.wire.segment import TcpSegment
from tcpwise.wire.seq import seq_add, seq_gt

__all__ = ["TcpStack", "ConnectError", "Outgoing", "Owner", "TW_REUSE_DELAY"]

S = TcpState
TW_REUSE_DELAY = 1.0  # net.ipv4.tcp_tw_reuse_delay (ms in Linux 6.x, default 1000)
Key = tuple[str, int, str, int]  # (local addr, local port, remote addr, remote port)
Outgoing = tuple[str, str, TcpSegment, "Endpoint | None"]  # (src, dst, segment, sender endpoint or None)
Owner = Endpoint | Listener  # what an event is about: a connection, or a listening socket


class ConnectError(Exception):
    """connect() failed locally; ``errno`` is EADDRNOTAVAIL (no free port) or EADDRINUSE."""

    def __init__(self, errno: str, message: str) -> None:
        super().__init__(f"{errno}: {message}")
        self.errno = errno


class TcpStack:
    __slots__ = (
        "cfg",
        "addr",
        "secret",
        "conns",
        "listeners",
        "port_range",
        "_heap",
        "_dirty",
        "_out",
        "_events",
        "_next_port",
        "counters",
        "_parent",
        "_serial",
        "host_ts_offset",
    )

    def __init__(
        self,
        cfg: EndpointConfig,
        addr: str,
        secret: bytes,
        port_range: tuple[int, int] = (32768, 60999),
        *,
        host_ts_offset: int | None = None,
    ) -> None:
        self.cfg = cfg
        self.addr = addr
        self.secret = secret
        self.conns: dict[Key, Endpoint] = {}
        self.listeners: dict[int, Listener] = {}
        self.port_range = port_range  # net.ipv4.ip_local_port_range
        self._heap: list[tuple[float, int, Endpoint]] = []  # (deadline, serial, endpoint)
        self._dirty: dict[int, Endpoint] = {}  # serial -> endpoint touched since the last flush
        self._out: list[Outgoing] = []
        self._events: list[tuple[Owner, EndpointEvent]] = []
        self._next_port = 0
        self._parent: dict[int, Listener] = {}  # serial of a child -> its listener while in a queue
        self._serial = 0
        # One timestamp clock for the whole host (Linux before 4.10, and what legacy tw_recycle relied on); None
        # = a random offset per connection, as Linux does since 4.10.
        self.host_ts_offset = host_ts_offset
        self.counters: dict[str, int] = {
            "OutRsts": 0,
            "ActiveOpens": 0,
            "PassiveOpens": 0,
            "TWReused": 0,
            "TWKilledBySyn": 0,
        }

    # ------------------------------------------------------------------------------------------------------
    # user calls
    # ------------------------------------------------------------------------------------------------------
    def listen(
        self,
        port: int,
        backlog: int | None = None,
        now: float = 0.0,
        auto_accept: bool = True,
        cfg: EndpointConfig | None = None,
    ) -> Listener:
        if port in self.listeners:
            raise ConnectError("EADDRINUSE", f"port {port} is already listening")
        lst = Listener(
            cfg or self.cfg,
            self.addr,
            port,
            self.cfg.backlog if backlog is None else backlog,
            self.secret,
            auto_accept,
        )
        self.listeners[port] = lst
        self._events.append((lst, lst.open()))
        return lst

    def unlisten(self, port: int, now: float = 0.0) -> None:
        lst = self.listeners.pop(port, None)
        if lst is None:
            return
        self._events.append((lst, lst.close()))
        # Closing a listener resets the connections nobody accepted (Linux inet_csk_listen_stop).
        for child in list(lst.syn_queue.values()) + list(lst.accept_queue):
            child.abort(now, Trigger.LISTENER_CLOSED)

    def connect(
        self, raddr: str, rport: int, now: float, sport: int | None = None, cfg: EndpointConfig | None = None
    ) -> Endpoint:
        cfg = cfg or self.cfg
        if sport is None:
            sport = self._pick_port(raddr, rport, now, cfg)
        else:
            key = (self.addr, sport, raddr, rport)
            old = self.conns.get(key)
            if old is not None:
                if old.state is S.TIME_WAIT and self._tw_reusable(old, now, cfg):
                    self._reuse_time_wait(old, now)
                else:
                    raise ConnectError(
                        "EADDRINUSE", f"{self.addr}:{sport} -> {raddr}:{rport} is in use ({old.state})"
                    )
        iss = isn_rfc6528(self.secret, self.addr, sport, raddr, rport, now)
        ep = Endpoint.active(
            cfg, self.addr, sport, raddr, rport, iss, now, ts_offset=self._ts_offset(sport, raddr, rport)
        )
        self.conns[(self.addr, sport, raddr, rport)] = ep
        self.counters["ActiveOpens"] += 1
        self._adopt(ep)
        return ep

    def _adopt(self, ep: Endpoint) -> None:
        """Own a new endpoint: number it and have its user calls report to this stack."""
        self._serial += 1
        ep.attach(self._touch, self._serial)
        self._touch(ep)

    def accept(self, port: int) -> Endpoint | None:
        lst = self.listeners.get(port)
        if lst is None:
            return None
        ep = lst.accept()
        if ep is not None:
            self._parent.pop(ep.serial, None)
        return ep

    def crash(self) -> None:
        """The host dies: all state gone, nothing sent."""
        self.conns.clear()
        self.listeners.clear()
        self._heap.clear()
        self._dirty.clear()
        self._out.clear()
        self._events.clear()
        self._parent.clear()

    # ------------------------------------------------------------------------------------------------------
    # segment input
    # ------------------------------------------------------------------------------------------------------
    def receive(self, src: str, dst: str, seg: TcpSegment, now: float) -> None:
        key = (dst, seg.dport, src, seg.sport)
        ep = self.conns.get(key)
        if ep is not None and ep.state is S.TIME_WAIT and seg.flags & (SYN | ACK | RST) == SYN:
            if self._new_incarnation_ok(ep, seg):
                ep.yield_to_new_syn()
                self.counters["TWKilledBySyn"] += 1
                self._collect(ep, now)
                ep = None
        if ep is not None:
            lst = self._parent.get(ep.serial)
            if (
                lst is not None
                and ep.state is S.SYN_RCVD
                and ep.passive
                and seg.flags & (SYN | ACK | RST) == ACK
                and lst.accept_queue_full()
            ):
                lst.stats["ListenOverflows"] += 1
                lst.stats["ListenDrops"] += 1
                if lst.cfg.abort_on_overflow:
                    self._send_rst_for(src, dst, seg)
                    ep.abort(now)
                return  # tcp_abort_on_overflow=0: drop the ACK, the SYN-ACK timer retries later
            ep.receive(seg, now)
            self._touch(ep)
            if lst is not None and ep.state in (S.ESTABLISHED, S.CLOSE_WAIT) and ep in lst.syn_queue.values():
                self._promote(lst, ep)
            return
        lst = self.listeners.get(seg.dport)
        if lst is not None and dst == self.addr:
            self._listener_input(lst, src, dst, seg, now)
            return
        self._send_rst_for(src, dst, seg)

    def _listener_input(self, lst: Listener, src: str, dst: str, seg: TcpSegment, now: float) -> None:
        """RFC 9293 §3.10.7.2 (LISTEN state) plus the two Linux queues."""
        flags = seg.flags
        if flags & RST:
            return
        if flags & ACK and not flags & SYN:
            if lst.cfg.syncookies:
                mss = lst.check_cookie(src, seg.sport, seq_add(seg.seq, -1), seq_add(seg.ack, -1), now)
                if mss is not None:
                    lst.stats["SyncookiesRecv"] += 1
                    if lst.accept_queue_full():
                        lst.stats["ListenOverflows"] += 1
                        lst.stats["ListenDrops"] += 1
                        return
                    self._cookie_child(lst, src, seg, mss, now)
                    return
                lst.stats["SyncookiesFailed"] += 1
            self._send_rst_for(src, dst, seg)
            return
        if not flags & SYN:
            return
        if lst.accept_queue_full():
            # Linux tcp_conn_request: a full accept queue drops the SYN (LINUX_MIB_LISTENOVERFLOWS).
            lst.stats["ListenOverflows"] += 1
            lst.stats["ListenDrops"] += 1
            return
        cookies = lst.cfg.syncookies
        if cookies == 2 or (lst.syn_queue_full() and cookies == 1):
            iss = lst.cookie(src, seg.sport, seg.seq, now, seg.mss or 536)
            lst.stats["SyncookiesSent"] += 1
            reply = TcpSegment(
                seg.dport, seg.sport, iss, seq_add(seg.seq, 1), SYN | ACK, min(0xFFFF, lst.cfg.rcv_buf)
            )
            self._out.append((dst, src, reply, None))
            return
        if lst.syn_queue_full():
            # Linux counts TCPReqQFullDrop only for the "more than backlog" rule (tcp_syn_flood_action); the
            # tcp_max_syn_backlog quarter rule drops with ListenDrops alone.
            if len(lst.syn_queue) > lst.backlog:
                lst.stats["TCPReqQFullDrop"] += 1
            lst.stats["ListenDrops"] += 1
            return
        iss = isn_rfc6528(self.secret, dst, seg.dport, src, seg.sport, now)
        child = Endpoint.passive_from_syn(
            lst.cfg,
            dst,
            seg.dport,
            src,
            seg.sport,
            iss,
            seg,
            now,
            ts_offset=self._ts_offset(seg.dport, src, seg.sport),
        )
        self.conns[(dst, seg.dport, src, seg.sport)] = child
        lst.syn_queue[(src, seg.sport)] = child
        self._adopt(child)
        self._parent[child.serial] = lst
        self.counters["PassiveOpens"] += 1

    def _cookie_child(self, lst: Listener, src: str, seg: TcpSegment, mss: int, now: float) -> None:
        """A valid cookie ACK: rebuild the connection the SYN queue could not hold (options other than MSS are
        lost, as with Linux cookies without timestamps)."""
        syn = TcpSegment(seg.sport, seg.dport, seq_add(seg.seq, -1), 0, SYN, seg.window)
        iss = seq_add(seg.ack, -1)
        child = Endpoint.passive_from_syn(
            lst.cfg, self.addr, seg.dport, src, seg.sport, iss, syn, now, send_synack=False
        )
        child.eff_mss = min(lst.cfg.mss, mss)
        self.conns[(self.addr, seg.dport, src, seg.sport)] = child
        self._adopt(child)
        self._parent[child.serial] = lst
        lst.syn_queue[(src, seg.sport)] = child
        child.receive(seg, now)
        if child.state in (S.ESTABLISHED, S.CLOSE_WAIT):
            self._promote(lst, child)

    def _promote(self, lst: Listener, ep: Endpoint) -> None:
        lst.syn_queue.pop((ep.raddr, ep.rport), None)
        lst.accept_queue.append(ep)

    def _send_rst_for(self, src: str, dst: str, seg: TcpSegment) -> None:
        """RFC 9293 §3.10.7.1: reply to a segment for no connection."""
        if seg.flags & RST:
            return
        if seg.flags & ACK:
            rst = TcpSegment(seg.dport, seg.sport, seg.ack, 0, RST, 0)
        else:
            rst = TcpSegment(seg.dport, seg.sport, 0, seq_add(seg.seq, seg.seg_len), RST | ACK, 0)
        self.counters["OutRsts"] += 1
        self._out.append((dst, src, rst, None))

    def _new_incarnation_ok(self, tw: Endpoint, syn: TcpSegment) -> bool:
        """A SYN may reopen a TIME_WAIT tuple if its sequence number is beyond the old connection's (RFC 9293
        §3.10.7.4 note) or, with timestamps, its TSval is newer (RFC 6191)."""
        ts = syn.timestamps
        if tw.ts_ok and ts is not None:
            return seq_gt(ts[0], tw.ts_recent)
        return seq_gt(syn.seq, tw.rcv_nxt)

    # ------------------------------------------------------------------------------------------------------
    # ports
    # ------------------------------------------------------------------------------------------------------
    def _tw_reusable(self, tw: Endpoint, now: float, cfg: EndpointConfig) -> bool:
        """Linux tcp_twsk_unique: tw_reuse=1 (or 2 on loopback), the old connection used timestamps, and its
        last timestamp is at least one second old."""
        mode = cfg.tw_reuse
        if mode == 0 or (mode == 2 and not _is_loopback(tw.raddr)):
            return False
        if not tw.ts_ok:
            return False
        # tcp_twsk_unique: the peer's last timestamp must be at least tcp_tw_reuse_delay (1 s) old, so that the
        # new incarnation's TSval is surely newer than anything of the old one still in flight (PAWS protects).
        return now - tw.ts_recent_stamp >= TW_REUSE_DELAY

    def _reuse_time_wait(self, tw: Endpoint, now: float) -> None:
        tw.reuse_time_wait()
        self.counters["TWReused"] += 1
        self._collect(tw, now)

    def _pick_port(self, raddr: str, rport: int, now: float, cfg: EndpointConfig) -> int:
        lo, hi = self.port_range
        n = hi - lo + 1
        start = self._next_port
        for i in range(n):
            port = lo + (start + i) % n
            key = (self.addr, port, raddr, rport)
            old = self.conns.get(key)
            if old is None and port not in self.listeners:
                self._next_port = (start + i + 1) % n
                return port
            if old is not None and old.state is S.TIME_WAIT and self._tw_reusable(old, now, cfg):
                self._reuse_time_wait(old, now)
                self._next_port = (start + i + 1) % n
                return port
        raise ConnectError("EADDRNOTAVAIL", f"no free local port in {lo}-{hi} towards {raddr}:{rport}")

    def _ts_offset(self, lport: int, raddr: str, rport: int) -> int:
        if self.host_ts_offset is not None:
            return self.host_ts_offset
        # Linux randomises the timestamp offset per connection (tcp_timestamps=1, since 4.10).
        h = hashlib.blake2s(
            f"ts|{self.addr}|{lport}|{raddr}|{rport}".encode(), key=self.secret[:32], digest_size=4
        )
        return int.from_bytes(h.digest(), "big")

    # ------------------------------------------------------------------------------------------------------
    # timers and output
    # ------------------------------------------------------------------------------------------------------
    def _touch(self, ep: Endpoint) -> None:
        self._dirty[ep.serial] = ep

    def get_timer(self) -> float | None:
        """Earliest deadline over all endpoints. Call after :meth:`poll` (which files touched endpoints)."""
        heap = self._heap
        while heap:
            at, _, ep = heap[0]
            if ep.state is S.CLOSED or ep.get_timer() != at:
                heapq.heappop(heap)  # stale entry (lazy deletion)
                continue
            return at
        return None

    def handle_timer(self, now: float) -> None:
        self._flush(now)
        heap = self._heap
        while heap and heap[0][0] <= now + 1e-9:
            at, _, ep = heapq.heappop(heap)
            if ep.state is S.CLOSED or ep.get_timer() != at:
                continue
            ep.handle_timer(now)
            self._touch(ep)
        self._flush(now)

    def poll(self, now: float) -> list[Outgoing]:
        """Collect every pending segment (and events, see take_events) from endpoints touched since last time."""
        self._flush(now)
        out, self._out = self._out, []
        return out

    def take_events(self) -> list[tuple[Owner, EndpointEvent]]:
        """Application events of every endpoint touched since the last poll, *before* its segments are pulled:
        an application that reacts at once (close on EOF) then gets its FIN onto the pending ACK."""
        for ep in list(self._dirty.values()):
            self._take_events_of(ep)
        evs, self._events = self._events, []
        return evs

    def _take_events_of(self, ep: Endpoint) -> None:
        for ev in ep.events():
            self._events.append((ep, ev))
            if type(ev) is Closed:
                self._forget(ep)

    def _flush(self, now: float) -> None:
        while self._dirty:
            dirty = list(self._dirty.values())
            self._dirty.clear()
            for ep in dirty:
                self._collect(ep, now)

    def _collect(self, ep: Endpoint, now: float) -> None:
        for seg in ep.segments_to_send(now):
            self._out.append((ep.laddr, ep.raddr, seg, ep))
        self._take_events_of(ep)
        at = ep.get_timer()
        if at is not None and ep.state is not S.CLOSED:
            heapq.heappush(self._heap, (at, ep.serial, ep))

    def _forget(self, ep: Endpoint) -> None:
        key = (ep.laddr, ep.lport, ep.raddr, ep.rport)
        if self.conns.get(key) is ep:
            del self.conns[key]
        lst = self._parent.pop(ep.serial, None)
        if lst is not None:
            if lst.syn_queue.get((ep.raddr, ep.rport)) is ep:
                del lst.syn_queue[(ep.raddr, ep.rport)]
            try:
                lst.accept_queue.remove(ep)
            except ValueError:
                pass

    def state_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for ep in self.conns.values():
            counts[ep.state.value] = counts.get(ep.state.value, 0) + 1
        return counts


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False
