"""A NAT box (many clients behind one public address) and the legacy ``tcp_tw_recycle`` rule that broke them.

Theory of operation
-------------------
:class:`Nat` is source NAT (RFC 3022 NAPT, what a home router or a cloud NAT gateway does). It sits on the
channels from each inside client to the server as a :class:`~tcpwise.sim.network.PathElement` that rewrites the
source address to the public one and the source port to a fresh one, and it is itself a node at the public
address: the server's replies go to it, and it rewrites the destination back to the inside client and forwards.
It does **not** touch TCP options: the clients' timestamp clocks (RFC 7323 TSval) pass through unchanged, which
is exactly why one public address then carries several unrelated timestamp clocks.

:class:`LegacyTwRecycle` is the server-side rule of the removed ``net.ipv4.tcp_tw_recycle`` (Linux < 4.12,
``tcp_conn_request`` -> ``tcp_peer_is_proven``): with it on, the kernel remembered the latest TSval seen per peer
*IP address* and silently dropped a SYN from that address whose TSval was older than the remembered one, if the
remembered one was recent (within TCP_PAWS_MSL = 60 s) — per-host PAWS (RFC 7323 §5) applied across
connections. Behind a NAT the "peer" is many hosts with different clocks: every host whose clock is behind the
fastest one loses its SYNs (``PAWSPassive`` rejected) and cannot connect. Linux 4.10 randomised timestamp offsets
per connection, which made the rule useless, and 4.12 removed it. It is modelled here only to show that history,
as an explicit server policy on the server's ingress path — never inside the endpoint.

Where the stamp is taken: Linux stored it when a connection of that peer went through TIME_WAIT
(``tcp_remember_stamp``); this model updates it from every segment the server receives. For the demonstration
(clients that keep connecting) the difference is only a few milliseconds in when the stamp is taken.

A host with one timestamp clock for all its connections (Linux before 4.10, and what the tw_recycle era looked
like: TSval = milliseconds + a per-host offset) is a ``TcpStack(..., host_ts_offset=N)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcpwise.sim.network import Packet, PathElement
from tcpwise.vocab import ACK, SYN, DropReason
from tcpwise.wire.seq import seq_lt

if TYPE_CHECKING:
    from tcpwise.sim.core import Simulator

__all__ = ["Nat", "LegacyTwRecycle", "TCP_PAWS_MSL"]

TCP_PAWS_MSL = 60.0  # include/net/tcp.h: per-host timestamps are trusted this long


class Nat(PathElement):
    """Source NAT: inside (addr, port) <-> (public, fresh port). Also the node at the public address."""

    def __init__(self, sim: Simulator, name: str, public: str, first_port: int = 20000) -> None:
        self.sim = sim
        self.name = name
        self.public = public
        self._next = first_port
        self.out: dict[tuple[str, int, str, int], int] = {}  # (inside addr, port, dst, dport) -> public port
        self.back: dict[tuple[int, str, int], tuple[str, int]] = {}  # (public port, dst, dport) -> inside
        self.translations = 0

    # -- outbound: a PathElement on each client -> server channel ---------------------------------------
    def process(self, pkt: Packet, now: float, direction: str) -> Packet | None:
        seg = pkt.seg
        key = (pkt.src, seg.sport, pkt.dst, seg.dport)
        port = self.out.get(key)
        if port is None:
            port = self._next
            self._next += 1
            self.out[key] = port
            self.back[(port, pkt.dst, seg.dport)] = (pkt.src, seg.sport)
            self.translations += 1
        return Packet(self.public, pkt.dst, seg.with_(sport=port), pkt.sender)

    # -- inbound: the node at the public address ------------------------------------------------------
    def deliver(self, pkt: Packet, now: float) -> None:
        seg = pkt.seg
        inside = self.back.get((seg.dport, pkt.src, seg.sport))
        sim = self.sim
        if inside is None:
            sim.log_drop(pkt, now, DropReason.NAT)
            return
        addr, port = inside
        sim.transmit(self.name, Packet(pkt.src, addr, seg.with_(dport=port), self.name), now)


class LegacyTwRecycle(PathElement):
    """The removed ``tcp_tw_recycle=1`` per-peer timestamp check, in front of one server (see module doc)."""

    name = "legacy_tw_recycle"

    def __init__(self, window: int = 1) -> None:
        self.last: dict[str, tuple[int, float]] = {}  # peer IP -> (latest TSval, when seen)
        self.window = window  # TCP_PAWS_WINDOW: tolerance in timestamp ticks
        self.rejected = 0
        self.rejected_by_src: dict[tuple[str, int], int] = {}
        self.last_drop = ""

    drop_reason = DropReason.PAWS

    def process(self, pkt: Packet, now: float, direction: str) -> Packet | None:
        seg = pkt.seg
        ts = seg.timestamps
        if ts is None:
            return pkt
        tsval = ts[0]
        seen = self.last.get(pkt.src)
        if seg.flags & (SYN | ACK) == SYN and seen is not None:
            stamp, when = seen
            if now - when < TCP_PAWS_MSL and seq_lt(tsval + self.window, stamp):
                self.rejected += 1
                self.last_drop = (
                    f"legacy tw_recycle: SYN TSval {tsval} older than {stamp} last seen from "
                    f"{pkt.src} {now - when:.1f} s ago (PAWSPassiveRejected)"
                )
                return None
        if seen is None or not seq_lt(tsval, seen[0]) or now - seen[1] >= TCP_PAWS_MSL:
            self.last[pkt.src] = (tsval, now)
        return pkt
