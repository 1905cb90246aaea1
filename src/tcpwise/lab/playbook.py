"""How the lab plays each catalogue scenario — or why it cannot.

Theory of operation
-------------------
A scenario's ``build(params)`` gives the script both worlds run. This module adds what the kernel run needs
around it, one :class:`Plan` per scenario id:

* ``overrides`` — ``--set`` values that scale the story down to a lab run of seconds (a keepalive of 1 s instead
  of 60 s, a port range of 4 ports instead of 28 000); conformance and ``lab run`` both use them, the model
  runs the very same parameters;
* ``horizon`` — how long to run and compare when the point comes later than the default settle time after the
  last step (a give-up, a FIN_WAIT_2 expiry);
* ``sim_setup`` / ``lab_hooks`` — the same extra component in both worlds where a script step does not exist:
  a stateful firewall at R (nft conntrack with a short established timeout) and the model's
  :class:`~tcpwise.sim.middlebox.StatefulFirewall`; a hold-back rule in the delay line and the model's
  :class:`~tcpwise.sim.middlebox.HoldBack`; spoofed SYNs from the third host's raw socket and the model's
  :class:`~tcpwise.sim.apps.SynFlood`; an application that stops reading; a crafted segment injected at R;
* ``level`` — ``segment`` (default), ``state`` (only state sequences are comparable, ``reason`` says why) or
  ``none`` (the kernel cannot play it, ``reason`` says why);
* ``deviation`` — a documented Linux behaviour the model does not reproduce (docs/deviations.md);
* ``ignore`` — segment fields left out of the comparison for this scenario, ``reason`` says why (the table shows
  it even when everything else matches).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tcpwise.lab.executor import LabHooks

__all__ = ["Plan", "plan_for", "PLANS", "playable"]

P = dict[str, Any]
SimSetup = Callable[[P], Callable[[Any], None]]
HookMaker = Callable[[P, Any], LabHooks]


@dataclass(frozen=True)
class Plan:
    level: str = "segment"
    reason: str = ""
    overrides: dict[str, str] = field(default_factory=dict)
    horizon: float | None = None
    sim_setup: SimSetup | None = None
    hooks: HookMaker | None = None
    deviation: str = ""
    ignore: tuple[str, ...] = ()  # segment fields left out of the comparison (``reason`` says why)

    def lab_hooks(self, params: P, script: Any) -> LabHooks:
        return self.hooks(params, script) if self.hooks is not None else LabHooks()


PLANS: dict[str, Plan] = {}


def plan_for(sid: str) -> Plan:
    """The scenario's plan; a scenario without one plays its script as it is (segment level)."""
    return PLANS.get(sid, Plan())


def playable() -> list[str]:
    from tcpwise.scenarios import catalogue

    return [sc.id for sc in catalogue() if sc.build is not None and plan_for(sc.id).level != "none"]


def _plan(sid: str, **kw: Any) -> None:
    PLANS[sid] = Plan(**kw)


# --- scaled-down liveness stories -----------------------------------------------------------------------------
_plan(
    "half-open-crash",
    overrides={"crash_at": "1", "reboot_at": "2", "send_at": "3"},
)
_plan(
    "half-open-partition",
    # TCP_USER_TIMEOUT 3 s instead of tcp_retries2's 924.6 s: the same backoff series, cut where the user asks.
    overrides={"user_timeout": "3"},
    horizon=6.5,
)
_plan(
    "keepalive",
    # 1 s idle, 1 s interval, 2 probes: the same probes and give-up, 60x faster (TCP_KEEPIDLE/INTVL/CNT).
    overrides={"keepalive_time": "1", "keepalive_intvl": "1", "keepalive_probes": "2"},
    horizon=7.5,
)
_plan(
    "heartbeat-asymmetry",
    # A 3 s heartbeat against a 1 s idle timeout: the same asymmetry (heartbeat > idle), 10x faster.
    overrides={"interval": "3", "idle_timeout": "1"},
)


