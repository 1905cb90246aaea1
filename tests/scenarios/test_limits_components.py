"""The small simulator components behind the limits/TIME_WAIT scenarios, tested on their own."""

from __future__ import annotations

import numpy as np

from tcpwise.sim.fleet import Lifecycle, _arrivals, simulate_flow, simulate_pool
from tcpwise.sim.nat import TCP_PAWS_MSL, LegacyTwRecycle, Nat
from tcpwise.sim.network import Packet
from tcpwise.vocab import ACK, SYN
from tcpwise.wire.segment import TcpSegment, TimestampsOption


def _syn(tsval: int | None, sport: int = 1000, flags: int = SYN) -> TcpSegment:
    opts = (TimestampsOption(tsval, 0),) if tsval is not None else ()
    return TcpSegment(sport, 80, 1, 0, flags, 65535, opts)


def test_legacy_tw_recycle_drops_older_syn_from_same_ip_only_within_paws_msl() -> None:
    rule = LegacyTwRecycle()
    nat = "198.18.0.254"
    assert rule.process(Packet(nat, "198.18.1.1", _syn(5_000_000), "C1"), 0.0, "fwd") is not None
    # Another host behind the same address, clock behind: dropped.
    assert rule.process(Packet(nat, "198.18.1.1", _syn(1_000_000, 1001), "C2"), 1.0, "fwd") is None
    assert rule.rejected == 1
    # A different source address is a different peer.
    assert rule.process(Packet("198.18.0.9", "198.18.1.1", _syn(1_000_000), "D"), 1.0, "fwd") is not None
    # No timestamps: the rule cannot apply.
    assert rule.process(Packet(nat, "198.18.1.1", _syn(None, 1002), "C2"), 2.0, "fwd") is not None
    # Non-SYN segments are never dropped by it.
    assert rule.process(Packet(nat, "198.18.1.1", _syn(1_000_000, 1003, ACK), "C2"), 2.0, "fwd") is not None
    # The remembered stamp is trusted only TCP_PAWS_MSL seconds.
    assert (
        rule.process(Packet(nat, "198.18.1.1", _syn(1_000_001, 1004), "C2"), TCP_PAWS_MSL + 1.0, "fwd")
        is not None
    )


def test_nat_rewrites_source_and_maps_replies_back() -> None:
    sent: list[Packet] = []

    class FakeSim:
        def transmit(self, sender: str, pkt: Packet, now: float) -> None:
            sent.append(pkt)

        def log_drop(self, pkt: Packet, now: float, reason: str) -> None:
            sent.append(pkt)

    nat = Nat(FakeSim(), "N", "198.18.0.254", first_port=20000)
    out = nat.process(Packet("198.18.0.11", "198.18.1.1", _syn(1, 32768), "C1"), 0.0, "fwd")
    out2 = nat.process(Packet("198.18.0.12", "198.18.1.1", _syn(1, 32768), "C2"), 0.0, "fwd")
    assert out is not None and out2 is not None
    assert (out.src, out.seg.sport) == ("198.18.0.254", 20000)
    assert (out2.src, out2.seg.sport) == ("198.18.0.254", 20001)  # same inside port, different host
    assert out.seg.timestamps == (1, 0)  # options untouched: the clocks pass through
    reply = TcpSegment(80, 20001, 7, 2, SYN | ACK, 65535)
    nat.deliver(Packet("198.18.1.1", "198.18.0.254", reply, "B"), 0.1)
    assert sent[-1].dst == "198.18.0.12" and sent[-1].seg.dport == 32768


def test_arrivals_are_exact_for_fractional_rates() -> None:
    a = _arrivals(333.3, 10_000, 0.001)  # 10 s
    assert int(a.sum()) == 3333
    assert int(_arrivals(0.5, 4000, 0.001).sum()) == 2  # t = 0 and t = 2 s


def test_flow_model_below_limit_never_fails_and_counts_time_wait() -> None:
    lc = Lifecycle(0.1, 0.2, 0.3, 60.0, 60.3, None, 7, 0)
    res = simulate_flow(100.0, 90.0, 28232, lc)
    assert res.failed == 0
    assert res.series["TIME_WAIT"][-1] == 6000  # rate x 60 s
    assert np.all(np.diff(res.series["t"]) > 0)


def test_flow_model_linger_lifecycle_has_no_time_wait() -> None:
    lc = Lifecycle(0.1, 0.2, None, 0.0, 0.2, None, 6, 1)
    res = simulate_flow(10000.0, 10.0, 28232, lc)
    assert res.failed == 0 and res.peak_time_wait == 0 and res.peak_ports == 2000


def test_pool_is_littles_law() -> None:
    res = simulate_pool(1000.0, 10.0, 0.1)
    assert res.succeeded == 100 and res.peak_time_wait == 0 and res.failed == 0
