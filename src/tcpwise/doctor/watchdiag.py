"""``doctor --watch N``: N seconds of real transitions turn a snapshot's counts into rates and verdicts.

Theory of operation
-------------------
A snapshot sees how many sockets sit in CLOSE_WAIT, not whether they move. :func:`sample` runs a watch
(tracepoints; sock_diag polling when they cannot be read, said in the evidence) for N seconds over the doctor's
namespace, then the doctor takes its usual snapshot. :func:`analyze` joins the two:

- CLOSE_WAIT per (process, peer address): how many sockets *entered* CLOSE_WAIT during the window (the peer's
  FIN) and how many *left* it (the application's close(): ``CLOSE_WAIT -> LAST_ACK``, or a reset). Entered and
  never left — the count grows by the entry rate — is a **leak in that process toward that peer**. Entered and
  left at a similar rate is **churn**: the application closes, only later than its peer (the time spent in
  CLOSE_WAIT is the evidence). Sockets that only entered during the window but were already closed by sock_diag's
  time are counted as left. A socket still open has no owner in the tracepoints until the application acts, so
  its process comes from the snapshot (socket inode -> /proc, as the doctor does).
- TIME_WAIT per destination: sockets that closed first toward (address, port) per second. Each holds its local
  port for TCP_TIMEWAIT_LEN = 60 s, so the steady state is ``rate x 60`` ports of the ``ip_local_port_range``
  available for that destination; when that exceeds the range, the time left is the free ports divided by the
  net growth (entries minus the expiries of what is already there, ~count/60 per second).
"""

from __future__ import annotations

import socket
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tcpwise.doctor import advice as adv
from tcpwise.doctor.collect import Snapshot
from tcpwise.doctor.findings import Finding, Thresholds, severity_rank
from tcpwise.errors import MissingCapability
from tcpwise.linux.netlink import format_addr
from tcpwise.watch.live import WatchSummary
from tcpwise.watch.record import ConnRecord

__all__ = ["WatchSample", "sample", "analyze", "TIMEWAIT_LEN_S"]

TIMEWAIT_LEN_S = 60.0  # TCP_TIMEWAIT_LEN, include/net/tcp.h
_TW = 6
_CW = 8


@dataclass
class WatchSample:
    records: list[ConnRecord] = field(default_factory=list)
    seconds: float = 0.0
    summary: WatchSummary = field(default_factory=WatchSummary)

    def to_dict(self) -> dict[str, Any]:
        s = self.summary
        d: dict[str, Any] = {
            "seconds": round(self.seconds, 3),
            "source": s.source,
            "events": s.events,
            "lost": s.lost,
            "connections": len(self.records),
        }
        if s.interval is not None:
            d["limit"] = f"sock_diag every {s.interval:g} s: shorter connections are missed"
        if s.fallback_reason:
            d["fallback_reason"] = s.fallback_reason
        return d


def sample(seconds: float, netns: str | None = None) -> WatchSample:
    """Watch ``seconds`` of transitions in the doctor's namespace (ours, or ``netns``)."""
    from tcpwise.linux.tasks import netns_inode, netns_of_name
    from tcpwise.watch.live import Watch
    from tcpwise.watch.tracker import Filter

    ino = netns_of_name(netns) if netns else netns_inode("/proc/self/ns/net")
    out = WatchSample()
    filt = Filter(netns=ino, listeners=False)
    t0 = time.monotonic()
    try:
        w = Watch(out.records.append, filt, purpose="doctor")
    except MissingCapability as exc:
        from tcpwise.watch.poll import Poller

        p = Poller(out.records.append, Filter(listeners=False), interval=0.05, netns=netns)
        out.summary = p.run(duration=seconds)
        out.summary.fallback_reason = str(exc)
    else:
        out.summary = w.run(duration=seconds)
    out.seconds = time.monotonic() - t0
    return out


