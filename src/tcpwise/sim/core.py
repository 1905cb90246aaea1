"""The deterministic discrete-event simulator: a heap of timed actions, hosts running model TCP stacks, channels.

Theory of operation
-------------------
Virtual time only moves when the next action is popped from the heap (ties broken by insertion order, so a run
is a pure function of its seed and script). A host is a :class:`~tcpwise.endpoint.stack.TcpStack` plus a tiny
application layer (sockets by label, read-everything, close-on-EOF, custom reactions). After every input to a
host the simulator drains the stack: application events first (so an application that closes at once lets its
FIN ride on the pending ACK, as Linux does), then outgoing segments, then re-arms the host's one timer entry
(lazily: a popped timer whose deadline no longer matches is ignored).

Every observable thing becomes a :class:`tcpwise.events.Event` in one log — unless ``record=False``, for runs
that only want counters.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

from tcpwise.endpoint.config import EndpointConfig
from tcpwise.endpoint.events import (
    Connected,
    ConnectionError,
    DataReceived,
    EndOfStream,
    EndpointEvent,
    StateChanged,
    TimerFired,
)
from tcpwise.endpoint.listener import Listener
from tcpwise.endpoint.stack import TcpStack
from tcpwise.endpoint.tcb import Endpoint
from tcpwise.events import Event, Host, SegmentInfo
from tcpwise.sim import budget as sim_budget
from tcpwise.sim.network import Channel, Impairments, Node, Packet
from tcpwise.sim.rng import Rng
from tcpwise.vocab import AppCall, DropReason, EventKind, TcpState, TimerName, Trigger
from tcpwise.wire.segment import TcpSegment

__all__ = ["Simulator", "SimHost", "Reaction"]

# A custom application reaction: called with (host, endpoint, event, now) for every endpoint event.
Reaction = Callable[["SimHost", Endpoint, EndpointEvent, float], None]


class SimHost:
    """A node with a TCP stack and an application layer."""

    def __init__(
        self,
        sim: Simulator,
        name: str,
        addr: str,
        cfg: EndpointConfig,
        role: str = "",
        port_range: tuple[int, int] = (32768, 60999),
    ) -> None:
        self.sim = sim
        self.name = name
        self.addr = addr
        self.role = role
        self.cfg = cfg
        self.port_range = port_range
        self.boots = 0
        self.stack = self._new_stack()
        self.down = False
        self.socks: dict[str, Endpoint] = {}
        self.labels: dict[int, str] = {}
        self.policy: dict[str, dict[str, Any]] = {}  # per-socket-label app policy (on_eof, auto_read)
        self.listen_policy: dict[int, dict[str, Any]] = {}
        self.reactions: list[Reaction] = []
        self.received: dict[str, bytearray] = {}
        self.errors: dict[str, str] = {}
        self.timer_at: float | None = None
        self.accepted = 0

    def _new_stack(self) -> TcpStack:
        secret = self.sim.rng_for(f"secret|{self.name}|{self.boots}").bytes(32)
        return TcpStack(self.cfg, self.addr, secret, self.port_range)

    # -- application API (what a script step does) ---------------------------------------------------------
    def label_of(self, ep: Endpoint) -> str:
        return self.labels.get(ep.serial, "")

    def bind_label(self, ep: Endpoint, label: str) -> None:
        self.socks[label] = ep
        self.labels[ep.serial] = label

    def sock(self, label: str) -> Endpoint:
        return self.socks[label]

    def app(self, call: AppCall, ep: Endpoint | None = None, **fields: Any) -> None:
        """Log what the application did (``fields``: errno, nbytes, port, backlog, why, value, text)."""
        self.sim.log_app(self, call, ep, **fields)

    def after_call(self) -> None:
        """Let the stack act on what the application just did (its endpoints told it themselves)."""
        self.sim.drain(self)

    # -- input -------------------------------------------------------------------------------------------
    def deliver(self, pkt: Packet, now: float) -> None:
        if self.down:
            self.sim.log_drop(pkt, now, DropReason.HOST_DOWN, self.name)
            return
        self.sim.log_seg(EventKind.RECV, self.name, pkt, now)
        self.stack.receive(pkt.src, pkt.dst, pkt.seg, now)
        self.sim.drain(self)

    def on_timer(self, at: float) -> None:
        if self.down or self.timer_at != at:
            return
        self.timer_at = None
        self.stack.handle_timer(at)
        self.sim.drain(self)

    # -- crash and reboot --------------------------------------------------------------------------------
    def crash(self) -> None:
        self.stack.crash()
        self.down = True
        self.socks.clear()
        self.labels.clear()
        self.timer_at = None

    def reboot(self) -> None:
        self.boots += 1
        self.stack = self._new_stack()
        self.down = False


class Simulator:
    def __init__(self, seed: int = 1, *, record: bool = True, record_payload: bool = False) -> None:
        self.seed = seed
        self.now = 0.0
        self.record = record
        self.record_payload = record_payload
        self._heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._n = 0
        self.hosts: dict[str, SimHost] = {}
        self.by_addr: dict[str, Node] = {}  # address -> node (SimHost or a forwarding element)
        self.channels: dict[tuple[str, str], Channel] = {}
        self.default_imp = Impairments()
        self.events: list[Event] = []
        self.counters: dict[str, int] = {"segments": 0, "drops": 0, "events": 0}
        self.budget = sim_budget.current()
        self.actions = 0

    # -- construction --------------------------------------------------------------------------------------
    def rng_for(self, stream: str) -> Rng:
        return Rng(self.seed, stream)

    def add_host(
        self,
        name: str,
        addr: str,
        cfg: EndpointConfig,
        role: str = "",
        port_range: tuple[int, int] = (32768, 60999),
    ) -> SimHost:
        h = SimHost(self, name, addr, cfg, role, port_range)
        self.hosts[name] = h
        self.by_addr[addr] = h
        return h

    def channel(self, src: str, dst: str) -> Channel:
        """The one-way channel from node ``src`` to node ``dst`` (created with default impairments)."""
        key = (src, dst)
        ch = self.channels.get(key)
        if ch is None:
            imp = Impairments(**{k: getattr(self.default_imp, k) for k in Impairments.__slots__})  # copy
            ch = Channel(f"{src}->{dst}", imp, self.rng_for(f"chan|{src}|{dst}"))
            self.channels[key] = ch
        return ch

    def host_models(self) -> list[Host]:
        return [Host(h.name, h.addr, h.role) for h in self.hosts.values()]

    # -- scheduling ------------------------------------------------------------------------------------------
    def at(self, t: float, fn: Callable[..., None], *args: Any) -> None:
        self._n += 1
        heapq.heappush(self._heap, (t, self._n, fn, args))

    def run(self, until: float) -> None:
        """Process every action due by ``until`` (virtual seconds), within the run's budget."""
        heap = self._heap
        budget = self.budget
        every = budget.check_every
        while heap and heap[0][0] <= until + 1e-12:
            t, _, fn, args = heapq.heappop(heap)
            if t > self.now:
                self.now = t
            fn(*args)
            self.actions += 1
            if self.actions % every == 0:
                if self.actions > budget.max_actions:
                    budget.over_actions(self.actions)
                if budget.check is not None:
                    budget.check()
        self.now = until

    def idle(self) -> bool:
        return not self._heap

    # -- the host drain loop -------------------------------------------------------------------------------------
    def drain(self, host: SimHost) -> None:
        now = self.now
        stack = host.stack
        for _ in range(64):  # reactions may produce more output; bounded so a bug cannot spin forever
            evs = stack.take_events()
            n_evs = len(evs)
            for _ in range(64):
                for ep, ev in evs:
                    self._on_endpoint_event(host, ep, ev, now)
                evs = stack.take_events()  # what the reactions caused (close() -> LAST_ACK), in order
                if not evs:
                    break
                n_evs += len(evs)
            out = stack.poll(now)  # after the reactions: a close() on EOF puts its FIN on the pending ACK
            for src, dst, seg, _ep in out:
                self.transmit(host.name, Packet(src, dst, seg, host.name), now)
            if not n_evs and not out:
                break
        at = stack.get_timer()
        if at is not None and at != host.timer_at:
            host.timer_at = at
            self.at(at, host.on_timer, at)

    def transmit(self, sender: str, pkt: Packet, now: float) -> None:
        """Put a packet on the network: route by destination address, apply the channel, schedule arrival."""
        self.counters["segments"] += 1
        self.log_seg(EventKind.SEND, sender, pkt, now)
        node = self.by_addr.get(pkt.dst)
        if node is None:
            self.log_drop(pkt, now, DropReason.NO_ROUTE)
            return
        ch = self.channel(sender, node.name)
        arrivals, reason, detail = ch.transmit(pkt, now)
        if reason is not None:
            self.log_drop(pkt, now, reason, detail)
            return
        for t, p in arrivals:
            self.at(t, node.deliver, p, t)

    # -- endpoint events -> application reactions and the log --------------------------------------------------
    def _on_endpoint_event(
        self, host: SimHost, ep: Endpoint | Listener, ev: EndpointEvent, now: float
    ) -> None:
        if isinstance(ep, Listener):
            # A listening socket's own CLOSED <-> LISTEN (its children are endpoints and come through below).
            if isinstance(ev, StateChanged):
                self.log_state(host, f"{host.name}:{ep.port} (listen)", ev.old, ev.new, ev.cause, now)
            return
        if isinstance(ev, StateChanged):
            self.log_state(host, self.conn_label(host, ep), ev.old, ev.new, ev.cause, now)
        elif isinstance(ev, TimerFired):
            self.log_timer(host, ep, ev.name, now)
        elif isinstance(ev, Connected):
            if ep.passive:
                self._maybe_accept(host, ep, now)
            else:
                host.app(AppCall.CONNECTED, ep)
        elif isinstance(ev, DataReceived):
            self._auto_read(host, ep)
        elif isinstance(ev, EndOfStream):
            pol = host.policy.get(host.label_of(ep), {})
            if pol.get("auto_read", True):
                host.app(AppCall.EOF, ep)
                if pol.get("on_eof") == "close":
                    if ep.state is not TcpState.CLOSED:  # (TIME_WAIT=0 may have closed it already: close(2)
                        ep.close(now)  # then just frees the descriptor)
                    host.app(AppCall.CLOSE, ep)
        elif isinstance(ev, ConnectionError):
            host.errors[host.label_of(ep)] = ev.errno
            if not ep.passive or host.label_of(ep):
                host.app(AppCall.ERROR, ep, errno=ev.errno)
        for react in host.reactions:
            react(host, ep, ev, now)

    def _auto_read(self, host: SimHost, ep: Endpoint) -> None:
        label = host.label_of(ep)
        pol = host.policy.get(label, {})
        if not pol.get("auto_read", True):
            return
        data = ep.recv()
        if data:
            host.received.setdefault(label, bytearray()).extend(data)
            if self.record and pol.get("log_reads", True):
                host.app(AppCall.RECV, ep, nbytes=len(data))

    def _maybe_accept(self, host: SimHost, ep: Endpoint, now: float) -> None:
        pol = host.listen_policy.get(ep.lport)
        if pol is None or not pol.get("accept", True):
            return
        got = host.stack.accept(ep.lport)
        while got is not None:
            host.accepted += 1
            label = pol.get("label", "s") if host.accepted == 1 else f"{pol.get('label', 's')}{host.accepted}"
            host.bind_label(got, label)
            host.policy[label] = {"on_eof": pol.get("on_eof", ""), "auto_read": pol.get("auto_read", True)}
            host.app(AppCall.ACCEPT, got)
            got = host.stack.accept(ep.lport)

    # -- the event log ---------------------------------------------------------------------------------------
    def conn_label(self, host: SimHost, ep: Endpoint) -> str:
        peer = self.by_addr.get(ep.raddr)
        pname = peer.name if peer is not None else ep.raddr
        return f"{host.name}:{ep.lport}>{pname}:{ep.rport}"

    def _append(self, ev: Event) -> None:
        self.counters["events"] += 1
        if self.record:
            if len(self.events) >= self.budget.max_recorded:
                self.budget.over_recorded()
            self.events.append(ev)

    def seg_info(self, pkt: Packet) -> SegmentInfo:
        seg: TcpSegment = pkt.seg
        return SegmentInfo(
            src=pkt.src,
            dst=pkt.dst,
            sport=seg.sport,
            dport=seg.dport,
            seq=seg.seq,
            ack=seg.ack,
            flags=seg.flag_str,
            len=len(seg.payload),
            win=seg.window,
            opts=seg.options_dict() or None,
            payload=seg.payload.hex() if (self.record_payload and seg.payload) else None,
        )

    def log_seg(self, kind: EventKind, host: str, pkt: Packet, now: float) -> None:
        if self.record:
            self._append(Event(now, host, kind, segment=self.seg_info(pkt)))

    def log_drop(self, pkt: Packet, now: float, reason: DropReason, detail: str = "") -> None:
        self.counters["drops"] += 1
        if self.record:
            self._append(
                Event(
                    now,
                    pkt.sender,
                    EventKind.DROP,
                    segment=self.seg_info(pkt),
                    reason=reason,
                    text=detail or None,
                )
            )

    def log_state(
        self, host: SimHost, conn: str, old: TcpState, new: TcpState, cause: Trigger, now: float
    ) -> None:
        if self.record:
            self._append(
                Event(now, host.name, EventKind.STATE, from_state=old, to_state=new, cause=cause, conn=conn)
            )

    def log_timer(self, host: SimHost, ep: Endpoint, name: TimerName, now: float) -> None:
        if self.record:
            self._append(Event(now, host.name, EventKind.TIMER, timer=name, conn=self.conn_label(host, ep)))

    def log_app(self, host: SimHost, call: AppCall, ep: Endpoint | None, **fields: Any) -> None:
        if self.record:
            conn = self.conn_label(host, ep) if ep is not None else None
            self._append(Event(self.now, host.name, EventKind.APP, call=call, conn=conn, **fields))

    def log_note(self, host: str, text: str, text_zh: str | None = None) -> None:
        if self.record:
            self._append(Event(self.now, host, EventKind.NOTE, text=text, text_zh=text_zh))
