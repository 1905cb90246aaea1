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
between (``tcpwise_attribution_age_seconds`` says how old). A refresh that fails keeps the previous snapshot,
counts ``tcpwise_refresh_failures_total`` and logs one (rate-limited) line. ``--proc-interval 0`` takes the full
snapshot on every scrape (exact, slower). With root, a watch (tcpwise.watch, kernel tracepoints) runs alongside
and feeds counters of state transitions, resets, retransmissions and connection durations. Read-only, like the
doctor.

Every label set is bounded: listeners beyond the ``--listeners`` busiest (by accept-queue fill) are summed
under ``listen="other"``; peers beyond the top ``--peers`` under ``peer="other"``; no label is per connection.

The HTTP side is :class:`tcpwise.doctor.httpserve.BoundedHTTPServer` (asyncio: connection cap with eviction of
idle clients, header/idle/write deadlines, a real backlog, coalesced renders, rate-limited logs).

Metric names (docs/doctor.md, dashboard docs/grafana-tcpwise.json):
  tcpwise_sockets{state}                          sockets per canonical state
  tcpwise_process_sockets{pid,comm,state}         top-N processes by socket count
  tcpwise_process_fds{pid,comm} / tcpwise_process_fd_limit{pid,comm}
  tcpwise_listener_accept_queue{listen} / tcpwise_listener_backlog{listen} / tcpwise_listener_syn_recv{listen}
  tcpwise_listeners                               listening sockets (all, labelled or in "other")
  tcpwise_findings{id,severity}                   number of findings of that id and severity
  tcpwise_kernel_<counter>_total                  ListenOverflows, ListenDrops, SyncookiesSent, ... (counters)
  tcpwise_orphans, tcpwise_timewait_kernel        /proc/net/sockstat
  tcpwise_scrape_duration_seconds, tcpwise_attribution_age_seconds, tcpwise_refresh_failures_total
  tcpwise_watch_transitions_total{from,to}        (watch) state changes, host-wide, all namespaces
  tcpwise_watch_resets_total{origin,state}        (watch) RSTs sent / received, by the state they hit
  tcpwise_watch_retransmits_total{state}          (watch) tcp_retransmit_skb / synack retransmissions
  tcpwise_watch_connection_duration_seconds       (watch) histogram of socket lifetimes
  tcpwise_watch_peer_connections_total{peer}      (watch) connections ended per remote address, top-K + other
  tcpwise_watch_events_total, tcpwise_watch_lost_events_total, tcpwise_watch_up
  tcpwise_exporter_connections, tcpwise_exporter_evicted_total, tcpwise_exporter_header_timeouts_total
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from tcpwise.doctor import collect, findings
from tcpwise.doctor.httpserve import BoundedHTTPServer, RateLimitedLog, ServerConfig
from tcpwise.errors import STOP_SIGNALS, UsageError
from tcpwise.linux import kernel, netlink
from tcpwise.linux.netlink import format_addr
from tcpwise.vocab import STATE_NAMES, kernel_state_name

