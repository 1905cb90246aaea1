"""The fallback when tracepoints cannot be read: sock_diag polling, with its sampling limit stated.

Theory of operation
-------------------
Every ``interval`` seconds one NETLINK_SOCK_DIAG dump (:func:`tcpwise.linux.netlink.dump`, no extensions) lists
the namespace's TCP sockets; the poller diffs the map ``4-tuple -> state`` against the previous one. A new
4-tuple starts a record (from its implied predecessor: CLOSED, or LISTEN for an accepted socket), a changed state
adds a transition, a vanished one ends the record with ``-> CLOSED``. TIME_WAIT shows up here (sock_diag dumps
timewait sockets), unlike with the tracepoints. Transition times are the sample times.

What it cannot see, by construction: a connection that opens and closes between two samples, every state that
lasts less than the interval, resets (a socket reset simply vanishes) and who sent them. Processes are
attributed by joining socket inodes with /proc (as the doctor does), at most every 0.25 s. Works without
root for the caller's own namespace (other users' processes then stay unattributed).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from tcpwise.errors import MissingCapability
from tcpwise.linux import kernel, netlink, procfs
from tcpwise.linux.tasks import netns_inode
from tcpwise.vocab import kernel_state_name
from tcpwise.watch.live import WatchSummary
from tcpwise.watch.record import ConnRecord, Transition, fmt_addr
from tcpwise.watch.tracker import Filter

__all__ = ["Poller"]

Key = tuple[int, bytes, int, bytes, int]
_LISTEN, _SYN_RECV, _NEW_SYN_RECV = 10, 3, 12
_CLOSER_LOCAL = {"FIN_WAIT_1", "FIN_WAIT_2", "CLOSING", "TIME_WAIT"}
_CLOSER_REMOTE = {"CLOSE_WAIT", "LAST_ACK"}


class _Seen:
    __slots__ = ("t0", "trans", "state", "inode", "pid", "comm", "retrans", "role")

    def __init__(self, t0: float, state: str, prev: str, inode: int, role: str) -> None:
        self.t0 = t0
        self.trans = [(t0, prev, state)]
        self.state = state
        self.inode = inode
        self.pid: int | None = None
        self.comm: str | None = None
        self.retrans = 0
        self.role = role


class Poller:
    """sock_diag polling with the same records and sink as the tracepoint watch."""

    def __init__(
        self,
        sink: Callable[[ConnRecord], None],
        filt: Filter | None = None,
        interval: float = 0.1,
        netns: str | None = None,
    ) -> None:
        self.sink = sink
        self.filt = filt or Filter()
        self.interval = interval
        self.netns = netns
        self.summary = WatchSummary(source="sock_diag", interval=interval)
        self.seen: dict[Key, _Seen] = {}
        self.last_attr = 0.0
        self.ns_inode = netns_inode("/proc/self/ns/net") if netns is None else None

    def run(self, duration: float | None = None, stop: threading.Event | None = None) -> WatchSummary:
        t0 = time.monotonic()
        with kernel.in_netns(self.netns):
            try:
                sock = netlink.open_diag_socket()
            except OSError as exc:
                raise MissingCapability(f"cannot open a NETLINK_SOCK_DIAG socket: {exc.strerror}") from None
        if self.netns is not None:
            self.ns_inode = netns_inode(f"/run/netns/{self.netns}")
        try:
            first = True
            while True:
                now = time.monotonic()
                if duration is not None and now - t0 >= duration:
                    break
                if stop is not None and stop.is_set():
                    break
                self._poll(sock, time.time(), first)
                first = False
                nxt = now + self.interval
                wait = nxt - time.monotonic()
                if duration is not None:
                    wait = min(wait, t0 + duration - time.monotonic())
                if wait > 0:
                    if stop is not None:
                        stop.wait(wait)
                    else:
                        time.sleep(wait)
            for key, s in sorted(self.seen.items(), key=lambda kv: kv[1].t0):
                if s.trans:  # a socket that existed before and never changed is no story we watched
                    self._emit(key, s, None)
        finally:
            sock.close()
            self.summary.elapsed = time.monotonic() - t0
        return self.summary

    def _poll(self, sock: socket.socket, now: float, first: bool) -> None:
        cur: dict[Key, tuple[str, int, int]] = {}
        for d in netlink.dump(sock=sock, ext=0):
            key = (d.family, d.src, d.sport, d.dst, d.dport)
            cur[key] = (kernel_state_name(d.state), d.inode, d.retrans if d.timer == 1 else 0)
        self.summary.events += 1
        listeners = {(k[0], k[2]) for k, v in cur.items() if v[0] == "LISTEN"}
        new_inodes: set[int] = set()
        for key, (state, inode, retrans) in cur.items():
            s = self.seen.get(key)
            if s is None:
                if state == "LISTEN":
                    prev, role = "CLOSED", "listener"
                elif state == "SYN_RCVD" or (key[0], key[2]) in listeners:
                    prev, role = "LISTEN", "server"
                else:
                    prev, role = "CLOSED", "client"
                s = self.seen[key] = _Seen(now, state, prev, inode, role)
                if first:
                    s.trans = []  # existed before the watch: its past is unknown
                    s.role = role if state == "LISTEN" else "unknown"
                if inode:
                    new_inodes.add(inode)
            elif s.state != state:
                s.trans.append((now, s.state, state))
                s.state = state
                if inode and not s.inode:
                    s.inode = inode
                    new_inodes.add(inode)
            s.retrans = max(s.retrans, retrans)
        if new_inodes and time.monotonic() - self.last_attr >= 0.25:
            self._attribute()
        for key in [k for k in self.seen if k not in cur]:
            gone = self.seen.pop(key)
            gone.trans.append((now, gone.state, "CLOSED"))
            self._emit(key, gone, now)

    def _attribute(self) -> None:
        self.last_attr = time.monotonic()
        wanted = {s.inode for s in self.seen.values() if s.inode and s.pid is None}
        if not wanted:
            return
        att = procfs.scan(wanted)
        for s in self.seen.values():
            pids = att.owners.get(s.inode)
            if pids:
                p = att.procs.get(pids[0])
                s.pid = pids[0]
                s.comm = p.comm if p else None

    def _emit(self, key: Key, s: _Seen, end: float | None) -> None:
        fam, src, sport, dst, dport = key
        states = {b for _, _, b in s.trans} | ({s.trans[0][1]} if s.trans else set())
        closer = "local" if states & _CLOSER_LOCAL else ("remote" if states & _CLOSER_REMOTE else "none")
        if states >= {"FIN_WAIT_1", "CLOSING"}:
            closer = "local"
        open_ = end is None
        tw = None if open_ else ("TIME_WAIT" in states)
        if open_:
            reason = "open"
        elif s.role == "listener":
            reason = "listener-closed"
        elif tw or "LAST_ACK" in states:
            reason = "fin"
        else:
            reason = "closed"  # vanished; what ended it happened between two samples
        rec = ConnRecord(
            laddr=fmt_addr(fam, src),
            lport=sport,
            raddr=fmt_addr(fam, dst),
            rport=dport,
            family=6 if fam == socket.AF_INET6 else 4,
            netns=self.ns_inode,
            pid=s.pid,
            comm=s.comm,
            role=s.role,
            start=s.t0,
            end=end,
            transitions=tuple(Transition(t, a, b) for t, a, b in s.trans),
            closer=closer,
            simultaneous_close="CLOSING" in states,
            time_wait=tw,
            resets=(),
            retransmits=s.retrans,
            synack_retransmits=0,
            end_reason=reason,
            open=open_,
            partial=not s.trans or s.trans[0][0] != s.t0,
            source="sock_diag",
        )
        if self.filt.match(rec):
            self.summary.emitted += 1
            self.sink(rec)
        else:
            self.summary.filtered += 1
