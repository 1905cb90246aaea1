"""Findings: what is wrong with a host's TCP connections, who does it, and what to do — from one Snapshot.

Theory of operation
-------------------
Each check is a pure function ``Snapshot -> list[Finding]`` (no I/O beyond reading an already-taken snapshot),
run in catalogue order by :func:`analyze`. Thresholds live in one :class:`Thresholds` dataclass so tests and
users can see (and change) them. A finding carries the pid it applies to (None for host-wide ones), a message
filled from measured numbers, the evidence those numbers came from (JSON-able), and advice (advice.py).

Kernel semantics the checks rely on:
- CLOSE_WAIT: the peer's FIN arrived and was ACKed; only the owning application's close() ends it (RFC 9293
  §3.6). Growth needs two samples: :func:`analyze` takes an optional previous snapshot (top/exporter pass one).
- TIME_WAIT is held by the active closer for TCP_TIMEWAIT_LEN (60 s) and blocks its exact 4-tuple; a client
  running out means (src addr, dst addr, dst port) has used most of ip_local_port_range. Client-side TIME_WAIT
  is recognised by a local port inside the ephemeral range.
- A listener is full when its accept queue (idiag_rqueue) exceeds its backlog (idiag_wqueue): the kernel tests
  ``sk_ack_backlog > sk_max_ack_backlog`` (include/net/sock.h sk_acceptq_is_full) and then drops the SYN or the
  final ACK, counting ListenOverflows. The SYN queue limit follows the same backlog (inet_csk_reqsk_queue_is_full).
- Orphans (sockstat "orphan"): sockets with no file left, in FIN_WAIT_1/FIN_WAIT_2/CLOSING/LAST_ACK.
- Keepalive: an idle socket with SO_KEEPALIVE shows idiag_timer 2; without it, no timer at all (timer 0).
- Persist timer (idiag_timer 4): the peer advertises a zero window and we probe it (RFC 9293 §3.8.6.1).
- SYN_SENT with a retransmit timer is a connect() whose SYN got no answer: nothing is established, so it is not
  half-open. connect() gives up after net.ipv4.tcp_syn_retries retransmissions (net/ipv4/tcp_timer.c
  tcp_write_timeout, first timeout TCP_TIMEOUT_INIT = 1 s, doubling, each capped at TCP_RTO_MAX = 120 s): about
  127 s with the default 6. A full accept queue at a *local* listener drops SYNs (tcp_conn_request), so local
  clients of that listener sit exactly here: the two findings are linked.
"""

from __future__ import annotations

import socket
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from operator import itemgetter
from typing import Any

from tcpwise.doctor import advice as adv
from tcpwise.doctor.collect import Snapshot
from tcpwise.linux.netlink import PORT_SWAP, Sock, format_addr
from tcpwise.vocab import kernel_state_name

__all__ = ["Finding", "Thresholds", "analyze", "SEVERITIES", "severity_rank", "CHECK_IDS"]

SEVERITIES = ("info", "warn", "crit")

# Kernel state numbers (include/net/tcp_states.h).
_ESTABLISHED, _SYN_SENT, _SYN_RECV, _FIN_WAIT1, _FIN_WAIT2, _TIME_WAIT = 1, 2, 3, 4, 5, 6
_CLOSE_WAIT, _LAST_ACK, _LISTEN, _CLOSING, _NEW_SYN_RECV = 8, 9, 10, 11, 12
_TIMER_RETRANSMIT, _TIMER_KEEPALIVE, _TIMER_PERSIST = 1, 2, 4


def severity_rank(sev: str) -> int:
    return SEVERITIES.index(sev)


