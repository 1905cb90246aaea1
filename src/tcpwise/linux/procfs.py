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
import mmap
import os
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Container
from dataclasses import dataclass, field

__all__ = [
    "ProcInfo",
    "Attribution",
    "scan",
    "scan_raw",
    "scan_parallel",
    "build",
    "read_fd_limit",
    "read_comm",
    "vm_hwm_kb",
    "child_pids",
    "PeakRun",
    "run_peak",
]

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


def vm_hwm_kb(pid: int) -> int:
    """VmHWM of ``pid`` in kB (proc(5): the peak resident set since exec, per process), 0 if unreadable. Unlike
    ``wait4``'s ru_maxrss it does not count the pages a forked child shared with its parent before exec."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return max([int(ln.split()[1]) for ln in f if ln.startswith("VmHWM")] or [0])
    except (OSError, ValueError, IndexError):
        return 0


def child_pids(pid: int) -> list[int]:
    """The direct children of every thread of ``pid`` (/proc/PID/task/TID/children); [] if it is gone."""
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


# The child of :func:`run_peak`: run ``module:function(args)`` and, at exit, write its own VmHWM to stderr (it
# cannot be sampled from outside at the very end: the process is gone by then).
_PEAK_CHILD = """
import atexit, importlib, os, sys
from tcpwise.linux.procfs import vm_hwm_kb
atexit.register(lambda: sys.stderr.write("\\n%s%d\\n" % (sys.argv[1], vm_hwm_kb(os.getpid()))))
mod, fn = sys.argv[2].split(":")
sys.exit(getattr(importlib.import_module(mod), fn)(sys.argv[3:]))
"""
_PEAK_MARK = "TCPWISE-VMHWM-KB "


@dataclass(frozen=True, slots=True)
class PeakRun:
    """What :func:`run_peak` measured: exit code, stderr (without the peak report), wall seconds, peak RSS."""

    returncode: int
    stderr: str
    seconds: float
    peak_kb: int  # the largest VmHWM of the child and of its children (e.g. `trace --jobs` workers)


def run_peak(entry: str, args: list[str], timeout: float | None = None) -> PeakRun:
    """Run ``entry`` (``"package.module:function"``, called with ``args``) in a fresh Python process with stdout
    discarded, and measure its peak resident set: VmHWM, which exec resets (``wait4``'s ru_maxrss would count the
    pages a forked child shared with a big parent before exec). The child reports its own at exit; its children
    are sampled every 20 ms while they run. Past ``timeout`` seconds the child is killed and TimeoutError raised.
    The benchmarks and the memory tests use this one measurement."""
    argv = [sys.executable, "-c", _PEAK_CHILD, _PEAK_MARK, entry, *args]
    with tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        peak = 0
        while p.poll() is None:
            if timeout is not None and time.monotonic() - t0 > timeout:
                p.kill()
                p.wait()
                raise TimeoutError(f"{entry} {args} ran past {timeout} s")
            peak = max([peak] + [vm_hwm_kb(c) for c in child_pids(p.pid)])
            time.sleep(0.02)
        dt = time.monotonic() - t0
        err.seek(0)
        lines = err.read().decode(errors="replace").splitlines()
    peak = max([peak] + [int(ln[len(_PEAK_MARK) :]) for ln in lines if ln.startswith(_PEAK_MARK)])
    text = "\n".join(ln for ln in lines if not ln.startswith(_PEAK_MARK)).strip()
    return PeakRun(p.returncode, text, dt, peak)


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


Row = tuple[int, int, list[int]]  # (pid, fd count, socket inodes)


def _pid_names(pids: list[int] | None) -> list[str]:
    if pids is None:
        return [n for n in os.listdir("/proc") if n.isdigit()]
    return [str(p) for p in pids]


def _scan_one(name: str) -> Row | bool | None:
    """One process's fd table: its Row, False when not permitted (unprivileged), None when it is gone."""
    try:
        dfd = os.open(f"/proc/{name}/fd", _O_DIR)
    except PermissionError:
        return False
    except OSError:  # gone (ENOENT/ESRCH)
        return None
    readlink = os.readlink
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
        return False
    except OSError:
        return None
    finally:
        os.close(dfd)
    return (int(name), len(fds), mine)