__all__ = ["TcpCollector", "run", "KERNEL_COUNTERS", "top_listeners", "start_watch"]

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
        listener_top: int = 20,
        log: RateLimitedLog | None = None,
    ) -> None:
        self.netns = netns
        self.top = top
        self.listener_top = listener_top
        self.log = log or RateLimitedLog(prefix="tcpwise exporter: ")
        self.refresh_failures = 0
        self.last_refresh_failure = 0.0
        self.watch_metrics: Any = None  # tcpwise.watch.metrics.WatchMetrics when the watch runs
        self.watch_state = "off"  # "tracepoints" | "off" (with watch_reason)
        self.watch_reason = "not started"
        self.server_stats: Any = None  # httpserve._Stats of the serving HTTP server
        self.open_conns: Any = None  # callable -> int
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
                except Exception as exc:  # noqa: BLE001 - a failed refresh keeps serving the previous one
                    self.refresh_failures += 1
                    self.last_refresh_failure = time.time()
                    age = time.time() - self._full_time
                    self.log.log(
                        "refresh",
                        f"background refresh failed ({type(exc).__name__}: {exc}); serving the snapshot "
                        f"from {age:.0f} s ago",
                    )

        self._thread = threading.Thread(target=loop, name="tcpwise-full-snapshot", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def describe(self) -> list[Any]:
        return []  # unchecked collector: metric families are produced at scrape time

    def collect(self) -> Iterator[Any]:
        t0 = time.perf_counter()
        if self.proc_interval <= 0 or self._full is None:
            self.refresh_full()
        counts, listeners, syn, counters, sockstat = self._census()
        with self._lock:
            assert self._full is not None
            snap, found = self._full
            full_age = time.time() - self._full_time
        yield self._state_family(counts)
        yield from self._process_families(snap)
        yield from self._listener_families(listeners, syn)
        yield self._findings_family(found)
        yield from self._kernel_families(counters, sockstat, full_age)
        yield from self._watch_families()
        yield from self._server_families()
        from prometheus_client.core import GaugeMetricFamily

        yield GaugeMetricFamily(
            "tcpwise_scrape_duration_seconds", "time to build this scrape", value=time.perf_counter() - t0
        )

    def _census(self) -> tuple[list[int], Any, dict[Any, int], dict[str, int], dict[str, int]]:
        """Counts per kernel state, listeners, SYN_RCVD per listener, TcpExt counters, sockstat — in the
        target namespace, from one sock_diag census (no per-socket records)."""
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
        return counts, listeners, syn, counters, sockstat

    @staticmethod
    def _state_family(counts: list[int]) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        g = GaugeMetricFamily("tcpwise_sockets", "TCP sockets per state (sock_diag)", labels=["state"])
        by_name = dict.fromkeys(STATE_NAMES, 0)
        for num, n in enumerate(counts):
            if n:
                name = kernel_state_name(num)
                by_name[name] = by_name.get(name, 0) + n
        for name, n in by_name.items():
            g.add_metric([name], n)
        return g

    def _process_families(self, snap: Any) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

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

    def _listener_families(self, listeners: Any, syn: dict[Any, int]) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        aq = GaugeMetricFamily(
            "tcpwise_listener_accept_queue",
            "accept queue length (busiest listeners + other)",
            labels=["listen"],
        )
        bl = GaugeMetricFamily(
            "tcpwise_listener_backlog",
            "listen backlog (accept queue limit; busiest + other)",
            labels=["listen"],
        )
        for lab, rq, wq in top_listeners(listeners, self.listener_top):
            aq.add_metric([lab], rq)
            bl.add_metric([lab], wq)
        sr = GaugeMetricFamily(
            "tcpwise_listener_syn_recv",
            "SYN_RCVD (SYN queue) entries per local address (top + other)",
            labels=["listen"],
        )
        ranked = sorted(syn.items(), key=lambda kv: (-kv[1], kv[0][2]))
        for (fam, src, port), n in ranked[: self.listener_top]:
            sr.add_metric([_addr(fam, src, port)], n)
        if len(ranked) > self.listener_top:
            sr.add_metric(["other"], sum(n for _, n in ranked[self.listener_top :]))
        yield aq
        yield bl
        yield sr
        yield GaugeMetricFamily("tcpwise_listeners", "listening sockets", value=len(listeners))

    @staticmethod
    def _findings_family(found: Any) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        fc = Counter((f.id, f.severity) for f in found)
        fm = GaugeMetricFamily(
            "tcpwise_findings", "doctor findings by id and severity", labels=["id", "severity"]
        )
        for fid in findings.CHECK_IDS:
            for sev in findings.SEVERITIES:
                fm.add_metric([fid, sev], fc.get((fid, sev), 0))
        return fm

    def _kernel_families(
        self, counters: dict[str, int], sockstat: dict[str, int], full_age: float
    ) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

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
        c = CounterMetricFamily(
            "tcpwise_refresh_failures", "background full-snapshot refreshes that failed (previous one served)"
        )
        c.add_metric([], self.refresh_failures)
        yield c

    def _watch_families(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        up = GaugeMetricFamily("tcpwise_watch_up", "1 when the tracepoint watch runs", labels=["reason"])
        up.add_metric(
            [self.watch_reason if self.watch_state != "tracepoints" else ""],
            int(self.watch_state == "tracepoints"),
        )
        yield up
        m = self.watch_metrics
        if m is None:
            return
        snap = m.snapshot()
        t = CounterMetricFamily(
            "tcpwise_watch_transitions",
            "TCP state changes seen by the tracepoints (all namespaces)",
            labels=["from", "to"],
        )
        for (a, b), n in sorted(snap["transitions"].items()):
            t.add_metric([a, b], n)
        yield t
        r = CounterMetricFamily(
            "tcpwise_watch_resets", "RSTs sent/received by the state they hit", labels=["origin", "state"]
        )
        agg: Counter[tuple[str, str]] = Counter()
        for (origin, st, _reason), n in snap["resets"].items():
            agg[(origin, st)] += n
        for (origin, st), n in sorted(agg.items()):
            r.add_metric([origin, st], n)
        yield r
        x = CounterMetricFamily("tcpwise_watch_retransmits", "retransmissions by state", labels=["state"])
        for st, n in sorted(snap["retransmits"].items()):
            x.add_metric([st], n)
        yield x
        h = HistogramMetricFamily(
            "tcpwise_watch_connection_duration_seconds", "lifetime of sockets that ended (open to closed)"
        )
        h.add_metric([], [(_le(le), n) for le, n in snap["buckets"]], sum_value=snap["duration_sum"])
        yield h
        p = CounterMetricFamily(
            "tcpwise_watch_peer_connections",
            "sockets ended per remote address (top peers + other)",
            labels=["peer"],
        )
        for peer, n in sorted(snap["peers"].items()):
            p.add_metric([peer], n)
        p.add_metric(["other"], snap["other_peers"])
        yield p
        ev = CounterMetricFamily("tcpwise_watch_events", "tracepoint records processed")
        ev.add_metric([], m.events)
        yield ev
        lo = CounterMetricFamily(
            "tcpwise_watch_lost_events", "tracepoint records the kernel dropped (buffer full)"
        )
        lo.add_metric([], m.lost)
        yield lo

    def _server_families(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        st = self.server_stats
        if st is None:
            return
        if self.open_conns is not None:
            yield GaugeMetricFamily(
                "tcpwise_exporter_connections", "open HTTP connections", value=self.open_conns()
            )
        for name, help_, v in (
            ("evicted", "idle connections closed to make room at the connection cap", st.evicted),
            ("header_timeouts", "connections closed for not sending a request in time", st.header_timeouts),
        ):
            c = CounterMetricFamily(f"tcpwise_exporter_{name}", help_)
            c.add_metric([], v)
            yield c


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


def _le(v: float) -> str:
    return "+Inf" if v == float("inf") else repr(float(v))


def top_listeners(listeners: list[Any], k: int) -> list[tuple[str, int, int]]:
    """``(label, accept_queue, backlog)`` for the ``k`` busiest listeners (accept-queue fill, then length,
    then address) and one ``other`` row summing the rest — bounded series for any number of listeners."""
    ranked = sorted(
        listeners, key=lambda s: (-(s.rqueue / max(s.wqueue, 1)), -s.rqueue, s.sport, bytes(s.src))
    )
    out = [(_addr(s.family, s.src, s.sport), s.rqueue, s.wqueue) for s in ranked[:k]]
    rest = ranked[k:]
    if rest:
        out.append(("other", sum(s.rqueue for s in rest), sum(s.wqueue for s in rest)))
    return out


def _parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"bad --listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9477")
    return host.strip("[]") or "0.0.0.0", int(port)


def serving_url(address: tuple[str, int]) -> str:
    """The URL of the address the exporter really bound (``--listen :9477`` binds 0.0.0.0; port 0 a free one)."""
    host, port = address[0], address[1]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/metrics"


def start_watch(col: TcpCollector, peers: int, stop: threading.Event) -> threading.Thread | None:
    """Run a tracepoint watch feeding ``col.watch_metrics`` in a thread; None (reason kept) without root."""
    from tcpwise.errors import MissingCapability
    from tcpwise.watch.live import Watch
    from tcpwise.watch.metrics import WatchMetrics
    from tcpwise.watch.tracker import Filter

    metrics = WatchMetrics(top=peers)
    try:
        w = Watch(
            lambda r: None, Filter(listeners=False), metrics=metrics, purpose="exporter", buffer_kb=2048
        )
    except MissingCapability as exc:
        col.watch_state, col.watch_reason = "off", str(exc)
        return None
    col.watch_metrics = metrics
    col.watch_state, col.watch_reason = "tracepoints", ""

    def body() -> None:
        try:
            w.run(stop=stop)
        except Exception as exc:  # noqa: BLE001 - the exporter keeps serving without the watch
            col.watch_state, col.watch_reason = "off", f"watch stopped: {type(exc).__name__}: {exc}"
            col.log.log("watch", f"the tracepoint watch stopped: {type(exc).__name__}: {exc}")

    th = threading.Thread(target=body, name="tcpwise-watch", daemon=True)
    th.start()
    return th


def run(args: argparse.Namespace) -> int:
    from prometheus_client import generate_latest
    from prometheus_client.core import CollectorRegistry

    host, port = _parse_listen(args.listen)
    log = RateLimitedLog(prefix="tcpwise exporter: ")
    col = TcpCollector(
        netns=args.netns,
        top=args.top,
        proc_interval=args.proc_interval,
        thresholds=findings.Thresholds(idle_s=args.idle),
        listener_top=args.listeners,
        log=log,
    )
    col.start_background()  # first full snapshot: fails early (bad netns, no sock_diag) before serving
    reg = CollectorRegistry()
    reg.register(col)
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    max_conns = args.max_conns
    if soft != resource.RLIM_INFINITY and max_conns > soft - 64:
        # Keep fd headroom: connections at the cap plus the exporter's own files must stay under the limit.
        max_conns = max(8, soft - 64)
        log.log("limits", f"--max-conns lowered to {max_conns} to stay under the fd limit ({soft})")
    cfg = ServerConfig(
        host=host,
        port=port,
        max_conns=max_conns,
        backlog=args.backlog,
        header_timeout=args.header_timeout,
        idle_timeout=args.idle_timeout,
        min_interval=args.cache,
    )
    server = BoundedHTTPServer(lambda: generate_latest(reg), cfg, log)
    col.server_stats = server.stats
    col.open_conns = lambda: len(server.conns)
    stop_watch = threading.Event()
    watch_thread = None if args.no_watch else start_watch(col, args.peers, stop_watch)
    if watch_thread is None and not args.no_watch:
        log.log("watch", f"transition counters off: {col.watch_reason}")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:  # Ctrl-C, SIGTERM, SIGHUP (terminal closed, ssh dropped)
            loop.add_signal_handler(sig, stop.set)
        try:
            await server.start()
        except OSError as exc:
            raise UsageError(f"cannot listen on {args.listen}: {exc.strerror}") from None
        assert server.address is not None  # set by start()
        print(f"tcpwise exporter: serving {serving_url(server.address)} (Ctrl-C stops)", flush=True)
        await stop.wait()
        await server.close()

    try:
        asyncio.run(main())
    finally:
        col.stop()
        stop_watch.set()
        if watch_thread is not None:
            watch_thread.join(5)
    return 0
