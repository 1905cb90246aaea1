"""The ``tcpwise watch`` command behind the CLI: pick the source, wire filters and writers, handle signals.

Signals: the first SIGINT/SIGTERM/SIGHUP asks the loop to stop (it does within one tick, ~50 ms), then open sockets
and the summary are written and the tracefs instance is removed — a normal end, exit 0. A second one interrupts at
once; the instance is still removed by the ``finally`` of :class:`tcpwise.watch.live.Watch`. After SIGKILL,
``tcpwise watch --clean`` removes what is left (only instances whose owner process is dead).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

from tcpwise.errors import STOP_SIGNALS, MissingCapability, UsageError
from tcpwise.watch.live import Watch, WatchSummary
from tcpwise.watch.record import ConnRecord
from tcpwise.watch.tracker import Filter

__all__ = ["watch_cmd", "clean_cmd", "make_filter"]


def clean_cmd() -> int:
    from tcpwise.linux import tracefs

    if os.geteuid() != 0:
        raise MissingCapability("tcpwise watch --clean needs root (tracefs instances belong to root)")
    try:
        root = tracefs.find_tracefs(mount=False)
    except MissingCapability:
        print("tcpwise watch --clean: tracefs is not mounted: nothing to clean")
        return 0
    try:
        removed, kept = tracefs.clean(root)
    except PermissionError:
        raise MissingCapability("removing tracefs instances needs root") from None
    for name in removed:
        print(f"removed {name}")
    for name in kept:
        print(f"kept {name} (its owner is running)")
    if not removed and not kept:
        print("no tcpwise tracefs instances")
    return 0


def make_filter(opts: Mapping[str, Any]) -> Filter:
    netns = None
    if opts.get("netns"):
        from tcpwise.linux.tasks import netns_of_name

        netns = netns_of_name(opts["netns"])
        if netns is None:
            try:
                have = ", ".join(sorted(os.listdir("/run/netns"))) or "none"
            except OSError:
                have = "none"
            raise UsageError(f"no network namespace {opts['netns']!r} (have: {have}; or 'self', or an inode)")
    return Filter(
        ports=set(opts["port"]) if opts.get("port") else None,
        addrs=set(opts["addr"]) if opts.get("addr") else None,
        pids=set(opts["pid"]) if opts.get("pid") else None,
        comms=set(opts["comm"]) if opts.get("comm") else None,
        netns=netns,
        states=set(opts["state"]) if opts.get("state") else None,
        listeners=not opts.get("no_listeners"),
    )


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """First SIGINT/SIGTERM/SIGHUP: set ``stop``; second: KeyboardInterrupt (immediate, cleanup still runs).
    SIGHUP (the terminal closed, the ssh session dropped) is a stop like SIGTERM: its default action would leave
    the tracefs instance recording."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    old = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class _ConnDrawer:
    """``--conn``: draw each finished connection; with -o, the first one, then stop."""

    def __init__(
        self, out: TextIO, fmt: str, path: str | None, stop: threading.Event, count: int | None = None
    ) -> None:
        self.out = out
        self.count = 1 if path else count
        self.fmt = fmt
        self.path = path
        self.stop = stop
        self.waiting: dict[tuple[str, int, str, int], ConnRecord] = {}
        self.done = 0
        self.color = "auto"  # --color

    def write(self, r: ConnRecord) -> None:
        if self.count is not None and self.done >= self.count:
            return
        if r.role == "listener":
            return
        # Both ends on this host (loopback): draw them together, lane A and lane B.
        mine = (r.laddr, r.lport, r.raddr, r.rport)
        theirs = (r.raddr, r.rport, r.laddr, r.lport)
        peer = self.waiting.pop(theirs, None)
        local_peer = r.raddr == r.laddr or r.raddr.startswith("127.") or r.raddr == "::1"
        if peer is None and local_peer and not r.open and len(self.waiting) < 1000:
            self.waiting[mine] = r
            return
        self._draw(r if peer is None or r.role == "client" else peer, peer if r.role == "client" else r)

    def _draw(self, a: ConnRecord, b: ConnRecord | None) -> None:
        from tcpwise.outfile import write_output
        from tcpwise.render import render
        from tcpwise.watch.output import conn_run

        if b is a:
            b = None
        out = render(conn_run(a, b), self.fmt, color=self.fmt == "text" and _color(self.out, self.color))
        assert isinstance(out, str)
        if self.path:
            write_output(out, self.path)
        else:
            self.out.write(out if out.endswith("\n") else out + "\n")
            self.out.flush()
        self.done += 1
        if self.count is not None and self.done >= self.count:
            self.stop.set()

    def lost(self, n: int) -> None:
        sys.stderr.write(f"tcpwise: watch: {n} events lost (ring buffer full)\n")

    def close(self, s: WatchSummary) -> None:
        for r in list(self.waiting.values()):
            if self.count is not None and self.done >= self.count:
                break
            self._draw(r, None)
        self.waiting.clear()


