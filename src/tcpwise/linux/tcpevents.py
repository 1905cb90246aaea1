"""The TCP tracepoints as one time-ordered stream of decoded records, read from a private tracefs instance.

Theory of operation
-------------------
:class:`TcpTracepoints` creates an instance (:class:`tcpwise.linux.tracefs.Instance`), enables the events of
:data:`EVENTS` that this kernel has, and builds for each one a :class:`struct.Struct` from its ``format`` file that
unpacks the common fields and then the fields listed in :data:`EVENTS` — so the tuple layout is fixed by this
module (index constants below), whatever offsets the running kernel uses. A missing event is reported, not fatal;
only ``sock:inet_sock_set_state`` is required.

:meth:`TcpTracepoints.drain` reads every CPU's available pages (``trace_pipe_raw``, non-blocking), decodes them
(:func:`tcpwise.linux.ringbuf.decode_page`) and merges the CPUs by time. Events of one connection can fire on
different CPUs (a client's ``connect()`` on one, the server's softirq on the other), so the merge must not hand
out an event while an earlier one may still sit unread on another CPU: records newer than ``now - hold``
(``hold`` = 5 ms by default: an event is time-stamped when its slot is reserved and committed microseconds later)
are kept for the next drain. :meth:`drain` with ``final=True`` flushes everything.

Record tuples (``rec``) start with ``common_type`` (the event id), ``common_flags``, ``common_preempt_count``,
``common_pid`` (the *thread* id of the task the event fired in; meaningless when ``common_flags`` has
:data:`tcpwise.linux.ringbuf.IRQ_CONTEXT` bits) and then the fields of :data:`EVENTS` in order. Addresses stay raw
bytes; ports are host order (the tracepoints convert them).
"""

from __future__ import annotations

import os
import re
import select
import time
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from tcpwise.errors import MissingCapability
from tcpwise.linux import ringbuf
from tcpwise.linux.tracefs import EventFormat, Instance

__all__ = [
    "EVENTS",
    "REQUIRED",
    "TcpTracepoints",
    "DrainStats",
    "symbols",
]

# (system, event, fields unpacked after the four common ones). Field names are the kernel's (format files).
EVENTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "state": (
        "sock",
        "inet_sock_set_state",
        ("skaddr", "oldstate", "newstate", "sport", "dport", "family", "protocol", "saddr", "daddr")
        + ("saddr_v6", "daddr_v6"),
    ),
    "send_reset": ("tcp", "tcp_send_reset", ("skaddr", "state", "reason", "saddr", "daddr")),
    "receive_reset": ("tcp", "tcp_receive_reset", ("skaddr", "sport", "dport", "family")),
    "retransmit": ("tcp", "tcp_retransmit_skb", ("skaddr", "state", "sport", "dport", "family")),
    "retransmit_synack": (
        "tcp",
        "tcp_retransmit_synack",
        ("skaddr", "sport", "dport", "family", "saddr", "daddr", "saddr_v6", "daddr_v6"),
    ),
    "destroy": ("tcp", "tcp_destroy_sock", ("skaddr", "sport", "dport", "family")),
}
REQUIRED = ("state",)

# Tuple indexes shared by every event: the common fields.
TYPE, FLAGS, PREEMPT, PID = 0, 1, 2, 3
# inet_sock_set_state
S_SK, S_OLD, S_NEW, S_SPORT, S_DPORT, S_FAMILY, S_PROTO, S_SADDR, S_DADDR, S_SADDR6, S_DADDR6 = range(4, 15)
# tcp_send_reset: saddr/daddr are struct sockaddr_in / sockaddr_in6 (28 bytes; TP_STORE_ADDR_PORTS)
R_SK, R_STATE, R_REASON, R_SADDR, R_DADDR = range(4, 9)
# tcp_receive_reset / tcp_destroy_sock
X_SK, X_SPORT, X_DPORT, X_FAMILY = range(4, 8)
# tcp_retransmit_skb
T_SK, T_STATE, T_SPORT, T_DPORT, T_FAMILY = range(4, 9)
# tcp_retransmit_synack (skaddr is the listener; the request's 4-tuple follows)
Y_SK, Y_SPORT, Y_DPORT, Y_FAMILY, Y_SADDR, Y_DADDR, Y_SADDR6, Y_DADDR6 = range(4, 12)


def symbols(fmt_text: str, field_name: str) -> dict[int, str]:
    """``{value: name}`` from a format file's ``__print_symbolic(REC->FIELD, { 0, "NAME" }, ...)``."""
    key = f"__print_symbolic(REC->{field_name},"
    i = fmt_text.find(key)
    if i < 0:
        return {}
    out: dict[int, str] = {}
    j = i + len(key)
    for m in re.finditer(r"\{\s*(-?\d+)\s*,\s*\"([^\"]*)\"\s*\}|\)", fmt_text[j:]):
        if m.group(0) == ")":
            break
        out[int(m.group(1))] = m.group(2)
    return out


@dataclass
class DrainStats:
    """Counts over the life of a source."""

    events: int = 0  # records handed out
    skipped: int = 0  # entries of unknown ids or malformed records
    pages: int = 0
    missed_pages: int = 0  # pages that said events were lost before them
    missed_on_pages: int = 0  # the counts those pages stored