@dataclass(slots=True)
class Finding:
    """One diagnosis; ``to_dict`` is the JSON form ``{"id","severity","pid","message","evidence","advice"}``."""

    id: str
    severity: str
    pid: int | None
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    advice: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Thresholds:
    """Every limit a check compares against (documented in docs/doctor.md)."""

    close_wait_warn: int = 10  # CLOSE_WAIT sockets in one process
    close_wait_crit: int = 200  # ... or this share of its fd limit:
    close_wait_crit_fd_share: float = 0.25
    timewait_warn_share: float = 0.30  # client TIME_WAIT to one destination / ephemeral range size
    timewait_crit_share: float = 0.70
    timewait_min: int = 100  # never report fewer than this many
    accept_warn_share: float = 0.80  # accept queue / backlog
    synrecv_warn_share: float = 0.50  # SYN_RCVD of one listener / its SYN queue limit
    synrecv_min: int = 8
    fd_warn_share: float = 0.80
    fd_crit_share: float = 0.95
    orphans_warn_share: float = 0.50
    orphans_crit_share: float = 0.90
    idle_s: float = 600.0  # ESTABLISHED without data for this long counts as idle
    no_keepalive_warn: int = 10  # idle sockets without keepalive in one process for warn (fewer: info)
    retrans_min: int = 3  # unanswered retransmissions before a socket counts as "peer stopped answering"


CHECK_IDS = (
    "close-wait-leak",
    "close-wait-churn",
    "connect-retrying",
    "timewait-ports",
    "timewait-rate",
    "accept-queue-overflow",
    "syn-flood",
    "fd-headroom",
    "orphans",
    "no-keepalive",
    "retransmitting",
    "zero-window",
    "sysctl-audit",
)


def syn_give_up_s(retries: int) -> float:
    """Seconds from connect() until the kernel gives up after ``retries`` SYN retransmissions (timeouts 1, 2, 4,
    ... s, each at most TCP_RTO_MAX = 120 s; the connection fails when the last one expires)."""
    return float(sum(min(2**i, 120) for i in range(retries + 1)))


def _is_loopback(fam: int, raw: bytes) -> bool:
    if fam == socket.AF_INET:
        return raw[0] == 127
    return raw[:16] == b"\0" * 15 + b"\1"


def _ep(s: Sock, local: bool) -> str:
    fam = s.family
    addr = format_addr(fam, s.src if local else s.dst)
    port = s.sport if local else s.dport
    return f"[{addr}]:{port}" if fam == socket.AF_INET6 else f"{addr}:{port}"


def _int(snap: Snapshot, key: str, default: int) -> int:
    try:
        return int(snap.sysctls.get(key, "").split()[0])
    except (ValueError, IndexError):
        return default


def _port_range(snap: Snapshot) -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in snap.sysctls["net.ipv4.ip_local_port_range"].split())
        return lo, hi
    except (KeyError, ValueError):
        return 32768, 60999  # Linux default


class _Ctx:
    """Per-analysis helpers: sockets grouped by owner, language, thresholds."""

    def __init__(self, snap: Snapshot, th: Thresholds, lang: str, prev: Snapshot | None) -> None:
        self.snap = snap
        self.th = th
        self.lang = lang
        self.prev = prev
        # One pass groups sockets by state; each check then walks only the states it cares about.
        socks = snap.socks
        self.by_state: dict[int, list[Sock]] = {
            st: [s for s in socks if s[1] == st] for st in set(map(itemgetter(1), socks))
        }
        self.by_pid: dict[int, list[Sock]] = defaultdict(list)
        by_inode = snap.by_inode
        for ino, pids in snap.owners.items():
            s = by_inode.get(ino)
            if s is not None:
                self.by_pid[pids[0]].append(s)

    def states(self, *nums: int) -> list[Sock]:
        out: list[Sock] = []
        for n in nums:
            out.extend(self.by_state.get(n, ()))
        return out

    def f(
        self,
        fid: str,
        sev: str,
        fpid: int | None,
        evidence: dict[str, Any],
        /,
        *,
        msg_key: str | None = None,
        **values: Any,
    ) -> Finding:
        """A Finding whose message template ``msg_key`` (default: the id) is filled from ``values``."""
        k = msg_key or fid
        return Finding(
            fid, sev, fpid, adv.message(k, self.lang, **values), evidence, adv.advice(k, self.lang)
        )

    def zh(self) -> bool:
        return self.lang == "zh"


