"""Socket inode -> process attribution, fd counts and RLIMIT_NOFILE from /proc, in one fast pass.

Theory of operation
-------------------
A socket's owner is whoever holds an fd whose /proc/PID/fd/N link reads ``socket:[INODE]`` (proc(5)); the
sock_diag dump gives each socket's inode. There is no bulk interface, so the cost is one ``readlink`` per open
fd on the host — the same work ``ss -p`` does, which is why ``ss -tanp`` is ~6x slower than ``ss -tan``. We keep
the per-fd work minimal: open each /proc/PID/fd directory once, list it, and ``readlink(name, dir_fd=...)``
relative to that directory fd (the kernel then resolves one path component instead of four), comparing a
string prefix before any int conversion. Only /proc top-level numeric entries are visited: those are thread
*group* leaders, so threads sharing an fd table are not scanned twice.

Then, only for processes that own a wanted TCP socket (or hold many fds): ``comm`` and the soft "Max open files"
limit from /proc/PID/limits. A process we may not inspect (EACCES when unprivileged; ESRCH/ENOENT when it exits
mid-scan) is counted in :attr:`Attribution.denied` / skipped — the report says attribution is reduced.
"""

from __future__ import annotations

import marshal
import os
from collections.abc import Container
from dataclasses import dataclass, field

__all__ = ["ProcInfo", "Attribution", "scan", "scan_raw", "scan_parallel", "build", "read_fd_limit", "read_comm"]

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# Processes holding at least this many fds get their limit read even without a TCP socket (fd-headroom).
_LIMIT_READ_MIN_FDS = 256


@dataclass(slots=True)
class ProcInfo:
    """One process as the doctor sees it."""

    pid: int
    comm: str
    fds: int
    fd_limit: int | None  # soft RLIMIT_NOFILE; None = unlimited or unreadable
    inodes: list[int] = field(default_factory=list)  # wanted socket inodes this process holds


@dataclass(slots=True)
class Attribution:
    """Result of one /proc pass."""

    owners: dict[int, list[int]]  # socket inode -> pids holding it (several after fork/SCM_RIGHTS)
    procs: dict[int, ProcInfo]  # only processes owning a wanted socket or holding many fds
    scanned: int  # processes whose fd table we read
    denied: int  # processes we were not allowed to read (unprivileged run)


def read_comm(pid: int) -> str:
    """``/proc/PID/comm`` without the newline; ``"?"`` when the process is gone."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().decode("utf-8", "replace").rstrip("\n")
    except OSError:
        return "?"


def read_fd_limit(pid: int) -> int | None:
    """Soft ``Max open files`` from /proc/PID/limits (proc(5)); None when unlimited or unreadable."""
    try:
        with open(f"/proc/{pid}/limits", "rb") as f:
            data = f.read()
    except OSError:
        return None
    i = data.find(b"Max open files")
    if i < 0:
        return None
    fields = data[i + 14 : data.find(b"\n", i)].split()
    if not fields or fields[0] == b"unlimited":
        return None
    try:
        return int(fields[0])
    except ValueError:
        return None


def scan_raw(pids: list[int] | None = None) -> tuple[list[tuple[int, int, list[int]]], int, int]:
    """The fd pass alone: ``([(pid, fd_count, [socket inodes]), ...], scanned, denied)`` for every process.

    Every socket inode is kept (TCP or not): the caller filters, so this can run before — and in parallel
    with — the sock_diag dump (see :func:`scan_parallel`).
    """
    rows: list[tuple[int, int, list[int]]] = []
    scanned = denied = 0
    readlink = os.readlink
    if pids is None:
        names = [n for n in os.listdir("/proc") if n.isdigit()]
    else:
        names = [str(p) for p in pids]
    for name in names:
        try:
            dfd = os.open(f"/proc/{name}/fd", _O_DIR)
        except PermissionError:
            denied += 1
            continue
        except OSError:  # gone (ENOENT/ESRCH)
            continue
        try:
            fds = os.listdir(dfd)
            mine: list[int] = []
            for fd in fds:
                try:
                    target = readlink(fd, dir_fd=dfd)
                except OSError:  # fd closed between listdir and readlink
                    continue
                # 'socket:[12345]'; files, pipes, anon_inode:... fail the prefix test before any int().
                if target.startswith("socket:["):
                    mine.append(int(target[8:-1]))
        except PermissionError:
            denied += 1
            continue
        except OSError:
            continue
        finally:
            os.close(dfd)
        scanned += 1
        rows.append((int(name), len(fds), mine))
    return rows, scanned, denied


def build(raw: tuple[list[tuple[int, int, list[int]]], int, int], wanted: Container[int],
          keep_all: bool = False) -> Attribution:
    """Keep the ``wanted`` inodes; read comm and fd limit for processes that own one (or hold many fds, or
    every scanned process with ``keep_all`` — the ``--pid`` case)."""
    rows, scanned, denied = raw
    owners: dict[int, list[int]] = {}
    procs: dict[int, ProcInfo] = {}
    for pid, nfds, inodes in rows:
        mine = [i for i in inodes if i in wanted]
        if not mine and nfds < _LIMIT_READ_MIN_FDS and not keep_all:
            continue
        procs[pid] = ProcInfo(pid, read_comm(pid), nfds, read_fd_limit(pid), mine)
        for ino in mine:
            lst = owners.get(ino)
            if lst is None:
                owners[ino] = [pid]
            elif lst[-1] != pid:
                lst.append(pid)
    return Attribution(owners, procs, scanned, denied)


def scan(wanted: Container[int], pids: list[int] | None = None) -> Attribution:
    """Map the ``wanted`` socket inodes to their processes (``pids``: only these processes)."""
    return build(scan_raw(pids), wanted)


class scan_parallel:  # noqa: N801 - used like a function returning a future
    """Start :func:`scan_raw` in a forked child now; :meth:`result` collects it.

    The /proc fd pass (a readlink per fd) and the sock_diag dump (kernel walk + parsing) are independent, so
    on a machine with 2+ CPUs running them at once hides the shorter one. The child sends its rows back
    through a pipe with marshal (plain ints and lists) and leaves with os._exit. Where fork is not possible
    (or only one CPU), the scan runs in :meth:`result` instead. Do not use from a multi-threaded process.
    """

    def __init__(self, pids: list[int] | None = None) -> None:
        self.pids = pids
        self.child = 0
        self.rfd = -1
        if (os.cpu_count() or 1) < 2:
            return
        try:
            r, w = os.pipe()
        except OSError:
            return
        try:
            pid = os.fork()
        except OSError:
            os.close(r)
            os.close(w)
            return
        if pid == 0:  # child
            code = 0
            try:
                os.close(r)
                data = marshal.dumps(scan_raw(pids))
                view = memoryview(data)
                while view:
                    view = view[os.write(w, view):]
            except BaseException:  # noqa: BLE001 - the parent falls back to scanning itself
                code = 1
            finally:
                os._exit(code)
        os.close(w)
        self.child, self.rfd = pid, r

    def result(self) -> tuple[list[tuple[int, int, list[int]]], int, int]:
        if not self.child:
            return scan_raw(self.pids)
        chunks = []
        try:
            while True:
                b = os.read(self.rfd, 1 << 20)
                if not b:
                    break
                chunks.append(b)
        finally:
            os.close(self.rfd)
            _, status = os.waitpid(self.child, 0)
        if status != 0 or not chunks:
            return scan_raw(self.pids)
        raw: tuple[list[tuple[int, int, list[int]]], int, int] = marshal.loads(b"".join(chunks))
        return raw
