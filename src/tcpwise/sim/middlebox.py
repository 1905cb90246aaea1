"""Boxes on the path: a delay box that holds one chosen segment back, and a stateful firewall that forgets idle flows.

Theory of operation
-------------------
Both are :class:`~tcpwise.sim.network.PathElement` objects put on a :class:`~tcpwise.sim.network.Channel` (one
instance may sit on both directions of a link, as a real box does). The channel asks ``process(pkt, now,
direction)`` for every packet; returning None drops it (the simulator logs a ``drop`` with ``last_drop`` as the
reason).

* :class:`HoldBack` models the network keeping one copy of a segment far longer than the rest — a packet stuck
  in a queue of a router that lost its route and found it again, the case RFC 9293 §3.4.1 and §3.6.1 (TIME-WAIT
  "to allow old duplicate segments to expire") worry about. The sender sees a loss (and retransmits); the held
  copy is delivered later, on its own schedule, exactly once. Nothing in the endpoint knows about it.
* :class:`StatefulFirewall` models connection tracking with an idle timeout (a cloud NAT gateway, a load balancer,
  an ``iptables -m conntrack --ctstate INVALID -j DROP`` firewall with ``nf_conntrack_tcp_loose=0``): a flow
  is created by a SYN, refreshed by every packet in either direction, and forgotten after ``idle_timeout``
  seconds of silence. A packet of a forgotten flow that is not a SYN is dropped silently — neither end is told,
  so both are left half-open (GCP VPC firewall connection tracking: 10 min; a Linux box with conntrack and an
  INVALID drop rule). Some boxes answer with a RST instead (``reply_rst``: AWS NLB after 350 s; an AWS NAT
  gateway does so towards the hosts behind it) — the ends then learn at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tcpwise.sim.network import Node, Packet, PathElement
from tcpwise.vocab import ACK, RST, SYN, DropReason
from tcpwise.wire.segment import TcpSegment
from tcpwise.wire.seq import seq_add

if TYPE_CHECKING:
    from tcpwise.sim.core import Simulator

__all__ = ["HoldBack", "StatefulFirewall", "FlowKey", "flow_key"]

FlowKey = tuple[tuple[str, int], tuple[str, int]]  # the two endpoints, sorted: the same key both ways


def flow_key(pkt: Packet) -> FlowKey:
    a = (pkt.src, pkt.seg.sport)
    b = (pkt.dst, pkt.seg.dport)
    return (a, b) if a <= b else (b, a)


class HoldBack(PathElement):
    """Hold the first packet that ``match`` accepts and deliver it at absolute time ``release_at`` (plus nothing
    else: the hold replaces the link delay). Every other packet passes untouched. ``held`` records what was
    held, ``delivered_at`` when it was handed to the destination."""

    name = "delay box"
    drop_reason = DropReason.HELD

    def __init__(self, sim: Simulator, match: Callable[[Packet], bool], release_at: float) -> None:
        self.sim = sim
        self.match = match
        self.release_at = release_at
        self.held: Packet | None = None
        self.held_at: float | None = None
        self.delivered_at: float | None = None
        self.last_drop = ""

    def process(self, pkt: Packet, now: float, direction: str) -> Packet | None:
        if self.held is not None or not self.match(pkt):
            return pkt
        self.held = pkt
        self.held_at = now
        at = max(self.release_at, now)
        self.last_drop = f"delivered at t={at:.3f} s"
        node = self.sim.by_addr.get(pkt.dst)
        if node is not None:
            self.sim.at(at, self._deliver, node, pkt, at)
        return None

    def _deliver(self, node: Node, pkt: Packet, at: float) -> None:
        self.delivered_at = at
        node.deliver(pkt, at)


@dataclass(slots=True)
class _Flow:
    created: float
    last_seen: float
    packets: int = 0


@dataclass
class StatefulFirewall(PathElement):
    """Connection tracking with an idle timeout; unknown non-SYN packets are dropped without a word.

    ``idle_timeout``: seconds of silence after which a flow is forgotten (checked lazily when its next packet
    arrives, which is indistinguishable from a periodic garbage collector for the packets that matter).
    ``reply_rst``: instead of dropping silently, answer the sender with a RST (what an AWS Network Load
    Balancer does after its 350 s idle timeout); needs ``sim`` to deliver it.
    ``expired`` records (flow, time it expired) for every flow forgotten; ``dropped`` counts packets dropped,
    ``resets`` the RSTs the box sent."""

    idle_timeout: float = 350.0
    reply_rst: bool = False
    sim: Simulator | None = None
    resets: int = 0
    flows: dict[FlowKey, _Flow] = field(default_factory=dict)
    expired: list[tuple[FlowKey, float]] = field(default_factory=list)
    dropped: int = 0
    passed: int = 0
    name: str = "stateful firewall"
    last_drop: str = ""
    drop_reason = DropReason.FIREWALL

    def process(self, pkt: Packet, now: float, direction: str) -> Packet | None:
        key = flow_key(pkt)
        flow = self.flows.get(key)
        if flow is not None and now - flow.last_seen >= self.idle_timeout:
            self.expired.append((key, flow.last_seen + self.idle_timeout))
            del self.flows[key]
            flow = None
        flags = pkt.seg.flags
        if flow is None:
            if flags & (SYN | ACK | RST) == SYN:
                flow = self.flows[key] = _Flow(now, now)  # a new connection opens state (conntrack NEW)
            else:
                # conntrack INVALID (no state, not a SYN): dropped, no RST, no ICMP — both ends stay half-open.
                self.dropped += 1
                self.last_drop = f"{self.name}: no state, forgotten after {self.idle_timeout:g} s idle"
                if self.reply_rst and not flags & RST:
                    self._reset_sender(pkt, now)
                return None
        flow.last_seen = now
        flow.packets += 1
        self.passed += 1
        if flags & RST:
            del self.flows[key]  # a reset ends the flow (conntrack moves it to CLOSE)
        return pkt

    def _reset_sender(self, pkt: Packet, now: float) -> None:
        """Answer like a host with no such connection would (RFC 9293 §3.10.7.1): <SEQ=SEG.ACK><CTL=RST>."""
        sim = self.sim
        if sim is None:
            return
        seg = pkt.seg
        if seg.flags & ACK:
            rst = TcpSegment(seg.dport, seg.sport, seg.ack, 0, RST, 0)
        else:
            rst = TcpSegment(seg.dport, seg.sport, 0, seq_add(seg.seq, seg.seg_len), RST | ACK, 0)
        back = Packet(pkt.dst, pkt.src, rst, self.name)
        node = sim.by_addr.get(pkt.src)
        if node is None:
            return
        self.resets += 1
        sim.log_note(
            self.name,
            f"{self.name} answers {node.name}'s packet with RST (flow expired)",
            f"{self.name} 用 RST 回应 {node.name} 的包（连接状态已过期）",
        )
        at = now + sim.default_imp.delay
        sim.at(at, node.deliver, back, at)

    def expiry_of(self, key: FlowKey) -> float | None:
        """When the flow ``key`` will be (or was) forgotten, if the box still tracks it."""
        flow = self.flows.get(key)
        return None if flow is None else flow.last_seen + self.idle_timeout