def _close_wait(c: _Ctx) -> list[Finding]:
    out = []
    prev_counts: dict[int, int] = {}
    if c.prev is not None:
        for s in c.prev.socks:
            if s.state == _CLOSE_WAIT:
                pid = c.prev.pid_of(s)
                if pid is not None:
                    prev_counts[pid] = prev_counts.get(pid, 0) + 1
    for pid, socks in c.by_pid.items():
        cw = [s for s in socks if s.state == _CLOSE_WAIT]
        n = len(cw)
        if n < c.th.close_wait_warn:
            continue
        proc = c.snap.procs.get(pid)
        limit = proc.fd_limit if proc else None
        crit = n >= c.th.close_wait_crit or (limit is not None and n >= c.th.close_wait_crit_fd_share * limit)
        peers = Counter(_ep(s, local=False).rsplit(":", 1)[0] for s in cw).most_common(3)
        ports = Counter(s.sport for s in cw).most_common(3)
        ev: dict[str, Any] = {
            "close_wait": n,
            # idiag_rqueue = rcv_nxt - copied_seq counts the peer's FIN too, so unread *data* means > 1.
            "with_unread_data": sum(1 for s in cw if s.rqueue > 1),
            "fds": proc.fds if proc else None,
            "fd_limit": limit,
            "top_peers": dict(peers),
            "top_local_ports": {str(p): k for p, k in ports},
        }
        growth = ""
        if c.prev is not None:
            d = n - prev_counts.get(pid, 0)
            dt = max(c.snap.taken - c.prev.taken, 1e-9)
            ev["growth"] = d
            ev["growth_per_s"] = round(d / dt, 3)
            if d > 0:
                growth = f"，{dt:.0f} 秒内增加 {d} 个" if c.zh() else f", +{d} in {dt:.0f} s"
        out.append(
            c.f(
                "close-wait-leak",
                "crit" if crit else "warn",
                pid,
                ev,
                comm=c.snap.comm_of(pid),
                pid=pid,
                n=n,
                growth=growth,
            )
        )
    return out


def _timewait(c: _Ctx) -> list[Finding]:
    lo, hi = _port_range(c.snap)
    size = hi - lo + 1
    groups: Counter[tuple[int, bytes, bytes, int]] = Counter()
    swap = PORT_SWAP
    for s in c.states(_TIME_WAIT):
        if lo <= swap[s.sport_n] <= hi:
            groups[(s.family, s.src, s.dst, s.dport_n)] += 1
    out = []
    reuse = c.snap.sysctls.get("net.ipv4.tcp_tw_reuse")
    for (fam, src, dst, dport_n), n in groups.most_common():
        dport = swap[dport_n]
        share = n / size
        if n < c.th.timewait_min or share < c.th.timewait_warn_share:
            break
        sa = format_addr(fam, src)
        da = format_addr(fam, dst)
        dst_s = f"[{da}]:{dport}" if fam == socket.AF_INET6 else f"{da}:{dport}"
        ev = {
            "src": sa,
            "dst": dst_s,
            "time_wait": n,
            "ephemeral_range": [lo, hi],
            "share": round(share, 4),
            "tcp_tw_reuse": reuse,
            "tcp_timestamps": c.snap.sysctls.get("net.ipv4.tcp_timestamps"),
            "TCPTimeWaitOverflow": c.snap.counters.get("TcpExt.TCPTimeWaitOverflow"),
        }
        sev = "crit" if share >= c.th.timewait_crit_share else "warn"
        f = c.f("timewait-ports", sev, None, ev, n=n, src=sa, dst=dst_s, share=share, size=size)
        note = adv.tw_reuse_note(reuse, _is_loopback(fam, dst), dst_s, c.lang)
        if note:
            f.advice = f"{note} {f.advice}"
        out.append(f)
    return out