def _color(out: TextIO, choice: str = "auto") -> bool:
    from tcpwise.term import use_color

    return use_color(choice, out)  # --color: always/never win; auto: a terminal without NO_COLOR


def _writer(opts: Mapping[str, Any], out: TextIO, stop: threading.Event) -> Any:
    from tcpwise.watch import output

    if opts.get("conn"):
        drawer = _ConnDrawer(
            out, opts.get("conn_format") or "text", opts.get("output"), stop, opts.get("count")
        )
        drawer.color = opts.get("color") or "auto"
        return drawer
    fmt = opts.get("format") or "table"
    if fmt == "json":
        return output.JsonWriter(out)
    if fmt == "zeek":
        return output.ZeekRows(out)
    return output.TableWriter(out, wide=bool(opts.get("wide")), color=opts.get("color") or "auto")


def watch_cmd(opts: Mapping[str, Any], out: TextIO, env: Mapping[str, str]) -> int:
    filt = make_filter(opts)
    stop = threading.Event()
    # Signals first: a SIGTERM that arrives while the instance is being created must still remove it.
    with _stop_on_signals(stop):
        return _watch(opts, out, filt, stop)


def _fallback_note(reason: str | None, interval: float) -> str:
    limit = f"connections shorter than {interval:g} s are missed, resets are not seen"
    if reason:
        return f"tcpwise: watch: tracepoints unavailable ({reason}); falling back to sock_diag polling every {interval:g} s: {limit}\n"
    return f"tcpwise: watch: sock_diag polling every {interval:g} s: {limit}\n"


def _watch(opts: Mapping[str, Any], out: TextIO, filt: Filter, stop: threading.Event) -> int:
    src = None
    reason = None
    if not opts.get("poll"):
        from tcpwise.watch.live import open_source

        try:
            src = open_source(filt.ports, opts.get("buffer_kb") or 4096)
        except MissingCapability as exc:
            reason = str(exc)
    try:
        if src is None and opts.get("netns") and os.geteuid() != 0:
            raise MissingCapability("--netns needs root")
        writer = _writer(opts, out, stop)
    except BaseException:
        if src is not None:
            src.close()
        raise
    count = None if opts.get("conn") else opts.get("count")  # --conn counts drawings itself
    emitted = [0]

    def sink(r: ConnRecord) -> None:
        if stop.is_set() and count is not None and emitted[0] >= count:
            return
        writer.write(r)
        emitted[0] += 1
        if count is not None and emitted[0] >= count:
            stop.set()

    interval = float(opts.get("interval") or 0.1)
    if src is None:
        from tcpwise.watch.poll import Poller

        sys.stderr.write(_fallback_note(reason, interval))
        poller = Poller(sink, filt, interval=interval, netns=opts.get("netns"))
        summary = poller.run(duration=opts.get("duration"), stop=stop)
        summary.fallback_reason = reason
    else:
        w = Watch(sink, filt, src=src, on_lost=writer.lost)
        zeek = opts.get("format") == "zeek" and not opts.get("conn")
        interim = _Interim(w, writer, float(opts.get("interim") or 60.0)) if zeek else None
        summary = _run(w, opts.get("duration"), stop, interim, writer)
    writer.close(summary)
    return 0


class _Interim:
    """zeek: every ``period`` s, a row for each connection open longer than ``period`` (run from the loop)."""

    def __init__(self, w: Watch, writer: Any, period: float) -> None:
        self.w = w
        self.writer = writer
        self.period = period
        self.next = time.monotonic() + period

    def tick(self) -> None:
        if time.monotonic() < self.next:
            return
        self.next = time.monotonic() + self.period
        for r in self.w.tracker.open_records(min_age_ns=int(self.period * 1e9)):
            self.writer.write(r)


def _run(
    w: Watch, duration: float | None, stop: threading.Event, interim: _Interim | None, writer: Any = None
) -> WatchSummary:
    flush = getattr(writer, "flush", None)

    def after_step() -> None:
        if interim is not None:
            interim.tick()
        if flush is not None:
            flush()

    w.on_step = after_step
    return w.run(duration=duration, stop=stop)
