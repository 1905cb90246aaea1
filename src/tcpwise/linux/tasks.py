"""Who a kernel thread id is: its process (tgid), command and network namespace, from /proc, cached briefly.

Tracepoint records carry ``common_pid``, which is the *thread* id of the task that was running. /proc has an
entry for every thread id (hidden from the listing but reachable as /proc/TID), so: ``/proc/TID/status`` gives
``Tgid`` (the process id users know), ``/proc/TGID/comm`` the command, ``/proc/TGID/cmdline`` the command line
and ``/proc/TID/ns/net`` the thread's network namespace (its inode is the namespace's identity, the number
``ip netns identify`` and ``lsns`` show). A thread may switch namespaces (setns(2)), so entries expire after
``ttl`` seconds. A task that has already exited yields None: the caller says "unknown" rather than guess.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

__all__ = ["TaskInfo", "TaskCache", "netns_inode", "netns_of_name", "netns_path", "read_cmdline"]


class TaskInfo(tuple[int, str, int | None]):
    """``(tgid, comm, netns_inode)``."""

    __slots__ = ()

    @property
    def tgid(self) -> int:
        return self[0]

    @property
    def comm(self) -> str:
        return self[1]

    @property
    def netns(self) -> int | None:
        return self[2]


def netns_inode(path: str) -> int | None:
    """Inode of a namespace file (``/proc/PID/ns/net``, ``/run/netns/NAME``); None when unreadable."""
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def netns_of_name(name: str) -> int | None:
    """Inode of ``/run/netns/NAME`` (``ip netns add``), ``self`` for our own namespace, or a number as given."""
    if name == "self":
        return netns_inode("/proc/self/ns/net")
    if name.isdigit():
        return int(name)
    if "/" in name or name in (".", ".."):
        return None
    return netns_inode(f"/run/netns/{name}")


def netns_paths() -> dict[int, str]:
    """Every network namespace this process can name, inode -> a file that opens it: our own, the named ones
    (/run/netns) and every process's (/proc/PID/ns/net; containers' namespaces usually have no name)."""
    out: dict[int, str] = {}
    cands = ["/proc/self/ns/net"]
    with contextlib.suppress(OSError):
        cands += [f"/run/netns/{n}" for n in sorted(os.listdir("/run/netns"))]
    with contextlib.suppress(OSError):
        cands += [f"/proc/{pid}/ns/net" for pid in os.listdir("/proc") if pid.isdigit()]
    for path in cands:
        ino = netns_inode(path)
        if ino is not None and ino not in out:
            out[ino] = path
    return out


def netns_path(inode: int) -> str | None:
    """A file that opens namespace ``inode``: /proc/self/ns/net, a /run/netns/ name, or a process's."""
    return netns_paths().get(inode)


def read_cmdline(pid: int) -> list[str] | None:
    """``/proc/PID/cmdline`` split at NULs; None when the process is gone, [] for kernel threads."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def _read_task(tid: int) -> TaskInfo | None:
    try:
        with open(f"/proc/{tid}/status", "rb") as f:
            status = f.read(1024)
    except OSError:
        return None
    i = status.find(b"\nTgid:")
    if i < 0:
        return None
    try:
        tgid = int(status[i + 6 : status.find(b"\n", i + 1)])
    except ValueError:
        return None
    comm = ""
    try:
        with open(f"/proc/{tgid}/comm", "rb") as f:
            comm = f.read().decode("utf-8", "replace").rstrip("\n")
    except OSError:
        j = status.find(b"Name:")
        if j >= 0:
            comm = status[j + 5 : status.find(b"\n", j)].decode("utf-8", "replace").strip()
    return TaskInfo((tgid, comm, netns_inode(f"/proc/{tid}/ns/net")))


class TaskCache:
    """``get(tid, now_ns)`` -> :class:`TaskInfo` or None, re-read after ``ttl`` seconds.

    ``fallback(tid)`` -> ``(tgid, comm)`` or None is asked when the task has already exited (tracefs keeps the
    pid -> tgid and pid -> comm of recently traced tasks: ``saved_tgids``, ``saved_cmdlines``); its namespace is
    then unknown.
    """

    def __init__(
        self,
        ttl: float = 1.0,
        limit: int = 65536,
        fallback: Callable[[int], tuple[int, str] | None] | None = None,
    ) -> None:
        self.ttl_ns = int(ttl * 1e9)
        self.limit = limit
        self.fallback = fallback
        self._c: dict[int, tuple[int, TaskInfo | None]] = {}
        self.lookups = 0

    def get(self, tid: int, now_ns: int) -> TaskInfo | None:
        hit = self._c.get(tid)
        if hit is not None and hit[0] > now_ns:
            return hit[1]
        self.lookups += 1
        info = _read_task(tid)
        if len(self._c) >= self.limit:
            self._c.clear()
        if info is None and hit is not None and hit[1] is not None:
            info = hit[1]  # gone since: the last thing we knew is the best we have
        if info is None and self.fallback is not None:
            saved = self.fallback(tid)
            if saved is not None:
                info = TaskInfo((saved[0], saved[1], None))
        self._c[tid] = (now_ns + self.ttl_ns, info)
        return info