def _accept_queue(c: _Ctx) -> list[Finding]:
    out = []
    ovf = c.snap.counters.get("TcpExt.ListenOverflows", 0)
    drops = c.snap.counters.get("TcpExt.ListenDrops", 0)
    somax = _int(c.snap, "net.core.somaxconn", 4096)
    for s in c.states(_LISTEN):
        rq, wq = s.rqueue, s.wqueue
        full = rq > wq
        if not full and not (rq > 0 and rq >= c.th.accept_warn_share * wq):
            continue
        pid = c.snap.pid_of(s)
        ev = {
            "listener": _ep(s, True),
            "accept_queue": rq,
            "backlog": wq,
            "somaxconn": somax,
            "ListenOverflows": ovf,
            "ListenDrops": drops,
        }
        if c.zh():
            note = "，已满：新的握手被丢弃" if full else ""
        else:
            note = " — full: new handshakes are being dropped" if full else ""
        waiting = [
            x for x in c.states(_SYN_SENT) if x.timer == _TIMER_RETRANSMIT and _full_local_listener(c, x) is s
        ]
        if full and waiting:
            ev["local_clients_retrying_syn"] = len(waiting)
            note += adv.message("accept-queue-overflow.local-clients", c.lang, n=len(waiting))
        out.append(
            c.f(
                "accept-queue-overflow",
                "crit" if full else "warn",
                pid,
                ev,
                comm=c.snap.comm_of(pid),
                pid=pid,
                addr=_ep(s, True),
                rq=rq,
                wq=wq,
                full=note,
            )
        )
    if not out and ovf > 0:
        out.append(
            c.f(
                "accept-queue-overflow",
                "info",
                None,
                {"ListenOverflows": ovf, "ListenDrops": drops},
                msg_key="listen-overflows-seen",
                overflows=ovf,
                drops=drops,
            )
        )
    return out


def _syn_flood(c: _Ctx) -> list[Finding]:
    listeners: dict[tuple[int, int], list[Sock]] = defaultdict(list)
    for s in c.states(_LISTEN):
        listeners[(s.family, s.sport)].append(s)
    groups: Counter[tuple[int, bytes, int]] = Counter()
    for s in c.states(_NEW_SYN_RECV, _SYN_RECV):
        groups[(s.family, s.src, s.sport_n)] += 1
    cookies = c.snap.counters.get("TcpExt.SyncookiesSent", 0)
    syncookies = _int(c.snap, "net.ipv4.tcp_syncookies", 1)
    out = []
    for (fam, src, port_n), n in groups.most_common():
        port = PORT_SWAP[port_n]
        # The listener: same port, and same address or a wildcard one (an IPv4 request may hit a [::] socket).
        cand = listeners.get((fam, port), []) + (
            listeners.get((socket.AF_INET6, port), []) if fam == 2 else []
        )
        lst = next((x for x in cand if x.src == src), None) or next(
            (x for x in cand if not any(x.src)), cand[0] if cand else None
        )
        limit = lst.wqueue if lst is not None else _int(c.snap, "net.ipv4.tcp_max_syn_backlog", 128)
        limit = max(limit, 1)
        if n < c.th.synrecv_min or n < c.th.synrecv_warn_share * limit:
            continue
        pid = c.snap.pid_of(lst) if lst is not None else None
        addr = f"{format_addr(fam, src)}:{port}" if fam == 2 else f"[{format_addr(fam, src)}]:{port}"
        full = n >= limit
        ev = {
            "listener": addr,
            "syn_recv": n,
            "syn_queue_limit": limit,
            "SyncookiesSent": cookies,
            "tcp_syncookies": syncookies,
            "ListenDrops": c.snap.counters.get("TcpExt.ListenDrops", 0),
            "tcp_synack_retries": c.snap.sysctls.get("net.ipv4.tcp_synack_retries"),
        }
        if c.zh():
            note = (
                f"；已发送 {cookies} 个 SYN cookie"
                if cookies
                else ("；syncookies 已关闭，新 SYN 被丢弃" if syncookies == 0 and full else "")
            )
        else:
            note = (
                f"; {cookies} SYN cookies sent"
                if cookies
                else ("; syncookies are off, new SYNs are dropped" if syncookies == 0 and full else "")
            )
        sev = "crit" if full else "warn"
        out.append(
            c.f(
                "syn-flood",
                sev,
                pid,
                ev,
                n=n,
                addr=addr,
                comm=c.snap.comm_of(pid),
                pid=pid,
                limit=limit,
                cookies=note,
            )
        )
    return out