class TcpTracepoints:
    """A private instance with the TCP tracepoints on; :meth:`drain` returns time-ordered ``(ns, rec)``."""

    def __init__(
        self, kinds: tuple[str, ...] | None = None, buffer_kb: int = 4096, purpose: str = "watch"
    ) -> None:
        self.instance = Instance(purpose, buffer_kb=buffer_kb)
        self.kinds = tuple(kinds) if kinds is not None else tuple(EVENTS)
        self.ids: dict[str, int] = {}  # kind -> event id
        self.kind_of: dict[int, str] = {}
        self.formats: dict[str, EventFormat] = {}
        self.reset_reasons: dict[int, str] = {}
        self.unpackers: dict[int, ringbuf.Unpacker] = {}
        self.carry: list[tuple[int, tuple[Any, ...]]] = []
        self.stats = DrainStats()
        self.hold_ns = 5_000_000
        self.started = False

    @property
    def missing(self) -> list[str]:
        return list(self.instance.missing)

    def open(self, filters: dict[str, str] | None = None) -> TcpTracepoints:
        """Create the instance and enable the events; ``filters`` = ``{kind: tracefs filter expression}``.

        Raises:
            MissingCapability: no tracefs/root, or the kernel lacks ``sock:inet_sock_set_state``.
        """
        inst = self.instance.create()
        try:
            for kind in self.kinds:
                system, name, fields = EVENTS[kind]
                fmt = inst.enable(system, name)
                if fmt is None:
                    continue
                try:
                    st = fmt.struct_for(fields)
                except (KeyError, ValueError):
                    inst.missing.append(f"{system}:{name} (unexpected layout)")
                    continue
                self.ids[kind] = fmt.id
                self.kind_of[fmt.id] = kind
                self.formats[kind] = fmt
                self.unpackers[fmt.id] = (st.unpack_from, st.size)
                if filters and kind in filters:
                    self._filter(system, name, filters[kind])
            for kind in REQUIRED:
                if kind not in self.ids:
                    system, name, _ = EVENTS[kind]
                    raise MissingCapability(f"this kernel has no {system}:{name} tracepoint")
            if "send_reset" in self.formats:
                path = os.path.join(inst.path, "events", "tcp", "tcp_send_reset", "format")
                try:
                    with open(path) as f:
                        self.reset_reasons = symbols(f.read(), "reason")
                except OSError:
                    pass
        except BaseException:
            inst.remove()
            raise
        return self

    def saved_task(self, tid: int) -> tuple[int, str] | None:
        """``(tgid, comm)`` of an exited task from tracefs's ``saved_tgids``/``saved_cmdlines`` (read-only)."""
        root = self.instance.root
        tgid = comm = None
        key = f"{tid} "
        try:
            with open(os.path.join(root, "saved_tgids")) as f:
                for line in f:
                    if line.startswith(key):
                        tgid = int(line.split()[1])
                        break
            with open(os.path.join(root, "saved_cmdlines")) as f:
                for line in f:
                    if line.startswith(key):
                        comm = line[len(key) :].strip()
                        break
        except (OSError, ValueError, IndexError):
            return None
        if tgid is None or comm is None or comm == "<...>":
            return None
        return tgid, comm

    def _filter(self, system: str, name: str, expr: str) -> None:
        path = os.path.join(self.instance.path, "events", system, name, "filter")
        try:
            with open(path, "w") as f:
                f.write(expr)
        except OSError as exc:
            raise MissingCapability(f"the kernel refused the filter {expr!r} on {system}:{name}") from exc

    def start(self) -> None:
        self.instance.start()
        self.started = True

    def close(self) -> None:
        self.instance.remove()

    def __enter__(self) -> TcpTracepoints:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait(self, timeout: float) -> None:
        """Sleep until a CPU buffer passes its wake-up mark or ``timeout`` seconds pass."""
        fds = list(self.instance.fds.values())
        if not fds:
            time.sleep(timeout)
            return
        try:
            p = select.poll()
            for fd in fds:
                p.register(fd, select.POLLIN)
            p.poll(max(0, int(timeout * 1000)))
        except (OSError, ValueError):
            time.sleep(timeout)

    def drain(self, final: bool = False, now_ns: int | None = None) -> list[tuple[int, tuple[Any, ...]]]:
        """Every record available on every CPU, ordered by time; the newest ``hold`` ns stay for next time."""
        out = self.carry
        self.carry = []
        st = self.stats
        layout = self.instance.layout
        unp = self.unpackers
        decode = ringbuf.decode_page
        if now_ns is None:
            now_ns = time.monotonic_ns()
        for cpu in list(self.instance.fds):
            for page in self.instance.read_pages(cpu):
                r = decode(page, layout, unp, out)
                st.pages += 1
                st.skipped += r.skipped
                if r.missed:
                    st.missed_pages += 1
                    st.missed_on_pages += r.missed_count
        out.sort(key=itemgetter(0))
        if not final and out:
            cut = now_ns - self.hold_ns
            if out[-1][0] > cut:
                lo, hi = 0, len(out)
                while lo < hi:  # first index with time > cut
                    mid = (lo + hi) // 2
                    if out[mid][0] <= cut:
                        lo = mid + 1
                    else:
                        hi = mid
                self.carry = out[lo:]
                del out[lo:]
        st.events += len(out)
        return out

    def lost(self) -> int:
        """Events the kernel dropped or overwrote in this instance (all CPUs) so far."""
        return self.instance.lost()