def _ep(family: int, addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if family == 6 or ":" in addr else f"{addr}:{port}"


def _owner_map(snap: Snapshot) -> dict[tuple[str, int, str, int], int]:
    """4-tuple -> pid for the snapshot's sockets that have an owner (open CLOSE_WAIT sockets among them)."""
    out: dict[tuple[str, int, str, int], int] = {}
    for s in snap.socks:
        pid = snap.pid_of(s)
        if pid is None:
            continue
        out[(format_addr(s.family, s.src), s.sport, format_addr(s.family, s.dst), s.dport)] = pid
    return out


@dataclass
class _CloseWait:
    entered: int = 0
    left: int = 0
    still: int = 0
    dwell: list[float] = field(default_factory=list)
    port: int = 0


def _close_wait_groups(sample_: WatchSample, snap: Snapshot) -> dict[tuple[int | None, str], _CloseWait]:
    owners = _owner_map(snap)
    groups: dict[tuple[int | None, str], _CloseWait] = defaultdict(_CloseWait)
    for r in sample_.records:
        into = next((t for t in r.transitions if t.to_state == "CLOSE_WAIT"), None)
        if into is None:
            continue
        # The socket's owner from sock_diag first (inode -> process, exact while the socket is open): a
        # tracepoint's pid is whoever ran when the state changed, and on loopback the peer's send() runs the
        # receive path, so a server socket's CLOSE_WAIT can carry the client's pid.
        owner = owners.get((r.laddr, r.lport, r.raddr, r.rport))
        pid = owner if owner is not None else r.pid
        g = groups[(pid, r.raddr)]
        g.port = r.lport
        g.entered += 1
        out = next((t for t in r.transitions if t.from_state == "CLOSE_WAIT"), None)
        if out is not None:
            g.left += 1
            g.dwell.append(out.t - into.t)
        elif r.open:
            g.still += 1
        else:
            g.left += 1
    return groups


def _verdict(g: _CloseWait) -> str:
    if g.entered >= 2 and g.left <= 0.1 * g.entered:
        return "leak"
    if g.left >= 0.5 * g.entered:
        return "churn"
    return "slow"


def _close_wait_findings(
    sample_: WatchSample, snap: Snapshot, found: list[Finding], th: Thresholds, lang: str
) -> list[Finding]:
    secs = max(sample_.seconds, 1e-9)
    static = {f.pid: f for f in found if f.id == "close-wait-leak"}
    new: list[Finding] = []
    per_pid: dict[int | None, list[tuple[str, _CloseWait]]] = defaultdict(list)
    for (pid, peer), g in _close_wait_groups(sample_, snap).items():
        per_pid[pid].append((peer, g))
    for pid, items in per_pid.items():
        items.sort(key=lambda pg: -pg[1].entered)
        peer, g = items[0]
        entered = sum(x.entered for _, x in items)
        left = sum(x.left for _, x in items)
        still = sum(x.still for _, x in items)
        dwell = [d for _, x in items for d in x.dwell]
        total = _CloseWait(entered, left, still, dwell)
        verdict = _verdict(total)
        ev: dict[str, Any] = {
            "verdict": verdict,
            "watched_s": round(secs, 2),
            "entered": entered,
            "left": left,
            "still_open": still,
            "entered_per_s": round(entered / secs, 3),
            "left_per_s": round(left / secs, 3),
            "top_peer": peer,
            "peers": {p: x.entered for p, x in items[:3]},
            "median_s_in_close_wait": round(statistics.median(dwell), 4) if dwell else None,
            "source": sample_.summary.source,
        }
        comm = snap.comm_of(pid)
        text = adv.message(
            f"close-wait-verdict.{verdict}",
            lang,
            pid=pid if pid is not None else "?",
            comm=comm,
            peer=peer,
            entered=entered,
            left=left,
            secs=secs,
            rin=entered / secs,
            rout=left / secs,
            dwell=(statistics.median(dwell) * 1000) if dwell else 0.0,
        )
        f = static.get(pid)
        if f is not None:
            f.evidence["watch"] = ev
            f.message = f"{f.message}; {text}"
            if verdict == "churn":
                f.severity = "info"
            continue
        if verdict == "leak" or (verdict == "slow" and entered >= th.close_wait_warn):
            fid, sev = "close-wait-leak", "warn"
        elif verdict == "churn" and entered >= th.close_wait_warn:
            fid, sev = "close-wait-churn", "info"  # worth knowing (it costs fds while it lasts), not a bug
        else:
            continue
        new.append(Finding(fid, sev, pid, text[0].upper() + text[1:], {"watch": ev}, adv.advice(fid, lang)))
    return new


def _port_range(snap: Snapshot) -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in snap.sysctls["net.ipv4.ip_local_port_range"].split())
        return lo, hi
    except (KeyError, ValueError):
        return 32768, 60999