def _fd_headroom(c: _Ctx) -> list[Finding]:
    out = []
    for pid, p in c.snap.procs.items():
        if not p.fd_limit:
            continue
        share = p.fds / p.fd_limit
        if share < c.th.fd_warn_share:
            continue
        sev = "crit" if share >= c.th.fd_crit_share else "warn"
        ev = {
            "fds": p.fds,
            "fd_limit": p.fd_limit,
            "tcp_sockets": len(set(p.inodes)),
            "fs.nr_open": c.snap.sysctls.get("fs.nr_open"),
        }
        out.append(
            c.f("fd-headroom", sev, pid, ev, comm=p.comm, pid=pid, fds=p.fds, limit=p.fd_limit, share=share)
        )
    return out


def _orphans(c: _Ctx) -> list[Finding]:
    n = c.snap.sockstat.get("orphan", 0)
    limit = _int(c.snap, "net.ipv4.tcp_max_orphans", 0)
    if not limit or n < c.th.orphans_warn_share * limit:
        return []
    by_state = Counter(
        kernel_state_name(s.state)
        for s in c.states(_FIN_WAIT1, _FIN_WAIT2, _CLOSING, _LAST_ACK)
        if not s.inode
    )
    ev = {
        "orphans": n,
        "tcp_max_orphans": limit,
        "by_state": dict(by_state),
        "tcp_fin_timeout": c.snap.sysctls.get("net.ipv4.tcp_fin_timeout"),
        "TCPAbortOnMemory": c.snap.counters.get("TcpExt.TCPAbortOnMemory"),
    }
    sev = "crit" if n >= c.th.orphans_crit_share * limit else "warn"
    return [c.f("orphans", sev, None, ev, n=n, limit=limit)]


def _no_keepalive(c: _Ctx) -> list[Finding]:
    idle_ms = c.th.idle_s * 1000
    # Idle = no data either way for idle_s (tcp_info last_data_recv/last_data_sent, ms ago). One C-speed
    # filter over all ESTABLISHED sockets first: on a busy host almost none are idle.
    idle = {
        id(s)
        for s in c.states(_ESTABLISHED)
        if s.info is not None and s.info.last_data_recv_ms >= idle_ms and s.info.last_data_sent_ms >= idle_ms
    }
    out: list[Finding] = []
    if not idle:
        return out
    for pid, socks in c.by_pid.items():
        no_ka = []
        with_ka = 0
        for s in socks:
            if id(s) not in idle:
                continue
            if s.timer == _TIMER_KEEPALIVE:
                with_ka += 1
            elif s.timer == 0:
                no_ka.append(s)
        if not no_ka:
            continue
        oldest = max(min(s.info.last_data_recv_ms, s.info.last_data_sent_ms) for s in no_ka if s.info) / 1000
        peers = Counter(_ep(s, False) for s in no_ka).most_common(3)
        ev = {
            "idle_without_keepalive": len(no_ka),
            "idle_with_keepalive": with_ka,
            "idle_threshold_s": c.th.idle_s,
            "oldest_idle_s": round(oldest, 1),
            "top_peers": dict(peers),
            "tcp_keepalive_time": c.snap.sysctls.get("net.ipv4.tcp_keepalive_time"),
        }
        sev = "warn" if len(no_ka) >= c.th.no_keepalive_warn else "info"
        out.append(
            c.f(
                "no-keepalive",
                sev,
                pid,
                ev,
                comm=c.snap.comm_of(pid),
                pid=pid,
                n=len(no_ka),
                idle=c.th.idle_s,
                oldest=oldest,
            )
        )
    return out


def _retransmitting(c: _Ctx) -> list[Finding]:
    groups: dict[tuple[int | None, str], list[Sock]] = defaultdict(list)
    # SYN_SENT is not here: nothing was established (see _connect_retrying).
    for s in c.states(_ESTABLISHED, _FIN_WAIT1, _CLOSE_WAIT, _LAST_ACK, _CLOSING):
        if s.timer != _TIMER_RETRANSMIT:
            continue
        if s.retrans < c.th.retrans_min:
            continue
        dst = _ep(s, False).rsplit(":", 1)[0]
        groups[(c.snap.pid_of(s), dst)].append(s)
    out = []
    for (pid, dst), socks in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        states = Counter(kernel_state_name(s.state) for s in socks)
        worst = max(socks, key=lambda s: s.retrans)
        ev = {
            "dst": dst,
            "sockets": len(socks),
            "states": dict(states),
            "max_retrans": worst.retrans,
            "next_retransmit_ms": worst.expires_ms,
            "unacked": sum(s.info.unacked for s in socks if s.info),
            "last_ack_recv_ms": min((s.info.last_ack_recv_ms for s in socks if s.info), default=None),
            "tcp_retries2": c.snap.sysctls.get("net.ipv4.tcp_retries2"),
        }
        out.append(
            c.f(
                "retransmitting",
                "warn",
                pid,
                ev,
                comm=c.snap.comm_of(pid),
                pid=pid,
                dst=dst,
                n=len(socks),
                retrans=worst.retrans,
                state=", ".join(states),
            )
        )
    return out


