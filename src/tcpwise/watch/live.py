"""Run a watch: tracepoints (or the sock_diag fallback) -> tracker -> a sink, for a duration or until stopped.

Theory of operation
-------------------
:func:`open_source` decides how this host can be watched: tracefs with the TCP tracepoints (root, tracefs,
``sock:inet_sock_set_state``), else sock_diag polling — with the reason, which the CLI prints as one line.
:class:`Watch` drives the chosen source: wait for data (poll(2) on the per-CPU pipes, at most ``tick`` s), drain
and decode, feed the tracker, let it emit what ended; every second the per-CPU ``stats`` are read so lost events
are reported while they happen (``on_lost``), not only in the summary. The instance is removed in ``finally``;
SIGTERM is turned into the same path by the CLI. The loop is bounded by ``duration`` and by ``stop`` (an Event
another thread may set, as the exporter and ``doctor --watch`` do).
"""

from __future__ import annotations

import contextlib
import gc
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from tcpwise.errors import TcpwiseError
from tcpwise.linux import kernel, netlink
from tcpwise.linux.tasks import TaskCache, netns_path, netns_paths
from tcpwise.linux.tcpevents import TcpTracepoints
from tcpwise.watch.metrics import WatchMetrics
from tcpwise.watch.record import ConnRecord
from tcpwise.watch.tracker import Filter, Tracker

__all__ = ["Watch", "WatchSummary", "open_source", "fin_timeout"]


@dataclass
class WatchSummary:
    """What the final JSON line and the table footer report."""

    source: str = "tracepoints"
    events: int = 0
    lost: int = 0
    emitted: int = 0
    filtered: int = 0
    unknown_netns: int = 0
    stray_resets: int = 0
    missing_events: list[str] = field(default_factory=list)
    interval: float | None = None  # sock_diag polling period (fallback only)
    fallback_reason: str | None = None
    elapsed: float = 0.0

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"events": self.events, "lost": self.lost, "source": self.source}
        d.update(
            {
                "connections": self.emitted,
                "filtered_out": self.filtered,
                "unknown_netns": self.unknown_netns,
                "resets_without_socket": self.stray_resets,
                "elapsed": round(self.elapsed, 3),
            }
        )
        if self.missing_events:
            d["missing_events"] = self.missing_events
        if self.interval is not None:
            d["interval"] = self.interval
            d["limit"] = f"connections shorter than {self.interval:g} s are missed"
        if self.fallback_reason:
            d["fallback_reason"] = self.fallback_reason
        return d


@contextlib.contextmanager
def gc_quiet() -> Iterator[None]:
    """Fewer cyclic-GC passes while watching: the tracker creates no reference cycles, but at 100k+ events/s
    the default thresholds rescan every live Conn dozens of times a second (measured: ~1.8x slower). Objects
    alive at the start are frozen out of the scans; the thresholds are restored afterwards."""
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


def fin_timeout() -> float:
    try:
        with open("/proc/sys/net/ipv4/tcp_fin_timeout") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 60.0


def _port_filter(ports: set[int] | None) -> dict[str, str] | None:
    """In-kernel tracefs filters for a port set (the events that carry sport/dport as fields)."""
    if not ports:
        return None
    expr = " || ".join(f"sport == {p} || dport == {p}" for p in sorted(ports))
    return {k: expr for k in ("state", "receive_reset", "retransmit", "retransmit_synack", "destroy")}


def open_source(
    ports: set[int] | None = None, buffer_kb: int = 4096, purpose: str = "watch"
) -> TcpTracepoints:
    """The tracepoint source, opened (not started). Raises MissingCapability with the reason it cannot be."""
    src = TcpTracepoints(buffer_kb=buffer_kb, purpose=purpose)
    src.open(filters=_port_filter(ports))
    return src


def _diag_socket_at(path: str) -> socket.socket | None:
    """A sock_diag socket created inside the namespace ``path`` opens (a socket stays in the namespace it was made
    in); None when it cannot be entered."""
    try:
        with kernel.in_netns(None if path == "/proc/self/ns/net" else path):
            return netlink.open_diag_socket()
    except (OSError, TcpwiseError):
        return None


def _diag_socket_in(inode: int) -> socket.socket | None:
    """:func:`_diag_socket_at` for namespace ``inode``."""
    path = netns_path(inode)
    return None if path is None else _diag_socket_at(path)