def _timewait_findings(sample_: WatchSample, snap: Snapshot, th: Thresholds, lang: str) -> list[Finding]:
    secs = max(sample_.seconds, 1e-9)
    lo, hi = _port_range(snap)
    size = hi - lo + 1
    rates: dict[tuple[int, str, str, int], int] = defaultdict(int)
    for r in sample_.records:
        # Closed first: the port is held by a timewait socket (TIME_WAIT, or FIN_WAIT_2 on the way to it).
        if r.closer == "local" and not r.open and (r.time_wait or r.end_reason == "handoff"):
            if lo <= r.lport <= hi:
                rates[(r.family, r.laddr, r.raddr, r.rport)] += 1
    current: dict[tuple[int, str, str, int], int] = defaultdict(int)
    for s in snap.socks:
        if s.state == _TW and lo <= s.sport <= hi:
            fam = 6 if s.family == socket.AF_INET6 else 4
            current[(fam, format_addr(s.family, s.src), format_addr(s.family, s.dst), s.dport)] += 1
    out = []
    reuse = snap.sysctls.get("net.ipv4.tcp_tw_reuse")
    for key, n in sorted(rates.items(), key=lambda kv: -kv[1]):
        fam, src, dst, dport = key
        rate = n / secs
        steady = rate * TIMEWAIT_LEN_S
        if steady < th.timewait_warn_share * size or n < 2:
            continue
        cur = current.get(key, 0)
        growth = rate - cur / TIMEWAIT_LEN_S
        eta = max(0.0, (size - cur) / growth) if steady >= size and growth > 0 else None
        dst_s = _ep(fam, dst, dport)
        ev: dict[str, Any] = {
            "dst": dst_s,
            "src": src,
            "closed_first_per_s": round(rate, 2),
            "watched_s": round(secs, 2),
            "time_wait_now": cur,
            "steady_state_ports": round(steady),
            "ephemeral_range": [lo, hi],
            "exhausted_in_s": round(eta) if eta is not None else None,
            "tcp_tw_reuse": reuse,
            "source": sample_.summary.source,
        }
        key_msg = "timewait-rate.exhaustion" if eta is not None else "timewait-rate.steady"
        f = Finding(
            "timewait-rate",
            "crit" if eta is not None else "warn",
            None,
            adv.message(key_msg, lang, dst=dst_s, rate=rate, eta=eta or 0.0, steady=steady, size=size),
            ev,
            adv.advice("timewait-ports", lang),
        )
        loop = dst.startswith("127.") or dst == "::1"
        note = adv.tw_reuse_note(reuse, loop, dst_s, lang)
        if note:
            f.advice = f"{note} {f.advice}"
        out.append(f)
    return out


def analyze(
    sample_: WatchSample,
    snap: Snapshot,
    found: list[Finding],
    thresholds: Thresholds | None = None,
    lang: str = "en",
) -> list[Finding]:
    """``found`` (the snapshot's findings) with the watch's verdicts folded in and its own findings added."""
    th = thresholds or Thresholds()
    extra = _close_wait_findings(sample_, snap, found, th, lang) + _timewait_findings(sample_, snap, th, lang)
    out = found + extra
    out.sort(key=lambda f: -severity_rank(f.severity))
    return out