def _full_local_listener(c: _Ctx, s: Sock) -> Sock | None:
    """The local listener a SYN_SENT socket is trying to reach, when its accept queue is full."""
    dport = s.dport
    for lst in c.states(_LISTEN):
        if lst.sport != dport or lst.rqueue <= lst.wqueue:
            continue
        if lst.family == s.family and (lst.src == s.dst or not any(lst.src)):
            return lst
        if lst.family == socket.AF_INET6 and s.family == socket.AF_INET and not any(lst.src):
            return lst
    return None


def _connect_retrying(c: _Ctx) -> list[Finding]:
    retries = _int(c.snap, "net.ipv4.tcp_syn_retries", 6)
    give_up = syn_give_up_s(retries)
    groups: dict[tuple[int | None, str], list[Sock]] = defaultdict(list)
    for s in c.states(_SYN_SENT):
        if s.timer == _TIMER_RETRANSMIT and s.retrans >= 1:
            groups[(c.snap.pid_of(s), _ep(s, False))].append(s)
    out = []
    for (pid, dst), socks in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        worst = max(socks, key=lambda s: s.retrans)
        waited = syn_give_up_s(worst.retrans - 1) if worst.retrans else 0.0
        ev: dict[str, Any] = {
            "dst": dst,
            "sockets": len(socks),
            "syn_retransmissions": worst.retrans,
            "next_retransmit_ms": worst.expires_ms,
            "waited_s_at_least": waited,
            "tcp_syn_retries": retries,
            "gives_up_after_s": give_up,
        }
        link = ""
        lst = _full_local_listener(c, worst)
        if lst is not None:
            lpid = c.snap.pid_of(lst)
            ev["local_listener"] = _ep(lst, True)
            ev["listener_pid"] = lpid
            ev["listener_accept_queue"] = lst.rqueue
            ev["listener_backlog"] = lst.wqueue
            link = adv.message(
                "connect-retrying.local-full",
                c.lang,
                addr=_ep(lst, True),
                comm=c.snap.comm_of(lpid),
                pid=lpid,
            )
        out.append(
            c.f(
                "connect-retrying",
                "warn",
                pid,
                ev,
                comm=c.snap.comm_of(pid),
                pid=pid,
                n=len(socks),
                dst=dst,
                retrans=worst.retrans,
                retries=retries,
                give_up=give_up,
                link=link,
            )
        )
    return out


def _zero_window(c: _Ctx) -> list[Finding]:
    # Index full sockets by 4-tuple so a local receiver (the culprit) can be named.
    stalled = [
        s
        for s in c.states(_ESTABLISHED, _CLOSE_WAIT, _FIN_WAIT1)
        if s.timer == _TIMER_PERSIST
        or (s.info is not None and s.info.snd_wnd == 0 and s.info.unacked == 0 and s.wqueue > 0)
    ]
    if not stalled:
        return []
    tuples = {(s.family, s.src, s.sport_n, s.dst, s.dport_n): s for s in c.states(_ESTABLISHED, _FIN_WAIT2)}
    groups: dict[int | None, list[tuple[Sock, Sock | None]]] = defaultdict(list)
    for s in stalled:
        peer = tuples.get((s.family, s.dst, s.dport_n, s.src, s.sport_n))
        receiver = c.snap.pid_of(peer) if peer is not None else None
        groups[receiver if receiver is not None else c.snap.pid_of(s)].append((s, peer))
    out = []
    for pid, pairs in groups.items():
        rq = sum(p.rqueue for _, p in pairs if p is not None)
        senders = sorted({c.snap.pid_of(s) for s, _ in pairs} - {None})  # type: ignore[type-var]
        local = any(p is not None for _, p in pairs)
        ev = {
            "stalled_sockets": len(pairs),
            "receiver_pid": pid if local else None,
            "sender_pids": senders,
            "unread_bytes": rq,
            "send_queue_bytes": sum(s.wqueue for s, _ in pairs),
            "peers": dict(Counter(_ep(s, False) for s, _ in pairs).most_common(3)),
        }
        out.append(
            c.f("zero-window", "warn", pid, ev, comm=c.snap.comm_of(pid), pid=pid, n=len(pairs), rq=rq)
        )
    return out