# --- extra components, the same in both worlds -----------------------------------------------------------------
def _firewall_sim(p: P) -> Callable[[Any], None]:
    def setup(sim: Any) -> None:
        from tcpwise.sim.middlebox import StatefulFirewall

        fw = StatefulFirewall(idle_timeout=p["idle_timeout"], reply_rst=p["on_expired"] == "rst", sim=sim)
        sim.channel("A", "B").elements.append((fw, "fwd"))
        sim.channel("B", "A").elements.append((fw, "rev"))

    return setup


def _firewall_lab(p: P, script: Any) -> LabHooks:
    def setup(ex: Any) -> None:
        # R becomes a stateful firewall: conntrack forgets established flows after idle_timeout s and a
        # non-SYN segment of a forgotten flow is dropped (nft ct state new, the classic rule).
        ex.faults.middlebox_idle_timeout(int(p["idle_timeout"]))

    return LabHooks(setup=setup)


_plan(
    "middlebox-idle-timeout",
    # A 2 s idle timeout (conntrack's established timeout at R) and A's send at 4 s; compared while A
    # retransmits into the void (B's own push 10 s later is left out: the story is the same).
    overrides={"idle_timeout": "2", "send_at": "4"},
    horizon=9.5,
    sim_setup=_firewall_sim,
    hooks=_firewall_lab,
)


def _stall_sim(p: P) -> Callable[[Any], None]:
    def setup(sim: Any) -> None:
        from tcpwise.sim.heartbeat import StalledReader

        StalledReader(sim, sim.hosts["A"], p["resume_at"]).attach()

    return setup


def _stall_lab(p: P, script: Any) -> LabHooks:
    def pause(ex: Any, t: float) -> None:
        ex.command("A", {"op": "pause_reads", "sock": "c"})

    def resume(ex: Any, t: float) -> None:
        ex.command("A", {"op": "resume_reads", "sock": "c"})

    return LabHooks(timed=((0.0, pause), (float(p["resume_at"]), resume)))


_plan(
    "rst-on-timeout",
    # send_timeout 3 s, the client resumes reading at 5 s.
    overrides={"send_timeout": "3", "resume_at": "5"},
    horizon=6.5,
    level="state",
    reason="how much a reader that stops reading takes before its window closes is Linux's receive-buffer "
    "accounting (skb truesize, the per-connection scaling ratio): the kernel advertised up to 70 KB where the "
    "model offers its 64 KiB space, so the segment counts differ; states and the RST that ends it agree",
    sim_setup=_stall_sim,
    hooks=_stall_lab,
)


# --- limits at lab scale -----------------------------------------------------------------------------------------
_plan(
    "close-wait-leak",
    # Four requests instead of a thousand; the clients' tcp_fin_timeout 2 s so their orphaned FIN_WAIT_2 expires
    # within the run (a timer the comparison times), while the server's CLOSE_WAIT stays.
    overrides={"fin_timeout": "2"},
    horizon=5.5,
)
_plan(
    "client-leak",
    # Three hosts: A leaks 3 connections against a per-IP limit of 2 (the third is refused with RST), C is served.
    overrides={"leak_conns": "3", "per_ip_limit": "2", "other_requests": "1"},
)

# The flood's spoofed sources: addresses nobody answers for in either world (198.18.3.0/24 is no lab subnet).
FLOOD_SOURCES = tuple(f"198.18.3.{i}" for i in range(1, 251))
FLOOD_SOURCES6 = tuple(f"fd00:3::{i:x}" for i in range(1, 251))


def _flood_sim(p: P) -> Callable[[Any], None]:
    def setup(sim: Any) -> None:
        from tcpwise.sim.apps import SynFlood

        SynFlood(
            sim,
            "X",
            sim.hosts["B"].addr,
            80,
            list(FLOOD_SOURCES),
            rate=p["flood_rate"],
            start=0.0,
            duration=p["flood_duration"],
        )

    return setup


