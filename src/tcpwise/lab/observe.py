"""Socket states of a lab host, recorded with timestamps by polling sock_diag inside its namespace.

Theory of operation
-------------------
A NETLINK_SOCK_DIAG socket created inside a host's namespace (:func:`tcpwise.lab.netns.in_netns`) dumps that
namespace's TCP sockets (sock_diag(7)); the dump itself is the shared sock_diag client
(:func:`tcpwise.linux.netlink.dump`), asked for no extensions. Every poll yields a map ``4-tuple -> kernel
state`` and the recorder diffs it against the previous one:

* a tuple that appears -> ``state`` event from its *implied* predecessor: a listener ``CLOSED -> LISTEN``; a
  SYN-queue entry (NEW_SYN_RECV) ``LISTEN -> SYN_RCVD``; a connecting socket ``CLOSED -> SYN_SENT``;
* a tuple whose state changed -> ``state`` event ``from -> to``;
* a tuple that vanished -> ``state`` event ``last -> CLOSED`` (TIME_WAIT expiry, LAST_ACK's final ACK, RST).

Kernel details the recorder smooths over: a passive open is a request sock (state 12, no inode) that is
replaced by a full socket in ESTABLISHED with the same 4-tuple, so both map onto one connection; TIME_WAIT is a
separate ``inet_timewait_sock`` dumped with state 6 (the ``sock:inet_sock_set_state`` tracepoint never reports
it, sock_diag does).

Limits: a state that lasts less than the poll interval is missed. With the lab's 50 ms link delay every state
of the scripted scenarios lasts at least one one-way delay; the executor polls every 2 ms.

Exact times from tracepoints (:class:`TraceStates`, when tracefs can be read): the kernel's
``sock:inet_sock_set_state`` records every transition of a full socket with its time, read and tracked by
tcpwise.watch. For a connection the tracepoints saw, :func:`merge_traced` uses their transitions and keeps from
sock_diag only what they cannot see: the SYN-queue entry before the accepted socket exists (a request sock, no
tracepoint: ``LISTEN -> SYN_RCVD`` at the SYN) and what follows the hand-off to a timewait socket (TIME_WAIT's
end). Runs with Crash/Reboot steps keep sock_diag alone (a crashed host's kernel still closes its sockets,
which the model's crash does not). Without root or tracefs, everything stays as above.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tcpwise.events import Event
from tcpwise.vocab import EventKind, TcpState, kernel_state_name

__all__ = ["StateRecorder", "ConnKey", "TraceStates", "merge_traced", "state_events", "syn_queue_at_syn"]

ConnKey = tuple[str, int, str, int]  # local addr, local port, remote addr, remote port


def _fmt(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def state_events(
    t: float,
    host: str,
    last: dict[ConnKey, str],
    cur: dict[ConnKey, str],
    label: Callable[[ConnKey], str],
    born_from: Callable[[ConnKey, str], str],
) -> list[Event]:
    """The ``state`` events of one poll: from the previous sample ``last`` to ``cur`` at time ``t``.

    A tuple first seen in ``state`` starts from ``born_from(key, state)`` (the state it is implied to have left:
    which one depends on what the caller's samples can see, e.g. whether listeners are in them); a tuple whose
    state changed goes ``from -> to``; a tuple that vanished goes ``last -> CLOSED``. Shared by the lab's
    recorder and probe's view of the target, so both worlds write the same events for the same polls.
    """
    out: list[Event] = []
    for key, state in cur.items():
        prev = last.get(key)
        if prev == state:
            continue
        out.append(
            Event(
                t,
                host,
                EventKind.STATE,
                from_state=TcpState(born_from(key, state) if prev is None else prev),
                to_state=TcpState(state),
                conn=label(key),
            )
        )
    for key, prev in last.items():
        if key not in cur:
            out.append(
                Event(
                    t,
                    host,
                    EventKind.STATE,
                    from_state=TcpState(prev),
                    to_state=TcpState.CLOSED,
                    conn=label(key),
                )
            )
    return out


@dataclass
class StateRecorder:
    host: str
    names: dict[str, str] = field(default_factory=dict)  # address -> host name, for readable conn labels
    last: dict[ConnKey, str] = field(default_factory=dict)
    sock: socket.socket | None = None
    polls: int = 0
    families: tuple[int, ...] = (socket.AF_INET, socket.AF_INET6)

    def open(self) -> None:
        """Create the sock_diag socket; call inside the host's namespace."""
        from tcpwise.linux.netlink import open_diag_socket

        self.close()
        self.sock = open_diag_socket()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def label(self, key: ConnKey) -> str:
        laddr, lport, raddr, rport = key
        me = f"{self.host}:{lport}"
        if rport == 0:
            return f"{me} (listen)"
        return f"{me}>{self.names.get(raddr, _fmt(raddr, rport))}:{rport}"

    def sample(self) -> dict[ConnKey, str]:
        from tcpwise.linux.netlink import dump, format_addr

        if self.sock is None:
            return {}
        self.polls += 1
        cur: dict[ConnKey, str] = {}
        for s in dump(self.families, sock=self.sock, ext=0):
            key = (format_addr(s.family, s.src), s.sport, format_addr(s.family, s.dst), s.dport)
            cur[key] = kernel_state_name(s.state)
        return cur

    def diff(self, t: float, cur: dict[ConnKey, str]) -> list[Event]:
        """Events for the change from the previous sample to ``cur`` at time ``t``."""

        def born_from(key: ConnKey, state: str) -> str:
            if state == "LISTEN":
                return "CLOSED"
            if state == "SYN_RCVD" or self._has_listener(key[1], cur):
                return "LISTEN"  # a passive open is born from the listener (RFC 9293 §3.3.2 LISTEN -> SYN-RECEIVED)
            return "CLOSED"

        out = state_events(t, self.host, self.last, cur, self.label, born_from)
        self.last = cur
        return out

    @staticmethod
    def _has_listener(port: int, cur: dict[ConnKey, str]) -> bool:
        return any(k[1] == port and k[3] == 0 and v == "LISTEN" for k, v in cur.items())

    def poll(self, t0: float) -> list[Event]:
        """Dump and diff; a change is stamped when the dump that saw it has returned (``time.monotonic() - t0``),
        the upper bound of when it happened. A stamp taken before the dump could precede the change itself (the
        loop is preempted, or the tracepoints are drained first) and put a polled state ahead of the traced
        transition it duplicates (:func:`merge_traced` keeps polled states only outside the traced span)."""
        cur = self.sample()
        return self.diff(time.monotonic() - t0, cur)

    def forget_all(self, t: float, reason: str) -> list[Event]:
        """The host crashed: every connection it knew is gone (model: state lost at once)."""
        out = [
            Event(
                t,
                self.host,
                EventKind.STATE,
                from_state=TcpState(prev),
                to_state=TcpState.CLOSED,
                conn=self.label(k),
                text=reason,
            )
            for k, prev in self.last.items()
        ]
        self.last = {}
        return out


class TraceStates:
    """Tracepoint state transitions of the lab's hosts (their namespaces), tracked by tcpwise.watch."""

    def __init__(self, src: Any, tracker: Any, hosts: dict[int, str]) -> None:
        self.src = src
        self.tracker = tracker
        self.hosts = hosts  # namespace inode -> host name
        self.records: list[Any] = []
        self.last_drain = 0

    @classmethod
    def try_start(
        cls, host_ns: dict[str, str], diag: Callable[[str], socket.socket | None]
    ) -> TraceStates | None:
        """Start tracing for hosts ``{name: namespace}``; None when the tracepoints cannot be read.

        ``diag(host)`` returns that host's sock_diag socket (the StateRecorder's); it is accepted for the
        caller's convenience but not used to attribute sockets (see the comment at ``probe=None``)."""
        from tcpwise.errors import TcpwiseError
        from tcpwise.linux.tasks import TaskCache
        from tcpwise.linux.tcpevents import TcpTracepoints
        from tcpwise.watch.tracker import Tracker

        inodes = {}
        for name, ns in host_ns.items():
            try:
                inodes[os.stat(f"/run/netns/{ns}").st_ino] = name
            except OSError:
                return None
        try:
            src = TcpTracepoints(purpose="lab", buffer_kb=2048).open()
        except (TcpwiseError, OSError):
            return None

        ts = cls(src, None, inodes)
        ts.tracker = Tracker(
            src.ids,
            ts.records.append,
            wall_offset=0.0,  # record times in time.monotonic() seconds, like the executor's t0
            tasks=TaskCache(fallback=src.saved_task),
            reset_reasons=src.reset_reasons,
            # No sock_diag probe by 4-tuple here: every lab run uses the same addresses, and Linux picks the same
            # first ephemeral port in every fresh namespace (the port hash does not include the namespace), so a
            # concurrent lab run has the very same 4-tuple and a probe would claim its sockets. Only events whose
            # namespace is certain (process context, or an unambiguous listener) are used; the others keep the
            # sock_diag polling times.
            probe=None,
        )
        try:
            src.start()
        except OSError:
            src.close()
            return None
        return ts

    def drain(self) -> None:
        """Read what the kernel recorded so far (call often: the buffer is shared by every namespace's traffic)."""
        now = time.monotonic_ns()
        if now - self.last_drain < 20_000_000:  # every 20 ms is plenty; the loop calls this every 2 ms
            return
        self.last_drain = now
        self.tracker.feed(self.src.drain(now_ns=now))
        self.tracker.advance(now - self.src.hold_ns)

    def finish(self) -> dict[str, list[Any]]:
        """Stop, flush, and return each host's records (ended and still open)."""
        self.src.instance.stop()
        self.tracker.feed(self.src.drain(final=True))
        self.tracker.flush(open_too=True)
        self.close()
        out: dict[str, list[Any]] = {name: [] for name in self.hosts.values()}
        for r in self.records:
            host = self.hosts.get(r.netns)
            if host is not None and r.role != "listener":
                out[host].append(r)
        return out

    def close(self) -> None:
        self.src.close()


# How far outside a traced record's life a sock_diag sighting of the same connection may fall and still vouch
# for it: the executor polls every 2 ms, but a loaded machine delays a poll by far more.
_SEEN_SLACK = 0.5


def merge_traced(
    events: list[Event], traced: dict[str, list[Any]], recorders: dict[str, StateRecorder], t0: float
) -> list[Event]:
    """Replace sock_diag's state events of every connection the tracepoints saw by the exact transitions;
    keep sock_diag's before the first traced one (the SYN-queue entry) and after the last (TIME_WAIT's end).

    A traced record counts only if the host's own sock_diag saw the same connection during the record's life.
    The tracepoints see every namespace, and a socket born in softirq context (a listener's child) is placed in
    a namespace by the listeners the tracker knows: a concurrent lab run's listener on the same address and
    port, created before this run's tracing started, is unknown to it, so that run's connections would be
    credited to this host. sock_diag runs inside the host's namespace and cannot be wrong about that.
    """
    polled: dict[tuple[str, str], list[float]] = {}
    for e in events:
        if e.kind == "state" and e.conn:
            polled.setdefault((e.host, e.conn), []).append(e.t)
    traced_ev: dict[tuple[str, str], list[Event]] = {}
    for host, records in traced.items():
        rec = recorders.get(host)
        if rec is None:
            continue
        for r in records:
            if not r.transitions:
                continue
            label = rec.label((r.laddr, r.lport, r.raddr, r.rport))
            if r.lport == 0:
                label = _bound_label(events, host, label, r.transitions[0].t - t0, traced_ev) or label
            first, last = r.transitions[0].t - t0, r.transitions[-1].t - t0
            if not any(first - _SEEN_SLACK <= t <= last + _SEEN_SLACK for t in polled.get((host, label), ())):
                continue  # not this host's connection (see above)
            traced_ev[(host, label)] = [
                Event(
                    max(0.0, t.t - t0),
                    host,
                    EventKind.STATE,
                    from_state=TcpState(t.from_state),
                    to_state=TcpState(t.to_state),
                    conn=label,
                )
                for t in r.transitions
            ]
    out: list[Event] = []
    for e in events:
        tr = traced_ev.get((e.host, e.conn or "")) if e.kind == "state" else None
        if tr is None or e.t < tr[0].t or e.t > tr[-1].t:
            out.append(e)
    for evs in traced_ev.values():
        out.extend(evs)
    return out


def _bound_label(
    events: list[Event], host: str, label: str, t: float, taken: dict[tuple[str, str], list[Event]]
) -> str | None:
    """The label of the connection a port-less traced record belongs to. Linux's tcp_v4_connect sets SYN_SENT
    before inet_hash_connect picks the local port, so the tracepoint's first record of an active open has port 0;
    later transitions carry the port, but a connection still in SYN_SENT at the end never shows it. sock_diag saw
    the socket with its port: the first CLOSED -> SYN_SENT of this host towards the same peer within 50 ms."""
    peer = label.split(">", 1)[1] if ">" in label else None
    for e in events:
        if (
            e.host == host
            and e.kind == "state"
            and e.to_state == "SYN_SENT"
            and e.conn
            and e.conn.endswith(">" + (peer or ""))
            and 0 <= e.t - t < 0.05
            and (host, e.conn) not in taken
        ):
            return e.conn
    return None


def syn_queue_at_syn(events: list[Event]) -> list[Event]:
    """Stamp each polled SYN-queue entry (``LISTEN -> SYN_RCVD``) with the arrival of the SYN that made it.

    A request sock has no tracepoint, so only a sock_diag poll sees it, up to a poll interval late; SYNs that
    arrive within one interval (a burst of connects) then share one time and fall in the dump's hash order,
    not their order on the wire. The capture saw each SYN delivered to the host: the entry was made by the
    latest one delivered before the poll (a retransmitted SYN when the first was dropped on a full queue).
    """
    syns: dict[tuple[str, str], list[float]] = {}
    for e in events:
        seg = e.segment
        if e.kind == "recv" and e.conn and seg is not None and "S" in seg.flags and "A" not in seg.flags:
            syns.setdefault((e.host, e.conn), []).append(e.t)
    out = []
    for e in events:
        if e.kind == "state" and e.from_state == "LISTEN" and e.to_state == "SYN_RCVD" and e.conn:
            before = [t for t in syns.get((e.host, e.conn), ()) if t <= e.t]
            if before:
                e = dataclasses.replace(e, t=max(before))
        out.append(e)
    return out