def _sysctl_audit(c: _Ctx) -> list[Finding]:
    out = []
    sc = c.snap.sysctls
    if sc.get("net.ipv4.tcp_syncookies") == "0":
        out.append(
            c.f(
                "sysctl-audit",
                "warn",
                None,
                {"net.ipv4.tcp_syncookies": 0},
                msg_key="sysctl-audit.syncookies-off",
            )
        )
    reuse = sc.get("net.ipv4.tcp_tw_reuse")
    if reuse not in (None, "0") and sc.get("net.ipv4.tcp_timestamps") == "0":
        out.append(
            c.f(
                "sysctl-audit",
                "warn",
                None,
                {"net.ipv4.tcp_tw_reuse": reuse, "net.ipv4.tcp_timestamps": 0},
                msg_key="sysctl-audit.tw-reuse-no-timestamps",
                reuse=reuse,
            )
        )
    ovf = c.snap.counters.get("TcpExt.TCPTimeWaitOverflow", 0)
    if ovf:
        limit = sc.get("net.ipv4.tcp_max_tw_buckets")
        out.append(
            c.f(
                "sysctl-audit",
                "warn",
                None,
                {"TCPTimeWaitOverflow": ovf, "tcp_max_tw_buckets": limit},
                msg_key="sysctl-audit.tw-buckets-overflow",
                n=ovf,
                limit=limit,
            )
        )
    somax = _int(c.snap, "net.core.somaxconn", 4096)
    if somax < 1024:
        out.append(
            c.f(
                "sysctl-audit",
                "info",
                None,
                {"net.core.somaxconn": somax},
                msg_key="sysctl-audit.somaxconn-low",
                v=somax,
            )
        )
    lo, hi = _port_range(c.snap)
    if hi - lo + 1 < 10000:
        out.append(
            c.f(
                "sysctl-audit",
                "info",
                None,
                {"net.ipv4.ip_local_port_range": [lo, hi]},
                msg_key="sysctl-audit.port-range-small",
                size=hi - lo + 1,
            )
        )
    if sc.get("net.ipv4.tcp_abort_on_overflow") == "1":
        out.append(
            c.f(
                "sysctl-audit",
                "info",
                None,
                {"net.ipv4.tcp_abort_on_overflow": 1},
                msg_key="sysctl-audit.abort-on-overflow",
            )
        )
    return out


_CHECKS = (
    _close_wait,
    _timewait,
    _accept_queue,
    _connect_retrying,
    _syn_flood,
    _fd_headroom,
    _orphans,
    _no_keepalive,
    _retransmitting,
    _zero_window,
    _sysctl_audit,
)


def analyze(
    snap: Snapshot,
    thresholds: Thresholds | None = None,
    lang: str = "en",
    prev: Snapshot | None = None,
    pid: int | None = None,
) -> list[Finding]:
    """Run every check on ``snap``; worst first. ``prev`` enables growth; ``pid`` keeps that process's findings."""
    c = _Ctx(snap, thresholds or Thresholds(), lang, prev)
    found: list[Finding] = []
    for check in _CHECKS:
        found.extend(check(c))
    if snap.denied and not snap.privileged:
        found.append(
            c.f(
                "attribution-reduced",
                "info",
                None,
                {"processes_not_readable": snap.denied, "processes_scanned": snap.scanned},
                denied=snap.denied,
            )
        )
    if pid is not None:
        found = [f for f in found if f.pid == pid]
    found.sort(key=lambda f: -severity_rank(f.severity))
    return found