def scan_raw(pids: list[int] | None = None) -> tuple[list[Row], int, int]:
    """The fd pass alone: ``([(pid, fd_count, [socket inodes]), ...], scanned, denied)`` for every process.

    Every socket inode is kept (TCP or not): the caller filters, so this can run before — and in parallel
    with — the sock_diag dump (see :func:`scan_parallel`).
    """
    rows: list[Row] = []
    denied = 0
    for name in _pid_names(pids):
        r = _scan_one(name)
        if r is False:
            denied += 1
        elif r is not None and r is not True:
            rows.append(r)
    return rows, len(rows), denied


def build(
    raw: tuple[list[tuple[int, int, list[int]]], int, int], wanted: Container[int], keep_all: bool = False
) -> Attribution:
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
    """Start the /proc fd pass in a forked child now; :meth:`result` finishes it from the other end.

    The /proc fd pass (a readlink per fd) and the sock_diag dump are independent, so on a machine with 2+ CPUs
    the child scans while the parent dumps. The process list is split dynamically: the child takes processes
    from the front, the parent — once its dump is done, in :meth:`result` — from the back, and each side
    publishes its position in a shared anonymous mmap before scanning a process, so they meet wherever the work
    balances. Without atomics both may occasionally scan the same process; rows are merged by pid. The child
    sends its rows through a pipe (marshal: plain ints and lists) and leaves with os._exit. Without fork or
    with one CPU, :meth:`result` scans everything itself. Do not use from a multi-threaded process.
    """

    def __init__(self, pids: list[int] | None = None) -> None:
        self.names = _pid_names(pids)
        self.child = 0
        self.rfd = -1
        self.shared: mmap.mmap | None = None
        if (os.cpu_count() or 1) < 2 or len(self.names) < 2:
            return
        try:
            shared = mmap.mmap(-1, 16)  # anonymous MAP_SHARED: [front, back] as two int64
            _POS.pack_into(shared, 0, 0, len(self.names))
            r, w = os.pipe()
        except OSError:
            return
        try:
            pid = os.fork()
        except OSError:
            os.close(r)
            os.close(w)
            return
        if pid == 0:  # child: from the front
            code = 0
            try:
                os.close(r)
                rows: list[Row] = []
                denied = 0
                i = 0
                while True:
                    back = _POS.unpack_from(shared, 0)[1]
                    if i >= back:
                        break
                    _FRONT.pack_into(
                        shared, 0, i + 1
                    )  # the child writes only "front", the parent only "back"
                    row = _scan_one(self.names[i])
                    if row is False:
                        denied += 1
                    elif row is not None and row is not True:
                        rows.append(row)
                    i += 1
                data = marshal.dumps((rows, denied))
                view = memoryview(data)
                while view:
                    view = view[os.write(w, view) :]
            except BaseException:  # noqa: BLE001 - the parent then scans everything itself
                code = 1
            finally:
                os._exit(code)
        os.close(w)
        self.child, self.rfd, self.shared = pid, r, shared

    def result(self) -> tuple[list[Row], int, int]:
        if not self.child or self.shared is None:
            return scan_raw([int(n) for n in self.names])
        shared = self.shared
        rows: dict[int, Row] = {}
        denied = 0
        j = len(self.names) - 1
        while True:  # parent: from the back
            front = _FRONT.unpack_from(shared, 0)[0]
            if j < front:
                break
            _BACK.pack_into(shared, 8, j)
            row = _scan_one(self.names[j])
            if row is False:
                denied += 1
            elif row is not None and row is not True:
                rows[row[0]] = row
            j -= 1
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
            shared.close()
        if status != 0 or not chunks:
            return scan_raw([int(n) for n in self.names])
        child_rows, child_denied = marshal.loads(b"".join(chunks))
        for row in child_rows:
            rows.setdefault(row[0], (row[0], row[1], list(row[2])))
        return list(rows.values()), len(rows), denied + child_denied


_POS = struct.Struct("=qq")
_FRONT = struct.Struct("=q")
_BACK = struct.Struct("=q")