def seed(tracker: Tracker) -> int:
    """Tell ``tracker`` every listening socket of every namespace this process can enter (sock_diag inside
    each), once the tracepoints are on; returns how many. A namespace that cannot be entered is skipped."""
    n = 0
    listen = 1 << 10  # TCP_LISTEN
    for inode, path in netns_paths().items():
        sock = _diag_socket_at(path)
        if sock is None:
            continue
        try:
            socks = netlink.dump(states=listen, ext=0, sock=sock)
        except OSError:
            continue
        finally:
            sock.close()
        for sk in socks:
            # The tracepoints carry IPv4 addresses as 4 bytes, sock_diag as the first 4 of 16.
            laddr = sk.src[:4] if sk.family == socket.AF_INET else sk.src
            tracker.seed_listener(sk.family, laddr, sk.sport, inode)
            n += 1
    return n


class Watch:
    """One watch run over tracepoints. ``sink`` gets every emitted :class:`ConnRecord`."""

    def __init__(
        self,
        sink: Callable[[ConnRecord], None],
        filt: Filter | None = None,
        buffer_kb: int = 4096,
        metrics: WatchMetrics | None = None,
        on_lost: Callable[[int], None] | None = None,
        tick: float = 0.05,
        purpose: str = "watch",
        src: TcpTracepoints | None = None,
    ) -> None:
        self.filt = filt or Filter()
        self.sink = sink
        self.metrics = metrics
        self.on_lost = on_lost
        self.tick = tick
        self.summary = WatchSummary()
        self.src = src if src is not None else open_source(self.filt.ports, buffer_kb, purpose)
        self.summary.missing_events = self.src.missing
        self.diag = _diag_socket_in(self.filt.netns) if self.filt.netns is not None else None
        self.tracker = Tracker(
            self.src.ids,
            sink,
            wall_offset=time.time() - time.monotonic(),
            filt=self.filt,
            tasks=TaskCache(fallback=self.src.saved_task),
            reset_reasons=self.src.reset_reasons,
            fin_timeout_s=fin_timeout(),
            metrics=metrics,
            probe=self._probe if self.diag is not None else None,
        )
        self._lost_seen = 0
        self.on_step: Callable[[], None] | None = None  # called after every drain (zeek interim rows)
        self.started = threading.Event()  # set once the tracepoints are on

    def _probe(self, family: int, la: bytes, lp: int, ra: bytes, rp: int) -> int | None:
        assert self.diag is not None
        return self.filt.netns if netlink.exists(self.diag, family, la, lp, ra, rp) else None

    def run(self, duration: float | None = None, stop: threading.Event | None = None) -> WatchSummary:
        """Watch until ``duration`` seconds pass or ``stop`` is set; always removes the instance."""
        t0 = time.monotonic()
        src = self.src
        quiet = (
            gc_quiet() if threading.current_thread() is threading.main_thread() else contextlib.nullcontext()
        )
        try:
            quiet.__enter__()
            src.start()
            seed(self.tracker)  # after the start: a listener opened meanwhile is both seeded and traced
            self.started.set()
            next_stats = t0 + 1.0
            while True:
                now = time.monotonic()
                if duration is not None and now - t0 >= duration:
                    break
                if stop is not None and stop.is_set():
                    break
                left = self.tick if duration is None else min(self.tick, duration - (now - t0))
                src.wait(max(left, 0.0))
                self.step()
                if self.on_step is not None:
                    self.on_step()
                if time.monotonic() >= next_stats:
                    next_stats = time.monotonic() + 1.0
                    self._check_lost()
            src.instance.stop()
            self.step(final=True)
            self._check_lost()
            self.tracker.flush(open_too=True)
        finally:
            quiet.__exit__(None, None, None)
            src.close()
            if self.diag is not None:
                self.diag.close()
            self._fill_summary(t0)
        return self.summary

    def step(self, final: bool = False) -> int:
        """One drain -> tracker round; returns the records processed."""
        now = time.monotonic_ns()
        recs = self.src.drain(final=final, now_ns=now)
        self.tracker.feed(recs)
        if self.metrics is not None:
            self.metrics.events += len(recs)
        self.tracker.advance(None if final else now - self.src.hold_ns)
        return len(recs)

    def _check_lost(self) -> None:
        try:
            lost = self.src.lost()
        except OSError:
            return
        if lost > self._lost_seen:
            if self.on_lost is not None:
                self.on_lost(lost - self._lost_seen)
            self._lost_seen = lost
        if self.metrics is not None:
            self.metrics.lost = lost

    def _fill_summary(self, t0: float) -> None:
        s = self.summary
        s.events = self.src.stats.events
        s.lost = max(self._lost_seen, self.src.stats.missed_on_pages)
        s.emitted = self.tracker.emitted
        s.filtered = self.tracker.filtered
        s.unknown_netns = self.tracker.unknown_netns
        s.stray_resets = self.tracker.stray_resets
        s.elapsed = time.monotonic() - t0
