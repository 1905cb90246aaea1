"""timewait-pileup: many short connections from one client to one server port, and what TIME_WAIT does to it.

Theory of operation
-------------------
Client A (198.18.0.1) opens one connection per request to B (198.18.1.1):80, sends a request, reads the
response and close()s first, so A is the active closer and holds every TIME_WAIT (60 s, Linux
TCP_TIMEWAIT_LEN). Each TIME_WAIT pins A's ephemeral port *towards that destination*: with
``ip_local_port_range`` 32768-60999 (28232 ports) a client runs out at ~28232/60 ~ 470 connections/s, and
connect() fails with EADDRNOTAVAIL.

Two models, one story:

* **packet model** (``model=packet``, automatic for small runs): the sim's endpoints exchange every segment;
  the actors of :mod:`tcpwise.sim.apps` play client and server.
* **flow model** (``model=flow``, automatic for big runs such as ``--set rate=10000 --set duration=120``): one
  full packet-level lifecycle is run first with the same parameters and *measured* (handshake, close, TIME_WAIT
  entry and length, when the port is free, when tcp_tw_reuse may take it over); :mod:`tcpwise.sim.fleet` then
  replays that timeline for every connection with a vectorised port-allocation recurrence. The result is a
  time series (``run.series``) instead of an event log; ``run.events`` holds the one calibration lifecycle.

The remedies are compared at the same rate, each calibrated from its own packet-level lifecycle:
``tcp_tw_reuse=1`` with and without timestamps, a keep-alive connection pool, and close() with
SO_LINGER {1, 0}. Two corrections are checked: ``tcp_fin_timeout`` changes the FIN_WAIT_2 orphan timeout and
not TIME_WAIT, and the removed ``tcp_tw_recycle`` broke clients behind NAT (``--set nat=1``: three clients
behind one NAT address with different timestamp clocks, against a server with the legacy rule and without it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tcpwise.endpoint.config import LINUX
from tcpwise.errors import UsageError
from tcpwise.events import Check, Run
from tcpwise.scenarios import query as q
from tcpwise.scenarios.base import Param, Scenario, claim, register
from tcpwise.script import Close, Connect, HostSpec, LinkSpec, Listen, Script, Send
from tcpwise.sim.apps import Server, ShortConnClient
from tcpwise.sim.core import SimHost, Simulator
from tcpwise.sim.fleet import FlowResult, Lifecycle, simulate_flow, simulate_pool
from tcpwise.sim.network import Impairments
from tcpwise.vocab import AppCall, AppWhy

__all__ = ["calibrate", "packet_pileup", "parse_port_range", "A_ADDR", "B_ADDR"]

P = dict[str, Any]
A_ADDR = "198.18.0.1"
B_ADDR = "198.18.1.1"
NAT_ADDR = "198.18.0.254"
PACKET_AUTO_LIMIT = 3000  # lifecycles up to which model=auto uses the packet model
PACKET_MAX = 200_000


def parse_port_range(text: str) -> tuple[int, int]:
    try:
        lo_s, hi_s = text.replace(" ", "").split("-")
        lo, hi = int(lo_s), int(hi_s)
    except ValueError:
        raise UsageError(f"port_range={text!r}: expected LO-HI, e.g. 32768-60999") from None
    if not (1 <= lo <= hi <= 65535):
        raise UsageError(f"port_range={text!r}: need 1 <= LO <= HI <= 65535")
    return lo, hi


def _validate(p: P) -> None:
    if not (0 < p["rate"] <= 1_000_000):
        raise UsageError(f"rate={p['rate']}: must be > 0 and <= 1000000 connections/s")
    if not (0 < p["duration"] <= 86_400):
        raise UsageError(f"duration={p['duration']}: must be > 0 and <= 86400 s")
    if p["model"] not in ("auto", "packet", "flow"):
        raise UsageError(f"model={p['model']!r}: valid: auto, packet, flow")
    if p["tw_reuse"] not in (0, 1, 2):
        raise UsageError(f"tw_reuse={p['tw_reuse']}: valid: 0, 1, 2")
    if not (0 < p["fin_timeout"] <= 3600):
        raise UsageError(f"fin_timeout={p['fin_timeout']}: must be > 0 and <= 3600 s")
    if not (0 <= p["delay"] <= 0.4):
        # A round trip beyond the 1 s initial RTO makes every lifecycle retransmit spuriously; the stray segments
        # then meet closed sockets, and their RSTs end TIME_WAIT early (Linux tcp_rfc1337=0): another story.
        raise UsageError(
            f"delay={p['delay']}: must be between 0 and 0.4 s (round trip below the 1 s initial RTO)"
        )
    if not (2 <= p["nat_clients"] <= 10):
        raise UsageError(f"nat_clients={p['nat_clients']}: must be between 2 and 10")
    if not (1 <= p["nat_requests"] <= 100):
        raise UsageError(f"nat_requests={p['nat_requests']}: must be between 1 and 100")
    parse_port_range(p["port_range"])


# ============================================================================================================
# packet-level building blocks
# ============================================================================================================
def _pair(
    p: P,
    seed: int,
    *,
    record: bool,
    a: dict[str, Any] | None = None,
    port_range: tuple[int, int] | None = None,
) -> tuple[Simulator, SimHost, SimHost]:
    sim = Simulator(seed, record=record)
    sim.default_imp = Impairments(delay=p["delay"])
    knobs: dict[str, Any] = {
        "fin_timeout": p["fin_timeout"],
        "tw_reuse": p["tw_reuse"],
        "timestamps": p["timestamps"],
    }
    knobs.update(a or {})
    acfg = LINUX.with_(**knobs)
    bcfg = LINUX.with_(timestamps=acfg.timestamps)
    ha = sim.add_host("A", A_ADDR, acfg, "client", port_range or parse_port_range(p["port_range"]))
    hb = sim.add_host("B", B_ADDR, bcfg, "server")
    return sim, ha, hb


@dataclass
class Calibration:
    lc: Lifecycle
    run: Run
    request_time: float  # connect() returns -> response complete, on an open connection
    server_errors: list[str] = field(default_factory=list)


def calibrate(
    p: P, seed: int = 1, *, close_mode: str = "close", a: dict[str, Any] | None = None, reuse: bool = True
) -> Calibration:
    """Run ONE full lifecycle on the packet model and measure its timeline (the flow model's input)."""
    sim, ha, hb = _pair(p, seed, record=True, a=a)
    Server(sim, hb, 80)
    ShortConnClient(sim, ha, B_ADDR, 80, times=[0.0], close_mode=close_mode)
    sim.run(3.0 + LINUX.time_wait + 12 * p["delay"])
    run = Run(scenario="timewait-pileup", seed=seed, hosts=sim.host_models(), events=sim.events, world="sim")
    est = q.first_time_in(run, "A", "ESTABLISHED") or 0.0
    close_ev = next((e for e in q.apps(run, "A", AppCall.CLOSE)), None)
    t_close = close_ev.t if close_ev else est
    tw_at = q.first_time_in(run, "A", "TIME_WAIT")
    tw = q.time_in_state(run, "A", "TIME_WAIT") if tw_at is not None else 0.0
    t_free = q.first_time_in(run, "A", "CLOSED")
    done = next((e.t for e in q.apps(run, "A", why=AppWhy.RESPONSE_DONE)), t_close)
    reuse_after = None
    cfg = ha.cfg
    if reuse and tw_at is not None and cfg.tw_reuse == 1:
        reuse_after = _measure_reuse(p, seed, a, tw_at, tw or 0.0)
    lc = Lifecycle(
        established=est,
        close=t_close,
        time_wait_at=tw_at,
        time_wait=tw or 0.0,
        port_free=t_free if t_free is not None else (tw_at or t_close) + (tw or 0.0),
        reuse_after=reuse_after,
        segments=len(q.sends(run)),
        rsts=sum(1 for e in q.sends(run) if e.segment is not None and "R" in e.segment.flags),
        server_open=q.first_time_in(run, "B", "SYN_RCVD") or 0.0,
        server_closed=q.first_time_in(run, "B", "CLOSED") or 0.0,
    )
    errs = [e.errno or "" for e in q.errors(run, "B")]
    return Calibration(lc, run, max(done - est, 1e-6), errs)


def _measure_reuse(p: P, seed: int, a: dict[str, Any] | None, tw_at: float, tw: float) -> float | None:
    """With a one-port range, probe connect() every 0.1 s after the first connection enters TIME_WAIT: the
    first success tells when tcp_tw_reuse lets a new connection take the TIME_WAIT port over (None: only when
    TIME_WAIT ended by itself)."""
    sim, ha, hb = _pair(p, seed, record=False, a=a, port_range=(40000, 40000))
    Server(sim, hb, 80)
    ShortConnClient(sim, ha, B_ADDR, 80, times=[0.0])
    found: list[float] = []

    def probe(t: float) -> None:
        if found:
            return
        try:
            ep = ha.stack.connect(B_ADDR, 80, sim.now)
        except Exception:  # ConnectError: still blocked
            sim.at(t + 0.1, probe, t + 0.1)
            return
        found.append(sim.now)
        ep.abort(sim.now)
        ha.after_call()

    sim.at(tw_at + 0.1, probe, tw_at + 0.1)
    sim.run(tw_at + tw + 1.0)
    if not found or found[0] - tw_at >= tw - 0.05:
        return None
    return round(found[0] - tw_at, 6)


def _fin_wait_2(p: P, seed: int) -> float | None:
    """The FIN_WAIT_2 orphan timeout as measured: the server never closes, the client closes after reading."""
    sim, ha, hb = _pair(p, seed, record=True)
    Server(sim, hb, 80, on_eof="leak")
    ShortConnClient(sim, ha, B_ADDR, 80, times=[0.0])
    sim.run(3.0 + p["fin_timeout"] + 12 * p["delay"])
    run = Run(scenario="", events=sim.events)
    return q.time_in_state(run, "A", "FIN_WAIT_2")


def packet_pileup(p: P, seed: int = 1) -> tuple[FlowResult, Simulator]:
    """The pile-up on the packet model: every segment of every connection, sampled once a second."""
    rate, duration = p["rate"], p["duration"]
    n = int(math.ceil(rate * duration - 1e-9))
    sim, ha, hb = _pair(p, seed, record=False)
    Server(sim, hb, 80)
    client = ShortConnClient(sim, ha, B_ADDR, 80, times=(i / rate for i in range(n)), keep_failures=1)
    series: dict[str, list[float]] = {
        k: []
        for k in (
            "t",
            "TIME_WAIT",
            "ports_in_use",
            "ESTABLISHED",
            "connects",
            "failed_connects",
            "server_conns",
        )
    }
    last = [0, 0]
    peak = [0, 0]

    def sample(t: float) -> None:
        counts = ha.stack.state_counts()
        st = client.stats
        series["t"].append(round(t, 6))
        series["TIME_WAIT"].append(counts.get("TIME_WAIT", 0))
        series["ports_in_use"].append(len(ha.stack.conns))
        series["ESTABLISHED"].append(counts.get("ESTABLISHED", 0))
        ok = st.attempts - st.connect_failed
        series["connects"].append(ok - last[0])
        series["failed_connects"].append(st.connect_failed - last[1])
        series["server_conns"].append(len(hb.stack.conns))
        last[0], last[1] = ok, st.connect_failed
        peak[0] = max(peak[0], counts.get("TIME_WAIT", 0))
        peak[1] = max(peak[1], len(ha.stack.conns))
        if t + 1.0 <= duration + 1e-9:
            sim.at(t + 1.0 - 1e-9, sample, t + 1.0)

    sim.at(1.0 - 1e-9, sample, 1.0)
    sim.run(duration)
    st = client.stats
    res = FlowResult(
        series=series,
        attempts=st.attempts,
        succeeded=st.attempts - st.connect_failed,
        failed=st.connect_failed,
        first_failure=st.failed_at[0] if st.failed_at else None,
        peak_time_wait=peak[0],
        peak_ports=peak[1],
        dt=0.0,
        model="packet",
    )
    return res, sim


# ============================================================================================================
# the scenario
# ============================================================================================================
def _build(p: P) -> Script:
    """The pile-up at lab scale, as a script: on a port range of a few ports, one short connection after another
    (A closes first and keeps TIME_WAIT on each port) until connect() finds no free port (EADDRNOTAVAIL)."""
    _validate(p)
    lo, hi = parse_port_range(p["port_range"])
    ports = hi - lo + 1
    if ports > 16:
        raise UsageError(
            f"port_range={p['port_range']!r}: the scripted pile-up runs one connection per port; give it a "
            "small range, e.g. --set port_range=40000-40003"
        )
    d = p["delay"]
    gap = max(0.5, 10 * d)
    steps: list[Any] = [Listen(0.0, "B", 80, on_eof="close")]
    for i in range(ports + 1):
        t, c, s = i * gap, f"c{i}", "s" if i == 0 else f"s{i + 1}"
        steps.append(Connect(t, "A", "B", 80, sock=c))
        if i < ports:
            steps += [
                Send(t + 3 * d, "A", 100, sock=c),
                Send(t + 5 * d, "B", 200, sock=s),
                Close(t + 7 * d, "A", sock=c),
            ]
    knobs = {"tw_reuse": p["tw_reuse"], "timestamps": p["timestamps"], "fin_timeout": p["fin_timeout"]}
    hosts = (
        HostSpec("A", A_ADDR, "client", {**knobs, "port_range": (lo, hi)}),
        HostSpec("B", B_ADDR, "server", {"timestamps": p["timestamps"]}),
    )
    return Script(hosts, tuple(steps), LinkSpec(delay=d), duration=(ports + 1) * gap + 2.0)


def _simulate(p: P, seed: int) -> Run:
    _validate(p)
    if p["nat"]:
        return _simulate_nat(p, seed)
    lo, hi = parse_port_range(p["port_range"])
    ports = hi - lo + 1
    rate, duration = p["rate"], p["duration"]
    model = p["model"]
    if model == "auto":
        model = "packet" if rate * duration <= PACKET_AUTO_LIMIT else "flow"
    if model == "packet" and rate * duration > PACKET_MAX:
        raise UsageError(
            f"model=packet: rate*duration = {rate * duration:.0f} connections is too many for the "
            f"packet model (max {PACKET_MAX}); use model=flow (calibrated from the packet model)"
        )
    base = calibrate(p, seed)
    lc = base.lc
    if model == "packet":
        main, sim = packet_pileup(p, seed)
        segs = sim.counters["segments"]
    else:
        main = simulate_flow(rate, duration, ports, lc)
        segs = 0
    # The no-remedy baseline: the same parameters without tcp_tw_reuse=1 (when the user asked for it).
    plain = base if p["tw_reuse"] != 1 else calibrate(p, seed, a={"tw_reuse": 0})
    threshold = ports / plain.lc.hold
    # Remedies compared at the same rate when it is above the limit, else at twice the limit (so each one has
    # something to fix); all with the flow model, each calibrated from its own packet-level lifecycle.
    r_cmp = rate if rate >= 1.2 * threshold else 2.0 * threshold
    d_cmp = duration if duration >= plain.lc.hold else 1.5 * plain.lc.hold
    base_cmp = simulate_flow(r_cmp, d_cmp, ports, plain.lc)
    reuse_ts = calibrate(p, seed, a={"tw_reuse": 1, "timestamps": True})
    reuse_nots = calibrate(p, seed, a={"tw_reuse": 1, "timestamps": False})
    linger = calibrate(p, seed, close_mode="linger")
    remedies = {
        "none": base_cmp,
        "tw_reuse=1": simulate_flow(r_cmp, d_cmp, ports, reuse_ts.lc),
        "tw_reuse=1,timestamps=0": simulate_flow(r_cmp, d_cmp, ports, reuse_nots.lc),
        "pool": simulate_pool(r_cmp, d_cmp, base.request_time),
        "SO_LINGER{1,0}": simulate_flow(r_cmp, d_cmp, ports, linger.lc),
    }
    below = simulate_flow(0.9 * threshold, 2.0 * plain.lc.hold, ports, plain.lc)
    above = simulate_flow(1.1 * threshold, 2.0 * plain.lc.hold, ports, plain.lc)
    fw2 = _fin_wait_2(p, seed)

    run = base.run
    run.series = main.series
    # Values the checks and narratives quote (all measured above).
    run.summary["values"] = {
        "model": model,
        "ports": ports,
        "threshold": round(threshold, 1),
        "hold": round(plain.lc.hold, 3),
        "main_threshold": round(ports / lc.hold, 1),
        "time_wait": lc.time_wait,
        "time_wait_at": lc.time_wait_at,
        "fin_wait_2": fw2,
        "segments_per_lifecycle": lc.segments,
        "attempts": main.attempts,
        "succeeded": main.succeeded,
        "failed": main.failed,
        "first_failure": main.first_failure,
        "peak_time_wait": main.peak_time_wait,
        "peak_ports": main.peak_ports,
        "final_time_wait": main.series["TIME_WAIT"][-1] if main.series["t"] else 0,
        "packet_segments": segs,
        "compare_rate": round(r_cmp, 1),
        "compare_duration": round(d_cmp, 1),
        "dt": main.dt,
        "reuse_capacity": round(ports / reuse_ts.lc.hold, 1),
        "linger_capacity": round(ports / linger.lc.hold, 1),
        "reuse_after": reuse_ts.lc.reuse_after,
        "reuse_after_no_ts": reuse_nots.lc.reuse_after,
        "pool_request_time": round(base.request_time, 6),
        "linger_rsts": linger.lc.rsts,
        "linger_server_errors": linger.server_errors,
        "linger_time_wait_at": linger.lc.time_wait_at,
        "below": {"rate": round(0.9 * threshold, 1), "failed": below.failed},
        "above": {"rate": round(1.1 * threshold, 1), "failed": above.failed},
        "remedies": {
            k: {
                "attempts": v.attempts,
                "failed": v.failed,
                "connections_opened": v.succeeded,
                "peak_time_wait": v.peak_time_wait,
                "peak_ports": v.peak_ports,
            }
            for k, v in remedies.items()
        },
    }
    return run


def _expected_tw(p: P, v: dict[str, Any]) -> float:
    """TIME_WAIT count expected at the end of the run from R and the measured timeline (no port limit)."""
    tw_at = v["time_wait_at"] or 0.0
    span = min(max(p["duration"] - tw_at, 0.0), v["time_wait"])
    return float(p["rate"] * span)


def _check(run: Run, p: P) -> list[Check]:
    if p["nat"]:
        return _check_nat(run, p)
    v = q.values(run)
    tw, fw2 = v["time_wait"], v["fin_wait_2"]
    rate, ports = p["rate"], v["ports"]
    exp = _expected_tw(p, v)
    final = v["final_time_wait"]
    checks = [
        claim(
            f"The active closer (client A) holds TIME_WAIT for {LINUX.time_wait:g} s (TCP_TIMEWAIT_LEN).",
            f"主动关闭方（客户端 A）的 TIME_WAIT 持续 {LINUX.time_wait:g} 秒（TCP_TIMEWAIT_LEN）。",
            abs(tw - LINUX.time_wait) < 1e-6,
            f"measured on the packet model: {tw:g} s",
        ),
        claim(
            f"tcp_fin_timeout={p['fin_timeout']:g} changes the FIN_WAIT_2 orphan timeout, not TIME_WAIT.",
            f"tcp_fin_timeout={p['fin_timeout']:g} 改变的是 FIN_WAIT_2（孤儿连接）超时，而不是 TIME_WAIT。",
            fw2 is not None and abs(fw2 - p["fin_timeout"]) < 1e-6 and abs(tw - LINUX.time_wait) < 1e-6,
            f"FIN_WAIT_2 orphan lasted {fw2} s; TIME_WAIT lasted {tw:g} s",
        ),
    ]
    span = exp / rate
    live = rate * (v["time_wait_at"] or 0.0)
    if exp < ports:
        checks.append(
            claim(
                f"At {rate:g} conn/s the client holds ~rate x {span:g} s = {exp:.0f} TIME_WAIT sockets "
                f"(rate x 60 s once the run is longer than TIME_WAIT).",
                f"每秒 {rate:g} 个连接时，客户端持有约 速率 x {span:g} 秒 = {exp:.0f} 个 TIME_WAIT（运行超过 TIME_WAIT 时长后即 速率 x 60 秒）。",
                abs(final - exp) <= 0.02 * exp + 2,
                f"TIME_WAIT at t={p['duration']:g} s: {final} (expected {exp:.0f})",
            )
        )
    else:
        checks.append(
            claim(
                f"At {rate:g} conn/s rate x {LINUX.time_wait:g} s = {exp:.0f} exceeds the {ports} ports: TIME_WAIT "
                f"fills the port range.",
                f"每秒 {rate:g} 个连接时 速率 x {LINUX.time_wait:g} 秒 = {exp:.0f}，超过 {ports} 个端口：TIME_WAIT 占满端口范围。",
                # Every port is taken; all but those of the connections still open (rate x time to TIME_WAIT) are in
                # TIME_WAIT.
                v["peak_ports"] >= ports and v["peak_time_wait"] >= 0.98 * (ports - min(ports, live)),
                f"peak ports in use {v['peak_ports']}, peak TIME_WAIT {v['peak_time_wait']} of {ports} ports "
                f"(up to {live:.0f} may be held by connections not yet closed)",
            )
        )
    thr = v["threshold"]
    checks.append(
        claim(
            f"One client to one destination runs out of ports at {ports}/{v['hold']:.2f} s = {thr:.0f} conn/s: below "
            f"it no connect() fails, above it connect() fails with EADDRNOTAVAIL.",
            f"单个客户端连同一目的地址端口，在 {ports}/{v['hold']:.2f} 秒 = {thr:.0f} 连接/秒 时耗尽端口：低于它 connect() 不失败，"
            f"高于它 connect() 以 EADDRNOTAVAIL 失败。",
            v["below"]["failed"] == 0 and v["above"]["failed"] > 0,
            f"{v['below']['rate']} conn/s: {v['below']['failed']} failed; {v['above']['rate']} conn/s: "
            f"{v['above']['failed']} failed (flow model)",
        )
    )
    if rate > v["main_threshold"] * 1.001 and p["duration"] > ports / rate:
        first = v["first_failure"]
        checks.append(
            claim(
                f"At {rate:g} conn/s connect() starts failing with EADDRNOTAVAIL once all {ports} ports are held.",
                f"每秒 {rate:g} 个连接时，所有 {ports} 个端口被占用后 connect() 开始以 EADDRNOTAVAIL 失败。",
                v["failed"] > 0
                and first is not None
                and abs(first - ports / rate) <= 1.0 / rate + v["dt"] + 0.002,
                f"{v['failed']} of {v['attempts']} connects failed; first failure at t={first} s "
                f"(ports/rate = {ports / rate:.3f} s)",
            )
        )
    else:
        checks.append(
            claim(
                f"At {rate:g} conn/s no connect() fails.",
                f"每秒 {rate:g} 个连接时 connect() 没有失败。",
                v["failed"] == 0,
                f"{v['failed']} of {v['attempts']} connects failed",
            )
        )
    rem = v["remedies"]
    base_f = rem["none"]["failed"]
    r_cmp = v["compare_rate"]
    reuse_f, cap_r = rem["tw_reuse=1"]["failed"], v["reuse_capacity"]
    if r_cmp < cap_r:
        reuse_claim = (
            f"tcp_tw_reuse=1 (client side, with timestamps) lets connect() take over a TIME_WAIT port after "
            f"~1 s: no failures at {r_cmp:g} conn/s.",
            f"tcp_tw_reuse=1（客户端侧、需时间戳）允许 connect() 在约 1 秒后接管 TIME_WAIT 端口：每秒 {r_cmp:g} 个连接也不失败。",
        )
        reuse_ok = reuse_f == 0
    else:
        reuse_claim = (
            f"tcp_tw_reuse=1 (client side, with timestamps) lets connect() take over a TIME_WAIT port after "
            f"~1 s: the limit rises from {thr:.0f} to {cap_r:.0f} conn/s, so fewer connects fail.",
            f"tcp_tw_reuse=1（客户端侧、需时间戳）允许 connect() 在约 1 秒后接管 TIME_WAIT 端口：上限从 {thr:.0f} "
            f"提高到 {cap_r:.0f} 连接/秒，失败更少。",
        )
        reuse_ok = reuse_f < base_f
    lin_f, cap_l = rem["SO_LINGER{1,0}"]["failed"], v["linger_capacity"]
    checks += [
        claim(
            reuse_claim[0],
            reuse_claim[1],
            v["reuse_after"] is not None and reuse_ok and base_f > 0,
            f"reuse allowed {v['reuse_after']} s into TIME_WAIT (packet model); failed connects: "
            f"{reuse_f} vs {base_f} without it",
        ),
        claim(
            "tcp_tw_reuse=1 without timestamps does nothing: the TIME_WAIT port stays blocked.",
            "没有时间戳时 tcp_tw_reuse=1 不起作用：TIME_WAIT 端口依旧被占用。",
            v["reuse_after_no_ts"] is None and rem["tw_reuse=1,timestamps=0"]["failed"] == base_f > 0,
            f"reuse never allowed before TIME_WAIT ended (packet model); failed connects: "
            f"{rem['tw_reuse=1,timestamps=0']['failed']} = {base_f}",
        ),
        claim(
            "A keep-alive connection pool reuses a few connections: no TIME_WAIT pile-up, no failures.",
            "长连接（连接池 / keep-alive）复用少量连接：没有 TIME_WAIT 堆积，也没有失败。",
            rem["pool"]["peak_time_wait"] == 0 and rem["pool"]["failed"] == 0,
            f"{rem['pool']['connections_opened']} connections for {r_cmp:g} requests/s "
            f"(request time {v['pool_request_time']:.3f} s), TIME_WAIT peak {rem['pool']['peak_time_wait']}",
        ),
        claim(
            "close() with SO_LINGER {1, 0} leaves no TIME_WAIT, but it is abortive: RST, the peer sees an error.",
            "SO_LINGER {1, 0} 的 close() 不留 TIME_WAIT，但它是异常终止：发送 RST，对端看到错误。",
            v["linger_time_wait_at"] is None
            and rem["SO_LINGER{1,0}"]["peak_time_wait"] == 0
            and (lin_f == 0 if r_cmp < cap_l else lin_f < base_f)
            and v["linger_rsts"] >= 1
            and bool(v["linger_server_errors"]),
            f"{v['linger_rsts']} RST per lifecycle, server saw {', '.join(v['linger_server_errors']) or 'nothing'}, "
            f"TIME_WAIT peak {rem['SO_LINGER{1,0}']['peak_time_wait']}, failed {rem['SO_LINGER{1,0}']['failed']}",
        ),
    ]
    return checks


def _narrate(run: Run, p: P) -> tuple[str, str]:
    if p["nat"]:
        return _narrate_nat(run, p)
    v = q.values(run)
    rem = v["remedies"]
    how = (
        "the packet model (every segment of every connection)"
        if v["model"] == "packet"
        else f"the flow model, calibrated from one packet-model lifecycle with the same parameters "
        f"({v['segments_per_lifecycle']} segments, TIME_WAIT from t={v['time_wait_at'] or 0.0:.3f} s for "
        f"{v['time_wait']:g} s)"
    )
    how_zh = (
        "报文级模型（每条连接的每个报文段）"
        if v["model"] == "packet"
        else f"流级模型：由一次相同参数的报文级完整生命周期标定（{v['segments_per_lifecycle']} 个报文段，"
        f"TIME_WAIT 自 t={v['time_wait_at'] or 0.0:.3f} 秒起持续 {v['time_wait']:g} 秒）"
    )
    fail = (
        f"{v['failed']} of {v['attempts']} connect() calls failed with EADDRNOTAVAIL, the first at "
        f"t={v['first_failure'] or 0.0:.3f} s"
        if v["failed"]
        else f"all {v['attempts']} connects succeeded"
    )
    fail_zh = (
        f"{v['attempts']} 次 connect() 中有 {v['failed']} 次以 EADDRNOTAVAIL 失败，第一次在 t={v['first_failure'] or 0.0:.3f} 秒"
        if v["failed"]
        else f"{v['attempts']} 次连接全部成功"
    )
    r_cmp = v["compare_rate"]
    en = (
        f"Client A opens {p['rate']:g} short connections per second to B:80 for {p['duration']:g} s and closes "
        f"each one first, so A holds every TIME_WAIT ({v['time_wait']:g} s, even with tcp_fin_timeout="
        f"{p['fin_timeout']:g}: that knob only ended the FIN_WAIT_2 orphan, after {v['fin_wait_2']:g} s). "
        f"Run on {how}: TIME_WAIT peaked at {v['peak_time_wait']} and {fail}. Each port is held "
        f"{v['hold']:.2f} s, so {v['ports']} ports carry at most {v['threshold']:.0f} connections/s to one "
        f"destination. Failed connects at {r_cmp:g} conn/s — no remedy: {rem['none']['failed']}; "
        f"tcp_tw_reuse=1: {rem['tw_reuse=1']['failed']} (a TIME_WAIT port is taken over {v['reuse_after']} s "
        f"into TIME_WAIT); tcp_tw_reuse=1 without timestamps: {rem['tw_reuse=1,timestamps=0']['failed']}; "
        f"keep-alive pool: {rem['pool']['failed']} ({rem['pool']['connections_opened']} connections carry all "
        f"requests); SO_LINGER {{1,0}}: {rem['SO_LINGER{1,0}']['failed']} and no TIME_WAIT, but every close is a "
        f"RST the server sees as {', '.join(v['linger_server_errors']) or 'an error'}."
    )
    zh = (
        f"客户端 A 每秒向 B:80 建立 {p['rate']:g} 条短连接，持续 {p['duration']:g} 秒，且每次都先关闭，所以 TIME_WAIT 全在 A 上"
        f"（{v['time_wait']:g} 秒；即使 tcp_fin_timeout={p['fin_timeout']:g}：它只结束 FIN_WAIT_2 孤儿连接，实测 {v['fin_wait_2']:g} 秒）。"
        f"使用{how_zh}：TIME_WAIT 峰值 {v['peak_time_wait']}，{fail_zh}。每个端口被占用 {v['hold']:.2f} 秒，"
        f"因此 {v['ports']} 个端口对同一目的地址每秒最多支撑 {v['threshold']:.0f} 个连接。每秒 {r_cmp:g} 个连接时：不做处理失败 "
        f"{rem['none']['failed']} 次；tcp_tw_reuse=1 失败 {rem['tw_reuse=1']['failed']} 次（进入 TIME_WAIT {v['reuse_after']} 秒后即可接管端口）；"
        f"无时间戳的 tcp_tw_reuse=1 失败 {rem['tw_reuse=1,timestamps=0']['failed']} 次；连接池失败 {rem['pool']['failed']} 次，"
        f"只用 {rem['pool']['connections_opened']} 条连接；SO_LINGER {{1,0}} 失败 {rem['SO_LINGER{1,0}']['failed']} 次、"
        f"没有 TIME_WAIT，但每次关闭都是 RST，服务端看到 {', '.join(v['linger_server_errors']) or '错误'}。"
    )
    return en, zh


# ============================================================================================================
# the NAT variant: why tcp_tw_recycle (removed in Linux 4.12) broke clients behind NAT
# ============================================================================================================
def _nat_run(p: P, seed: int, legacy: bool, record: bool) -> tuple[Simulator, dict[str, Any]]:
    from tcpwise.endpoint.stack import TcpStack
    from tcpwise.sim.nat import LegacyTwRecycle, Nat

    sim = Simulator(seed, record=record)
    sim.default_imp = Impairments(delay=p["delay"])
    n = p["nat_clients"]
    nat = Nat(sim, "N", NAT_ADDR)
    sim.by_addr[NAT_ADDR] = nat
    cfg = LINUX.with_(timestamps=True)
    hb = sim.add_host("B", B_ADDR, cfg, "server (legacy tw_recycle)" if legacy else "server")
    Server(sim, hb, 80, close_after_response=True)
    legacy_el = LegacyTwRecycle() if legacy else None
    clients = []
    interval = 1.0
    for i in range(n):
        name = f"C{i + 1}"
        h = sim.add_host(name, f"198.18.0.{11 + i}", cfg, "client behind NAT")
        # Each host has its own timestamp clock (uptime differs): pre-4.10 Linux, one offset per host.
        # C1 (the first to connect) has the clock furthest ahead; the others are behind it.
        offset = 50_000_000 if i == 0 else 1_000_000 * i
        h.stack = TcpStack(cfg, h.addr, h.stack.secret, h.port_range, host_ts_offset=offset)
        ch = sim.channel(name, "B")
        ch.elements.append((nat, "fwd"))
        if legacy_el is not None:
            ch.elements.append((legacy_el, "fwd"))
        times = [0.2 * i + interval * k for k in range(p["nat_requests"])]
        clients.append((name, offset, ShortConnClient(sim, h, B_ADDR, 80, times=times, timeout=3.0)))
    sim.run(interval * p["nat_requests"] + 3.5)
    info = {
        "clients": {
            name: {
                "clock_offset": off,
                "attempts": c.stats.attempts,
                "completed": c.stats.completed,
                "timeouts": c.stats.timeouts,
            }
            for name, off, c in clients
        },
        "rejected": legacy_el.rejected if legacy_el else 0,
        "srcs_at_b": sorted(
            {
                e.segment.src
                for e in sim.events
                if e.kind == "recv" and e.host == "B" and e.segment is not None
            }
        )
        if record
        else [],
        "translations": nat.translations,
    }
    return sim, info


def _simulate_nat(p: P, seed: int) -> Run:
    sim, legacy = _nat_run(p, seed, True, record=True)
    _, modern = _nat_run(p, seed, False, record=False)
    run = Run(scenario="timewait-pileup", seed=seed, hosts=sim.host_models(), events=sim.events, world="sim")
    run.hosts.insert(0, type(run.hosts[0])("N", NAT_ADDR, "NAT (public address)"))
    run.summary["values"] = {"legacy": legacy, "modern": modern}
    return run


def _check_nat(run: Run, p: P) -> list[Check]:
    v = q.values(run)
    leg, mod = v["legacy"], v["modern"]
    lc = leg["clients"]
    fastest = max(lc, key=lambda k: lc[k]["clock_offset"])
    behind = [k for k in lc if k != fastest]
    return [
        claim(
            "Behind the NAT every client appears to the server as one address.",
            "经过 NAT 后，所有客户端在服务端看来都是同一个地址。",
            leg["srcs_at_b"] == [NAT_ADDR],
            f"sources seen at B: {leg['srcs_at_b']}, NAT translations {leg['translations']}",
        ),
        claim(
            "With the legacy tcp_tw_recycle rule (removed in Linux 4.12) the server drops SYNs from the clients "
            "whose timestamp clock is behind: they cannot connect.",
            "启用旧的 tcp_tw_recycle 规则（Linux 4.12 已删除）时，服务端丢弃时间戳时钟落后的客户端的 SYN：它们无法连接。",
            leg["rejected"] > 0
            and all(lc[k]["completed"] == 0 for k in behind)
            and lc[fastest]["completed"] > 0,
            f"SYNs rejected: {leg['rejected']}; completed: "
            + ", ".join(
                f"{k} {lc[k]['completed']}/{lc[k]['attempts']} (clock +{lc[k]['clock_offset']})" for k in lc
            ),
        ),
        claim(
            "Without it (every Linux since 4.12) all clients behind the NAT connect.",
            "不启用它（Linux 4.12 之后皆如此）时，NAT 后的所有客户端都能连接。",
            all(c["completed"] == c["attempts"] > 0 for c in mod["clients"].values())
            and mod["rejected"] == 0,
            ", ".join(f"{k} {c['completed']}/{c['attempts']}" for k, c in mod["clients"].items()),
        ),
    ]


def _narrate_nat(run: Run, p: P) -> tuple[str, str]:
    v = q.values(run)
    leg, mod = v["legacy"], v["modern"]
    lc = leg["clients"]
    fastest = max(lc, key=lambda k: lc[k]["clock_offset"])
    ok_l = sum(c["completed"] for c in lc.values())
    tot = sum(c["attempts"] for c in lc.values())
    ok_m = sum(c["completed"] for c in mod["clients"].values())
    en = (
        f"{p['nat_clients']} clients share the NAT address {NAT_ADDR}; each host has its own timestamp clock. "
        f"The server closes first (HTTP style) and, with the legacy tcp_tw_recycle rule, remembers the newest "
        f"TSval per peer IP for 60 s and drops any SYN from that IP with an older one. Only {fastest}, whose "
        f"clock is ahead, gets through: {ok_l} of {tot} requests completed, {leg['rejected']} SYNs silently "
        f"dropped. Without the rule {ok_m} of {tot} complete. That is why tw_recycle was removed in Linux 4.12 "
        f"(after 4.10 randomised timestamp offsets per connection); the remedy for TIME_WAIT is tw_reuse on the "
        f"client or fewer, longer connections."
    )
    zh = (
        f"{p['nat_clients']} 个客户端共用 NAT 地址 {NAT_ADDR}，每台主机有自己的时间戳时钟。服务端先关闭（HTTP 方式），"
        f"启用旧的 tcp_tw_recycle 规则时，它按对端 IP 记住 60 秒内最新的 TSval，并丢弃来自该 IP、TSval 更旧的 SYN。"
        f"只有时钟领先的 {fastest} 能连上：{tot} 个请求完成 {ok_l} 个，{leg['rejected']} 个 SYN 被静默丢弃。"
        f"不启用该规则时完成 {ok_m}/{tot}。这就是 Linux 4.12 删除 tw_recycle 的原因（4.10 起时间戳偏移已按连接随机化）；"
        f"应对 TIME_WAIT 应在客户端用 tw_reuse，或使用更少、更长的连接。"
    )
    return en, zh


register(
    Scenario(
        id="timewait-pileup",
        title="TIME_WAIT pile-up from short connections",
        title_zh="短连接导致 TIME_WAIT 堆积",
        claim="Rate R conn/s gives ~R*60 TIME_WAIT on the active closer; one client to one destination runs out of "
        "ephemeral ports at ~28k/60 s ~ 470 conn/s (EADDRNOTAVAIL); remedies compared: tw_reuse (client side, "
        "needs timestamps), keep-alive pool, SO_LINGER{1,0}; tcp_fin_timeout is not TIME_WAIT; tw_recycle "
        "(removed in 4.12) broke clients behind NAT (--set nat=1).",
        claim_zh="每秒 R 个连接会在主动关闭方留下约 R*60 个 TIME_WAIT；单个客户端连同一目的地址在约 28k/60 秒 ≈ 470 连接/秒时耗尽临时端口"
        "（EADDRNOTAVAIL）；比较各种对策：tw_reuse（客户端侧，需时间戳）、连接池、SO_LINGER{1,0}；tcp_fin_timeout 不是 "
        "TIME_WAIT；tw_recycle（4.12 已删除）曾让 NAT 后的客户端连不上（--set nat=1）。",
        params={
            "rate": Param(
                1000.0,
                "new connections per second from A to B:80",
                "A 到 B:80 每秒新建连接数",
                unit="conn/s",
                lo=0.1,
                hi=100_000.0,
            ),
            "duration": Param(90.0, "seconds of load", "持续时间（秒）", unit="s", lo=0.1, hi=3600.0),
            "model": Param(
                "auto",
                "packet (every segment), flow (calibrated from the packet model) or auto "
                f"(packet up to {PACKET_AUTO_LIMIT} connections)",
                f"packet（逐报文）、flow（由报文级模型标定的流级模型）或 auto（{PACKET_AUTO_LIMIT} 条连接以内用 packet）",
                choices=("auto", "packet", "flow"),
            ),
            "port_range": Param(
                "32768-60999",
                "client's net.ipv4.ip_local_port_range",
                "客户端 ip_local_port_range",
                pattern=r"\d{1,5}-\d{1,5}",
            ),
            "tw_reuse": Param(
                2,
                "client's net.ipv4.tcp_tw_reuse (0 off, 1 on, 2 loopback only = Linux default)",
                "客户端 tcp_tw_reuse（0 关，1 开，2 仅回环 = Linux 默认）",
                choices=(0, 1, 2),
            ),
            "timestamps": Param(True, "net.ipv4.tcp_timestamps on both hosts", "双方的 tcp_timestamps"),
            "fin_timeout": Param(
                60.0,
                "client's net.ipv4.tcp_fin_timeout (FIN_WAIT_2 orphans, not TIME_WAIT)",
                "客户端 tcp_fin_timeout（FIN_WAIT_2 孤儿连接超时，不是 TIME_WAIT）",
                unit="s",
                lo=0.1,
                hi=3600.0,
            ),
            "nat": Param(
                False,
                "show the tw_recycle + NAT history instead of the pile-up",
                "改为演示 tw_recycle 与 NAT 的历史问题",
            ),
            "nat_clients": Param(
                3, "clients behind the NAT (nat=1)", "NAT 后的客户端数（nat=1）", lo=1, hi=50
            ),
            "nat_requests": Param(
                5,
                "requests per NAT client, one per second (nat=1)",
                "每个 NAT 客户端的请求数，每秒一个",
                lo=1,
                hi=1000,
            ),
        },
        simulate=_simulate,
        build=_build,
        lab=True,
        check=_check,
        narrate=_narrate,
        tags=("time_wait", "scale"),
    )
)
