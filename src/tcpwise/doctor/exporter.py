"""``tcpwise exporter``: the doctor's view as Prometheus metrics, so a fleet can be watched and alerted on.

Theory of operation
-------------------
A custom prometheus_client collector counts states, listener queues and SYN_RCVD per listener fresh on every
scrape (netlink.census: one bulk dump, no per-socket objects) and reads the kernel counters. The two states
that dominate busy hosts are not dumped at all: TIME_WAIT comes from /proc/net/sockstat and ESTABLISHED from
Tcp.CurrEstab (RFC 1213: ESTABLISHED + CLOSE_WAIT) minus the dumped CLOSE_WAIT — a shortcut checked against
every full snapshot and abandoned if they ever disagree. The expensive part
— tcp_info for every socket, process attribution (a readlink per fd on the host) and the findings — is a full
doctor snapshot refreshed by a background thread every ``--proc-interval`` seconds and served from cache in
between (``tcpwise_attribution_age_seconds`` says how old). ``--proc-interval 0`` takes the full snapshot on
every scrape (exact, slower). Read-only, like the doctor.

Metric names (docs/doctor.md, dashboard docs/grafana-tcpwise.json):
  tcpwise_sockets{state}                          sockets per canonical state
  tcpwise_process_sockets{pid,comm,state}         top-N processes by socket count
  tcpwise_process_fds{pid,comm} / tcpwise_process_fd_limit{pid,comm}
  tcpwise_listener_accept_queue{listen} / tcpwise_listener_backlog{listen} / tcpwise_listener_syn_recv{listen}
  tcpwise_findings{id,severity}                   number of findings of that id and severity
  tcpwise_kernel_<counter>_total                  ListenOverflows, ListenDrops, SyncookiesSent, ... (counters)
  tcpwise_orphans, tcpwise_timewait_kernel        /proc/net/sockstat
  tcpwise_scrape_duration_seconds, tcpwise_attribution_age_seconds
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from tcpwise.doctor import collect, findings
from tcpwise.errors import UsageError
from tcpwise.linux import kernel, netlink
from tcpwise.linux.netlink import format_addr
from tcpwise.vocab import STATE_NAMES, kernel_state_name

__all__ = ["TcpCollector", "run", "KERNEL_COUNTERS"]

KERNEL_COUNTERS = (
    "ListenOverflows",
    "ListenDrops",
    "SyncookiesSent",
    "SyncookiesRecv",
    "SyncookiesFailed",
    "TCPAbortOnTimeout",
    "TCPAbortOnMemory",
    "TCPAbortOnData",
    "TCPAbortOnClose",
    "TCPTimeWaitOverflow",
    "TCPReqQFullDrop",
    "TCPReqQFullDoCookies",
    "TCPTimeouts",
)


class TcpCollector:
    """prometheus_client custom collector (``collect()`` yields metric families).

    Two speeds: every scrape runs :func:`netlink.census` (state counts, listener queues, SYN_RCVD per
    listener: one dump without per-socket objects) and reads the kernel counters; the full doctor snapshot
    (tcp_info, /proc attribution, findings) is refreshed every ``proc_interval`` seconds by a background
    thread (or on every scrape with ``proc_interval <= 0``) and served from cache in between.
    """

    def __init__(
        self,
        netns: str | None = None,
        top: int = 20,
        proc_interval: float = 10.0,
        thresholds: findings.Thresholds | None = None,
    ) -> None:
        self.netns = netns
        self.top = top
        self.proc_interval = proc_interval
        self.thresholds = thresholds or findings.Thresholds()
        self._full: tuple[collect.Snapshot, list[findings.Finding]] | None = None
        # ESTABLISHED from the MIB instead of the dump; switched off if a full dump ever disagrees.
        self.estab_from_mib = True
        self._full_time = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh_full(self) -> None:
        """Take the full snapshot (attribution + findings) now."""
        # parallel=False: forking from a process with an HTTP server thread is not safe.
        snap = collect.take(netns=self.netns, parallel=False, idle_s=self.thresholds.idle_s)
        found = findings.analyze(snap, self.thresholds)
        # Check the scrape's shortcut against this full dump: Tcp.CurrEstab (RFC 1213 tcpCurrEstab, read just
        # before the dump) must equal ESTABLISHED + CLOSE_WAIT within 1% (+2 for sockets changing state
        # between the two reads); if not, scrapes dump ESTABLISHED sockets again from now on.
        mib = snap.counters.get("Tcp.CurrEstab")
        st = snap.states()
        dumped = st["ESTABLISHED"] + st["CLOSE_WAIT"]
        if mib is None or abs(mib - dumped) > 0.01 * dumped + 2:
            self.estab_from_mib = False
        with self._lock:
            self._full, self._full_time = (snap, found), time.time()

    def start_background(self) -> None:
        self.refresh_full()
        if self.proc_interval <= 0:
            return

        def loop() -> None:
            while not self._stop.wait(self.proc_interval):
                try:
                    self.refresh_full()
                except Exception:  # noqa: BLE001 - a failed refresh keeps serving the previous one
                    pass

        self._thread = threading.Thread(target=loop, name="tcpwise-full-snapshot", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def describe(self) -> list[Any]:
        return []  # unchecked collector: metric families are produced at scrape time

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        t0 = time.perf_counter()
        if self.proc_interval <= 0 or self._full is None:
            self.refresh_full()
        with kernel.in_netns(self.netns):
            sock = netlink.open_diag_socket()
            counters = kernel.read_counters()
            sockstat = kernel.read_sockstat()
        try:
            # The two states that make up most of a busy host are not dumped: the kernel keeps their counts.
            # TIME_WAIT = sockstat "tw" (what `ss -s` shows); ESTABLISHED = Tcp.CurrEstab (ESTABLISHED +
            # CLOSE_WAIT, both families) minus the CLOSE_WAIT we do dump — verified by refresh_full().
            skip = 1 << 6
            mib = counters.get("Tcp.CurrEstab")
            use_mib = self.estab_from_mib and mib is not None
            if use_mib:
                skip |= 1 << 1
            counts, listeners, syn = netlink.census(sock=sock, states=netlink.ALL_STATES & ~skip)
            counts[6] = sockstat.get("tw", 0)
            if use_mib:
                assert mib is not None
                counts[1] = max(mib - counts[8], 0)
        finally:
            sock.close()
        with self._lock:
            assert self._full is not None
            snap, found = self._full
            full_age = time.time() - self._full_time

        g = GaugeMetricFamily("tcpwise_sockets", "TCP sockets per state (sock_diag)", labels=["state"])
        by_name = dict.fromkeys(STATE_NAMES, 0)
        for num, n in enumerate(counts):
            if n:
                name = kernel_state_name(num)
                by_name[name] = by_name.get(name, 0) + n
        for name, n in by_name.items():
            g.add_metric([name], n)
        yield g

        per_pid: Counter[int] = Counter({pid: len(p.inodes) for pid, p in snap.procs.items()})
        ps = GaugeMetricFamily(
            "tcpwise_process_sockets",
            "TCP sockets per process and state (top N)",
            labels=["pid", "comm", "state"],
        )
        pf = GaugeMetricFamily(
            "tcpwise_process_fds", "open file descriptors (top N processes)", labels=["pid", "comm"]
        )
        pl = GaugeMetricFamily(
            "tcpwise_process_fd_limit", "soft RLIMIT_NOFILE (top N processes)", labels=["pid", "comm"]
        )
        for pid, n in per_pid.most_common(self.top):
            if not n:
                break
            p = snap.procs[pid]
            for st, k in snap.proc_states(pid).items():
                ps.add_metric([str(pid), p.comm, st], k)
            pf.add_metric([str(pid), p.comm], p.fds)
            if p.fd_limit:
                pl.add_metric([str(pid), p.comm], p.fd_limit)
        yield ps
        yield pf
        yield pl

        aq = GaugeMetricFamily("tcpwise_listener_accept_queue", "accept queue length", labels=["listen"])
        bl = GaugeMetricFamily(
            "tcpwise_listener_backlog", "listen backlog (accept queue limit)", labels=["listen"]
        )
        for s in listeners:
            lab = _addr(s.family, s.src, s.sport)
            aq.add_metric([lab], s.rqueue)
            bl.add_metric([lab], s.wqueue)
        sr = GaugeMetricFamily(
            "tcpwise_listener_syn_recv", "SYN_RCVD (SYN queue) entries per local address", labels=["listen"]
        )
        for (fam, src, port), n in syn.items():
            sr.add_metric([_addr(fam, src, port)], n)
        yield aq
        yield bl
        yield sr

        fc = Counter((f.id, f.severity) for f in found)
        fm = GaugeMetricFamily(
            "tcpwise_findings", "doctor findings by id and severity", labels=["id", "severity"]
        )
        for fid in findings.CHECK_IDS:
            for sev in findings.SEVERITIES:
                fm.add_metric([fid, sev], fc.get((fid, sev), 0))
        yield fm

        for name in KERNEL_COUNTERS:
            v = counters.get(f"TcpExt.{name}")
            if v is not None:
                c = CounterMetricFamily(f"tcpwise_kernel_{_snake(name)}", f"/proc/net/netstat TcpExt {name}")
                c.add_metric([], v)
                yield c
        yield GaugeMetricFamily(
            "tcpwise_orphans", "orphaned sockets (sockstat)", value=sockstat.get("orphan", 0)
        )
        yield GaugeMetricFamily(
            "tcpwise_timewait_kernel", "TIME_WAIT sockets (sockstat tw)", value=sockstat.get("tw", 0)
        )
        yield GaugeMetricFamily(
            "tcpwise_attribution_age_seconds",
            "age of the cached full snapshot (processes, findings)",
            value=full_age,
        )
        yield GaugeMetricFamily(
            "tcpwise_scrape_duration_seconds", "time to build this scrape", value=time.perf_counter() - t0
        )


def _addr(family: int, raw: bytes, port: int) -> str:
    a = format_addr(family, raw)
    return f"[{a}]:{port}" if family == socket.AF_INET6 else f"{a}:{port}"


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if (
            ch.isupper()
            and i
            and (not name[i - 1].isupper() or (i + 1 < len(name) and name[i + 1].islower()))
        ):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def _parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"bad --listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9477")
    return host.strip("[]") or "0.0.0.0", int(port)


def run(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server
    from prometheus_client.core import CollectorRegistry

    host, port = _parse_listen(args.listen)
    col = TcpCollector(
        netns=args.netns,
        top=args.top,
        proc_interval=args.proc_interval,
        thresholds=findings.Thresholds(idle_s=args.idle),
    )
    col.start_background()  # first full snapshot: fails early (bad netns, no sock_diag) before serving
    reg = CollectorRegistry()
    reg.register(col)
    try:
        start_http_server(port, addr=host, registry=reg)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.listen}: {exc.strerror}") from None
    print(f"tcpwise exporter: serving http://{args.listen}/metrics (Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        col.stop()