def _flood_lab(p: P, script: Any) -> LabHooks:
    """Bare SYNs with spoofed sources from the attacker host's raw socket, at the model's times."""
    import random

    from tcpwise.vocab import SYN
    from tcpwise.wire.ip import build_packet
    from tcpwise.wire.segment import MssOption, TcpSegment

    rng = random.Random(4987)  # RFC 4987: ports and ISNs of the flood (not compared: relative numbers are)
    n = int(p["flood_rate"] * p["flood_duration"])

    def one(i: int) -> Any:
        sport, isn = 1024 + rng.randrange(64000), rng.randrange(1 << 32)

        def send(ex: Any, t: float) -> None:
            dst = ex.addr("B")
            src = (FLOOD_SOURCES6 if ":" in dst else FLOOD_SOURCES)[i % len(FLOOD_SOURCES)]
            seg = TcpSegment(sport, 80, isn, 0, SYN, 64240, (MssOption(1460),))
            ex.raw_send("X", build_packet(src, dst, seg))

        return send

    return LabHooks(timed=tuple((i / p["flood_rate"], one(i)) for i in range(n)))


_plan(
    "syn-flood",
    # Three hosts: the attacker X sends 8 spoofed SYNs in 0.35 s to a backlog-4 listener without cookies (its
    # SYN queue holds 5), then the legitimate client A connects and gives up 3 s later.
    overrides={
        "backlog": "4",
        "flood_rate": "20",
        "flood_duration": "0.4",
        "client_at": "0.5",
        "timeout": "3",
    },
    horizon=5.5,
    sim_setup=_flood_sim,
    hooks=_flood_lab,
)
_plan(
    "accept-queue-overflow",
    # backlog 2 (the accept queue holds 3), one accept() every 3 s.
    overrides={"backlog": "2", "accept_interval": "3", "duration": "10"},
    horizon=7.5,
)
_plan(
    "pool-dead-connections",
    # The server's idle timeout 1 s, the next burst 2 s later: one dead connection reused, one new one.
    overrides={"server_idle": "1", "gap": "2"},
)
_plan(
    "timewait-pileup",
    # Four ephemeral ports (ip_local_port_range 40000 40003 in A's namespace): four connections leave four
    # TIME_WAITs, the fifth connect() gets EADDRNOTAVAIL.
    overrides={"port_range": "40000-40003", "tw_reuse": "0"},
)


def _hold_first_syn_sim(p: P) -> Callable[[Any], None]:
    def setup(sim: Any) -> None:
        from tcpwise.sim.middlebox import HoldBack
        from tcpwise.vocab import SYN

        sim.channel("A", "B").elements.append(
            (HoldBack(sim, lambda pkt: pkt.seg.flags == SYN, p["old_syn_at"]), "fwd")
        )

    return setup


def _is_bare_syn(packet: bytes) -> bool:
    """A raw IP packet carrying a TCP segment whose flags are exactly SYN."""
    if packet[0] >> 4 == 4:
        off, proto = (packet[0] & 0x0F) * 4, packet[9]
    else:
        off, proto = 40, packet[6]
    return proto == 6 and len(packet) > off + 13 and packet[off + 13] == 0x02


def _hold_first_syn_lab(p: P, script: Any) -> LabHooks:
    from tcpwise.lab.forward import Hold

    hold = Hold(match=_is_bare_syn, until=float("inf"))

    def setup(ex: Any) -> None:
        ex.fwd.holds.append(hold)

    def arm(ex: Any, t: float) -> None:
        hold.until = ex.t0 + float(p["old_syn_at"])  # absolute: the delay line runs on the monotonic clock

    return LabHooks(setup=setup, timed=((0.0, arm),))


