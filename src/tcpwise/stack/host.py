"""A user-space TCP/IP host: the sans-IO :class:`~tcpwise.endpoint.TcpStack` driven by a real clock on a link.

Theory of operation
-------------------
The endpoint package decides everything a TCP does; this module only feeds it. One :class:`Host` owns one
:class:`~tcpwise.endpoint.TcpStack` per local address (the stack demultiplexes by its one address, so an IPv4
and an IPv6 address are two stacks) and an asyncio event loop drives them:

* **input** — the link hands over raw IP packets. Each is parsed by the one codec (:mod:`tcpwise.wire`) with
  checksums verified; a TCP segment for one of our addresses goes to that address's stack (``receive``), an
  ICMP message is answered or applied (:meth:`Host._icmp_in`), anything else for us gets the destination
  unreachable error a host owes (RFC 1122 §3.2.2.1), and packets for other addresses are ignored;
* **output** — after *every* input packet the host pulls the stack's events (``take_events``) and segments
  (``poll``) at once. Pulling per packet rather than per batch matters: every out-of-order segment must
  produce its own duplicate ACK, or a Linux sender cannot fast-retransmit (RFC 5681 §3.2) and waits for its
  retransmission timer instead;
* **time** — ``now`` is the loop's monotonic clock minus the host's start, so endpoint timestamps and the event
  log count from zero. One loop timer is armed for the stacks' earliest deadline (``get_timer``); when it
  fires, ``handle_timer`` runs with ``now`` no earlier than that deadline (the loop may wake a hair early);
* **user calls** — code that calls an endpoint (``send``, ``recv``, ``close`` ...) then calls :meth:`kick`,
  which tells the stack (``touch``) and pumps on the next loop iteration, so many calls in one callback cost
  one pump.

Hooks let a probe misbehave below the endpoint: every segment in or out passes the ``hooks`` (return False to
drop it: a vanished peer, a FIN never acknowledged) and :meth:`send_raw` puts a hand-made segment on the wire
(a SYN flood, a blind RST). Everything can be recorded as :class:`tcpwise.events.Event` (``record=True``):
segments sent and received, drops by hooks, state changes, timers, errors — the one event schema, so the
shared renderers draw a probe's connection like a simulated one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tcpwise.endpoint import (
    LINUX,
    Closed,
    ConnectionError,
    EndpointConfig,
    EndpointEvent,
    StateChanged,
    TcpStack,
    TimerFired,
)
from tcpwise.endpoint.listener import Listener
from tcpwise.endpoint.tcb import Endpoint
from tcpwise.events import Event, SegmentInfo
from tcpwise.stack.link import Link
from tcpwise.vocab import AppCall, DropReason, EventKind, TcpState
from tcpwise.wire import WireError, build_packet, parse_ip, parse_packet
from tcpwise.wire.icmp import (
    ICMP6_DEST_UNREACH,
    ICMP6_ECHO_REQUEST,
    ICMP6_PACKET_TOO_BIG,
    ICMP6_PARAM_PROBLEM,
    ICMP6_TIME_EXCEEDED,
    ICMP_DEST_UNREACH,
    ICMP_ECHO_REQUEST,
    ICMP_TIME_EXCEEDED,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    UNREACH_ERRNO_V4,
    UNREACH_ERRNO_V6,
    IcmpMessage,
    echo_reply,
    icmp_packet,
    parse_icmp,
    quoted_tcp_ports,
    unreachable,
)
from tcpwise.wire.segment import TcpSegment

__all__ = ["Host", "HostStats", "Hook", "EndpointWatcher"]

Hook = Callable[[str, str, str, TcpSegment], bool]  # (direction "in"/"out", src, dst, segment) -> keep it?
_IPPROTO_UDP = 17


class EndpointWatcher(Protocol):
    """What the host tells the owner of an endpoint (the streams transport, a probe)."""

    def on_event(self, ev: EndpointEvent) -> None: ...

    def on_icmp_error(self, errno: str, hard: bool) -> None: ...


@dataclass
class HostStats:
    rx_packets: int = 0
    tx_packets: int = 0
    rx_bad: int = 0  # failed to parse or checksum
    rx_foreign: int = 0  # not for one of our addresses (multicast, router solicitations, ...)
    hook_drops_in: int = 0
    hook_drops_out: int = 0
    icmp_in: int = 0
    icmp_out: int = 0
    icmp_limited: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class _TokenBucket:
    """ICMP error rate limit (RFC 1812 §4.3.2.8, RFC 4443 §2.4(f)): ``rate`` per second, ``burst`` at once."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst, self.tokens, self.at = rate, burst, burst, 0.0

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def _fmt(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


class Host:
    """A TCP/IP host on ``link`` with the addresses ``addrs`` (IPv4 and/or IPv6).

    ``cfg`` is the endpoint configuration for every connection (Linux defaults); the MSS is derived from the
    link ``mtu`` (MTU - 40 for IPv4, MTU - 60 for IPv6, RFC 9293 §3.7.1) unless ``cfg`` asks for less."""

    def __init__(
        self,
        link: Link,
        addrs: Sequence[str],
        cfg: EndpointConfig = LINUX,
        *,
        name: str = "tcpwise",
        mtu: int = 1500,
        record: bool = False,
        secret: bytes | None = None,
        peer_names: dict[str, str] | None = None,
        port_range: tuple[int, int] = (32768, 60999),
    ) -> None:
        if not addrs:
            raise ValueError("a host needs at least one address")
        self.link = link
        self.name = name
        self.mtu = mtu
        self.cfg = cfg
        self.secret = secret if secret is not None else os.urandom(32)
        self.stacks: dict[str, TcpStack] = {}
        for a in addrs:
            a = ipaddress.ip_address(a).compressed
            self.stacks[a] = TcpStack(self.fit(cfg, ":" in a), a, self.secret, port_range)
        self.record = record
        self.log: list[Event] = []
        self.peer_names: dict[str, str] = dict(peer_names or {})
        self.hooks: list[Hook] = []
        self.stats = HostStats()
        self._watchers: dict[Endpoint, EndpointWatcher] = {}  # keyed by the object: ids are reused
        self._accept: dict[tuple[str, int], Callable[[Endpoint], None]] = {}
        self._pushers: dict[int, Callable[[], None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._t0 = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._pump_scheduled = False
        self._icmp_bucket = _TokenBucket(100.0, 50.0)
        self._closed = False

    # ------------------------------------------------------------------------------------------------------
    # life cycle and clock
    # ------------------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Attach to the running loop and the link. Call from a coroutine (or inside ``async with``)."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._t0 = loop.time()
        self.link.start(loop, self._on_packets)

    async def __aenter__(self) -> Host:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop: the link is closed and every connection vanishes silently (like a host that is switched off).
        Call :meth:`abort_all` first to tell peers with RSTs."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self.link.close()

    def abort_all(self) -> None:
        """RST every synchronized connection (abort(2) on all of them), then send those RSTs now."""
        now = self.now()
        for st in self.stacks.values():
            for ep in list(st.conns.values()):
                if ep.state is not TcpState.CLOSED:
                    ep.abort(now)
        self._pump(now)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("host not started: call Host.start() inside the event loop")
        return self._loop

    def now(self) -> float:
        """Seconds since :meth:`start` (the time base of endpoints and of the event log)."""
        return self.loop.time() - self._t0

    @staticmethod
    def _family_mss(mtu: int, v6: bool) -> int:
        return mtu - (60 if v6 else 40)

    def fit(self, cfg: EndpointConfig, v6: bool) -> EndpointConfig:
        """``cfg`` with the MSS the link allows for that family (never more than ``cfg.mss``)."""
        mss = min(cfg.mss, self._family_mss(self.mtu, v6))
        return cfg if mss == cfg.mss else cfg.with_(mss=mss)

    # ------------------------------------------------------------------------------------------------------
    # addresses and stacks
    # ------------------------------------------------------------------------------------------------------
    @property
    def addrs(self) -> list[str]:
        return list(self.stacks)

    def addr_for(self, raddr: str) -> str:
        """Our first address of ``raddr``'s family."""
        v6 = ":" in raddr
        for a in self.stacks:
            if (":" in a) == v6:
                return a
        fam = "IPv6" if v6 else "IPv4"
        raise OSError(97, f"no {fam} address on this host to reach {raddr}")  # EAFNOSUPPORT

    def stack_of(self, ep: Endpoint) -> TcpStack:
        return self.stacks[ep.laddr]

    # ------------------------------------------------------------------------------------------------------
    # user calls
    # ------------------------------------------------------------------------------------------------------
    def connect(
        self,
        raddr: str,
        rport: int,
        *,
        sport: int | None = None,
        cfg: EndpointConfig | None = None,
        watcher: EndpointWatcher | None = None,
    ) -> Endpoint:
        """Active open (SYN goes out on the next pump). Raises ``ConnectError`` (EADDRNOTAVAIL/EADDRINUSE)."""
        raddr = ipaddress.ip_address(raddr).compressed
        st = self.stacks[self.addr_for(raddr)]
        c = self.fit(cfg, ":" in raddr) if cfg is not None else None
        ep = st.connect(raddr, rport, self.now(), sport=sport, cfg=c)
        if watcher is not None:
            self._watchers[ep] = watcher
        self.kick(ep)
        return ep

    def watch(self, ep: Endpoint, watcher: EndpointWatcher | None) -> None:
        if watcher is None:
            self._watchers.pop(ep, None)
        else:
            self._watchers[ep] = watcher

    def listen(
        self,
        port: int,
        on_accept: Callable[[Endpoint], None],
        *,
        addr: str | None = None,
        backlog: int | None = None,
        cfg: EndpointConfig | None = None,
    ) -> list[str]:
        """Listen on ``port`` at ``addr`` (or every address); ``on_accept`` gets each established connection.
        Returns the addresses now listening."""
        addrs = [ipaddress.ip_address(addr).compressed] if addr is not None else list(self.stacks)
        now = self.now()
        for a in addrs:
            st = self.stacks.get(a)
            if st is None:
                raise OSError(99, f"cannot listen on {a}: not an address of this host")  # EADDRNOTAVAIL
            c = self.fit(cfg, ":" in a) if cfg is not None else None
            st.listen(port, backlog, now, cfg=c)  # the listener reports its CLOSED -> LISTEN (see _dispatch)
            self._accept[(a, port)] = on_accept
        self._schedule_pump()
        return addrs

    def unlisten(self, port: int, addr: str | None = None) -> None:
        for a, st in self.stacks.items():
            if addr is None or a == addr:
                st.unlisten(port)
                self._accept.pop((a, port), None)
        self._schedule_pump()

    def kick(self, ep: Endpoint) -> None:
        """Call after any user call on ``ep``: the endpoint told its stack already; this makes sure the host
        pumps soon, so the output goes on the wire and the timer is re-armed."""
        self._schedule_pump()

    def flush(self) -> None:
        """Pump now: put whatever user calls produced on the wire before anything else happens (a hook that
        must send ahead of the segment being received calls this)."""
        if not self._closed:
            self._pump(self.now())

    def want_push(self, key: int, push: Callable[[], None] | None) -> None:
        """Register ``push`` to run on every pump (a transport topping up a send buffer), or remove it."""
        if push is None:
            self._pushers.pop(key, None)
        else:
            self._pushers[key] = push

    def send_raw(self, src: str, dst: str, seg: TcpSegment, note: str | None = None) -> None:
        """Put a hand-made segment on the wire (no endpoint involved); hooks still see it."""
        self._emit(src, dst, seg, None, self.now(), note)

    def note(self, text: str, conn: str | None = None, text_zh: str | None = None) -> None:
        if self.record:
            self._append(Event(self.now(), self.name, EventKind.NOTE, text=text, text_zh=text_zh, conn=conn))

    # ------------------------------------------------------------------------------------------------------
    # the event log
    # ------------------------------------------------------------------------------------------------------
    def label(self, ep: Endpoint) -> str:
        return self.label_of(ep.lport, ep.raddr, ep.rport)

    def label_of(self, lport: int, raddr: str, rport: int) -> str:
        peer = self.peer_names.get(raddr)
        return f"{self.name}:{lport}>{peer}:{rport}" if peer else f"{self.name}:{lport}>{_fmt(raddr, rport)}"

    def _append(self, ev: Event) -> None:
        self.log.append(ev)

    @staticmethod
    def seg_info(src: str, dst: str, seg: TcpSegment) -> SegmentInfo:
        return SegmentInfo(
            src=src,
            dst=dst,
            sport=seg.sport,
            dport=seg.dport,
            seq=seg.seq,
            ack=seg.ack,
            flags=seg.flag_str,
            len=len(seg.payload),
            win=seg.window,
            opts=seg.options_dict() or None,
        )

    def _peer(self, addr: str) -> str:
        return self.peer_names.get(addr, addr)

    # ------------------------------------------------------------------------------------------------------
    # input
    # ------------------------------------------------------------------------------------------------------
    def _on_packets(self, packets: list[bytes]) -> None:
        if self._closed:
            return
        now = self.now()
        for pkt in packets:
            self.stats.rx_packets += 1
            try:
                hdr, seg = parse_packet(pkt, verify=True)
            except WireError:
                self._other_packet(pkt, now)
                continue
            dst = hdr.dst
            st = self.stacks.get(dst)
            if st is None:
                self.stats.rx_foreign += 1
                continue
            src = hdr.src
            if self.hooks and not self._pass_hooks("in", src, dst, seg, now):
                continue
            if self.record:
                self._append(Event(now, self.name, EventKind.RECV, segment=self.seg_info(src, dst, seg)))
            st.receive(src, dst, seg, now)
            self._pump(now)

    def _pass_hooks(self, direction: str, src: str, dst: str, seg: TcpSegment, now: float) -> bool:
        for hook in list(self.hooks):
            if not hook(direction, src, dst, seg):
                if direction == "in":
                    self.stats.hook_drops_in += 1
                    if self.record:
                        self._append(
                            Event(
                                now,
                                self._peer(src),
                                EventKind.DROP,
                                segment=self.seg_info(src, dst, seg),
                                reason=DropReason.PROBE,
                                text="ignored",
                            )
                        )
                else:
                    self.stats.hook_drops_out += 1
                    if self.record:
                        self._append(
                            Event(
                                now,
                                self.name,
                                EventKind.DROP,
                                segment=self.seg_info(src, dst, seg),
                                reason=DropReason.PROBE,
                                text="withheld",
                            )
                        )
                return False
        return True

    def _other_packet(self, pkt: bytes, now: float) -> None:
        """A packet that is not a well-formed TCP segment: ICMP, another protocol, or garbage."""
        try:
            hdr, payload = parse_ip(pkt, verify=True)
        except WireError:
            self.stats.rx_bad += 1
            return
        if hdr.dst not in self.stacks:
            self.stats.rx_foreign += 1
            return
        v6 = hdr.version == 6
        if hdr.proto == (IPPROTO_ICMPV6 if v6 else IPPROTO_ICMP):
            try:
                msg = parse_icmp(payload, v6, hdr.src, hdr.dst)
            except WireError:
                self.stats.rx_bad += 1
                return
            self.stats.icmp_in += 1
            self._icmp_in(hdr.src, hdr.dst, msg, v6, now)
            return
        if hdr.proto == 6 or hdr.is_fragment:
            self.stats.rx_bad += 1  # a TCP segment with a bad checksum, or a fragment (no reassembly)
            return
        # RFC 1122 §3.2.2.1 / RFC 4443 §3.1: tell the sender nobody listens for this protocol or port.
        if v6:
            if hdr.proto == _IPPROTO_UDP:
                self._icmp_out(hdr.dst, hdr.src, unreachable(pkt, 4, True), now)
            else:  # RFC 4443 §3.4: unrecognized Next Header, pointer at the field (offset 6)
                self._icmp_out(hdr.dst, hdr.src, IcmpMessage(ICMP6_PARAM_PROBLEM, 1, 6, pkt[:1232]), now)
        else:
            code = 3 if hdr.proto == _IPPROTO_UDP else 2  # port / protocol unreachable
            self._icmp_out(hdr.dst, hdr.src, unreachable(pkt, code, False), now)

    def _icmp_out(self, src: str, dst: str, msg: IcmpMessage, now: float) -> None:
        if not self._icmp_bucket.take(now):
            self.stats.icmp_limited += 1
            return
        self.stats.icmp_out += 1
        self.stats.tx_packets += 1
        self.link.send(icmp_packet(src, dst, msg))

    def _icmp_in(self, src: str, dst: str, msg: IcmpMessage, v6: bool, now: float) -> None:
        if msg.type == (ICMP6_ECHO_REQUEST if v6 else ICMP_ECHO_REQUEST):
            self.stats.tx_packets += 1
            self.stats.icmp_out += 1
            self.link.send(icmp_packet(dst, src, echo_reply(msg, v6)))  # echo replies are not rate limited
            return
        errors = (ICMP6_DEST_UNREACH, ICMP6_PACKET_TOO_BIG, ICMP6_TIME_EXCEEDED, ICMP6_PARAM_PROBLEM)
        if msg.type not in (errors if v6 else (ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED)):
            return
        quoted = quoted_tcp_ports(msg)
        if quoted is None:
            return
        qsrc, qdst, sport, dport = quoted
        st = self.stacks.get(qsrc)
        if st is None:
            return
        ep = st.conns.get((qsrc, sport, qdst, dport))
        if ep is None:
            return
        errno = self._icmp_errno(msg, v6)
        self.stats.errors[errno] = self.stats.errors.get(errno, 0) + 1
        # Linux tcp_v4_err / tcp_v6_err: while connecting (SYN_SENT, SYN_RCVD) an unreachable is a hard error
        # and ends the attempt (tcp_done, no RST); on a synchronized connection it is only a soft error,
        # remembered for the application and otherwise ignored (RFC 1122 §4.2.3.9). "Packet too big" and
        # "fragmentation needed" would drive PMTU discovery, which this host does not implement.
        hard = ep.state in (TcpState.SYN_SENT, TcpState.SYN_RCVD) and errno != "EMSGSIZE"
        if self.record:
            self._append(
                Event(
                    now,
                    self.name,
                    EventKind.NOTE,
                    text=f"ICMP {errno} ({'hard' if hard else 'soft'})",
                    conn=self.label(ep),
                )
            )
        w = self._watchers.get(ep)
        if w is not None:
            w.on_icmp_error(errno, hard)
        if hard:
            ep.abort(now)  # SYN_SENT: nothing is sent; the TCB is dropped
            self._pump(now)

    @staticmethod
    def _icmp_errno(msg: IcmpMessage, v6: bool) -> str:
        if v6:
            if msg.type == ICMP6_DEST_UNREACH:
                return UNREACH_ERRNO_V6.get(msg.code, "EHOSTUNREACH")
            if msg.type == ICMP6_PACKET_TOO_BIG:
                return "EMSGSIZE"
            return "EHOSTUNREACH" if msg.type == ICMP6_TIME_EXCEEDED else "EPROTO"
        if msg.type == ICMP_DEST_UNREACH:
            return UNREACH_ERRNO_V4.get(msg.code, "EHOSTUNREACH")
        return "EHOSTUNREACH"  # time exceeded

    # ------------------------------------------------------------------------------------------------------
    # the pump: events, accepts, output, timer
    # ------------------------------------------------------------------------------------------------------
    def _schedule_pump(self) -> None:
        if not self._pump_scheduled and not self._closed:
            self._pump_scheduled = True
            self.loop.call_soon(self._scheduled_pump)

    def _scheduled_pump(self) -> None:
        self._pump_scheduled = False
        if not self._closed:
            self._pump(self.now())

    def _pump(self, now: float) -> None:
        stacks = self.stacks.values()
        for _ in range(8):  # events can produce segments and segments events; this settles in 2-3 rounds
            busy = False
            for st in stacks:
                evs = st.take_events()
                if evs:
                    busy = True
                    for ep, ev in evs:
                        self._dispatch(ep, ev, now)
            if self._accept:
                busy |= self._accept_all()
            if self._pushers:
                for push in list(self._pushers.values()):
                    push()
            for st in stacks:
                out = st.poll(now)
                if out:
                    busy = True
                    for src, dst, seg, sender in out:
                        self._emit(src, dst, seg, sender, now, None)
            if not busy:
                break
        self._arm_timer()

    def _accept_all(self) -> bool:
        got = False
        for (a, port), cb in list(self._accept.items()):
            st = self.stacks[a]
            while (ep := st.accept(port)) is not None:
                got = True
                cb(ep)
        return got

    def _dispatch(self, ep: Endpoint | Listener, ev: EndpointEvent, now: float) -> None:
        if isinstance(ep, Listener):  # a listening socket's own CLOSED <-> LISTEN
            if self.record and isinstance(ev, StateChanged):
                conn = f"{self.name}:{ep.port} (listen)"
                self._append(
                    Event(
                        now,
                        self.name,
                        EventKind.STATE,
                        from_state=ev.old,
                        to_state=ev.new,
                        cause=ev.cause,
                        conn=conn,
                    )
                )
            return
        if self.record:
            if isinstance(ev, StateChanged):
                self._append(
                    Event(
                        now,
                        self.name,
                        EventKind.STATE,
                        from_state=ev.old,
                        to_state=ev.new,
                        cause=ev.cause,
                        conn=self.label(ep),
                    )
                )
            elif isinstance(ev, TimerFired):
                self._append(Event(now, self.name, EventKind.TIMER, timer=ev.name, conn=self.label(ep)))
            elif isinstance(ev, ConnectionError):
                self._append(
                    Event(
                        now, self.name, EventKind.APP, call=AppCall.ERROR, errno=ev.errno, conn=self.label(ep)
                    )
                )
        w = self._watchers.get(ep)
        if w is not None:
            w.on_event(ev)
        if type(ev) is Closed:
            self._watchers.pop(ep, None)

    def _emit(
        self, src: str, dst: str, seg: TcpSegment, ep: Endpoint | None, now: float, note: str | None
    ) -> None:
        if self.hooks and not self._pass_hooks("out", src, dst, seg, now):
            return
        if self.record:
            self._append(
                Event(now, self.name, EventKind.SEND, segment=self.seg_info(src, dst, seg), text=note)
            )
        self.stats.tx_packets += 1
        self.link.send(build_packet(src, dst, seg))

    def _arm_timer(self) -> None:
        at: float | None = None
        for st in self.stacks.values():
            t = st.get_timer()
            if t is not None and (at is None or t < at):
                at = t
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None and not self._closed:
            self._timer = self.loop.call_at(self._t0 + at, self._on_timer)

    def _on_timer(self) -> None:
        at = self._timer_at
        self._timer = None
        self._timer_at = None
        if self._closed:
            return
        now = self.now()
        if at is not None and now < at:
            now = at  # the loop wakes up to its clock resolution early: treat the deadline as reached
        for st in self.stacks.values():
            st.handle_timer(now)
        self._pump(now)

    # ------------------------------------------------------------------------------------------------------
    # introspection
    # ------------------------------------------------------------------------------------------------------
    def connections(self) -> Iterable[Endpoint]:
        for st in self.stacks.values():
            yield from st.conns.values()

    def find(self, lport: int, raddr: str, rport: int) -> Endpoint | None:
        for st in self.stacks.values():
            ep = st.conns.get((st.addr, lport, raddr, rport))
            if ep is not None:
                return ep
        return None
