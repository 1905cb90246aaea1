"""Links and the things on them: delay, jitter, loss, duplication, reordering, one-way partitions, fault rules.

A :class:`Channel` carries packets one way between two nodes. Each channel owns its own :class:`Rng` stream
(seeded from the run seed and the channel's name), so adding traffic in one direction never changes the luck of
the other — the smoltcp netsim habit. Path elements (middleboxes, NAT, fault injectors) see every packet and may
pass, rewrite or drop it; they are small objects, never special cases inside the endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from tcpwise.sim.rng import Rng
from tcpwise.vocab import DropReason
from tcpwise.wire.segment import TcpSegment

__all__ = ["Impairments", "Packet", "PathElement", "DropRule", "Channel", "Fate", "Node"]


@dataclass(slots=True)
class Impairments:
    delay: float = 0.05  # one-way propagation + queueing, seconds
    jitter: float = 0.0  # extra uniform [0, jitter) per packet (may reorder)
    loss: float = 0.0  # probability a packet is lost
    duplicate: float = 0.0  # probability a packet is delivered twice
    reorder: float = (
        0.0  # probability a packet is held back by up to another `delay` (overtaken by later ones)
    )


@dataclass(slots=True)
class Packet:
    src: str
    dst: str
    seg: TcpSegment
    sender: str  # node name, for the event log


# What a channel does with a packet: arrivals (time, packet); when none, why it was lost and a detail.
Fate = tuple[list[tuple[float, "Packet"]], DropReason | None, str]


class Node(Protocol):
    """What owns an address in the simulator: a host, or a forwarding box such as a NAT."""

    name: str

    def deliver(self, pkt: Packet, now: float) -> None: ...


class PathElement:
    """Something on the path. ``process`` returns the (possibly rewritten) packet, or None when it drops it:
    the log then says :attr:`drop_reason`, with ``self.last_drop`` as the detail. ``direction`` is ``"fwd"`` or
    ``"rev"`` relative to how it was placed."""

    name = "element"
    drop_reason = DropReason.FAULT
    last_drop = ""

    def process(
        self, pkt: Packet, now: float, direction: str
    ) -> Packet | None:  # pragma: no cover - interface
        return pkt


@dataclass(slots=True)
class DropRule:
    """Drop the next ``count`` packets whose flags equal ``flags`` exactly (None = any)."""

    flags: str | None
    count: int
    detail: str = ""

    def matches(self, seg: TcpSegment) -> bool:
        return self.count > 0 and (self.flags is None or seg.flag_str == self.flags)


@dataclass(slots=True)
class Channel:
    name: str
    imp: Impairments
    rng: Rng
    elements: list[tuple[PathElement, str]] = field(default_factory=list)
    rules: list[DropRule] = field(default_factory=list)
    partitioned: bool = False
    last_arrival: float = 0.0

    def transmit(self, pkt: Packet, now: float) -> Fate:
        """Decide the packet's fate: a list of (arrival time, packet) — empty when lost — and, when lost, why
        (with a detail naming the rule or box)."""
        if self.partitioned:
            return [], DropReason.PARTITION, ""
        for rule in self.rules:
            if rule.matches(pkt.seg):
                rule.count -= 1
                return [], DropReason.FAULT, rule.detail
        for element, direction in self.elements:
            out = element.process(pkt, now, direction)
            if out is None:
                return [], element.drop_reason, element.last_drop or element.name
            pkt = out
        imp = self.imp
        rng = self.rng
        if imp.loss and rng.random() < imp.loss:
            return [], DropReason.LOSS, ""
        t = now + imp.delay
        if imp.jitter:
            t += rng.uniform(0.0, imp.jitter)
        if imp.reorder and rng.random() < imp.reorder:
            t += rng.uniform(0.0, max(imp.delay, 0.001))
        elif not imp.jitter:
            # FIFO unless jitter/reordering is asked for: a link does not overtake itself.
            t = max(t, self.last_arrival)
        self.last_arrival = max(self.last_arrival, t)
        arrivals = [(t, pkt)]
        if imp.duplicate and rng.random() < imp.duplicate:
            arrivals.append((t + rng.uniform(0.0, max(imp.delay, 0.001)), pkt))
        return arrivals, None, ""