_plan(
    "why-three",
    # The first SYN is held in R's delay line until 2 s (a wandering old duplicate), long after A gave up.
    overrides={"old_syn_at": "2"},
    sim_setup=_hold_first_syn_sim,
    hooks=_hold_first_syn_lab,
)
_plan(
    "old-duplicate",
    level="none",
    reason="the story needs an old segment to land inside the new incarnation's window, which the model's "
    "RFC 6528 4 µs ISN clock makes predictable; Linux's ISN (a keyed hash plus a 64 ns clock) is "
    "unpredictable by design, and its 60 s TIME_WAIT cannot be shortened (time_wait=1 is model-only)",
)
_plan(
    "keepalive-race",
    level="none",
    reason="a statistical race over thousands of pooled requests; on the kernel it is reproduced with the real "
    "proxies (nginx, HAProxy) by `tcpwise ladder-race`",
)


# --- the segment-level stories --------------------------------------------------------------------------------
def _reader_sim(p: P) -> Callable[[Any], None]:
    from tcpwise.scenarios.segments import reader_setup

    return reader_setup(p)  # type: ignore[no-any-return]


def _reader_lab(p: P, script: Any) -> LabHooks:
    def pause(ex: Any, t: float) -> None:
        ex.command("B", {"op": "pause_reads", "sock": "s"})

    def resume(ex: Any, t: float) -> None:
        ex.command("B", {"op": "resume_reads", "sock": "s"})

    from tcpwise.scenarios.segments import read_times

    _t1, r1, _t2, r2 = read_times(p)
    return LabHooks(timed=((0.0, pause), (r1, resume), (r1 + 0.05, pause), (r2, resume)))


def _stray_ack_sim(p: P) -> Callable[[Any], None]:
    from tcpwise.scenarios.segments import stray_ack_setup

    return stray_ack_setup(p)  # type: ignore[no-any-return]


def _stray_ack_lab(p: P, script: Any) -> LabHooks:
    """At the scenario's time, craft A's next segment from what the capture saw, acknowledging bytes B never
    sent, and hand it to B from R (the capture sees its delivery only, as the model records it)."""
    from tcpwise.scenarios.segments import INJECT_AT

    def inject(ex: Any, t: float) -> None:
        from tcpwise.lab.capture import parse_frame
        from tcpwise.vocab import ACK, PSH
        from tcpwise.wire.ip import build_packet
        from tcpwise.wire.segment import NopOption, TcpSegment, TimestampsOption
        from tcpwise.wire.seq import seq_add

        ex.capture.read()
        a_addr, b_addr = ex.addr("A"), ex.addr("B")
        last: dict[str, Any] = {}
        for f in ex.capture.frames:
            seg = parse_frame(f.data)
            if seg is not None and not f.outgoing and {seg.src, seg.dst} == {a_addr, b_addr}:
                last[seg.src] = seg
        a, b = last.get(a_addr), last.get(b_addr)
        if a is None or b is None:
            return
        a_next = seq_add(a.seq, a.len + ("F" in a.flags))
        b_next = seq_add(b.seq, b.len + ("F" in b.flags))
        ts_a, ts_b = (a.opts or {}).get("ts"), (b.opts or {}).get("ts")
        opts = (NopOption(), NopOption(), TimestampsOption(ts_a[0], ts_b[0])) if ts_a and ts_b else ()
        stray = TcpSegment(
            a.sport, a.dport, a_next, seq_add(b_next, p["beyond"]), ACK | PSH, a.win, opts, b"x" * 10
        )
        ex.fwd.inject(build_packet(a_addr, b_addr, stray), ex.t0 + t)

    return LabHooks(timed=((INJECT_AT, inject),))


_plan("window-scaling")
_plan(
    "read-window-update",
    sim_setup=_reader_sim,
    hooks=_reader_lab,
    ignore=("win",),
    reason="window values not compared: while unread data piles up Linux's window first grows (rcv_ssthresh, "
    "the scaling ratio it measures from skb truesize) where the model's shrinks; which read sends an update is "
    "compared segment by segment",
)
_plan("ack-unsent-data", sim_setup=_stray_ack_sim, hooks=_stray_ack_lab)
_plan("lost-fin")
