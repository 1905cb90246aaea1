"""One read-only snapshot of a host's (or namespace's) TCP sockets, their owners and the kernel's counters.

Theory of operation
-------------------
:func:`take` runs the three collectors in the order that keeps the picture consistent: the sock_diag dump first
(the expensive kernel walk), then the /proc scan restricted to the inodes that dump returned (an inode that
appears later belongs to a socket we did not see anyway), then counters and sysctls. With ``netns`` the netlink
socket is created and the /proc/thread-self/net files read inside that namespace (see kernel.in_netns); the /proc
PID scan is done from our own namespace, which is fine because socket inodes are global to the sockfs, and
processes of every net namespace are visible in our PID namespace.

Nothing here writes anywhere.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from operator import attrgetter

from tcpwise.errors import MissingCapability
from tcpwise.linux import kernel, netlink, procfs
from tcpwise.linux.netlink import Sock
from tcpwise.vocab import STATE_NAMES, kernel_state_name

__all__ = ["Snapshot", "take", "state_counts"]

_state_of = attrgetter("state")


@dataclass(slots=True)
class Snapshot:
    """Everything the findings, the report, top and the exporter need."""

    socks: list[Sock]
    procs: dict[int, procfs.ProcInfo]
    owners: dict[int, list[int]]  # inode -> pids
    counters: dict[str, int]
    sockstat: dict[str, int]
    sysctls: dict[str, str]
    netns: str | None = None
    taken: float = 0.0  # time.time() when the dump was taken
    elapsed_s: float = 0.0
    scanned: int = 0
    denied: int = 0  # processes whose fds we could not read
    privileged: bool = True
    by_inode: dict[int, Sock] = field(default_factory=dict)
    # Set by the lean dump (netlink.dump_lean): ``socks`` then holds only the interesting sockets, while these
    # count every socket (per kernel state) and map every inode to its state.
    counts: list[int] | None = None
    inode_state: dict[int, int] | None = None

    def states(self) -> dict[str, int]:
        """Socket count per canonical state name; all eleven names present, then any unknown numbers."""
        if self.counts is None:
            return state_counts(self.socks)
        out = dict.fromkeys(STATE_NAMES, 0)
        for num, n in enumerate(self.counts):
            if n:
                name = kernel_state_name(num)
                out[name] = out.get(name, 0) + n
        return out

    def proc_states(self, pid: int) -> dict[str, int]:
        """State counts of the sockets ``pid`` holds (non-zero only)."""
        p = self.procs.get(pid)
        if p is None:
            return {}
        if self.inode_state is not None:
            get_state = self.inode_state.get
            nums = Counter(st for st in map(get_state, set(p.inodes)) if st is not None)
        else:
            get = self.by_inode.get
            nums = Counter(s.state for s in map(get, set(p.inodes)) if s is not None)
        out: dict[str, int] = {}
        for num, n in nums.items():
            name = kernel_state_name(num)
            out[name] = out.get(name, 0) + n
        return out

    def pid_of(self, s: Sock) -> int | None:
        """First process holding socket ``s`` (None for TIME_WAIT, SYN_RCVD, orphans, unattributed)."""
        if not s.inode:
            return None
        lst = self.owners.get(s.inode)
        return lst[0] if lst else None

    def comm_of(self, pid: int | None) -> str:
        if pid is None:
            return "?"
        p = self.procs.get(pid)
        return p.comm if p else procfs.read_comm(pid)


def state_counts(socks: list[Sock]) -> dict[str, int]:
    raw = Counter(map(_state_of, socks))
    out = dict.fromkeys(STATE_NAMES, 0)
    for num, n in raw.items():
        name = kernel_state_name(num)
        out[name] = out.get(name, 0) + n
    return out


def take(
    netns: str | None = None,
    pids: list[int] | None = None,
    ext: int = netlink.EXT_INFO,
    attribute: bool = True,
    parallel: bool = True,
    idle_s: float = 600.0,
) -> Snapshot:
    """Collect one snapshot.

    Args:
        netns: name under /run/netns to look inside (needs root), None for our own namespace.
        pids: restrict process attribution (and the socket list) to these processes.
        ext: sock_diag extensions to request (tcp_info by default).
        attribute: False skips the /proc scan (states and listener queues only — the exporter's fast path).
        parallel: run the /proc scan in a forked child during the dump (False in multi-threaded callers).
        idle_s: with the default ``ext`` the lean dump keeps ESTABLISHED sockets idle this long (both ways)
            as interesting; pass the same value as the findings' Thresholds.idle_s.
    Raises:
        MissingCapability: no sock_diag support, or the namespace cannot be entered.
    """
    t0 = time.perf_counter()
    taken = time.time()
    # The /proc pass runs in a forked child while we dump and parse (see procfs.scan_parallel).
    pending = procfs.scan_parallel(pids) if attribute and parallel else None
    try:
        with kernel.in_netns(netns):
            try:
                sock = netlink.open_diag_socket()
            except OSError as exc:
                raise MissingCapability(f"cannot open a NETLINK_SOCK_DIAG socket: {exc.strerror}") from None
            counters = kernel.read_counters()
            sockstat = kernel.read_sockstat()
            sysctls = kernel.read_sysctls()
        counts: list[int] | None = None
        inode_state: dict[int, int] | None = None
        try:
            if ext == netlink.EXT_INFO:
                socks, counts, inode_state = netlink.dump_lean(sock, idle_s * 1000)
            else:
                socks = netlink.dump(sock=sock, ext=ext)
        except netlink.DiagError as exc:
            raise MissingCapability(f"sock_diag dump failed: {exc.strerror or exc}") from None
        finally:
            sock.close()
    except BaseException:
        if pending is not None:
            pending.result()  # reap the child
        raise
    by_inode = {s.inode: s for s in socks if s.inode}
    if attribute:
        raw = pending.result() if pending is not None else procfs.scan_raw(pids)
        att = procfs.build(
            raw, inode_state if inode_state is not None else by_inode, keep_all=pids is not None
        )
        procs, owners, scanned, denied = att.procs, att.owners, att.scanned, att.denied
    else:
        procs, owners, scanned, denied = {}, {}, 0, 0
    if pids is not None:
        keep = set(owners)
        socks = [s for s in socks if s.inode in keep]
        by_inode = {s.inode: s for s in socks}
        if inode_state is not None:
            inode_state = {i: st for i, st in inode_state.items() if i in keep}
            counts = [0] * 16
            for st in inode_state.values():
                counts[st] += 1
    return Snapshot(
        socks=socks,
        procs=procs,
        owners=owners,
        counters=counters,
        sockstat=sockstat,
        sysctls=sysctls,
        netns=netns,
        taken=taken,
        elapsed_s=time.perf_counter() - t0,
        scanned=scanned,
        denied=denied,
        privileged=os.geteuid() == 0,
        by_inode=by_inode,
        counts=counts,
        inode_state=inode_state,
    )
