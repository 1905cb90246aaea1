"""Unit tests of the path elements: the delay box holds exactly one packet, the firewall forgets idle flows."""

from __future__ import annotations

from tcpwise.endpoint.config import LINUX
from tcpwise.sim.core import Simulator
from tcpwise.sim.middlebox import HoldBack, StatefulFirewall, flow_key
from tcpwise.sim.network import Packet
from tcpwise.vocab import ACK, SYN
from tcpwise.wire.segment import TcpSegment

A, B = "198.18.0.1", "198.18.1.1"


def _pkt(flags: int, src: str = A, dst: str = B, sport: int = 40000, dport: int = 80) -> Packet:
    return Packet(src, dst, TcpSegment(sport, dport, 1, 0, flags, 1000), "A" if src == A else "B")


def test_firewall_forgets_idle_flows_and_drops_silently() -> None:
    fw = StatefulFirewall(idle_timeout=350.0)
    assert fw.process(_pkt(ACK), 0.0, "fwd") is None  # no state, not a SYN: INVALID
    assert fw.process(_pkt(SYN), 1.0, "fwd") is not None
    assert fw.process(_pkt(ACK, B, A, 80, 40000), 100.0, "rev") is not None  # same flow, other way
    assert fw.expiry_of(flow_key(_pkt(SYN))) == 450.0
    assert fw.process(_pkt(ACK), 449.9, "fwd") is not None  # refreshed
    assert fw.process(_pkt(ACK), 800.0, "fwd") is None  # 350.1 s of silence
    assert fw.expired and fw.expired[0][1] == 449.9 + 350.0
    assert "350" in fw.last_drop and fw.dropped == 2


def test_hold_back_delivers_one_packet_late() -> None:
    sim = Simulator(1)
    sim.add_host("B", B, LINUX)
    got: list[float] = []
    sim.hosts["B"].deliver = lambda pkt, t: got.append(t)  # type: ignore[method-assign]
    hb = HoldBack(sim, lambda p: p.seg.flags == SYN, 5.0)
    assert hb.process(_pkt(ACK), 0.0, "fwd") is not None
    assert hb.process(_pkt(SYN), 0.0, "fwd") is None and "5.000" in hb.last_drop
    assert hb.process(_pkt(SYN), 0.1, "fwd") is not None  # only the first match is held
    sim.run(10.0)
    assert got == [5.0] and hb.delivered_at == 5.0
